"""Dome slaving geometry: which dome azimuth puts the slit in front of the telescope.

The optical axis of an off-centre or German-equatorial mount does not pass
through the dome's centre, so the slit azimuth differs from the telescope's
azimuth. We place the optical axis in a local frame centred on the dome
(x east, y north, z up, metres), follow it out of the mount and intersect it
with the dome's hemisphere; the azimuth of that point is where the slit goes.

German mount: the declination axis is perpendicular to both the polar axis and
the optical axis; the tube sits ``gem_offset`` metres from the polar axis along
it. ASCOM ``pierEast`` (0, tube east of the pier, looking west: the normal state
for a western target) puts the tube on the +(sin H, cos H, 0) side in the
hour-angle frame; ``pierWest`` (1) on the other side.
"""

from __future__ import annotations

import math

import numpy as np

from rosace_dome.settings import SlavingGeometry

PIER_EAST = 0
PIER_WEST = 1
PIER_UNKNOWN = -1


def _ha_frame(latitude_deg: float) -> np.ndarray:
    """Rows: unit vectors of the hour-angle frame (x to H=0 on the equator, y east, z pole) in ENU."""
    phi = math.radians(latitude_deg)
    x = np.array([0.0, -math.sin(phi), math.cos(phi)])
    y = np.array([1.0, 0.0, 0.0])
    z = np.array([0.0, math.cos(phi), math.sin(phi)])
    return np.vstack([x, y, z])


def pointing_vector(hour_angle_deg: float, dec_deg: float, latitude_deg: float) -> np.ndarray:
    """Unit vector (east, north, up) of the direction (H, Dec); H in degrees, west positive."""
    h, d = math.radians(hour_angle_deg), math.radians(dec_deg)
    in_ha = np.array([math.cos(d) * math.cos(h), -math.cos(d) * math.sin(h), math.sin(d)])
    return in_ha @ _ha_frame(latitude_deg)


def optical_axis_origin(hour_angle_deg: float, latitude_deg: float, side_of_pier: int, geometry: SlavingGeometry) -> np.ndarray:
    """Where the optical axis leaves the mount (east, north, up), metres from the dome centre."""
    base = np.array([geometry.mount_east, geometry.mount_north, geometry.pier_height])
    if geometry.gem_offset == 0:
        return base
    if side_of_pier == PIER_UNKNOWN:
        # Normal pointing state: a western target (H > 0) is looked at from the east side.
        side_of_pier = PIER_EAST if math.sin(math.radians(hour_angle_deg)) >= 0 else PIER_WEST
    sign = 1.0 if side_of_pier == PIER_EAST else -1.0
    h = math.radians(hour_angle_deg)
    dec_axis = np.array([math.sin(h), math.cos(h), 0.0]) @ _ha_frame(latitude_deg)
    return base + sign * geometry.gem_offset * dec_axis


def dome_azimuth(hour_angle_deg: float, dec_deg: float, latitude_deg: float, side_of_pier: int, geometry: SlavingGeometry) -> float:
    """Return the dome azimuth (degrees, 0 north, 90 east) that centres the slit on the optical axis.

    Raises ValueError when the mount lies outside the dome (no intersection ahead).
    """
    s = pointing_vector(hour_angle_deg, dec_deg, latitude_deg)
    p = optical_axis_origin(hour_angle_deg, latitude_deg, side_of_pier, geometry)
    ps = float(p @ s)
    disc = ps * ps - float(p @ p) + geometry.radius**2
    if disc < 0:
        raise ValueError("the optical axis does not meet the dome: check the mount offsets and the dome radius")
    t = -ps + math.sqrt(disc)
    if t < 0:
        raise ValueError("the mount lies outside the dome: check the mount offsets and the dome radius")
    q = p + t * s
    if abs(q[0]) < 1e-12 and abs(q[1]) < 1e-12:
        return 0.0  # straight up: any azimuth will do
    return math.degrees(math.atan2(q[0], q[1])) % 360.0


def azimuth_error(a: float, b: float) -> float:
    """Smallest absolute difference between two azimuths, degrees (0-180)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)
