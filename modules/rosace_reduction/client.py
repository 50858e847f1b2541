"""Python client of the reduction module's REST API."""

from rosace_core.http import RestClient


class ReductionClient(RestClient):
    """Client of ``/api/v1/reduction``."""

    module = "reduction"
