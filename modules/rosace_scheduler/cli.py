"""Extra command-line actions of the scheduler: ``rosace scheduler plan`` and ``rosace scheduler explain``.

They run the scheduler in-process on the configured (or given) queue folder,
without a server: handy to check tonight's plan before a night.
"""

from __future__ import annotations

import json


def _scheduler(args):
    from rosace_core.config import load_config
    from rosace_scheduler.scheduler import Scheduler

    cfg = load_config(args.config)
    return Scheduler(cfg, database=":memory:" if args.folder else None, queue_folder=args.folder)


def cmd_plan(args) -> int:
    s = _scheduler(args)
    try:
        plan = s.plan(args.night or None, start=args.start)
        if args.json:
            print(json.dumps(plan, indent=2))
            return 0
        print(f"night {plan['night']} at {plan['site']} ({plan['spectrograph']} mounted): sunset {plan['sunset']}, sunrise {plan['sunrise']}")
        for o in plan["observations"]:
            print(f"  {o['start'][11:19]}-{o['end'][11:19]}  {o['file_id']:<28} {o['target']:<16} priority {o['priority']}")
        for u in plan["unscheduled"]:
            print(f"  not planned: {u['file_id']:<28} {u['state']}: {u['reason']}")
        for r in s.rejected.values():
            for e in r["errors"]:
                print(f"  rejected: {r['filename']}:{e.get('line') or '?'}:{e.get('column') or '?'}: {e.get('path')}: {e.get('message')}")
        return 0
    finally:
        s.close()


def cmd_explain(args) -> int:
    s = _scheduler(args)
    try:
        print(json.dumps(s.explain(args.file_id, args.start), indent=2))
        return 0
    finally:
        s.close()


def register(actions, _commands=None) -> None:
    """Add ``plan`` and ``explain`` under ``rosace scheduler``."""
    p = actions.add_parser("plan", help="print a night's plan for the queue folder (in-process, no server)")
    p.add_argument("--night", help="YYYY-MM-DD, date of the evening (default: tonight)")
    p.add_argument("--start", help="plan from this ISO instant (default: now, or the night's start)")
    p.add_argument("--folder", help="queue folder of Observing Files (default: the configured one)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)
    p = actions.add_parser("explain", help="say why a file is or is not scheduled tonight")
    p.add_argument("file_id")
    p.add_argument("--start", help="as of this ISO instant (default: now)")
    p.add_argument("--folder", help="queue folder of Observing Files (default: the configured one)")
    p.set_defaults(func=cmd_explain)
