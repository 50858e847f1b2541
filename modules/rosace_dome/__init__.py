"""ROSACE module: dome and shelter control: the safety authority."""

from rosace_core.plugins import ModuleSpec

MODULE = ModuleSpec(
    id="dome",
    title="Dome",
    description="Dome and shelter control: the safety authority",
    app="rosace_dome.api:create_app",
    client="rosace_dome.client:DomeClient",
    widget="rosace_dome.gui:create_widget",
    cli="rosace_dome.cli:register",
    port=8701,
    extra={"guardian": "rosace_dome.guardian:spawn"},
)
