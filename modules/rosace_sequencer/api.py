"""REST API of the sequencer module (placeholder until the module lands)."""

from rosace_core.rest import Api, create_module_app

api = Api("sequencer", "Sequencer", "Runs observations on the Alpaca hardware")


def create_app(config=None, *, token=None):
    """Build the sequencer module's Flask app."""
    return create_module_app(api, config=config, token=token)
