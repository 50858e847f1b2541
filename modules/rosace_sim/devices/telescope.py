"""The simulated equatorial mount.

The mount believes it points at (``ra``, ``dec``), what it reports; the sky it
really sees is offset by ``pointing_error`` (drawn at the end of every slew, a
few arcseconds), which is what puts the star beside the slit on the guide camera,
and, while it tracks, by the tracking error (the scenario's ``telescope.tracking``:
the worm's periodic error in RA and a slow drift, counted from the end of the
last slew). Pulse guiding moves both the reported and the real pointing, at once;
the mount remembers its pulses so that :meth:`SimTelescope.pointing_track` can
say where the optical axis was at any instant of an exposure. Slews run at a finite rate on each axis plus a settle
time; the position in between is interpolated. Hour angles and altitudes come
from the local sidereal time of the observatory clock (astropy, offline).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from rosace_sim.devices.base import (
    InvalidOperation,
    InvalidValue,
    NotImplementedAscom,
    ParkedError,
    SimDevice,
    sim_seconds,
    utc_now,
)

SIDEREAL_RATE = 1.00273790935  # sidereal seconds per SI second
SIDEREAL_ARCSEC_PER_S = 15.041


class SiderealClock:
    """Local apparent sidereal time, from astropy at an anchor instant, extrapolated for an hour."""

    def __init__(self, longitude: float):
        self.longitude = longitude
        self._anchor: tuple[float, float] | None = None
        self._lock = threading.Lock()

    def lst_hours(self, when: float) -> float:
        with self._lock:
            if self._anchor is None or abs(when - self._anchor[0]) > 3600:
                from astropy import units as u
                from astropy.time import Time

                from rosace_core.astro import configure_offline

                configure_offline()
                t = Time(when, format="unix", scale="utc")
                lst = t.sidereal_time("apparent", longitude=self.longitude * u.deg).hour
                self._anchor = (when, float(lst))
            t0, lst0 = self._anchor
        return (lst0 + (when - t0) * SIDEREAL_RATE / 3600.0) % 24.0


def altaz(ha_hours: float, dec_deg: float, lat_deg: float) -> tuple[float, float]:
    """Altitude and azimuth (degrees, azimuth from north through east) of an hour angle / declination."""
    ha = math.radians(ha_hours * 15.0)
    dec = math.radians(dec_deg)
    lat = math.radians(lat_deg)
    sin_alt = math.sin(dec) * math.sin(lat) + math.cos(dec) * math.cos(lat) * math.cos(ha)
    alt = math.asin(max(-1.0, min(1.0, sin_alt)))
    az = math.atan2(-math.cos(dec) * math.sin(ha), math.sin(dec) * math.cos(lat) - math.cos(dec) * math.sin(lat) * math.cos(ha))
    az_deg = math.degrees(az) % 360.0
    return math.degrees(alt), 0.0 if az_deg >= 360.0 else az_deg


def hadec(alt_deg: float, az_deg: float, lat_deg: float) -> tuple[float, float]:
    """Hour angle (hours) and declination (degrees) of an altitude / azimuth."""
    alt, az, lat = (math.radians(v) for v in (alt_deg, az_deg, lat_deg))
    sin_dec = math.sin(alt) * math.sin(lat) + math.cos(alt) * math.cos(lat) * math.cos(az)
    dec = math.asin(max(-1.0, min(1.0, sin_dec)))
    ha = math.atan2(-math.cos(alt) * math.sin(az), math.sin(alt) * math.cos(lat) - math.cos(alt) * math.sin(lat) * math.cos(az))
    return (math.degrees(ha) / 15.0) % 24.0, math.degrees(dec)


def _wrap12(hours: float) -> float:
    return ((hours + 12.0) % 24.0) - 12.0


class SimTelescope(SimDevice):
    """Telescope device 0 (ASCOM ITelescopeV4), a German equatorial mount."""

    device_type = "telescope"
    interface_version = 4
    description = "Simulated equatorial mount"

    def __init__(self, observatory, device_number: int = 0):
        super().__init__(observatory, device_number, name="ROSACE sim equatorial mount")
        self.cfg = observatory.scenario.telescope
        self.site = observatory.scenario.site
        self.sidereal = SiderealClock(self.site.longitude)
        self.rng = np.random.default_rng(observatory.scenario.seed + 7)
        now = sim_seconds()
        self._tracking = False
        # Reported position: (ra hours, dec deg) when tracking, else held in hour angle.
        self._ha = self.cfg.park_ha
        self._dec = self.cfg.park_dec
        self._ra = (self.sidereal.lst_hours(now) - self._ha) % 24.0
        self._t_ref = now
        self._slew: dict | None = None
        self._at_park = self.cfg.start_parked
        self._park_pending = False
        self._error_arcsec = (0.0, 0.0)  # (east-west on sky, north-south) true minus reported
        # Tracking error: counted from _track_t0 (end of the last slew, sync, unpark or tracking change);
        # the pulse guides since then as (start, east, north) arcsec on the sky.
        self._track_t0 = now
        self._pulses: list[tuple[float, float, float]] = []
        self._pe_phase = float(np.random.default_rng(observatory.scenario.seed + 11).uniform(0.0, 2.0 * math.pi))
        self._pulse_until = 0.0
        self._target_ra: float | None = None
        self._target_dec: float | None = None
        self._guide_rate = self.cfg.guide_rate * SIDEREAL_ARCSEC_PER_S / 3600.0  # deg/s
        self._does_refraction = False
        # SlewSettleTime: the scenario's settle time until a client writes another (used by every slew).
        self._slew_settle = float(self.cfg.settle_time)

    # ------------------------------------------------------------------ position model

    def _lst(self, t: float | None = None) -> float:
        return self.sidereal.lst_hours(sim_seconds() if t is None else t)

    def _update(self) -> None:
        now = sim_seconds()
        if self._slew is not None and now >= self._slew["end"]:
            s = self._slew
            self._slew = None
            self._dec = s["dec1"]
            if s["tracking_target"]:
                self._ra = s["ra1"]
            else:
                self._ha = s["ha1"]
            if s["park"]:
                self._at_park = not bool(self.fault("park_fail"))
                if not self._at_park:
                    # Stopped short: a few degrees off the park position, not parked.
                    self._ha = _wrap12(self._ha + 0.3) % 24.0
                    self._dec = max(-90.0, self._dec - 5.0)
                self._tracking = False
            else:
                sigma = self.cfg.pointing_error
                self._error_arcsec = (float(self.rng.normal(0, sigma)), float(self.rng.normal(0, sigma)))
                self._restart_tracking(s["end"], fold=False)
        self._t_ref = now

    def _tracking_sky(self) -> bool:
        return self._tracking and self._slew is None and not self._at_park

    def _tracking_error(self, t):
        """(east, north) arcsec of tracking error at clock time(s) ``t`` (float or array), since ``_track_t0``."""
        tr = self.cfg.tracking
        t0 = self._track_t0
        w = 2.0 * math.pi / tr.worm_period
        # The worm angle is counted from the clock's epoch (not from t0) so that the periodic error
        # keeps its phase across slews; only its value at t0 is subtracted.
        pe = tr.periodic_error * (np.sin(w * (np.asarray(t, dtype=float) - 1.7e9) + self._pe_phase) - math.sin(w * (t0 - 1.7e9) + self._pe_phase))
        dt = np.asarray(t, dtype=float) - t0
        return pe + tr.drift_ra / 60.0 * dt, tr.drift_dec / 60.0 * dt

    def _restart_tracking(self, when: float, fold: bool = True) -> None:
        """Start counting the tracking error afresh at ``when``; with ``fold`` keep the error so far in the pointing error."""
        if fold and self._tracking_sky():
            ex, ey = self._tracking_error(when)
            self._error_arcsec = (self._error_arcsec[0] + float(ex), self._error_arcsec[1] + float(ey))
        self._track_t0 = when
        self._pulses = []

    def pointing_track(self, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where the optical axis was at the clock times ``times`` (Unix s), relative to where it is now.

        Returns (east, north, valid): arcsec on the sky of the true pointing at each
        instant minus the true pointing now (tracking error and the pulse guides made
        since), and whether the mount was already tracking that sky then (False
        before the end of the last slew, or when it is not tracking now).
        """
        t = np.atleast_1d(np.asarray(times, dtype=float))
        with self.lock:
            self._update()
            now = sim_seconds()
            if not self._tracking_sky():
                zeros = np.zeros_like(t)
                return zeros, zeros.copy(), np.zeros(t.shape, dtype=bool)
            e_now = self._tracking_error(now)
            e_t = self._tracking_error(np.minimum(t, now))
            east = e_t[0] - float(e_now[0])
            north = e_t[1] - float(e_now[1])
            if self._pulses:
                pulses = np.asarray(self._pulses, dtype=float)
                # Pulses started after an instant had not moved the axis yet at that instant.
                later_e = np.concatenate([np.cumsum(pulses[::-1, 1])[::-1], [0.0]])
                later_n = np.concatenate([np.cumsum(pulses[::-1, 2])[::-1], [0.0]])
                idx = np.searchsorted(pulses[:, 0], t, side="right")
                east = east - later_e[idx]
                north = north - later_n[idx]
            valid = t >= self._track_t0
        return east, north, valid

    def _position(self) -> tuple[float, float]:
        """(ra hours, dec deg) reported now."""
        now = sim_seconds()
        lst = self._lst(now)
        if self._slew is not None:
            s = self._slew
            frac = min(1.0, max(0.0, (now - s["start"]) / max(1e-9, s["move"])))
            ha = s["ha0"] + frac * _wrap12(s["ha1_now"](now) - s["ha0"])
            dec = s["dec0"] + frac * (s["dec1"] - s["dec0"])
            return (lst - ha) % 24.0, dec
        if self._tracking:
            return self._ra % 24.0, self._dec
        return (lst - self._ha) % 24.0, self._dec

    def current_radec(self) -> tuple[float, float]:
        with self.lock:
            self._update()
            return self._position()

    def current_altaz(self) -> tuple[float, float]:
        ra, dec = self.current_radec()
        return altaz(self._lst() - ra, dec, self.site.latitude)

    def true_pointing(self) -> tuple[float, float]:
        """Where the optical axis really is: (ra deg, dec deg), reported position plus pointing and tracking error."""
        with self.lock:
            self._update()
            ra, dec = self._position()
            ex, ey = self._error_arcsec
            if self._tracking_sky():
                tx, ty = self._tracking_error(sim_seconds())
                ex, ey = ex + float(tx), ey + float(ty)
        cosd = max(1e-6, math.cos(math.radians(dec)))
        return (ra * 15.0 + ex / 3600.0 / cosd) % 360.0, max(-90.0, min(90.0, dec + ey / 3600.0))

    def is_tracking_sky(self) -> bool:
        """True when the mount follows the sky (tracking and not slewing)."""
        with self.lock:
            self._update()
            return self._tracking and self._slew is None

    def _start_slew(self, ra1: float | None, dec1: float, ha1: float | None = None, park: bool = False) -> None:
        now = sim_seconds()
        ra0, dec0 = self._position()
        lst = self._lst(now)
        ha0 = _wrap12(lst - ra0)
        if ra1 is not None:
            target_ra = ra1

            def ha1_now(t, target_ra=target_ra):
                return _wrap12(self._lst(t) - target_ra)

            ha_end = ha1_now(now)
        elif ha1 is not None:
            ha_end = _wrap12(ha1)

            def ha1_now(t, ha_end=ha_end):
                return ha_end
        else:
            raise ValueError("a slew needs a right ascension or an hour angle")

        dist = max(abs(_wrap12(ha_end - ha0)) * 15.0, abs(dec1 - dec0))
        move = dist / self.cfg.slew_rate
        self._slew = {
            "start": now, "move": move, "end": now + move + (self._slew_settle if dist > 0 else 0.0),
            "ha0": ha0, "dec0": dec0, "ra1": ra1, "ha1": ha_end % 24.0, "dec1": dec1,
            "ha1_now": ha1_now, "tracking_target": ra1 is not None, "park": park,
        }
        if ra1 is None and not park:
            self._ha = ha_end % 24.0

    def _check_target(self, ra: float, dec: float) -> None:
        if not 0 <= ra < 24:
            raise InvalidValue(f"right ascension {ra} out of range 0-24 h")
        if not -90 <= dec <= 90:
            raise InvalidValue(f"declination {dec} out of range -90..90 deg")
        alt, _ = altaz(self._lst() - ra, dec, self.site.latitude)
        if alt < self.site.min_altitude:
            raise InvalidOperation(f"target below the horizon limit: altitude {alt:.1f} deg < {self.site.min_altitude:.1f} deg")

    def _check_can_move(self) -> None:
        if self._at_park:
            raise ParkedError("the mount is parked: unpark it first")

    # ------------------------------------------------------------------ members: position

    def get_rightascension(self) -> float:
        return self.current_radec()[0]

    def get_declination(self) -> float:
        return self.current_radec()[1]

    def get_altitude(self) -> float:
        return self.current_altaz()[0]

    def get_azimuth(self) -> float:
        return self.current_altaz()[1]

    def get_siderealtime(self) -> float:
        return self._lst()

    def get_sideofpier(self) -> int:
        ra, dec = self.current_radec()
        ha = _wrap12(self._lst() - ra)
        # pierEast (0) looking west of the meridian? ASCOM: pointing state; west of meridian -> pierEast
        return 0 if ha >= 0 else 1

    def put_sideofpier(self, SideOfPier: int) -> None:
        raise NotImplementedAscom("SideOfPier cannot be set")

    def get_destinationsideofpier(self, RightAscension: float, Declination: float) -> int:
        if not 0 <= RightAscension < 24 or not -90 <= Declination <= 90:
            raise InvalidValue("coordinates out of range")
        return 0 if _wrap12(self._lst() - RightAscension) >= 0 else 1

    def get_utcdate(self) -> str:
        return utc_now().strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"

    def put_utcdate(self, UTCDate: str) -> None:
        raise NotImplementedAscom("the mount follows the observatory clock")

    # ------------------------------------------------------------------ members: tracking

    def get_tracking(self) -> bool:
        with self.lock:
            self._update()
            return self._tracking

    def put_tracking(self, Tracking: bool) -> None:
        with self.lock:
            self._update()
            if Tracking and self._at_park:
                raise ParkedError("the mount is parked")
            ra, dec = self._position()
            if self._slew is None:
                self._ra, self._dec = ra, dec
                self._ha = (self._lst() - ra) % 24.0
            if bool(Tracking) != self._tracking:
                self._restart_tracking(sim_seconds())
            self._tracking = bool(Tracking)

    def get_trackingrate(self) -> int:
        return 0

    def put_trackingrate(self, TrackingRate: int) -> None:
        if TrackingRate not in (0, 1, 2, 3):
            raise InvalidValue(f"tracking rate {TrackingRate} is not a DriveRate")
        if TrackingRate != 0:
            raise InvalidValue("only sidereal tracking is offered")

    def get_trackingrates(self) -> list[int]:
        return [0]

    def get_rightascensionrate(self) -> float:
        return 0.0

    def put_rightascensionrate(self, RightAscensionRate: float) -> None:
        raise NotImplementedAscom("RightAscensionRate cannot be set")

    def get_declinationrate(self) -> float:
        return 0.0

    def put_declinationrate(self, DeclinationRate: float) -> None:
        raise NotImplementedAscom("DeclinationRate cannot be set")

    def get_guideratedeclination(self) -> float:
        return self._guide_rate

    def put_guideratedeclination(self, GuideRateDeclination: float) -> None:
        if not 0 < GuideRateDeclination <= 0.01:
            raise InvalidValue("guide rate out of range (0, 0.01] deg/s")
        self._guide_rate = float(GuideRateDeclination)

    def get_guideraterightascension(self) -> float:
        return self._guide_rate

    def put_guideraterightascension(self, GuideRateRightAscension: float) -> None:
        self.put_guideratedeclination(GuideRateRightAscension)

    # ------------------------------------------------------------------ members: slewing

    def get_slewing(self) -> bool:
        with self.lock:
            self._update()
            return self._slew is not None

    def get_targetrightascension(self) -> float:
        from rosace_sim.devices.base import ValueNotSet

        if self._target_ra is None:
            raise ValueNotSet("target right ascension not set")
        return self._target_ra

    def put_targetrightascension(self, TargetRightAscension: float) -> None:
        if not 0 <= TargetRightAscension < 24:
            raise InvalidValue(f"right ascension {TargetRightAscension} out of range 0-24 h")
        self._target_ra = float(TargetRightAscension)

    def get_targetdeclination(self) -> float:
        from rosace_sim.devices.base import ValueNotSet

        if self._target_dec is None:
            raise ValueNotSet("target declination not set")
        return self._target_dec

    def put_targetdeclination(self, TargetDeclination: float) -> None:
        if not -90 <= TargetDeclination <= 90:
            raise InvalidValue(f"declination {TargetDeclination} out of range")
        self._target_dec = float(TargetDeclination)

    def put_slewtocoordinatesasync(self, RightAscension: float, Declination: float) -> None:
        with self.lock:
            self._update()
            self._check_can_move()
            self._check_target(RightAscension, Declination)
            if not self._tracking:
                raise InvalidOperation("tracking is off: set Tracking true before slewing to coordinates")
            self._target_ra, self._target_dec = float(RightAscension), float(Declination)
            self._start_slew(float(RightAscension), float(Declination))

    def put_slewtocoordinates(self, RightAscension: float, Declination: float) -> None:
        raise NotImplementedAscom("synchronous slews are not offered: use SlewToCoordinatesAsync")

    def put_slewtotargetasync(self) -> None:
        if self._target_ra is None or self._target_dec is None:
            from rosace_sim.devices.base import ValueNotSet

            raise ValueNotSet("target coordinates not set")
        self.put_slewtocoordinatesasync(self._target_ra, self._target_dec)

    def put_slewtotarget(self) -> None:
        raise NotImplementedAscom("synchronous slews are not offered: use SlewToTargetAsync")

    def put_slewtoaltazasync(self, Azimuth: float, Altitude: float) -> None:
        if not 0 <= Azimuth < 360 or not -90 <= Altitude <= 90:
            raise InvalidValue("alt/az out of range")
        with self.lock:
            self._update()
            self._check_can_move()
            if self._tracking:
                raise InvalidOperation("tracking is on: alt/az slews need Tracking false")
            if Altitude < self.site.min_altitude:
                raise InvalidOperation(f"target below the horizon limit ({self.site.min_altitude:.1f} deg)")
            ha, dec = hadec(Altitude, Azimuth, self.site.latitude)
            self._start_slew(None, dec, ha1=ha)

    def put_slewtoaltaz(self, Azimuth: float, Altitude: float) -> None:
        raise NotImplementedAscom("synchronous slews are not offered: use SlewToAltAzAsync")

    def put_synctocoordinates(self, RightAscension: float, Declination: float) -> None:
        if not 0 <= RightAscension < 24 or not -90 <= Declination <= 90:
            raise InvalidValue("coordinates out of range")
        with self.lock:
            self._update()
            self._check_can_move()
            if not self._tracking:
                raise InvalidOperation("tracking is off")
            # The sky stays where it is; only the mount's idea of it changes.
            t_ra, t_dec = self.true_pointing()
            self._ra, self._dec = float(RightAscension), float(Declination)
            cosd = max(1e-6, math.cos(math.radians(Declination)))
            dra = ((t_ra - RightAscension * 15.0 + 180) % 360) - 180
            self._error_arcsec = (dra * 3600.0 * cosd, (t_dec - Declination) * 3600.0)
            self._restart_tracking(sim_seconds(), fold=False)  # the error so far is in the new pointing error
            self._target_ra, self._target_dec = float(RightAscension), float(Declination)

    def put_synctotarget(self) -> None:
        if self._target_ra is None or self._target_dec is None:
            from rosace_sim.devices.base import ValueNotSet

            raise ValueNotSet("target coordinates not set")
        self.put_synctocoordinates(self._target_ra, self._target_dec)

    def put_synctoaltaz(self, Azimuth: float, Altitude: float) -> None:
        raise NotImplementedAscom("SyncToAltAz is not offered")

    def put_abortslew(self) -> None:
        with self.lock:
            self._update()
            if self._at_park:
                raise ParkedError("the mount is parked")
            if self._slew is not None:
                ra, dec = self._position()
                self._slew = None
                self._ra, self._dec = ra, dec
                self._ha = (self._lst() - ra) % 24.0
                self._restart_tracking(sim_seconds(), fold=False)
            # Like most drivers, AbortSlew also ends a pulse guide in progress.
            self._pulse_until = min(self._pulse_until, sim_seconds())

    def get_axisrates(self, Axis: int) -> list[dict]:
        if Axis not in (0, 1, 2):
            raise InvalidValue(f"axis {Axis} is not 0, 1 or 2")
        return []

    def get_canmoveaxis(self, Axis: int) -> bool:
        if Axis not in (0, 1, 2):
            raise InvalidValue(f"axis {Axis} is not 0, 1 or 2")
        return False

    def put_moveaxis(self, Axis: int, Rate: float) -> None:
        raise NotImplementedAscom("MoveAxis is not offered")

    # ------------------------------------------------------------------ park, home

    def put_park(self) -> None:
        if not self.cfg.can_park:
            raise NotImplementedAscom("this mount cannot park")
        with self.lock:
            self._update()
            if self._at_park:
                return
            self._tracking = False
            self._start_slew(None, self.cfg.park_dec, ha1=self.cfg.park_ha, park=True)

    def put_unpark(self) -> None:
        with self.lock:
            self._update()
            if self._slew is not None and self._slew["park"]:
                raise InvalidOperation("the mount is still parking")
            self._at_park = False
            # Like most mounts, tracking resumes on unpark so the sky is followed at once.
            self._ra = (self._lst() - self._ha) % 24.0
            self._tracking = True
            self._restart_tracking(sim_seconds(), fold=False)

    def get_atpark(self) -> bool:
        with self.lock:
            self._update()
            return self._at_park

    def get_athome(self) -> bool:
        return False

    def put_findhome(self) -> None:
        raise NotImplementedAscom("FindHome is not offered")

    def put_setpark(self) -> None:
        raise NotImplementedAscom("the park position is set in the scenario")

    # ------------------------------------------------------------------ guiding

    def put_pulseguide(self, Direction: int, Duration: int) -> None:
        if not self.cfg.can_pulse_guide:
            raise NotImplementedAscom("this mount cannot pulse-guide")
        if Direction not in (0, 1, 2, 3):
            raise InvalidValue(f"direction {Direction} is not 0-3 (north, south, east, west)")
        if not 0 <= Duration <= 30000:
            raise InvalidValue(f"duration {Duration} ms out of range 0-30000")
        with self.lock:
            self._update()
            self._check_can_move()
            if self._slew is not None:
                raise InvalidOperation("cannot pulse-guide while slewing")
            arcsec = self._guide_rate * 3600.0 * Duration / 1000.0
            ra, dec = self._position()
            now = sim_seconds()
            if self._tracking_sky() and arcsec > 0:
                self._pulses = [p for p in self._pulses if p[0] > now - 4000.0]  # longer than any exposure
                east = arcsec if Direction == 2 else -arcsec if Direction == 3 else 0.0
                north = arcsec if Direction == 0 else -arcsec if Direction == 1 else 0.0
                self._pulses.append((now, east, north))
            if Direction in (0, 1):  # north / south
                self._dec = max(-90.0, min(90.0, dec + (arcsec if Direction == 0 else -arcsec) / 3600.0))
                self._ra = ra
            else:  # east increases RA
                cosd = max(1e-6, math.cos(math.radians(dec)))
                dra_hours = arcsec / 3600.0 / cosd / 15.0
                ra = (ra + (dra_hours if Direction == 2 else -dra_hours)) % 24.0
                self._ra = ra
                self._dec = dec
            self._ha = (self._lst() - self._ra) % 24.0
            self._pulse_until = sim_seconds() + Duration / 1000.0

    def get_ispulseguiding(self) -> bool:
        return sim_seconds() < self._pulse_until

    # ------------------------------------------------------------------ capabilities and site

    def get_alignmentmode(self) -> int:
        return 2  # German equatorial

    def get_aperturearea(self) -> float:
        return math.pi * (self.cfg.aperture_mm / 2000.0) ** 2

    def get_aperturediameter(self) -> float:
        return self.cfg.aperture_mm / 1000.0

    def get_focallength(self) -> float:
        return self.cfg.focal_length_mm / 1000.0

    def get_equatorialsystem(self) -> int:
        return self.cfg.equatorial_system  # 1: topocentric of date (what the simulator computes with)

    def get_doesrefraction(self) -> bool:
        return self._does_refraction

    def put_doesrefraction(self, DoesRefraction: bool) -> None:
        raise NotImplementedAscom("refraction is not modelled")

    def get_siteelevation(self) -> float:
        return self.site.elevation

    def put_siteelevation(self, SiteElevation: float) -> None:
        raise NotImplementedAscom("the site is set in the scenario")

    def get_sitelatitude(self) -> float:
        return self.site.latitude

    def put_sitelatitude(self, SiteLatitude: float) -> None:
        raise NotImplementedAscom("the site is set in the scenario")

    def get_sitelongitude(self) -> float:
        lon = self.site.longitude
        return lon - 360.0 if lon > 180 else lon

    def put_sitelongitude(self, SiteLongitude: float) -> None:
        raise NotImplementedAscom("the site is set in the scenario")

    def get_slewsettletime(self) -> int:
        return int(round(self._slew_settle))

    def put_slewsettletime(self, SlewSettleTime: int) -> None:
        if SlewSettleTime < 0:
            raise InvalidValue("settle time must be >= 0")
        self._slew_settle = float(int(SlewSettleTime))

    def get_canfindhome(self) -> bool:
        return False

    def get_canpark(self) -> bool:
        return self.cfg.can_park

    def get_canpulseguide(self) -> bool:
        return self.cfg.can_pulse_guide

    def get_cansetdeclinationrate(self) -> bool:
        return False

    def get_cansetguiderates(self) -> bool:
        return True

    def get_cansetpark(self) -> bool:
        return False

    def get_cansetpierside(self) -> bool:
        return False

    def get_cansetrightascensionrate(self) -> bool:
        return False

    def get_cansettracking(self) -> bool:
        return True

    def get_canslew(self) -> bool:
        return False

    def get_canslewaltaz(self) -> bool:
        return False

    def get_canslewaltazasync(self) -> bool:
        return True

    def get_canslewasync(self) -> bool:
        return True

    def get_cansync(self) -> bool:
        return True

    def get_cansyncaltaz(self) -> bool:
        return False

    def get_canunpark(self) -> bool:
        return True

    def device_state(self) -> dict:
        ra, dec = self.current_radec()
        alt, az = altaz(self._lst() - ra, dec, self.site.latitude)
        return {
            "Altitude": alt, "AtHome": False, "AtPark": self.get_atpark(), "Azimuth": az,
            "Declination": dec, "IsPulseGuiding": self.get_ispulseguiding(), "RightAscension": ra,
            "SideOfPier": self.get_sideofpier(), "SiderealTime": self._lst(), "Slewing": self.get_slewing(),
            "Tracking": self.get_tracking(), "UTCDate": self.get_utcdate(),
        }

    def snapshot(self) -> dict:
        snap = super().snapshot()
        ra, dec = self.current_radec()
        alt, az = altaz(self._lst() - ra, dec, self.site.latitude)
        tra, tdec = self.true_pointing()
        snap.update({
            "ra_hours": ra, "dec": dec, "altitude": alt, "azimuth": az, "tracking": self._tracking,
            "slewing": self.get_slewing(), "at_park": self._at_park,
            "pointing_error_arcsec": list(self._error_arcsec), "true_ra": tra, "true_dec": tdec,
            "tracking_error_arcsec": [float(v) for v in self._tracking_error(sim_seconds())] if self._tracking_sky() else [0.0, 0.0],
        })
        return snap
