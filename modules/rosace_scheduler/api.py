"""REST API of the scheduler module (placeholder until the module lands)."""

from rosace_core.rest import Api, create_module_app

api = Api("scheduler", "Scheduler", "What to observe next, from Observing Files and the night's constraints")


def create_app(config=None, *, token=None):
    """Build the scheduler module's Flask app."""
    return create_module_app(api, config=config, token=token)
