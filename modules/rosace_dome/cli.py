"""Extra command-line actions of the dome module: ``rosace dome guardian``.

The guardian is the independent watchdog of the dome module (rosace_dome.guardian):
``rosace dome serve`` starts one by itself; run it by hand (or as a service) only
where the dome module is started some other way.
"""

from __future__ import annotations

import json
import logging
import signal
import threading


def cmd_guardian(args) -> int:
    from rosace_core.config import load_config
    from rosace_core.logs import setup_logging
    from rosace_dome.guardian import build

    setup_logging("guardian", args.log_level)
    cfg = load_config(args.config)
    guardian = build(cfg, host=args.host, port=args.port, dome_url=args.dome_url)
    if args.once:
        print(json.dumps(guardian.check_once().to_dict(), indent=2))
        return 0
    if threading.current_thread() is threading.main_thread():
        # A polite stop (Ctrl+C, terminate) ends the loop between passes.
        for name in ("SIGTERM", "SIGINT", "SIGBREAK"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), lambda *_: guardian.stop_event.set())
    logging.getLogger("rosace.guardian").info("guardian started")
    return guardian.run()


def register(actions, _commands=None) -> None:
    """Add ``guardian`` under ``rosace dome``."""
    p = actions.add_parser("guardian", help="run the guardian: park and close when the dome module is silent or the sky unsafe")
    p.add_argument("--host", help="host of the dome module it watches (as given to `rosace dome serve`)")
    p.add_argument("--port", type=int, help="port of the dome module it watches (default from the configuration)")
    p.add_argument("--dome-url", help="URL of the dome module (instead of --host/--port)")
    p.add_argument("--once", action="store_true", help="one check (and action if needed), printed as JSON, then exit")
    p.set_defaults(func=cmd_guardian)
