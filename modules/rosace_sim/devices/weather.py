"""SafetyMonitor and ObservingConditions, both following the scenario's weather."""

from __future__ import annotations

from rosace_sim.devices.base import InvalidValue, NotImplementedAscom, SimDevice, utc_now

#: ASCOM ObservingConditions property -> weather quantity (None: not implemented).
SENSORS = {
    "cloudcover": ("CloudCover", "cloud_cover", "Simulated all-sky cloud sensor (%)"),
    "dewpoint": ("DewPoint", "dew_point", "Dew point from temperature and humidity (degC)"),
    "humidity": ("Humidity", "humidity", "Simulated hygrometer (%)"),
    "pressure": ("Pressure", "pressure", "Simulated barometer (hPa)"),
    "rainrate": ("RainRate", "rain_rate", "Simulated rain sensor (mm/h)"),
    "skybrightness": ("SkyBrightness", "sky_brightness", "Simulated sky brightness (lux)"),
    "skyquality": ("SkyQuality", "sky_quality", "Simulated sky quality meter (mag/arcsec^2)"),
    "starfwhm": ("StarFWHM", "seeing", "Seeing FWHM (arcsec)"),
    "temperature": ("Temperature", "temperature", "Simulated thermometer (degC)"),
    "windgust": ("WindGust", "wind_gust", "Simulated anemometer, gusts (m/s)"),
    "windspeed": ("WindSpeed", "wind_speed", "Simulated anemometer (m/s)"),
}
NOT_IMPLEMENTED = {"skytemperature": "SkyTemperature", "winddirection": "WindDirection"}


class SimSafetyMonitor(SimDevice):
    """SafetyMonitor device 0 (ASCOM ISafetyMonitorV3)."""

    device_type = "safetymonitor"
    interface_version = 3
    description = "Simulated safety monitor following the scenario weather"

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim safety monitor")

    def get_issafe(self) -> bool:
        # ASCOM: a disconnected safety monitor reports unsafe rather than an error.
        if not self._connected:
            return False
        stale = self.observatory.faults.first_start(self.device_type, self.device_number, "stale")
        values, _ = self.observatory.weather.reading(stale)
        return bool(values["safe"])

    def check_call(self, member: str) -> None:
        if member == "issafe" and not self.fault("disconnect") and not self.fault("error"):
            return
        super().check_call(member)

    def device_state(self) -> dict:
        return {"IsSafe": self.get_issafe()}

    def snapshot(self) -> dict:
        snap = super().snapshot()
        snap["is_safe"] = self.get_issafe()
        return snap


class SimObservingConditions(SimDevice):
    """ObservingConditions device 0 (ASCOM IObservingConditionsV2)."""

    device_type = "observingconditions"
    interface_version = 2
    description = "Simulated weather station following the scenario weather"

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim weather station")
        self._average_period = 0.0

    def _reading(self):
        stale = self.observatory.faults.first_start(self.device_type, self.device_number, "stale")
        return self.observatory.weather.reading(stale)

    def _value(self, key: str) -> float:
        values, _ = self._reading()
        return float(values[SENSORS[key][1]])

    def __getattr__(self, name: str):
        # get_cloudcover, get_humidity ... generated from SENSORS.
        if name.startswith("get_") and name[4:] in SENSORS:
            key = name[4:]
            return lambda: self._value(key)
        if name.startswith("get_") and name[4:] in NOT_IMPLEMENTED:
            prop = NOT_IMPLEMENTED[name[4:]]

            def missing():
                raise NotImplementedAscom(f"{prop} is not measured by the simulated station")

            return missing
        raise AttributeError(name)

    def get_averageperiod(self) -> float:
        return self._average_period

    def put_averageperiod(self, AveragePeriod: float) -> None:
        if AveragePeriod != 0.0:
            raise InvalidValue("only instantaneous readings (AveragePeriod 0) are offered")
        self._average_period = 0.0

    def put_refresh(self) -> None:
        # The station measures on its own schedule; Refresh changes nothing.
        return None

    def _sensor(self, SensorName: str) -> str:
        key = SensorName.strip().lower()
        if key in NOT_IMPLEMENTED:
            raise NotImplementedAscom(f"{SensorName} is not measured")
        if key not in SENSORS:
            raise InvalidValue(f"unknown sensor {SensorName!r}")
        return key

    def get_sensordescription(self, SensorName: str) -> str:
        return SENSORS[self._sensor(SensorName)][2]

    def get_timesincelastupdate(self, SensorName: str) -> float:
        if SensorName.strip():
            self._sensor(SensorName)
        _, measured = self._reading()
        return max(0.0, (utc_now() - measured).total_seconds())

    def device_state(self) -> dict:
        values, measured = self._reading()
        state = {SENSORS[k][0]: float(values[SENSORS[k][1]]) for k in SENSORS}
        return state

    def snapshot(self) -> dict:
        snap = super().snapshot()
        values, measured = self._reading()
        snap["readings"] = {k: v for k, v in values.items()}
        snap["measured"] = measured.isoformat()
        snap["age"] = (utc_now() - measured).total_seconds()
        return snap
