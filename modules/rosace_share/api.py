"""REST API and web gallery of the share module.

``create_app(config)`` opens (and migrates) the archive, then serves
``/api/v1/share/...`` (JSON, OpenAPI) and the server-rendered gallery at
``/gallery/`` (no CDN: plots are PNG drawn here, the stylesheet is local).

Two ways to write: the installation token (one observatory, as every ROSACE
module) acts as the archive's administrator; observer accounts (share-server
mode) each have their own token, own their spectra and, as organisers, their
campaigns.
"""

from __future__ import annotations

import hmac
import io
from types import SimpleNamespace
import json
import logging
import re
import threading
from collections import OrderedDict
from typing import Literal

from flask import Blueprint, Response, abort, current_app, g, redirect, render_template, request, send_file, url_for
from markupsafe import Markup
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rosace_core.auth import resolve_token
from rosace_core.errors import NotFoundError, RosaceError
from rosace_core.jobs import JobRunner
from rosace_core.outbox import Acked, Outbox, Refused
from rosace_core.observing_file import ObservingFileError
from rosace_core.rest import Api, ProblemError, create_module_app, openapi_document, problem
from rosace_share import analysis, plots
from rosace_share.archive import Archive, DuplicateSpectrum, PermissionDenied, Principal, TooLarge
from rosace_share.reports import clean_html, sections_html
from rosace_share.settings import ShareOptions, data_root, database_url, share_options, storage_folder
from rosace_share.spectra import BESS_MANDATORY, BessIncomplete, SpectrumInvalid, aras_name, bess_fits, csv_text, object_key

log = logging.getLogger(__name__)

api = Api("share", "Share", "Archive, plots, web gallery and share server")
MAX_DB_INT = 2**31 - 1


# --------------------------------------------------------------------------- models


class _Model(BaseModel):
    # NUL and other control characters are refused up front: PostgreSQL rejects
    # NUL in text, and no legitimate name or search contains them.
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")

    @field_validator("*", mode="before")
    @classmethod
    def _no_control(cls, value):
        if isinstance(value, str) and re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", value):
            raise ValueError("control characters are not allowed")
        return value


class SearchQuery(_Model):
    """Filters of a spectra search (all optional, combined with AND)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    object: str | None = Field(None, max_length=120, description="object name (spaces, case and '_' ignored)")
    start: str | None = Field(None, max_length=40, description="ISO date or date-time (UTC), inclusive")
    end: str | None = Field(None, max_length=40, description="ISO date or date-time (UTC), inclusive")
    observer: str | None = Field(None, max_length=120, description="substring of the observer")
    instrument: str | None = Field(None, max_length=120, description="substring of the instrument")
    min_snr: float | None = Field(None, ge=0, le=1e6)
    quality: Literal["good", "fair", "poor"] | None = Field(None, description="minimum quality")
    campaign: str | None = Field(None, max_length=80)
    limit: int = Field(100, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)


class SpectrumOut(BaseModel):
    """A spectrum's archive record."""

    id: int
    object: str
    date_obs: str
    jd: float
    exptime: float | None = None
    observer: str
    site: str
    instrument: str
    resolving_power: float | None = None
    measured_r: float | None = None
    wl_min: float
    wl_max: float
    n_pixels: int
    snr: float | None = None
    wl_rms: float | None = None
    normalised: bool
    quality: str
    flags: list[str]
    campaign: str | None = None
    owner: str
    filename: str
    size: int
    sha256: str
    bess_missing: list[str]
    aras_name: str
    upstream: str | None = None
    created: str
    header: dict | None = None
    provenance: dict | None = None
    observation_id: str | None = Field(None, description="ROSACE observation id (FITS ROSOBSID); absent for spectra from other software")
    replaced: bool | None = Field(None, description="upload answer only: true (HTTP 200) when the upload replaced an earlier version of the same observation "
                                                    "(same owner and observation_id), false (HTTP 201) when it added a spectrum")


class SearchResult(BaseModel):
    """One page of search results."""

    total: int
    limit: int
    offset: int
    items: list[SpectrumOut]


class ObjectOut(BaseModel):
    """An object and its coverage."""

    object: str
    key: str
    spectra: int
    first: str
    last: str


