"""What each camera sees right now, and the pixels of it.

The scene gathers the observatory's state at the start of an exposure (lamps,
shelter, pointing, weather, the star on the slit) and asks the renderer
(:mod:`rosace_sim.render`) for the frame and its truth. Until the renderer is
importable, a small fallback makes bias-plus-noise frames so the devices work.

Science frames integrate the slit throughput over the exposure: the mount's
tracking error and the pulse guides made meanwhile move the star across the
slit (:meth:`SimTelescope.pointing_track`), the fraction of its light through the
slit is averaged over the exposure (:func:`slit_throughput`), and the renderer is
given the steady offset that lets the same mean fraction through.

Guide camera orientation: north up (towards row 0), east left (towards column 0),
``guide_camera.scale`` arcsec per pixel, the slit at (``slit_x``, ``slit_y``), its
length along the columns (north-south). A star east of the slit is at smaller x.
"""

from __future__ import annotations

import logging
import math
import threading
from functools import lru_cache

import numpy as np

from rosace_core.instrument import Detector, InstrumentSetup, load_instrument

log = logging.getLogger(__name__)


def angular_offset(ra0: float, dec0: float, ra1: float, dec1: float) -> tuple[float, float]:
    """(east, north) offset in arcsec of (ra1, dec1) from (ra0, dec0), degrees in (small-angle)."""
    dra = ((ra1 - ra0 + 180.0) % 360.0) - 180.0
    return dra * math.cos(math.radians(dec0)) * 3600.0, (dec1 - dec0) * 3600.0


MOFFAT_BETA = 4.765  # the renderer's seeing profile (Trujillo et al. 2001)


@lru_cache(maxsize=64)
def _slit_curve(seeing: float, slit_width: float) -> tuple[np.ndarray, np.ndarray]:
    """(|dx| arcsec, fraction through the slit) of a Moffat star whose centre is |dx| off the slit's axis.

    The slit is taken as infinitely long: along it a Moffat integrates to its
    marginal profile ``(1 + x^2/alpha^2)^(1/2 - beta)`` across it.
    """
    alpha = seeing / (2.0 * math.sqrt(2.0 ** (1.0 / MOFFAT_BETA) - 1.0))
    reach = 25.0 * seeing + slit_width
    x = np.linspace(-reach, reach, 8001)
    marginal = (1.0 + (x / alpha) ** 2) ** (0.5 - MOFFAT_BETA)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (marginal[1:] + marginal[:-1]) * np.diff(x))])
    cdf /= cdf[-1]
    dx = np.linspace(0.0, reach - slit_width, 1201)
    fraction = np.interp(slit_width / 2 - dx, x, cdf) - np.interp(-slit_width / 2 - dx, x, cdf)
    return dx, np.minimum.accumulate(np.clip(fraction, 0.0, 1.0))


def slit_throughput(dx, seeing: float, slit_width: float) -> np.ndarray:
    """Fraction of a star's light through the slit for offsets ``dx`` (arcsec across the slit; array)."""
    grid, fraction = _slit_curve(round(float(seeing), 3), round(float(slit_width), 3))
    return np.interp(np.abs(np.asarray(dx, dtype=float)), grid, fraction)


def offset_for_throughput(fraction: float, seeing: float, slit_width: float) -> float:
    """The offset across the slit (arcsec, >= 0) that lets ``fraction`` of the light through."""
    grid, curve = _slit_curve(round(float(seeing), 3), round(float(slit_width), 3))
    return float(np.interp(fraction, curve[::-1], grid[::-1]))


def _bin_and_cut(image: np.ndarray, binning: tuple[int, int], subframe) -> np.ndarray:
    """Bin a full-sensor float image (sum) and cut the subframe (binned pixels)."""
    bx, by = binning
    if bx > 1 or by > 1:
        ny, nx = image.shape[0] // by * by, image.shape[1] // bx * bx
        image = image[:ny, :nx].reshape(ny // by, by, nx // bx, bx).sum(axis=(1, 3))
    if subframe is not None:
        x0, y0, nx, ny = subframe
        image = image[y0:y0 + ny, x0:x0 + nx]
    return image


class FallbackRenderer:
    """Bias + read noise (+ a dark current) frames: a stand-in until the real renderer lands."""

    def __init__(self, detector: Detector):
        self.nx, self.ny = detector.nx, detector.ny
        self.bias_level = float(detector.bias_level)
        self.read_noise = float(detector.read_noise)
        self.gain = float(detector.gain)

    def frame(self, kind: str, exposure: float, binning, subframe, rng) -> tuple[np.ndarray, dict]:
        bx, by = binning
        x0, y0, nx, ny = subframe
        # Binning sums charge, but read noise is added once per binned pixel.
        img = rng.normal(self.bias_level, self.read_noise / self.gain, size=(ny, nx))
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16), {"kind": kind, "renderer": "fallback", "exposure": exposure, "bias_level": self.bias_level, "read_noise": self.read_noise}


