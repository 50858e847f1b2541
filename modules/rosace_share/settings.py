"""Options of the share module (the ``[share]`` table of the configuration)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rosace_core.config import module_options


class ShareOptions(BaseModel):
    """What ``[share]`` may contain; every key is optional."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["observatory", "server"] = Field(
        "observatory",
        description="observatory: one observatory's archive, writes with the installation token; "
        "server: a network share server with observer accounts",
    )
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite at <data root>/share/archive.sqlite")
    storage: Path | None = Field(None, description="folder of the stored FITS files; default <data root>/share/spectra")
    max_upload_mb: float = Field(10.0, gt=0, le=1024, description="largest accepted upload, MiB")
    gallery_title: str = Field("ROSACE spectra", max_length=120)
    observer: str | None = Field(None, description="owner name of spectra uploaded with the installation token")
    upstream_url: str | None = Field(None, description="share server that receives this observatory's campaign results")
    upstream_token: str | None = Field(None, description="this observatory's account token on the upstream server")
    upstream_backoff: float = Field(2.0, gt=0, description="wall seconds before a failed forward upstream is tried again; doubles each time")
    upstream_max_backoff: float = Field(30.0, gt=0, description="longest wait between two tries of a forward upstream, wall seconds")
    require_known_campaign: bool | None = Field(None, description="refuse uploads naming an unknown campaign (default: on in server mode)")


def share_options(config=None) -> ShareOptions:
    """Validate ``config.share`` (a dict) and return the options; raise ConfigError naming the key."""
    return module_options(config, "share", ShareOptions)


def data_root(config=None) -> Path:
    """The observatory's data root folder (the configuration's, else the user data folder)."""
    if config is not None:
        return Path(config.data.root)
    from rosace_core.config import ObservatoryConfig

    return Path(ObservatoryConfig().data.root)


def database_url(config=None, options: ShareOptions | None = None) -> str:
    """The archive's SQLAlchemy URL (an explicit one, else SQLite in the data folder)."""
    options = options or share_options(config)
    if options.database_url:
        return options.database_url
    path = data_root(config) / "share" / "archive.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path.as_posix()}"


def storage_folder(config=None, options: ShareOptions | None = None) -> Path:
    """Folder holding the stored FITS files."""
    options = options or share_options(config)
    folder = Path(options.storage) if options.storage else data_root(config) / "share" / "spectra"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