class LineQuery(_Model):
    """Which line to analyse."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    line: str = Field("H-alpha", max_length=40, description=f"one of {', '.join(analysis.LINES)} or a wavelength in Angstrom")
    vmax: float = Field(1000.0, ge=50, le=10000, description="half-width of the velocity window, km/s")


class ReportIn(_Model):
    """A report for the gallery: HTML (cleaned) or structured sections."""

    title: str = Field(..., min_length=1, max_length=200)
    body_html: str | None = Field(None, max_length=2_000_000)
    sections: list[dict] | None = Field(None, max_length=500)


class ReportOut(BaseModel):
    id: int
    title: str
    url: str
    author: str
    created: str


class CampaignIn(_Model):
    """A new campaign."""

    id: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$", description="short identifier used in URLs and uploads")
    title: str = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=20000)


class CampaignOut(BaseModel):
    id: str
    title: str
    description: str
    organiser: str
    created: str
    files: int = 0
    spectra: int = 0


class ObservingFileIn(_Model):
    """An Observing File to publish in a campaign (same body as the scheduler's POST /files)."""

    content: str = Field(..., min_length=1, max_length=1_000_000)
    format: Literal["yaml", "json"] | None = None
    filename: str = Field("", max_length=200)


class CampaignFileOut(BaseModel):
    id: str
    filename: str
    format: str
    sha256: str
    target: str
    created: str
    content: str | None = None


class AccountIn(_Model):
    """A new observer account (administrators only)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
    role: Literal["observer", "organiser", "admin"] = "observer"


class AccountOut(BaseModel):
    name: str
    role: str
    token: str | None = Field(None, description="shown once, at creation")


# --------------------------------------------------------------------------- service


class ShareService:
    """What one app serves: the archive, its options, background forwarding and a plot cache."""

    def __init__(self, archive: Archive, options: ShareOptions, admin_token: str, outbox_path=None):
        self.archive = archive
        self.options = options
        self.admin_token = admin_token
        self.runner = JobRunner()
        self._plots: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._forward_lock = threading.Lock()
        self.outbox: Outbox | None = None
        if options.upstream_url and outbox_path is not None:
            # Forwards upstream go through a durable outbox: committed before they are sent,
            # sent again with back-off (and after a restart) until the upstream server answers.
            self.outbox = Outbox(outbox_path, "upstream", self._push, backoff=options.upstream_backoff,
                                 max_backoff=options.upstream_max_backoff)
            for rec in archive.unforwarded():  # a crash between archiving and queueing the forward
                self.outbox.put(_forward_key(rec), {"spectrum": rec.id})
            self.outbox.start()

    def cached_plot(self, key: tuple, make) -> bytes:
        """Plots of an object are costly (every epoch is read); keep the last 64."""
        with self._lock:
            if key in self._plots:
                self._plots.move_to_end(key)
                return self._plots[key]
        png = make()
        with self._lock:
            self._plots[key] = png
            while len(self._plots) > 64:
                self._plots.popitem(last=False)
        return png

    def forward(self, rec) -> None:
        """Send a campaign result to the upstream share server: through the outbox, tried at once in a job.

        A record already sent (``upstream`` is ``"<upstream_url>#<id>"``) is a new
        version of the same observation: it replaces the upstream copy (PUT). If
        the upstream refuses, the refusal is logged and noted in ``upstream``;
        the local replacement stays. An upstream that cannot be reached is tried
        again with back-off until it answers. Forwards run one at a time and
        read the record when they run, so a replacement uploaded while the first
        copy is still on its way is PUT, not posted twice. The job's result says
        what was done: ``{"sent": "posted" | "replaced" | "refused" | "already there" | "waiting", "remote_id": ...}``.
        """
        if not (self.options.upstream_url and rec.campaign) or self.outbox is None:
            return
        box = self.outbox
        entry = box.put(_forward_key(rec), {"spectrum": rec.id})  # committed before anything is sent
        if entry is None:
            return  # this very file is already upstream

        def push(job):
            state = box.process(entry, wait=True)
            row = box.get(entry) or {}
            if row.get("state") == "acked":
                return json.loads(row["result"])
            if row.get("state") == "failed":
                raise RosaceError(row.get("error") or "forward refused")
            return {"sent": "waiting" if state is not None else "in progress", "remote_id": None, "error": row.get("error")}

        self.runner.submit("forward", push, {"spectrum": rec.id})

    def _push(self, payload: dict):
        """The outbox's send: POST (or PUT a new version) one spectrum upstream; Acked with what was done."""
        from rosace_core.errors import ConflictError
        from rosace_core.http import ApiError, ServiceUnavailable
        from rosace_share.client import ShareClient

        opts, archive = self.options, self.archive
        upstream_url = opts.upstream_url
        if not upstream_url:  # the configuration lost its upstream since the entry was queued
            raise Refused("no upstream share server is configured")
        with self._forward_lock:
            try:
                current = archive.get(payload["spectrum"])
            except NotFoundError:
                raise Refused(f"spectrum {payload['spectrum']} was deleted") from None
            client = ShareClient(upstream_url, token=opts.upstream_token)
            try:
                data = archive.fits_bytes(current)
                name = current.filename or f"{current.id}.fits"
                remote_id = upstream_id(current.upstream, upstream_url)
                if remote_id is not None:
                    try:
                        remote = client.replace(remote_id, data, filename=name)
                    except (ServiceUnavailable, ApiError) as exc:
                        if isinstance(exc, ServiceUnavailable) or exc.status >= 500 or exc.status in (401, 403, 408, 429):
                            raise  # down or not now: the outbox tries again
                        return self._refused(current, remote_id, exc)
                    except RosaceError as exc:
                        return self._refused(current, remote_id, exc)
                    archive.set_upstream(current.id, f"{opts.upstream_url}#{remote['id']}")
                    return Acked({"sent": "replaced", "remote_id": remote["id"]})
                remote = client.upload(data, campaign=current.campaign, filename=name)
                archive.set_upstream(current.id, f"{opts.upstream_url}#{remote['id']}")
                return Acked({"sent": "replaced" if remote.get("replaced") else "posted", "remote_id": remote["id"]})
            except ConflictError as exc:
                there = next((r.split("=", 1)[1] for r in exc.reasons if r.startswith("existing_id=")), None)
                where = f"{opts.upstream_url}#{there}" if there and there.isdigit() else opts.upstream_url
                archive.set_upstream(current.id, f"{where} (already there: {exc})")
                return Acked({"sent": "already there", "remote_id": int(there) if there and there.isdigit() else None})
            except (ServiceUnavailable, ApiError) as exc:
                if isinstance(exc, ApiError) and 400 <= exc.status < 500 and exc.status not in (401, 403, 408, 429):
                    archive.set_upstream(current.id, f"error: {exc}")
                    raise Refused(str(exc)) from None
                if upstream_id(current.upstream, upstream_url) is None:
                    archive.set_upstream(current.id, f"waiting: {exc}")
                raise
            finally:
                client.session.close()

    def _refused(self, current, remote_id: int, exc: Exception):
        opts = self.options
        log.warning("the upstream share server %s refused the new version of spectrum %s (its #%s): %s; the local replacement stays",
                    opts.upstream_url, current.id, remote_id, exc)
        self.archive.set_upstream(current.id, f"{opts.upstream_url}#{remote_id} (new version not sent: {exc})")
        return Acked({"sent": "refused", "remote_id": remote_id, "error": str(exc)})

    def status(self) -> dict:
        return {"mode": self.options.mode, "upstream_url": self.options.upstream_url,
                "forwards": self.outbox.counts() if self.outbox is not None else None,
                "jobs_running": len(self.runner.running())}


def _forward_key(rec) -> str:
    """One forward per version of a spectrum (its id and its file's hash)."""
    return f"{rec.id}:{rec.sha256}"


_UPSTREAM = re.compile(r"^(?P<url>\S+)#(?P<id>\d{1,10})(?:\s|$)")


def upstream_id(upstream: str | None, upstream_url: str) -> int | None:
    """The upstream spectrum id of a record already forwarded to ``upstream_url`` (None when not there)."""
    m = _UPSTREAM.match(upstream or "")
    if m is None or m.group("url").rstrip("/") != upstream_url.rstrip("/"):
        return None
    return int(m.group("id"))


def service() -> ShareService:
    return current_app.extensions["rosace_share"]


def principal() -> Principal | None:
    return g.get("principal")


def require(role: str | None = None) -> Principal:
    """The caller, who must be identified (401) and, if ``role`` is given, have it (403)."""
    who = principal()
    if who is None:
        raise ProblemError(401, "Unauthorized", "this request needs 'Authorization: Bearer <token>'")
    if role == "admin" and not who.is_admin:
        raise PermissionDenied("administrators only")
    if role == "organiser" and who.role not in ("organiser", "admin"):
        raise PermissionDenied("organisers only")
    return who


def _authenticate() -> Response | None:
    """Resolve the bearer token (installation token or an account's); writes need one."""
    svc = service()
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    given = given.strip()
    g.principal = None
    if scheme.lower() == "bearer" and given:
        if hmac.compare_digest(given.encode(), svc.admin_token.encode()):
            g.principal = Principal(svc.options.observer or "observatory", "admin")
        elif len(given) <= 200:
            g.principal = svc.archive.principal_for_token(given)
        if g.principal is None:
            return problem(401, "Unauthorized", "invalid token")
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and g.principal is None:
        return problem(401, "Unauthorized", "this request changes state and needs 'Authorization: Bearer <token>'")
    return None


def _record(spectrum_id: int):
    if spectrum_id > MAX_DB_INT:
        raise NotFoundError(f"no spectrum {spectrum_id}")
    return service().archive.get(spectrum_id)


def spectrum_out(rec, full: bool = False) -> dict:
    """JSON document of a spectrum record."""
    out = SpectrumOut(
        id=rec.id, object=rec.object, date_obs=rec.date_obs.isoformat(), jd=rec.jd, exptime=rec.exptime, observer=rec.observer, site=rec.site,
        instrument=rec.instrument, resolving_power=rec.resolving_power, measured_r=rec.measured_r, wl_min=rec.wl_min, wl_max=rec.wl_max,
        n_pixels=rec.n_pixels, snr=rec.snr, wl_rms=rec.wl_rms, normalised=rec.normalised, quality=rec.quality, flags=list(rec.flags or []),
        campaign=rec.campaign, owner=rec.owner, filename=rec.filename, size=rec.size, sha256=rec.sha256, bess_missing=list(rec.bess_missing or []),
        aras_name=aras_name(rec.object, rec.date_obs), upstream=rec.upstream, created=rec.created.isoformat(), observation_id=rec.observation_id,
        header=rec.header if full else None, provenance=rec.provenance if full else None,
    )
    return out.model_dump(mode="json", exclude_none=not full, exclude={"replaced"})


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name or "")[:200]


