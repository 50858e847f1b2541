"""A night (or any folder) of raw frames: group them by observation, choose
calibrations, reduce everything on several processes, idempotently.

Reference-star observations are reduced first (their instrument response is
needed by the others) and their responses entered in the night's index
(:mod:`rosace_reduction.responses`); each science observation then uses the
nearest response (time, airmass) of the same set-up and night, whether its
reference star was reduced in this batch or in an earlier one. Science
observations of the night reduced earlier without a response are reduced
again once one exists (idempotently: same inputs, nothing redone). A file that is not a usable
frame is reported and skipped. Worker processes use the ``spawn`` start
method so the batch behaves the same on Windows and Linux.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import traceback
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel, ConfigDict, Field

from rosace_core.config import module_options
from rosace_core.errors import RosaceError
from rosace_reduction import responses
from rosace_reduction.frames import FrameInfo, read_frame_info, scan_folder
from rosace_reduction.instrument import load_instrument
from rosace_reduction.pipeline import Options, Plan, _night, reduce_observation
from rosace_reduction.stages import StageSpec

log = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]


@dataclass
class Outcome:
    """What happened to one observation of a batch."""

    observation_id: str
    object: str
    status: str  # reduced | skipped | failed
    message: str = ""
    record: dict | None = None
    #: Reduced again in this batch because a reference star's response now exists for its night.
    rereduced: bool = False


@dataclass
class BatchReport:
    """Summary of a batch: outcomes per observation and files that were not frames."""

    outcomes: list[Outcome] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def counts(self) -> dict:
        c: dict = defaultdict(int)
        for o in self.outcomes:
            c[o.status] += 1
        return dict(c)

    def to_dict(self) -> dict:
        return {
            "counts": self.counts,
            "outcomes": [asdict(o) for o in self.outcomes],
            "bad_files": [{"path": p, "reason": r} for p, r in self.bad_files],
        }


def _group_key(f: FrameInfo) -> str:
    return f.observation_id or f"{f.object}|{f.instrument}|{round(f.jd * 24)}"


def _read_out(f: FrameInfo) -> tuple:
    """How a frame was read out: calibrations must match the science frame's binning, size and subframe."""
    return (tuple(f.binning), tuple(f.shape), tuple(f.origin))


def _nearest_group(frames: list[FrameInfo], kind: str, instrument: str, jd: float, obs_key: str, read_out: tuple | None = None) -> list[FrameInfo]:
    cands = [f for f in frames if f.kind == kind and f.instrument == instrument and (read_out is None or _read_out(f) == read_out)]
    same = [f for f in cands if _group_key(f) == obs_key]
    if same:
        return same
    if not cands:
        return []
    groups: dict[str, list[FrameInfo]] = defaultdict(list)
    for f in cands:
        groups[_group_key(f)].append(f)
    best = min(groups.values(), key=lambda g: min(abs(f.jd - jd) for f in g))
    return best


def plan_folder(frames: list[FrameInfo]) -> list[tuple[Plan, bool, FrameInfo]]:
    """Group LIGHT frames by observation and attach calibrations; return (plan, is_reference, first frame)."""
    lights: dict[str, list[FrameInfo]] = defaultdict(list)
    for f in frames:
        if f.kind == "LIGHT":
            lights[_group_key(f)].append(f)
    plans = []
    for key, group in lights.items():
        group.sort(key=lambda f: f.jd)
        first = group[0]
        pick = lambda kind: [str(f.path) for f in _nearest_group(frames, kind, first.instrument, first.jd, key, _read_out(first))]
        plan = Plan(science=[str(f.path) for f in group], arc=pick("ARC"), flat=pick("FLAT"), bias=pick("BIAS"), dark=pick("DARK"), observation_id=first.observation_id or key)
        plans.append((plan, any(f.reference for f in group), first))
    plans.sort(key=lambda p: p[2].jd)
    return plans


