"""The sensor: read-out region, dark current, hot pixels, cosmic rays,
binning, shot and read noise, bias, gain and 16-bit saturation.

Everything happens on float32 arrays of expected electrons; noise is drawn
once at the end. Shot noise + read noise use a gaussian of variance
``mean + read_noise**2`` (exact Poisson on 6 million pixels costs 0.5 s; at
the read-noise floor of 9 e- the two are indistinguishable, and above a few
tens of electrons the gaussian is the Poisson limit). ``noise="poisson"``
draws exact Poisson shot noise instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .instrument import Instrument


@dataclass(frozen=True)
class Region:
    """Unbinned detector rows ``y0:y1`` and columns ``x0:x1`` read out, with the binning."""

    x0: int
    y0: int
    x1: int
    y1: int
    bx: int
    by: int

    @property
    def shape(self) -> tuple[int, int]:
        """Unbinned (rows, columns)."""
        return self.y1 - self.y0, self.x1 - self.x0

    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.y1 - self.y0) // self.by, (self.x1 - self.x0) // self.bx

    def to_dict(self) -> dict:
        ny, nx = self.image_shape
        return {
            "shape": [ny, nx],
            "binning": [self.bx, self.by],
            "subframe": [self.x0 // self.bx, self.y0 // self.by, nx, ny],
            # Image pixel (row i, column j) covers unbinned rows y0 + by*i ... + by-1; its centre:
            "x_unbinned": {"offset": self.x0 + (self.bx - 1) / 2, "scale": self.bx},
            "y_unbinned": {"offset": self.y0 + (self.by - 1) / 2, "scale": self.by},
        }


def region_of(ins: Instrument, binning=(1, 1), subframe=None) -> Region:
    """Read-out region from ASCOM-style binning (bx, by) and subframe (x0, y0, nx, ny) in binned pixels.

    Raises ValueError when the binning or subframe does not fit the sensor.
    """
    if isinstance(binning, int):
        binning = (binning, binning)
    bx, by = int(binning[0]), int(binning[1])
    if bx < 1 or by < 1 or bx > 16 or by > 16:
        raise ValueError(f"binning {binning} out of range 1-16")
    full_x, full_y = ins.nx // bx, ins.ny // by
    if subframe is None:
        x0, y0, nx, ny = 0, 0, full_x, full_y
    else:
        x0, y0, nx, ny = (int(v) for v in subframe)
    if nx < 1 or ny < 1 or x0 < 0 or y0 < 0 or x0 + nx > full_x or y0 + ny > full_y:
        raise ValueError(f"subframe {subframe} does not fit a {full_x} x {full_y} sensor at binning {bx}x{by}")
    return Region(x0 * bx, y0 * by, (x0 + nx) * bx, (y0 + ny) * by, bx, by)


def dark_rate(ins: Instrument, ccd_temp: float) -> float:
    """Dark current (e-/s/px) at ``ccd_temp`` (degC): doubles every ``dark_doubling`` degrees."""
    return ins.dark_current * 2.0 ** (ccd_temp / ins.dark_doubling)


def cosmic_rays(ins: Instrument, region: Region, exposure: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosmic-ray hits in the region: unbinned (rows, cols, electrons), short straight tracks."""
    area_cm2 = region.shape[0] * region.shape[1] * (ins.pixel_um * 1e-4) ** 2
    n = rng.poisson(ins.render["cosmic_rate"] * area_cm2 * max(exposure, 0.0))
    if n == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0)
    length = rng.integers(1, 7, n)
    angle = rng.uniform(0, np.pi, n)
    r0 = rng.uniform(region.y0, region.y1, n)
    c0 = rng.uniform(region.x0, region.x1, n)
    energy = rng.lognormal(np.log(1500.0), 0.6, n)  # electrons per pixel crossed
    k = np.concatenate([np.arange(m) for m in length])
    owner = np.repeat(np.arange(n), length)
    rows = np.round(r0[owner] + k * np.sin(angle[owner])).astype(np.int64)
    cols = np.round(c0[owner] + k * np.cos(angle[owner])).astype(np.int64)
    e = energy[owner] * rng.uniform(0.6, 1.4, owner.size)
    ok = (rows >= region.y0) & (rows < region.y1) & (cols >= region.x0) & (cols < region.x1)
    return rows[ok], cols[ok], e[ok]


def _buffer(work: dict | None, key: str, shape: tuple[int, int]) -> np.ndarray:
    """A float32 scratch array, reused across frames when ``work`` is given (fresh pages cost page faults)."""
    if work is None:
        return np.empty(shape, dtype=np.float32)
    buf = work.get((key, shape))
    if buf is None:
        if len(work) >= 6:  # a few read-out shapes at most (full frame, binned, a subframe)
            work.clear()
        buf = work[(key, shape)] = np.empty(shape, dtype=np.float32)
    return buf


#: Rows read out at a time by the gaussian noise model: two float32 scratch blocks of
#: ~1.5 MB instead of two full-frame arrays (2 x 24 MB for 3000 x 2000).
READ_BLOCK_ROWS = 128


