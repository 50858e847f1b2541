"""REST API of the reduction module (placeholder until the module lands)."""

from rosace_core.rest import Api, create_module_app

api = Api("reduction", "Reduction", "Raw frames to calibrated 1D spectra")


def create_app(config=None, *, token=None):
    """Build the reduction module's Flask app."""
    return create_module_app(api, config=config, token=token)
