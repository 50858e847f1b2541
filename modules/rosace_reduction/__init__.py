"""ROSACE module: raw frames to calibrated 1d spectra."""

from rosace_core.plugins import ModuleSpec

MODULE = ModuleSpec(
    id="reduction",
    title="Reduction",
    description="Raw frames to calibrated 1D spectra",
    app="rosace_reduction.api:create_app",
    client="rosace_reduction.client:ReductionClient",
    widget="rosace_reduction.gui:create_widget",
    cli="rosace_reduction.cli:register",
    port=8704,
)