def _gaussian_read(ins: Instrument, mean: np.ndarray, offset: np.ndarray, inv_gain: np.float32, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Shot + read noise in one gaussian draw (sigma^2 = mean + read_noise^2), gain, bias, saturation -> uint16.

    Done a block of rows at a time; the normal deviates are drawn in the same
    order as one full-frame draw, so the image is the same to the bit.
    """
    out = np.empty(mean.shape, dtype=np.uint16)
    read_var = np.float32(ins.read_noise**2)
    top = ins.saturation + 0.49
    n_sat = 0
    for r0 in range(0, mean.shape[0], READ_BLOCK_ROWS):
        m = mean[r0 : r0 + READ_BLOCK_ROWS]
        sigma = np.add(m, read_var)
        np.sqrt(sigma, out=sigma)
        img = rng.standard_normal(m.shape, dtype=np.float32)
        img *= sigma
        img += m
        img *= inv_gain
        img += offset
        np.clip(img, 0, top, out=img)
        block = out[r0 : r0 + READ_BLOCK_ROWS]
        block[...] = img
        n_sat += int(np.count_nonzero(block >= ins.saturation))
    return out, n_sat


def read_out(ins: Instrument, region: Region, photo_e: np.ndarray, exposure: float, ccd_temp: float, rng: np.random.Generator, *, noise: str = "gaussian", cosmics: bool = True, work: dict | None = None) -> tuple[np.ndarray, dict]:
    """Turn expected photo-electrons (float32, unbinned region, modified in place) into a uint16 image.

    Applies PRNU, dark current and hot pixels, cosmic rays, binning, shot and
    read noise, bias with its column pattern, gain and saturation. Returns the
    image and the detector part of the truth record.
    """
    if noise not in ("gaussian", "poisson", "none"):
        raise ValueError(f"unknown noise model {noise!r}: use 'gaussian', 'poisson' or 'none'")
    fp = ins.grid("fixed_pattern")
    ys, xs = slice(region.y0, region.y1), slice(region.x0, region.x1)
    mean = photo_e
    mean *= fp["prnu"][ys, xs]
    dark = dark_rate(ins, ccd_temp)
    mean += np.float32(dark * exposure)
    hot = (fp["hot_rows"] >= region.y0) & (fp["hot_rows"] < region.y1) & (fp["hot_cols"] >= region.x0) & (fp["hot_cols"] < region.x1)
    hr, hc = fp["hot_rows"][hot], fp["hot_cols"][hot]
    hot_e = fp["hot_rate"][hot] * 2.0 ** (ccd_temp / ins.dark_doubling) * exposure
    np.add.at(mean, (hr - region.y0, hc - region.x0), hot_e.astype(np.float32))
    cr_r, cr_c, cr_e = cosmic_rays(ins, region, exposure, rng) if cosmics else (np.empty(0, int), np.empty(0, int), np.empty(0))
    np.add.at(mean, (cr_r - region.y0, cr_c - region.x0), cr_e.astype(np.float32))

    if region.bx > 1 or region.by > 1:  # on-chip binning: charge summed before the read
        ny, nx = region.image_shape
        mean = mean.reshape(ny, region.by, nx, region.bx).sum(axis=(1, 3), dtype=np.float32)
    bias_cols = fp["bias_columns"][xs]
    if region.bx > 1:
        bias_cols = bias_cols.reshape(-1, region.bx).mean(axis=1)
    # +0.5 so that the truncating cast to uint16 rounds to the nearest ADU.
    offset = (np.float32(ins.bias_level + 0.5) + bias_cols)[None, :]
    inv_gain = np.float32(1.0 / ins.gain)
    if noise == "gaussian":
        out, n_sat = _gaussian_read(ins, mean, offset, inv_gain, rng)
    else:
        img = _buffer(work, "noise", mean.shape)
        if noise == "poisson":
            img[...] = rng.poisson(mean)
            img += rng.standard_normal(mean.shape, dtype=np.float32) * np.float32(ins.read_noise)
        else:
            img[...] = mean
        img *= inv_gain
        img += offset
        np.clip(img, 0, ins.saturation + 0.49, out=img)
        out = img.astype(np.uint16)
        n_sat = int(np.count_nonzero(out >= ins.saturation))

    def to_image(r, c):
        return ((r - region.y0) // region.by).astype(int), ((c - region.x0) // region.bx).astype(int)

    ci, cj = to_image(cr_r, cr_c)
    hi, hj = to_image(hr, hc)
    truth = {
        "gain_e_per_adu": ins.gain,
        "read_noise_e": ins.read_noise,
        "bias_level_adu": ins.bias_level,
        "bias_column_rms_adu": ins.render["bias_column_rms"],
        "ccd_temp_c": ccd_temp,
        "dark_e_per_s": dark,
        "dark_doubling_c": ins.dark_doubling,
        "prnu_rms": ins.render["prnu_rms"],
        "saturation_adu": ins.saturation,
        "n_saturated": n_sat,
        "noise_model": noise,
        "cosmic_rays": [[int(a), int(b), round(float(e) / ins.gain, 1)] for a, b, e in zip(ci, cj, cr_e)],
        "hot_pixels": [[int(a), int(b), round(float(e) / ins.gain, 1)] for a, b, e in zip(hi, hj, hot_e)],
    }
    return out, truth
