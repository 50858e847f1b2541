"""``rosace demo``: run a whole night on the simulated observatory, with a live display."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def register(sub):
    p = sub.add_parser(
        "demo",
        help="run a whole unattended night on the simulated observatory (five modules as processes)",
        description="Start the simulated observatory and the five modules as separate processes under a "
        "simulated clock, observe the bundled Observing Files through a night with a cloudy "
        "interruption and rain before dawn, reduce and archive the spectra, and print a summary. "
        "Exit status 0 only if the night met the scenario's expectations. "
        "With the global --config, the night is a rehearsal of YOUR observatory: your site, instrument, "
        "module options and Observing Files (the scheduler's queue_folder), on the simulated hardware.",
    )
    p.add_argument("--folder", help="run folder (default: a new temporary folder)")
    p.add_argument("--scenario", help="simulator scenario file (default: resources/scenarios/demo_night.yaml)")
    p.add_argument("--rate", type=float, help="simulated seconds per wall second (default from the scenario)")
    p.add_argument("--desktop", action="store_true", help="also open the desktop connected to the running modules")
    p.add_argument("--json", action="store_true", help="print the summary as JSON at the end")
    p.add_argument("--no-live", action="store_true", help="no live display (plain log lines)")
    p.add_argument("--keep-raw", action="store_true", help="keep the raw frames (about 1 GB a night); by default only spectra, logs and databases stay")
    p.add_argument("--slow-start", metavar="PROCESS=SECONDS", action="append", default=[],
                   help="hold back a process's start (sim, dome, scheduler, sequencer, reduction, share) by SECONDS, "
                   "as on a slow machine; the simulated clock waits for it (for testing; may be repeated)")
    p.set_defaults(func=cmd_demo)


def _slow_start(values: list[str]) -> dict[str, float]:
    from rosace_core.config import MODULE_IDS

    out = {}
    for value in values:
        name, sep, seconds = value.partition("=")
        try:
            delay = float(seconds)
        except ValueError:
            delay = -1.0
        if not sep or name not in ("sim", *MODULE_IDS) or not 0 <= delay <= 3600:
            raise SystemExit(f"rosace demo: --slow-start {value!r}: expected PROCESS=SECONDS with PROCESS one of "
                             f"sim, {', '.join(MODULE_IDS)} and 0-3600 seconds")
        out[name] = delay
    return out


def cmd_demo(args) -> int:
    if args.desktop:  # before the night starts: Qt is the optional ``desktop`` extra
        from rosace_desktop.cli import missing_desktop_extra

        message = missing_desktop_extra()
        if message:
            print(f"error: --desktop: {message}", file=sys.stderr)
            return 2
    from rosace_core.logs import setup_logging
    from rosace_demo.display import LiveDisplay, print_summary
    from rosace_demo.night import DemoNight

    slow_start = _slow_start(args.slow_start)
    # This process only starts and watches the others (each configures astropy
    # offline itself): not importing astropy here keeps ~60 MB off the night's total.
    folder = Path(args.folder) if args.folder else Path(tempfile.mkdtemp(prefix="rosace-demo-"))
    # The file keeps every event; the console shows only warnings under the live display.
    setup_logging("demo", "INFO", folder=folder / "logs", console_level="WARNING" if not args.no_live else "INFO")
    user_config = None
    if args.config:
        from rosace_core.config import load_config

        user_config = load_config(args.config)
    night = DemoNight(folder, scenario=args.scenario, rate=args.rate, user_config=user_config,
                      slow_start=slow_start, keep_raw=args.keep_raw)
    if user_config is not None:
        night.expectations = {"min_completed": 1, "min_targets": 1}
    display = None if args.no_live else LiveDisplay()
    desktop = None
    if display:
        night.on_tick = display.update
    if args.desktop:
        def open_desktop(n, snap, _state={"done": False}):  # noqa: B006 - a deliberate once-only flag
            nonlocal desktop
            if not _state["done"]:
                _state["done"] = True
                desktop = subprocess.Popen([sys.executable, "-m", "rosace_core.cli", "--config", str(n.folder / "rosace.toml"), "desktop", "--remote"])
            if display:
                display.update(n, snap)

        night.on_tick = open_desktop
    try:
        if display:
            with display:
                verdict = night.run()
        else:
            verdict = night.run()
    finally:
        if desktop is not None and desktop.poll() is None:
            desktop.terminate()
    if not args.keep_raw:
        verdict.setdefault("figures", {})["raw_frames"] = night.remove_raw()
    if args.json:
        print(json.dumps(verdict, indent=2, default=str))
    else:
        print_summary(night, verdict)
    return 0 if verdict["passed"] else 1
