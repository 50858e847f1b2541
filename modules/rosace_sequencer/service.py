"""The sequencer service: one object behind the REST API.

It owns the journal, the devices, the step registry and at most one running
job (a single observation or a robotic night), keeps the live status and log,
and on start-up recovers from a crash: frames already written are registered,
half-written ones removed, and the interrupted observation resumed (or handed
back to the scheduler), the interrupted night restarted.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from rosace_core.clock import get_clock, now
from rosace_core.errors import ConflictError, NotFoundError, RosaceError
from rosace_core.jobs import Job, JobRunner
from rosace_core.observing_file import ObservingFile
from rosace_core.outbox import Acked, Lost, Outbox, Refused, Sent, content_key

from rosace_sequencer import library
from rosace_sequencer.frames import (StorageError, check_free_space, check_writable, clean_partial, free_gb, load_setup, night_of,
                                     parse_frame_name, safe_obs_id)
from rosace_sequencer.hardware import Control, Hardware, Unsafe
from rosace_sequencer.journal import Journal
from rosace_sequencer.observation import Outcome, run_observation
from rosace_sequencer.options import sequencer_options
from rosace_sequencer.queue import FileQueue, Nothing, Planned, SchedulerQueue, new_observation_id, report_safely
from rosace_sequencer.roof import DomeLeaseGuard, SafetyMonitorGuard
from rosace_sequencer.telemetry import Telemetry, read_devices
from rosace_sequencer.steps import load_registry

log = logging.getLogger("rosace_sequencer")


class _LogBuffer(logging.Handler):
    """The last few hundred log lines of the sequencer, numbered, for ``GET /log``."""

    def __init__(self, size: int = 500):
        super().__init__(logging.INFO)
        self.lines: collections.deque = collections.deque(maxlen=size)
        self.seq = 0
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not break logging
            text = str(record.msg)
        with self._lock:
            self.seq += 1
            self.lines.append({"seq": self.seq, "time": now().isoformat(), "level": record.levelname, "message": text})

    def since(self, seq: int = 0, limit: int = 200) -> list[dict]:
        with self._lock:
            return [line for line in self.lines if line["seq"] > seq][-limit:]


def sun_altitude(when: datetime, site) -> float:
    """Return the Sun's altitude (degrees) at ``when`` from the site."""
    from astropy import units as u
    from astropy.coordinates import AltAz, EarthLocation, get_body
    from astropy.time import Time

    loc = EarthLocation(lat=site.latitude * u.deg, lon=site.longitude * u.deg, height=site.elevation * u.m)
    t = Time(when)
    return float(get_body("sun", t, loc).transform_to(AltAz(obstime=t, location=loc)).alt.deg)


