"""User rules: constraints AND-ed into the masks, scoring terms, loading and its errors."""

from __future__ import annotations

from datetime import datetime, timezone
from importlib.metadata import EntryPoint

import pytest

from rosace_core.config import config_from_dict
from rosace_core.errors import ConfigError
from rosace_scheduler import rules as rules_mod
from rosace_scheduler.scheduler import Scheduler
from rosace_scheduler.validation import check_from_file, validate

NIGHT = "2026-11-20"
CUTOFF = "2026-11-20T23:00:00Z"
CUTOFF_UNIX = datetime(2026, 11, 20, 23, tzinfo=timezone.utc).timestamp()

# A constraint written the simplest way (only `allows`: the default mask calls it per request)
# and a scoring rule; both read their options from [scheduler.rules.NAME].
RULE_FILE = '''
import numpy as np
from rosace_scheduler.rules import Constraint, ScoringRule


class LateOnly(Constraint):
    name = "late_only"
    title = "after the club's public evening"

    def __init__(self, after):
        self.after = float(after)

    def allows(self, request, unix, site):
        return np.asarray(unix) >= self.after


class PreferNorth(ScoringRule):
    name = "prefer_north"

    def score(self, candidates):
        return candidates.dec / 90.0
'''


def make(tmp_path, queue_folder=None, *, files=None, tables=None, **scheduler):
    tmp_path.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, text in enumerate(files if files is not None else [RULE_FILE]):
        p = tmp_path / f"rules{i}.py"
        p.write_text(text, encoding="utf-8")
        paths.append(str(p))
    tables = {"late_only": {"after": CUTOFF_UNIX}} if tables is None else tables
    cfg = config_from_dict({"data": {"root": str(tmp_path / "data")},
                            "scheduler": {"watch_interval": 0, "rule_files": paths, "rules": tables, **scheduler}}, tmp_path / "rosace.toml")
    return Scheduler(cfg, database=":memory:", queue_folder=queue_folder if queue_folder is not None else tmp_path / "none")


def test_a_constraint_is_anded_into_plan_next_explain_and_validator(tmp_path, queue_folder):
    s = make(tmp_path, queue_folder)
    plan = s.plan(NIGHT)
    assert plan["observations"]
    assert all(datetime.fromisoformat(o["start"].replace("Z", "+00:00")).timestamp() >= CUTOFF_UNIX for o in plan["observations"])
    assert s.validate_plan(plan) == []
    assert all("prefer_north" in o["rules"] for o in plan["observations"])
    early = s.next("2026-11-20T19:00:00Z")
    assert early["observation"] is None and early["retry_at"] >= "2026-11-20T23:00:00"
    some = plan["observations"][0]["file_id"]
    e = s.explain(some, "2026-11-20T19:00:00Z")
    late = next(c for c in e["constraints"] if c["name"] == "late_only")
    assert late["user_rule"] and late["first_pass"].startswith("2026-11-20T23:00")
    # the same night without the rule starts hours earlier
    free = make(tmp_path / "free", queue_folder, files=[], tables={})
    assert free.plan(NIGHT)["observations"][0]["start"] < "2026-11-20T23:00:00"
    s.close()
    free.close()


def test_the_validator_reports_a_rule_violation(tmp_path, examples_dir):
    from rosace_core.observing_file import load_observing_file

    s = make(tmp_path)
    of = load_observing_file(examples_dir / "be_gamcas_halpha_alpy.yaml")
    check = check_from_file(of, s.site, CUTOFF_UNIX - 60, CUTOFF_UNIX + 60, rules=s.rules)
    found = [v for v in validate([check], s.site) if v["constraint"] == "late_only"]
    assert [v["time"] for v in found] == [CUTOFF_UNIX - 60 + k * 10 for k in range(6)]
    s.close()


def test_a_rule_that_fails_at_run_time_blocks_fail_safe_and_is_reported(tmp_path, queue_folder):
    broken = RULE_FILE.replace("return np.asarray(unix) >= self.after", "raise RuntimeError('ephemeris missing')").replace(
        "return candidates.dec / 90.0", "return np.zeros(2)")
    s = make(tmp_path, queue_folder, files=[broken])
    assert s.plan(NIGHT)["observations"] == []
    reasons = {f["reason"] for f in s.queue("2026-11-20T20:00:00Z")["files"] if f["state"] == "not_tonight"}
    assert any(r.startswith("late_only: the rule failed (RuntimeError: ephemeris missing)") for r in reasons)
    described = {r["name"]: r for r in s.rules.describe()}
    assert "RuntimeError" in described["late_only"]["error"]
    # a scoring rule returning the wrong shape adds nothing (and is reported); `next` still answers
    s2 = make(tmp_path / "b", queue_folder, files=[broken], tables={"late_only": {"enabled": False, "after": 0}})
    obs = s2.next("2026-11-20T20:00:00Z")["observation"]
    assert obs is not None and obs["rules"]["prefer_north"] == 0.0
    assert "shape" in s2.rules.errors["prefer_north"]
    s.close()
    s2.close()