class Scene:
    """Builds each camera's frame from the observatory state."""

    def __init__(self, observatory):
        self.obs = observatory
        self.scenario = observatory.scenario
        #: the set-up (rosace_core.instrument), read once per version of its file
        self.instrument: InstrumentSetup = load_instrument(self.scenario.instrument)
        self.rng = np.random.default_rng(self.scenario.seed)
        self._rng_lock = threading.Lock()
        self._renderer = None
        self._renderer_tried = False
        self.fallback = FallbackRenderer(self.instrument.detector)

    # ------------------------------------------------------------------ renderer

    def renderer(self):
        """The real renderer when ``rosace_sim.render`` is importable, else None."""
        if not self._renderer_tried:
            self._renderer_tried = True
            try:
                from rosace_sim.render import Renderer

                # No scratch buffers kept between frames: the simulator shares a small
                # observatory PC with five modules; memory matters more than ~30 ms a frame.
                self._renderer = Renderer(self.scenario.instrument, keep_buffers=False)
            except Exception as exc:  # not landed yet, or broken: keep serving bias frames
                log.warning("spectrum renderer unavailable (%s): cameras give bias-like frames", exc)
                self._renderer = None
        return self._renderer

    def _child_rng(self) -> np.random.Generator:
        with self._rng_lock:
            return np.random.default_rng(self.rng.integers(0, 2**63 - 1))

    # ------------------------------------------------------------------ sky state

    def transmission(self, values: dict) -> float:
        """Fraction of starlight through the clouds (thick cloud blocks almost everything)."""
        cloud = float(values.get("cloud_cover", 0.0)) / 100.0
        return max(0.0, 1.0 - 0.97 * cloud ** 1.5)

    def sky_open(self) -> tuple[bool, str]:
        """Whether the telescope sees the sky: (open, reason if not)."""
        dome = self.obs.dome
        snap_pos = dome.snapshot()["shutter_position"]
        if snap_pos < 0.999:
            return False, "shelter closed"
        if dome.rotating:
            _, tel_az = self.obs.telescope.current_altaz()
            daz = abs(((dome.get_azimuth() - tel_az + 180) % 360) - 180)
            if daz > 8.0:
                return False, f"dome slit {daz:.0f} deg away from the telescope azimuth"
        return True, ""

    def target_star(self):
        """The star the mount is aimed at: the catalogue star nearest the target, else the generic star there."""
        tel = self.obs.telescope
        ra_h, dec = tel.current_radec()
        target_ra = (tel._target_ra if tel._target_ra is not None else ra_h) * 15.0
        target_dec = tel._target_dec if tel._target_dec is not None else dec
        best = None
        for star in self.scenario.stars:
            dx, dy = angular_offset(target_ra, target_dec, star.ra, star.dec)
            sep = math.hypot(dx, dy)
            if sep <= self.scenario.generic_star.match_radius and (best is None or sep < best[0]):
                best = (sep, star)
        if best is not None:
            return best[1].model_dump(), False
        g = self.scenario.generic_star
        return {"name": "generic", "ra": target_ra, "dec": target_dec, "vmag": g.vmag, "spectral_type": g.spectral_type, "be_emission": None, "rv_curve": None}, True

    def _star_object(self, star: dict):
        """The renderer's Star for a catalogue entry (or the generic star) dict."""
        from rosace_sim.render.stars import Star

        return Star.from_catalogue({k: v for k, v in star.items() if v is not None})

    # ------------------------------------------------------------------ frames

    def render(self, camera, params: dict) -> tuple[np.ndarray, dict]:
        """Render the frame of an exposure (params from the camera) -> (uint16 image, truth)."""
        if camera.role == "guide":
            return self.render_guide(camera, params)
        return self.render_spectro(camera, params)

    def _conditions(self, start) -> dict:
        return self.obs.weather.values_at(start)

    def render_spectro(self, camera, params: dict) -> tuple[np.ndarray, dict]:
        exposure = params["duration"]
        rng = self._child_rng()
        binning, subframe = params["binning"], params["subframe"]
        start = params["start_dt"]
        lamp = self.obs.switch.lamp_on()
        common = {
            "time": start, "exposure": exposure, "ccd_temp": params["ccd_temp"], "set_temp": params["set_temp"],
            "binning": list(binning), "subframe": list(subframe), "lamp": lamp, "instrument": self.scenario.instrument,
        }
        renderer = self.renderer()
        kind, extra = self._spectro_kind(params, lamp)
        if renderer is None:
            img, truth = self.fallback.frame(kind, exposure, binning, subframe, rng)
        else:
            img, truth = self._call_renderer(renderer, kind, extra, exposure, params, rng)
        truth = dict(truth)
        truth.setdefault("kind", kind)
        truth["frame"] = dict(common, **{k: v for k, v in extra.items() if k != "star_obj"})
        return img, truth

    def _spectro_kind(self, params: dict, lamp: str) -> tuple[str, dict]:
        if not params["light"]:
            return ("bias" if params["duration"] <= 0.0 else "dark"), {}
        if "NeAr" in lamp:
            return "arc", {"lamp_name": "NeAr"}
        if "tungsten" in lamp:
            return "flat", {}
        open_, reason = self.sky_open()
        tel = self.obs.telescope
        if not open_:
            return "dark", {"blocked": reason}
        if not tel.is_tracking_sky():
            return "dark", {"blocked": "mount not tracking the sky"}
        star, generic = self.target_star()
        t_ra, t_dec = tel.true_pointing()
        # Offset of the star from the slit centre: x across the slit (east), y along it (north).
        dx, dy = angular_offset(t_ra, t_dec, star["ra"], star["dec"])
        values = self._conditions(params["start_dt"])
        seeing = float(values.get("seeing", 2.5))
        alt, _ = tel.current_altaz()
        airmass = 1.0 / math.sin(math.radians(max(alt, 1.0)))
        path = self.slit_path(params, (dx, dy), seeing)
        return "science", {
            "star": star, "generic_star": generic, "slit_offset": path.pop("effective_offset_arcsec"), "airmass": airmass,
            "altitude": alt, "seeing": seeing, "transmission": self.transmission(values),
            "sky_quality": float(values.get("sky_quality", 21.0)),
            "pointing": [t_ra, t_dec], "slit_throughput": path,
        }

    def slit_path(self, params: dict, offset_now: tuple[float, float], seeing: float) -> dict:
        """The star's path across the slit during the exposure and the mean fraction of its light through it.

        ``offset_now`` is the star's (dx, dy) offset from the slit centre at the end
        of the exposure (now), arcsec. The exposure is sampled every 0.5 s (at most
        2001 samples); instants before the mount settled on this sky let no light through.
        """
        slit_width = float(self.instrument.geometry.slit_width)
        duration = max(0.0, float(params["duration"]))
        start = params["start_dt"].timestamp()
        n = int(min(2001, max(21, 2 * duration + 1)))
        times = start + np.linspace(0.0, duration, n)
        east, north, valid = self.obs.telescope.pointing_track(times)
        dx = offset_now[0] - east
        dy = offset_now[1] - north
        fraction = np.where(valid, slit_throughput(dx, seeing, slit_width), 0.0)
        mean = float(fraction.mean())
        if mean > 1e-6:
            # The steady offset that lets the same mean light through, on the side where the light went.
            side = 1.0 if float(np.sum(fraction * dx)) >= 0 else -1.0
            eff = [side * offset_for_throughput(mean, seeing, slit_width), float(np.sum(fraction * dy) / fraction.sum())]
        else:
            eff = [60.0 + slit_width, float(offset_now[1])]  # the star never was in the slit
        across = dx[valid] if valid.any() else dx
        return {
            "mean": mean, "min": float(fraction.min()), "max": float(fraction.max()),
            "start": float(fraction[0]), "end": float(fraction[-1]),
            "centred": float(slit_throughput(0.0, seeing, slit_width)),
            "samples": n, "seeing_arcsec": seeing, "slit_width_arcsec": slit_width,
            "offset_across_mean_arcsec": float(across.mean()), "offset_across_rms_arcsec": float(np.sqrt(np.mean(across**2))),
            "offset_start_arcsec": [float(dx[0]), float(dy[0])], "offset_end_arcsec": [float(offset_now[0]), float(offset_now[1])],
            "tracked_fraction": float(valid.mean()), "effective_offset_arcsec": eff,
        }

    def _call_renderer(self, renderer, kind: str, extra: dict, exposure: float, params: dict, rng):
        site = (self.scenario.site.latitude, self.scenario.site.longitude, self.scenario.site.elevation)
        common = {"ccd_temp": params["ccd_temp"], "binning": tuple(params["binning"]), "subframe": tuple(params["subframe"]), "rng": rng}
        if kind == "bias":
            return renderer.bias(**common)
        if kind == "dark":
            return renderer.dark(exposure=exposure, **common)
        if kind == "arc":
            return renderer.arc(lamp=extra.get("lamp_name", "NeAr"), exposure=exposure, **common)
        if kind == "flat":
            return renderer.flat(exposure=exposure, **common)
        return renderer.science(
            self._star_object(extra["star"]), exposure=exposure, airmass=extra["airmass"], time=params["start_dt"],
            site=site, slit_offset=tuple(extra["slit_offset"]), seeing=extra["seeing"],
            transmission=extra["transmission"], sky_brightness=extra["sky_quality"], **common,
        )

    def render_guide(self, camera, params: dict) -> tuple[np.ndarray, dict]:
        g = self.scenario.guide_camera
        rng = self._child_rng()
        exposure = params["duration"]
        binning, subframe = params["binning"], params["subframe"]
        slit_w = float(self.instrument.geometry.slit_width) / g.scale
        slit_l = g.slit_length_arcsec / g.scale
        stars_px = []
        blocked = ""
        values = self._conditions(params["start_dt"])
        seeing_px = float(values.get("seeing", 2.5)) / g.scale
        if params["light"]:
            open_, blocked = self.sky_open()
            tel = self.obs.telescope
            if open_ and not tel.is_tracking_sky():
                open_, blocked = False, "mount not tracking the sky"
            if open_:
                t_ra, t_dec = tel.true_pointing()
                # The stars where they were in the middle of the exposure, not at the (later) rendering:
                # under an accelerated clock the mount's periodic error moves them meanwhile.
                moved_e, moved_n, valid = tel.pointing_track([params["start_dt"].timestamp() + exposure / 2])
                shift = (float(moved_e[0]), float(moved_n[0])) if valid[0] else (0.0, 0.0)
                star, generic = self.target_star()
                candidates = [star] + [s.model_dump() for s in self.scenario.stars if s.name != star["name"]]
                trans = self.transmission(values)
                for s in candidates:
                    east, north = angular_offset(t_ra, t_dec, s["ra"], s["dec"])
                    east, north = east - shift[0], north - shift[1]
                    x = g.slit_x - east / g.scale
                    y = g.slit_y - north / g.scale
                    if -50 <= x <= g.nx + 50 and -50 <= y <= g.ny + 50:
                        stars_px.append((x, y, g.zero_point * 10 ** (-0.4 * s["vmag"]) * trans, s["name"]))
        slit = (g.slit_x, g.slit_y, slit_w, slit_l)
        img = None
        try:
            from rosace_sim.render.guider import render_guide_image

            full = render_guide_image(shape=(g.ny, g.nx), stars=[s[:3] for s in stars_px], exposure=exposure, seeing_px=seeing_px, slit=slit, rng=rng)
            img = self._cut_guide(np.asarray(full), binning, subframe)
            renderer = "render.guider"
        except ImportError:
            img = self._fallback_guide(stars_px, exposure, seeing_px, binning, subframe, rng)
            renderer = "fallback"
        truth = {
            "kind": "guide", "renderer": renderer, "exposure": exposure, "seeing_px": seeing_px, "slit": list(slit),
            "stars": [{"name": s[3], "x": s[0], "y": s[1], "flux": s[2]} for s in stars_px],
            "blocked": blocked or None, "time": params["start_dt"], "binning": list(binning), "subframe": list(subframe),
            "orientation": "north up (row 0), east left (column 0)", "scale_arcsec_per_px": g.scale,
        }
        return img, truth

    @staticmethod
    def _cut_guide(full: np.ndarray, binning, subframe) -> np.ndarray:
        if full.dtype == np.uint16 and binning == (1, 1):
            x0, y0, nx, ny = subframe
            return np.ascontiguousarray(full[y0:y0 + ny, x0:x0 + nx])
        out = _bin_and_cut(full.astype(np.float64), binning, subframe)
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)

    def _fallback_guide(self, stars_px, exposure, seeing_px, binning, subframe, rng) -> np.ndarray:
        g = self.scenario.guide_camera
        yy, xx = np.mgrid[0:g.ny, 0:g.nx]
        img = np.full((g.ny, g.nx), 0.0)
        sigma = max(0.5, seeing_px / 2.355)
        for x, y, flux, _ in stars_px:
            img += flux * exposure / (2 * math.pi * sigma**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        img = rng.poisson(np.clip(img, 0, 1e9)).astype(np.float64)
        img = _bin_and_cut(img, binning, subframe)
        img = img + rng.normal(500.0, 6.0, size=img.shape)
        return np.clip(np.rint(img), 0, 65535).astype(np.uint16)
