"""API tokens: where a module server and its clients find the bearer token.

Every state-changing request needs ``Authorization: Bearer <token>``. The token
comes, in order, from the configuration (``[server] token`` or the module's own),
the ``ROSACE_TOKEN`` environment variable, or a token file created once per
installation in the user's config folder, so that a server and the desktop on
the same PC agree without any set-up while a remote client must be given it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal, overload

import platformdirs


def token_file() -> Path:
    """Return the path of this installation's token file."""
    return Path(platformdirs.user_config_dir("rosace", appauthor=False)) / "api-token"


@overload
def local_token(create: Literal[True] = ...) -> str: ...
@overload
def local_token(create: bool) -> str | None: ...
def local_token(create: bool = True) -> str | None:
    """Return this installation's token, creating the file on first use."""
    path = token_file()
    if path.exists():
        text = path.read_text(encoding="utf-8").strip()
        if text:
            return text
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    # Created owner-only from the first byte (os.open's mode), not chmod-ed after writing:
    # no moment where another user could read it. Windows ignores the mode; the user folder is private.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it meanwhile: use theirs
        return local_token(create=False) or token
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(token + "\n")
    return token


def explicit_token(config=None, module: str | None = None) -> str | None:
    """Return a token set on purpose (configuration or environment), else None."""
    if config is not None:
        token = config.module_token(module) if module else config.server.token
        if token:
            return token
    return os.environ.get("ROSACE_TOKEN") or None


def resolve_token(config=None, module: str | None = None) -> str:
    """Return the token a server should require or a client should present."""
    return explicit_token(config, module) or local_token()
