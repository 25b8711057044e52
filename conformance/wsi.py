"""Checks of VL Whole Slide Microscopy images (PS3.3 A.32.8): per instance, per pyramid, per
series. Numbers G1-G10 refer to MAPPING.md section 5.

Units: Pixel Spacing, Imaged Volume Width/Height and the Total Pixel Matrix Origin are mm;
Imaged Volume Depth and Z offsets are µm; Spacing Between Slices is mm (PS3.3 C.8.12.4,
C.7.6.16.2.1).
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterator

from . import frames as framelib
from .catalog import finding
from .dicomfiles import (
    Instance,
    ds_resolution,
    ds_text,
    functional,
    integer,
    item,
    items,
    number,
    numbers,
    pixel_spacing,
    text,
    uid,
)
from .findings import Finding, Severity
from .pyramid import Pyramid

FLAVOURS = ("VOLUME", "LABEL", "OVERVIEW", "THUMBNAIL")
#: Positions listed in one finding before the rest are counted.
SHOW = 5

W = Severity.WARNING
I = Severity.INFO  # noqa: E741


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# -- per instance ----------------------------------------------------------------------------


def check_instance(
    inst: Instance, level: int | None, *, deep: bool, concatenated_frames: int | None = None
) -> Iterator[Finding]:
    """Image Type, tile grid, frame count, sparse positions, focal planes, pixel data, frames."""
    yield from _image_type(inst, level)
    if inst.flavour in (None, "VOLUME", "THUMBNAIL"):
        yield from _geometry(inst, level)
    yield from _tiling(inst, level, concatenated_frames)
    yield from _frames(inst, level, deep=deep)


def _image_type(inst: Instance, level: int | None) -> Iterator[Finding]:
    """Image Type (0008,0008) per C.8.12.4.1.1 and the Multi-Resolution Pyramid usage rule."""
    where = {"file": inst.name, "level": level, "attribute": "ImageType"}
    it = inst.image_type
    if not it:
        yield finding("WSI-image-type", "Image Type is missing (Type 1)", **where)
        return
    shown = "\\".join(it)
    if len(it) != 4:
        yield finding(
            "WSI-image-type",
            f"Image Type {shown} has {len(it)} values; the WSI IOD has exactly 4",
            **where,
        )
    if it[0] not in ("ORIGINAL", "DERIVED"):
        yield finding(
            "WSI-image-type", f"Image Type value 1 is {it[0]!r}, not ORIGINAL or DERIVED", **where
        )
    if len(it) > 1 and it[1] != "PRIMARY":
        yield finding("WSI-image-type", f"Image Type value 2 is {it[1]!r}, not PRIMARY", **where)
    if len(it) > 2 and it[2] not in FLAVOURS:
        yield finding(
            "WSI-image-type",
            f"Image Type value 3 is {it[2]!r}; defined terms are {', '.join(FLAVOURS)}"
            + (" (LOCALIZER is retired)" if it[2] == "LOCALIZER" else ""),
            severity=W,
            **where,
        )
    if len(it) > 3 and it[3] not in ("NONE", "RESAMPLED"):
        yield finding(
            "WSI-image-type",
            f"Image Type value 4 is {it[3]!r}; defined terms are NONE and RESAMPLED",
            severity=W,
            **where,
        )
    if inst.flavour in ("LABEL", "OVERVIEW") and uid(inst.ds, "PyramidUID"):
        yield finding(
            "WSI-image-type",
            f"a {inst.flavour} image carries a Pyramid UID; the Multi-Resolution Pyramid module "
            "shall be present only if Image Type value 3 is VOLUME or THUMBNAIL",
            file=inst.name,
            level=level,
            attribute="PyramidUID",
        )
    ft = functional(inst.ds, "WholeSlideMicroscopyImageFrameTypeSequence", "FrameType")
    frame_type = [str(v).strip().upper() for v in ([ft] if isinstance(ft, str) else ft or [])]
    if frame_type and frame_type != it:
        frame_shown = "\\".join(frame_type)
        yield finding(
            "WSI-image-type",
            f"Frame Type {frame_shown} differs from Image Type {shown}",
            severity=W,
            file=inst.name,
            level=level,
            attribute="SharedFunctionalGroupsSequence[1]/"
            "WholeSlideMicroscopyImageFrameTypeSequence[1]/FrameType",
        )


def _optical_path_of(frame_item, shared_id: str | None) -> str | None:
    op = item(frame_item, "OpticalPathIdentificationSequence")
    return text(op, "OpticalPathIdentifier") or shared_id


def _positions(
    inst: Instance,
) -> list[tuple[int | None, int | None, float | None, str | None]] | None:
    """(column, row, z µm, optical path) of every frame from Plane Position (Slide), or None when
    the frames carry no positions."""
    per = items(inst.ds, "PerFrameFunctionalGroupsSequence")
    if not per:
        return None
    shared = item(inst.ds, "SharedFunctionalGroupsSequence")
    shared_op = text(item(shared, "OpticalPathIdentificationSequence"), "OpticalPathIdentifier")
    shared_pos = item(shared, "PlanePositionSlideSequence")
    out = []
    any_position = False
    for it in per:
        pos = item(it, "PlanePositionSlideSequence") or shared_pos
        if pos is not None:
            any_position = True
        out.append(
            (
                integer(pos, "ColumnPositionInTotalImagePixelMatrix"),
                integer(pos, "RowPositionInTotalImagePixelMatrix"),
                number(pos, "ZOffsetInSlideCoordinateSystem"),
                _optical_path_of(it, shared_op),
            )
        )
    return out if any_position else None


def _tiling(inst: Instance, level: int | None, concatenated: int | None) -> Iterator[Finding]:
    """G3-G5, G8: tile grid, frame count, explicit positions, focal planes."""
    ds = inst.ds
    where = {"file": inst.name, "level": level}
    tile, matrix = inst.tile, inst.matrix
    bad = [
        name
        for name, v in (
            ("Columns", tile and tile[0]),
            ("Rows", tile and tile[1]),
            ("TotalPixelMatrixColumns", matrix and matrix[0]),
            ("TotalPixelMatrixRows", matrix and matrix[1]),
        )
        if not v or v <= 0
    ]
    if bad:
        yield finding(
            "WSI-tile-grid",
            f"{', '.join(bad)} missing or not positive: the tile grid is undefined",
            attribute=bad[0],
            **where,
        )
        return
    assert tile is not None and matrix is not None
    (cols, rows), (width, height) = tile, matrix
    nx, ny = _ceil_div(width, cols), _ceil_div(height, rows)
    n_frames = integer(ds, "NumberOfFrames") or 1
    dot = (text(ds, "DimensionOrganizationType") or "").upper()
    positions = _positions(inst)
    if dot == "TILED_FULL":
        nz = integer(ds, "TotalPixelMatrixFocalPlanes")
        if nz is None:
            yield finding(
                "WSI-frame-count",
                "TILED_FULL without Total Pixel Matrix Focal Planes (Type 1C): the number of "
                "focal planes is unknown; 1 assumed",
                attribute="TotalPixelMatrixFocalPlanes",
                **where,
            )
            nz = 1
        nop = integer(ds, "NumberOfOpticalPaths")
        if nop is None:
            nop = max(1, len(items(ds, "OpticalPathSequence")))
            yield finding(
                "WSI-frame-count",
                f"TILED_FULL without Number of Optical Paths (Type 1C); {nop} assumed from the "
                "Optical Path Sequence",
                attribute="NumberOfOpticalPaths",
                **where,
            )
        expected = nx * ny * nz * nop
        total = concatenated if concatenated is not None else n_frames
        if total != expected:
            yield finding(
                "WSI-frame-count",
                f"Number of Frames is {total}{' (concatenation)' if concatenated else ''}; "
                f"TILED_FULL needs {nx} x {ny} tiles x {nz} focal plane(s) x {nop} optical "
                f"path(s) = {expected} for a {width} x {height} matrix of {cols} x {rows} tiles",
                attribute="NumberOfFrames",
                **where,
            )
        if total < nx * ny:
            yield finding(
                "WSI-tile-grid",
                f"{total} frames cannot cover the {width} x {height} matrix, which needs "
                f"{nx} x {ny} = {nx * ny} tiles of {cols} x {rows}",
                **where,
            )
        if positions is not None:
            yield from _implied_positions(inst, level, positions, nx, ny, cols, rows)
        yield from _focal_planes(inst, level, nz, positions)
        return
    if positions is None:
        yield finding(
            "WSI-tile-grid",
            "frame positions are undefined: Dimension Organization Type is "
            + (f"{dot}" if dot else "absent")
            + " and no Per-frame Functional Groups item has a Plane Position (Slide) Sequence",
            attribute="DimensionOrganizationType",
            **where,
        )
        return
    if len(positions) != n_frames:
        yield finding(
            "WSI-frame-count",
            f"{len(positions)} Per-frame Functional Groups items for {n_frames} frames",
            attribute="PerFrameFunctionalGroupsSequence",
            **where,
        )
    yield from _sparse(inst, level, positions, width, height, cols, rows)


def _implied_positions(
    inst: Instance, level: int | None, positions: list, nx: int, ny: int, cols: int, rows: int
) -> Iterator[Finding]:
    """Explicit positions in a TILED_FULL instance must be the implied ones (C.7.6.17.3)."""
    offset = integer(inst.ds, "ConcatenationFrameOffsetNumber") or 0
    wrong = []
    for i, (c, r, _z, _op) in enumerate(positions):
        f = offset + i
        want = ((f % nx) * cols + 1, ((f // nx) % ny) * rows + 1)
        if (c, r) != want:
            wrong.append(
                f"frame {offset + i + 1} at ({c}, {r}), TILED_FULL order puts it at {want}"
            )
    if wrong:
        more = f" (and {len(wrong) - SHOW} more)" if len(wrong) > SHOW else ""
        yield finding(
            "WSI-tile-grid",
            "explicit frame positions contradict TILED_FULL order: "
            + "; ".join(wrong[:SHOW])
            + more,
            file=inst.name,
            level=level,
            attribute="PerFrameFunctionalGroupsSequence",
        )


def _sparse(
    inst: Instance,
    level: int | None,
    positions: list,
    width: int,
    height: int,
    cols: int,
    rows: int,
) -> Iterator[Finding]:
    """G5: positions inside the matrix, no two tiles of one plane and path overlapping."""
    outside, overlaps, missing = [], [], []
    cells: dict[tuple, list[tuple[int, int, int]]] = defaultdict(list)
    for i, (c, r, z, op) in enumerate(positions, start=1):
        if c is None or r is None:
            missing.append(i)
            continue
        if not (1 <= c <= width and 1 <= r <= height):
            outside.append(f"frame {i} at ({c}, {r})")
            continue
        plane = (round(z, 6) if z is not None else None, op)
        cx, cy = (c - 1) // cols, (r - 1) // rows
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for j, c2, r2 in cells.get((plane, cx + dx, cy + dy), ()):
                    if abs(c - c2) < cols and abs(r - r2) < rows:
                        overlaps.append(f"frames {j} and {i} at ({c2}, {r2}) and ({c}, {r})")
        cells[(plane, cx, cy)].append((i, c, r))
    where = {"file": inst.name, "level": level, "attribute": "PerFrameFunctionalGroupsSequence"}
    if missing:
        yield finding(
            "WSI-sparse-positions",
            f"{len(missing)} frame(s) without Column/Row Position (first: frame {missing[0]})",
            **where,
        )
    for label, found in (("outside the total pixel matrix", outside), ("overlap", overlaps)):
        if found:
            more = f" (and {len(found) - SHOW} more)" if len(found) > SHOW else ""
            yield finding(
                "WSI-sparse-positions",
                f"{len(found)} tile position(s) {label} ({width} x {height}, tiles {cols} x "
                f"{rows}): " + "; ".join(found[:SHOW]) + more,
                **where,
            )


def _focal_planes(
    inst: Instance, level: int | None, nz: int, positions: list | None
) -> Iterator[Finding]:
    """G8: several focal planes in TILED_FULL need an even spacing that says where they are."""
    if nz <= 1:
        return
    where = {"file": inst.name, "level": level}
    spacing = functional(inst.ds, "PixelMeasuresSequence", "SpacingBetweenSlices")
    try:
        spacing_mm = float(spacing) if spacing is not None else None
    except (TypeError, ValueError):
        spacing_mm = None
    if spacing_mm is None or spacing_mm <= 0:
        yield finding(
            "WSI-focal-planes",
            f"TILED_FULL with {nz} focal planes but no positive Spacing Between Slices in Pixel "
            "Measures: the planes' depths are undefined",
            attribute="SharedFunctionalGroupsSequence[1]/PixelMeasuresSequence[1]/"
            "SpacingBetweenSlices",
            **where,
        )
        return
    if positions is None:
        return
    zs: list[float] = []  # distinct Z offsets in frame order
    for _c, _r, z, _op in positions:
        if z is not None and all(abs(z - seen) > 1e-9 for seen in zs):
            zs.append(z)
    if not zs:
        return
    step = spacing_mm * 1000.0  # µm
    problems = []
    if len(zs) != nz:
        problems.append(f"{len(zs)} distinct Z offsets for {nz} focal planes")
    diffs = [b - a for a, b in itertools.pairwise(zs)]
    if any(d <= 0 for d in diffs):
        problems.append("Z offsets do not increase with frame order (glass to coverslip)")
    elif any(abs(d - step) > 1e-3 + 1e-6 * step for d in diffs):
        problems.append(
            "planes are not evenly spaced by Spacing Between Slices "
            f"({step:g} µm): steps {', '.join(f'{d:g}' for d in diffs[:SHOW])} µm"
        )
    for p in problems:
        yield finding("WSI-focal-planes", p, attribute="PerFrameFunctionalGroupsSequence", **where)


def _frames(inst: Instance, level: int | None, *, deep: bool) -> Iterator[Finding]:
    """Pixel Data structure, then decode sampled (or all) frames to Rows x Columns."""
    where = {"file": inst.name, "level": level}
    try:
        idx = framelib.index(inst)
    except framelib.PixelDataError as exc:
        yield finding("DICOM-pixel-data", str(exc), attribute="PixelData", **where)
        return
    for problem in idx.problems:
        yield finding("DICOM-pixel-data", problem, attribute="PixelData", **where)
    count = len(idx.frames)
    if not count:
        return
    picks = range(count) if deep else sorted({0, count // 2, count - 1})
    rows, cols = integer(inst.ds, "Rows"), integer(inst.ds, "Columns")
    spp = integer(inst.ds, "SamplesPerPixel") or 1
    bad = 0
    for i in picks:
        data = framelib.read_frame(inst, idx.frames[i])
        try:
            arr = framelib.decode(inst, data)
        except framelib.CannotDecode as exc:
            yield finding("WSI-frame-decode", f"frames not decoded: {exc}", severity=I, **where)
            return
        except Exception as exc:
            bad += 1
            if bad <= SHOW:
                yield finding(
                    "WSI-frame-decode",
                    f"frame {i + 1} does not decode ({type(exc).__name__}: {exc})",
                    frame=i + 1,
                    **where,
                )
            continue
        got = framelib.shape_of(arr)
        if got != (rows, cols, spp):
            bad += 1
            if bad <= SHOW:
                yield finding(
                    "WSI-frame-decode",
                    f"frame {i + 1} decodes to {got[1]} x {got[0]} x {got[2]} samples; Columns x "
                    f"Rows x Samples per Pixel is {cols} x {rows} x {spp}",
                    frame=i + 1,
                    **where,
                )
    if bad > SHOW:
        yield finding("WSI-frame-decode", f"{bad - SHOW} more frames fail to decode", **where)


# -- per pyramid -------------------------------------------------------------------------------


def _geometry(inst: Instance, level: int | None) -> Iterator[Finding]:
    """What one VOLUME/THUMBNAIL image must have on its own: Frame of Reference, Pixel Spacing,
    imaged volume (Depth not 0) that agrees with its size (G2), origin, a valid orientation."""
    where = {"file": inst.name, "level": level}
    volume = inst.flavour in (None, "VOLUME")
    if uid(inst.ds, "FrameOfReferenceUID") is None:
        yield finding(
            "WSI-frame-of-reference",
            f"{inst.flavour or 'VOLUME'} image without Frame of Reference UID (required when Image "
            "Type value 3 is VOLUME or THUMBNAIL)",
            attribute="FrameOfReferenceUID",
            **where,
        )
    spacing = pixel_spacing(inst.ds)
    if spacing is None:
        yield finding(
            "WSI-spacing",
            "no Pixel Spacing (Pixel Measures functional group): the image has no physical scale",
            attribute=_SPACING_PATH,
            **where,
        )
    else:
        for (v, t), index in zip(zip(*spacing, strict=True), (1, 2), strict=True):
            if not (math.isfinite(v) and v > 0):  # NaN and infinity too
                yield finding(
                    "WSI-spacing",
                    f"Pixel Spacing value {index} is {t}, not a positive number",
                    attribute=f"{_SPACING_PATH}[{index}]",
                    **where,
                )
    for name, value in zip(_VOLUME_NAMES, _imaged_volume(inst), strict=True):
        if value is None and volume:
            yield finding(
                "WSI-imaged-volume",
                f"{name} is missing (Type 1C, required for VOLUME images)",
                attribute=name,
                **where,
            )
        if name == "ImagedVolumeDepth" and value == 0:
            yield finding(
                "WSI-imaged-volume",
                "Imaged Volume Depth is 0; it shall not be 0 (for a single focal plane, the depth "
                "of field)",
                attribute=name,
                **where,
            )
    if spacing is not None and inst.matrix:
        yield from _extent(inst, level, spacing)
    if _origin(inst) is None and volume:
        yield finding(
            "WSI-origin",
            "Total Pixel Matrix Origin Sequence with X and Y Offset in Slide Coordinate System is "
            "missing",
            attribute="TotalPixelMatrixOriginSequence[1]",
            **where,
        )
    yield from _orientation_valid(inst, level)


_SPACING_PATH = "SharedFunctionalGroupsSequence[1]/PixelMeasuresSequence[1]/PixelSpacing"
_VOLUME_NAMES = ("ImagedVolumeWidth", "ImagedVolumeHeight", "ImagedVolumeDepth")


def check_pyramid(p: Pyramid) -> Iterator[Finding]:
    """G1, G2, G7, G10 across the levels (and thumbnails) of one pyramid: each image compared
    with the base level."""
    base = p.base
    yield from _level_image_types(p)
    yield from _identity(p)
    base_spacing = pixel_spacing(base.ds)
    base_volume = _imaged_volume(base)
    base_origin = _origin(base)
    base_orientation = numbers(base.ds, "ImageOrientationSlide")
    for inst, level in p.members():
        if inst is base:
            continue
        spacing = pixel_spacing(inst.ds)
        if spacing is not None and base_spacing is not None:
            yield from _spacing(inst, level, spacing, base, base_spacing)
        yield from _same_volume(inst, level, base_volume)
        yield from _same_origin(inst, level, base_origin, spacing, base, base_spacing)
        yield from _same_orientation(inst, level, base_orientation)


def _level_image_types(p: Pyramid) -> Iterator[Finding]:
    """Value 4 against the level: NONE for the base, RESAMPLED for lower levels."""
    for inst, level in p.members():
        it = inst.image_type
        if len(it) < 4 or inst.flavour != "VOLUME" or level is None:
            continue
        if level == 0 and it[3] == "RESAMPLED":
            yield finding(
                "WSI-image-type",
                "the largest level of the pyramid says RESAMPLED (derived by downsampling a "
                "higher resolution image), but the pyramid has no higher resolution level",
                severity=W,
                file=inst.name,
                level=level,
                attribute="ImageType",
            )
        if level > 0 and it[3] == "NONE":
            yield finding(
                "WSI-image-type",
                f"level {level} is smaller than the base but says NONE (not resampled)",
                severity=W,
                file=inst.name,
                level=level,
                attribute="ImageType",
            )


def _identity(p: Pyramid) -> Iterator[Finding]:
    """G10: one Frame of Reference, Study, Series and Patient across the pyramid."""
    base = p.base
    ref_for = uid(base.ds, "FrameOfReferenceUID")
    for inst, level in p.members():
        if inst is base:
            continue
        for_uid = uid(inst.ds, "FrameOfReferenceUID")
        if for_uid is not None and ref_for is not None and for_uid != ref_for:
            yield finding(
                "WSI-frame-of-reference",
                f"Frame of Reference UID {for_uid} differs from the base level's {ref_for}: "
                "the levels of one pyramid must lie in one slide coordinate system",
                file=inst.name,
                level=level,
                attribute="FrameOfReferenceUID",
            )
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "PatientID", "PatientName"):
            a, b = text(inst.ds, keyword) or "", text(base.ds, keyword) or ""
            if a != b:
                yield finding(
                    "WSI-study-patient",
                    f"{keyword} {a!r} differs from the base level's {b!r}",
                    file=inst.name,
                    level=level,
                    attribute=keyword,
                )


def _spacing(
    inst: Instance, level: int | None, spacing, base: Instance, base_spacing
) -> Iterator[Finding]:
    """G1: spacing ∝ size ratio, within size rounding and DS precision."""
    (row, col), (row_t, col_t) = spacing
    (row0, col0), (row0_t, col0_t) = base_spacing
    (w, h), (w0, h0) = inst.matrix, base.matrix
    for name, v, v_t, v0, v0_t, n, n0, index in (
        ("column", col, col_t, col0, col0_t, w, w0, 2),
        ("row", row, row_t, row0, row0_t, h, h0, 1),
    ):
        if v <= 0 or v0 <= 0 or n <= 0:
            continue
        expected = v0 * n0 / n
        tolerance = 1.0 / n + ds_resolution(v_t) / v + ds_resolution(v0_t) / v0 + 1e-9
        if abs(v / expected - 1.0) > tolerance:
            what = "Total Pixel Matrix Columns" if name == "column" else "Total Pixel Matrix Rows"
            yield finding(
                "WSI-spacing",
                f"{name} spacing {v_t} mm disagrees with the level size: base {v0_t} mm x "
                f"{n0}/{n} ({what}) = {expected:.6g} mm (off by {abs(v / expected - 1):.2%}, "
                f"tolerance {tolerance:.2%})",
                file=inst.name,
                level=level,
                attribute=f"{_SPACING_PATH}[{index}]",
            )


def _imaged_volume(inst: Instance) -> tuple[float | None, ...]:
    return tuple(number(inst.ds, k) for k in _VOLUME_NAMES)


def _same_volume(inst: Instance, level: int | None, base_volume) -> Iterator[Finding]:
    """G2: Imaged Volume Width/Height/Depth identical on every level."""
    for name, v, v0 in zip(_VOLUME_NAMES, _imaged_volume(inst), base_volume, strict=True):
        if v is not None and v0 is not None and abs(v - v0) > 1e-6 * max(abs(v0), 1e-3):
            yield finding(
                "WSI-imaged-volume",
                f"{name} {v:g} differs from the base level's {v0:g}; the imaged volume is the "
                "same on every level",
                file=inst.name,
                level=level,
                attribute=name,
            )


def _extent(inst: Instance, level: int | None, spacing) -> Iterator[Finding]:
    """G2: size x spacing = imaged volume, within one pixel of this level."""
    (row, col), _texts = spacing
    w, h = inst.matrix
    for name, n, s, label in (
        ("ImagedVolumeWidth", w, col, "Total Pixel Matrix Columns x column spacing"),
        ("ImagedVolumeHeight", h, row, "Total Pixel Matrix Rows x row spacing"),
    ):
        v = number(inst.ds, name)
        if v is None or s <= 0:
            continue
        if abs(n * s - v) > s + 1e-6 * abs(v):
            yield finding(
                "WSI-extent",
                f"{label} = {n} x {s:g} = {n * s:.6g} mm, but {name} is {v:.6g} mm (more than "
                "one pixel apart)",
                file=inst.name,
                level=level,
                attribute=name,
            )


def _origin(inst: Instance) -> tuple[float, float] | None:
    o = item(inst.ds, "TotalPixelMatrixOriginSequence")
    x, y = number(o, "XOffsetInSlideCoordinateSystem"), number(o, "YOffsetInSlideCoordinateSystem")
    return (x, y) if x is not None and y is not None else None


def _same_origin(inst, level, base_origin, spacing, base, base_spacing) -> Iterator[Finding]:
    """G7: one origin for all levels, within half a pixel of the coarser level."""
    mine = _origin(inst)
    if mine is None or base_origin is None:
        return
    pixels = [s for sp in (spacing, base_spacing) if sp for s in sp[0]]
    tolerance = 0.5 * max(pixels) if pixels else 0.0
    texts = []
    for i in (inst, base):
        o = item(i.ds, "TotalPixelMatrixOriginSequence")
        texts += ds_text(o, "XOffsetInSlideCoordinateSystem") + ds_text(
            o, "YOffsetInSlideCoordinateSystem"
        )
    tolerance += sum(ds_resolution(t) for t in texts) + 1e-9
    distance = math.hypot(mine[0] - base_origin[0], mine[1] - base_origin[1])
    if distance > tolerance:
        yield finding(
            "WSI-origin",
            f"origin ({mine[0]:g}, {mine[1]:g}) mm differs from the base level's "
            f"({base_origin[0]:g}, {base_origin[1]:g}) mm by {distance:.4g} mm "
            f"(tolerance {tolerance:.3g} mm, half a pixel)",
            file=inst.name,
            level=level,
            attribute="TotalPixelMatrixOriginSequence[1]",
        )


def _orientation_valid(inst: Instance, level: int | None) -> Iterator[Finding]:
    """G7: six values, two orthogonal unit vectors."""
    v = numbers(inst.ds, "ImageOrientationSlide")
    where = {"file": inst.name, "level": level, "attribute": "ImageOrientationSlide"}
    if v is None:
        if inst.flavour in (None, "VOLUME"):
            yield finding(
                "WSI-orientation",
                "Image Orientation (Slide) is missing: the image cannot be placed on the slide",
                severity=W,
                **where,
            )
        return
    if len(v) != 6:
        yield finding(
            "WSI-orientation", f"Image Orientation (Slide) has {len(v)} values, not 6", **where
        )
        return
    r, c = v[:3], v[3:]
    nr, nc = math.sqrt(sum(x * x for x in r)), math.sqrt(sum(x * x for x in c))
    dot = sum(a * b for a, b in zip(r, c, strict=True))
    if abs(nr - 1) > 1e-4 or abs(nc - 1) > 1e-4 or abs(dot) > 1e-4:
        yield finding(
            "WSI-orientation",
            f"Image Orientation (Slide) {v} is not two orthogonal unit vectors (|row| {nr:.6g}, "
            f"|column| {nc:.6g}, row·column {dot:.3g})",
            **where,
        )


def _same_orientation(inst: Instance, level: int | None, base_orientation) -> Iterator[Finding]:
    v = numbers(inst.ds, "ImageOrientationSlide")
    if not v or len(v) != 6 or not base_orientation or len(base_orientation) != 6:
        return
    if any(abs(a - b) > 1e-4 for a, b in zip(v, base_orientation, strict=True)):
        yield finding(
            "WSI-orientation",
            f"Image Orientation (Slide) {v} differs from the base level's {base_orientation}",
            file=inst.name,
            level=level,
            attribute="ImageOrientationSlide",
        )


# -- per series ---------------------------------------------------------------------------------


def check_pyramid_uids(instances: list[Instance], pyramids: list[Pyramid]) -> Iterator[Finding]:
    """G10: levels of one pyramid share one Pyramid UID."""
    by_series: dict[str | None, list[Instance]] = defaultdict(list)
    for inst in instances:
        if inst.is_wsi and inst.flavour in (None, "VOLUME"):
            by_series[uid(inst.ds, "SeriesInstanceUID")].append(inst)
    for members in by_series.values():
        with_uid = [m for m in members if uid(m.ds, "PyramidUID")]
        if with_uid and len(with_uid) != len(members):
            for m in members:
                if not uid(m.ds, "PyramidUID"):
                    yield finding(
                        "WSI-pyramid-uid",
                        "this VOLUME image has no Pyramid UID while other VOLUME images of its "
                        "series have one",
                        file=m.name,
                        attribute="PyramidUID",
                    )
    for i, a in enumerate(pyramids):
        for b in pyramids[i + 1 :]:
            if not (a.pyramid_uid and b.pyramid_uid) or a.series_uid != b.series_uid:
                continue
            if uid(a.base.ds, "FrameOfReferenceUID") != uid(b.base.ds, "FrameOfReferenceUID"):
                continue
            if a.sizes & b.sizes:
                continue  # e.g. one pyramid per optical path: same sizes, legitimately separate
            va, vb = _imaged_volume(a.base), _imaged_volume(b.base)
            if None in va[:2] or None in vb[:2]:
                continue
            if all(
                abs(x - y) <= 1e-6 * max(abs(x), 1e-3) for x, y in zip(va[:2], vb[:2], strict=True)
            ):
                small = b if b.base.matrix[0] < a.base.matrix[0] else a
                other = a if small is b else b
                yield finding(
                    "WSI-pyramid-uid",
                    f"levels {', '.join(f'{w}x{h}' for w, h in sorted(small.sizes, reverse=True))} "
                    f"carry Pyramid UID {small.pyramid_uid} but have the Frame of Reference and "
                    f"imaged volume of pyramid {other.pyramid_uid} and fit between its levels: one "
                    "pyramid split across two Pyramid UIDs",
                    file=small.base.name,
                    attribute="PyramidUID",
                )
