"""A user module for ROSACE: the observer's night log (timestamped notes).

Everything the shell and the CLI need is this :class:`ModuleSpec`; the
strings are imported only when used, so a broken ``gui.py`` greys out this tab
and nothing else.
"""

from rosace_core.plugins import ModuleSpec

MODULE = ModuleSpec(
    id="nightlog",
    title="Night log",
    app="rosace_nightlog.api:create_app",
    client="rosace_nightlog.client:NightLogClient",
    widget="rosace_nightlog.gui:create_widget",
    port=8710,
    description="timestamped notes about the night, kept with the observatory's data",
)
