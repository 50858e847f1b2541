"""The whole simulated observatory: scenario, clock, weather, faults, truth and devices."""

from __future__ import annotations

import logging
from datetime import datetime

from rosace_core.clock import get_clock

from rosace_sim.devices.camera import SimCamera
from rosace_sim.devices.dome import SimDome
from rosace_sim.devices.focuser import SimFocuser
from rosace_sim.devices.switch import SimSwitch
from rosace_sim.devices.telescope import SimTelescope
from rosace_sim.devices.weather import SimObservingConditions, SimSafetyMonitor
from rosace_sim.faults import Fault, FaultBook
from rosace_sim.scenario import Scenario, load_scenario
from rosace_sim.scene import Scene
from rosace_sim.truth import TruthStore
from rosace_sim.weather import Weather

log = logging.getLogger(__name__)

#: ASCOM device type names as the management API spells them.
DEVICE_TYPE_NAMES = {
    "camera": "Camera", "dome": "Dome", "telescope": "Telescope", "switch": "Switch",
    "safetymonitor": "SafetyMonitor", "observingconditions": "ObservingConditions", "focuser": "Focuser",
}


class Observatory:
    """Every simulated device of one scenario, with the shared weather, faults and truth."""

    server_name = "ROSACE simulated observatory"

    def __init__(self, scenario: Scenario | dict | str | None = None):
        self.scenario = load_scenario(scenario)
        self.weather = Weather(self.scenario)
        self.faults = FaultBook([
            Fault(device=f.device, kind=f.kind, device_number=f.device_number, start=self.scenario.instant(f.at), duration=f.duration)
            for f in self.scenario.faults
        ])
        self.truths = TruthStore(self.scenario.truth_dir)
        self.scene = Scene(self)
        det = self.scene.instrument.detector
        cam = self.scenario.spectro_camera
        g = self.scenario.guide_camera
        self.dome = SimDome(self)
        self.telescope = SimTelescope(self)
        self.switch = SimSwitch(self)
        self.safety = SimSafetyMonitor(self)
        self.conditions = SimObservingConditions(self)
        self.focuser = SimFocuser(self)
        self.spectro_camera = SimCamera(
            self, 0, role="spectro", nx=det.nx, ny=det.ny, pixel_um=det.pixel_um,
            gain=det.gain, full_well=float(det.saturation) * float(det.gain),
            cooled=cam.cooled, cooling=cam, readout_time=cam.readout_time,
            name=f"ROSACE sim spectrograph camera ({self.scenario.instrument})",
        )
        self.guide_camera = SimCamera(
            self, 1, role="guide", nx=g.nx, ny=g.ny, pixel_um=g.pixel_um, gain=1.0, full_well=20000.0,
            cooled=False, readout_time=g.readout_time, name="ROSACE sim guide camera (slit jaw)",
        )
        self.devices = {
            ("dome", 0): self.dome,
            ("telescope", 0): self.telescope,
            ("camera", 0): self.spectro_camera,
            ("camera", 1): self.guide_camera,
            ("switch", 0): self.switch,
            ("safetymonitor", 0): self.safety,
            ("observingconditions", 0): self.conditions,
            ("focuser", 0): self.focuser,
        }

    def device(self, device_type: str, number: int):
        """Return a device or None."""
        return self.devices.get((device_type, number))

    def configured_devices(self) -> list[dict]:
        """The management API's list of devices."""
        return [
            {"DeviceName": d.display_name, "DeviceType": DEVICE_TYPE_NAMES[t], "DeviceNumber": n, "UniqueID": d.unique_id}
            for (t, n), d in self.devices.items()
        ]

    def state(self) -> dict:
        """A JSON-able snapshot of the whole observatory (``GET /sim/v1/state``)."""
        now: datetime = get_clock().now()
        values = self.weather.values_at(now)
        return {
            "time": now.isoformat(),
            "clock": get_clock().spec(),
            "scenario": self.scenario.name,
            "site": self.scenario.site.model_dump(),
            "instrument": self.scenario.instrument,
            "weather": values,
            "faults": self.faults.to_list(),
            "devices": {f"{t}/{n}": d.snapshot() for (t, n), d in self.devices.items()},
            "renderer": "render" if self.scene.renderer() is not None else "fallback",
        }
