"""The end-of-night summary: figures, checks against the scenario's expectations, gallery page."""

from __future__ import annotations

import html
import logging
from datetime import datetime, timezone

from rosace_core.errors import RosaceError

log = logging.getLogger(__name__)

#: What a demo night must achieve unless the scenario says otherwise (key `expectations`).
DEFAULT_EXPECTATIONS = {
    "min_completed": 4,               # completed observation blocks
    "min_targets": 3,                 # distinct targets observed
    "min_clear_completion": 0.98,     # completed / attempted under a safe sky (the best published figure: 98.3 %)
    "roof_closed_at_end": True,
    "max_open_in_bad_weather_s": 600,  # longest stretch with the roof open while the weather was unsafe
}


def _parse(ts: str | None) -> datetime | None:
    if not ts:
        return None
    try:
        value = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def _weather_unsafe(dome: dict) -> bool:
    """Unsafe for a reason other than daylight."""
    if dome.get("safe") is not False:
        return False
    reasons = (dome.get("verdict") or {}).get("reasons") or []
    return any("sun" not in r.lower() for r in reasons) or not reasons


def weather_loss(snapshots: list[dict]) -> float:
    """Simulated seconds during which the dome module's verdict was unsafe for the weather."""
    lost = 0.0
    for a, b in zip(snapshots, snapshots[1:]):
        ta, tb = _parse(a.get("time")), _parse(b.get("time"))
        if ta and tb and _weather_unsafe(a.get("dome") or {}):
            lost += (tb - ta).total_seconds()
    return lost


def roof_closures(snapshots: list[dict]) -> int:
    """How many times the roof went from open to closing/closed while the weather was unsafe."""
    count = 0
    for a, b in zip(snapshots, snapshots[1:]):
        da, db = a.get("dome") or {}, b.get("dome") or {}
        before = (da.get("shelter") or {}).get("state")
        after = (db.get("shelter") or {}).get("state")
        if before == "open" and after in ("closing", "closed") and (_weather_unsafe(da) or _weather_unsafe(db)):
            count += 1
    return count


def open_in_bad_weather(snapshots: list[dict]) -> float:
    """Longest stretch (simulated s) with the roof not closed while the weather was unsafe."""
    longest = current = 0.0
    for a, b in zip(snapshots, snapshots[1:]):
        ta, tb = _parse(a.get("time")), _parse(b.get("time"))
        dome = a.get("dome") or {}
        state = (dome.get("shelter") or {}).get("state")
        if ta and tb and _weather_unsafe(dome) and state in ("open", "opening"):
            current += (tb - ta).total_seconds()
            longest = max(longest, current)
        else:
            current = 0.0
    return longest


def unsafe_spans(snapshots: list[dict]) -> list[tuple[datetime, datetime]]:
    """Clock spans during which the weather may have been unsafe, by the dome module's verdict.

    A span runs from the last snapshot with a safe verdict before an unsafe one to
    the first safe one after it: the verdict changed somewhere in between, and a
    snapshot is taken every half wall second (a minute and a half of clock time at 180x).
    """
    spans = []
    start = None
    last_safe = None
    for snap in snapshots:
        when = _parse(snap.get("time"))
        if when is None:
            continue
        if _weather_unsafe(snap.get("dome") or {}):
            if start is None:
                start = last_safe or when
        else:
            if start is not None:
                spans.append((start, when))
                start = None
            last_safe = when
    if start is not None:
        spans.append((start, _parse(snapshots[-1].get("time")) or start))
    return spans


def failed_under_unsafe_sky(history: list[dict], snapshots: list[dict]) -> list[dict]:
    """Failed observations that ended while the weather was unsafe.

    The weather, not the observatory, ended them: an observation started just before
    the dome parked the mount for clouds fails on "the mount is parked" and is a
    weather interruption, not a failure under a safe sky.
    """
    spans = unsafe_spans(snapshots)
    out = []
    for h in history:
        if h.get("outcome") != "failed":
            continue
        ended = _parse(h.get("ended"))
        if ended and any(a <= ended <= b for a, b in spans):
            out.append(h)
    return out


