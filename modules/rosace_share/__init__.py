"""ROSACE module: archive, plots, web gallery and share server."""

from rosace_core.plugins import ModuleSpec

MODULE = ModuleSpec(
    id="share",
    title="Share",
    description="Archive, plots, web gallery and share server",
    app="rosace_share.api:create_app",
    client="rosace_share.client:ShareClient",
    widget="rosace_share.gui:create_widget",
    cli="rosace_share.cli:register",
    port=8705,
    # Dates only (no UT1, no coordinates): no IERS table at start-up.
    extra={"earth_orientation": False},
)
