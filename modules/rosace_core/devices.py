"""What ROSACE will use of each configured device: ``rosace devices check`` and the desktop's dialog.

:func:`check_devices` connects to every device of ``[devices]``, reads its
capabilities (the adapter's ``capabilities()``), and says for each what ROSACE
will use, what is missing and whether that stops the observatory:

- ``ok``: everything ROSACE uses is there;
- ``limited``: it works without something (no pulse guiding: no slit acquisition
  or guiding; no cooling...);
- ``refused``: present, but ROSACE cannot work with it (a roof that cannot be
  opened or closed, a lamp channel the switch does not have, a weather reading
  outside what is possible...);
- ``missing``: no answer, or no such device on the server.

Nothing is moved or switched: only reads (and Connected=True).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

from rosace_core import alpaca
from rosace_core.errors import DeviceError
from rosace_core.weather import QUANTITIES

log = logging.getLogger(__name__)

#: [devices] role -> (title, adapter class)
ROLES: dict[str, tuple[str, type]] = {
    "dome": ("shelter (roof or dome)", alpaca.Dome),
    "telescope": ("mount", alpaca.Telescope),
    "spectro_camera": ("spectrograph camera", alpaca.Camera),
    "guide_camera": ("guide camera", alpaca.Camera),
    "switch": ("calibration lamps (switch)", alpaca.Switch),
    "safety_monitor": ("safety monitor", alpaca.SafetyMonitor),
    "observing_conditions": ("weather station", alpaca.ObservingConditions),
}

EQUATORIAL_SYSTEMS = {0: "other", 1: "topocentric (of date)", 2: "J2000", 3: "J2050", 4: "B1950"}
BAD = ("missing", "refused")


@dataclass
class DeviceReport:
    """One device's answer to the check."""

    role: str
    title: str
    url: str
    device_number: int
    status: str = "ok"
    name: str | None = None
    uses: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    capabilities: dict[str, Any] = field(default_factory=dict)

    def limit(self, text: str) -> None:
        self.missing.append(text)
        if self.status == "ok":
            self.status = "limited"

    def refuse(self, text: str) -> None:
        self.missing.append(text)
        if self.status != "missing":
            self.status = "refused"

    def to_dict(self) -> dict:
        return asdict(self)


def _dome_limits(config) -> list[str]:
    """The sensors the dome module judges the sky with (its [dome] limits)."""
    try:
        from rosace_dome.settings import load_settings

        return list(load_settings(config)[0].limits)
    except Exception as exc:  # no dome module, or its table is invalid (config check says so)
        log.debug("dome limits unavailable: %s", exc)
        return list((config.options("dome").get("limits") or {}))


def _dome(rep: DeviceReport, caps: dict, config) -> None:
    if caps.get("can_set_shutter") is False:
        rep.refuse("cannot open or close its shutter/roof (CanSetShutter false)")
    else:
        rep.uses.append("open/close the roof")
    if config.devices.shelter == "dome":
        if caps.get("can_set_azimuth"):
            rep.uses.append("slit follows the mount (azimuth)")
        else:
            rep.limit("cannot set its azimuth (CanSetAzimuth false): no slaving")


def _telescope(rep: DeviceReport, caps: dict, config) -> None:
    if caps.get("can_park") is False:
        text = "cannot park (CanPark false)"
        if config.devices.shelter == "rolloff":
            rep.refuse(text + ": a roll-off roof closes only over a parked mount")
        else:
            rep.limit(text)
    else:
        rep.uses.append("park/unpark")
    if caps.get("can_pulse_guide") is False:
        rep.limit("cannot pulse-guide (CanPulseGuide false): slit acquisition moves and guiding disabled")
    else:
        rate = caps.get("guide_rate_ra")
        rep.uses.append("pulse guiding" + (f" at {float(rate) * 3600:.2f} arcsec/s" if rate else ""))
    system = caps.get("equatorial_system")
    if system in (3, 4):
        rep.refuse(f"works in {EQUATORIAL_SYSTEMS[system]} coordinates (EquatorialSystem {system}): not supported")
    elif system is not None:
        rep.uses.append(f"coordinates: {EQUATORIAL_SYSTEMS.get(system, system)}")
    if caps.get("can_set_tracking") is False:
        rep.limit("cannot switch tracking (CanSetTracking false)")


