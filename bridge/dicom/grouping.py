"""Which VOLUME instances of one series form one pyramid, tolerantly, and why others do not.

PS3.3 C.7.11.1: instances that share a Pyramid UID are one pyramid; a series may hold several
pyramids (CP-2135), each with its own Pyramid UID. Many real files carry no Pyramid UID (it is
Type 1C and recent), and some writers (Google's ``wsi2dcm``) give every level its own Frame of
Reference UID, Imaged Volume Width/Height rounded per level, and ``RESAMPLED`` on the base. As
the best readers do (wsidicom groups by the image's identity, not the Frame of Reference), the
reader groups:

- by Pyramid UID where the instances carry one;
- otherwise by optical paths, focal planes and Photometric Interpretation (PS3.3 C.8.12.4,
  C.7.6.3), and by a consistent physical extent: the level's Total Pixel Matrix size x Pixel
  Spacing agrees with the base level's within one pixel of the coarser level (C.8.12.4.1.1,
  C.7.6.16.2.1). Without Pixel Spacing the downsample factors across and down must agree to one
  pixel.

A Frame of Reference UID that differs between levels, or ``RESAMPLED`` (Image Type value 4,
C.8.12.4.1.1) on the largest level, is a warning here; ``omedicom check`` reports them as errors
(the reader is lenient, the checker strict). Where instances cannot be one pyramid, the note
names the attribute and both values.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from .geometry import Geometry

Member = tuple[Path, Dataset]


@dataclass(frozen=True, slots=True)
class Grouping:
    """VOLUME instances as pyramids (largest level first within none: the reader orders
    levels), and what the reader had to tolerate or could not join, said in words."""

    pyramids: tuple[tuple[Member, ...], ...]
    notes: tuple[str, ...]


@dataclass(slots=True)
class _Level:
    """The instances of one Total Pixel Matrix size (and Photometric Interpretation)."""

    size: tuple[int, int]
    photometric: str
    frame_of_reference: str
    paths: tuple[str, ...]
    planes: tuple[float, ...]
    spacing: tuple[float, float] | None  # (row, column) mm
    members: list[Member]

    @property
    def name(self) -> str:
        return self.members[0][0].name


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    """Pixel Spacing (row, column) in mm, shared functional group first; None when absent or
    unreadable (the reader proper says what is wrong with it)."""
    value = None
    with contextlib.suppress(AttributeError, IndexError, KeyError, TypeError):
        value = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].get("PixelSpacing")
    if value in (None, ""):
        value = ds.get("PixelSpacing")
    try:
        row, col = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in (row, col)):
        return None
    return row, col


def _planes(ds: Dataset, shape: Geometry) -> tuple[float, ...]:
    """Z (µm) of the instance's focal planes: the origin's Z Offset (µm, C.8.12.2) plus
    Spacing Between Slices (mm, C.7.6.16.2.1) per plane; rounded to 0.1 µm so levels compare."""
    z0 = 0.0
    step = 0.0
    with contextlib.suppress(AttributeError, IndexError, TypeError, ValueError):
        z0 = float(ds.TotalPixelMatrixOriginSequence[0].ZOffsetInSlideCoordinateSystem or 0)
    with contextlib.suppress(AttributeError, IndexError, KeyError, TypeError, ValueError):
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        step = float(measures.get("SpacingBetweenSlices") or 0)
    return tuple(round(z0 + k * step * 1000.0, 1) for k in range(max(shape.focal_planes, 1)))


def _paths(ds: Dataset) -> tuple[str, ...]:
    return tuple(
        str(item.get("OpticalPathIdentifier", "")) for item in ds.get("OpticalPathSequence", [])
    )


def _image_type_4(ds: Dataset) -> str:
    value = ds.get("ImageType")
    values = list(value) if value is not None and not isinstance(value, str) else [value]
    return str(values[3]) if len(values) > 3 else ""


def _levels(members: Sequence[Member], shapes: dict[int, Geometry]) -> list[_Level]:
    by_key: dict[tuple[tuple[int, int], str, str], _Level] = {}
    for f, ds in members:
        shape = shapes[id(ds)]
        pi = str(ds.get("PhotometricInterpretation", "") or "")
        frame = str(ds.get("FrameOfReferenceUID", "") or "")
        key = (shape.size, pi, frame)  # same size, other frame of reference: another scan
        level = by_key.get(key)
        if level is None:
            level = by_key[key] = _Level(shape.size, pi, frame, (), (), _spacing(ds), [])
        level.members.append((f, ds))
        level.paths = tuple(dict.fromkeys(level.paths + _paths(ds)))
        level.planes = tuple(sorted(set(level.planes) | set(_planes(ds, shape))))
        level.spacing = level.spacing or _spacing(ds)
    return sorted(by_key.values(), key=lambda lv: (-lv.size[0] * lv.size[1], -lv.size[0]))


def _mm(value: float) -> str:
    return f"{value:.6g} mm"


def _extent_mismatch(base: _Level, level: _Level) -> str | None:
    """Why ``level`` does not cover the base level's area, or None when it does (to one pixel
    of the coarser level, which is ``level``: levels are ordered largest first)."""
    (w0, h0), (w, h) = base.size, level.size
    if base.spacing and level.spacing:
        (r0, c0), (r, c) = base.spacing, level.spacing
        for axis, have, want, tol, n_name in (
            ("width", w * c, w0 * c0, c, "Columns"),
            ("height", h * r, h0 * r0, r, "Rows"),
        ):
            if abs(have - want) > tol * (1 + 1e-6):
                return (
                    f"its physical {axis} (Total Pixel Matrix {n_name} × Pixel Spacing) is "
                    f"{_mm(have)} and the base level's ({base.name}) is {_mm(want)}, more than "
                    f"one pixel ({_mm(tol)}) apart"
                )
        return None
    # no Pixel Spacing on one of them: the downsample across and down must agree
    across, down = w0 / w, h0 / h
    if abs(h0 / across - h) > 1 or abs(w0 / down - w) > 1:
        return (
            f"its Total Pixel Matrix {w}×{h} is not a downsample of the base level's "
            f"({base.name}) {w0}×{h0} (factors {across:.4g} across, {down:.4g} down; no Pixel "
            "Spacing to compare extents)"
        )
    return None


def _mismatch(base: _Level, level: _Level) -> str | None:
    """The first attribute by which ``level`` cannot be a level of ``base``'s pyramid."""
    if level.photometric != base.photometric:
        return (
            f"its Photometric Interpretation is {level.photometric or 'absent'}, the base "
            f"level's ({base.name}) is {base.photometric or 'absent'}"
        )
    if set(level.paths) != set(base.paths):
        return (
            f"its optical paths (Optical Path Identifier) are {list(level.paths)}, the base "
            f"level's ({base.name}) are {list(base.paths)}"
        )
    if len(level.planes) != len(base.planes):
        return (
            f"it has {len(level.planes)} focal plane(s), the base level ({base.name}) has "
            f"{len(base.planes)}"
        )
    if level.size == base.size:
        return None
    return _extent_mismatch(base, level)


