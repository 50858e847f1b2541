"""Atomic writes of state and product files.

Every file another process (or the same one after a crash) reads back is written
here: into a temporary file with a unique name in the same folder, flushed to
disk, then renamed over the final name. A reader therefore sees the old file or
the new one, never half of one; concurrent writers never share a temporary file
(one shared ``.tmp`` name made 31 of 80 concurrent dome saves fail); and a
power cut leaves at worst a stray temporary file, never a truncated state.

The standard library has the pieces (``tempfile.mkstemp``, ``os.replace``) but
no one call that does all of it; the few lines are kept in this one place.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

# os.replace over a file another process has open fails on Windows with a
# sharing violation (PermissionError) that clears within milliseconds.
_REPLACE_ATTEMPTS = 5


def atomic_write(path: Path | str, content: bytes | str | Callable[[Path], Any], *, suffix: str = ".tmp",
                 encoding: str = "utf-8", fsync: bool = True) -> Path:
    """Write ``content`` to ``path`` atomically; return ``path``.

    ``content`` is bytes, text (encoded with ``encoding``) or a callable that
    writes the file at the temporary path it is given (e.g. an astropy
    ``writeto``). The temporary file is ``.<name>.<random><suffix>`` in the
    target folder (created if missing) and is removed if anything fails.
    Raises OSError (disk full, folder not writable...) with the final path in
    its message; the previous file, if any, is left untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    tmp = Path(tmp_name)
    try:
        if callable(content):
            os.close(fd)
            content(tmp)
            if fsync:
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
        else:
            data = content.encode(encoding) if isinstance(content, str) else bytes(content)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                if fsync:
                    os.fsync(fh.fileno())
        for attempt in range(_REPLACE_ATTEMPTS):
            try:
                os.replace(tmp, path)
                break
            except PermissionError:
                if os.name != "nt" or attempt == _REPLACE_ATTEMPTS - 1:
                    raise
                time.sleep(0.02 * (attempt + 1))
    except OSError as exc:
        _remove(tmp)
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp)
        raise
    return path


def atomic_write_json(path: Path | str, data: Any, *, indent: int | None = 1, **dumps) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, json.dumps(data, indent=indent, **dumps))


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink()
    except OSError:
        pass
