"""REST API of the dome module (placeholder until the module lands)."""

from rosace_core.rest import Api, create_module_app

api = Api("dome", "Dome", "Dome and shelter control: the safety authority")


def create_app(config=None, *, token=None):
    """Build the dome module's Flask app."""
    return create_module_app(api, config=config, token=token)