def _record_index(options: Options) -> dict[tuple[str, str], dict]:
    """Quality records already under the output root, by (observation id, inputs hash); read once per batch."""
    root = Path(options.output_root)
    index: dict[tuple[str, str], dict] = {}
    if not root.exists():
        return index
    for path in root.rglob("*.json"):
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "observation_id" in rec and "inputs_hash" in rec:
            index[(str(rec["observation_id"]), str(rec["inputs_hash"]))] = rec
    return index


def existing_record(options: Options, plan: Plan, index: dict | None = None) -> dict | None:
    """The quality record of a previous identical reduction (same inputs), if any."""
    index = _record_index(options) if index is None else index
    rec = index.get((plan.observation_id, plan.inputs_hash()))
    if rec is not None and Path(rec.get("products", {}).get("fits", "")).exists():
        return rec
    return None


def _work(plan: Plan, options: Options) -> tuple[str, dict | str]:
    """Worker entry point (top-level so that spawn can pickle it): never raises."""
    from rosace_core.astro import configure_offline

    configure_offline()
    try:
        return "reduced", reduce_observation(plan, options)
    except RosaceError as exc:
        return "failed", str(exc)
    except Exception as exc:  # a bug: the message goes to the report, the trace to the log
        log.error("reduction of %s crashed:\n%s", plan.observation_id, traceback.format_exc())
        return "failed", f"internal error: {exc.__class__.__name__}: {exc}"


def _setup_name(first: FrameInfo, options: Options) -> str:
    """The set-up name the quality records carry (INSTRUME may be a path or differ in case)."""
    try:
        return load_instrument(first.instrument, tuple(options.instrument_search)).name
    except RosaceError:
        return first.instrument  # the reduction itself reports the unknown set-up


def _nearest_response(options: Options, first: FrameInfo) -> str | None:
    """The response file of the nearest reference star (time, airmass) of the same set-up and night."""
    entry = responses.nearest(options.output_root, _night(first.date_obs), _setup_name(first, options), first.jd, first.airmass)
    return entry["file"] if entry else None


def _plan_from_record(rec: dict) -> tuple[Plan | None, str]:
    """The plan that reduced a quality record (its raw frames and calibrations); (None, reason) when a file is gone."""
    cal = rec.get("calibrations") or {}
    plan = Plan(science=list(rec.get("raw_frames") or []), arc=list(cal.get("arc") or []), flat=list(cal.get("flat") or []),
                bias=list(cal.get("bias") or []), dark=list(cal.get("dark") or []), observation_id=str(rec.get("observation_id", "")),
                partial=rec.get("partial"))
    if not plan.science:
        return None, "its record lists no raw frame"
    for group in (plan.science, plan.arc, plan.flat, plan.bias, plan.dark):
        for path in group:
            if not Path(path).exists():
                return None, f"{Path(path).name} is no longer on disk"
    return plan, ""


