"""Python client of the scheduler module's REST API."""

from rosace_core.http import RestClient


class SchedulerClient(RestClient):
    """Client of ``/api/v1/scheduler``."""

    module = "scheduler"
