"""``python -m rosace_sim serve ...``: the simulated observatory without the ``rosace`` command."""

import argparse
import sys

from rosace_sim.cli import add_arguments


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rosace_sim", description="ROSACE simulated observatory (ASCOM Alpaca server)")
    parser.add_argument("--config", help="observatory configuration file (for the token)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_arguments(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # no traceback reaches the user
        from rosace_core.errors import RosaceError

        if isinstance(exc, RosaceError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