def reduce_paths(paths: list[Path], options: Options, *, force: bool = False, workers: int = 1, progress: Progress | None = None,
                 abort: Callable[[], bool] | None = None, partial: dict[str, dict] | None = None) -> BatchReport:
    """Reduce the observations found in ``paths`` (files or folders).

    ``partial`` maps the observation ids of interrupted observations to what the
    sequencer said about them (reason, planned frames): they are reduced from the
    frames they have and flagged PARTIAL in their quality record and FITS header.
    """
    frames: list[FrameInfo] = []
    report = BatchReport()
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found, bad = scan_folder(p, options.instrument)
            frames += found
            report.bad_files += [(str(b), r) for b, r in bad]
        else:
            try:
                frames.append(read_frame_info(p, options.instrument))
            except RosaceError as exc:
                report.bad_files.append((str(p), str(exc)))
    plans = plan_folder(frames)
    for plan, _, _ in plans:
        plan.partial = (partial or {}).get(plan.observation_id)
    total = len(plans)
    done = 0
    progress = progress or (lambda d, t, m: None)
    progress(0, total, f"{total} observations")
    # One scan of the output folder, not one per observation (an archive holds thousands).
    index = {} if force else _record_index(options)

    def run_phase(items: list[tuple[Plan, bool, FrameInfo]]) -> None:
        nonlocal done
        todo = []
        for plan, is_ref, first in items:
            if not is_ref:
                plan.response = _nearest_response(options, first)
            rec = None if force else existing_record(options, plan, index)
            if rec is not None:
                report.outcomes.append(Outcome(plan.observation_id, first.object, "skipped", "already reduced with the same inputs", rec))
                if is_ref:
                    responses.register(options.output_root, rec)
                done += 1
                progress(done, total, f"{first.object}: up to date")
            else:
                todo.append((plan, is_ref, first))
        if not todo:
            return
        if workers <= 1 or len(todo) == 1:
            results = ((item, _work(item[0], options)) for item in todo)
            for (plan, is_ref, first), (status, value) in results:
                _record(plan, is_ref, first, status, value)
                if abort and abort():
                    break
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {pool.submit(_work, item[0], options): item for item in todo}
            for fut in as_completed(futures):
                plan, is_ref, first = futures[fut]
                status, value = fut.result()
                _record(plan, is_ref, first, status, value)
                if abort and abort():
                    for f in futures:
                        f.cancel()
                    break

    def _record(plan, is_ref, first, status, value) -> None:
        nonlocal done
        done += 1
        if status == "reduced":
            report.outcomes.append(Outcome(plan.observation_id, first.object, "reduced", "", value))
            if is_ref:
                responses.register(options.output_root, value)
            progress(done, total, f"{first.object}: reduced")
        else:
            report.outcomes.append(Outcome(plan.observation_id, first.object, "failed", str(value)))
            progress(done, total, f"{first.object}: failed")

    run_phase([p for p in plans if p[1]])
    run_phase([p for p in plans if not p[1]])
    if not (abort and abort()):
        _reduce_again(plans, options, report, progress, abort)
    return report


def _reduce_again(plans: list[tuple[Plan, bool, FrameInfo]], options: Options, report: BatchReport, progress: Progress,
                  abort: Callable[[], bool] | None) -> None:
    """Reduce again, with the night's nearest response, the science observations of the nights and set-ups of
    this batch that an earlier batch reduced without one (a robotic night hands the reference star over after
    them). Idempotent: an observation whose record already has the same inputs (same response) is left alone.
    """
    this_batch = {plan.observation_id for plan, _, _ in plans}
    nights = sorted({(_night(first.date_obs), _setup_name(first, options)) for _, _, first in plans})
    for night, setup in nights:
        if not any(e["instrument"] == setup for e in responses.load_index(options.output_root, night)):
            continue
        for rec in responses.science_without_response(options.output_root, night, setup):
            oid = str(rec["observation_id"])
            if oid in this_batch:
                continue
            if abort and abort():
                return
            plan, why = _plan_from_record(rec)
            obj = str(rec.get("object", ""))
            if plan is None:
                log.warning("%s (%s) not reduced again with the night's response: %s", oid, obj, why)
                report.outcomes.append(Outcome(oid, obj, "skipped", f"not reduced again with the night's response: {why}", rereduced=True))
                continue
            entry = responses.nearest(options.output_root, night, setup, float(rec.get("jd_mid", 0.0)), rec.get("airmass"))
            if entry is None:
                continue
            plan.response = entry["file"]
            if rec.get("inputs_hash") == plan.inputs_hash():
                continue  # already reduced with this response (it did not cover the spectrum): nothing new
            status, value = _work(plan, options)
            if status == "reduced" and isinstance(value, dict):
                msg = f"reduced again with the response of reference star {entry['star']} ({entry['observation_id']})"
                log.info("%s (%s) %s", oid, obj, msg)
                report.outcomes.append(Outcome(oid, obj, "reduced", msg, value, rereduced=True))
            else:
                report.outcomes.append(Outcome(oid, obj, "failed", f"reducing again with the night's response: {value}", rereduced=True))
            progress(len(plans), len(plans), f"{obj}: reduced again with the night's response")


