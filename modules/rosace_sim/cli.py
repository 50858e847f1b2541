"""``rosace sim``: run the simulated observatory (an ASCOM Alpaca server)."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("rosace_sim")


def alpaca_guard(host: str, token: str | None, *, open_alpaca: bool = False) -> str | None:
    """The token guarding Alpaca device control, or None (loopback only, or opened on purpose).

    Beyond this machine anyone on the network could otherwise unpark the mount or open the roof.
    """
    from rosace_core.rest import is_loopback

    return None if is_loopback(host) or open_alpaca else token


def cmd_serve(args) -> int:
    """Serve the simulator until interrupted."""
    import os

    from rosace_core.astro import configure_offline
    from rosace_core.clock import ENV_VAR, Clock, get_clock, set_clock
    from rosace_core.config import DEFAULT_PORTS
    from rosace_core.logs import setup_logging
    from rosace_core.rest import serve

    from rosace_sim.discovery import DEFAULT_DISCOVERY_PORT, DiscoveryResponder
    from rosace_sim.observatory import Observatory
    from rosace_sim.scenario import load_scenario
    from rosace_sim.server import create_app

    configure_offline()
    setup_logging("sim", getattr(args, "log_level", "INFO"))
    scenario = load_scenario(args.scenario)
    if not os.environ.get(ENV_VAR) and scenario.clock.start is not None:
        set_clock(Clock.simulated(scenario.clock.start, scenario.clock.rate))
    config = None
    token = None
    try:
        from rosace_core.auth import resolve_token
        from rosace_core.config import load_config

        config = load_config(getattr(args, "config", None))
        token = resolve_token(config, "sim")
    except Exception as exc:  # the simulator runs without a configuration too
        log.debug("no configuration (%s): using the local token", exc)
        from rosace_core.auth import resolve_token

        token = resolve_token(None, "sim")
    observatory = Observatory(scenario)
    app = create_app(observatory, token=token, alpaca_token=alpaca_guard(args.host, token, open_alpaca=args.open_alpaca))
    port = args.port or DEFAULT_PORTS["sim"]
    discovery = None
    if args.discovery_port != -1:
        try:
            discovery = DiscoveryResponder(port, args.discovery_port if args.discovery_port is not None else DEFAULT_DISCOVERY_PORT).start()
        except OSError as exc:
            print(f"warning: Alpaca discovery not available ({exc}); the server runs without it", file=sys.stderr)
    print(f"ROSACE simulated observatory: scenario {scenario.name!r}, clock {get_clock().spec()}", file=sys.stderr)
    print(f"Alpaca server on http://{args.host}:{port}" + (f", discovery on UDP {discovery.port}" if discovery else ""), file=sys.stderr)
    try:
        serve(app, args.host, port, config=config, module="sim")
    finally:
        if discovery:
            discovery.stop()
    return 0


def add_arguments(p) -> None:
    s = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)
    q = s.add_parser("serve", help="run the simulated observatory's Alpaca server (waitress)")
    q.add_argument("--scenario", default=None, help="scenario YAML file or shipped name (clear, demo_night); default: clear")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need a configured token)")
    q.add_argument("--port", type=int, default=None, help="HTTP port (default 11111)")
    q.add_argument("--open-alpaca", action="store_true",
                   help="beyond loopback, leave the Alpaca device routes without credentials (for clients that cannot send HTTP Basic)")
    q.add_argument("--discovery-port", type=int, default=None, help="UDP discovery port (default 32227; -1 disables discovery)")
    q.set_defaults(func=cmd_serve)


def register(sub):
    """Add ``rosace sim ...`` to the ``rosace`` command line."""
    p = sub.add_parser("sim", help="the simulated spectroscopic observatory (an Alpaca server)")
    add_arguments(p)
