"""REST API of the scheduler module (``/api/v1/scheduler``, contract in docs/dev/contracts.md)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from flask import current_app
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from werkzeug.exceptions import RequestEntityTooLarge

from rosace_core.observing_file import ObservingFileError
from rosace_core.rest import Api, ProblemError, create_module_app, problem

from rosace_scheduler.limits import FileTooLarge, QueueFull, check_file_size
from rosace_scheduler.scheduler import Scheduler

#: Years the scheduler answers for (earth orientation and ephemerides beyond them are meaningless).
FIRST_YEAR, LAST_YEAR = 1950, 2150


def _in_years(value: date | None) -> date | None:
    # 0001-01-01 or 9999-12-31 overflowed inside astropy (HTTP 500) before this check.
    if value is not None and not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"must be between {FIRST_YEAR} and {LAST_YEAR} (the span the sky tables cover)")
    return value


SkyTime = Annotated[datetime | None, AfterValidator(_in_years)]
SkyDate = Annotated[date | None, AfterValidator(_in_years)]

api = Api("scheduler", "Scheduler", "What to observe next, from Observing Files and the night's constraints")


class FileBody(BaseModel):
    """An Observing File as text."""

    content: str = Field(description="the file's text (YAML or JSON)")
    format: Literal["yaml", "json"] | None = Field(None, description="default: guessed from filename, else YAML")
    filename: str | None = None


class Pointing(BaseModel):
    """Where the mount points (ICRS degrees)."""

    ra: float = Field(ge=0, lt=360)
    dec: float = Field(ge=-90, le=90)


class Conditions(BaseModel):
    """Current conditions as the sequencer sees them."""

    model_config = ConfigDict(extra="allow")
    safe: bool | None = None


class NextBody(BaseModel):
    """What the sequencer knows when it asks for the next observation."""

    time: SkyTime = Field(None, description="default: the observatory clock's now")
    pointing: Pointing | None = None
    conditions: Conditions | None = None


class OutcomeBody(BaseModel):
    """What happened to a dispatched observation."""

    observation_id: str = Field(min_length=1, max_length=120)
    file_id: str = Field(min_length=1, max_length=80)
    outcome: Literal["completed", "failed", "interrupted"]
    started: datetime | None = None
    ended: datetime | None = None
    frames: list[str] = Field(default_factory=list)
    message: str | None = None


class PlanQuery(BaseModel):
    """Which night (date of the evening, local), and whether to add altitude curves."""

    night: SkyDate = None
    curves: bool = False


class TimeQuery(BaseModel):
    time: SkyTime = None


QUEUE_STATES = Literal["observable", "in_progress", "not_due", "done_tonight", "not_tonight", "held", "completed", "expired", "wrong_instrument", "unsupported"]


class QueueQuery(BaseModel):
    """The instant of the states, and the page of the queue wanted (files in the order they were added)."""

    time: SkyTime = Field(None, description="default: the observatory clock's now")
    limit: int = Field(500, ge=1, le=10000, description="files per page")
    offset: int = Field(0, ge=0, description="files to skip (the previous answer's next_offset)")
    state: QUEUE_STATES | None = Field(None, description="only the files in this state")


class HistoryQuery(BaseModel):
    file_id: str | None = None
    limit: int = Field(500, ge=1, le=10000)


class ReferenceQuery(BaseModel):
    """Reference star wanted: set-up, instant and airmass to match."""

    spectrograph: str | None = None
    time: SkyTime = None
    airmass: float | None = Field(None, ge=1, le=10)
    ra: float | None = Field(None, ge=0, lt=360)
    dec: float | None = Field(None, ge=-90, le=90)
    count: int = Field(3, ge=1, le=20)


def scheduler() -> Scheduler:
    """Return the app's Scheduler."""
    return current_app.extensions["rosace_scheduler"]


def _fmt(body: FileBody) -> str | None:
    if body.format:
        return body.format
    if body.filename and body.filename.lower().endswith(".json"):
        return "json"
    return None


def _errors(exc: ObservingFileError) -> list[dict]:
    return [{**p.to_dict(), "field": p.path} for p in exc.problems]


@api.route("/files", methods=("POST",), body=FileBody, status=201, summary="Submit an Observing File to the queue")
def submit_file(body: FileBody):
    try:
        of = scheduler().submit(body.content, _fmt(body), body.filename)
    except FileTooLarge as exc:
        raise ProblemError(413, "Observing File too large", str(exc.problems[0].message), _errors(exc), valid=False,
                           limit=scheduler().options.max_file_bytes) from None
    except QueueFull as exc:
        raise ProblemError(422, "Queue full", str(exc.problems[0].message), _errors(exc), valid=False,
                           limit=scheduler().options.max_queue_files) from None
    except ObservingFileError as exc:
        raise ProblemError(422, "Invalid Observing File", f"{len(exc.problems)} problem(s) in {body.filename or 'the file'}", _errors(exc), valid=False) from None
    return {"id": of.id, "valid": True}


