"""Python client of the share module's REST API."""

from rosace_core.http import RestClient


class ShareClient(RestClient):
    """Client of ``/api/v1/share``."""

    module = "share"
