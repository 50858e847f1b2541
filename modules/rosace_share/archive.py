"""The spectra archive: store, search, campaigns, accounts, reports and the audit log.

One :class:`Archive` wraps a database (SQLite or PostgreSQL through SQLAlchemy)
and a storage folder of FITS files named by content hash. Permissions are
decided here, not in the web layer: only a spectrum's owner (or an admin)
replaces or deletes it; only a campaign's organiser (or an admin) publishes in it.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

from sqlalchemy import delete, func, select

from rosace_core.clock import now
from rosace_core.errors import ConflictError, NotFoundError, RosaceError
from rosace_core.observing_file import parse_observing_file
from rosace_core.state import atomic_write
from rosace_share import db
from rosace_share.db import Account, AuditEntry, Campaign, CampaignFile, Report, SpectrumRecord
from rosace_share.spectra import (
    SpectrumData,
    SpectrumInvalid,
    aras_name,
    bess_fits,
    content_hash,
    csv_text,
    describe,
    object_key,
    observation_id,
    open_spectrum,
    read_spectrum_file,
)

ROLES = ("observer", "organiser", "admin")
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


class PermissionDenied(RosaceError):
    """The caller is identified but not allowed to do this (HTTP 403)."""


class TooLarge(RosaceError):
    """An upload exceeds the configured size limit (HTTP 413)."""


class DuplicateSpectrum(ConflictError):
    """The same file (same content hash) is already in the archive; ``existing_id`` names it."""

    def __init__(self, existing_id: int):
        self.existing_id = existing_id
        super().__init__(f"this spectrum is already archived as #{existing_id}", [f"same content hash as spectrum {existing_id}"])


@dataclass(frozen=True)
class Principal:
    """Who makes a request: an account name and role."""

    name: str
    role: str = "observer"
    #: The account's id; None for this installation's own token. Ownership is matched on it,
    #: never on the name (an account may be named like the installation).
    account_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _owned_by(account_id: int | None, name: str):
    """SQL condition: the spectrum belongs to this account, or (no account: the installation's
    own token, local tools) to this owner name among the rows of no account."""
    if account_id is not None:
        return SpectrumRecord.owner_account == account_id
    return SpectrumRecord.owner_account.is_(None) & (SpectrumRecord.owner == name)


def _is_owner(rec, who: "Principal") -> bool:
    if who.account_id is not None:
        return rec.owner_account == who.account_id
    return rec.owner_account is None and rec.owner == who.name


def utcnow() -> datetime:
    """Observatory time as naive UTC (what the database stores)."""
    return now().astimezone(timezone.utc).replace(tzinfo=None)


def token_digest(token: str) -> str:
    """Tokens are stored hashed: a leaked database does not leak credentials."""
    return hashlib.sha256(token.encode()).hexdigest()


def _as_datetime(value, end: bool = False) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime.combine(value, time.max if end else time.min)
    else:
        text = str(value).strip()
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise RosaceError(f"{text!r} is not an ISO date or date-time") from None
        if end and len(text) == 10:
            dt = datetime.combine(dt.date(), time.max)
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


class Archive:
    """A spectra archive on a database URL and a storage folder."""

    def __init__(self, url: str, storage: Path | str, *, max_upload_bytes: int = 10 * 2**20, require_known_campaign: bool = False, migrate: bool = True):
        self.url = url
        self.storage = Path(storage)
        self.storage.mkdir(parents=True, exist_ok=True)
        self.max_upload_bytes = max_upload_bytes
        self.require_known_campaign = require_known_campaign
        self.engine = db.make_engine(url)
        if migrate:
            db.upgrade(self.engine)
        self.Session = db.session_factory(self.engine)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ audit

    def audit(self, session, actor: Principal | str, action: str, target: str = "", detail: str = "") -> None:
        """Record an action in the audit log (same transaction as the change)."""
        session.add(AuditEntry(time=utcnow(), actor=getattr(actor, "name", actor), action=action, target=target[:200], detail=detail))

    def audit_log(self, limit: int = 200) -> list[dict]:
        """Most recent audit entries first."""
        with self.Session() as s:
            rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)).all()
            return [{"id": r.id, "time": r.time.isoformat(), "actor": r.actor, "action": r.action, "target": r.target, "detail": r.detail} for r in rows]

    # ------------------------------------------------------------------ accounts

    def create_account(self, name: str, role: str = "observer", actor: Principal | str = "admin") -> tuple[Account, str]:
        """Create an account; return it and its API token (shown once, stored hashed)."""
        name = name.strip()
        if not SLUG.match(name):
            raise RosaceError("account names use letters, digits, '.', '_' or '-' (up to 80)")
        if role not in ROLES:
            raise RosaceError(f"role must be one of {', '.join(ROLES)}")
        token = secrets.token_urlsafe(24)
        with self.Session.begin() as s:
            if s.scalar(select(Account.id).where(Account.name == name)) is not None:
                raise ConflictError(f"account {name!r} exists")
            account = Account(name=name, role=role, token_hash=token_digest(token), created=utcnow())
            s.add(account)
            self.audit(s, actor, "account.create", name, role)
        return account, token

    def principal_for_token(self, token: str) -> Principal | None:
        """The account owning ``token``, or None."""
        with self.Session() as s:
            acc = s.scalar(select(Account).where(Account.token_hash == token_digest(token)))
            return Principal(acc.name, acc.role, acc.id) if acc else None

    def accounts(self) -> list[dict]:
        """Every account (never the tokens)."""
        with self.Session() as s:
            return [{"id": a.id, "name": a.name, "role": a.role, "created": a.created.isoformat()} for a in s.scalars(select(Account).order_by(Account.name))]

    # ------------------------------------------------------------------ spectra

    def _path(self, sha: str) -> Path:
        return self.storage / sha[:2] / f"{sha}.fits"

    def _store(self, sha: str, data: bytes) -> Path:
        path = self._path(sha)
        if path.exists():
            return path
        return atomic_write(path, data, suffix=".part")

    def _check_upload(self, data: bytes) -> tuple[str, SpectrumData]:
        if len(data) > self.max_upload_bytes:
            raise TooLarge(f"the file is {len(data) / 2**20:.1f} MiB; this archive accepts up to {self.max_upload_bytes / 2**20:.1f} MiB")
        if not data:
            raise SpectrumInvalid(["the file is empty"])
        return content_hash(data), open_spectrum(data)

    def _apply(self, rec: SpectrumRecord, spec: SpectrumData) -> None:
        meta = describe(spec)
        for key, value in meta.__dict__.items():
            setattr(rec, key, value)
        rec.object_key = object_key(meta.object)

    def add(self, data: bytes, *, owner: Principal | str, campaign: str | None = None, filename: str = "") -> SpectrumRecord:
        """Validate and archive a FITS spectrum; raise DuplicateSpectrum, SpectrumInvalid or TooLarge.

        A new version of an observation already archived for the same owner
        (same non-empty ROSOBSID: a re-reduction with the night's bias/darks or
        a better instrument response) replaces it, as :meth:`replace` does: same
        id, new file, metadata re-read, old file removed, a "spectrum.replace"
        audit entry. The returned record's ``replaced`` is then the old file's
        hash (None when a spectrum was added). The campaign is kept unless the
        upload names one. Another owner's spectrum with the same ROSOBSID is a
        different spectrum.
        """
        sha, spec = self._check_upload(data)
        campaign = (campaign or "").strip() or None
        who = owner.name if isinstance(owner, Principal) else owner
        who_id = owner.account_id if isinstance(owner, Principal) else None
        obs_id = observation_id(spec.header)
        with self.Session.begin() as s:
            existing = s.scalar(select(SpectrumRecord.id).where(SpectrumRecord.sha256 == sha))
            if existing is not None:
                raise DuplicateSpectrum(existing)
            if campaign is not None:
                self._check_campaign(s, campaign)
            previous = None
            if obs_id is not None:
                # Newest first: rows uploaded twice before observation ids existed keep their older copy.
                previous = s.scalar(select(SpectrumRecord).where(_owned_by(who_id, who), SpectrumRecord.observation_id == obs_id)
                                    .order_by(SpectrumRecord.id.desc()).limit(1))
            if previous is not None:
                rec, old = previous, previous.sha256
                rec.sha256, rec.size = sha, len(data)
                rec.filename = Path(filename or rec.filename).name[:200]
                if campaign is not None:
                    rec.campaign = campaign
                self._apply(rec, spec)
                self._store(sha, data)
                self.audit(s, owner, "spectrum.replace", f"spectrum/{rec.id}", f"{old[:12]} -> {sha[:12]} (new version of observation {obs_id})")
            else:
                old = None
                rec = SpectrumRecord(sha256=sha, campaign=campaign, owner=who, owner_account=who_id, filename=Path(filename or "").name[:200], size=len(data), created=utcnow())
                self._apply(rec, spec)
                self._store(sha, data)
                s.add(rec)
                s.flush()
                self.audit(s, owner, "spectrum.add", f"spectrum/{rec.id}", f"{rec.object} {rec.date_obs:%Y-%m-%d %H:%M} {rec.campaign or ''}".strip())
        if old is not None:
            self._drop_file(old)
        rec.replaced = old
        return rec

    def _check_campaign(self, s, slug: str) -> None:
        if not SLUG.match(slug):
            raise RosaceError(f"campaign {slug[:80]!r}: letters, digits, '.', '_' or '-' only")
        if self.require_known_campaign and s.scalar(select(Campaign.id).where(Campaign.slug == slug)) is None:
            raise NotFoundError(f"no campaign {slug!r} on this server")

    def _owned(self, s, spectrum_id: int, who: Principal) -> SpectrumRecord:
        rec = s.get(SpectrumRecord, spectrum_id)
        if rec is None:
            raise NotFoundError(f"no spectrum {spectrum_id}")
        if not _is_owner(rec, who) and not who.is_admin:
            raise PermissionDenied(f"spectrum {spectrum_id} belongs to {rec.owner!r}; only its owner may change it")
        return rec

    def replace(self, spectrum_id: int, data: bytes, who: Principal, filename: str = "") -> SpectrumRecord:
        """Replace a spectrum's file (owner only); metadata is re-read from the new file."""
        sha, spec = self._check_upload(data)
        with self.Session.begin() as s:
            rec = self._owned(s, spectrum_id, who)
            other = s.scalar(select(SpectrumRecord.id).where(SpectrumRecord.sha256 == sha))
            if other is not None and other != spectrum_id:
                raise DuplicateSpectrum(other)
            old = rec.sha256
            rec.sha256, rec.size = sha, len(data)
            rec.filename = Path(filename or rec.filename).name[:200]
            self._apply(rec, spec)
            self._store(sha, data)
            self.audit(s, who, "spectrum.replace", f"spectrum/{spectrum_id}", f"{old[:12]} -> {sha[:12]}")
        if old != sha:
            self._drop_file(old)
        return rec

    def delete(self, spectrum_id: int, who: Principal) -> None:
        """Delete a spectrum (owner only)."""
        with self.Session.begin() as s:
            rec = self._owned(s, spectrum_id, who)
            sha = rec.sha256
            s.delete(rec)
            self.audit(s, who, "spectrum.delete", f"spectrum/{spectrum_id}", rec.object)
        self._drop_file(sha)

    def _drop_file(self, sha: str) -> None:
        try:
            self._path(sha).unlink()
        except OSError:
            pass

    def get(self, spectrum_id: int) -> SpectrumRecord:
        """One spectrum's record; NotFoundError if absent."""
        with self.Session() as s:
            rec = s.get(SpectrumRecord, spectrum_id)
            if rec is None:
                raise NotFoundError(f"no spectrum {spectrum_id}")
            return rec

    def set_upstream(self, spectrum_id: int, value: str) -> None:
        """Record where (or why not) a spectrum was forwarded upstream."""
        with self.Session.begin() as s:
            rec = s.get(SpectrumRecord, spectrum_id)
            if rec is not None:
                rec.upstream = value[:200]

    def unforwarded(self, limit: int = 1000) -> list[SpectrumRecord]:
        """Campaign results never forwarded upstream (``upstream`` empty): what a crash may have left unsent."""
        with self.Session() as s:
            q = select(SpectrumRecord).where(SpectrumRecord.campaign.is_not(None), SpectrumRecord.upstream.is_(None)).limit(limit)
            return list(s.scalars(q).all())

    def search(self, *, object: str | None = None, start=None, end=None, observer: str | None = None, instrument: str | None = None,
               min_snr: float | None = None, quality: str | None = None, campaign: str | None = None, limit: int = 100, offset: int = 0) -> tuple[list[SpectrumRecord], int]:
        """Spectra matching every given filter, newest first, and the total count.

        ``object`` matches the normalised name exactly; ``observer`` and
        ``instrument`` match a case-insensitive substring; ``start``/``end`` are
        ISO dates or date-times (UTC, inclusive).
        """
        conds = []
        if object:
            conds.append(SpectrumRecord.object_key == object_key(object))
        if (t0 := _as_datetime(start)) is not None:
            conds.append(SpectrumRecord.date_obs >= t0)
        if (t1 := _as_datetime(end, end=True)) is not None:
            conds.append(SpectrumRecord.date_obs <= t1)
        if observer:
            conds.append(func.lower(SpectrumRecord.observer).contains(observer.lower(), autoescape=True))
        if instrument:
            conds.append(func.lower(SpectrumRecord.instrument).contains(instrument.lower(), autoescape=True))
        if min_snr is not None:
            conds.append(SpectrumRecord.snr >= min_snr)
        if quality:
            order = {"good": ["good"], "fair": ["good", "fair"], "poor": ["good", "fair", "poor"]}
            conds.append(SpectrumRecord.quality.in_(order.get(quality, [quality])))
        if campaign:
            conds.append(SpectrumRecord.campaign == campaign)
        with self.Session() as s:
            total = s.scalar(select(func.count()).select_from(SpectrumRecord).where(*conds))
            rows = s.scalars(select(SpectrumRecord).where(*conds).order_by(SpectrumRecord.date_obs.desc(), SpectrumRecord.id.desc()).limit(limit).offset(offset)).all()
        return list(rows), int(total or 0)

    def epochs(self, object_name: str, limit: int = 5000) -> list[SpectrumRecord]:
        """All spectra of one object, oldest first."""
        with self.Session() as s:
            return list(s.scalars(select(SpectrumRecord).where(SpectrumRecord.object_key == object_key(object_name)).order_by(SpectrumRecord.jd).limit(limit)))

    def objects(self, limit: int = 2000) -> list[dict]:
        """Objects with their number of spectra, first and last date."""
        with self.Session() as s:
            rows = s.execute(
                select(SpectrumRecord.object_key, func.min(SpectrumRecord.object), func.count(), func.min(SpectrumRecord.date_obs), func.max(SpectrumRecord.date_obs))
                .group_by(SpectrumRecord.object_key).order_by(func.count().desc(), SpectrumRecord.object_key).limit(limit)
            ).all()
        return [{"object": name, "key": key, "spectra": n, "first": first.isoformat(), "last": last.isoformat()} for key, name, n, first, last in rows]

    def load(self, rec: SpectrumRecord) -> SpectrumData:
        """The stored spectrum's data."""
        path = self._path(rec.sha256)
        if not path.exists():
            raise NotFoundError(f"the file of spectrum {rec.id} is missing from the storage folder")
        return read_spectrum_file(path)

    def fits_bytes(self, rec: SpectrumRecord) -> bytes:
        """The stored file, byte for byte as uploaded."""
        path = self._path(rec.sha256)
        if not path.exists():
            raise NotFoundError(f"the file of spectrum {rec.id} is missing from the storage folder")
        return path.read_bytes()

    def zip_of(self, records: list[SpectrumRecord], *, bess: bool = True) -> bytes:
        """A ZIP of spectra under ARAS-style names (BeSS files when complete, else as stored) plus CSVs and an index."""
        buf = io.BytesIO()
        index = []
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for rec in records:
                spec = self.load(rec)
                name = aras_name(rec.object, rec.date_obs, rec.observer or None)
                stem, n = name[:-4], 1
                while f"{stem}.fit" in zf.namelist():
                    n += 1
                    stem = f"{name[:-4]}-{n}"
                note = "bess"
                try:
                    data = bess_fits(spec) if bess else self.fits_bytes(rec)
                except RosaceError as exc:
                    data, note = self.fits_bytes(rec), f"as stored ({exc})"
                zf.writestr(f"{stem}.fit", data)
                zf.writestr(f"{stem}.csv", csv_text(spec))
                index.append({"id": rec.id, "file": f"{stem}.fit", "object": rec.object, "date_obs": rec.date_obs.isoformat(), "observer": rec.observer, "export": note})
            zf.writestr("index.json", json.dumps(index, indent=2))
        return buf.getvalue()

    # ------------------------------------------------------------------ campaigns

    def create_campaign(self, slug: str, title: str, description: str, who: Principal) -> Campaign:
        """Create a campaign (organisers and admins)."""
        if who.role not in ("organiser", "admin"):
            raise PermissionDenied("only organisers create campaigns")
        if not SLUG.match(slug):
            raise RosaceError("a campaign id uses letters, digits, '.', '_' or '-' (up to 80)")
        with self.Session.begin() as s:
            if s.scalar(select(Campaign.id).where(Campaign.slug == slug)) is not None:
                raise ConflictError(f"campaign {slug!r} exists")
            camp = Campaign(slug=slug, title=title, description=description, organiser=who.name, created=utcnow())
            s.add(camp)
            self.audit(s, who, "campaign.create", f"campaign/{slug}", title)
        return camp

    def campaign(self, slug: str) -> Campaign:
        """One campaign; NotFoundError if absent."""
        with self.Session() as s:
            camp = s.scalar(select(Campaign).where(Campaign.slug == slug))
            if camp is None:
                raise NotFoundError(f"no campaign {slug!r}")
            return camp

    def campaigns(self) -> list[Campaign]:
        """Every campaign, newest first."""
        with self.Session() as s:
            return list(s.scalars(select(Campaign).order_by(Campaign.id.desc())))

    def delete_campaign(self, slug: str, who: Principal) -> None:
        """Delete a campaign and its files (its organiser or an admin); spectra keep their tag."""
        with self.Session.begin() as s:
            camp = s.scalar(select(Campaign).where(Campaign.slug == slug))
            if camp is None:
                raise NotFoundError(f"no campaign {slug!r}")
            self._may_manage(camp, who)
            s.execute(delete(CampaignFile).where(CampaignFile.campaign_id == camp.id))
            s.delete(camp)
            self.audit(s, who, "campaign.delete", f"campaign/{slug}")

    @staticmethod
    def _may_manage(camp: Campaign, who: Principal) -> None:
        if camp.organiser != who.name and not who.is_admin:
            raise PermissionDenied(f"campaign {camp.slug!r} is managed by {camp.organiser!r}")

    def publish_file(self, slug: str, content: str, fmt: str | None, filename: str, who: Principal) -> CampaignFile:
        """Publish an Observing File in a campaign after validating it (ObservingFileError when invalid)."""
        of = parse_observing_file(content, source=filename or "<upload>", fmt=fmt)
        with self.Session.begin() as s:
            camp = s.scalar(select(Campaign).where(Campaign.slug == slug))
            if camp is None:
                raise NotFoundError(f"no campaign {slug!r}")
            self._may_manage(camp, who)
            old = s.scalar(select(CampaignFile).where(CampaignFile.campaign_id == camp.id, CampaignFile.file_id == of.id))
            if old is not None:
                s.delete(old)
            cf = CampaignFile(campaign_id=camp.id, file_id=of.id, filename=Path(filename or f"{of.id}.yaml").name[:200], format=fmt or ("json" if content.lstrip().startswith("{") else "yaml"),
                              content=content, sha256=hashlib.sha256(content.encode()).hexdigest(), target=of.target.name[:120], created=utcnow())
            s.add(cf)
            s.flush()
            self.audit(s, who, "campaign.publish", f"campaign/{slug}/{of.id}", cf.sha256[:12])
        return cf

    def campaign_files(self, slug: str) -> list[CampaignFile]:
        """The Observing Files of a campaign."""
        camp = self.campaign(slug)
        with self.Session() as s:
            return list(s.scalars(select(CampaignFile).where(CampaignFile.campaign_id == camp.id).order_by(CampaignFile.id)))

    # ------------------------------------------------------------------ reports

    def add_report(self, title: str, body_html: str, sections: list, who: Principal | str) -> Report:
        """Store a report shown at /gallery/reports/<id>."""
        with self.Session.begin() as s:
            rep = Report(title=title, body_html=body_html, sections=sections, author=getattr(who, "name", who), created=utcnow())
            s.add(rep)
            s.flush()
            self.audit(s, who, "report.add", f"report/{rep.id}", title[:100])
        return rep

    def report(self, report_id: int) -> Report:
        """One report; NotFoundError if absent."""
        with self.Session() as s:
            rep = s.get(Report, report_id)
            if rep is None:
                raise NotFoundError(f"no report {report_id}")
            return rep

    def reports(self, limit: int = 100) -> list[Report]:
        """Recent reports, newest first."""
        with self.Session() as s:
            return list(s.scalars(select(Report).order_by(Report.id.desc()).limit(limit)))

