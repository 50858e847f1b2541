"""The type gate (tools/mypy_gate.py) fails on a new mypy finding and only on a new one."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GATE = ROOT / "tools" / "mypy_gate.py"

sys.path.insert(0, str(GATE.parent))
import mypy_gate  # noqa: E402


def _gate(*args):
    return subprocess.run([sys.executable, str(GATE), *map(str, args)], capture_output=True, text=True, timeout=240)


def test_gate_fails_on_a_new_finding_and_passes_once_it_is_baselined(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('count: int = "three"\n', encoding="utf-8")
    baseline = tmp_path / "baseline.txt"

    run = _gate("--baseline", baseline, bad)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 new finding" in run.stdout
    assert "bad.py:1: error: Incompatible types in assignment" in run.stdout

    assert _gate("--baseline", baseline, "--update", bad).returncode == 0
    assert "bad.py: error: Incompatible types in assignment" in baseline.read_text(encoding="utf-8")
    run = _gate("--baseline", baseline, bad)
    assert run.returncode == 0, run.stdout + run.stderr


def test_gate_fails_when_mypy_cannot_run(tmp_path):
    run = _gate("--baseline", tmp_path / "baseline.txt", tmp_path / "missing.py")
    assert run.returncode == 2
    assert "mypy failed to run" in run.stderr


def test_a_finding_that_moves_is_the_same_finding_and_a_second_one_is_new():
    before = "modules/a.py:10: error: Bad thing  [misc]\nmodules/a.py:11: note: See here\n"
    after = "modules/a.py:40:5: error: Bad thing  [misc]\nmodules\\a.py:52: error: Bad thing  [misc]\n"
    old = {key for key, _ in mypy_gate.findings(before)}
    keys = [key for key, _ in mypy_gate.findings(after)]
    assert old == {"modules/a.py: error: Bad thing  [misc]"}
    assert keys == ["modules/a.py: error: Bad thing  [misc]"] * 2
    windows = mypy_gate.findings("C:\\rosace\\bad.py:3: error: Oops  [misc]\n")
    assert [key for key, _ in windows] == ["C:/rosace/bad.py: error: Oops  [misc]"]


def test_the_baseline_file_round_trips_with_duplicates(tmp_path):
    from collections import Counter

    keys = Counter({"b.py: error: x  [misc]": 2, "a.py: error: y  [misc]": 1})
    path = tmp_path / "baseline.txt"
    mypy_gate.write_baseline(path, keys)
    assert mypy_gate.read_baseline(path) == keys
    assert mypy_gate.read_baseline(tmp_path / "none.txt") == Counter()
