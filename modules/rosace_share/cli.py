"""``rosace share ...`` commands beyond ``serve``: import spectra, create accounts, export."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _archive(args):
    from rosace_core.config import load_config
    from rosace_share.archive import Archive
    from rosace_share.settings import database_url, share_options, storage_folder

    cfg = load_config(args.config)
    opts = share_options(cfg)
    return Archive(database_url(cfg, opts), storage_folder(cfg, opts), max_upload_bytes=int(opts.max_upload_mb * 2**20)), opts


def cmd_import(args) -> int:
    """Add FITS files (or every FITS in folders) to the local archive."""
    from rosace_core.errors import ConflictError, RosaceError

    archive, opts = _archive(args)
    paths = []
    for name in args.paths:
        p = Path(name)
        paths += sorted(q for q in p.rglob("*") if q.suffix.lower() in (".fits", ".fit", ".fts")) if p.is_dir() else [p]
    added = replaced = dupes = bad = 0
    for path in paths:
        try:
            rec = archive.add(path.read_bytes(), owner=opts.observer or "observatory", campaign=args.campaign, filename=path.name)
            if rec.replaced is not None:  # a new version of an observation already archived (same ROSOBSID)
                replaced += 1
            else:
                added += 1
        except ConflictError:
            dupes += 1
        except (RosaceError, OSError) as exc:
            bad += 1
            print(f"{path}: {exc}", file=sys.stderr)
    print(f"added {added}, replaced by a new version {replaced}, already archived {dupes}, rejected {bad}")
    archive.close()
    return 0 if bad == 0 else 1


def cmd_account(args) -> int:
    """Create an observer account on this archive and print its token once."""
    archive, _ = _archive(args)
    account, token = archive.create_account(args.name, args.role, actor="cli")
    print(json.dumps({"name": account.name, "role": account.role, "token": token}))
    archive.close()
    return 0


def cmd_export(args) -> int:
    """Export one spectrum (BeSS FITS or CSV) under its ARAS-style name."""
    from rosace_share.spectra import aras_name, bess_fits, csv_text

    archive, _ = _archive(args)
    rec = archive.get(args.id)
    spec = archive.load(rec)
    out = Path(args.out or ".")
    if out.is_dir():
        name = aras_name(rec.object, rec.date_obs, rec.observer or None)
        out = out / (name[:-4] + ".csv" if args.csv else name)
    out.write_bytes(csv_text(spec).encode() if args.csv else bess_fits(spec))
    print(out)
    archive.close()
    return 0


def register(msub, sub=None) -> None:
    """Add the share commands to ``rosace share``."""
    p = msub.add_parser("import", help="add reduced FITS spectra (files or folders) to the local archive")
    p.add_argument("paths", nargs="+")
    p.add_argument("--campaign", help="campaign the spectra belong to")
    p.set_defaults(func=cmd_import)
    p = msub.add_parser("account", help="create an observer account and print its API token")
    p.add_argument("name")
    p.add_argument("--role", default="observer", choices=["observer", "organiser", "admin"])
    p.set_defaults(func=cmd_account)
    p = msub.add_parser("export", help="export a spectrum as BeSS FITS (checked) or CSV")
    p.add_argument("id", type=int)
    p.add_argument("--out", help="file or folder (default: current folder, ARAS-style name)")
    p.add_argument("--csv", action="store_true", help="CSV instead of BeSS FITS")
    p.set_defaults(func=cmd_export)
