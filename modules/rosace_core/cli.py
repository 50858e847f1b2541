"""The ``rosace`` command line: one entry point, a subcommand per task and per module.

Modules add their ``serve`` command (and any others) through their ModuleSpec;
the simulator, desktop and demo register theirs the same way, imported lazily
so that ``rosace validate`` stays fast and works without Qt.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rosace_core import __version__
from rosace_core.errors import RosaceError

log = logging.getLogger("rosace")

#: Extra command groups that are not tab modules: (name, "package.module:register").
EXTRA_COMMANDS = (
    ("sim", "rosace_sim.cli:register"),
    ("desktop", "rosace_desktop.cli:register"),
    ("demo", "rosace_demo.cli:register"),
)


def _load_config(args):
    from rosace_core.config import load_config

    return load_config(args.config)


# --------------------------------------------------------------------------- validate


def cmd_validate(args) -> int:
    from rosace_core.observing_file import ObservingFileError, load_observing_file

    results = []
    ok = True
    for name in args.files:
        path = Path(name)
        try:
            of = load_observing_file(path)
            results.append({"file": str(path), "valid": True, "id": of.id, "errors": []})
            if not args.json:
                print(f"{path}: OK ({of.id}, {of.target.name})")
        except ObservingFileError as exc:
            ok = False
            results.append({"file": str(path), "valid": False, "errors": [p.to_dict() for p in exc.problems]})
            if not args.json:
                print(exc.report(), file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if ok else 1


def cmd_schema(args) -> int:
    from rosace_core.observing_file import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


# --------------------------------------------------------------------------- config


def cmd_config_init(args) -> int:
    from rosace_core.config import default_config_path, example_config_text

    path = Path(args.path) if args.path else (Path(args.config) if args.config else default_config_path())
    if path.exists() and not args.force:
        print(f"{path} exists; use --force to overwrite", file=sys.stderr)
        return 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config_text(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_config_check(args) -> int:
    from rosace_core.config import default_config_path, load_config

    path = args.path or args.config
    cfg = load_config(path)
    where = cfg.source if cfg.source else f"{default_config_path()} (not found: built-in defaults)"
    print(f"{where}: OK")
    print(f"  site: {cfg.site.name} ({cfg.site.latitude:.4f}, {cfg.site.longitude:.4f}, {cfg.site.elevation:.0f} m)")
    print(f"  shelter: {cfg.devices.shelter}; spectrograph: {cfg.instrument.spectrograph}")
    print(f"  data: {cfg.data.root}")
    return _check_spectrograph(cfg)


def _check_spectrograph(cfg) -> int:
    """Load the mounted set-up file as every module will (rosace_core.instrument); 1 with the reason if it cannot be."""
    from rosace_core.errors import ConfigError
    from rosace_core.instrument import load_instrument

    spec = str(cfg.instrument.spectrograph)
    path = Path(spec)
    if path.suffix.lower() == ".toml" and not path.is_absolute() and not path.exists() and isinstance(cfg.source, Path):
        path = cfg.source.parent / path  # a relative set-up path is taken from the configuration's folder too
        spec = str(path)
    try:
        setup = load_instrument(spec)
    except ConfigError as exc:
        print(f"error: [instrument] spectrograph: {exc}", file=sys.stderr)
        return 1
    det = setup.detector
    known = ", ".join(f"{k} {det.declared(k):g}" for k in ("gain", "read_noise") if det.declared(k) is not None)
    print(f"  set-up: {setup.name} ({setup.kind}, {setup.dispersion.wavelength_min:g}-{setup.dispersion.wavelength_max:g} A"
          f"{', ' + known if known else ''}) from {setup.source}")
    missing = [k for k in ("gain", "read_noise") if det.declared(k) is None]
    if missing:
        print(f"  warning: the set-up gives no detector {' or '.join(missing)}: raw frames will not carry "
              f"{' or '.join({'gain': 'GAIN', 'read_noise': 'RDNOISE'}[k] for k in missing)}")
    return 0


# --------------------------------------------------------------------------- devices


def cmd_devices_check(args) -> int:
    from rosace_core.devices import all_usable, check_devices

    cfg = _load_config(args)
    reports = check_devices(cfg)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2, default=str))
    else:
        from rich.console import Console
        from rich.table import Table

        styles = {"ok": "green", "limited": "yellow", "refused": "red", "missing": "bold red"}
        table = Table(title=f"Devices of {cfg.source or 'the built-in configuration'}", show_lines=True)
        for column in ("device", "status", "Alpaca device", "ROSACE will use", "missing / refused"):
            table.add_column(column, overflow="fold")
        for r in reports:
            table.add_row(f"{r.title}\n[dim]{r.role}: {r.url} #{r.device_number}[/dim]", f"[{styles[r.status]}]{r.status}[/]",
                          r.name or "-", "\n".join(r.uses) or "-", "\n".join(r.missing) or "-")
        console = Console(width=max(100, Console().width))
        console.print(table)
        bad = [r.title for r in reports if r.status in ("missing", "refused")]
        console.print("[red]not usable: " + ", ".join(bad) + "[/]" if bad else "[green]every device is usable[/]")
    return 0 if all_usable(reports) else 1


# --------------------------------------------------------------------------- modules


def _serve_factory(spec):
    def cmd_serve(args) -> int:
        from rosace_core.astro import configure_offline, load_earth_orientation
        from rosace_core.logs import setup_logging
        from rosace_core.rest import serve

        configure_offline()
        setup_logging(spec.id, args.log_level)
        cfg = _load_config(args)
        if spec.extra.get("earth_orientation", True):
            # Read the IERS table now and free what reading it left (60-90 MB a
            # process otherwise kept until a full garbage collection).
            load_earth_orientation()
        host = args.host or cfg.server.host
        if args.port:
            port = args.port
        elif spec.id in cfg.modules:
            port = int(cfg.module_url(spec.id).rsplit(":", 1)[-1].split("/")[0] or spec.port)
        else:
            port = spec.port
        app = spec.create_app(cfg)
        if spec.extra.get("guardian") and not getattr(args, "no_guardian", False):
            # The module's independent watchdog (the dome's guardian): a separate process
            # that must outlive this one, so it is started, never stopped, from here.
            from rosace_core.plugins import load_object

            try:
                load_object(spec.extra["guardian"])(cfg, args.config, args.host, port, args.log_level)
            except Exception as exc:  # the module still serves; say loudly that nothing watches it
                log.error("%s: could not start its guardian: %s", spec.id, exc)
        serve(app, host, port, config=cfg, module=spec.id)
        return 0

    return cmd_serve


def build_parser() -> argparse.ArgumentParser:
    """Build the whole argument parser (modules discovered from entry points)."""
    from rosace_core.plugins import discover_modules, load_object

    parser = argparse.ArgumentParser(
        prog="rosace",
        description="ROSACE: run a robotic spectroscopic observatory (dome, scheduler, sequencer, reduction, share).",
    )
    parser.add_argument("--version", action="version", version=f"rosace {__version__}")
    parser.add_argument("--config", help="observatory configuration file (default: the user config folder, or ROSACE_CONFIG)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="logging level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check Observing Files and report every error with its line and field")
    p.add_argument("files", nargs="+", help="Observing Files (YAML or JSON)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the JSON Schema of the Observing File format")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("config", help="write or check the observatory configuration")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = csub.add_parser("init", help="write the commented example configuration")
    q.add_argument("--path", help="where to write it (default: the user config folder)")
    q.add_argument("--force", action="store_true", help="overwrite an existing file")
    q.set_defaults(func=cmd_config_init)
    q = csub.add_parser("check", help="load and validate the configuration, report errors by key")
    q.add_argument("--path", help="configuration file to check")
    q.set_defaults(func=cmd_config_check)

    p = sub.add_parser("devices", help="check the configured Alpaca devices")
    dsub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)
    q = dsub.add_parser("check", help="connect to every configured device, read its capabilities, "
                                      "report what ROSACE will use and what is missing (exit 1 if a device is not usable)")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(func=cmd_devices_check)

    for loaded in discover_modules():
        spec = loaded.spec
        if spec is None:
            p = sub.add_parser(loaded.name, help=f"(module failed to load: {loaded.error})")
            p.set_defaults(func=lambda args, e=loaded.error: (print(e, file=sys.stderr), 2)[1])
            continue
        p = sub.add_parser(spec.id, help=f"{spec.title}: {spec.description}" if spec.description else spec.title, description=spec.description or spec.title)
        msub = p.add_subparsers(dest=f"{spec.id}_command", metavar="ACTION", required=True)
        s = msub.add_parser("serve", help=f"run the {spec.id} module headless behind its REST API (waitress)")
        s.add_argument("--host", help="address to listen on (default 127.0.0.1; other addresses need a configured token)")
        s.add_argument("--port", type=int, help=f"port (default from the configuration, {spec.port})")
        if spec.extra.get("guardian"):
            s.add_argument("--no-guardian", action="store_true", help="do not start the module's guardian process (another one runs)")
        s.set_defaults(func=_serve_factory(spec))
        if spec.cli:
            try:
                load_object(spec.cli)(msub, sub)
            except Exception as exc:  # a broken extra command must not hide the others
                log.debug("module %s CLI hook failed: %s", spec.id, exc)

    for name, ref in EXTRA_COMMANDS:
        try:
            load_object(ref)(sub)
        except ImportError as exc:
            p = sub.add_parser(name, help=f"(unavailable: {exc})")
            p.set_defaults(func=lambda args, e=exc: (print(f"unavailable: {e}", file=sys.stderr), 2)[1])
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except RosaceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
