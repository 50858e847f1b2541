"""Python client of the sequencer module's REST API."""

from rosace_core.http import RestClient


class SequencerClient(RestClient):
    """Client of ``/api/v1/sequencer``."""

    module = "sequencer"
