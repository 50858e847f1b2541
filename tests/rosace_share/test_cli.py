"""``rosace share import / account / export`` on a local archive."""

from __future__ import annotations

from rosace_core.cli import main


def test_import_account_export(tmp_path, make_bess, capsys):
    cfg = tmp_path / "rosace.toml"
    cfg.write_text(f'[data]\nroot = "{(tmp_path / "data").as_posix()}"\n[share]\nobserver = "JMA"\n', encoding="utf-8")
    folder = tmp_path / "reduced"
    folder.mkdir()
    for i in range(3):
        (folder / f"s{i}.fits").write_bytes(make_bess(seed=i))
    (folder / "broken.fits").write_bytes(b"nope")
    assert main(["--config", str(cfg), "share", "import", str(folder)]) == 1
    assert "added 3, replaced by a new version 0, already archived 0, rejected 1" in capsys.readouterr().out
    assert main(["--config", str(cfg), "share", "import", str(folder / "s0.fits")]) == 0
    assert "already archived 1" in capsys.readouterr().out
    assert main(["--config", str(cfg), "share", "account", "alice", "--role", "organiser"]) == 0
    assert '"role": "organiser"' in capsys.readouterr().out
    assert main(["--config", str(cfg), "share", "export", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip()
    assert out.endswith("_AObserver.fit") and open(out, "rb").read(9) == b"SIMPLE  ="
    assert main(["--config", str(cfg), "share", "export", "99"]) == 2