def _upload_bytes() -> tuple[bytes, str, str | None]:
    f = request.files.get("file")
    if f is None:
        raise ProblemError(400, "Bad request", "send the spectrum as multipart/form-data with a 'file' part (a BeSS 1D FITS)")
    campaign = request.form.get("campaign") or None
    return f.read(), _safe_filename(f.filename or ""), campaign


def _invalid(exc: SpectrumInvalid) -> ProblemError:
    return ProblemError(422, "Invalid spectrum", "the file is not an acceptable 1D spectrum: " + str(exc), [{"field": "file", "message": p, "in": "body"} for p in exc.problems])


# --------------------------------------------------------------------------- spectra


@api.route("/spectra", query=SearchQuery, response=SearchResult, summary="Search spectra by object, date range, observer, instrument, S/N, quality, campaign")
def search_spectra(query: SearchQuery):
    rows, total = service().archive.search(**query.model_dump(exclude={"limit", "offset"}), limit=query.limit, offset=query.offset)
    return {"total": total, "limit": query.limit, "offset": query.offset, "items": [spectrum_out(r) for r in rows]}


@api.route("/status", summary="The archive's mode and the forwards to the upstream share server still waiting")
def share_status():
    return service().status()


@api.route("/spectra", methods=("POST",), response=SpectrumOut, status=201,
           summary="Upload a reduced spectrum (multipart 'file' = BeSS FITS, optional 'campaign'); 200 when it replaced an earlier version of the same observation")
