"""Sequence steps: the building blocks of an observation.

A sequence is a list of :class:`SequenceStep` objects (``Step`` for short) run in order on one
:class:`ObservationContext`. A step is a small class::

    class MyStep(Step):
        name = "my_step"                 # how Observing Files and the registry call it

        def estimate(self, ctx) -> float:  # optional: clock seconds it will take
            return 30.0

        def run(self, ctx) -> None:        # do the work; raise to fail the observation
            ctx.take_frames(self, "LIGHT", exptime=30.0, count=1)

Inside ``run`` a step uses the context: ``ctx.hw`` (devices), ``ctx.device(name)`` /
``ctx.devices[name]`` (any device of ``[devices]`` by name, extra ones included), ``ctx.take_frames``
(exposures written as FITS, journaled, skipped when already on disk after a
crash), ``ctx.check()`` (abort / pause point), ``ctx.log``, ``ctx.file`` (the
Observing File), ``ctx.options``. The default spectroscopic sequence is
:func:`default_sequence`. Users add steps through the plug-in registry's
``sequence.step`` kind: the ``rosace.sequence.step`` entry-point group (or the older
``rosace.sequence_steps``) or a Python file listed in ``[sequencer] step_files``
(see ``docs/adapting/plugins.md``, ``docs/sequencer.md`` and ``examples/custom_step/``).
"""

from __future__ import annotations

import logging
import queue as queue_mod
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np

from rosace_core.clock import get_clock
from rosace_core.errors import ConfigError, DeviceError, DeviceNotConnected, RosaceError
from rosace_core.instrument import observing_file_problems
from rosace_core.plugins import PluginError, Registry, import_file, registry
from rosace_core.observing_file import NonSiderealTarget, ObservingFile

from rosace_sequencer import acquisition
from rosace_sequencer.frames import FrameInfo, StorageError, build_header, check_free_space, frame_name, write_frame
from rosace_sequencer.guiding import GuideLoop, GuideSettings
from rosace_sequencer.hardware import Control, Hardware, Unsafe, retry

log = logging.getLogger(__name__)

#: the older entry-point group, still read (the registry's own is ``rosace.sequence.step``)
ENTRY_POINT_GROUP = "rosace.sequence_steps"


