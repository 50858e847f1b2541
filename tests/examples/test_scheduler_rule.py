"""examples/scheduler_rule: user rules loaded from the configuration by a real scheduler server.

The meridian constraint keeps every planned observation (start to end) within the hour-angle
limit, checked here with astropy's HADec frame independently of the example's grid mask;
``next`` and ``explain`` honour it; without the rule the scheduler does not. The scoring rule
shows in ``next``'s ``rules`` and changes the choice. A broken rule file stops the start with
an error naming the file.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import EarthLocation, HADec, SkyCoord
from astropy.time import Time

from rosace_core.config import load_config
from rosace_core.errors import ConfigError
from rosace_core.observing_file import dump_observing_file, load_observing_file
from rosace_core.rest import BackgroundServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "scheduler_rule" / "meridian_rule.py"
LONGITUDE, LATITUDE = 6.92, 43.75
NIGHT = "2026-12-01"
EVENING = "2026-12-01T17:30:00Z"  # gamma Cas is about 3 h east of the meridian
MAX_HA = 1.0
GAMCAS = "be-gamcas-alpy"


def write_config(folder: Path, rules: str = "") -> Path:
    """Write a rosace.toml (data under ``folder``) with a [scheduler] table followed by ``rules``."""
    path = folder / "rosace.toml"
    path.write_text(
        f'[site]\nlongitude = {LONGITUDE}\nlatitude = {LATITUDE}\n\n[data]\nroot = "{(folder / "data").as_posix()}"\n\n'
        f"[scheduler]\nwatch_interval = 0\n{rules}",
        encoding="utf-8",
    )
    return path


RULES = f"""rule_files = ["meridian_rule.py"]