def upload_spectrum():
    data, filename, campaign = _upload_bytes()
    svc = service()
    who = require()
    try:
        rec = svc.archive.add(data, owner=who, campaign=campaign, filename=filename)
    except SpectrumInvalid as exc:
        raise _invalid(exc) from None
    except DuplicateSpectrum as exc:
        raise ProblemError(409, "Duplicate spectrum", str(exc), existing_id=exc.existing_id) from None
    svc.forward(rec)
    # A new version of an observation already archived (same owner, same ROSOBSID) replaced it: same id, 200.
    return {**spectrum_out(rec), "replaced": rec.replaced is not None}, 200 if rec.replaced is not None else 201


@api.route("/spectra/<int:spectrum_id>", response=SpectrumOut, summary="One spectrum with its header and provenance")
def get_spectrum(spectrum_id: int):
    return spectrum_out(_record(spectrum_id), full=True)


@api.route("/spectra/<int:spectrum_id>", methods=("PUT",), response=SpectrumOut, summary="Replace a spectrum's file (its owner only)")
def replace_spectrum(spectrum_id: int):
    data, filename, _ = _upload_bytes()
    _record(spectrum_id)
    try:
        rec = service().archive.replace(spectrum_id, data, require(), filename)
    except SpectrumInvalid as exc:
        raise _invalid(exc) from None
    return spectrum_out(rec, full=True)


@api.route("/spectra/<int:spectrum_id>", methods=("DELETE",), status=204, summary="Delete a spectrum (its owner only)")
def delete_spectrum(spectrum_id: int):
    _record(spectrum_id)
    service().archive.delete(spectrum_id, require())
    return Response(status=204)


def _download(data: bytes, name: str, mimetype: str) -> Response:
    return send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True, download_name=name)


