"""Geometry of OME shapes and DICOM graphic types, vectorised with numpy.

Both sides share one pixel frame (MAPPING.md 0 item 5, 3.5): x = column, y = row, (0, 0) at the
top-left corner of the top-left pixel, no half-pixel shift. That the DICOM 2D frame is this
corner frame is an *interpretation*: PS3.3 states it for Graphic Data (SR SCOORD, presentation
states) while the Bulk Annotations text only says "units of pixels" (MAPPING.md Corrections 5).

* OME ``Transform`` (AffineTransform, 2016-06): ``x' = A00 x + A01 y + A02``,
  ``y' = A10 x + A11 y + A12``.
* RECTANGLE (PS3.3 C.37.1.2, C.18.6.1.2): 4 corners, top-left, top-right, bottom-right,
  bottom-left (clockwise on screen, y down).
* ELLIPSE: the endpoints of the major axis, then those of the minor axis.
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field

import numpy as np

Affine = tuple[float, float, float, float, float, float]  # A00, A01, A02, A10, A11, A12

#: The OME 2016-06 shapes that have a DICOM graphic type (Mask and Label have none).
OME_SHAPES = ("Point", "Line", "Polyline", "Polygon", "Rectangle", "Ellipse")
#: OME AffineTransform attributes and their values when absent (the identity).
TRANSFORM_DEFAULTS = (
    ("A00", 1.0),
    ("A01", 0.0),
    ("A02", 0.0),
    ("A10", 0.0),
    ("A11", 1.0),
    ("A12", 0.0),
)


def apply(points: np.ndarray, t: Affine | None) -> np.ndarray:
    """``points`` (n, 2) through an OME AffineTransform (None: unchanged)."""
    if t is None:
        return points
    a00, a01, a02, a10, a11, a12 = t
    x, y = points[:, 0], points[:, 1]
    return np.column_stack((a00 * x + a01 * y + a02, a10 * x + a11 * y + a12))


def rectangle_corners(x: float, y: float, w: float, h: float) -> np.ndarray:
    """OME Rectangle (left, top, width, height) -> (4, 2) corners TL, TR, BR, BL."""
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def is_rectangle(corners: np.ndarray, rtol: float = 1e-9) -> bool:
    """Whether 4 points are a rectangle (consecutive edges orthogonal, opposite edges equal)."""
    u = corners[1] - corners[0]
    v = corners[3] - corners[0]
    scale = max(float(np.hypot(*u) * np.hypot(*v)), 1e-300)
    return abs(float(u @ v)) <= rtol * scale and np.allclose(
        corners[2], corners[0] + u + v, rtol=0, atol=rtol * max(1.0, float(np.abs(corners).max()))
    )


def _is_similarity(t: Affine) -> bool:
    """Rotation, reflection and uniform scale (conjugate diameters stay principal axes)."""
    a = np.array([[t[0], t[1]], [t[3], t[4]]])
    g = a.T @ a
    return abs(g[0, 1]) <= 1e-12 * abs(g[0, 0]) and abs(g[0, 0] - g[1, 1]) <= 1e-12 * abs(g[0, 0])


def ellipse_axes(cx: float, cy: float, rx: float, ry: float, t: Affine | None) -> np.ndarray:
    """OME Ellipse (centre, radii, optional Transform) -> DICOM ELLIPSE endpoints (4, 2).

    Without a transform, or with one that keeps angles (rotation, reflection, uniform scale),
    the endpoints of the OME axes are transformed: ``[[X−RX,Y],[X+RX,Y],[X,Y−RY],[X,Y+RY]]``
    with the longer axis first (MAPPING.md 3.5). Any other affine transform maps the axes to
    conjugate diameters, so the principal axes are computed exactly from the singular value
    decomposition of the linear part.
    """
    horizontal = np.array([[cx - rx, cy], [cx + rx, cy]])
    vertical = np.array([[cx, cy - ry], [cx, cy + ry]])
    if t is None or _is_similarity(t):
        first, second = (horizontal, vertical) if rx >= ry else (vertical, horizontal)
        return apply(np.vstack((first, second)), t)
    a = np.array([[t[0], t[1]], [t[3], t[4]]]) @ np.diag([rx, ry])
    u, s, _ = np.linalg.svd(a)
    centre = apply(np.array([[cx, cy]]), t)[0]
    major, minor = u[:, 0] * s[0], u[:, 1] * s[1]
    return np.array([centre - major, centre + major, centre - minor, centre + minor])


def rectangles_to_ome(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 4, 2) RECTANGLE corners -> (n, 4) OME (X, Y, Width, Height), (n, 6) transforms and
    a (n,) mask of the rectangles that need their transform (not axis-aligned).

    The rectangle is X, Y = first corner, Width = |TR − TL|, Height = |BL − TL|, and the
    Transform maps the unit axes onto the edge directions about that corner, so transforming
    the OME corners gives the DICOM corners back (to rounding).
    """
    p0, p1, p3 = corners[:, 0], corners[:, 1], corners[:, 3]
    u, v = p1 - p0, p3 - p0
    w, h = np.hypot(u[:, 0], u[:, 1]), np.hypot(v[:, 0], v[:, 1])
    aligned = (u[:, 1] == 0) & (v[:, 0] == 0) & (u[:, 0] >= 0) & (v[:, 1] >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        uh = np.where(w[:, None] > 0, u / w[:, None], [1.0, 0.0])
        vh = np.where(h[:, None] > 0, v / h[:, None], [0.0, 1.0])
    # linear part L = [uh vh] (columns); translation so that p0 stays where it is
    a00, a10, a01, a11 = uh[:, 0], uh[:, 1], vh[:, 0], vh[:, 1]
    a02 = p0[:, 0] - (a00 * p0[:, 0] + a01 * p0[:, 1])
    a12 = p0[:, 1] - (a10 * p0[:, 0] + a11 * p0[:, 1])
    params = np.column_stack((p0[:, 0], p0[:, 1], w, h))
    transforms = np.column_stack((a00, a01, a02, a10, a11, a12))
    return params, transforms, ~aligned


def ellipses_to_ome(ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, 4, 2) ELLIPSE axis endpoints -> (n, 4) OME (X, Y, RadiusX, RadiusY), (n, 6)
    transforms (rotation about the centre) and a (n,) mask of those that need it.

    Centre = midpoint of the major axis; RadiusX/RadiusY = half the axis lengths. A major axis
    along x or y needs no transform (RadiusX is then the horizontal radius); otherwise the
    ellipse is written with RadiusX along its major axis and rotated by the axis angle.
    """
    a0, a1, b0, b1 = ends[:, 0], ends[:, 1], ends[:, 2], ends[:, 3]
    centre = (a0 + a1) / 2
    da, db = a1 - a0, b1 - b0
    ra, rb = np.hypot(da[:, 0], da[:, 1]) / 2, np.hypot(db[:, 0], db[:, 1]) / 2
    horizontal = (da[:, 1] == 0) & (db[:, 0] == 0)
    vertical = (da[:, 0] == 0) & (db[:, 1] == 0)
    rx = np.where(vertical, rb, ra)
    ry = np.where(vertical, ra, rb)
    theta = np.arctan2(da[:, 1], da[:, 0])
    c, s = np.cos(theta), np.sin(theta)
    cx, cy = centre[:, 0], centre[:, 1]
    transforms = np.column_stack((c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy))
    params = np.column_stack((cx, cy, rx, ry))
    return params, transforms, ~(horizontal | vertical)


def points_text(points: np.ndarray) -> str:
    """OME ``Points`` attribute: ``"x,y x,y ..."`` with each value's shortest exact repr."""
    flat = points.ravel().tolist()
    return " ".join(f"{flat[i]!r},{flat[i + 1]!r}" for i in range(0, len(flat), 2))


def parse_points(text: str) -> np.ndarray:
    """OME ``Points`` (``"x,y x,y"``, commas or spaces) -> (n, 2) float64."""
    values = np.array(text.replace(",", " ").split(), dtype=np.float64)
    if values.size % 2:
        raise ValueError(f"odd number of values in Points ({values.size})")
    return values.reshape(-1, 2)


@dataclass
class GroupAccumulator:
    """Flat arrays of one annotation group while a reader (OME ROIs, GeoJSON) collects it:
    coordinates, points per annotation, source object, and one measurement column per name
    (NaN where an annotation has no value)."""

    coords: array = field(default_factory=lambda: array("d"))
    lengths: array = field(default_factory=lambda: array("q"))
    objects: array = field(default_factory=lambda: array("q"))
    measurements: dict[str, array] = field(default_factory=dict)

    def add(self, points: np.ndarray, obj: int, values: dict[str, float] | None) -> None:
        self.coords.extend(points.ravel().tolist())
        self._count(len(points), obj, values)

    def add_point(self, x: float, y: float, obj: int, values: dict[str, float] | None) -> None:
        self.coords.append(x)
        self.coords.append(y)
        self._count(1, obj, values)

    def _count(self, n: int, obj: int, values: dict[str, float] | None) -> None:
        index = len(self.lengths)
        self.lengths.append(n)
        self.objects.append(obj)
        if values:
            for name in [k for k in values if k not in self.measurements]:
                self.measurements[name] = array("d", [math.nan]) * index
        for name, column in self.measurements.items():
            column.append(values.get(name, math.nan) if values else math.nan)