[scheduler.rules.meridian_window]
max_hour_angle = {MAX_HA}
"""


def hour_angle(ra_deg: float, dec_deg: float, when) -> np.ndarray:
    """Hour angles in hours (astropy's HADec frame), at ISO instants."""
    t = Time([datetime.fromisoformat(str(w).replace("Z", "+00:00")) for w in np.atleast_1d(when)])
    loc = EarthLocation.from_geodetic(LONGITUDE * u.deg, LATITUDE * u.deg)
    ha = SkyCoord(ra_deg * u.deg, dec_deg * u.deg).transform_to(HADec(obstime=t, location=loc)).ha.hour
    return (ha + 12.0) % 24.0 - 12.0


@pytest.fixture
def serve(tmp_path):
    """Start a scheduler server from a configuration file; yield (client, Scheduler). Closed at the end."""
    from rosace_scheduler.api import create_app
    from rosace_scheduler.client import SchedulerClient

    running = []

    def start(rules: str = ""):
        folder = tmp_path / f"obs{len(running)}"
        folder.mkdir()
        shutil.copy(EXAMPLE, folder / EXAMPLE.name)  # rule_files are relative to rosace.toml
        app = create_app(load_config(write_config(folder, rules)), token="sched")
        server = BackgroundServer(app).__enter__()
        running.append(server)
        # queue and next build the night's sky on their first call: 3-5 s of CPU, over 10 s on a loaded machine
        return SchedulerClient(server.url, token="sched", timeout=120), app.extensions["rosace_scheduler"]

    yield start
    for server in running:
        server.__exit__(None, None, None)


def submit_all(client, examples_dir) -> None:
    for p in sorted(examples_dir.iterdir()):
        client.submit(p.read_text(encoding="utf-8"), "json" if p.suffix == ".json" else "yaml", p.name)


def test_plan_and_next_honour_the_meridian_window(serve, examples_dir):
    gamcas = load_observing_file(examples_dir / "be_gamcas_halpha_alpy.yaml")
    ra, dec = float(gamcas.target.ra), float(gamcas.target.dec)

    # Without the rule: gamma Cas is taken at nightfall, far east of the meridian.
    plain, _ = serve()
    plain.submit(dump_observing_file(gamcas), "yaml", "gamcas.yaml")
    before = [o for o in plain.plan(NIGHT)["observations"] if o["file_id"] == GAMCAS]
    assert before and hour_angle(ra, dec, before[0]["start"])[0] < -MAX_HA
    assert plain.next(EVENING)["observation"]["file_id"] == GAMCAS

    # With the rule, loaded by the server from its configuration file.
    client, sched = serve(RULES)
    assert [(r["name"], r["kind"]) for r in client.rules()] == [("meridian_window", "constraint"), ("near_meridian", "scoring")]
    client.submit(dump_observing_file(gamcas), "yaml", "gamcas.yaml")
    # `next` at nightfall does not take gamma Cas: it says when to come back, and explain names the rule
    nxt = client.next(EVENING)
    assert nxt["observation"] is None and nxt["retry_at"]
    explained = client.explain(GAMCAS, EVENING)
    rule = next(c for c in explained["constraints"] if c["name"] == "meridian_window")
    assert rule["user_rule"] and rule["passes_tonight"] and rule["fraction"] < 0.3
    assert hour_angle(ra, dec, rule["first_pass"])[0] == pytest.approx(-MAX_HA, abs=0.02)
    assert explained["next_observable"] == nxt["retry_at"]
    # at the retry time it is dispatched inside the window, with the scoring rule in its score
    first = client.next(nxt["retry_at"])["observation"]
    assert first["file_id"] == GAMCAS
    ha = hour_angle(ra, dec, [first["start"], first["end"]])
    assert np.all(np.abs(ha) <= MAX_HA) and ha[0] < -MAX_HA + 0.05
    assert first["rules"]["near_meridian"] == pytest.approx(0.5 * (1 - abs(ha[0]) / 6), abs=0.01)

    # The whole example queue, planned: every observation within the limit, start to end.
    client, sched = serve(RULES)
    submit_all(client, examples_dir)
    plan = client.plan(NIGHT)
    assert GAMCAS in {o["file_id"] for o in plan["observations"]}
    for obs in plan["observations"]:
        qf = sched.get_file(obs["file_id"])
        ha = hour_angle(qf.request.ra, qf.request.dec, [obs["start"], obs["end"]])
        assert np.all(np.abs(ha) <= MAX_HA), (obs["file_id"], ha)
    # the independent validator (10 s, rules re-checked through `allows`) agrees
    assert sched.validate_plan(plan) == []
    # while without the rule some observations of the same night are far from the meridian
    plain, plain_sched = serve()
    submit_all(plain, examples_dir)
    far = [o for o in plain.plan(NIGHT)["observations"]
           if np.any(np.abs(hour_angle(plain_sched.get_file(o["file_id"]).request.ra, plain_sched.get_file(o["file_id"]).request.dec, [o["start"], o["end"]])) > MAX_HA)]
    assert far


def test_a_file_never_near_the_meridian_tonight_is_explained_by_the_rule(serve, examples_dir):
    client, _ = serve(RULES)
    gamcas = load_observing_file(examples_dir / "be_gamcas_halpha_alpy.yaml").to_dict()
    # a window that closes before gamma Cas comes within an hour of the meridian
    gamcas["constraints"]["windows"] = [{"start": "2026-12-01T17:00:00Z", "end": "2026-12-01T18:30:00Z"}]
    client.submit(dump_observing_file(load_observing_file_from_dict(gamcas)), "yaml", "g.yaml")
    q = {f["id"]: f for f in client.queue(EVENING)["files"]}
    assert q[GAMCAS]["state"] == "not_tonight"
    assert q[GAMCAS]["reason"].startswith("meridian_window: ")
    # a file may ask for its own limit: five hours lets it in
    gamcas["constraints"]["x-max-hour-angle"] = 5.0
    client.submit(dump_observing_file(load_observing_file_from_dict(gamcas)), "yaml", "g.yaml")
    assert client.next(EVENING)["observation"]["file_id"] == GAMCAS


def load_observing_file_from_dict(data: dict):
    from rosace_core.observing_file import ObservingFile

    return ObservingFile.model_validate(data)


def test_the_scoring_rule_changes_the_choice(serve, examples_dir):
    """With a heavy weight the dispatcher takes the candidate nearest the meridian; without the rule it does not."""
    t = "2026-12-01T20:00:00Z"
    plain, sched0 = serve()
    submit_all(plain, examples_dir)
    nxt0 = plain.next(t)
    heavy, sched = serve('rule_files = ["meridian_rule.py"]\n\n[scheduler.rules.meridian_window]\nenabled = false\n\n'
                         '[scheduler.rules.near_meridian]\nweight = 20\n')
    assert [r["name"] for r in heavy.rules()] == ["near_meridian"]
    submit_all(heavy, examples_dir)
    nxt = heavy.next(t)

    def abs_ha(s, fid):
        r = s.get_file(fid).request
        return abs(hour_angle(r.ra, r.dec, t)[0])

    candidates = [nxt["observation"]["file_id"]] + [o["file_id"] for o in nxt["runner_ups"]]
    assert len(candidates) >= 2
    assert nxt["observation"]["file_id"] == min(candidates, key=lambda f: abs_ha(sched, f))
    assert "near_meridian" not in nxt0["observation"]["rules"]
    assert nxt0["observation"]["file_id"] != nxt["observation"]["file_id"]


def test_a_broken_rule_file_stops_the_start_with_a_clear_error(tmp_path):
    from rosace_scheduler.api import create_app

    (tmp_path / "meridian_rule.py").write_text("from rosace_scheduler.rules import Constraint\n\nclass Bad(Constraint:\n    name = 'x'\n", encoding="utf-8")
    config = load_config(write_config(tmp_path, RULES))
    with pytest.raises(ConfigError) as err:
        create_app(config, token="t")
    text = str(err.value)
    assert "rosace.toml" in text and "scheduler.rule_files" in text
    assert str(tmp_path / "meridian_rule.py") in text and "line 3" in text and "syntax error" in text

    # and on the command line: one line naming the file, exit status 2, no traceback
    from rosace_core.cli import main

    shutil.copy(EXAMPLE, tmp_path / "meridian_rule.py")
    bad_option = write_config(tmp_path, RULES.replace(f"max_hour_angle = {MAX_HA}", "max_hour_angle = 30"))
    import contextlib
    import io

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = main(["--config", str(bad_option), "scheduler", "plan", "--folder", str(tmp_path)])
    assert status == 2
    assert "scheduler.rules.meridian_window" in stderr.getvalue() and "between 0 and 12" in stderr.getvalue()
    assert "Traceback" not in stderr.getvalue()