@api.route("/spectra/<int:spectrum_id>/fits", summary="Download the FITS file as uploaded")
def download_fits(spectrum_id: int):
    rec = _record(spectrum_id)
    return _download(service().archive.fits_bytes(rec), aras_name(rec.object, rec.date_obs).replace(".fit", ".fits"), "application/fits")


@api.route("/spectra/<int:spectrum_id>/bess", summary="Download a BeSS-convention FITS (422 naming the missing mandatory keywords)")
def download_bess(spectrum_id: int):
    rec = _record(spectrum_id)
    try:
        data = bess_fits(service().archive.load(rec))
    except BessIncomplete as exc:
        raise ProblemError(422, "Not exportable to BeSS", str(exc), [{"field": k, "message": "mandatory BeSS keyword missing", "in": "header"} for k in exc.missing], missing=exc.missing) from None
    return _download(data, aras_name(rec.object, rec.date_obs, rec.observer or None), "application/fits")


@api.route("/spectra/<int:spectrum_id>/csv", summary="Download wavelength, flux, error as CSV")
def download_csv(spectrum_id: int):
    rec = _record(spectrum_id)
    name = aras_name(rec.object, rec.date_obs).replace(".fit", ".csv")
    return _download(csv_text(service().archive.load(rec)).encode(), name, "text/csv")


@api.route("/spectra/<int:spectrum_id>/data", summary="Wavelength (Angstrom), flux and error arrays as JSON")
def spectrum_data(spectrum_id: int):
    spec = service().archive.load(_record(spectrum_id))
    finite = lambda a: [None if not (x == x) or abs(x) == float("inf") else float(x) for x in a]  # noqa: E731
    return {"wavelength": finite(spec.wavelength), "flux": finite(spec.flux), "error": finite(spec.error) if spec.error is not None else None}


@api.route("/spectra/<int:spectrum_id>/plot.png", summary="The spectrum with its uncertainties (PNG)")
def spectrum_plot(spectrum_id: int):
    rec = _record(spectrum_id)
    svc = service()
    png = svc.cached_plot(("spectrum", rec.id, rec.sha256), lambda: plots.spectrum_png(svc.archive.load(rec), f"{rec.object}  {rec.date_obs:%Y-%m-%d %H:%M}  {rec.instrument}"))
    return Response(png, mimetype="image/png")


# --------------------------------------------------------------------------- objects


@api.route("/objects", response=[ObjectOut], summary="Objects in the archive with their number of spectra")
def list_objects():
    return service().archive.objects()


def _epochs(name: str):
    recs = service().archive.epochs(name)
    if not recs:
        raise NotFoundError(f"no spectrum of {name[:120]!r}")
    return recs


@api.route("/objects/<name>/epochs", response=[SpectrumOut], summary="Every spectrum of one object, oldest first")
def object_epochs(name: str):
    return [spectrum_out(r) for r in _epochs(name)]


def _rest(line: str) -> tuple[str, float]:
    if line in analysis.LINES:
        return line, analysis.LINES[line]
    try:
        rest = float(line)
    except ValueError:
        raise ProblemError(400, "Bad query parameter", f"unknown line {line[:40]!r}: use {', '.join(analysis.LINES)} or a wavelength") from None
    if not 1000 < rest < 30000:
        raise ProblemError(400, "Bad query parameter", "line wavelength out of range (1000-30000 Angstrom)")
    return f"{rest:.2f} Å", rest


def _load_epochs(recs, cap: int = 400):
    archive = service().archive
    out = []
    for rec in recs[-cap:]:
        try:
            out.append((rec.jd, archive.load(rec)))
        except (RosaceError, OSError) as exc:  # one damaged file must not hide the others
            log.warning("spectrum %s unreadable: %s", rec.id, exc)
    return out


@api.route("/objects/<name>/lines", query=LineQuery, summary="Dynamic spectrum and equivalent widths of a line for one object")
def object_line(name: str, query: LineQuery):
    label, rest = _rest(query.line)
    recs = _epochs(name)
    loaded = _load_epochs(recs)
    dyn = analysis.dynamic_spectrum(loaded, rest, query.vmax, n=150)
    ew = [{"id": r.id, "jd": r.jd, "ew": analysis.equivalent_width(s, rest, query.vmax * 0.8, query.vmax)} for r, (_, s) in zip(recs[-400:], loaded)]
    clean = lambda row: [None if v != v else round(float(v), 5) for v in row]  # noqa: E731
    return {"line": label, "rest": rest, "velocity": dyn.velocity.tolist(), "jd": dyn.jd.tolist(), "image": [clean(r) for r in dyn.image], "ew": ew}


