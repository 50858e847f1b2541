"""A whole unattended night on the simulated observatory, five modules as processes.

:class:`DemoNight` writes a run folder (configuration, Observing Files, logs,
data), starts the simulated observatory and the five module servers as
separate processes under one simulated clock, starts the sequencer's robotic
night, watches it (and runs fault drills when asked), then gathers a summary
from the modules' REST APIs, publishes it as a gallery page, checks it against
the scenario's expectations and stops every process.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import yaml

from rosace_core.clock import Clock, release, set_clock
from rosace_core.config import MODULE_IDS
from rosace_core.errors import RosaceError
from rosace_core.http import RestClient, ServiceUnavailable
from rosace_core.resources import resource_path
from rosace_demo.drills import Drill
from rosace_demo.processes import ProcessGroup, free_port
from rosace_sim import devices_config

log = logging.getLogger(__name__)

DEFAULT_SCENARIO = "demo_night.yaml"
DEFAULT_FILES = (
    "be_gamcas_halpha_alpy.yaml",
    "be_zetatau_halpha_alpy.yaml",
    "be_phiper_alpy.yaml",
    "be_28tau_alpy.yaml",
    "be_betcmi_alpy.yaml",
    "nova_too_window.yaml",
    "reference_hr1544_alpy.json",
    "binary_betaLyr_lhires.yaml",
    "reference_alflyr_lhires.yaml",
)


class DemoError(RosaceError):
    """The demo could not run (a process failed to start, a module did not answer)."""


@dataclass
class DemoNight:
    """One demo night: folder, scenario, clock rate, Observing Files and drills."""

    folder: Path
    scenario: Path | None = None
    rate: float | None = None
    files: tuple[str, ...] = DEFAULT_FILES
    drills: list[Drill] = field(default_factory=list)
    #: wall seconds the night may take once the clock runs (None: from the night's length and the rate, see wall_limit)
    max_wall: float | None = None
    #: wall seconds every process has to answer before the clock starts
    startup_timeout: float = 300.0
    #: wall seconds to hold back a process's start (a slow machine, for the tests): {"scheduler": 30}
    slow_start: dict[str, float] = field(default_factory=dict)
    #: raw frames stay in data/raw after the run (``rosace demo`` removes them unless --keep-raw)
    keep_raw: bool = True
    end: datetime | None = None
    expectations: dict = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    on_tick: Callable[["DemoNight", dict], None] | None = None
    user_config: Any = None

    def __post_init__(self):
        self.folder = Path(self.folder)
        self.scenario = Path(self.scenario) if self.scenario else resource_path("scenarios", DEFAULT_SCENARIO)
        self.scenario_data = yaml.safe_load(self.scenario.read_text(encoding="utf-8"))
        if self.user_config is not None:
            self._rehearsal_scenario()
        self.ports = {"sim": free_port(), **{m: free_port() for m in MODULE_IDS}}
        self.procs: ProcessGroup | None = None
        self.clock: Clock | None = None
        self.events: list[str] = []
        self.snapshots: list[dict] = []
        self.summary: dict = {}
        self.verdict: dict = {}
        self._hold: dict[str, float] = {}

    # ------------------------------------------------------------------ set-up

    @property
    def start_time(self) -> datetime:
        start = self.scenario_data.get("start") or self.scenario_data.get("clock", {}).get("start")
        value = start if isinstance(start, datetime) else datetime.fromisoformat(str(start).replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)

    @property
    def end_time(self) -> datetime:
        """When the demo stops watching (default: 14 h after the start, past dawn)."""
        return self.end or self.start_time + timedelta(hours=14)

    @property
    def clock_rate(self) -> float:
        # A winter night of ~14 h in under 5 minutes of wall time.
        return float(self.rate or 180.0)

    @property
    def wall_limit(self) -> float:
        """Wall seconds the run may watch the night once the clock runs.

        The night's length at the clock rate, plus a margin for the end of the
        night (park, close, last reductions) and for a loaded machine: a quarter
        of it, at least two minutes. ``max_wall`` overrides it.
        """
        if self.max_wall is not None:
            return float(self.max_wall)
        night = (self.end_time - self.start_time).total_seconds() / self.clock_rate
        return night + max(120.0, 0.25 * night)

    @property
    def shelter_type(self) -> str:
        shelter = self.scenario_data.get("shelter", "rolloff")
        return shelter.get("type", "rolloff") if isinstance(shelter, dict) else str(shelter)

    def url(self, part: str) -> str:
        return f"http://127.0.0.1:{self.ports[part]}"

    def client(self, module: str, timeout: float = 10.0) -> RestClient:
        c = RestClient(self.url(module), token=self.token, timeout=timeout)
        c.module = module
        return c

    def write_config(self) -> Path:
        """Write the run's observatory configuration (TOML) and fill its queue folder.

        In a rehearsal (``user_config`` given) the user's site, instrument and module
        options are kept; only the devices (the simulator), the module addresses,
        the token and the data folder are the run's own.
        """
        import tomli_w

        user = self.user_config
        queue = self.folder / "queue"
        queue.mkdir(parents=True, exist_ok=True)
        user_queue = Path(user.scheduler["queue_folder"]) if user and user.scheduler.get("queue_folder") else None
        if user_queue and user_queue.is_dir():
            for path in sorted(user_queue.iterdir()):
                if path.suffix.lower() in (".yaml", ".yml", ".json"):
                    shutil.copy(path, queue / path.name)
        else:
            for name in self.files:
                shutil.copy(resource_path("observing_files", name), queue / name)
        sim = self.url("sim")
        site = self.scenario_data.get("site", {})
        devices: dict[str, Any] = {"shelter": self.shelter_type, **devices_config(sim)}
        options = {m: dict(getattr(user, m) or {}) if user else {} for m in MODULE_IDS}
        options["dome"].setdefault("poll_period", 1.0)
        options["scheduler"]["queue_folder"] = queue.as_posix()
        options["sequencer"]["require_dome"] = True
        # The simulated mount's worm period, as a user would give their mount's: acquisition follows its periodic error.
        tracking = (self.scenario_data.get("telescope") or {}).get("tracking") or {}
        options["sequencer"].setdefault("mount_worm_period", float(tracking.get("worm_period", 480.0)))
        options["reduction"]["share_url"] = self.url("share")
        for key in ("database_url", "storage", "upstream_url", "upstream_token"):
            options["share"].pop(key, None)  # the run keeps its archive in its own folder
        config = {
            "site": user.site.model_dump(mode="json") if user else {k: site[k] for k in ("name", "latitude", "longitude", "elevation") if k in site},
            "devices": devices,
            "instrument": user.instrument.model_dump(mode="json") if user else {"spectrograph": self.scenario_data.get("instrument", "alpy600")},
            "modules": {m: {"url": self.url(m), "token": self.token} for m in MODULE_IDS},
            "server": {"host": "127.0.0.1", "token": self.token},
            "data": {"root": (self.folder / "data").as_posix()},
            **options,
        }
        path = self.folder / "rosace.toml"
        path.write_text("# Written by `rosace demo` for this run.\n" + tomli_w.dumps(config), encoding="utf-8")
        return path

    def _rehearsal_scenario(self) -> None:
        """Put the simulated observatory where the user's is, with the user's instrument and shelter."""
        user = self.user_config
        self.scenario_data["site"] = {
            "name": user.site.name, "latitude": user.site.latitude, "longitude": user.site.longitude,
            "elevation": user.site.elevation, "min_altitude": min(user.site.min_altitude, 89.0),
        }
        self.scenario_data["instrument"] = user.instrument.spectrograph
        shelter = self.scenario_data.get("shelter")
        if isinstance(shelter, dict):
            shelter["type"] = user.devices.shelter
        else:
            self.scenario_data["shelter"] = {"type": user.devices.shelter}
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / "scenario.yaml"
        path.write_text(yaml.safe_dump(self.scenario_data, sort_keys=False), encoding="utf-8")
        self.scenario = path

    # ------------------------------------------------------------------ run

    def start(self) -> None:
        """Start the simulator and the five modules; start the clock once all answer.

        Every process gets a clock held at the night's start (``ROSACE_CLOCK``
        naming ``clock.epoch`` in the run folder): however long they take to come
        up (a loaded machine, a slow disk), no simulated time passes until the last
        one answers; then the file is written and every clock runs from that instant.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        config = self.write_config()
        epoch_file = self.folder / "clock.epoch"
        epoch_file.unlink(missing_ok=True)  # a folder used again: the previous run's epoch must not start this clock
        self.clock = Clock.held(self.start_time, self.clock_rate, epoch_file)
        set_clock(self.clock)  # this process's log lines in simulated time too
        env = {"ROSACE_CLOCK": self.clock.spec(), "ROSACE_TOKEN": self.token, "ROSACE_CONFIG": str(config)}
        self.procs = ProcessGroup(self.folder, env=env)
        started = time.monotonic()
        deadline = started + self.startup_timeout
        self.procs.start("sim", ["--config", str(config), "sim", "serve", "--scenario", str(self.scenario), "--port", str(self.ports["sim"]), "--discovery-port", "-1"],
                         delay=self.slow_start.get("sim", 0.0))
        # The hardware first, as on a real observatory: the modules connect to it as they start.
        self.wait_healthy("sim", deadline)
        for module in MODULE_IDS:
            self.procs.start(module, ["--config", str(config), module, "serve", "--port", str(self.ports[module])], delay=self.slow_start.get(module, 0.0))
        for part in ("sim", *MODULE_IDS):
            self.wait_healthy(part, deadline)
        self.startup_wall = time.monotonic() - started
        release(epoch_file)
        self.event(f"all processes up after {self.startup_wall:.0f} s; the simulated clock starts now (x{self.clock_rate:g})")

    def wait_healthy(self, part: str, deadline: float) -> None:
        url = f"{self.url(part)}/management/apiversions" if part == "sim" else f"{self.url(part)}/api/v1/health"
        c = RestClient(self.url(part), timeout=2)
        while True:
            if part in self._group().dead():
                raise DemoError(f"{part} exited at start:\n{self._group().tail(part)}")
            try:
                c.get(url)
                return
            except (ServiceUnavailable, RosaceError):
                if time.monotonic() > deadline:
                    raise DemoError(f"{part} did not answer within {self.startup_timeout:.0f} s:\n{self._group().tail(part)}") from None
                time.sleep(0.2)

    def event(self, text: str) -> None:
        stamp = self.clock.now().strftime("%H:%M:%S") if self.clock else "--:--:--"
        self.events.append(f"{stamp} {text}")
        log.info("%s", text)

    def now(self) -> datetime:
        if self.clock is None:
            raise DemoError("the simulated clock has not started")
        return self.clock.now()

    def _group(self) -> ProcessGroup:
        """The processes of the night (started by start())."""
        if self.procs is None:
            raise DemoError("the demo's processes are not started")
        return self.procs

    def snapshot(self) -> dict:
        """Poll every module once (errors become 'unreachable' in the snapshot)."""
        snap: dict[str, Any] = {"time": self.now().isoformat()}
        for module, path in (("dome", "/status"), ("sequencer", "/status")):
            try:
                snap[module] = self.client(module, timeout=3).get(path)
            except RosaceError as exc:
                snap[module] = {"error": str(exc)}
        try:
            snap["spectra_in_archive"] = self.client("share", timeout=3).get("/spectra", params={"limit": 1}).get("total")
        except (RosaceError, AttributeError):
            snap["spectra_in_archive"] = None
        snap["frames_on_disk"] = self.frames_on_disk()
        return snap

    def frames_on_disk(self) -> int:
        """Raw frames written so far (every FITS under data/raw: science, calibrations, library): the live display's and the summary's count."""
        raw = self.folder / "data" / "raw"
        return sum(1 for _ in raw.rglob("*.fits")) if raw.exists() else 0

    def remove_raw(self) -> str:
        """Remove the raw frames (after the run); leave a note saying so where they were; return what was done."""
        raw = self.folder / "data" / "raw"
        if not raw.exists():
            return "none written"
        files = [p for p in raw.rglob("*") if p.is_file()]
        size = sum(p.stat().st_size for p in files)
        shutil.rmtree(raw, ignore_errors=True)
        raw.mkdir(parents=True, exist_ok=True)
        (raw / "REMOVED.txt").write_text(
            f"rosace demo removed the {len(files)} raw files of this run ({size / 2**20:.0f} MiB) at its end.\n"
            "The spectra's provenance (FITS headers, archive) still names them; run the demo with --keep-raw to keep them.\n",
            encoding="utf-8")
        return f"removed {len(files)} raw files ({size / 2**20:.0f} MiB)"

    def run(self) -> dict:
        """Run the whole night; return the verdict (figures, checks, passed) and stop every process."""
        try:
            self.start()
            while self.now() < self.start_time:
                time.sleep(0.1)
            self.client("sequencer").post("/night/start", {})
            self.event("robotic night started")
            wall_deadline = time.monotonic() + self.wall_limit
            stop_sent = False
            while time.monotonic() < wall_deadline:
                self.restart_crashed()
                snap = self.snapshot()
                self.snapshots.append(snap)
                self.sample_memory()
                for drill in self.drills:
                    if not drill.done and drill.trigger(self, snap):
                        drill.done = True
                        drill.fired_at = self.now().isoformat()
                        drill.note = str(drill.action(self) or "")
                        self.event(f"drill: {drill.name}: {drill.note}")
                if self.on_tick:
                    self.on_tick(self, snap)
                if self.now() >= self.end_time:
                    if self.night_over(snap):
                        break
                    if not stop_sent:
                        # A short night (drills) ends before dawn: ask the sequencer to
                        # finish as it would at dawn (park, release the roof).
                        stop_sent = True
                        self.event("end of the run: stopping the robotic night")
                        try:
                            self.client("sequencer").post("/night/stop", {})
                        except RosaceError as exc:
                            self.event(f"could not stop the night: {exc}")
                time.sleep(0.5)
            else:
                self.event(f"wall-clock limit ({self.wall_limit:.0f} s) reached before the night ended")
                if not stop_sent:
                    try:
                        self.client("sequencer").post("/night/stop", {})
                    except RosaceError as exc:
                        self.event(f"could not stop the night: {exc}")
            self.make_safe()
            self.frames_taken = self.frames_on_disk()
            self.summary = self.collect_summary()
            from rosace_demo.summary import evaluate

            self.verdict = evaluate(self, self.summary)
            for key, value in self.verdict["figures"].items():
                log.info("summary: %s: %s", key.replace("_", " "), value)
            for check in self.verdict["checks"]:
                log.info("%s %s: %s", "PASS" if check["ok"] else "FAIL", check["name"], check["detail"])
            return self.verdict
        finally:
            if self.procs:
                self.procs.stop_all()

    def make_safe(self, wall_timeout: float = 120.0) -> None:
        """Leave the observatory safe: the roof closed (the sequencer's end of night does it; the dome is asked if not)."""
        def roof() -> str | None:
            try:
                return ((self.client("dome", timeout=3).get("/status") or {}).get("shelter") or {}).get("state")
            except RosaceError:
                return None

        if self.expectations.get("roof_closed_at_end", True) is False:
            return  # a short drill night ends with the roof as it is
        deadline = time.monotonic() + wall_timeout
        asked = False
        while time.monotonic() < deadline:
            state = roof()
            if state == "closed":
                return
            seq = (self.snapshot().get("sequencer") or {})
            if not asked and (self.night_over({"sequencer": seq}) or time.monotonic() > deadline - wall_timeout / 2):
                asked = True
                self.event(f"end of the run with the roof {state}: asking the dome to close it")
                try:
                    self.client("dome").post("/close", {"reason": "end of the demo run", "source": "demo"})
                except RosaceError as exc:
                    self.event(f"could not ask the dome to close: {exc}")
            time.sleep(0.5)
        self.event("the roof did not report closed at the end of the run")

    def sample_memory(self) -> None:
        """Track the peak of the summed resident memory of every process of the run."""
        import psutil

        total = psutil.Process().memory_info().rss
        peaks = self.__dict__.setdefault("peak_memory_by_process_mb", {})
        peaks["demo"] = max(peaks.get("demo", 0), round(total / 2**20))
        for name, child in self._group().children.items():
            if child.running:
                try:
                    rss = psutil.Process(child.pid).memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                peaks[name] = max(peaks.get(name, 0), round(rss / 2**20))
        self.peak_memory_mb = max(getattr(self, "peak_memory_mb", 0.0), total / 2**20)

    def night_over(self, snap: dict) -> bool:
        seq = snap.get("sequencer", {})
        return seq.get("mode") in (None, "idle") or seq.get("state") in ("idle", "finished", "stopped")

    def hold_restart(self, name: str, wall_seconds: float) -> None:
        """Do not restart ``name`` before ``wall_seconds`` from now (outage drills)."""
        self._hold[name] = time.monotonic() + wall_seconds

    def restart_crashed(self) -> None:
        """A module that died is restarted (like a service manager would)."""
        for name in self._group().dead():
            if name == "sim" or time.monotonic() < self._hold.get(name, 0.0):
                continue
            self.event(f"{name} process exited; restarting it")
            self._group().restart(name)
            self.wait_healthy(name, time.monotonic() + 60)
            self.event(f"{name} is back")

    # ------------------------------------------------------------------ summary

    def collect_summary(self) -> dict:
        """Gather what happened from the modules' REST APIs."""
        summary: dict[str, Any] = {"events": self.events}

        def safe(fn, default):
            try:
                return fn()
            except RosaceError as exc:
                summary.setdefault("errors", []).append(str(exc))
                return default

        summary["history"] = safe(lambda: self.client("scheduler").get("/history"), [])
        summary["sequencer_history"] = safe(lambda: self.client("sequencer").get("/history"), [])
        summary["spectra"] = safe(lambda: self.client("share").get("/spectra", params={"limit": 500}).get("items", []), [])
        summary["queue"] = safe(lambda: self.client("scheduler").get("/queue"), {})
        summary["dome_events"] = safe(lambda: self.client("dome").get("/events"), [])
        summary["final_dome"] = safe(lambda: self.client("dome").get("/status"), {})
        return summary
