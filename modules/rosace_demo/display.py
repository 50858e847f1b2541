"""The demo's live terminal display and end-of-night summary (rich)."""

from __future__ import annotations

from rich.console import Console
from rich.live import Live
from rich.table import Table


def _get(d, *path, default="-"):
    for key in path:
        if not isinstance(d, dict) or key not in d or d[key] is None:
            return default
        d = d[key]
    return d


class LiveDisplay:
    """A table refreshed on every tick: time, roof, verdict, target, step, frames, spectra."""

    def __init__(self):
        self.console = Console()
        self.live = Live(Table(), console=self.console, refresh_per_second=4, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)

    def update(self, night, snap: dict) -> None:
        dome = snap.get("dome", {})
        seq = snap.get("sequencer", {})
        table = Table(title="ROSACE demo night (simulated observatory)", show_header=False, expand=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("simulated time (UTC)", night.now().strftime("%Y-%m-%d %H:%M:%S") + f"  x{night.clock_rate:.0f}")
        safe = _get(dome, "safe", default=None)
        verdict = "[green]SAFE[/]" if safe is True else "[red]UNSAFE[/]" if safe is False else "[yellow]unknown[/]"
        reasons = ", ".join(_get(dome, "verdict", "reasons", default=[]) or [])
        table.add_row("roof", str(_get(dome, "shelter", "state")))
        table.add_row("safety", f"{verdict} {reasons}")
        table.add_row("sequencer", f"{_get(seq, 'mode')} / {_get(seq, 'state')}")
        obs = _get(seq, "observation", default={}) or {}
        night_info = _get(seq, "night", default={}) or {}
        table.add_row("target", str(_get(obs, "target", default=_get(obs, "file_id"))))
        fraction = float(_get(obs, "fraction", default=0) or 0)
        table.add_row("step", f"{_get(obs, 'message', default=_get(seq, 'message'))}  ({fraction * 100:.0f} %)")
        table.add_row("observations", f"{_get(night_info, 'completed', default=0)} completed, {_get(night_info, 'interrupted', default=0)} interrupted, {_get(night_info, 'failed', default=0)} failed")
        table.add_row("frames taken", str(snap.get("frames_on_disk", "-")))
        table.add_row("spectra reduced and archived", str(snap.get("spectra_in_archive") if snap.get("spectra_in_archive") is not None else "-"))
        table.add_row("last events", "\n".join(night.events[-4:]))
        self.live.update(table)


def print_summary(night, verdict: dict) -> None:
    """Print the end-of-night summary."""
    console = Console()
    table = Table(title="Night summary", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in verdict["figures"].items():
        table.add_row(key.replace("_", " "), str(value))
    console.print(table)
    if verdict.get("spectra"):
        spectra = Table(title="Spectra")
        for col in ("object", "date", "snr", "wavelength_rms", "resolving_power", "bess_ok"):
            spectra.add_column(col)
        for s in verdict["spectra"]:
            spectra.add_row(*(str(s.get(c, "-")) for c in ("object", "date", "snr", "wavelength_rms", "resolving_power", "bess_ok")))
        console.print(spectra)
    for check in verdict["checks"]:
        mark = "[green]PASS[/]" if check["ok"] else "[red]FAIL[/]"
        console.print(f"{mark} {check['name']}: {check['detail']}")
    if verdict.get("report_url"):
        console.print(f"summary page: {verdict['report_url']} (to browse it again: rosace --config \"{night.folder / 'rosace.toml'}\" share serve)")
    console.print(f"run folder: {night.folder}")
    console.print("[bold green]The night met the scenario's expectations.[/]" if verdict["passed"] else "[bold red]The night did NOT meet the scenario's expectations.[/]")