@api.route("/objects/<name>/zip", summary="ZIP of every spectrum of an object (BeSS FITS, CSV, index)")
def object_zip(name: str):
    recs = _epochs(name)
    return _download(service().archive.zip_of(recs), f"{object_key(name).lower() or 'object'}.zip", "application/zip")


# --------------------------------------------------------------------------- reports


@api.route("/reports", methods=("POST",), body=ReportIn, response=ReportOut, status=201, summary="Post a report shown at /gallery/reports/<id>")
def post_report(body: ReportIn):
    if not body.body_html and not body.sections:
        raise ProblemError(422, "Validation failed", "give body_html or sections", [{"field": "body_html", "message": "body_html or sections is required", "in": "body"}])
    rep = service().archive.add_report(body.title, clean_html(body.body_html or ""), body.sections or [], require())
    return _report_out(rep), 201


def _report_out(rep) -> dict:
    return {"id": rep.id, "title": rep.title, "url": f"/gallery/reports/{rep.id}", "author": rep.author, "created": rep.created.isoformat()}


@api.route("/reports", response=[ReportOut], summary="Recent reports")
def list_reports():
    return [_report_out(r) for r in service().archive.reports()]


@api.route("/reports/<int:report_id>", summary="One report (cleaned HTML)")
def get_report(report_id: int):
    if report_id > MAX_DB_INT:
        raise NotFoundError(f"no report {report_id}")
    rep = service().archive.report(report_id)
    return {**_report_out(rep), "body_html": rep.body_html, "sections": rep.sections}


# --------------------------------------------------------------------------- campaigns


def _campaign(slug: str):
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$", slug):
        raise NotFoundError(f"no campaign {slug[:80]!r}")
    return service().archive.campaign(slug)


def _campaign_out(camp) -> dict:
    archive = service().archive
    return {"id": camp.slug, "title": camp.title, "description": camp.description, "organiser": camp.organiser, "created": camp.created.isoformat(),
            "files": len(archive.campaign_files(camp.slug)), "spectra": archive.search(campaign=camp.slug, limit=1)[1]}


@api.route("/campaigns", response=[CampaignOut], summary="Every campaign")
def list_campaigns():
    return [_campaign_out(c) for c in service().archive.campaigns()]


@api.route("/campaigns", methods=("POST",), body=CampaignIn, response=CampaignOut, status=201, summary="Create a campaign (organisers)")
def create_campaign(body: CampaignIn):
    camp = service().archive.create_campaign(body.id, body.title, body.description, require("organiser"))
    return _campaign_out(camp), 201


@api.route("/campaigns/<slug>", response=CampaignOut, summary="One campaign")
def get_campaign(slug: str):
    return _campaign_out(_campaign(slug))


@api.route("/campaigns/<slug>", methods=("DELETE",), status=204, summary="Delete a campaign (its organiser)")
def delete_campaign(slug: str):
    _campaign(slug)
    service().archive.delete_campaign(slug, require())
    return Response(status=204)


def _file_out(cf, content: bool = False) -> dict:
    out = {"id": cf.file_id, "filename": cf.filename, "format": cf.format, "sha256": cf.sha256, "target": cf.target, "created": cf.created.isoformat()}
    if content:
        out["content"] = cf.content
    return out


@api.route("/campaigns/<slug>/files", methods=("POST",), body=ObservingFileIn, response=CampaignFileOut, status=201, summary="Publish an Observing File in a campaign (its organiser)")
def publish_file(slug: str, body: ObservingFileIn):
    _campaign(slug)
    try:
        cf = service().archive.publish_file(slug, body.content, body.format, _safe_filename(body.filename), require())
    except ObservingFileError as exc:
        raise ProblemError(422, "Invalid Observing File", str(exc).split("\n")[0][:300], [p.to_dict() for p in exc.problems]) from None
    return _file_out(cf), 201


@api.route("/campaigns/<slug>/files", response=[CampaignFileOut], summary="The campaign's Observing Files, with their content")
def campaign_files(slug: str):
    _campaign(slug)
    return [_file_out(cf, content=True) for cf in service().archive.campaign_files(slug)]


@api.route("/campaigns/<slug>/files/<file_id>", summary="Download one Observing File as published")
def campaign_file(slug: str, file_id: str):
    _campaign(slug)
    for cf in service().archive.campaign_files(slug):
        if cf.file_id == file_id:
            mimetype = "application/json" if cf.format == "json" else "application/yaml"
            return _download(cf.content.encode(), cf.filename, mimetype)
    raise NotFoundError(f"no Observing File {file_id[:80]!r} in campaign {slug!r}")


