"""Share archive benchmark: 100,000 spectra metadata rows on SQLite and PostgreSQL.

Measures, per backend:
- search by object and date range through the archive (ORM) vs the same query as raw SQL (reference);
- the gallery page of an object with 200 epochs (HTML), and its dynamic-spectrum plot cold and cached;
- upload throughput: spectra/s through the REST API vs straight into the archive (reference).

Run: ``python benchmarks/bench_share.py [--rows 100000] [--postgres URL]``. PostgreSQL
is used when ``--postgres`` or ROSACE_TEST_POSTGRES_URL is given and reachable.
The last line of output is one JSON object with the headline figures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "modules"), str(ROOT)]


def peak_rss_mb() -> float | None:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except ImportError:  # Windows
        return None


def fits_bytes(obj: str, date: datetime, seed: int, emission: float) -> bytes:
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    wl = 6450.0 + 0.4 * np.arange(600)
    v = 299792.458 * (wl - 6562.85) / 6562.85
    flux = 1 + emission * np.exp(-0.5 * (v / 150) ** 2) + rng.normal(0, 0.007, wl.size)
    h = fits.Header()
    for k, val in {"CRPIX1": 1.0, "CRVAL1": 6450.0, "CDELT1": 0.4, "CTYPE1": "Wavelength", "CUNIT1": "Angstrom", "OBJNAME": obj, "DATE-OBS": date.isoformat(),
                   "EXPTIME": 600.0, "OBSERVER": "Bench", "BSS_INST": "C11 + LHIRES", "BSS_SITE": "Bench", "BSS_VHEL": 0.0, "BSS_COSM": "none",
                   "BSS_NORM": "spline", "BSS_TELL": "none", "BSS_ITRP": 15000.0, "ROSSNR": 150.0}.items():
        h[k] = val
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(flux.astype(np.float32), header=h), fits.ImageHDU((np.ones(600) * 0.007).astype(np.float32), name="UNCERT")]).writeto(buf)
    return buf.getvalue()


def fill(archive, rows: int, objects: int = 2000) -> float:
    """Bulk-insert metadata rows (the files are not needed for searches); return seconds."""
    from sqlalchemy import insert

    from rosace_share.db import SpectrumRecord

    rng = np.random.default_rng(1)
    t0 = datetime(2015, 1, 1)
    start = time.perf_counter()
    chunk = 5000
    created = datetime(2025, 1, 1)
    for base in range(0, rows, chunk):
        batch = []
        for i in range(base, min(rows, base + chunk)):
            k = int(rng.integers(0, objects))
            date = t0 + timedelta(days=float(rng.uniform(0, 3650)))
            batch.append({
                "sha256": uuid.uuid4().hex + uuid.uuid4().hex, "object": f"HD {1000 + k}", "object_key": f"HD{1000 + k}", "date_obs": date,
                "jd": 2457023.5 + (date - t0).total_seconds() / 86400, "exptime": 600.0, "observer": f"obs{k % 40}", "site": "site", "instrument": f"inst{k % 7}",
                "resolving_power": 1000.0, "measured_r": None, "wl_min": 4000.0, "wl_max": 7000.0, "n_pixels": 2000, "snr": float(rng.uniform(10, 300)),
                "wl_rms": 0.05, "normalised": True, "quality": "good", "flags": [], "campaign": None, "owner": "bench", "filename": "", "size": 0,
                "header": {}, "provenance": {}, "bess_missing": [], "upstream": None, "created": created,
            })
        with archive.engine.begin() as conn:
            conn.execute(insert(SpectrumRecord.__table__), batch)
    if archive.engine.dialect.name == "postgresql":
        with archive.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE spectra")
    return time.perf_counter() - start


def timed(fn, repeat: int) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_backend(name: str, url: str, rows: int, epochs: int, uploads: int, work: Path) -> dict:
    from sqlalchemy import text

    from rosace_core.config import config_from_dict
    from rosace_share.api import create_app

    cfg = config_from_dict({"data": {"root": str(work / name)}, "share": {"database_url": url}})
    app = create_app(cfg, token="bench")
    archive = app.extensions["rosace_share"].archive
    out: dict = {"backend": name, "rows": rows}
    out["fill_s"] = round(fill(archive, rows), 2)
    for i in range(epochs):
        archive.add(fits_bytes("Bench Star", datetime(2024, 1, 1) + timedelta(days=2 * i, hours=1), i, 1 + np.sin(i / 15)), owner="bench")

    rng = np.random.default_rng(5)
    queries = []
    for _ in range(60):
        k = int(rng.integers(0, 2000))
        y = int(rng.integers(2015, 2024))
        queries.append((f"HD {1000 + k}", f"{y}-01-01", f"{y + 1}-06-30"))
    it = iter(queries * 10)

    def orm():
        obj, a, b = next(it)
        archive.search(object=obj, start=a, end=b, limit=100)

    out["search_ms"] = round(timed(orm, 60), 2)
    # Reference: the same query written by hand, straight to the driver.
    sql = text("SELECT * FROM spectra WHERE object_key = :k AND date_obs >= :a AND date_obs <= :b ORDER BY date_obs DESC LIMIT 100")
    it2 = iter(queries * 10)

    def raw():
        obj, a, b = next(it2)
        with archive.engine.connect() as conn:
            conn.execute(sql, {"k": obj.replace(" ", "").upper(), "a": datetime.fromisoformat(a), "b": datetime.fromisoformat(b) + timedelta(days=1)}).all()

    out["search_raw_sql_ms"] = round(timed(raw, 60), 2)
    out["search_ratio"] = round(out["search_ms"] / out["search_raw_sql_ms"], 2)
    matches = archive.search(object=queries[0][0], start=queries[0][1], end=queries[0][2])[1]
    out["search_example_matches"] = matches

    web = app.test_client()
    assert web.get("/gallery/objects/BENCHSTAR").status_code == 200
    out["object_page_ms"] = round(timed(lambda: web.get("/gallery/objects/BENCHSTAR"), 15), 2)
    t = time.perf_counter()
    assert web.get("/gallery/objects/BENCHSTAR/dynamic.png").status_code == 200
    out["dynamic_plot_cold_ms"] = round((time.perf_counter() - t) * 1000, 1)
    out["dynamic_plot_cached_ms"] = round(timed(lambda: web.get("/gallery/objects/BENCHSTAR/dynamic.png"), 10), 2)

    files = [fits_bytes("Upload Star", datetime(2023, 1, 1) + timedelta(hours=i), 10_000 + i, 1.0) for i in range(2 * uploads)]
    t = time.perf_counter()
    for data in files[:uploads]:
        resp = web.post("/api/v1/share/spectra", data={"file": (io.BytesIO(data), "s.fits")}, headers={"Authorization": "Bearer bench"}, content_type="multipart/form-data")
        assert resp.status_code == 201, resp.json
    out["upload_rest_per_s"] = round(uploads / (time.perf_counter() - t), 1)
    t = time.perf_counter()
    for data in files[uploads:]:
        archive.add(data, owner="bench")
    out["upload_archive_per_s"] = round(uploads / (time.perf_counter() - t), 1)
    archive.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--uploads", type=int, default=100)
    parser.add_argument("--postgres", default=os.environ.get("ROSACE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    from rosace_core.astro import configure_offline

    configure_offline()
    os.environ.setdefault("ROSACE_TOKEN", "bench")
    results = []
    with tempfile.TemporaryDirectory(prefix="rosace-bench-share-") as tmp:
        work = Path(tmp)
        results.append(bench_backend("sqlite", f"sqlite:///{(work / 'bench.sqlite').as_posix()}", args.rows, args.epochs, args.uploads, work))
        print(json.dumps(results[-1]))
        if args.postgres:
            from sqlalchemy import create_engine, text

            schema = "bench_" + uuid.uuid4().hex[:10]
            admin = create_engine(args.postgres)
            try:
                with admin.begin() as conn:
                    conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                sep = "&" if "?" in args.postgres else "?"
                results.append(bench_backend("postgresql", f"{args.postgres}{sep}options=-csearch_path%3D{schema}", args.rows, args.epochs, args.uploads, work))
                print(json.dumps(results[-1]))
            except Exception as exc:  # a missing server only removes that column
                print(f"postgresql skipped: {exc.__class__.__name__}: {str(exc)[:200]}")
            finally:
                try:
                    with admin.begin() as conn:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
                except Exception:
                    pass
                admin.dispose()
        else:
            print("postgresql skipped: give --postgres URL or set ROSACE_TEST_POSTGRES_URL")
    headline = {"benchmark": "share", "rows": args.rows, "epochs": args.epochs, "peak_rss_mb": round(peak_rss_mb() or 0, 1)}
    for r in results:
        b = r["backend"]
        for key in ("search_ms", "search_raw_sql_ms", "search_ratio", "object_page_ms", "dynamic_plot_cold_ms", "dynamic_plot_cached_ms", "upload_rest_per_s", "upload_archive_per_s", "fill_s"):
            headline[f"{b}_{key}"] = r[key]
    print(json.dumps(headline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