@api.route("/validate", methods=("POST",), body=FileBody, summary="Validate an Observing File without queueing it")
def validate_file(body: FileBody):
    try:
        check_file_size(len(body.content.encode("utf-8")), body.filename or "<submitted>", scheduler().options)
        of = scheduler().parse(body.content, _fmt(body), body.filename)
    except ObservingFileError as exc:
        return {"valid": False, "errors": _errors(exc)}
    return {"valid": True, "errors": [], "id": of.id}


@api.route("/queue", query=QueueQuery, summary="The queue, a page at a time (limit, offset; total, next_offset, counts per state), and rejected files")
def get_queue(query: QueueQuery):
    return scheduler().queue(query.time, limit=query.limit, offset=query.offset, state=query.state)


@api.route("/files/<file_id>", summary="One queued Observing File")
def get_file(file_id: str):
    qf = scheduler().get_file(file_id)
    return {"id": file_id, "source": qf.source, "filename": qf.filename, "content_hash": qf.content_hash, "duration": qf.request.duration, "file": qf.of.to_dict()}


@api.route("/files/<file_id>", methods=("DELETE",), summary="Remove a file from the queue (history kept)")
def delete_file(file_id: str):
    scheduler().remove(file_id)
    return {"id": file_id, "removed": True}


@api.route("/next", methods=("POST",), body=NextBody, summary="The best observation to start now, or why none and when to retry")
def next_observation(body: NextBody):
    return scheduler().next(
        body.time,
        body.pointing.model_dump() if body.pointing else None,
        body.conditions.model_dump() if body.conditions else None,
    )


@api.route("/outcomes", methods=("POST",), body=OutcomeBody, status=201, summary="Record the outcome of an observation")
def record_outcome(body: OutcomeBody):
    return scheduler().record_outcome(body.observation_id, body.file_id, body.outcome, body.started, body.ended, body.frames, body.message)


@api.route("/plan", query=PlanQuery, summary="The night's plan (tonight from now)")
def get_plan(query: PlanQuery):
    return scheduler().plan(query.night, curves=query.curves)


@api.route("/explain/<file_id>", query=TimeQuery, summary="Why a file is or is not scheduled tonight")
def explain(file_id: str, query: TimeQuery):
    return scheduler().explain(file_id, query.time)


@api.route("/history", query=HistoryQuery, summary="Observations dispatched and their outcomes, newest first")
def history(query: HistoryQuery):
    return scheduler().history(query.file_id, query.limit)


@api.route("/reference", query=ReferenceQuery, summary="Reference stars for the instrument response, close in airmass")
def reference(query: ReferenceQuery):
    near = (query.ra, query.dec) if query.ra is not None and query.dec is not None else None
    stars = scheduler().reference(t=query.time, airmass=query.airmass, spectrograph=query.spectrograph, near=near, count=query.count)
    return {"stars": stars, "best": stars[0] if stars else None}


@api.route("/rules", summary="The user rules in use (constraints and scoring rules), with their options and any run-time error")
def rules():
    return {"rules": scheduler().rules.describe()}


@api.route("/rescan", methods=("POST",), summary="Scan the queue folder now")
def rescan():
    return scheduler().scan_folder()


def create_app(config=None, *, token=None, scheduler_instance: Scheduler | None = None, watch: bool = True):
    """Build the scheduler module's Flask app (one Scheduler per app; the folder watcher starts with it).

    ``config``: see :func:`rosace_core.config.app_config` (None: the user's configuration).
    """
    from rosace_core.config import app_config

    config = app_config(config) if scheduler_instance is None else (config if config is not None else scheduler_instance.config)
    app = create_module_app(api, config=config, token=token)
    sched = scheduler_instance or Scheduler(config)
    app.extensions["rosace_scheduler"] = sched
    limit = sched.options.max_file_bytes
    # A body is refused from its Content-Length before it is read (a JSON string may
    # escape every character of the file: room for twice its size).
    app.config["MAX_CONTENT_LENGTH"] = 2 * limit + 65536

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc):
        return problem(413, "Observing File too large", f"the request is larger than {app.config['MAX_CONTENT_LENGTH']:,} bytes; "
                       f"an Observing File may be at most {limit:,} bytes ([scheduler] max_file_bytes)", limit=limit)

    if watch:
        sched.start_watching()
    return app