@api.route("/campaigns/<slug>/spectra", response=SearchResult, summary="Results sent to a campaign")
def campaign_spectra(slug: str):
    _campaign(slug)
    rows, total = service().archive.search(campaign=slug, limit=1000)
    return {"total": total, "limit": 1000, "offset": 0, "items": [spectrum_out(r) for r in rows]}


@api.route("/campaigns/<slug>/zip", summary="ZIP of every result of a campaign")
def campaign_zip(slug: str):
    _campaign(slug)
    rows, _ = service().archive.search(campaign=slug, limit=100000)
    return _download(service().archive.zip_of(rows), f"{slug}.zip", "application/zip")


# --------------------------------------------------------------------------- accounts, audit


@api.route("/accounts", methods=("POST",), body=AccountIn, response=AccountOut, status=201, summary="Create an observer account and its API token (administrators)")
def create_account(body: AccountIn):
    account, token = service().archive.create_account(body.name, body.role, require("admin"))
    return {"name": account.name, "role": account.role, "token": token}, 201


@api.route("/accounts", response=[AccountOut], summary="Accounts (administrators)")
def list_accounts():
    require("admin")
    return service().archive.accounts()


@api.route("/me", response=AccountOut, summary="Who the presented token belongs to")
def whoami():
    who = require()
    return {"name": who.name, "role": who.role}


@api.route("/audit", summary="The audit log, newest first (administrators)")
def audit_log():
    require("admin")
    return service().archive.audit_log()


# --------------------------------------------------------------------------- gallery


gallery = Blueprint("gallery", __name__, url_prefix="/gallery", template_folder="templates", static_folder="static", static_url_path="/static")


@gallery.app_template_filter("num")
def _num(value, fmt: str = "{:.0f}"):
    return "" if value is None else fmt.format(value)