class ReductionOptions(BaseModel):
    """The ``[reduction]`` table (docs/reduction.md); a misspelt key is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")

    output: Path | None = Field(None, description="output root (default <data root>/reduced)")
    extinction: str = Field("orm", min_length=1, description="curve name in resources/extinction or a CSV path")
    reference_dir: Path | None = Field(None, description="extra folder of reference spectra")
    barycentric: bool = True
    telluric: bool = True
    cosmic_rays: bool | None = Field(None, description="override of the set-up recipe")
    extraction: str | None = Field(None, pattern="^(optimal|boxcar)$", description="override of the set-up recipe")
    normalise: bool | None = Field(None, description="override of the set-up recipe")
    share_url: str | None = Field(None, pattern=r"^https?://", description="upload each new spectrum to this share module")
    share_token: str | None = None
    workers: int = Field(1, ge=1, le=64, description="worker processes for REST jobs")
    upload_backoff: float = Field(2.0, gt=0, description="wall seconds before a failed upload to share is tried again; doubles each time")
    upload_max_backoff: float = Field(30.0, gt=0, description="longest wait between two tries of an upload to share, wall seconds")
    instruments_dir: Path | None = Field(None, description="a folder of the user's own instrument set-ups")
    data_roots: list[Path] = Field(default_factory=list, description="folders besides the data root whose frames REST clients may reduce")
    stages: list[StageSpec] = Field(default_factory=list, description="the user's reduction stages: {use, before|after|replace}")


def options_from_config(config) -> Options:
    """Reduction options from the observatory configuration (``[reduction]`` table and site).

    Raises ConfigError naming the key (``reduction.telluric``) when the table is invalid.
    """
    red = module_options(config, "reduction", ReductionOptions).model_dump(exclude_none=True)
    site = config.site
    # The mounted set-up when it is the user's own file, and their folder of set-ups:
    # the sequencer writes only the set-up's name in INSTRUME.
    search = []
    spectrograph = str(getattr(getattr(config, "instrument", None), "spectrograph", "") or "")
    source = getattr(config, "source", None)

    def located(entry: str) -> str:
        # A relative path is taken from the working folder, else from the configuration file's folder.
        path = Path(entry).expanduser()
        if not path.is_absolute() and not path.exists() and source is not None and (Path(source).parent / path).exists():
            path = Path(source).parent / path
        return str(path)

    if spectrograph.lower().endswith(".toml"):
        search.append(located(spectrograph))
    if red.get("instruments_dir"):
        search.append(located(str(red["instruments_dir"])))
    stages = []
    for spec in red.get("stages", []):
        # A stage in a user's file ("my_stages.py:Class"): the file is found like the other paths.
        file, sep, attr = spec["use"].rpartition(":")
        if sep and file.lower().endswith(".py"):
            spec = {**spec, "use": f"{located(file)}:{attr}"}
        stages.append(spec)
    return Options(
        output_root=str(Path(red["output"]) if red.get("output") else config.data.reduced),
        site_name=site.name,
        latitude=site.latitude,
        longitude=site.longitude,
        elevation=site.elevation,
        extinction=str(red.get("extinction", "orm")),
        reference_dirs=[str(red["reference_dir"])] if red.get("reference_dir") else [],
        barycentric=red["barycentric"],
        telluric=red["telluric"],
        cosmic_rays=red.get("cosmic_rays"),
        extraction=red.get("extraction"),
        normalise=red.get("normalise"),
        instrument_search=search,
        stages=stages,
        # Only a [site] the user wrote stands in for a frame that does not say where it was taken.
        site_configured="latitude" in getattr(site, "model_fields_set", set()),
    )