class SequenceStep:
    """One step of a sequence. Subclasses set ``name`` and implement ``run``.

    ``Step`` is the same class under its older name (kept: user files import it).
    """

    name: ClassVar[str] = "step"
    #: a short sentence shown in the tab and the docs
    title: ClassVar[str] = ""

    def estimate(self, ctx: "ObservationContext") -> float:
        """Return the clock seconds this step should take (progress and time left)."""
        return 0.0

    def run(self, ctx: "ObservationContext") -> None:
        """Do the step. Raise a RosaceError to fail the observation."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<step {self.name}>"


#: the older name of :class:`SequenceStep` (not the reduction's unrelated ``rosace_reduction.pipeline.Step``)
Step = SequenceStep


# --------------------------------------------------------------------------- context


class _Writer:
    """Writes frames in a background thread so the next exposure starts at once."""

    def __init__(self, ctx: "ObservationContext"):
        self.ctx = ctx
        self.jobs: queue_mod.Queue = queue_mod.Queue()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._loop, name="frame-writer", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                self.jobs.task_done()
                return
            try:
                self.ctx._write(*job)
            except Exception as exc:  # stops the observation before its next exposure (or during it)
                log.error("writing %s failed: %s", job[0], exc)
                if self.error is None:
                    self.error = exc
            finally:
                self.jobs.task_done()

    def put(self, *job) -> None:
        self.jobs.put(job)

    def raise_error(self) -> None:
        """Raise StorageError if a frame written so far failed (without waiting for the queue)."""
        if self.error is not None:
            exc, self.error = self.error, None
            raise exc if isinstance(exc, StorageError) else StorageError(f"a frame could not be written: {exc}")

    def flush(self) -> None:
        self.jobs.join()
        self.raise_error()

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=60)


class _DeviceMap(Mapping):
    """``ctx.devices``: the configured devices by name, connected when looked up."""

    def __init__(self, hw: Hardware):
        self._hw = hw

    def __getitem__(self, name: str):
        if name not in self._hw.device_names():
            raise KeyError(name)
        return self._hw.device(name)

    def __iter__(self):
        return iter(self._hw.device_names())

    def __len__(self) -> int:
        return len(self._hw.device_names())


@dataclass
class ObservationContext:
    """Everything a step may use while an observation runs."""

    file: ObservingFile
    observation_id: str
    file_hash: str
    folder: Path
    night: str
    config: Any
    options: Any
    hw: Hardware
    control: Control
    guard: Any
    journal: Any
    detector: Any
    reference: bool = False
    status: Callable[..., None] = lambda **kw: None
    frames: list[str] = field(default_factory=list)
    durations: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    set_temp: float | None = None
    last_frame: str | None = None
    steps: list[Step] = field(default_factory=list)
    step_index: int = 0
    raw_root: Path | None = None
    _writer: _Writer | None = None
    _done_seconds: float = 0.0
    _total_seconds: float = 1.0

    # ---------------------------------------------------------------- helpers

    @property
    def log(self) -> logging.Logger:
        return logging.getLogger("rosace_sequencer.observation")

    @property
    def target_name(self) -> str:
        return self.file.target.name

    def device(self, name: str):
        """A device by its [devices] name, connected on first use: an extra device
        (``[devices.grating] type = "focuser"`` gives a :class:`rosace_core.alpaca.Focuser`)
        or a role (``telescope``, ``spectro_camera``...). Unknown names raise RosaceError
        naming the known ones."""
        return self.hw.device(name)

    @property
    def devices(self) -> "_DeviceMap":
        """The devices by name, ``ctx.devices["grating"]`` (same as :meth:`device`)."""
        return _DeviceMap(self.hw)

    def check(self) -> None:
        """An abort / pause point; also keeps the roof lease alive."""
        self.control.check()
        self.guard.keep_alive()

    def retry(self, fn: Callable[[], Any], what: str) -> Any:
        """Run a device action with the configured retries and back-off.

        A device that says "not connected" is connected again before the next attempt
        (a camera that dropped off USB and came back must not fail every later frame).
        """

        def attempt():
            try:
                return fn()
            except DeviceNotConnected:
                self.hw.reconnect()
                raise

        return retry(attempt, what, attempts=self.options.retries, backoff=self.options.backoff, control=self.control)

    def target_position(self) -> tuple[float, float]:
        """Return the target's ICRS (RA, Dec) in degrees, proper motion applied to now."""
        t = self.file.target
        if isinstance(t, NonSiderealTarget):
            pts = t.ephemeris
            nowt = get_clock().now()
            best = min(pts, key=lambda p: abs((p.time - nowt).total_seconds()))
            return best.ra, best.dec
        years = (get_clock().now().year + get_clock().now().timetuple().tm_yday / 365.25) - t.epoch
        cosd = max(np.cos(np.radians(t.dec)), 1e-6)
        ra = (t.ra + t.pm_ra_cosdec / 3.6e6 * years / cosd) % 360.0
        dec = t.dec + t.pm_dec / 3.6e6 * years
        return float(ra), float(dec)

    def check_storage(self) -> None:
        """Raise StorageError if a frame could not be written or the disk is below the minimum.

        Called before every exposure: a frame that cannot be stored is never exposed
        (a full disk once cost two 600 s frames exposed after their writes failed).
        """
        if self._writer is not None:
            self._writer.raise_error()
        root = self.raw_root if self.raw_root is not None else self.folder.parent.parent
        check_free_space(root, self.options.min_free_gb, self.options.disk_quota_gb)

    def _write_failed(self) -> bool:
        return self._writer is not None and self._writer.error is not None

    def advance(self, seconds: float, message: str | None = None) -> None:
        self._done_seconds += seconds
        self.status(fraction=min(1.0, self._done_seconds / max(self._total_seconds, 1e-9)),
                    time_left=max(0.0, self._total_seconds - self._done_seconds), message=message)

    # ---------------------------------------------------------------- frames

    def guide_settings(self) -> GuideSettings:
        """The guide loop's settings: options, instrument, and the calibration learnt during acquisition."""
        o, inst = self.options, self.config.instrument
        scale = float(inst.guide_scale)
        model = self.info.get("guide_model") or (self.info.get("acquisition") or {}).get("model")
        if model is None:
            model = [[o.guide_x_sign / scale, 0.0], [0.0, o.guide_y_sign / scale]]
        width = o.guide_slit_width
        if width is None:
            width = self.detector.slit_width or 3.0
        exposure = o.guide_exposure or float(self.file.acquisition.exposure)
        return GuideSettings(
            exposure=exposure, slit=(float(inst.slit_x), float(inst.slit_y)), slit_width_px=width / scale, scale=scale,
            model=(tuple(model[0]), tuple(model[1])), aggressiveness=o.guide_aggressiveness, min_move=o.guide_min_move,
            max_move=o.guide_max_move, rate=self.hw.guide_rate(o.guide_rate), interval=o.guide_interval, min_wall_interval=o.guide_min_wall_interval,
            sigma=o.guide_detect_sigma, readout_timeout=o.readout_timeout, readout_min_wall=o.readout_min_wall)

    def wants_guiding(self, imagetyp: str, exptime: float, *, on_sky: bool = True, light: bool = True) -> bool:
        """Whether a frame is guided while it exposes: a long LIGHT on the sky, guiding on, not a blind acquisition."""
        o = self.options
        return (o.guide_during_exposure and imagetyp == "LIGHT" and on_sky and light and exptime > o.guide_min_exposure
                and self.file.acquisition.mode != "blind" and self.hw.can_pulse_guide())

    def take_frames(self, step: Step, imagetyp: str, *, exptime: float, count: int, lamp: str | None = None,
                    light: bool = True, on_sky: bool = True, between: Callable[[int], None] | None = None,
                    start: int = 1, guide: bool | None = None) -> list[Path]:
        """Take ``count`` frames of one kind and write them as FITS; return their paths.

        A frame whose file already exists (taken before a crash) is registered and
        skipped, so a resumed observation never duplicates a frame. ``lamp`` is
        lit for the frames and switched off afterwards. ``between(n)`` runs before
        frame ``n`` > 1 (guiding corrections). ``start`` numbers the first frame
        (several blocks of one IMAGETYP in one step). ``guide``: keep the star on
        the slit while each frame exposes (None: :meth:`wants_guiding` decides;
        pass False for frames taken off the target, such as a sky frame).
        """
        paths: list[Path] = []
        todo = []
        for n in range(start, start + count):
            path = self.folder / frame_name(self.observation_id, self.step_index, imagetyp, n)
            if path.exists():
                self.journal.add_frame(path, self.observation_id, imagetyp, step=step.name, step_index=self.step_index, number=n, exptime=exptime)
                if str(path) not in self.frames:
                    self.frames.append(str(path))
                paths.append(path)
                self.advance(exptime, f"{imagetyp} {n} already on disk")
            else:
                todo.append((n, path))
        if not todo:
            return paths
        ra, dec = self.target_position() if on_sky else (None, None)
        bx, by = self.file.instrument.binning
        binning = (bx, by)
        guided_frames = self.wants_guiding(imagetyp, exptime, on_sky=on_sky, light=light) if guide is None else bool(guide)
        if lamp is not None:
            self.retry(lambda: self.hw.set_lamp(lamp), f"switch on {lamp}")
        try:
            for n, path in todo:
                self.check()
                self.check_storage()
                if between is not None and n > start:
                    between(n)
                self.status(frame=f"{imagetyp} {n - start + 1}/{count}", message=f"{step.name}: {imagetyp} {n - start + 1}/{count} ({exptime:g} s)")
                try:
                    ccd = self.hw.camera.ccd_temperature
                except DeviceError:
                    ccd = None
                sky_safe = self.guard.is_safe if (on_sky and imagetyp == "LIGHT") else None

                def safety(sky_safe=sky_safe) -> bool:
                    # a failed write of the previous frame stops this exposure too
                    return not self._write_failed() and (sky_safe is None or sky_safe())

                guided: list = []

                def _expose():
                    loop = None
                    if guided_frames:
                        try:
                            loop = GuideLoop(self.hw, self.guide_settings(), self.control, duration=exptime,
                                             status=lambda message: self.status(message=message)).start()
                        except ValueError as exc:  # a bad calibration: observe unguided rather than not at all
                            log.error("guiding not started: %s", exc)
                    try:
                        return self.hw.expose(self.hw.camera, exptime, light=light, control=self.control,
                                              readout_timeout=self.options.readout_timeout, readout_min_wall=self.options.readout_min_wall,
                                              safety=safety, safety_poll=self.options.safety_poll)
                    finally:
                        if loop is not None:
                            guided[:] = [loop.stop()]

                try:
                    exposure = self.retry(_expose, f"{imagetyp} exposure")
                except Unsafe:
                    writer = self._writer
                    if writer is not None and writer.error is not None:  # see _write_failed
                        writer.raise_error()
                    raise
                extra = {}
                if guided:
                    stats = guided[0]
                    extra = stats.header()
                    self.info.setdefault("guiding", []).append(dict(stats.to_dict(), frame=n))
                    self.log.info("%s %d guided: %s", imagetyp, n, ", ".join(f"{k}={v}" for k, v in stats.to_dict().items() if v is not None))
                truth = self.hw.truth_id()
                info = FrameInfo(
                    imagetyp=imagetyp, exptime=exptime, date_obs=exposure.start, obj=self.target_name, ra=ra, dec=dec,
                    lamp=lamp or "none", observation_id=self.observation_id, file_id=self.file.id, file_hash=self.file_hash,
                    step=step.name, step_index=self.step_index, number=n, binning=binning, ccd_temp=ccd,
                    set_temp=self.set_temp, observer=self.file.observer.name, reference=self.reference and imagetyp == "LIGHT",
                    sim_truth=truth, campaign=(self.file.programme.campaign or "") if self.file.programme else "", extra=extra)
                if self._writer is None:
                    self._writer = _Writer(self)
                self._writer.put(path, exposure.image, info)
                paths.append(path)
                self.advance(exptime)
        finally:
            if lamp is not None:
                try:
                    self.hw.set_lamp(None)
                except DeviceError as exc:
                    log.warning("could not switch the lamps off: %s", exc)
        return paths

    def _write(self, path: Path, image: np.ndarray, info: FrameInfo) -> None:
        header = build_header(info, self.config, self.detector, camera=self.hw.caps.get("camera"))
        write_frame(path, image, header)
        self.journal.add_frame(path, self.observation_id, info.imagetyp, step=info.step, step_index=info.step_index,
                               number=info.number, exptime=info.exptime)
        self.frames.append(str(path))
        self.last_frame = str(path)
        self.status(last_frame=str(path))

    def flush(self) -> None:
        """Wait until every frame taken so far is on disk."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            try:
                self._writer.flush()
            finally:
                self._writer.close()
                self._writer = None


# --------------------------------------------------------------------------- built-in steps


class Preconditions(Step):
    """Roof open under a lease and safe; instrument matches; camera cooled; lamps off."""

    name = "preconditions"
    title = "roof lease, safety, camera cooling"

    def estimate(self, ctx):
        return 10.0

    def run(self, ctx):
        wanted = ctx.file.instrument.spectrograph.lower()
        mounted = str(ctx.config.instrument.spectrograph).lower()
        if wanted != mounted and wanted != ctx.detector.name.lower():
            raise RosaceError(f"the file asks for the {wanted!r} set-up but {mounted!r} is mounted")
        if ctx.detector.setup is not None:
            problems = observing_file_problems(ctx.detector.setup, ctx.file.instrument)
            if problems:
                raise RosaceError(f"the file cannot be observed with the mounted {ctx.detector.name!r} set-up: " + "; ".join(problems))
        ctx.retry(lambda: ctx.hw.connect(), "connect devices")
        ctx.status(message="waiting for the roof and a safe verdict")
        ctx.guard.acquire(ctx.control)
        ctx.retry(lambda: ctx.hw.set_lamp(None), "switch lamps off")
        bx, by = ctx.file.instrument.binning
        ctx.retry(lambda: ctx.hw.camera.set_binning(bx, by), "set binning")
        set_point = float(ctx.config.instrument.camera_set_point)
        ctx.status(message=f"cooling the camera to {set_point:g} C")
        ctx.retry(lambda: ctx.hw.wait_cooled(set_point, tolerance=ctx.options.cooling_tolerance,
                                             timeout=ctx.options.cooling_timeout, control=ctx.control), "camera cooling")
        ctx.set_temp = set_point if ctx.hw.can_cool() else None


class Slew(Step):
    """Point the telescope at the target and track."""

    name = "slew"
    title = "slew and track"

    def estimate(self, ctx):
        return 30.0

    def run(self, ctx):
        ra, dec = ctx.target_position()
        ctx.status(message=f"slewing to {ctx.target_name} (RA {ra:.3f}, Dec {dec:+.3f})")
        ctx.retry(lambda: ctx.hw.slew(ra, dec, timeout=ctx.options.slew_timeout, settle=ctx.options.settle_time, control=ctx.control), "slew")


def _guide_image(ctx, exposure: float) -> np.ndarray:
    return ctx.hw.expose(ctx.hw.guider, exposure, light=True, control=ctx.control, readout_timeout=ctx.options.readout_timeout, readout_min_wall=ctx.options.readout_min_wall).image


def _center(ctx, max_iterations: int) -> acquisition.AcquisitionResult:
    acq = ctx.file.acquisition
    inst = ctx.config.instrument

    def move(east, north):
        ctx.hw.offset(east, north, rate=ctx.hw.guide_rate(ctx.options.guide_rate), control=ctx.control)
        ctx.control.wait(ctx.options.settle_time / 2)

    width = ctx.options.guide_slit_width
    if width is None:
        width = ctx.detector.slit_width or 3.0
    result = acquisition.center_on_slit(
        lambda: ctx.retry(lambda: _guide_image(ctx, acq.exposure), "guide exposure"),
        move, slit=(inst.slit_x, inst.slit_y), scale=inst.guide_scale, tolerance=acq.tolerance,
        max_iterations=max_iterations, x_sign=ctx.options.guide_x_sign, y_sign=ctx.options.guide_y_sign,
        sigma=ctx.options.guide_detect_sigma, check_abort=ctx.check, worm_period=ctx.options.mount_worm_period,
        slit_width_px=width / float(inst.guide_scale))
    if result.model is not None and result.iterations >= 2:
        # A calibration measured on real moves: the guide loop uses it during the exposures.
        ctx.info["guide_model"] = result.model
    return result


class SlitAcquisition(Step):
    """Find the star on the guide camera and centre it on the slit."""

    name = "acquire"
    title = "slit acquisition"

    def estimate(self, ctx):
        return ctx.file.acquisition.exposure * 4 + 10

    def run(self, ctx):
        acq = ctx.file.acquisition
        if acq.mode == "blind":
            ctx.log.info("blind acquisition: trusting the pointing")
            return
        if not ctx.hw.can_pulse_guide():  # said once by the hardware: the mount cannot move by pulses
            ctx.info["acquisition"] = {"skipped": "the mount cannot pulse-guide (CanPulseGuide false)"}
            return
        if acq.mode == "plate_solve":
            ctx.log.warning("plate_solve acquisition is not available; centring on the brightest star instead")
        ctx.status(message="slit acquisition")
        result = _center(ctx, acq.max_iterations)
        ctx.info["acquisition"] = result.to_dict()
        ctx.log.info("%s on the slit: %.2f arcsec after %d move(s)", ctx.target_name, result.error_arcsec, result.iterations)


class Arcs(Step):
    """Wavelength-calibration lamp frames (before or after the science)."""

    title = "arc lamp frames"

    def __init__(self, when: str = "before"):
        self.when = when

    @property
    def name(self):  # type: ignore[override]
        return f"arcs_{self.when}"

    def _wanted(self, ctx) -> bool:
        arcs = ctx.file.sequence.arcs
        return arcs is not None and arcs.when != "none" and (arcs.when == self.when or arcs.when == "bracket")

    def estimate(self, ctx):
        arcs = ctx.file.sequence.arcs
        return arcs.exposure * arcs.count if self._wanted(ctx) else 0.0

    def run(self, ctx):
        if not self._wanted(ctx):
            return
        arcs = ctx.file.sequence.arcs
        ctx.take_frames(self, "ARC", exptime=arcs.exposure, count=arcs.count, lamp=arcs.lamp)


class Flats(Step):
    """Flat-field lamp frames."""

    name = "flats"
    title = "flat lamp frames"

    def estimate(self, ctx):
        f = ctx.file.sequence.flats
        return f.exposure * f.count if f else 0.0

    def run(self, ctx):
        f = ctx.file.sequence.flats
        if f is None:
            return
        ctx.take_frames(self, "FLAT", exptime=f.exposure, count=f.count, lamp=f.lamp)


class Science(Step):
    """The science exposures, guided while they expose (long ones); with ``[sequencer] guiding`` the star is also re-centred between them."""

    name = "science"
    title = "science exposures"

    def estimate(self, ctx):
        s = ctx.file.sequence.science
        return s.exposure * s.count

    def run(self, ctx):
        s = ctx.file.sequence.science
        between = None
        if ctx.options.guiding and ctx.file.acquisition.mode != "blind" and ctx.hw.can_pulse_guide():
            def between(n):
                ctx.status(message=f"guiding correction before exposure {n}")
                res = _center(ctx, 2)
                ctx.log.info("guiding: %.2f arcsec from the slit", res.error_arcsec)
        ctx.take_frames(self, "LIGHT", exptime=s.exposure, count=s.count, between=between)


class BiasDark(Step):
    """Bias and darks: taken now (``each_night``) or noted for the library (``library``)."""

    name = "bias_dark"
    title = "bias and darks"

    def _exptimes(self, ctx) -> list[float]:
        seq = ctx.file.sequence
        times = {seq.science.exposure}
        if seq.arcs:
            times.add(seq.arcs.exposure)
        if seq.flats:
            times.add(seq.flats.exposure)
        return sorted(times)

    def estimate(self, ctx):
        if ctx.file.sequence.bias_dark != "each_night":
            return 0.0
        return sum(self._exptimes(ctx)) * ctx.options.library_count

    def run(self, ctx):
        mode = ctx.file.sequence.bias_dark
        if mode == "none":
            return
        binning = tuple(ctx.file.instrument.binning)
        temp = ctx.set_temp if ctx.set_temp is not None else float(ctx.config.instrument.camera_set_point)
        needed = [("BIAS", ctx.options.bias_time)] + [("DARK", t) for t in self._exptimes(ctx)]
        if mode == "library":
            ctx.info["library_needs"] = [{"kind": k, "exptime": t, "temperature": temp, "binning": list(binning)} for k, t in needed]
            return
        count = ctx.options.library_count
        ctx.take_frames(self, "BIAS", exptime=ctx.options.bias_time, count=count, light=False, on_sky=False)
        first = 1
        for t in self._exptimes(ctx):
            # several dark exposure times in one step: numbered on, so names never collide
            ctx.take_frames(self, "DARK", exptime=t, count=count, light=False, on_sky=False, start=first)
            first += count


BUILTIN_STEPS: dict[str, Callable[[], Step]] = {
    "preconditions": Preconditions,
    "slew": Slew,
    "acquire": SlitAcquisition,
    "arcs_before": lambda: Arcs("before"),
    "arcs_after": lambda: Arcs("after"),
    "flats": Flats,
    "science": Science,
    "bias_dark": BiasDark,
}

DEFAULT_ORDER = ("preconditions", "slew", "acquire", "arcs_before", "science", "arcs_after", "flats", "bias_dark")


def default_sequence() -> list[Step]:
    """Return the default spectroscopic sequence: roof and cooling, slew, slit acquisition,
    arcs before, science, arcs after, flats, bias/darks."""
    return [BUILTIN_STEPS[n]() for n in DEFAULT_ORDER]


# --------------------------------------------------------------------------- registry


def _step_entries(module) -> dict[str, Any]:
    """The steps a user file defines: its SequenceStep subclasses (by ``name``) and its ``SEQUENCES``."""
    found: dict[str, Any] = {}
    for obj in vars(module).values():
        if isinstance(obj, type) and issubclass(obj, SequenceStep) and obj is not SequenceStep and obj.__module__ == module.__name__:
            name = obj.__dict__.get("name")
            if isinstance(name, str):
                found[name] = obj
    extra = getattr(module, "SEQUENCES", None)
    if isinstance(extra, dict):
        found.update(extra)
    return found


class StepRegistry:
    """Known step names -> factories: the ``sequence.step`` kind of a :class:`~rosace_core.plugins.Registry`.

    Built-ins first, then entry points (``rosace.sequence.step``, or the older
    ``rosace.sequence_steps``), then the configured files: a later origin replaces a
    step of the same name, the same name twice from one origin (two files) is an error.
    A factory is a SequenceStep subclass (or any callable) returning one step, or a
    *sequence*: a callable returning a list of steps, expanded where it is named.
    """

    KIND = "sequence.step"

    def __init__(self, plugins: Registry | None = None):
        self.plugins = (plugins or registry).copy()
        for name, factory in BUILTIN_STEPS.items():
            self.plugins.register(self.KIND, name, factory, source="rosace_sequencer.steps")
        self.errors: list[str] = []

    @property
    def factories(self) -> dict[str, Callable[[], Any]]:
        """Step name -> factory (a read-only view; use :meth:`register` to add one)."""
        return {e.name: e.obj for e in self.plugins.entries(self.KIND)}

    def register(self, name: str, factory: Callable[[], Any], *, origin: str = "file", source: str = "code") -> None:
        """Add a step; PluginError if ``name`` is already a step from the same origin (two files)."""
        self.plugins.register(self.KIND, name, factory, origin=origin, source=source)

    def register_module(self, module, source: str | None = None) -> list[str]:
        """Register every step defined in ``module`` (its SequenceStep subclasses by ``name``, its ``SEQUENCES``); return the names."""
        names = []
        for name, factory in _step_entries(module).items():
            self.register(name, factory, source=source or module.__name__)
            names.append(name)
        return names

    def load_entry_points(self) -> None:
        for name, error in self.plugins.load_entry_points(self.KIND).items():
            # a broken plug-in step must not stop the observatory
            self.errors.append(f"entry point {name}: {error}")
            log.warning("sequence step %s failed to load: %s", name, error)

    def load_file(self, path: Path) -> list[str]:
        """Import a Python file and register its steps; raise ConfigError if it cannot be loaded."""
        path = Path(path).expanduser()
        try:
            module = import_file(path, f"rosace_user_steps_{path.stem}")
        except Exception as exc:
            raise ConfigError(path, [("sequencer.step_files", f"cannot load {path}: {exc.__class__.__name__}: {exc}")]) from None
        try:
            return self.register_module(module, source=str(path))
        except PluginError as exc:
            raise ConfigError(path, [("sequencer.step_files", str(exc))]) from None

    def build(self, names: list[str]) -> list[SequenceStep]:
        """Turn step names into step objects; raise RosaceError naming an unknown step."""
        steps: list[SequenceStep] = []
        for name in names:
            if (self.KIND, name) not in self.plugins:
                raise RosaceError(f"unknown sequence step {name!r}; known: {', '.join(self.names())}")
            made = self.plugins.get(self.KIND, name)()
            if isinstance(made, SequenceStep):
                steps.append(made)
            elif isinstance(made, (list, tuple)) and all(isinstance(s, SequenceStep) for s in made):
                steps.extend(made)
            else:
                raise RosaceError(f"sequence step {name!r} did not build a Step (got {type(made).__name__})")
        return steps

    def sequence_for(self, of: ObservingFile) -> list[SequenceStep]:
        """Return the steps of an observation: the file's own list, else the default sequence."""
        if of.sequence.steps:
            return self.build(list(of.sequence.steps))
        return default_sequence()

    def names(self) -> list[str]:
        return self.plugins.names(self.KIND)


def load_registry(options) -> StepRegistry:
    """Build the registry: built-ins, then entry points, then ``[sequencer] step_files``."""
    reg = StepRegistry()
    reg.load_entry_points()
    for path in options.step_files:
        reg.load_file(path)
    return reg
