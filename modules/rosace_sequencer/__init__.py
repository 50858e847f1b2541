"""ROSACE module: runs observations on the alpaca hardware."""

from rosace_core.plugins import ModuleSpec

MODULE = ModuleSpec(
    id="sequencer",
    title="Sequencer",
    description="Runs observations on the Alpaca hardware",
    app="rosace_sequencer.api:create_app",
    client="rosace_sequencer.client:SequencerClient",
    widget="rosace_sequencer.gui:create_widget",
    port=8703,
)
