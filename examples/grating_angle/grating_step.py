"""A user sequence step for ROSACE: turn a LHIRES grating to the Observing File's wavelength.

A LHIRES III changes its central wavelength by turning the grating with a
micrometer; a motor on it, driven by a focuser controller, shows up as an Alpaca
**focuser**. Configure it as an extra device and this step moves it to the
position of ``instrument.central_wavelength`` before the arcs and the science::

    [devices.grating]
    type = "focuser"
    url = "http://192.168.1.20:11111"
    device_number = 0

    [sequencer]
    step_files = ["path/to/grating_step.py"]

The wavelength -> steps table is ``grating_table.toml`` beside this file
(``GRATING_TABLE`` in the environment names another). An Observing File asks
for the step by name: ``steps: [preconditions, grating_angle, slew, acquire, ...]``.
Or install the folder as a package (``pip install ./examples/grating_angle``):
its ``pyproject.toml`` registers the step in the ``rosace.sequence.step``
entry-point group. See ``docs/adapting/grating-angle.md``.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rosace_core.errors import RosaceError
from rosace_sequencer.steps import SequenceStep

TABLE = Path(__file__).with_name("grating_table.toml")


@dataclass(frozen=True)
class GratingTable:
    """The measured positions: wavelengths (angstrom, increasing) and motor steps."""

    path: Path
    device: str
    backlash: int
    timeout: float
    wavelengths: np.ndarray
    steps: np.ndarray

    def position(self, wavelength: float) -> int:
        """The motor position for ``wavelength`` (linear between the measured points); refuse outside them."""
        lo, hi = float(self.wavelengths[0]), float(self.wavelengths[-1])
        if not lo <= wavelength <= hi:
            raise RosaceError(f"{self.path}: central_wavelength {wavelength:g} A is outside the measured points "
                              f"({lo:g}-{hi:g} A); measure the grating there and add a [[points]] entry")
        return int(round(float(np.interp(wavelength, self.wavelengths, self.steps))))


def load_table(path: Path | str = TABLE) -> GratingTable:
    """Read and check the table; RosaceError naming the file and the field for anything wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RosaceError(f"{path}: cannot read the grating table ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise RosaceError(f"{path}: not valid TOML: {exc}") from None
    points = data.get("points")
    if not isinstance(points, list) or len(points) < 2:
        raise RosaceError(f"{path}: points: at least two [[points]] (wavelength, steps) are needed")
    wavelengths, steps = [], []
    for i, point in enumerate(points, start=1):
        for key in ("wavelength", "steps"):
            value = point.get(key) if isinstance(point, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise RosaceError(f"{path}: points[{i}].{key}: a number is needed, not {value!r}")
        wavelengths.append(float(point["wavelength"]))
        steps.append(float(point["steps"]))
    if any(b <= a for a, b in zip(wavelengths, wavelengths[1:])):
        raise RosaceError(f"{path}: points: wavelengths must increase from one point to the next ({wavelengths})")
    backlash = data.get("backlash", 0)
    if isinstance(backlash, bool) or not isinstance(backlash, int) or backlash < 0:
        raise RosaceError(f"{path}: backlash: a whole number of steps >= 0, not {backlash!r}")
    device = data.get("device", "grating")
    if not isinstance(device, str) or not device:
        raise RosaceError(f"{path}: device: the [devices] name of the motor, not {device!r}")
    timeout = data.get("timeout", 120)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise RosaceError(f"{path}: timeout: seconds > 0, not {timeout!r}")
    return GratingTable(path, device, backlash, float(timeout), np.array(wavelengths), np.array(steps))


class GratingAngle(SequenceStep):
    """Move the grating-angle motor to the position of the file's central wavelength."""

    name = "grating_angle"
    title = "grating to the central wavelength"

    def estimate(self, ctx) -> float:
        return 30.0

    def run(self, ctx) -> None:
        wavelength = ctx.file.instrument.central_wavelength
        if wavelength is None:
            ctx.log.info("grating_angle: the file gives no central_wavelength; the grating stays where it is")
            return
        table = load_table(os.environ.get("GRATING_TABLE") or TABLE)
        target = table.position(float(wavelength))
        motor = ctx.device(table.device)  # a rosace_core.alpaca.Focuser, connected
        start = ctx.retry(lambda: motor.position, "grating position")
        ctx.status(message=f"grating to {wavelength:g} A: step {target} (now {start})")
        moves = [target]
        if target < start and table.backlash:
            moves = [max(0, target - table.backlash), target]  # take out the play: arrive moving up
        for position in moves:
            ctx.check()
            ctx.retry(lambda p=position: motor.move_to(p, timeout=table.timeout, wait=ctx.control.wait), f"grating to step {position}")
        ctx.info["grating"] = {"wavelength": float(wavelength), "steps": target, "from": start, "moves": moves, "table": str(table.path)}
        ctx.log.info("grating at step %d for %g A (from %d, moves %s)", target, wavelength, start, moves)
