"""Checks of Microscopy Bulk Simple Annotations (PS3.3 A.87, module C.37.1.2); MAPPING.md G14.

Coordinates: 2D values are image-relative (column, row) pixels of the referenced image's total
pixel matrix, corner origin, so the valid range is [0, Columns] x [0, Rows] (C.10.4 / Graphic
Data convention); 3D values are slide coordinates in mm in the Frame of Reference, mapped here
into the pixel grid of a VOLUME image of that Frame of Reference with a tolerance of one pixel
(the origin is "pixel 1\\1", read as its corner or its centre by different tools: MAPPING.md
section 0 item 6).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from .catalog import finding
from .dicomfiles import (
    Instance,
    integer,
    item,
    items,
    number,
    numbers,
    pixel_spacing,
    raw,
    text,
    uid,
    values,
)
from .findings import Finding, Severity

GRAPHIC_TYPES = ("POINT", "POLYLINE", "POLYGON", "RECTANGLE", "ELLIPSE")
SHOW = 5


@dataclass
class Group:
    number: int
    ds: Dataset
    graphic_type: str | None
    count: int | None
    flat: np.ndarray | None  # flat coordinate values
    dims: int


def _array(value, dtype: str, little: bool) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        dt = np.dtype(("<" if little else ">") + dtype)
        data = bytes(value)
        return np.frombuffer(data[: len(data) // dt.itemsize * dt.itemsize], dt).astype(np.float64)
    try:
        return np.asarray(list(value), dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _uint_list(value, little: bool) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return np.frombuffer(data[: len(data) // 4 * 4], ("<" if little else ">") + "u4").astype(
            np.int64
        )
    try:
        return np.asarray(list(value), dtype=np.int64)
    except (TypeError, ValueError):
        return None


def check(ann: Instance, images: list[Instance]) -> Iterator[Finding]:
    """All ANN checks of one annotation instance against the images checked with it."""
    ds = ann.ds
    little = bool(getattr(ds, "original_encoding", (None, True))[1] in (None, True))
    where = {"file": ann.name}
    ctype = (text(ds, "AnnotationCoordinateType") or "").upper()
    if ctype not in ("2D", "3D"):
        yield finding(
            "ANN-structure",
            f"Annotation Coordinate Type is {ctype or 'missing'}; it must be 2D or 3D",
            attribute="AnnotationCoordinateType",
            **where,
        )
        return
    if ctype == "2D" and not text(ds, "PixelOriginInterpretation"):
        yield finding(
            "ANN-structure",
            "2D annotations without Pixel Origin Interpretation (Type 1C: VOLUME or FRAME)",
            attribute="PixelOriginInterpretation",
            **where,
        )
    reference, ref_findings = _reference(ann, images, ctype)
    yield from ref_findings
    groups = items(ds, "AnnotationGroupSequence")
    if not groups:
        yield finding(
            "ANN-structure",
            "Annotation Group Sequence is missing or empty",
            attribute="AnnotationGroupSequence",
            **where,
        )
        return
    for n, g in enumerate(groups, start=1):
        number_ = integer(g, "AnnotationGroupNumber")
        gw = {"file": ann.name, "group": number_ if number_ is not None else n}
        if number_ != n:
            yield finding(
                "ANN-structure",
                f"group {n} has Annotation Group Number {number_}; groups are numbered 1, 2, ... "
                "in sequence order",
                attribute=f"AnnotationGroupSequence[{n}]/AnnotationGroupNumber",
                **gw,
            )
        group, found = _parse_group(g, n, ctype, little, gw)
        yield from found
        yield from _common_z(g, n, ctype, group, gw)
        if group is None:
            continue
        yield from _shapes(group, n, little, gw)
        yield from _measurements(g, n, group.count, little, gw)
        if group.flat is not None:
            yield from _coordinates(ann, group, n, ctype, reference, images, gw)


def _parse_group(
    g: Dataset, n: int, ctype: str, little: bool, gw: dict
) -> tuple[Group | None, list[Finding]]:
    out: list[Finding] = []
    base = f"AnnotationGroupSequence[{n}]"
    gtype = (text(g, "GraphicType") or "").upper() or None
    if gtype not in GRAPHIC_TYPES:
        out.append(
            finding(
                "ANN-structure",
                f"Graphic Type is {gtype or 'missing'}; it must be one of "
                f"{', '.join(GRAPHIC_TYPES)}",
                attribute=f"{base}/GraphicType",
                **gw,
            )
        )
    count = integer(g, "NumberOfAnnotations")
    if count is None or count < 1:
        out.append(
            finding(
                "ANN-structure",
                f"Number of Annotations is {count if count is not None else 'missing'}",
                attribute=f"{base}/NumberOfAnnotations",
                **gw,
            )
        )
    of, od = raw(g, "PointCoordinatesData"), raw(g, "DoublePointCoordinatesData")
    if (of is None) == (od is None):
        out.append(
            finding(
                "ANN-structure",
                "exactly one of Point Coordinates Data and Double Point Coordinates Data is "
                f"required; {'both are' if of is not None else 'neither is'} present",
                attribute=f"{base}/PointCoordinatesData",
                **gw,
            )
        )
        return None, out
    flat = _array(of, "f4", little) if of is not None else _array(od, "f8", little)
    dims = 2 if ctype == "2D" or "CommonZCoordinateValue" in g else 3
    if flat is not None and len(flat) % dims:
        out.append(
            finding(
                "ANN-structure",
                f"{len(flat)} coordinate values are not a whole number of {dims}-value points",
                attribute=f"{base}/{'Point' if of is not None else 'DoublePoint'}CoordinatesData",
                **gw,
            )
        )
        flat = None
    if flat is not None and not np.all(np.isfinite(flat)):
        out.append(finding("ANN-coordinates", "coordinates include NaN or infinite values", **gw))
        flat = None
    if gtype not in GRAPHIC_TYPES or count is None or count < 1:
        return None, out
    return Group(n, g, gtype, count, flat, dims), out


def _common_z(g: Dataset, n: int, ctype: str, group: Group | None, gw: dict) -> Iterator[Finding]:
    base = f"AnnotationGroupSequence[{n}]"
    if ctype == "2D":
        for keyword in ("CommonZCoordinateValue", "AnnotationAppliesToAllZPlanes"):
            if keyword in g:
                yield finding(
                    "ANN-common-z",
                    f"{keyword} is present in 2D annotations; it applies to 3D coordinates only",
                    attribute=f"{base}/{keyword}",
                    **gw,
                )
        return
    if "AnnotationAppliesToAllZPlanes" not in g:
        yield finding(
            "ANN-common-z",
            "3D annotations without Annotation Applies To All Z Planes (Type 1C)",
            attribute=f"{base}/AnnotationAppliesToAllZPlanes",
            **gw,
        )
    if group is None or group.flat is None or group.dims != 3 or len(group.flat) < 3:
        return
    z = group.flat.reshape(-1, 3)[:, 2]
    if np.all(z == z[0]):
        yield finding(
            "ANN-common-z",
            f"all {len(z)} points share Z = {z[0]:g} mm, which must then be factored out into "
            "Common Z Coordinate Value (points become X, Y pairs)",
            attribute=f"{base}/CommonZCoordinateValue",
            **gw,
        )


def _shapes(group: Group, n: int, little: bool, gw: dict) -> Iterator[Finding]:
    """Point counts per graphic type and the Long Primitive Point Index List."""
    base = f"AnnotationGroupSequence[{n}]"
    if group.flat is None:
        return
    d, count, gtype = group.dims, group.count, group.graphic_type
    n_points = len(group.flat) // d
    if gtype in ("POINT", "RECTANGLE", "ELLIPSE"):
        per = 1 if gtype == "POINT" else 4
        if n_points != per * count:
            yield finding(
                "ANN-point-count",
                f"{gtype}: {n_points} points for {count} annotation(s); {per} point(s) each "
                f"makes {per * count}",
                attribute=f"{base}/NumberOfAnnotations",
                **gw,
            )
        return
    lppil = _uint_list(raw(group.ds, "LongPrimitivePointIndexList"), little)
    attr = f"{base}/LongPrimitivePointIndexList"
    if lppil is None or len(lppil) == 0:
        yield finding(
            "ANN-point-index",
            f"{gtype} group without Long Primitive Point Index List (Type 1C)",
            attribute=attr,
            **gw,
        )
        return
    problems = []
    if len(lppil) != count:
        problems.append(f"{len(lppil)} entries for {count} annotations")
    if lppil[0] != 1:
        problems.append(f"the first entry is {lppil[0]}, not 1")
    if np.any(np.diff(lppil) <= 0):
        problems.append("entries do not strictly increase")
    if np.any((lppil - 1) % d):
        problems.append(f"some entries do not start a point (index - 1 is not a multiple of {d})")
    if lppil[-1] > len(group.flat) - d + 1:
        problems.append(
            f"the last entry {lppil[-1]} points past the {len(group.flat)} coordinate values"
        )
    if problems:
        yield finding("ANN-point-index", "; ".join(problems), attribute=attr, **gw)
        return
    starts = (lppil - 1) // d
    ends = np.append(starts[1:], n_points)
    sizes = ends - starts
    minimum = 2 if gtype == "POLYLINE" else 3
    short = np.nonzero(sizes < minimum)[0]
    if len(short):
        yield finding(
            "ANN-point-count",
            f"{len(short)} {gtype}(s) with fewer than {minimum} points (annotation "
            + ", ".join(f"{i + 1}: {sizes[i]} point(s)" for i in short[:SHOW])
            + ")",
            attribute=attr,
            **gw,
        )
    if gtype == "POLYGON":
        pts = group.flat.reshape(-1, d)
        closed = [
            i
            for i, (s, e) in enumerate(zip(starts, ends, strict=True))
            if e - s >= 2 and np.array_equal(pts[s], pts[e - 1])
        ]
        if closed:
            yield finding(
                "ANN-point-count",
                f"{len(closed)} POLYGON(s) repeat the first point at the end (annotation "
                + ", ".join(str(i + 1) for i in closed[:SHOW])
                + "); Bulk Annotation polygons are closed implicitly",
                attribute=f"{base}/DoublePointCoordinatesData",
                **gw,
            )


def _measurements(
    g: Dataset, n: int, count: int | None, little: bool, gw: dict
) -> Iterator[Finding]:
    if count is None:
        return
    for m, meas in enumerate(items(g, "MeasurementsSequence"), start=1):
        attr = (
            f"AnnotationGroupSequence[{n}]/MeasurementsSequence[{m}]/MeasurementValuesSequence[1]"
        )
        mv = item(meas, "MeasurementValuesSequence")
        vals = _array(raw(mv, "FloatingPointValues"), "f4", little)
        if vals is None:
            yield finding(
                "ANN-measurements",
                "measurement without Floating Point Values",
                attribute=attr,
                **gw,
            )
            continue
        index = _uint_list(raw(mv, "AnnotationIndexList"), little)
        if index is None:
            if len(vals) != count:
                yield finding(
                    "ANN-measurements",
                    f"measurement {m} has {len(vals)} values for {count} annotations (no "
                    "Annotation Index List, so one value per annotation)",
                    attribute=f"{attr}/FloatingPointValues",
                    **gw,
                )
            continue
        problems = []
        if len(index) != len(vals):
            problems.append(f"{len(vals)} values for {len(index)} Annotation Index List entries")
        if len(index) and (index.min() < 1 or index.max() > count):
            problems.append(f"indices outside 1..{count}")
        if np.any(np.diff(index) <= 0):
            problems.append("indices do not strictly increase")
        if problems:
            yield finding(
                "ANN-measurements",
                f"measurement {m}: " + "; ".join(problems),
                attribute=f"{attr}/AnnotationIndexList",
                **gw,
            )


def _reference(
    ann: Instance, images: list[Instance], ctype: str
) -> tuple[Instance | None, list[Finding]]:
    """The referenced image (2D), checked to exist among the inputs and share the Frame of
    Reference."""
    out: list[Finding] = []
    ds = ann.ds
    where = {"file": ann.name}
    refs = items(ds, "ReferencedImageSequence")
    ann_for = uid(ds, "FrameOfReferenceUID")
    if ctype == "3D":
        if not ann_for:
            out.append(
                finding(
                    "ANN-referenced-image",
                    "3D annotations without Frame of Reference UID: the slide coordinates have no "
                    "frame",
                    attribute="FrameOfReferenceUID",
                    **where,
                )
            )
        return None, out
    if len(refs) != 1:
        out.append(
            finding(
                "ANN-referenced-image",
                f"2D annotations reference {len(refs)} images; exactly one is required",
                attribute="ReferencedImageSequence",
                **where,
            )
        )
        if not refs:
            return None, out
    ref_uid = uid(refs[0], "ReferencedSOPInstanceUID")
    by_uid = {uid(i.ds, "SOPInstanceUID"): i for i in images}
    target = by_uid.get(ref_uid)
    if target is None:
        study = uid(ds, "StudyInstanceUID")
        same_study = [i for i in images if i.is_wsi and uid(i.ds, "StudyInstanceUID") == study]
        out.append(
            finding(
                "ANN-referenced-image",
                f"the referenced image {ref_uid} is not among the checked files"
                + (
                    ", which include images of the same study"
                    if same_study
                    else "; check it together with its images to verify the coordinates"
                ),
                severity=Severity.ERROR if same_study else Severity.WARNING,
                attribute="ReferencedImageSequence[1]/ReferencedSOPInstanceUID",
                **where,
            )
        )
        return None, out
    if not target.is_wsi or target.flavour not in (None, "VOLUME"):
        out.append(
            finding(
                "ANN-referenced-image",
                f"the referenced image {target.name} is not a VOLUME whole slide image "
                f"({target.flavour or target.sop_class})",
                attribute="ReferencedImageSequence[1]/ReferencedSOPInstanceUID",
                **where,
            )
        )
    target_for = uid(target.ds, "FrameOfReferenceUID")
    if ann_for and target_for and ann_for != target_for:
        out.append(
            finding(
                "ANN-referenced-image",
                f"Frame of Reference UID {ann_for} differs from the referenced image's "
                f"{target_for}",
                attribute="FrameOfReferenceUID",
                **where,
            )
        )
    return target, out


def _coordinates(
    ann: Instance,
    group: Group,
    n: int,
    ctype: str,
    reference: Instance | None,
    images: list[Instance],
    gw: dict,
) -> Iterator[Finding]:
    pts = group.flat.reshape(-1, group.dims)
    attr = f"AnnotationGroupSequence[{n}]/" + (
        "PointCoordinatesData"
        if "PointCoordinatesData" in group.ds
        else "DoublePointCoordinatesData"
    )
    if ctype == "2D":
        if reference is None:
            return
        origin = (text(ann.ds, "PixelOriginInterpretation") or "VOLUME").upper()
        if origin == "FRAME":
            w, h = integer(reference.ds, "Columns"), integer(reference.ds, "Rows")
            frame_of = "frame (Columns x Rows)"
        else:
            w, h = reference.matrix or (None, None)
            frame_of = "total pixel matrix"
        if w is None or h is None:
            return
        bad = (pts[:, 0] < 0) | (pts[:, 0] > w) | (pts[:, 1] < 0) | (pts[:, 1] > h)
        if np.any(bad):
            first = np.nonzero(bad)[0][:SHOW]
            yield finding(
                "ANN-coordinates",
                f"{int(bad.sum())} of {len(pts)} points lie outside the referenced {frame_of} "
                f"[0, {w}] x [0, {h}] of {reference.name}: "
                + ", ".join(f"({pts[i, 0]:g}, {pts[i, 1]:g})" for i in first),
                attribute=attr,
                **gw,
            )
        return
    ann_for = uid(ann.ds, "FrameOfReferenceUID")
    candidates = [
        i
        for i in images
        if i.is_wsi
        and i.flavour in (None, "VOLUME")
        and i.matrix
        and uid(i.ds, "FrameOfReferenceUID") == ann_for
    ]
    if not candidates:
        yield finding(
            "ANN-coordinates",
            "no VOLUME image of this Frame of Reference among the checked files: 3D coordinates "
            "not checked",
            severity=Severity.INFO,
            **gw,
        )
        return
    image = max(candidates, key=lambda i: i.matrix[0] * i.matrix[1])
    mapped = _to_pixels(image, pts[:, :2])
    if mapped is None:
        return
    w, h = image.matrix
    col, row = mapped
    bad = (col < -1) | (col > w + 1) | (row < -1) | (row > h + 1)
    if np.any(bad):
        first = np.nonzero(bad)[0][:SHOW]
        yield finding(
            "ANN-coordinates",
            f"{int(bad.sum())} of {len(pts)} points lie outside the imaged area of {image.name} "
            f"({w} x {h} pixels): "
            + ", ".join(f"({pts[i, 0]:g}, {pts[i, 1]:g}) mm" for i in first),
            attribute=attr,
            **gw,
        )
    depth = number(image.ds, "ImagedVolumeDepth")
    zs = (
        pts[:, 2]
        if group.dims == 3
        else np.asarray(values(group.ds, "CommonZCoordinateValue"), float)
    )
    if depth and len(zs) and (np.any(zs < -1e-6) or np.any(zs > depth / 1000.0 + 1e-6)):
        yield finding(
            "ANN-coordinates",
            f"Z coordinates {zs.min():g}..{zs.max():g} mm lie outside the imaged depth "
            f"0..{depth / 1000.0:g} mm",
            severity=Severity.WARNING,
            attribute=attr,
            **gw,
        )


def _to_pixels(image: Instance, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Slide (x, y) mm -> continuous (column, row) of ``image`` (PS3.3 C.8.12.14)."""
    o = item(image.ds, "TotalPixelMatrixOriginSequence")
    x0, y0 = (
        number(o, "XOffsetInSlideCoordinateSystem"),
        number(o, "YOffsetInSlideCoordinateSystem"),
    )
    orient = numbers(image.ds, "ImageOrientationSlide")
    spacing = pixel_spacing(image.ds)
    if x0 is None or y0 is None or not orient or len(orient) != 6 or spacing is None:
        return None
    (row_sp, col_sp), _ = spacing
    d = xy - np.array([x0, y0])
    col = (d[:, 0] * orient[0] + d[:, 1] * orient[1]) / col_sp
    row = (d[:, 0] * orient[3] + d[:, 1] * orient[4]) / row_sp
    return col, row
