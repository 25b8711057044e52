"""Checks of OME ROIs (ROI schema of OME 2016-06; docs developers/roi.rst); MAPPING.md G14.

Shape coordinates are pixels of the Image that references the ROI (Image/ROIRef), corner origin,
x = column, y = row; a shape's optional Transform (A00 A10 A01 A11 A02 A12) maps them first.
Rectangle X/Y is the top-left corner, Ellipse X/Y its centre; an ellipse is checked at the ends
of its two axes. TheZ/TheC/TheT are 0-based and optional (absent = all planes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from lxml import etree

from .catalog import finding
from .findings import Finding, Severity

if TYPE_CHECKING:
    from .ome import OmeImage

SHAPES = ("Point", "Line", "Rectangle", "Ellipse", "Polyline", "Polygon", "Mask", "Label")
TOLERANCE = 1e-6


def _local(el: etree._Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def _f(el: etree._Element, key: str) -> float | None:
    value = el.get(key)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class BadPoints(ValueError):
    pass


def _parse_points(text: str) -> list[tuple[float, float]]:
    points = []
    for pair in text.split():
        parts = pair.split(",")
        if len(parts) != 2:
            raise BadPoints(f"{pair!r} is not an x,y pair")
        try:
            points.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise BadPoints(f"{pair!r} is not two numbers") from None
    return points


def points_of(shape: etree._Element) -> list[tuple[float, float]]:
    """The points that must lie inside the image, before the Transform."""
    kind = _local(shape)
    if kind in ("Point", "Label"):
        x, y = _f(shape, "X"), _f(shape, "Y")
        return [(x, y)] if x is not None and y is not None else []
    if kind == "Line":
        vals = [_f(shape, k) for k in ("X1", "Y1", "X2", "Y2")]
        return [(vals[0], vals[1]), (vals[2], vals[3])] if None not in vals else []
    if kind in ("Rectangle", "Mask"):
        x, y, w, h = (_f(shape, k) for k in ("X", "Y", "Width", "Height"))
        if None in (x, y, w, h):
            return []
        return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    if kind == "Ellipse":
        x, y, rx, ry = (_f(shape, k) for k in ("X", "Y", "RadiusX", "RadiusY"))
        if None in (x, y, rx, ry):
            return []
        return [(x - rx, y), (x + rx, y), (x, y - ry), (x, y + ry)]
    if kind in ("Polyline", "Polygon"):
        return _parse_points(shape.get("Points") or "")
    return []


def _transform(shape: etree._Element, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    t = next((c for c in shape if _local(c) == "Transform"), None)
    if t is None:
        return pts
    a = {k: _f(t, k) for k in ("A00", "A10", "A01", "A11", "A02", "A12")}
    if None in a.values():
        return pts
    return [
        (a["A00"] * x + a["A01"] * y + a["A02"], a["A10"] * x + a["A11"] * y + a["A12"])
        for x, y in pts
    ]


def check(root: etree._Element, images: list[OmeImage], file: str) -> Iterator[Finding]:
    """Every shape of every ROI against every Image that references it."""
    rois = {r.get("ID"): r for r in root if _local(r) == "ROI"}
    if not rois:
        return
    users: dict[str, list[OmeImage]] = {rid: [] for rid in rois}
    for image in images:
        for ref in image.element:
            if _local(ref) == "ROIRef" and ref.get("ID") in users:
                users[ref.get("ID")].append(image)
    for rid, roi in rois.items():
        targets = users[rid]
        if not targets and len(images) == 1:
            targets = images  # an unreferenced ROI of a single-image file belongs to that image
        if not targets:
            yield finding(
                "OME-roi-coordinates",
                f"{rid} is referenced by no Image (Image/ROIRef): its coordinates cannot be "
                "checked",
                severity=Severity.WARNING,
                file=file,
                attribute=f"ROI[@ID='{rid}']",
            )
            continue
        for shape in (s for u in roi if _local(u) == "Union" for s in u):
            kind = _local(shape)
            if kind not in SHAPES:
                continue
            attr = f"ROI[@ID='{rid}']/Union/{kind}[@ID='{shape.get('ID')}']"
            try:
                pts = points_of(shape)
            except BadPoints as exc:
                yield finding("OME-roi-points", f"{kind} Points: {exc}", file=file, attribute=attr)
                continue
            if kind == "Polygon" and len(pts) < 3:
                yield finding(
                    "OME-roi-points",
                    f"Polygon with {len(pts)} point(s); at least 3 are needed",
                    file=file,
                    attribute=attr,
                )
            if kind == "Polyline" and len(pts) < 2:
                yield finding(
                    "OME-roi-points",
                    f"Polyline with {len(pts)} point(s); at least 2 are needed",
                    file=file,
                    attribute=attr,
                )
            pts = _transform(shape, pts)
            for image in targets:
                yield from _inside(image, kind, pts, shape, file, attr)


def _inside(image: OmeImage, kind: str, pts, shape, file: str, attr: str) -> Iterator[Finding]:
    sx, sy = image.size["X"], image.size["Y"]
    outside = [
        (x, y)
        for x, y in pts
        if not (-TOLERANCE <= x <= sx + TOLERANCE and -TOLERANCE <= y <= sy + TOLERANCE)
    ]
    if outside:
        shown = ", ".join(f"({x:g}, {y:g})" for x, y in outside[:5])
        yield finding(
            "OME-roi-coordinates",
            f"{kind} has {len(outside)} point(s) outside Image {image.id} [0, {sx}] x [0, {sy}]: "
            f"{shown}",
            file=file,
            image=image.id,
            attribute=attr,
        )
    limits = {"TheZ": image.size["Z"], "TheC": image.size["C"], "TheT": image.size["T"]}
    for key, limit in limits.items():
        value = shape.get(key)
        if value is None:
            continue
        try:
            index = int(value)
        except ValueError:
            index = -1
        if not 0 <= index < limit:
            yield finding(
                "OME-roi-planes",
                f"{kind} {key}={value} is outside 0..{limit - 1} of Image {image.id}",
                file=file,
                image=image.id,
                attribute=f"{attr}/@{key}",
            )