def _camera(rep: DeviceReport, caps: dict, config) -> None:
    nx, ny = caps.get("sensor_x"), caps.get("sensor_y")
    if nx and ny:
        pix = caps.get("pixel_size")
        rep.uses.append(f"{nx} x {ny} px" + (f" of {float(pix):g} um" if pix else ""))
    bx = caps.get("max_bin_x")
    if bx:
        rep.uses.append(f"binning up to {bx}x{caps.get('max_bin_y') or bx}")
    for key, label in (("gain", "gain"), ("electrons_per_adu", "e-/ADU"), ("max_adu", "max ADU")):
        if caps.get(key) is not None:
            rep.uses.append(f"{label} {caps[key]:g}" if isinstance(caps[key], (int, float)) else f"{label} {caps[key]}")
    modes = caps.get("readout_modes")
    if modes:
        current = caps.get("readout_mode")
        rep.uses.append(f"readout {modes[current] if isinstance(current, int) and 0 <= current < len(modes) else modes[0]!s}")
    if rep.role == "spectro_camera":
        if caps.get("can_set_ccd_temperature") is False:
            rep.limit("cannot set its temperature (CanSetCCDTemperature false): frames taken uncooled")
        else:
            rep.uses.append(f"cooling to {config.instrument.camera_set_point:g} C")
    if caps.get("can_abort_exposure") is False:
        rep.limit("cannot abort an exposure (CanAbortExposure false): an unsafe sky waits for the readout")


def resolve_lamps(lamps: dict[str, str | int], names: list[str]) -> tuple[dict[str, int], list[str]]:
    """Find the configured lamps (``[devices.switch] lamps``) among a Switch's channel names.

    Returns (lamp name -> channel id, problems); a channel given by name matches
    case-insensitively, one given by id must exist.
    """
    listing = ", ".join(f"{i} {n!r}" for i, n in enumerate(names)) or "none"
    resolved: dict[str, int] = {}
    problems: list[str] = []
    for lamp, channel in lamps.items():
        if isinstance(channel, int):
            if channel < len(names):
                resolved[lamp] = channel
            else:
                problems.append(f"lamp {lamp!r} is channel {channel} in [devices.switch] lamps, but the switch has channels {listing}")
            continue
        found = [i for i, n in enumerate(names) if n.lower() == str(channel).lower()]
        if found:
            resolved[lamp] = found[0]
        else:
            problems.append(f"lamp {lamp!r} is channel {channel!r} in [devices.switch] lamps, "
                            f"but the switch has no channel of that name (channels: {listing})")
    return resolved, problems


def _switch(rep: DeviceReport, caps: dict, config) -> None:
    channels = caps.get("channels") or []
    names = [str(c.get("name")) for c in channels]
    resolved, problems = resolve_lamps(config.devices.switch.lamps, names)
    for text in problems:
        rep.refuse(text)
    used: set[int] = set()
    for lamp, index in resolved.items():
        if channels[index].get("can_write") is False:
            rep.refuse(f"lamp {lamp!r}: channel {index} {names[index]!r} is read-only")
            continue
        used.add(index)
        rep.uses.append(f"lamp {lamp} = channel {index} {names[index]!r}")
    others = [f"{c['id']} {c.get('name')!r}" for c in channels if c["id"] not in used]
    if others:
        rep.uses.append("never touched: " + ", ".join(others))


def _safety(rep: DeviceReport, caps: dict, config) -> None:
    safe = caps.get("is_safe")
    rep.uses.append(f"IsSafe (now: {'safe' if safe else 'unsafe' if safe is False else 'unknown'})")


