"""A user sequence step for ROSACE: a sky frame beside the target.

For an extended object (a nebula, a comet) the sky cannot be taken from the
slit beside the star, so this step nods the telescope ``OFFSET`` arcsec north,
takes one LIGHT frame of empty sky, and comes back onto the slit.

Use it in two ways (see README.md):
- name this file in the configuration: ``[sequencer] step_files = ["path/to/sky_offset_step.py"]``;
- or ship it in a package and register it in that package's ``pyproject.toml``::

      [project.entry-points."rosace.sequence.step"]
      sky_offset = "sky_offset_step:SkyOffset"

Then an Observing File asks for it by name in ``sequence.steps``.
"""

from rosace_sequencer.steps import Step

OFFSET = 60.0  # arcsec north of the target: clear of the star's seeing halo


class SkyOffset(Step):
    """One sky frame ``OFFSET`` arcsec north of the target, as long as one science exposure."""

    name = "sky_offset"
    title = "sky frame beside the target"

    def estimate(self, ctx) -> float:
        return ctx.file.sequence.science.exposure + 20.0

    def run(self, ctx) -> None:
        exposure = ctx.file.sequence.science.exposure
        rate = ctx.options.guide_rate
        ctx.log.info("sky_offset: moving %.0f arcsec north for a sky frame", OFFSET)
        ctx.hw.offset(0.0, OFFSET, rate=rate, control=ctx.control)
        try:
            ctx.take_frames(self, "LIGHT", exptime=exposure, count=1)
            ctx.flush()
        finally:
            # always come back: the next step expects the star on the slit
            ctx.hw.offset(0.0, -OFFSET, rate=rate, control=ctx.control)
