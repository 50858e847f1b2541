"""The archive on SQLite and PostgreSQL: migrations, add, duplicates, search, permissions, audit."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import inspect

from rosace_core.errors import NotFoundError
from rosace_share import db
from rosace_share.archive import DuplicateSpectrum, PermissionDenied, Principal, TooLarge
from rosace_share.spectra import SpectrumInvalid


HEAD = "0003"


def test_migrations_create_schema_at_head(archive):
    assert db.current_revision(archive.engine) == HEAD
    tables = set(inspect(archive.engine).get_table_names())
    assert {"spectra", "accounts", "campaigns", "campaign_files", "reports", "audit", "alembic_version"} <= tables
    db.upgrade(archive.engine)  # a second start is a no-op
    assert db.current_revision(archive.engine) == HEAD


def test_migrations_match_the_models(archive):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    with archive.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), db.Base.metadata) == []


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
    alice = archive.principal_for_token(archive.create_account("alice")[1])
    bob = archive.principal_for_token(archive.create_account("bob")[1])
    rec = archive.add(make_bess(seed=1), owner=alice)
    assert rec.owner == "alice" and rec.owner_account == alice.account_id
    with pytest.raises(PermissionDenied):
        archive.delete(rec.id, bob)
    with pytest.raises(PermissionDenied):
        archive.replace(rec.id, make_bess(seed=2), bob)
    # Same name, another identity (the installation's token has no account): no rights either.
    with pytest.raises(PermissionDenied):
        archive.delete(rec.id, Principal("alice"))
    new = archive.replace(rec.id, make_bess(seed=2, snr=60), alice)
    assert new.snr == 60
    archive.delete(rec.id, alice)
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
    assert archive.principal_for_token(token) == Principal("alice", "organiser", acc.id)
    assert archive.principal_for_token(token + "x") is None
    assert token not in str(archive.accounts())


# --------------------------------------------------------------------- new versions of an observation


def _obs(make_bess, obs_id, seed, **kw):
    return make_bess("gam Cas", datetime(2025, 9, 1, 22, 30), seed=seed, extra={"ROSOBSID": obs_id, **kw.pop("extra", {})}, **kw)


def test_new_version_of_an_observation_replaces_it(archive, make_bess):
    first_data, second_data = _obs(make_bess, "20250901-gamcas-01", 1, snr=60), _obs(make_bess, "20250901-gamcas-01", 2, snr=150)
    first = archive.add(first_data, owner=Principal("observatory", "admin"), campaign="be-2025", filename="gamcas.fits")
    assert first.replaced is None and first.observation_id == "20250901-gamcas-01"
    old_file = archive._path(first.sha256)
    assert old_file.exists()
    second = archive.add(second_data, owner=Principal("observatory", "admin"), filename="gamcas.fits")
    assert second.id == first.id and second.replaced == first.sha256
    assert archive.search()[1] == 1
    got = archive.get(first.id)
    assert got.snr == 150 and archive.fits_bytes(got) == second_data
    assert got.campaign == "be-2025"  # kept: the re-reduction's upload named none
    assert not old_file.exists()
    replace, add = archive.audit_log()[:2]
    assert (replace["action"], replace["target"], replace["actor"]) == ("spectrum.replace", f"spectrum/{first.id}", "observatory")
    assert replace["detail"].startswith(f"{first.sha256[:12]} -> {second.sha256[:12]}") and add["action"] == "spectrum.add"
    # A third version (the reference star's better response) replaces it again.
    third = archive.add(_obs(make_bess, "20250901-gamcas-01", 3, snr=90), owner="observatory")
    assert third.id == first.id and archive.search()[1] == 1 and archive.get(first.id).snr == 90


def test_same_observation_id_of_another_owner_is_another_spectrum(archive, make_bess):
    a = archive.add(_obs(make_bess, "obs-1", 1), owner="alice")
    b = archive.add(_obs(make_bess, "obs-1", 2), owner="bob")
    assert a.id != b.id and b.replaced is None and archive.search()[1] == 2
    c = archive.add(_obs(make_bess, "obs-1", 3, snr=70), owner="bob")
    assert c.id == b.id and archive.get(a.id).sha256 == a.sha256  # alice's untouched


def test_spectra_without_observation_id_are_added_as_before(archive, make_bess):
    first = archive.add(make_bess(seed=1), owner="alice")
    second = archive.add(make_bess(seed=2), owner="alice")
    blank = archive.add(_obs(make_bess, "   ", 3), owner="alice")
    assert first.observation_id is None and blank.observation_id is None
    assert len({first.id, second.id, blank.id}) == 3 and archive.search()[1] == 3
    assert [e["action"] for e in archive.audit_log()] == ["spectrum.add"] * 3


def test_identical_file_of_an_observation_is_still_a_duplicate(archive, make_bess):
    data = _obs(make_bess, "obs-1", 1)
    first = archive.add(data, owner="alice")
    with pytest.raises(DuplicateSpectrum) as err:
        archive.add(data, owner="alice")
    assert err.value.existing_id == first.id and archive.audit_log()[0]["action"] == "spectrum.add"


def test_upgrade_from_0001_back_fills_observation_ids(db_url, tmp_path, make_bess):
    """An archive written by the previous release (revision 0001, rows in it) is migrated and its ROSOBSIDs found."""
    import sqlalchemy as sa

    from rosace_share.archive import Archive
    from rosace_share.spectra import content_hash, describe, object_key, open_spectrum

    engine = db.make_engine(db_url)
    db.upgrade(engine, "0001")
    store = tmp_path / "store"
    columns = [c for c in db.SpectrumRecord.__table__.columns if c.name not in ("id", "observation_id")]
    table_0001 = sa.table("spectra", *[sa.column(c.name, c.type) for c in columns])
    files = {
        "obs-7": _obs(make_bess, "obs-7", 1),
        "padded": _obs(make_bess, "  obs-8  ", 2),
        "number": _obs(make_bess, 42, 3),
        "none": make_bess(seed=4),
    }
    with engine.begin() as conn:
        for name, data in files.items():
            meta = describe(open_spectrum(data)).__dict__
            meta.pop("observation_id")
            sha = content_hash(data)
            (store / sha[:2]).mkdir(parents=True, exist_ok=True)
            (store / sha[:2] / f"{sha}.fits").write_bytes(data)
            conn.execute(sa.insert(table_0001).values(**meta, sha256=sha, object_key=object_key(meta["object"]), owner="observatory", filename=f"{name}.fits",
                                                      size=len(data), campaign=None, upstream=None, created=datetime(2025, 9, 2)))
    assert "observation_id" not in {c["name"] for c in inspect(engine).get_columns("spectra")}
    db.upgrade(engine)
    assert db.current_revision(engine) == HEAD
    with engine.connect() as conn:
        found = dict(conn.execute(sa.text("SELECT filename, observation_id FROM spectra")).all())
    assert found == {"obs-7.fits": "obs-7", "padded.fits": "obs-8", "number.fits": "42", "none.fits": None}
    assert "ix_spectra_observation_id" in {i["name"] for i in inspect(engine).get_indexes("spectra")}
    engine.dispose()
    # The migrated archive replaces a back-filled observation on its next version.
    archive = Archive(db_url, store)
    try:
        rec = archive.add(_obs(make_bess, "obs-7", 9, snr=55), owner="observatory")
        assert rec.replaced == content_hash(files["obs-7"]) and archive.search()[1] == 4
        assert not (store / rec.replaced[:2] / f"{rec.replaced}.fits").exists()
    finally:
        archive.close()