@pytest.mark.parametrize("files, tables, where, words", [
    (["x = 1\n"], {}, "scheduler.rule_files", "defines no scheduler rule"),
    (["import nonexistent_package_xyz\n"], {}, "scheduler.rule_files", "ModuleNotFoundError"),
    (["{}['table']\n"], {}, "scheduler.rule_files", "cannot load it: KeyError: 'table'"),
    ([RULE_FILE], {}, "scheduler.rules.late_only", "refused its options"),
    ([RULE_FILE], {"late_only": {"after": 0, "weight": 2}}, "scheduler.rules.late_only.weight", "constraint: it has no weight"),
    ([RULE_FILE], {"late_only": {"after": 0}, "prefer_north": {"weight": "heavy"}}, "scheduler.rules.prefer_north.weight", "must be a number"),
    ([RULE_FILE], {"late_only": {"after": 0}, "missing": {}}, "scheduler.rules.missing", "no scheduler rule named 'missing'"),
    ([RULE_FILE, RULE_FILE], {"late_only": {"after": 0}}, "scheduler rule late_only", "defined twice"),
    ([RULE_FILE.replace('name = "late_only"', 'name = "altitude"')], {}, "scheduler rule altitude", "built-in"),
    ([RULE_FILE.replace('name = "late_only"', 'name = "Late Only"')], {}, "scheduler rule LateOnly", "lower case"),
])
def test_bad_rules_stop_the_start_naming_the_file_or_table(tmp_path, files, tables, where, words):
    with pytest.raises(ConfigError) as err:
        make(tmp_path, files=files, tables=tables)
    assert err.value.problems[0][0].startswith(where)
    assert words in str(err.value) and "rosace.toml" in str(err.value)


def test_missing_rule_file_is_named(tmp_path):
    cfg = config_from_dict({"scheduler": {"watch_interval": 0, "rule_files": [str(tmp_path / "nope.py")]}, "data": {"root": str(tmp_path)}})
    with pytest.raises(ConfigError, match="nope.py: no such file"):
        Scheduler(cfg, database=":memory:", queue_folder=tmp_path / "none")


def test_entry_point_rules_are_used_only_when_configured(tmp_path, monkeypatch, queue_folder):
    (tmp_path / "club_rules.py").write_text(RULE_FILE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [EntryPoint("late_only", "club_rules:LateOnly", rules_mod.ENTRY_POINT_GROUP),
           EntryPoint("prefer_north", "club_rules:LateOnly", rules_mod.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(rules_mod, "entry_points", lambda group: eps if group == rules_mod.ENTRY_POINT_GROUP else [])
    s = make(tmp_path / "a", queue_folder, files=[], tables={})
    assert not s.rules  # installed, not configured: not used
    s.close()
    s = make(tmp_path / "b", queue_folder, files=[], tables={"late_only": {"after": CUTOFF_UNIX}})
    assert [(r["name"], r["source"]) for r in s.rules.describe()] == [("late_only", "entry point club_rules:LateOnly")]
    assert s.plan(NIGHT)["observations"][0]["start"] >= "2026-11-20T23:00:00"
    s.close()
    with pytest.raises(ConfigError, match="names its rule 'late_only', not 'prefer_north'"):
        make(tmp_path / "c", files=[], tables={"prefer_north": {}})


def test_rules_endpoint_lists_them(tmp_path, queue_folder):
    from rosace_core.rest import BackgroundServer
    from rosace_scheduler.api import create_app
    from rosace_scheduler.client import SchedulerClient

    s = make(tmp_path, queue_folder, tables={"late_only": {"after": CUTOFF_UNIX}, "prefer_north": {"weight": 0.25}})
    with BackgroundServer(create_app(s.config, token="t", scheduler_instance=s, watch=False)) as srv:
        listed = SchedulerClient(srv.url, token="t").rules()
    assert [(r["name"], r["kind"], r["weight"]) for r in listed] == [("late_only", "constraint", None), ("prefer_north", "scoring", 0.25)]
    assert listed[0]["options"] == {"after": CUTOFF_UNIX} and listed[0]["title"] == "after the club's public evening"