def evaluate(night, summary: dict) -> dict:
    """Compute the night's figures and check them against the expectations."""
    expect = {**DEFAULT_EXPECTATIONS, **(night.expectations or {})}
    history = [h for h in summary.get("history") or [] if isinstance(h, dict)]
    completed = [h for h in history if h.get("outcome") == "completed"]
    weather_failed = failed_under_unsafe_sky(history, night.snapshots)
    weather = [h for h in history if h.get("outcome") == "interrupted"] + weather_failed
    failed_clear = [h for h in history if h.get("outcome") == "failed" and h not in weather_failed]
    attempted_clear = completed + failed_clear
    ratio = len(completed) / len(attempted_clear) if attempted_clear else 0.0
    targets = sorted({t for h in completed if (t := h.get("target") or h.get("file_id"))})
    # The raw frames written (what the live display counts), not only those of completed observations.
    frames = getattr(night, "frames_taken", None)
    if frames is None:
        frames = sum(len(h.get("frames") or []) if isinstance(h.get("frames"), list) else int(h.get("frames") or 0) for h in summary.get("sequencer_history") or [])

    spectra = summary.get("spectra") or []
    spectra_rows = [
        {
            "object": s.get("object"),
            "date": s.get("date_obs"),
            "snr": s.get("snr"),
            "wavelength_rms": s.get("wl_rms"),
            "resolving_power": s.get("measured_r") or s.get("resolving_power"),
            "bess_ok": not s.get("bess_missing"),
            "bess_missing": ", ".join(s.get("bess_missing") or []),
            "id": s.get("id"),
        }
        for s in spectra
    ]
    # Delay from the end of an observation to its spectrum in the archive: each spectrum
    # is matched with the latest completed observation of its object that ended before it.
    delays = []
    for s in spectra:
        created = _parse(s.get("created"))
        if created is None:
            continue
        ended = [_parse(h.get("ended")) for h in completed if (h.get("target") or "").lower() == (s.get("object") or "").lower()]
        ends = [e for e in ended if e and e <= created]
        if ends:
            delays.append((created - max(ends)).total_seconds())

    final_dome = summary.get("final_dome") or {}
    roof_state = (final_dome.get("shelter") or {}).get("state")
    closures = roof_closures(night.snapshots)
    exposed = open_in_bad_weather(night.snapshots)
    figures = {
        "observations_completed": len(completed),
        "observations_interrupted_by_weather": len(weather),
        "observations_failed_under_a_safe_sky": len(failed_clear),
        "observations_failed_as_the_weather_turned": len(weather_failed),
        "clear_sky_completion": f"{ratio * 100:.1f} % ({len(completed)}/{len(attempted_clear)})",
        "targets_observed": ", ".join(t for t in targets if t) or "none",
        "frames_taken": frames,
        "raw_frames": ("kept in data/raw" if getattr(night, "keep_raw", True)
                       else "removed at the end of the run (--keep-raw keeps them); the spectra's provenance names files no longer on disk"),
        "spectra_in_archive": len(spectra_rows),
        "time_lost_to_weather": f"{weather_loss(night.snapshots) / 3600:.2f} h",
        "roof_closures_on_weather": closures,
        "roof_at_end": roof_state,
        "median_frame_to_archive_delay_s": (sorted(delays)[len(delays) // 2] if delays else "n/a"),
        "faults_and_drills": "; ".join(f"{d.name}: {d.note}" for d in night.drills) or "none",
        "peak_memory_all_processes_mb": round(getattr(night, "peak_memory_mb", 0.0)),
        "peak_memory_by_process_mb": ", ".join(f"{k} {v}" for k, v in getattr(night, "peak_memory_by_process_mb", {}).items()),
        "process_restarts": sum(c.restarts for c in night.procs.children.values()) if night.procs else 0,
    }
    checks = [
        {"name": "observations completed", "ok": len(completed) >= expect["min_completed"], "detail": f"{len(completed)} (expected >= {expect['min_completed']})"},
        {"name": "targets observed", "ok": len(targets) >= expect["min_targets"], "detail": f"{len(targets)} (expected >= {expect['min_targets']})"},
        {"name": "clear-sky completion", "ok": ratio >= expect["min_clear_completion"], "detail": f"{ratio * 100:.1f} % (expected >= {expect['min_clear_completion'] * 100:.0f} %)"},
        {"name": "every spectrum passes the BeSS keyword check", "ok": bool(spectra_rows) and all(r["bess_ok"] for r in spectra_rows), "detail": f"{sum(1 for r in spectra_rows if r['bess_ok'])}/{len(spectra_rows)}"},
        {"name": "roof closed whenever the weather was unsafe", "ok": exposed <= expect["max_open_in_bad_weather_s"],
         "detail": f"longest open stretch in bad weather {exposed:.0f} s (allowed {expect['max_open_in_bad_weather_s']} s to park and close); {closures} closure(s) on weather"},
    ]
    if expect["roof_closed_at_end"]:
        checks.append({"name": "roof closed at the end", "ok": roof_state == "closed", "detail": str(roof_state)})
    verdict = {
        "passed": all(c["ok"] for c in checks),
        "figures": figures,
        "checks": checks,
        "spectra": spectra_rows,
        "events": night.events,
        "errors": summary.get("errors", []),
    }
    verdict["report_url"] = publish_report(night, verdict)
    return verdict


def _shown(value, fmt: str | None = None) -> str:
    """A figure for a reader: numbers rounded (raw floats such as 207.48391 were shown), None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return (fmt or ("{:.0f}" if abs(value) >= 100 else "{:.3g}")).format(value)
    return str(value)


def _object_link(name) -> str:
    if not name:
        return ""
    from urllib.parse import quote

    # The gallery finds an object by its name as well as by its key.
    return f'<a href="/gallery/objects/{quote(str(name), safe="")}">{html.escape(str(name))}</a>'


def publish_report(night, verdict: dict) -> str | None:
    """Post the summary as a page of the share gallery; return its URL (None if share is down)."""
    rows = "".join(f"<tr><th>{html.escape(k.replace('_', ' '))}</th><td>{html.escape(_shown(v))}</td></tr>" for k, v in verdict["figures"].items())
    checks = "".join(f"<li>{'PASS' if c['ok'] else 'FAIL'}: {html.escape(c['name'])} ({html.escape(c['detail'])})</li>" for c in verdict["checks"])
    spectra = "".join(
        "<tr>"
        f"<td>{_object_link(s.get('object'))}</td><td>{html.escape(str(s.get('date') or '')[:16].replace('T', ' '))}</td>"
        f"<td>{_shown(s.get('snr'), '{:.0f}')}</td><td>{_shown(s.get('wavelength_rms'), '{:.3f}')}</td>"
        f"<td>{_shown(s.get('resolving_power'), '{:.0f}')}</td><td>{'yes' if s.get('bess_ok') else html.escape('no: ' + (s.get('bess_missing') or ''))}</td>"
        + (f"<td><a href=\"/gallery/spectra/{int(s['id'])}\">spectrum</a></td>" if isinstance(s.get("id"), int) else "<td></td>")
        + "</tr>"
        for s in verdict["spectra"]
    )
    events = "".join(f"<li>{html.escape(e)}</li>" for e in verdict["events"])
    body = (
        f"<h2>Figures</h2><table>{rows}</table>"
        f"<h2>Checks</h2><ul>{checks}</ul>"
        f"<h2>Spectra</h2><table><tr><th>object</th><th>date (UTC)</th><th>S/N</th><th>wavelength RMS (Å)</th><th>R</th><th>BeSS-ready</th><th></th></tr>{spectra}</table>"
        f"<h2>Events</h2><ul>{events}</ul>"
    )
    try:
        result = night.client("share").post("/reports", {"title": f"Demo night {night.start_time:%Y-%m-%d}", "body_html": body})
    except RosaceError as exc:
        log.warning("could not publish the summary page: %s", exc)
        return None
    url = (result or {}).get("url") or (f"/gallery/reports/{result.get('id')}" if isinstance(result, dict) and result.get("id") else None)
    return f"{night.url('share')}{url}" if url and url.startswith("/") else url
