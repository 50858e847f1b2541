"""Run one observation: its sequence of steps, journaled, with a clean outcome.

Outcomes follow the scheduler contract: ``completed``, ``failed`` (a device
kept failing after retries, the star was not found...: the night goes on) or
``interrupted`` (unsafe, aborted, dawn, disk full, crash: handed back to the
scheduler). An interrupted observation says in ``info["storage"]`` that the
frames could not be stored (the night then waits for the disk), and in
``info["partial"]`` that science frames were taken before it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from rosace_core.clock import now
from rosace_core.errors import Aborted, RosaceError

from rosace_sequencer.frames import StorageError, frame_folder, night_of
from rosace_sequencer.hardware import Unsafe
from rosace_sequencer.queue import Planned
from rosace_sequencer.steps import ObservationContext

log = logging.getLogger("rosace_sequencer.observation")


@dataclass
class Outcome:
    """How one observation ended (the document posted to the scheduler's /outcomes)."""

    observation_id: str
    file_id: str
    outcome: str
    started: str
    ended: str
    frames: list[str] = field(default_factory=list)
    message: str = ""
    durations: dict[str, float] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def report(self) -> dict:
        """Return the scheduler's outcome document."""
        return {"observation_id": self.observation_id, "file_id": self.file_id, "outcome": self.outcome,
                "started": self.started, "ended": self.ended, "frames": self.frames, "message": self.message}

    def to_dict(self) -> dict:
        return {**self.report(), "durations": self.durations, "info": self.info}


def run_observation(planned: Planned, *, config, options, hw, journal, registry, detector, control, guard,
                    status=lambda **kw: None, raw_root: Path | None = None) -> Outcome:
    """Run ``planned`` from its first step; frames already on disk (after a crash) are kept and skipped."""
    of = planned.file
    started = now()
    existing = journal.observation(planned.observation_id)
    night = existing["night"] if existing else night_of(started)
    raw_root = Path(raw_root) if raw_root else config.data.raw
    folder = Path(existing["folder"]) if existing else frame_folder(raw_root, night, of.target.name)
    file_hash = of.content_hash()
    journal.begin_observation(planned.observation_id, of.to_dict(), file_id=of.id, file_hash=file_hash, target=of.target.name,
                              night=night, folder=folder, source=planned.source)
    ctx = ObservationContext(file=of, observation_id=planned.observation_id, file_hash=file_hash, folder=folder, night=night,
                             config=config, options=options, hw=hw, control=control, guard=guard, journal=journal,
                             detector=detector, reference=planned.reference or _is_reference(of), status=status,
                             raw_root=raw_root)
    outcome, message = "completed", ""
    try:
        steps = registry.sequence_for(of)
        ctx.steps = steps
        ctx._total_seconds = max(1.0, sum(_estimate(s, ctx) for s in steps))
        status(observation_id=planned.observation_id, file_id=of.id, target=of.target.name, steps=[s.name for s in steps],
               fraction=0.0, time_left=ctx._total_seconds, started=started.isoformat(), message="starting")
        log.info("observation %s of %s (%s) starts: %s", planned.observation_id, of.target.name, of.id, ", ".join(s.name for s in steps))
        for index, step in enumerate(steps, 1):
            ctx.check()
            ctx.step_index = index
            journal.set_step(planned.observation_id, step.name, index)
            status(step=step.name, step_index=index, frame=None, message=step.name)
            t0 = time.monotonic()
            before = ctx._done_seconds
            step.run(ctx)
            ctx.flush()
            ctx.durations[step.name] = round(ctx.durations.get(step.name, 0.0) + time.monotonic() - t0, 3)
            # steps without frames advance the progress by their estimate once done
            if ctx._done_seconds == before:
                ctx.advance(_estimate(step, ctx))
    except StorageError as exc:
        outcome, message = "interrupted", f"storage: {exc}"
        ctx.info["storage"] = str(exc)
    except Unsafe as exc:
        outcome, message = "interrupted", f"unsafe: {exc}"
    except Aborted as exc:
        outcome, message = "interrupted", f"aborted: {exc}"
    except RosaceError as exc:
        outcome, message = "failed", str(exc)
    except Exception as exc:  # a bug in a step (maybe a user's): the night goes on
        log.exception("observation %s: unexpected error", planned.observation_id)
        outcome, message = "failed", f"internal error in step {ctx.steps[ctx.step_index - 1].name if ctx.steps and ctx.step_index else '?'}: {exc!r}"
    finally:
        try:
            ctx.close()
        except StorageError as exc:
            ctx.info.setdefault("storage", str(exc))
            if outcome == "completed":
                outcome, message = "interrupted", f"storage: {exc}"
        except RosaceError as exc:
            if outcome == "completed":
                outcome, message = "failed", str(exc)
        try:
            hw.set_lamp(None)
        except Exception:  # lamps are best effort here; the next observation switches them again
            pass
    ended = now()
    frame_rows = journal.frames(planned.observation_id)
    frames = [f["path"] for f in frame_rows]
    lights = sum(1 for f in frame_rows if f["imagetyp"] == "LIGHT")
    if outcome == "interrupted" and lights:
        ctx.info["partial"] = {"reason": message, "science_frames": lights, "planned_frames": _planned_science(of)}
    journal.finish_observation(planned.observation_id, outcome, message)
    level = logging.INFO if outcome == "completed" else logging.WARNING
    log.log(level, "observation %s %s%s (%d frame(s))", planned.observation_id, outcome, f": {message}" if message else "", len(frames))
    return Outcome(planned.observation_id, of.id, outcome, started.isoformat(), ended.isoformat(), frames, message,
                   dict(ctx.durations), dict(ctx.info))


def _planned_science(of) -> int | None:
    try:
        return int(of.sequence.science.count)
    except (AttributeError, TypeError, ValueError):
        return None


def _estimate(step, ctx) -> float:
    try:
        return float(step.estimate(ctx))
    except Exception:  # an estimate is only for the progress bar
        return 0.0


def _is_reference(of) -> bool:
    """A reference-star file: no reference of its own and a calibration programme."""
    prog = (of.programme.name if of.programme else "").lower()
    return of.sequence.reference_star.mode == "none" and "calibration" in prog
