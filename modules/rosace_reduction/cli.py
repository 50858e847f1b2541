"""Command line: ``rosace reduce NIGHT_FOLDER`` and ``rosace reduction reduce ...``."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _add_reduce_arguments(p) -> None:
    p.add_argument("paths", nargs="+", help="night folder(s) of raw frames, or FITS files")
    p.add_argument("--force", action="store_true", help="reduce again observations already reduced with the same inputs")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="worker processes (default: 2 or the number of cores)")
    p.add_argument("--output", help="output root (default: [reduction] output, else <data root>/reduced)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--instrument", metavar="SETUP",
                   help="instrument set-up of every frame (a name such as alpy600 or a .toml path), for frames whose "
                        "INSTRUME holds the camera name (N.I.N.A., MaxIm DL, SharpCap, Prism)")
    p.set_defaults(func=cmd_reduce)


def register(module_subparsers, top_subparsers=None) -> None:
    """Add ``reduction reduce`` and the top-level ``reduce`` command."""
    p = module_subparsers.add_parser("reduce", help="reduce a night folder of raw frames to BeSS spectra")
    _add_reduce_arguments(p)
    if top_subparsers is not None:
        p = top_subparsers.add_parser("reduce", help="reduce a night folder of raw frames to BeSS spectra (with a progress bar)")
        _add_reduce_arguments(p)


def cmd_reduce(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from rosace_core.astro import configure_offline
    from rosace_core.config import load_config
    from rosace_reduction.batch import options_from_config, reduce_paths

    configure_offline()
    console = Console(stderr=True)
    cfg = load_config(getattr(args, "config", None))
    options = options_from_config(cfg)
    if args.output:
        options.output_root = str(Path(args.output))
    if getattr(args, "instrument", None):
        from rosace_core.errors import RosaceError
        from rosace_reduction.instrument import load_instrument

        try:
            load_instrument(args.instrument, tuple(options.instrument_search))
        except RosaceError as exc:
            console.print(f"[red]error:[/red] --instrument {args.instrument}: {exc}")
            return 2
        options.instrument = args.instrument
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]error:[/red] no such file or folder: {', '.join(missing)}")
        return 2
    with Progress(TextColumn("[bold]reduce"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.description}"), console=console, transient=False, disable=args.json) as bar:
        task = bar.add_task("scanning", total=None)

        def progress(done: int, total: int, message: str) -> None:
            bar.update(task, completed=done, total=total, description=message)

        report = reduce_paths(paths, options, force=args.force, workers=max(1, args.workers), progress=progress)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        for path, reason in report.bad_files:
            console.print(f"[yellow]skipped[/yellow] {path}: {reason}")
        for o in report.outcomes:
            if o.status == "failed":
                console.print(f"[red]failed[/red] {o.object} ({o.observation_id}): {o.message}")
            elif o.record:
                q = o.record["quality"]
                console.print(f"[green]{o.status}[/green] {o.object}: {o.record['products']['fits']}  S/N {q['snr']:.0f}, RMS {q['wavelength_rms_angstrom']:.3f} A, R {q['resolving_power']:.0f}")
        c = report.counts
        console.print(f"{c.get('reduced', 0)} reduced, {c.get('skipped', 0)} up to date, {c.get('failed', 0)} failed, {len(report.bad_files)} files skipped; output in {options.output_root}")
    return 1 if report.counts.get("failed") else 0
