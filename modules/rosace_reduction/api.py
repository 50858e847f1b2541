"""REST API of the reduction module (``/api/v1/reduction``, docs/dev/contracts.md).

``POST /reduce`` starts a job (frames or a folder) and answers 202; the job's
result lists the spectra written. After each spectrum, when ``[reduction]
share_url`` is set, the BeSS FITS is uploaded to the share module through a
durable outbox (``<data root>/state/reduction.sqlite``): committed before it is
sent, tried at once, then again with back-off (and after a restart) until share
acknowledges it. A share server that is down never fails the job; ``GET
/status`` says how many uploads are waiting.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import requests
from flask import current_app, send_file
from pydantic import BaseModel, Field, model_validator

from rosace_core.jobs import JobRunner
from rosace_core.memory import release_memory
from rosace_core.outbox import Acked, Outbox, Refused, content_key
from rosace_core.rest import Api, ProblemError, create_module_app

log = logging.getLogger(__name__)

api = Api("reduction", "Reduction", "Raw frames to calibrated 1D spectra")


class PartialObservation(BaseModel):
    """What the sequencer says of an interrupted observation."""

    reason: str = Field("", max_length=500, description="why it stopped (unsafe, dawn, disk full...)")
    science_frames: int | None = Field(None, ge=0, description="science frames taken")
    planned_frames: int | None = Field(None, ge=1, description="science frames the Observing File asked for")


class ReduceRequest(BaseModel):
    """Frames (paths on the reduction server) or a folder to reduce."""

    frames: list[str] = Field(default_factory=list, description="raw FITS paths")
    folder: str | None = Field(None, description="a folder of raw frames (a night)")
    observation_id: str | None = Field(None, description="reduce only this observation of the frames/folder")
    force: bool = False
    partial: PartialObservation | None = Field(None, description="the observation was interrupted (weather, dawn, disk): reduce the frames it has and flag the spectrum PARTIAL; needs observation_id")

    @model_validator(mode="after")
    def _something(self):
        if not self.frames and not self.folder:
            raise ValueError("give 'frames' or 'folder'")
        if self.partial is not None and not self.observation_id:
            raise ValueError("'partial' needs the 'observation_id' it describes")
        return self


class ResultsQuery(BaseModel):
    observation_id: str | None = None


def _state():
    return current_app.extensions["rosace_reduction"]


def _post_spectrum(url: str, fits_path: str, token: str | None, campaign: str | None, timeout: float) -> requests.Response:
    with open(fits_path, "rb") as fh:
        return requests.post(url, files={"file": (Path(fits_path).name, fh, "application/fits")}, data={"campaign": campaign} if campaign else None,
                             headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=timeout)


def upload_to_share(fits_path: str, share_url: str, token: str | None, timeout: float = 20.0, *, campaign: str | None = None) -> dict:
    """Upload a BeSS FITS to the share module; return {'ok', 'status', 'detail', 'campaign'} and never raise.

    ``campaign`` (the frames' ROSCAMP) tags the spectrum so that share forwards
    it to its upstream server. A share that refuses the campaign (unknown
    there, or not a valid id) still gets the spectrum, untagged: the upload is
    retried once without it and the refusal is logged.
    """
    url = share_url.rstrip("/") + "/api/v1/share/spectra"
    try:
        resp = _post_spectrum(url, fits_path, token, campaign, timeout)
        sent = campaign
        # 401/403 (token), 409 (duplicate) and 413 (size) do not depend on the campaign.
        if campaign and 400 <= resp.status_code < 500 and resp.status_code not in (401, 403, 409, 413):
            log.warning("share refused the upload of %s with campaign %r (%s: %s): uploading it without the campaign",
                        fits_path, campaign, resp.status_code, resp.text[:200])
            resp = _post_spectrum(url, fits_path, token, None, timeout)
            sent = None
        ok = resp.status_code in (200, 201, 409)  # 409: already there, fine for a re-run
        detail = resp.json() if resp.headers.get("content-type", "").startswith("application/") and resp.content else resp.text[:200]
        if not ok:
            log.warning("share upload of %s answered %s: %s", fits_path, resp.status_code, detail)
        return {"ok": ok, "status": resp.status_code, "detail": detail, "campaign": sent}
    except (requests.RequestException, OSError, ValueError) as exc:
        log.warning("share upload of %s failed: %s", fits_path, exc)
        return {"ok": False, "status": None, "detail": str(exc), "campaign": None}


def share_outbox(path: Path, share_url: str, token: str | None, *, backoff: float = 2.0, max_backoff: float = 30.0) -> Outbox:
    """The outbox of uploads to share: acknowledged by a 200/201 (or 409: already there)."""

    def send(payload: dict):
        if not Path(payload["fits"]).exists():
            raise Refused(f"{payload['fits']} no longer exists")
        out = upload_to_share(payload["fits"], share_url, token, campaign=payload.get("campaign"))
        if out["ok"]:
            return Acked(out)
        status = out["status"]
        if status is not None and 400 <= status < 500 and status not in (401, 403, 408, 429):
            raise Refused(f"share answered {status}: {out['detail']}")
        raise ConnectionError(f"share answered {status}: {out['detail']}" if status else str(out["detail"]))

    return Outbox(path, "share", send, backoff=backoff, max_backoff=max_backoff)


def _upload(box: Outbox, record: dict) -> dict | None:
    """Put one spectrum in the upload outbox and try it now; None when this very file was already uploaded.

    Keyed by observation id and the FITS content: a re-hand-off of an observation
    already reduced ("skipped") whose upload never got through is uploaded now.
    """
    fits_path = record["products"]["fits"]
    oid = str(record.get("observation_id") or record.get("id"))
    # A newer product of the observation supersedes an upload still waiting: sent last, the older would replace it in share.
    entry = box.put(content_key(oid, files=[fits_path]),
                    {"fits": fits_path, "campaign": record.get("campaign"), "observation_id": record.get("observation_id")},
                    supersedes=f"{oid}:")
    if entry is None:
        return None
    state = box.process(entry, wait=True)
    row = box.get(entry) or {}
    if state == "acked" or row.get("state") == "acked":
        return json.loads(row.get("result") or "null") or {"ok": True, "status": None, "detail": "", "campaign": None}
    return {"ok": False, "status": None, "detail": row.get("error") or "", "campaign": record.get("campaign"),
            "queued": row.get("state") in ("pending", "sent")}


#: Reductions run one after the other: the observatory PC has few cores and little
#: memory, and the night's observations arrive one at a time anyway.
_ONE_AT_A_TIME = threading.Lock()


@api.route("/reduce", methods=("POST",), body=ReduceRequest, status=202, summary="Reduce frames or a folder (202 job)")
def reduce(body: ReduceRequest):
    from rosace_reduction.batch import reduce_paths

    state = _state()
    paths = [Path(p) for p in body.frames] + ([Path(body.folder)] if body.folder else [])
    _confine(paths, state["roots"])
    missing = [str(p)[:200] for p in paths if not _exists(p)]
    if missing:
        raise ProblemError(422, "Validation failed", "no such file or folder", [{"field": "frames", "message": f"not found: {m}", "in": "body"} for m in missing])
    options = state["options"]
    box = state["outbox"]
    workers = state["workers"]

    def run(job):
        def progress(done, total, message):
            job.progress(done / total if total else 0.0, message)

        job.progress(0.0, "waiting for the previous reduction")
        with _ONE_AT_A_TIME:
            try:
                report = reduce_paths(paths, options, force=body.force, workers=workers, progress=progress, abort=lambda: job.abort_requested,
                                      partial={body.observation_id: body.partial.model_dump()} if body.partial and body.observation_id else None)
            finally:
                # A reduction's band arrays and astropy's temporaries are garbage now:
                # hand them back instead of idling at the job's high-water mark.
                release_memory()
        spectra = []
        for o in report.outcomes:
            # Observations reduced again with a reference star's response that arrived in this job are
            # listed (and uploaded again) whatever observation the job was asked for.
            if body.observation_id and o.observation_id != body.observation_id and not o.rereduced:
                continue
            item = {"observation_id": o.observation_id, "object": o.object, "status": o.status, "message": o.message, "rereduced": o.rereduced,
                    "partial": bool(o.record and o.record.get("partial"))}
            if o.record:
                item.update(id=o.record["id"], fits=o.record["products"]["fits"], quality=o.record["quality"], flags=o.record["flags"])
                if box is not None and o.status in ("reduced", "skipped"):
                    uploaded = _upload(box, o.record)
                    if uploaded is not None:
                        item["share"] = uploaded
            spectra.append(item)
        job.check_abort()
        return {"spectra": spectra, "counts": report.counts, "bad_files": [{"path": p, "reason": r} for p, r in report.bad_files]}

    job = state["runner"].submit("reduce", run, params=body.model_dump())
    return job.to_dict()


@api.route("/status", summary="Running jobs and the uploads to share still waiting")
def status():
    state = _state()
    box = state["outbox"]
    return {"jobs_running": len(state["runner"].running()), "share_url": state["share_url"],
            "uploads": box.counts() if box is not None else None}


@api.route("/results", query=ResultsQuery, summary="Reduced spectra (quality records), newest first")
def results(query: ResultsQuery):
    from rosace_reduction.results import list_results

    return list_results(_state()["options"].output_root, query.observation_id)


@api.route("/results/<result_id>", summary="One reduced spectrum: quality and provenance record")
def result(result_id: str):
    from rosace_reduction.results import get_result

    return get_result(_state()["options"].output_root, result_id)


@api.route("/results/<result_id>/plot.png", summary="Quick-look plot of a reduced spectrum")
def plot(result_id: str):
    from rosace_reduction.results import get_result

    rec = get_result(_state()["options"].output_root, result_id)
    return send_file(rec["products"]["png"], mimetype="image/png")


@api.route("/results/<result_id>/spectrum.fits", summary="The BeSS FITS of a reduced spectrum")
def spectrum_fits(result_id: str):
    from rosace_reduction.results import get_result

    rec = get_result(_state()["options"].output_root, result_id)
    return send_file(rec["products"]["fits"], mimetype="application/fits", as_attachment=True, download_name=Path(rec["products"]["fits"]).name)


@api.route("/results/<result_id>/frame", summary="The raw science frame around the trace (columns binned), with the trace and extraction window")
def frame(result_id: str):
    from rosace_reduction.results import frame_view, get_result

    return frame_view(get_result(_state()["options"].output_root, result_id))


@api.route("/results/<result_id>/data", summary="The spectrum as arrays (wavelength, flux, uncertainty) for plotting")
def spectrum_data(result_id: str):
    from rosace_reduction.output import read_spectrum
    from rosace_reduction.results import get_result

    rec = get_result(_state()["options"].output_root, result_id)
    spec = read_spectrum(rec["products"]["fits"])
    unc = spec.uncertainty.array.tolist() if spec.uncertainty is not None else None
    return {"wavelength": spec.spectral_axis.value.tolist(), "flux": spec.flux.value.tolist(), "uncertainty": unc, "unit": str(spec.flux.unit)}


def _exists(path: Path) -> bool:
    """Path.exists() that treats an impossible name (too long, a NUL byte) as absent, not as a 500."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _confine(paths: list[Path], roots: list[Path]) -> None:
    """Refuse paths outside the configured data folders (the same answer whether they exist or not)."""
    outside = []
    for p in paths:
        try:
            resolved = p.expanduser().resolve()
            inside = any(resolved.is_relative_to(root) for root in roots)
        except (OSError, ValueError):  # a name too long for the file system, a NUL byte...
            inside = False
        if not inside:
            outside.append(str(p)[:200])
    if outside:
        raise ProblemError(
            403, "Forbidden", "only frames under the reduction's data folders can be reduced: "
            + ", ".join(str(r) for r in roots) + " ([data] root, [reduction] data_roots)",
            [{"field": "frames", "message": f"outside the data folders: {m}", "in": "body"} for m in outside],
        )


def create_app(config=None, *, token=None):
    """Build the reduction module's Flask app."""
    from rosace_core.auth import resolve_token
    from rosace_core.config import app_config
    from rosace_reduction.batch import options_from_config

    cfg = app_config(config)  # the one meaning of ``config`` (docs/dev/contracts.md)
    runner = JobRunner()
    if not any(op.rule == "/jobs" for op in api.operations):
        api.add_job_routes(lambda: _state()["runner"])
    app = create_module_app(api, config=cfg, token=token)
    red = dict(cfg.reduction or {})
    share_url = red.get("share_url")
    share_token = red.get("share_token") or (resolve_token(cfg, "share") if share_url else None)
    box = None
    if share_url:
        box = share_outbox(Path(cfg.data.state) / "reduction.sqlite", share_url, share_token,
                           backoff=float(red.get("upload_backoff", 2.0)), max_backoff=float(red.get("upload_max_backoff", 30.0)))
        box.start()  # uploads a crash left waiting go now
    app.extensions["rosace_reduction"] = {
        "runner": runner,
        "options": options_from_config(cfg),
        "share_url": share_url,
        "share_token": share_token,
        "workers": int(red.get("workers", 1)),
        # REST clients reduce only what lies under these (a server path outside them is refused).
        "roots": [Path(r).expanduser().resolve() for r in [cfg.data.root, *red.get("data_roots", [])]],
        "outbox": box,
    }
    return app


