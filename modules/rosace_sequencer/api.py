"""REST API of the sequencer module (``/api/v1/sequencer``)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from pydantic import BaseModel, Field, model_validator

from rosace_core.config import app_config
from rosace_core.observing_file import ObservingFile, ObservingFileError, parse_observing_file
from rosace_core.rest import Api, ProblemError, create_module_app

api = Api("sequencer", "Sequencer", "Runs observations on the Alpaca hardware")


class RunRequest(BaseModel):
    """Run one Observing File now: an id known to the scheduler, or the file itself (dict or YAML/JSON text)."""

    file_id: str | None = None
    file: dict[str, Any] | str | None = None
    observation_id: str | None = Field(None, description="observation id to use (default: a new one)")

    @model_validator(mode="after")
    def _one(self):
        if (self.file_id is None) == (self.file is None):
            raise ValueError("give exactly one of 'file_id' or 'file'")
        return self


class NightRequest(BaseModel):
    """Start the robotic night; ``files`` (optional) replaces the scheduler by a fixed list."""

    files: list[dict[str, Any] | str] = Field(default_factory=list)


class LogQuery(BaseModel):
    since: int = Field(0, ge=0, description="return lines after this sequence number")
    limit: int = Field(200, ge=1, le=1000)


class HistoryQuery(BaseModel):
    night: str | None = Field(None, pattern=r"^\d{8}$", description="YYYYMMDD")
    limit: int = Field(200, ge=1, le=2000)


class PreviewQuery(BaseModel):
    max_size: int = Field(400, ge=16, le=2000)


def _seq():
    return current_app.extensions["rosace_sequencer"]


def _parse_file(value: dict | str, where: str) -> ObservingFile:
    try:
        if isinstance(value, str):
            return parse_observing_file(value, where)
        return ObservingFile.model_validate(value)
    except ObservingFileError as exc:
        raise ProblemError(422, "Invalid Observing File", str(exc), [{"field": p.path, "message": p.message, "line": p.line} for p in exc.problems]) from None
    except ValueError as exc:
        raise ProblemError(422, "Invalid Observing File", str(exc)) from None


@api.route("/status", summary="Current observation, step, progress, time left, last frame")
def status():
    return _seq().status()


@api.route("/night/start", methods=("POST",), body=NightRequest, status=202, summary="Start the robotic night")
def night_start(body: NightRequest):
    files = [_parse_file(f, f"files[{i}]") for i, f in enumerate(body.files)]
    return _seq().start_night(files or None).to_dict()


@api.route("/night/stop", methods=("POST",), status=202, summary="End the night after the current observation")
def night_stop():
    return _seq().stop_night()


@api.route("/run", methods=("POST",), body=RunRequest, status=202, summary="Run one Observing File now")
def run(body: RunRequest):
    seq = _seq()
    if body.file_id is not None:
        from rosace_scheduler.client import SchedulerClient

        from urllib.parse import quote

        # The id goes into a URL path: escaped whole, so '../' or '?x' cannot reach another route.
        data = seq._client("scheduler", SchedulerClient).get(f"/files/{quote(body.file_id, safe='')}")
        content = data.get("file") or data.get("content") or data
        of = _parse_file(content, body.file_id)
    else:
        assert body.file is not None  # the model: exactly one of file_id and file
        of = _parse_file(body.file, "file")
    return seq.run_file(of, observation_id=body.observation_id).to_dict()


@api.route("/abort", methods=("POST",), status=202, summary="Abort the current exposure and observation")
def abort():
    return _seq().abort()


@api.route("/pause", methods=("POST",), summary="Pause before the next exposure")
def pause():
    return _seq().pause()


@api.route("/resume", methods=("POST",), summary="Resume after a pause")
def resume():
    return _seq().resume()


@api.route("/log", query=LogQuery, summary="Live log lines")
def log_lines(query: LogQuery):
    return _seq().log_lines(query.since, query.limit)


@api.route("/history", query=HistoryQuery, summary="Observations (newest first) with their outcome and frames")
def history(query: HistoryQuery):
    return _seq().history(query.limit, query.night)


@api.route("/steps", summary="Registered sequence steps")
def steps():
    reg = _seq().registry
    return {"steps": reg.names(), "errors": reg.errors}


@api.route("/telemetry", summary="Live view: slit-jaw image with slit and star, guide offsets, camera temperatures, mount position")
def telemetry():
    return _seq().telemetry_doc()


@api.route("/last_frame", query=PreviewQuery, summary="Quick look: the last frame binned down and its profile along the dispersion")
def last_frame(query: PreviewQuery):
    return _seq().last_frame_preview(query.max_size)


# an observation is stopped with POST /abort (it parks and keeps the observation), not per job
api.add_job_routes(lambda: _seq().jobs, abort=False)


def create_app(config=None, *, token=None, sequencer=None):
    """Build the sequencer module's Flask app (and its Sequencer service, which recovers from a crash)."""
    from rosace_sequencer.service import Sequencer

    config = app_config(config)
    app = create_module_app(api, config=config, token=token)
    seq = sequencer or Sequencer(config)
    app.extensions["rosace_sequencer"] = seq
    return app