def _conditions(rep: DeviceReport, device: alpaca.ObservingConditions, config) -> None:
    judged = set(_dome_limits(config))
    offered: dict[str, Any] = {}
    for name in alpaca.CONDITIONS:
        try:
            reading = device.reading(name)
        except DeviceError as exc:
            text = str(exc).removeprefix(device.label + ": ")
            (rep.refuse if name in judged else rep.limit)(text)
            offered[name] = None
            continue
        if reading.value is None:
            if name in judged:
                rep.refuse(f"{name} not offered, but the dome judges the sky by it ([dome] limits): the roof would never open")
            offered[name] = None
            continue
        quantity = QUANTITIES.get(name)
        offered[name] = reading.value
        rep.uses.append(f"{name} {reading.value:.4g} {quantity.unit if quantity else ''}".rstrip() + (" (judged)" if name in judged else ""))
    rep.capabilities = {"readings": offered}


_EVALUATE = {"dome": _dome, "telescope": _telescope, "spectro_camera": _camera, "guide_camera": _camera,
             "switch": _switch, "safety_monitor": _safety}


def _extra(rep: DeviceReport, device, caps: dict) -> None:
    """An extra device ([devices.NAME] with a type): ROSACE only reads it; steps drive it."""
    if isinstance(device, alpaca.Focuser):
        if caps.get("absolute") is False:
            rep.refuse("a relative focuser (Absolute false): steps cannot move it to a position")
        else:
            rep.uses.append(f"absolute moves, 0-{caps.get('max_step')} steps (now at {device.position})")
    elif isinstance(device, alpaca.FilterWheel):
        names = caps.get("names") or []
        rep.uses.append(f"{len(names)} positions: " + ", ".join(f"{i} {n!r}" for i, n in enumerate(names)))
    else:
        offered = [k for k, v in caps.items() if v is not None]
        if offered:
            rep.uses.append("read: " + ", ".join(offered))
    rep.uses.append("used by sequence steps (ctx.device(...)); never moved by ROSACE itself")


def check_devices(config, *, retries: int = 1) -> list[DeviceReport]:
    """Connect to every configured device (the roles, then the extra devices), read its capabilities, and report (see the module text)."""
    reports = []
    for role, (title, cls) in ROLES.items():
        dev_cfg = getattr(config.devices, role)
        rep = DeviceReport(role, title, dev_cfg.url, dev_cfg.device_number)
        kwargs: dict[str, Any] = {"retries": retries, "retry_delay": 0.2, "name": f"{title} ({dev_cfg.url}, #{dev_cfg.device_number})"}
        if role == "observing_conditions":
            kwargs["units"] = dev_cfg.units
        device = cls(dev_cfg.url, dev_cfg.device_number, **kwargs)
        try:
            device.connect(timeout=10.0)
            rep.name = device.name
            if role == "observing_conditions":
                _conditions(rep, device, config)
            else:
                rep.capabilities = device.capabilities()
                _EVALUATE[role](rep, rep.capabilities, config)
        except DeviceError as exc:
            rep.status = "missing"
            rep.missing.append(str(exc).removeprefix(device.label + ": "))
        reports.append(rep)
    classes = alpaca.device_classes() if getattr(config.devices, "extra", None) else {}
    for name, dev_cfg in sorted(getattr(config.devices, "extra", {}).items()):
        title = dev_cfg.title or f"{name} ({dev_cfg.type})"
        rep = DeviceReport(name, title, dev_cfg.url, dev_cfg.device_number)
        device = classes[dev_cfg.type](dev_cfg.url, dev_cfg.device_number, retries=retries, retry_delay=0.2,
                                       name=f"{title} ({alpaca.redact_url(dev_cfg.url)}, #{dev_cfg.device_number})")
        try:
            device.connect(timeout=10.0)
            rep.name = device.name
            rep.capabilities = device.capabilities()
            _extra(rep, device, rep.capabilities)
        except DeviceError as exc:
            rep.status = "missing"
            rep.missing.append(str(exc).removeprefix(device.label + ": "))
        reports.append(rep)
    return reports


def all_usable(reports: list[DeviceReport]) -> bool:
    """True when no device is missing or refused."""
    return not any(r.status in BAD for r in reports)
