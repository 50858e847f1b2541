"""``python -m rosace_dome``: the same as ``rosace dome serve``."""

import sys

from rosace_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["dome", "serve", *sys.argv[1:]]))
