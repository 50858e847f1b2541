"""``python -m rosace_dome [--config FILE] [--log-level LEVEL] [--host H] [--port P]``: the same as ``rosace dome serve``."""

import sys

from rosace_core.cli import main


def _argv(args: list[str]) -> list[str]:
    """Put the global options (config, log level) before the subcommand, where ``rosace`` expects them."""
    front, rest = [], []
    it = iter(args)
    for arg in it:
        name = arg.split("=", 1)[0]
        if name in ("--config", "--log-level"):
            front.append(arg)
            if "=" not in arg:
                front.append(next(it, ""))
        else:
            rest.append(arg)
    return [*front, "dome", "serve", *rest]


if __name__ == "__main__":
    sys.exit(main(_argv(sys.argv[1:])))
