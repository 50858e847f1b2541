"""The archive on SQLite and PostgreSQL: migrations, add, duplicates, search, permissions, audit."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import inspect

from rosace_core.errors import NotFoundError
from rosace_share import db
from rosace_share.archive import DuplicateSpectrum, PermissionDenied, Principal, TooLarge
from rosace_share.spectra import SpectrumInvalid


def test_migrations_create_schema_at_head(archive):
    assert db.current_revision(archive.engine) == "0001"
    tables = set(inspect(archive.engine).get_table_names())
    assert {"spectra", "accounts", "campaigns", "campaign_files", "reports", "audit", "alembic_version"} <= tables
    db.upgrade(archive.engine)  # a second start is a no-op
    assert db.current_revision(archive.engine) == "0001"


def test_add_reads_metadata_and_provenance(archive, make_bess):
    rec = archive.add(make_bess("gam Cas", datetime(2025, 9, 1, 22, 30)), owner="alice", filename="../../x.fits")
    got = archive.get(rec.id)
    assert got.object == "gam Cas" and got.object_key == "GAMCAS"
    assert got.observer == "A. Observer" and got.instrument == "C11 + LHIRES 2400"
    assert got.resolving_power == 15000 and got.measured_r == 14200
    assert got.snr == 150 and got.quality == "good" and got.bess_missing == []
    assert got.provenance["raw_frames"] == ["a.fits", "b.fits"]
    assert 6449 < got.wl_min < 6451 and got.n_pixels == 600
    assert got.filename == "x.fits" and got.owner == "alice"
    assert archive.load(got).flux.shape == (600,)


def test_duplicate_by_content_hash(archive, make_bess):
    data = make_bess(seed=3)
    first = archive.add(data, owner="alice")
    with pytest.raises(DuplicateSpectrum) as err:
        archive.add(data, owner="bob")
    assert err.value.existing_id == first.id


def test_invalid_and_oversized_uploads(archive, make_bess):
    with pytest.raises(SpectrumInvalid, match="not a FITS"):
        archive.add(b"hello world" * 400, owner="a")
    with pytest.raises(SpectrumInvalid, match="OBJNAME"):
        archive.add(make_bess(drop=("OBJNAME", "OBJECT")), owner="a")
    with pytest.raises(TooLarge, match="MiB"):
        archive.add(make_bess(n=600_000), owner="a")


def test_search_filters(archive, make_bess):
    for i, (obj, day, who, snr) in enumerate([("gam Cas", 1, "Alice", 200), ("gam Cas", 5, "Bob", 40), ("zet Tau", 3, "Alice", 20), ("gam Cas", 9, "Alice", 120)]):
        archive.add(make_bess(obj, datetime(2025, 9, day, 21), seed=i, observer=who, snr=snr), owner=who.lower())
    rows, total = archive.search(object="GAM_CAS")
    assert total == 3 and [r.date_obs.day for r in rows] == [9, 5, 1]
    rows, total = archive.search(object="gam cas", start="2025-09-02", end="2025-09-05")
    assert total == 1 and rows[0].observer == "Bob"
    assert archive.search(observer="ali")[1] == 3
    assert archive.search(min_snr=100)[1] == 2
    assert archive.search(quality="fair")[1] == 3  # good or fair
    assert archive.search(instrument="lhires", limit=2)[1] == 4
    assert len(archive.search(limit=2)[0]) == 2
    objs = {o["object"]: o["spectra"] for o in archive.objects()}
    assert objs == {"gam Cas": 3, "zet Tau": 1}


def test_hostile_search_strings_are_harmless(archive, make_bess):
    archive.add(make_bess(), owner="a")
    for text in ["' OR 1=1 --", "%", "_", "\\", "gam%' ; DROP TABLE spectra; --", "名前"]:
        assert archive.search(object=text)[1] == 0
        assert archive.search(observer=text)[1] == 0
    assert archive.search()[1] == 1  # table still there


def test_only_owner_replaces_or_deletes(archive, make_bess):
    rec = archive.add(make_bess(seed=1), owner="alice")
    with pytest.raises(PermissionDenied):
        archive.delete(rec.id, Principal("bob"))
    with pytest.raises(PermissionDenied):
        archive.replace(rec.id, make_bess(seed=2), Principal("bob"))
    new = archive.replace(rec.id, make_bess(seed=2, snr=60), Principal("alice"))
    assert new.snr == 60
    archive.delete(rec.id, Principal("alice"))
    with pytest.raises(NotFoundError):
        archive.get(rec.id)
    actions = [e["action"] for e in archive.audit_log()]
    assert actions[:3] == ["spectrum.delete", "spectrum.replace", "spectrum.add"]


def test_admin_may_delete_any(archive, make_bess):
    rec = archive.add(make_bess(seed=4), owner="alice")
    archive.delete(rec.id, Principal("operator", "admin"))
    assert archive.search()[1] == 0


def test_accounts_tokens_are_hashed(archive):
    acc, token = archive.create_account("alice", "organiser")
    assert archive.principal_for_token(token) == Principal("alice", "organiser")
    assert archive.principal_for_token(token + "x") is None
    assert token not in str(archive.accounts())
