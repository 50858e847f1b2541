"""Frozen entry point of ``rosace.exe``: the command line (console program)."""

import sys

from rosace_core.cli import main

if __name__ == "__main__":
    sys.exit(main())
