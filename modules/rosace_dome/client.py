"""Python client of the dome module's REST API."""

from rosace_core.http import RestClient


class DomeClient(RestClient):
    """Client of ``/api/v1/dome``."""

    module = "dome"
