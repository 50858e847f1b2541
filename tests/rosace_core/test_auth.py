"""This installation's token file and the sequencer's use of ids in URLs (interface audit, issue #20)."""

from __future__ import annotations

import os
import stat
import sys


def test_the_token_file_is_private_from_its_first_byte(tmp_path, monkeypatch):
    from rosace_core import auth

    path = tmp_path / "cfg" / "api-token"
    monkeypatch.setattr(auth, "token_file", lambda: path)
    token = auth.local_token()
    assert len(token) >= 24 and path.read_text(encoding="utf-8").strip() == token
    if sys.platform != "win32":
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert auth.local_token() == token  # read back, not made again
    assert auth.local_token(create=False) == token


def test_a_file_id_is_escaped_in_the_scheduler_url(tmp_path):
    """``/sequencer/run {file_id}`` put the id unescaped into the scheduler's URL ('../', '?')."""
    from flask import Flask, jsonify, request

    from rosace_core.config import config_from_dict
    from rosace_core.rest import BackgroundServer
    from rosace_sequencer.api import create_app

    seen = []
    fake = Flask("fake-scheduler")

    @fake.get("/api/v1/scheduler/files/<path:file_id>")
    def one(file_id):
        seen.append((file_id, dict(request.args)))
        return jsonify({"error": "unknown"}), 404

    with BackgroundServer(fake) as sched:
        cfg = config_from_dict({"data": {"root": str(tmp_path)}, "modules": {"scheduler": {"url": sched.url, "token": "t"}}})
        app = create_app(cfg, token="tok")
        try:
            r = app.test_client().post("/api/v1/sequencer/run", json={"file_id": "../outcomes?x=1"}, headers={"Authorization": "Bearer tok"})
        finally:
            app.extensions["rosace_sequencer"].close()
    assert r.status_code in (404, 422, 503), r.json
    # The whole id reached the files route as one segment; nothing became a query or another path.
    assert seen == [("../outcomes?x=1", {})], seen