def _tolerant(members: Sequence[Member], shapes: dict[int, Geometry]) -> tuple[list, list[str]]:
    """Instances without a Pyramid UID, grouped by the rules in the module docstring."""
    pyramids: list[list[_Level]] = []
    notes: list[str] = []
    for level in _levels(members, shapes):
        reasons = []
        for pyramid in pyramids:
            twin = next((lv for lv in pyramid if lv.size == level.size), None)
            why = (
                f"it has the size of {twin.name} ({level.size[0]}×{level.size[1]}), but Frame "
                f"of Reference UID {level.frame_of_reference or '(absent)'} where {twin.name} "
                f"has {twin.frame_of_reference or '(absent)'}: another scan, not another level"
                if twin is not None
                else _mismatch(pyramid[0], level)
            )
            if why is None:
                pyramid.append(level)
                break
            reasons.append(why)
        else:
            if reasons:
                notes.append(
                    f"{level.name} ({level.size[0]}×{level.size[1]}) is not a level of the "
                    f"pyramid of {pyramids[0][0].name}: {reasons[0]}; read as a pyramid of its "
                    "own"
                )
            pyramids.append([level])
    return [[m for lv in p for m in lv.members] for p in pyramids], notes


def _tolerated(pyramid: Sequence[Member], shapes: dict[int, Geometry]) -> list[str]:
    """What the pyramid breaks but the reader reads through: a Frame of Reference UID per
    level, RESAMPLED on the largest level."""
    notes = []
    ordered = sorted(pyramid, key=lambda m: -shapes[id(m[1])].size[0] * shapes[id(m[1])].size[1])
    base_path, base = ordered[0]
    base_for = str(base.get("FrameOfReferenceUID", "") or "")
    for f, ds in ordered[1:]:
        other = str(ds.get("FrameOfReferenceUID", "") or "")
        if other != base_for:
            notes.append(
                f"{f.name}: Frame of Reference UID {other or '(absent)'} differs from the base "
                f"level's ({base_path.name}) {base_for or '(absent)'}; read as one pyramid "
                "(PS3.3 C.7.4.1: one slide has one frame of reference)"
            )
            break
    if _image_type_4(base) == "RESAMPLED":
        notes.append(
            f"{base_path.name}: Image Type says RESAMPLED on the largest level; read as the "
            "base level (PS3.3 C.8.12.4.1.1: the base is NONE)"
        )
    return notes


def group(members: Sequence[Member], shapes: dict[int, Geometry]) -> Grouping:
    """VOLUME instances of one series as pyramids (see the module docstring)."""
    by_uid: dict[str, list[Member]] = {}
    without: list[Member] = []
    for f, ds in members:
        uid = str(ds.get("PyramidUID", "") or "")
        if uid:
            by_uid.setdefault(uid, []).append((f, ds))
        else:
            without.append((f, ds))
    pyramids: list[list[Member]] = list(by_uid.values())
    notes: list[str] = []
    if len(by_uid) > 1:
        firsts = [f"{g[0][0].name} ({uid})" for uid, g in by_uid.items()]
        notes.append(
            f"{len(by_uid)} pyramids in the series, each with its own Pyramid UID: "
            f"{', '.join(firsts)} (PS3.3 C.7.11.1, several pyramids per series)"
        )
    if without:
        loose, split = _tolerant(without, shapes)
        if by_uid and loose:
            uid, first = next(iter(by_uid.items()))
            notes.append(
                f"{loose[0][0][0].name} has no Pyramid UID, {first[0][0].name} has {uid}; read "
                "as separate pyramids"
            )
        pyramids.extend(loose)
        notes.extend(split)
    for pyramid in pyramids:
        notes.extend(_tolerated(pyramid, shapes))
    return Grouping(tuple(tuple(p) for p in pyramids), tuple(notes))
