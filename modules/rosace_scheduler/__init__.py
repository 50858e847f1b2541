"""ROSACE module: what to observe next, from observing files and the night's constraints."""

from rosace_core.plugins import ModuleSpec

MODULE = ModuleSpec(
    id="scheduler",
    title="Scheduler",
    description="What to observe next, from Observing Files and the night's constraints",
    app="rosace_scheduler.api:create_app",
    client="rosace_scheduler.client:SchedulerClient",
    widget="rosace_scheduler.gui:create_widget",
    cli="rosace_scheduler.cli:register",
    port=8702,
)
