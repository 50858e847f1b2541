"""Type gate: run mypy and fail only on findings that are not in the checked-in baseline.

    python tools/mypy_gate.py            # CI: exit 1 on a new finding
    python tools/mypy_gate.py --update   # rewrite the baseline (after fixing findings)

mypy's settings are [tool.mypy] in pyproject.toml. A finding is compared without its
line and column numbers (``path: error: message  [code]``), so editing a file above an
old finding does not make it new; the same finding twice in a file counts twice. The
baseline only ever shrinks: findings that are gone are reported so that ``--update``
removes them; nobody adds a finding to it by hand.

Written here rather than taken from PyPI's ``mypy-baseline`` so that the gate runs mypy
itself through ``mypy.api`` with the project's settings, needs no shell pipe (Windows),
and fails when mypy cannot run at all (a crash or a bad setting is not "no findings").
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "tools" / "mypy-baseline.txt"

# "modules/x.py:12: error: Message  [code]" (mypy may add a column: "x.py:12:5: error:")
_FINDING = re.compile(r"^(?P<path>.+?):(?P<line>\d+)(?::\d+)?: error: (?P<message>.*)$")  # path may be C:\...


def findings(report: str) -> list[tuple[str, str]]:
    """Return (key, original line) for each error line of a mypy report; notes are dropped.

    The key is the line without its line/column numbers and with forward slashes.
    """
    out = []
    for line in report.splitlines():
        m = _FINDING.match(line.strip())
        if m:
            path = m["path"].replace("\\", "/")
            out.append((f"{path}: error: {m['message'].rstrip()}", line.strip()))
    return out


def read_baseline(path: Path) -> Counter[str]:
    """Return the baseline's findings (a missing file is an empty baseline)."""
    if not path.exists():
        return Counter()
    lines = path.read_text(encoding="utf-8").splitlines()
    return Counter(line for line in lines if line.strip() and not line.startswith("#"))


def write_baseline(path: Path, keys: Counter[str]) -> None:
    """Write the findings, sorted, one per line (duplicates repeated)."""
    header = ("# mypy findings not yet fixed: only findings NOT listed here fail the gate.\n"
              "# Regenerate with `python tools/mypy_gate.py --update`; it must only shrink.\n")
    path.write_text(header + "".join(f"{k}\n" for k in sorted(keys.elements())), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite the baseline with today's findings")
    parser.add_argument("--baseline", type=Path, default=BASELINE, help="baseline file (default: %(default)s)")
    parser.add_argument("paths", nargs="*", help="files or folders to check (default: [tool.mypy] files)")
    args = parser.parse_args(argv)

    from mypy import api

    # mypy reads [tool.mypy] (and its relative `files`) from the working folder
    paths = [str(Path(p).resolve()) for p in args.paths]
    baseline_path = args.baseline.resolve()
    os.chdir(ROOT)
    stdout, stderr, status = api.run(paths)
    found = findings(stdout)
    if status not in (0, 1) or (status == 1 and not found):
        # mypy could not check (bad settings, a crash, a syntax error it reports otherwise)
        print(stdout + stderr, file=sys.stderr)
        print(f"mypy gate: mypy failed to run (exit status {status})", file=sys.stderr)
        return 2
    current = Counter(key for key, _ in found)
    if args.update:
        write_baseline(baseline_path, current)
        print(f"mypy gate: baseline written with {sum(current.values())} findings: {baseline_path}")
        return 0

    baseline = read_baseline(baseline_path)
    new = current - baseline
    gone = baseline - current
    if gone:
        print(f"mypy gate: {sum(gone.values())} baselined findings are fixed; "
              "shrink the baseline with `python tools/mypy_gate.py --update`")
    if new:
        remaining = Counter(new)
        print(f"mypy gate: {sum(new.values())} new finding(s) (not in {baseline_path.name}):")
        for key, line in found:
            if remaining[key] > 0:
                remaining[key] -= 1
                print(f"  {line}")
        return 1
    print(f"mypy gate: no new findings ({sum(current.values())} baselined)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