class Sequencer:
    """The sequencer of one observatory (see the module docs for the life cycle)."""

    def __init__(self, config, *, recover: bool = True):
        self.config = config
        self.options = sequencer_options(config)
        self.raw_root = Path(config.data.raw)
        self.journal = Journal(Path(config.data.state) / "sequencer.sqlite")
        self.registry = load_registry(self.options)
        self.detector = load_setup(config.instrument.spectrograph)
        self.jobs = JobRunner()
        self.control = Control()
        self._hw: Hardware | None = None
        self._lock = threading.Lock()
        self._stop_night = threading.Event()
        self.job: Job | None = None
        self.mode = "idle"
        self.state = "idle"
        self.message = ""
        self.current: dict[str, Any] | None = None
        self.last_frame: str | None = None
        self.night_info: dict[str, Any] = {}
        self.logbuf = _LogBuffer()
        self.logbuf.setLevel(logging.INFO)
        logging.getLogger("rosace_sequencer").addHandler(self.logbuf)
        if logging.getLogger("rosace_sequencer").level == logging.NOTSET:
            logging.getLogger("rosace_sequencer").setLevel(logging.INFO)
        self._pending: list[Planned] = []
        self.alarms: dict[str, dict] = {}  # active alarms by code: what an operator must look at
        self._storage_fault: Path | None = None  # folder where a frame could not be written
        # Hand-offs to the reduction: persisted in the journal's database before they are sent,
        # sent again until the reduction's job has finished (docs/dev/contracts.md, "Hand-offs").
        self.outbox = Outbox(self.journal.path, "reduction", self._send_reduce, check=self._check_reduce, on_ack=self._handoff_acked,
                             backoff=self.options.handoff_backoff, max_backoff=self.options.handoff_max_backoff)
        if self.options.hand_to_reduction:
            self.outbox.start()  # drains what a crash left waiting
        if recover:
            self.recover()

    # ------------------------------------------------------------------ parts

    @property
    def hw(self) -> Hardware:
        if self._hw is None:
            self._hw = Hardware(self.config)
            # The guide loop publishes its slit-jaw frames and offsets here (GET /telemetry).
            self._hw.telemetry = self.telemetry
        return self._hw

    @property
    def telemetry(self) -> Telemetry:
        if getattr(self, "_telemetry", None) is None:
            self._telemetry = Telemetry()
        return self._telemetry

    def telemetry_doc(self) -> dict:
        """The live telemetry (``GET /telemetry``): slit-jaw view, guide offsets, temperatures, mount."""
        return {**self.telemetry.snapshot(), "devices": read_devices(self.hw), "time": now().isoformat()}

    def _client(self, module: str, cls):
        from rosace_core.auth import resolve_token

        return cls(self.config.module_url(module), token=resolve_token(self.config, module))

    def make_guard(self):
        """The roof guard: the dome module's lease if required, else the SafetyMonitor alone."""
        if self.options.require_dome:
            from rosace_dome.client import DomeClient

            return DomeLeaseGuard(self._client("dome", DomeClient), holder="sequencer", duration=self.options.lease_duration,
                                  safety_monitor=self.hw.safety, park=lambda: self.hw.park(timeout=self.options.slew_timeout))
        return SafetyMonitorGuard(self.hw.safety)

    def make_queue(self):
        from rosace_scheduler.client import SchedulerClient

        return SchedulerQueue(self._client("scheduler", SchedulerClient))

    # ------------------------------------------------------------------ status

    def _status(self, **fields) -> None:
        with self._lock:
            if self.current is None:
                self.current = {}
            for key, value in fields.items():
                if key == "last_frame":
                    self.last_frame = value
                elif key == "message":
                    if value is not None:
                        self.current["message"] = value
                        self.message = value
                else:
                    self.current[key] = value

    def status(self) -> dict:
        """Return the live status document (``GET /status``)."""
        with self._lock:
            current = dict(self.current) if self.current else None
        state = self.state
        if state == "running" and self.control.paused:
            state = "paused"
        return {"mode": self.mode, "state": state, "message": self.message, "observation": current,
                "last_frame": self.last_frame, "night": dict(self.night_info), "job": self.job.to_dict() if self.job else None,
                "time": now().isoformat(), "require_dome": self.options.require_dome, "paused": self.control.paused,
                "alarms": list(self.alarms.values()), "handoffs": self.outbox.counts()}

    def raise_alarm(self, code: str, message: str) -> None:
        """Raise an alarm (once per code until it clears); logged as an error."""
        with self._lock:
            known = code in self.alarms
            self.alarms[code] = {"code": code, "message": message, "raised": (self.alarms.get(code) or {}).get("raised") or now().isoformat()}
        if not known:
            log.error("ALARM %s: %s", code, message)

    def clear_alarm(self, code: str, why: str = "") -> bool:
        """Clear an active alarm; True if there was one."""
        with self._lock:
            alarm = self.alarms.pop(code, None)
        if alarm:
            log.warning("alarm %s cleared%s", code, f": {why}" if why else "")
        return alarm is not None

    def log_lines(self, since: int = 0, limit: int = 200) -> list[dict]:
        return self.logbuf.since(since, limit)

    def history(self, limit: int = 200, night: str | None = None) -> list[dict]:
        return self.journal.history(limit, night)

    # ------------------------------------------------------------------ control

    def busy(self) -> bool:
        return self.job is not None and not self.job.done

    def _start(self, mode: str, fn, params: dict) -> Job:
        with self._lock:
            if self.busy():
                raise ConflictError(f"the sequencer is busy ({self.mode})", [f"{self.mode} running: job {self.job.id if self.job else '?'}"])
            self.control = Control()
            self._stop_night.clear()
            self.mode, self.state = mode, "running"

            def wrapper(job: Job):
                try:
                    result = fn(job)
                    self.state = "finished"
                    return result
                except Exception:
                    self.state = "failed" if not self.control.aborted else "stopped"
                    raise
                finally:
                    with self._lock:
                        self.current = None
                    self.mode = "idle"

            self.job = self.jobs.submit(mode, wrapper, params)
            return self.job

    def run_file(self, of: ObservingFile, *, observation_id: str | None = None, source: str = "run") -> Job:
        """Run one Observing File now (202 job)."""
        planned = Planned(observation_id or new_observation_id(of.id), of, source)
        return self._start("single", lambda job: self._single(job, planned), {"file_id": of.id, "observation_id": planned.observation_id})

    def start_night(self, files: list[ObservingFile] | None = None) -> Job:
        """Start the robotic night (scheduler queue, or the given files in order)."""
        queue = FileQueue(files) if files else None
        return self._start("night", lambda job: self._night(job, queue), {"files": [f.id for f in files or []]})

    def stop_night(self) -> dict:
        """Stop the night after the current observation (then park, release the roof)."""
        self._stop_night.set()
        log.info("night stop requested: ending after the current observation")
        return self.status()

    def abort(self) -> dict:
        """Abort the current exposure and observation now; a night then shuts down."""
        self._stop_night.set()
        self.control.abort()
        log.warning("abort requested")
        return self.status()

    def pause(self) -> dict:
        if not self.busy():
            raise ConflictError("nothing is running", ["the sequencer is idle"])
        self.control.pause()
        log.info("paused (the current exposure finishes, nothing new starts)")
        return self.status()

    def resume(self) -> dict:
        self.control.resume()
        log.info("resumed")
        return self.status()

    def close(self) -> None:
        self.abort()
        if self.job is not None:
            self.job.wait(30)
        logging.getLogger("rosace_sequencer").removeHandler(self.logbuf)
        self.outbox.close()
        self.journal.close()

    # ------------------------------------------------------------------ work

    def _observe(self, planned: Planned, guard) -> Outcome:
        with self._lock:
            self.current = {"observation_id": planned.observation_id, "file_id": planned.file.id, "target": planned.file.target.name}
        return run_observation(planned, config=self.config, options=self.options, hw=self.hw, journal=self.journal,
                               registry=self.registry, detector=self.detector, control=self.control, guard=guard,
                               status=self._status, raw_root=self.raw_root)

    def _after(self, outcome: Outcome, queue, source: str) -> None:
        """Report the outcome, hand completed frames to the reduction, remember library needs."""
        if queue is not None and source == "scheduler":
            if report_safely(queue, outcome.report()):
                self.journal.mark_reported(outcome.observation_id)
        needs = [library.Need.from_dict(d) for d in outcome.info.get("library_needs", [])]
        if needs:
            self.night_info.setdefault("library_needs", [])
            self.night_info["library_needs"].extend(outcome.info["library_needs"])
        # An interrupted observation's science frames are reduced as what they are (flagged
        # PARTIAL), unless the night resumes it under the same id.
        partial = outcome.info.get("partial") if outcome.outcome == "interrupted" and not outcome.info.get("resumes") else None
        if (outcome.outcome == "completed" or partial) and self.options.hand_to_reduction:
            frames, unmet = self._with_library(list(outcome.frames), needs)
            self._reduce(outcome.observation_id, frames, partial=partial)
            if needs:
                # Kept in the journal: once the library session has taken what was missing,
                # the observation is handed again with it (even after a restart).
                row = self.journal.observation(outcome.observation_id) or {}
                self.journal.record_handoff(outcome.observation_id, row.get("night") or night_of(now()),
                                            [_need_dict(n) for n in needs], [_need_dict(n) for n in unmet])
                if unmet:
                    log.info("%s handed to the reduction without %s (not in the library yet): handed again once taken",
                             outcome.observation_id, ", ".join(_need_text(n) for n in unmet))

    def _with_library(self, frames: list[str], needs: list[library.Need]) -> tuple[list[str], list[library.Need]]:
        """Return the frames plus the library frames matching ``needs``, and the needs the library cannot serve."""
        out, unmet = list(frames), []
        for need in needs:
            found = library.matching(self.journal, need, tolerance=self.options.library_temperature_tolerance,
                                     max_age_days=self.options.library_max_age_days)
            if not found:
                unmet.append(need)
            out += [p for p in found if p not in out]
        return out, unmet

    def _handoff_key(self, observation_id: str, frames: list[str]) -> str:
        return content_key(observation_id, files=sorted(frames))

    def _reduce(self, observation_id: str, frames: list[str], record: dict | None = None, partial: dict | None = None) -> str | None:
        """Hand the frames of one observation to the reduction through the outbox; return the entry id.

        The hand-off is committed before it is sent, then tried at once; if the
        reduction is down it is sent again with back-off (and after a restart)
        until the reduction's job has finished. ``record`` (night, needs, unmet)
        goes to the journal's hand-off row on acknowledgement only; ``partial`` says the
        observation was interrupted (reduced as what it is, flagged). None: the
        same frames were already handed and acknowledged.
        """
        payload = {"frames": list(frames), "observation_id": observation_id, "record": record, **({"partial": partial} if partial else {})}
        # A newer hand-off of the observation (with the library's new frames) supersedes one still
        # waiting: reduced after it, the older would replace the better product.
        entry = self.outbox.put(self._handoff_key(observation_id, frames), payload, supersedes=f"{observation_id}:")
        if entry is None:
            log.info("frames of %s already handed to the reduction", observation_id)
            return None
        state = self.outbox.process(entry, wait=True)
        if state in ("pending", "failed"):
            log.warning("%s not handed to the reduction yet (%s); kept in the outbox", observation_id,
                        (self.outbox.get(entry) or {}).get("error") or state)
        return entry

    def _send_reduce(self, payload: dict):
        """The outbox's send: ``POST /reduce``; 202 is "sent", acknowledged when the job has finished."""
        from rosace_core.http import ApiError
        from rosace_reduction.client import ReductionClient

        client = self._client("reduction", ReductionClient)
        client.timeout = 5.0
        try:
            body = {"frames": payload["frames"], "observation_id": payload["observation_id"]}
            if payload.get("partial"):
                body["partial"] = payload["partial"]
            job = client.post("/reduce", body)
        except ApiError as exc:
            if 400 <= exc.status < 500 and exc.status not in (401, 403, 408, 429):
                raise Refused(str(exc)) from None  # frames gone or refused: sending again cannot help
            raise
        finally:
            client.session.close()
        log.info("frames of %s handed to the reduction (job %s)", payload["observation_id"], job.get("id"))
        return Sent(str(job["id"]))

    def _check_reduce(self, payload: dict, job_id: str):
        from rosace_core.errors import NotFoundError
        from rosace_reduction.client import ReductionClient

        client = self._client("reduction", ReductionClient)
        client.timeout = 5.0
        try:
            job = client.job(job_id)
        except NotFoundError:
            return Lost(f"the reduction no longer knows job {job_id} (restarted)")
        finally:
            client.session.close()
        if job["state"] == "succeeded":
            spectra = (job.get("result") or {}).get("spectra") or []
            return Acked({"job": job_id, "spectra": [{k: s.get(k) for k in ("observation_id", "status", "id")} for s in spectra]})
        if job["state"] == "aborted":
            return Lost(f"reduction job {job_id} aborted")
        if job["state"] == "failed":
            raise Refused(f"reduction job {job_id} failed: {job.get('error')}")
        return Sent(job_id)

    def _handoff_acked(self, payload: dict, result) -> None:
        """The reduction finished a hand-off: only now is a re-hand-off recorded as done in the journal."""
        record = payload.get("record")
        if record:
            self.journal.record_handoff(payload["observation_id"], record["night"], record["needs"], record["unmet"])
        log.info("hand-off of %s acknowledged by the reduction", payload["observation_id"])

    def _hand_again(self) -> list[str]:
        """Hand again to the reduction the observations whose missing library entries now exist.

        An observation handed off while the library lacked one of its bias/darks was
        reduced without it; once the library session has taken it, the observation's
        frames go again with every matching library frame, under the same observation
        id. The journal records the new hand-off (needs still unmet) only when the
        reduction acknowledges it; until then the outbox sends it again. Needs still
        unmet stay in the journal for the next session. Returns the observation ids
        handed again.
        """
        if not self.options.hand_to_reduction:
            return []
        since = now() - timedelta(days=self.options.library_max_age_days)
        again = []
        for row in self.journal.unmet_handoffs(since):
            oid = row["observation_id"]
            needs = [library.Need.from_dict(d) for d in row["needs"]]
            unmet = [library.Need.from_dict(d) for d in row["unmet"]]
            own = [f for f in self.journal.frames(oid) if Path(f["path"]).exists()]
            if not any(f["imagetyp"] == "LIGHT" for f in own):
                log.warning("%s: its science frames are gone; not handed to the reduction again", oid)
                self.journal.record_handoff(oid, row["night"], row["needs"], [])
                continue
            frames, still = self._with_library([f["path"] for f in own], needs)
            taken = [n for n in unmet if n not in still]
            if not taken:
                continue  # nothing new in the library for this one
            record = {"night": row["night"], "needs": row["needs"], "unmet": [_need_dict(n) for n in still]}
            state = self.outbox.state_of(self._handoff_key(oid, frames))
            if state in ("pending", "sent"):
                continue  # already on its way (the outbox sends it until acknowledged)
            if state == "acked":  # acknowledged, but the journal missed it (a crash in between)
                self._handoff_acked({"observation_id": oid, "record": record}, None)
                continue
            self._reduce(oid, frames, record)
            log.info("%s handed to the reduction again with the new library frames (%s)", oid, ", ".join(_need_text(n) for n in taken))
            again.append(oid)
        if again:
            self.night_info["handed_again"] = self.night_info.get("handed_again", 0) + len(again)
        return again

    def _single(self, job: Job, planned: Planned) -> dict:
        guard = self.make_guard()
        try:
            outcome = self._observe(planned, guard)
        finally:
            guard.release()
        queue = None
        if planned.source == "scheduler":
            try:
                queue = self.make_queue()
            except ImportError:
                queue = None
        self._after(outcome, queue, planned.source)
        if outcome.outcome != "completed":
            job.message = outcome.message
        return outcome.to_dict()

    def check_disk(self) -> float:
        """Return the free space (GB) for raw frames; StorageError below the minimum or where a write failed."""
        free = check_free_space(self.raw_root, self.options.min_free_gb, self.options.disk_quota_gb)
        check_writable(self._storage_fault or self.raw_root)
        return free

    def storage_ok(self) -> bool:
        """Check the disk before an observation: alarm while it is full or not writable, cleared once it is fixed."""
        try:
            self.check_disk()
        except StorageError as exc:
            self.raise_alarm("storage", str(exc))
            return False
        if self.clear_alarm("storage", "frames can be stored again"):
            log.info("the disk has room again: the night resumes")
        self._storage_fault = None
        return True

    def dawn(self) -> bool:
        """True once the Sun is rising above the configured altitude (morning twilight)."""
        t = now()
        alt = sun_altitude(t, self.config.site)
        if alt <= self.options.sun_dawn_altitude:
            return False
        return sun_altitude(t + timedelta(minutes=10), self.config.site) > alt

    def _night(self, job: Job, queue=None) -> dict:
        free = free_gb(self.raw_root, self.options.disk_quota_gb)
        night = night_of(now())
        night_id = self.journal.begin_night(night)
        self.night_info = {"night": night, "started": now().isoformat(), "free_gb": round(free, 1), "observations": 0,
                           "completed": 0, "failed": 0, "interrupted": 0}
        log.info("robotic night %s starts (%.1f GB free, %s)", night, free,
                 "dome module lease" if self.options.require_dome else "no dome module: safety monitor only")
        if queue is None:
            queue = self.make_queue() if self.options.use_scheduler else FileQueue([])
        guard = self.make_guard()
        state, message = "finished", ""
        try:
            while not self._stop_night.is_set():
                self.control.check()
                if isinstance(queue, SchedulerQueue) and self.dawn():
                    message = "dawn"
                    log.info("dawn: the night ends")
                    break
                if not self.storage_ok():
                    # Nothing taken now could be stored: give the roof back and wait for room.
                    self._status_idle("disk full or not writable: waiting")
                    self._park_and_release(guard)
                    self._wait(self.options.storage_retry, f"storage: {self.alarms.get('storage', {}).get('message', '')}; waiting")
                    continue
                if self._pending:
                    planned = self._pending.pop(0)
                    log.info("resuming observation %s after a restart", planned.observation_id)
                else:
                    # Ask for a target only when the roof could open: an observation handed
                    # out under clouds would only come back "interrupted" (noise in the history).
                    if not guard.sky_ok():
                        self._status_idle("unsafe or roof not allowed to open: waiting")
                        self._library_session(self.control)
                        self._wait(min(self.options.unsafe_wait, 300.0), "unsafe: waiting")
                        continue
                    try:
                        self._status_idle("asking for the next observation")
                        planned = queue.next()
                    except RosaceError as exc:
                        # No scheduler, no plan: park and give the roof back (the dome closes
                        # it) rather than track a target nobody chose, then ask again.
                        log.warning("scheduler unavailable: %s; parking and waiting", exc)
                        try:
                            self.hw.park(timeout=self.options.slew_timeout)
                        except RosaceError as park_exc:
                            log.warning("park failed: %s", park_exc)
                        guard.release()
                        self._wait(self.options.idle_wait, "scheduler unreachable: parked, waiting")
                        continue
                    if isinstance(planned, Nothing):
                        if planned.retry_at is None and not isinstance(queue, SchedulerQueue):
                            message = "no more observations"
                            break
                        wait = self.options.idle_wait
                        if planned.retry_at is not None:
                            wait = min(max(30.0, (planned.retry_at - now()).total_seconds()), 3600.0)
                        self._status_idle(f"nothing to observe: {planned.reason}")
                        self._wait(wait, f"nothing to observe ({planned.reason})")
                        continue
                try:
                    guard.acquire(self.control)
                except Unsafe as exc:
                    log.warning("cannot observe: %s", exc)
                    if planned.source == "scheduler":
                        report_safely(queue, {"observation_id": planned.observation_id, "file_id": planned.file.id,
                                              "outcome": "interrupted", "started": now().isoformat(), "ended": now().isoformat(),
                                              "frames": [], "message": str(exc)})
                    else:  # our own list: keep it for when the sky clears
                        self._pending.insert(0, planned)
                    self._library_session(self.control)
                    self._wait(self.options.unsafe_wait, "unsafe: waiting")
                    continue
                try:
                    outcome = self._observe(planned, guard)
                except StorageError as exc:
                    # The journal itself could not record the observation (its disk is full): take
                    # nothing more, keep the observation for later, wait for room (checked at the
                    # top of the loop), then go on by itself.
                    self._journal_unwritable(exc, planned, queue, guard)
                    continue
                if outcome.info.get("storage"):
                    self.raise_alarm("storage", outcome.info["storage"])
                    row = self.journal.observation(planned.observation_id) or {}
                    self._storage_fault = Path(row["folder"]) if row.get("folder") else None
                    if planned.source != "scheduler":  # our own list: resumed (same id, frames kept) once the disk has room
                        self._pending.insert(0, planned)
                        outcome.info["resumes"] = True
                self.night_info["observations"] += 1
                self.night_info[outcome.outcome] = self.night_info.get(outcome.outcome, 0) + 1
                try:
                    self._after(outcome, queue, planned.source)
                except StorageError as exc:
                    self.raise_alarm("storage", str(exc))
                    self._storage_fault = self.journal.path.parent
                    continue
                if outcome.info.get("storage"):
                    continue  # the storage check at the top of the loop waits for room
                if outcome.outcome == "interrupted" and not self.control.aborted:
                    self._wait(self.options.unsafe_wait, "interrupted: waiting for safe conditions")
                elif outcome.outcome == "failed" and not self.control.aborted:
                    # A failing device would otherwise fail every file of the queue in seconds.
                    self._wait(self.options.failure_pause, "after a failed observation: waiting before the next one")
        except Exception as exc:
            state, message = ("stopped", "aborted") if self.control.aborted else ("failed", str(exc))
            if state == "failed":
                log.error("the night failed: %s", exc)
        finally:
            self._status_idle("end of night: parking and releasing the roof")
            self._park_and_release(guard)
            if not self.control.aborted:
                self._library_session(Control())
            if self._stop_night.is_set() and state == "finished":
                state, message = "stopped", message or "stopped on request"
            try:
                self.journal.end_night(night_id, state, message)
            except StorageError as exc:  # the night's own summary is in the log and the status
                log.error("the end of the night could not be recorded: %s", exc)
            self.night_info.update({"ended": now().isoformat(), "state": state, "message": message})
            log.info("night %s %s%s", night, state, f" ({message})" if message else "")
        if state == "failed":
            raise RosaceError(f"the night failed: {message}")
        return dict(self.night_info)

    def _journal_unwritable(self, exc: StorageError, planned: Planned, queue, guard) -> None:
        """The journal failed mid-observation: alarm, park, give the roof back, keep the observation."""
        self.raise_alarm("storage", str(exc))
        self._storage_fault = self.journal.path.parent
        self._park_and_release(guard)
        if planned.source == "scheduler":
            report_safely(queue, {"observation_id": planned.observation_id, "file_id": planned.file.id, "outcome": "interrupted",
                                  "started": now().isoformat(), "ended": now().isoformat(), "frames": [], "message": f"storage: {exc}"})
        else:  # our own list: the same observation again once the journal can write
            self._pending.insert(0, planned)

    def _park_and_release(self, guard) -> None:
        """Park the mount (a failure is logged) and give the roof lease back."""
        try:
            self.hw.park(timeout=self.options.slew_timeout)
        except RosaceError as exc:
            log.warning("park failed: %s", exc)
        guard.release()

    def _status_idle(self, message: str) -> None:
        with self._lock:
            self.current = None
        self.message = message

    def _wait(self, seconds: float, message: str) -> None:
        self.message = message
        end = get_clock().wall(seconds)
        waited = 0.0
        while waited < end and not self._stop_night.is_set():
            self.control.check()
            step = min(0.5, end - waited)
            self._stop_night.wait(step)
            waited += step

    def _library_session(self, control: Control) -> None:
        """Take the bias/darks the library lacks, then hand again what was reduced without them.

        The needs are this night's and those of earlier hand-offs still unmet in the
        journal (a restart between the hand-off and the session loses nothing).
        """
        needs = [library.Need.from_dict(d) for d in self.night_info.get("library_needs", [])]
        since = now() - timedelta(days=self.options.library_max_age_days)
        for row in self.journal.unmet_handoffs(since) if self.options.hand_to_reduction else []:
            needs += [library.Need.from_dict(d) for d in row["unmet"]]
        todo = library.missing(self.journal, needs, tolerance=self.options.library_temperature_tolerance,
                               max_age_days=self.options.library_max_age_days)
        if todo:
            self.message = f"taking {len(todo)} missing bias/dark library entries"
            log.info("%s", self.message)
            written = library.take_missing(todo, hw=self.hw, journal=self.journal, config=self.config, detector=self.detector,
                                           options=self.options, control=control, raw_root=self.raw_root)
            self.night_info["library_frames"] = self.night_info.get("library_frames", 0) + len(written)
        try:
            self._hand_again()
        except Exception:  # a hand-off must never stop the night's shutdown: kept in the journal for the next session
            log.exception("handing observations to the reduction again failed")

    # ------------------------------------------------------------------ crash recovery

    def recover(self) -> dict:
        """Put the journal and the disk back in agreement after a crash; resume what can be resumed."""
        removed = clean_partial(self.raw_root)
        for path in removed:
            log.warning("removed a half-written frame left by a crash: %s", path.name)
        resumed, requeued = [], []
        for row in self.journal.unfinished():
            folder = Path(row["folder"])
            prefix = safe_obs_id(row["observation_id"]) + "_"
            for path in sorted(folder.glob(prefix + "*.fits")) if folder.exists() else []:
                parts = parse_frame_name(path.name)
                if parts and self.journal.add_frame(path, row["observation_id"], parts["imagetyp"], step_index=parts["step"], number=parts["number"]):
                    log.info("registered %s, written before the crash", path.name)
            age = (now() - datetime.fromisoformat(row["started"])).total_seconds()
            try:
                of = ObservingFile.model_validate(json.loads(row["file_json"]))
            except (ValueError, TypeError):
                of = None
            if self.options.resume_after_crash and of is not None and age < self.options.resume_max_age:
                self._pending.append(Planned(row["observation_id"], of, row["source"]))
                resumed.append(row["observation_id"])
            else:
                self.journal.finish_observation(row["observation_id"], "interrupted", "the sequencer stopped during the observation")
                requeued.append(row["observation_id"])
                if row["source"] == "scheduler":
                    try:
                        frames = [f["path"] for f in self.journal.frames(row["observation_id"])]
                        if report_safely(self.make_queue(), {"observation_id": row["observation_id"], "file_id": row["file_id"],
                                                             "outcome": "interrupted", "started": row["started"], "ended": now().isoformat(),
                                                             "frames": frames, "message": "sequencer restarted"}):
                            self.journal.mark_reported(row["observation_id"])
                    except ImportError:
                        pass
        night = self.journal.running_night()
        summary: dict[str, Any] = {"removed_partial": [str(p) for p in removed], "resumed": resumed, "requeued": requeued, "night": None}
        if night is not None:
            self.journal.end_night(night["id"], "failed", "the sequencer stopped during the night")
            if self.options.resume_after_crash:
                log.warning("the sequencer stopped during night %s: restarting the robotic night", night["night"])
                self.start_night()
                summary["night"] = "restarted"
        if resumed and not self.busy():
            planned = self._pending.pop(0)
            log.warning("resuming observation %s interrupted by a crash", planned.observation_id)
            self._start("single", lambda job: self._single(job, planned), {"observation_id": planned.observation_id, "resumed": True})
        if resumed or requeued or removed:
            log.info("crash recovery: %s", summary)
        return summary

    # ------------------------------------------------------------------ quick look

    def last_frame_preview(self, max_size: int = 400) -> dict:
        """Return the last frame, binned down to ``max_size`` pixels, and its profile along the dispersion."""
        path = self.last_frame
        if not path:
            frames = self.journal.history(1)
            path = frames[0]["frames"][-1] if frames and frames[0]["frames"] else None
        if not path or not Path(path).exists():
            raise NotFoundError("no frame yet")
        return frame_preview(Path(path), max_size)