@gallery.app_template_filter("count")
def _count(n: int, singular: str, plural: str | None = None) -> str:
    """'1 spectrum', '2 spectra'."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


@gallery.route("/")
def gallery_index():
    svc = service()
    try:
        q = SearchQuery.model_validate({k: v for k, v in request.args.items() if v}) if request.args else None
    except ValidationError as exc:
        return render_template("share/error.html", title="ROSACE", code=400, message="invalid search: " + "; ".join(e["msg"] for e in exc.errors())), 400
    results = total = None
    if q is not None:
        results, total = svc.archive.search(**q.model_dump(exclude={"limit", "offset"}), limit=q.limit, offset=q.offset)
    return render_template(
        "share/index.html", title=svc.options.gallery_title, objects=svc.archive.objects(limit=500), campaigns=svc.archive.campaigns(),
        reports=svc.archive.reports(limit=10), results=results, total=total, q=q or SearchQuery(),
    )


@gallery.route("/objects/<name>")
def gallery_object(name: str):
    recs = _epochs(name)
    line = request.args.get("line", "H-alpha")
    if line not in analysis.LINES:
        line = "H-alpha"
    return render_template("share/object.html", title=service().options.gallery_title, name=recs[0].object, key=object_key(name), epochs=list(reversed(recs)), line=line, lines=analysis.LINES)


def _object_plot(name: str, kind: str) -> Response:
    recs = _epochs(name)
    line = request.args.get("line", "H-alpha")
    label, rest = _rest(line)
    signature = (kind, object_key(name), label, tuple((r.id, r.sha256) for r in recs))

    def make() -> bytes:
        loaded = _load_epochs(recs)
        if kind == "overlay":
            return plots.overlay_png(loaded, f"{recs[0].object}: {len(loaded)} epochs, normalised")
        if kind == "line":
            return plots.line_png(loaded, rest, label)
        if kind == "dynamic":
            return plots.dynamic_png(analysis.dynamic_spectrum(loaded, rest), label)
        return plots.ew_png([jd for jd, _ in loaded], [analysis.equivalent_width(s, rest) for _, s in loaded], label)

    return Response(service().cached_plot(signature, make), mimetype="image/png", headers={"Cache-Control": "no-cache"})


@gallery.route("/objects/<name>/<any(overlay, line, dynamic, ew):kind>.png")
def gallery_object_plot(name: str, kind: str):
    return _object_plot(name, kind)


@gallery.route("/spectra/<int:spectrum_id>")
def gallery_spectrum(spectrum_id: int):
    rec = _record(spectrum_id)
    return render_template("share/spectrum.html", title=service().options.gallery_title, s=rec, bess=BESS_MANDATORY)


@gallery.route("/campaigns/<slug>")
def gallery_campaign(slug: str):
    rows, total = service().archive.search(campaign=slug, limit=1000)
    try:
        camp = _campaign(slug)
    except NotFoundError:
        # Spectra name a campaign this server has no record of (an observatory sending to
        # a network campaign): its page lists them rather than a 404 from their own link.
        if not total:
            raise
        camp = SimpleNamespace(slug=slug, title=slug, description="A campaign of the network; its files are published on the share server.", organiser="", created=None)
        return render_template("share/campaign.html", title=service().options.gallery_title, c=camp, files=[], spectra=rows, total=total)
    return render_template("share/campaign.html", title=service().options.gallery_title, c=camp, files=service().archive.campaign_files(slug), spectra=rows, total=total)


@gallery.route("/reports/<int:report_id>")
def gallery_report(report_id: int):
    if report_id > MAX_DB_INT:
        abort(404)
    rep = service().archive.report(report_id)
    # body_html was cleaned to an allow-list on the way in; sections are escaped here.
    body = Markup(rep.body_html) + Markup(sections_html(rep.sections))
    return render_template("share/report.html", title=service().options.gallery_title, r=rep, body=body)


def _gallery_error(exc):
    code = getattr(exc, "code", None) or (404 if isinstance(exc, NotFoundError) else 400)
    return render_template("share/error.html", title="ROSACE", code=code, message=str(getattr(exc, "description", None) or exc)), code


# --------------------------------------------------------------------------- app


def create_app(config=None, *, token=None):
    """Build the share module's Flask app: REST API, OpenAPI, gallery; migrates the archive first.

    ``config``: see :func:`rosace_core.config.app_config` (None: the user's configuration).
    """
    from rosace_core.config import app_config

    config = app_config(config)
    options = share_options(config)
    admin_token = token if token is not None else resolve_token(config, "share")
    require_known = options.require_known_campaign if options.require_known_campaign is not None else options.mode == "server"
    archive = Archive(database_url(config, options), storage_folder(config, options), max_upload_bytes=int(options.max_upload_mb * 2**20), require_known_campaign=require_known)
    # The core token check only knows one token; this module checks both the
    # installation token and account tokens itself (see _authenticate).
    app = create_module_app(api, config=config, token="")
    app.extensions["rosace_share"] = ShareService(archive, options, admin_token or "", outbox_path=data_root(config) / "share" / "outbox.sqlite")
    app.config["MAX_CONTENT_LENGTH"] = archive.max_upload_bytes + 256 * 1024
    app.before_request(_authenticate)
    app.register_blueprint(gallery)

    @app.get("/")
    def root():
        # The server's address alone (what a user types) opens the gallery.
        return redirect(url_for("gallery.gallery_index"))

    @app.errorhandler(413)
    def _too_large(exc):
        return problem(413, "Payload too large", f"uploads are limited to {options.max_upload_mb:g} MiB on this archive")

    @app.errorhandler(TooLarge)
    def _too_large_archive(exc):
        return problem(413, "Payload too large", str(exc))

    @app.errorhandler(PermissionDenied)
    def _forbidden(exc):
        return problem(403, "Forbidden", str(exc))

    for exc_class in (NotFoundError,):
        original = app.error_handler_spec[None][None].get(exc_class)

        def _not_found(exc, original=original):
            if request.path.startswith("/gallery"):
                return _gallery_error(exc)
            return original(exc)

        app.register_error_handler(exc_class, _not_found)

    def openapi():
        doc = openapi_document([api])
        upload = {"required": True, "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "BeSS 1D FITS"}, "campaign": {"type": "string", "maxLength": 80}},
        }}}}
        paths = doc["paths"]
        paths["/api/v1/share/spectra"]["post"]["requestBody"] = upload
        paths["/api/v1/share/spectra/{spectrum_id}"]["put"]["requestBody"] = upload
        post = paths["/api/v1/share/spectra"]["post"]["responses"]
        post["200"] = {**post["201"], "description": "a new version of an observation already archived (same owner and ROSOBSID) replaced it: same id, replaced=true"}
        for path, item in paths.items():
            for op in item.values():
                for p in op.get("parameters", []):
                    if p["in"] == "path" and p["name"] in ("spectrum_id", "report_id"):
                        p["schema"] = {"type": "integer", "minimum": 0}
                if path.startswith("/api/v1/share"):
                    op["responses"].setdefault("403", op["responses"].get("404"))
                    op["responses"].setdefault("413", op["responses"].get("404"))
            item.get("delete", {}).get("responses", {}).pop("200", None)
        return doc

    app.view_functions["openapi"] = openapi
    return app
