"""rosace_core.state: atomic writes with unique temporary names."""

from __future__ import annotations

import json
import threading

import pytest

from rosace_core.state import atomic_write, atomic_write_json


def test_bytes_text_and_callable(tmp_path):
    assert atomic_write(tmp_path / "a" / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"
    assert atomic_write(tmp_path / "t.txt", "été").read_text(encoding="utf-8") == "été"
    atomic_write(tmp_path / "c.txt", lambda p: p.write_text("from a writer", encoding="utf-8"))
    assert (tmp_path / "c.txt").read_text(encoding="utf-8") == "from a writer"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b.bin", "c.txt", "t.txt"]


def test_concurrent_writers_never_collide(tmp_path):
    path, errors = tmp_path / "state.json", []

    def write(i):
        try:
            for j in range(20):
                atomic_write_json(path, {"writer": i, "n": j})
        except OSError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert set(json.loads(path.read_text(encoding="utf-8"))) == {"writer", "n"}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_failure_keeps_the_old_file_and_names_the_path(tmp_path):
    path = atomic_write_json(tmp_path / "s.json", {"v": 1})

    def broken(p):
        p.write_text("half", encoding="utf-8")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError) as err:
        atomic_write(path, broken)
    assert "s.json" in str(err.value) and err.value.errno == 28
    assert json.loads(path.read_text(encoding="utf-8")) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]
    (tmp_path / "blocked").write_text("a file where a folder should be", encoding="utf-8")
    with pytest.raises(OSError, match="blocked"):
        atomic_write(tmp_path / "blocked" / "x.json", "{}")