def _need_dict(need: library.Need) -> dict:
    return {"kind": need.kind, "exptime": need.exptime, "temperature": need.temperature, "binning": list(need.binning)}


def _need_text(need: library.Need) -> str:
    b = f"{need.binning[0]}x{need.binning[1]}"
    if need.kind == "BIAS":
        return f"bias {b} at {need.temperature:g} C"
    return f"{need.exptime:g} s dark {b} at {need.temperature:g} C"


def frame_preview(path: Path, max_size: int = 400) -> dict:
    """Return a small version of a frame (list of rows) and its spectrum profile along the columns."""
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        data = np.asarray(hdul[0].data, dtype=np.float32)
        header = hdul[0].header
    rows, cols = data.shape
    f = max(1, int(np.ceil(max(rows, cols) / max_size)))
    small = data[: rows - rows % f or rows, : cols - cols % f or cols]
    small = small.reshape(small.shape[0] // f, f, small.shape[1] // f, f).mean(axis=(1, 3)) if f > 1 else small
    # The profile: the brightest rows (the trace) averaged, less a background. A lamp fills the
    # whole slit, so the column median there is the lamp itself (subtracting it sent arc profiles
    # to -20000 ADU): calibration frames lose the frame's dark level only; a star loses the sky
    # beside its trace.
    from scipy.ndimage import uniform_filter1d

    row_level = uniform_filter1d(np.median(data, axis=1), 9)
    trace = int(np.argmax(row_level))
    lo, hi = max(0, trace - 5), min(rows, trace + 6)
    kind = str(header.get("IMAGETYP", "")).lower()
    background: np.ndarray | np.float32
    if any(word in kind for word in ("arc", "lamp", "comp", "flat")):
        background = np.float32(np.percentile(data, 1.0))
    else:
        sky = np.r_[max(0, trace - 40):max(0, trace - 15), min(rows, trace + 16):min(rows, trace + 41)]
        background = np.median(data[sky], axis=0) if sky.size else np.float32(np.percentile(data, 1.0))
    profile = data[lo:hi].mean(axis=0) - background
    return {"path": str(path), "name": path.name, "imagetyp": header.get("IMAGETYP"), "object": header.get("OBJECT"),
            "exptime": header.get("EXPTIME"), "date_obs": header.get("DATE-OBS"), "shape": [rows, cols], "binning": f,
            "image": np.round(small, 1).tolist(), "profile": np.round(profile, 2).tolist(), "trace_row": trace}
