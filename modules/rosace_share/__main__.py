"""``python -m rosace_share``: same as ``rosace share ...``."""

import sys

from rosace_core.cli import main

if __name__ == "__main__":
    sys.exit(main(["share", *sys.argv[1:]]))
