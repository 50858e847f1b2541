"""The archive's database: SQLAlchemy 2 models, engine and Alembic migrations.

SQLite (embedded default) and PostgreSQL (share server) run the same code. The
schema is created and upgraded only by Alembic (``upgrade head`` on start), so
an archive written by an older release is migrated, never recreated.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    """Declarative base of the archive tables."""


class Account(Base):
    """An observer (or organiser) of the network, identified by an API token."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(16), default="observer")  # observer | organiser | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created: Mapped[datetime] = mapped_column(DateTime)


class Campaign(Base):
    """An observing campaign: an organiser publishes Observing Files, observatories send results."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    organiser: Mapped[str] = mapped_column(String(80))
    created: Mapped[datetime] = mapped_column(DateTime)


class CampaignFile(Base):
    """An Observing File published in a campaign (kept verbatim)."""

    __tablename__ = "campaign_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"), index=True)
    file_id: Mapped[str] = mapped_column(String(80))
    filename: Mapped[str] = mapped_column(String(200))
    format: Mapped[str] = mapped_column(String(8))
    content: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(120))
    created: Mapped[datetime] = mapped_column(DateTime)


class SpectrumRecord(Base):
    """One reduced 1D spectrum: its metadata; the FITS file lives in the storage folder."""

    __tablename__ = "spectra"
    __table_args__ = (Index("ix_spectra_object_jd", "object_key", "jd"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    object: Mapped[str] = mapped_column(String(120))
    object_key: Mapped[str] = mapped_column(String(120))
    date_obs: Mapped[datetime] = mapped_column(DateTime, index=True)
    jd: Mapped[float] = mapped_column(Float)
    exptime: Mapped[float | None] = mapped_column(Float, nullable=True)
    observer: Mapped[str] = mapped_column(String(120), default="", index=True)
    site: Mapped[str] = mapped_column(String(120), default="")
    instrument: Mapped[str] = mapped_column(String(120), default="", index=True)
    resolving_power: Mapped[float | None] = mapped_column(Float, nullable=True)
    measured_r: Mapped[float | None] = mapped_column(Float, nullable=True)
    wl_min: Mapped[float] = mapped_column(Float)
    wl_max: Mapped[float] = mapped_column(Float)
    n_pixels: Mapped[int] = mapped_column(Integer)
    snr: Mapped[float | None] = mapped_column(Float, nullable=True)
    wl_rms: Mapped[float | None] = mapped_column(Float, nullable=True)
    normalised: Mapped[bool] = mapped_column(Boolean, default=False)
    quality: Mapped[str] = mapped_column(String(16), default="good", index=True)  # good | fair | poor
    flags: Mapped[list] = mapped_column(JSON, default=list)
    campaign: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    owner: Mapped[str] = mapped_column(String(80), default="")  # the owner's name, for display
    # Who may change it: the owning account's id, NULL for the installation itself.
    owner_account: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    filename: Mapped[str] = mapped_column(String(200), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    header: Mapped[dict] = mapped_column(JSON, default=dict)
    provenance: Mapped[dict] = mapped_column(JSON, default=dict)
    bess_missing: Mapped[list] = mapped_column(JSON, default=list)
    upstream: Mapped[str | None] = mapped_column(String(200), nullable=True)  # forwarded copy: "<url>#<id>[ (note)]", "<url> (note)" or "error: ..."
    created: Mapped[datetime] = mapped_column(DateTime)
    # ROSOBSID of the FITS (NULL for spectra from other software): a re-reduction of
    # the same observation by the same owner replaces the record (Archive.add).
    observation_id: Mapped[str | None] = mapped_column(String(120), nullable=True, index=True)

    #: Not a column. Archive.add sets it to the sha256 of the file an upload replaced
    #: (a new version of the same observation); None when the upload added a spectrum.
    replaced = None


class Report(Base):
    """A night summary or any HTML report shown in the gallery."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body_html: Mapped[str] = mapped_column(Text, default="")
    sections: Mapped[list] = mapped_column(JSON, default=list)
    author: Mapped[str] = mapped_column(String(80), default="")
    created: Mapped[datetime] = mapped_column(DateTime)


class AuditEntry(Base):
    """Who changed what, when (never edited)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str] = mapped_column(String(200), default="")
    detail: Mapped[str] = mapped_column(Text, default="")


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL and foreign keys so that it behaves like the server."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if ":memory:" not in url:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (creates it on an empty database)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None when never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def session_factory(engine: Engine) -> sessionmaker:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)
