"""REST API of the share module (placeholder until the module lands)."""

from rosace_core.rest import Api, create_module_app

api = Api("share", "Share", "Archive, plots, web gallery and share server")


def create_app(config=None, *, token=None):
    """Build the share module's Flask app."""
    return create_module_app(api, config=config, token=token)
