"""Read a million OME ROIs in seconds: the text is scanned, not parsed element by element.

Whole-slide detections repeat one pattern: every ROI has the same elements and attribute
names, and only the attribute values differ. The scanner splits the ROI text (cut out by
:mod:`.section`) into attribute *values* and a *skeleton* (the text with every double-quoted
value emptied) in one regular-expression pass, cuts the skeleton at each ``</ROI>``, and
parses each distinct skeleton once with lxml. That parse checks the structure, and says which
value is which attribute of which element. The values are then read as whole columns
(numpy), per skeleton and per shape position, and grouped as :class:`ome_rois._Reader` groups
them: by graphic type, OME shape, label, colour, TheZ, TheC, description and group record.

The scanner is a fast path, not a second reader. When a document is anything but plain
(comments or CDATA among the ROIs, element prefixes, many distinct skeletons, a shape with no
DICOM counterpart, a value that is not a finite number, a polygon that is too short, ...) it
raises :class:`Fallback` and the caller reads the document with the streaming lxml reader,
which has the complete rules and messages. The tests check that both give the same groups.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..model import GraphicType
from . import shapes
from .section import RoiSplit

#: Text scanned per step: bounds the memory of the value and skeleton lists.
CHUNK_CHARS = 4 << 20
#: Document order of a shape is ``object * POSITIONS + position in its Union``.
POSITIONS = 1 << 20
#: More distinct skeletons than this (and than 1 % of the ROIs) means the document is not
#: regular enough for the scanner to pay off.
MAX_SKELETONS = 256

_ROI_REF = re.compile(r"<(?:\w+:)?ROIRef\b")
_ENTITY = re.compile(r"&(?:#x([0-9a-fA-F]+)|#([0-9]+)|(lt|gt|amp|quot|apos));")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


class Fallback(Exception):
    """The document is not plain enough for the scanner; read it with the lxml reader."""


def _attribute_value(raw: str) -> str:
    """An attribute's value as XML defines it: whitespace normalised, references resolved."""
    if "\t" in raw or "\n" in raw or "\r" in raw:
        raw = raw.replace("\r\n", " ").replace("\t", " ").replace("\n", " ").replace("\r", " ")
    if "&" not in raw:
        return raw

    def resolve(m: re.Match[str]) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        if m.group(2):
            return chr(int(m.group(2)))
        return _NAMED[m.group(3)]

    return _ENTITY.sub(resolve, raw)


class _ShapePlan:
    def __init__(self, position: int, kind: str, attrs: dict[str, int]):
        self.position = position
        self.kind = kind
        self.attrs = attrs
        self.transform: dict[str, int] | None = None
        self.refs: list[int | None] = []


class _Plan:
    """What one distinct skeleton holds: the value column of each attribute of its ROI and of
    its shapes, and what its shapes are."""

    def __init__(self, skeleton: str, namespace: str):
        from lxml import etree

        try:
            wrapper = etree.fromstring(
                f'<w xmlns="{namespace}">{skeleton}</ROI></w>'.encode(),
                etree.XMLParser(remove_comments=False, resolve_entities=False),
            )
        except etree.XMLSyntaxError as exc:
            raise Fallback(f"skeleton does not parse: {exc}") from None
        if len(wrapper) != 1 or (wrapper.text or "").strip():
            raise Fallback("text around an ROI element")
        roi = wrapper[0]
        counter = iter(range(1 << 30))
        expected = skeleton.count('""')
        slots: dict[Any, dict[str, int]] = {}  # element -> attribute -> value column
        for el in roi.iter():
            if not isinstance(el.tag, str):
                raise Fallback("comment or processing instruction")
            local = etree.QName(el).localname
            if etree.QName(el).namespace != namespace:
                raise Fallback(f"element {local} in another namespace")
            mine: dict[str, int] = {}
            for name, value in el.attrib.items():
                if "}" in name:
                    raise Fallback("namespaced attribute")
                if value != "":  # single-quoted: lxml has resolved it already, unlike columns
                    raise Fallback("single-quoted attribute")
                mine[name] = next(counter)  # an emptied value: a column
            slots[el] = mine  # the key keeps the proxy alive, so later lookups find it
        self.values = sum(len(s) for s in slots.values())
        if self.values != expected:  # a stray quote in text or in a single-quoted value
            raise Fallback("value count mismatch")
        if etree.QName(roi).localname != "ROI":
            raise Fallback("not an ROI element")
        self.roi = slots[roi]
        self.description: str | None = None
        self.roi_refs: list[int | None] = []
        self.shapes: list[_ShapePlan] = []
        unions = 0
        for child in roi:
            local = etree.QName(child).localname
            if local == "Union":
                unions += 1
                for position, shape in enumerate(child):
                    kind = etree.QName(shape).localname
                    if kind not in shapes.OME_SHAPES:
                        raise Fallback(f"shape {kind}")
                    plan = _ShapePlan(position, kind, slots[shape])
                    for part in shape:
                        part_name = etree.QName(part).localname
                        if part_name == "Transform":
                            plan.transform = slots[part]
                        elif part_name == "AnnotationRef":
                            plan.refs.append(slots[part].get("ID"))
                        else:
                            raise Fallback(f"{part_name} in a shape")
                    self.shapes.append(plan)
            elif local == "Description":
                self.description = child.text or None
            elif local == "AnnotationRef":
                self.roi_refs.append(slots[child].get("ID"))
            else:
                raise Fallback(f"{local} in an ROI")
        if unions > 1:
            raise Fallback("several Unions")
        if len(self.shapes) >= POSITIONS:
            raise Fallback("too many shapes in one ROI")


class _Columns:
    """The value columns of the ROIs of one skeleton in one chunk."""

    def __init__(self, values: np.ndarray, starts: np.ndarray):
        self.values = values  # object array of str, the chunk's values in order
        self.starts = starts  # first value of each ROI (of this skeleton)

    def text(self, column: int | None) -> list[Any]:
        """The values of one attribute (None for ROIs without it)."""
        if column is None:
            return [None] * len(self.starts)
        return self.values[self.starts + column].tolist()

    def numbers(self, column: int | None, name: str) -> np.ndarray:
        if column is None:
            raise Fallback(f"attribute {name} is missing")
        try:
            out = self.values[self.starts + column].astype(np.float64)
        except ValueError:
            raise Fallback(f"bad {name}") from None
        if not np.all(np.isfinite(out)):
            raise Fallback(f"{name} not finite")
        return out


def _geometry(
    kind: str, plan: _ShapePlan, cols: _Columns
) -> tuple[GraphicType, np.ndarray, np.ndarray]:
    """(graphic type, flat (P, 2) coordinates, points per shape) of one shape position."""
    n = len(cols.starts)
    attr = plan.attrs

    def num(name: str) -> np.ndarray:
        return cols.numbers(attr.get(name), name)

    t = None
    if plan.transform is not None:
        t = [
            cols.numbers(plan.transform[k], k) if k in plan.transform else np.full(n, default)
            for k, default in shapes.TRANSFORM_DEFAULTS
        ]
    if kind in ("Polyline", "Polygon"):
        texts = cols.text(attr.get("Points"))
        parts = []
        lengths = np.empty(n, dtype=np.int64)
        for i, text in enumerate(texts):
            try:
                pts = shapes.parse_points(_attribute_value(text or ""))
            except ValueError:
                raise Fallback("bad Points") from None
            if kind == "Polygon" and len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
                pts = pts[:-1]
            if len(pts) < (3 if kind == "Polygon" else 2) or not np.all(np.isfinite(pts)):
                raise Fallback("short or non-finite Points")
            if t is not None:
                pts = shapes.apply(pts, tuple(float(a[i]) for a in t))  # type: ignore[arg-type]
            parts.append(pts)
            lengths[i] = len(pts)
        graphic = GraphicType.POLYGON if kind == "Polygon" else GraphicType.POLYLINE
        coords = np.concatenate(parts) if parts else np.zeros((0, 2))
        return graphic, coords, lengths
    if kind == "Point":
        pts = np.stack((num("X"), num("Y")), axis=1)[:, None, :]
        graphic = GraphicType.POINT
    elif kind == "Line":
        pts = np.stack(
            (np.stack((num("X1"), num("Y1")), 1), np.stack((num("X2"), num("Y2")), 1)), 1
        )
        graphic = GraphicType.POLYLINE
    elif kind == "Rectangle":
        x, y, w, h = num("X"), num("Y"), num("Width"), num("Height")
        pts = np.stack(
            (np.stack((x, y), 1), np.stack((x + w, y), 1), np.stack((x + w, y + h), 1),
             np.stack((x, y + h), 1)),
            1,
        )  # fmt: skip
        graphic = GraphicType.RECTANGLE
        if t is not None:  # a transformed rectangle may be sheared: decide per shape
            out = []
            for i in range(n):
                corners = shapes.apply(pts[i], tuple(float(a[i]) for a in t))  # type: ignore[arg-type]
                if not shapes.is_rectangle(corners):
                    raise Fallback("sheared rectangle")
                out.append(corners)
            return graphic, np.concatenate(out) if out else np.zeros((0, 2)), np.full(n, 4)
    else:  # Ellipse
        x, y, rx, ry = num("X"), num("Y"), num("RadiusX"), num("RadiusY")
        if t is not None:
            out = [
                shapes.ellipse_axes(
                    float(x[i]), float(y[i]), float(rx[i]), float(ry[i]),
                    tuple(float(a[i]) for a in t),  # type: ignore[arg-type]
                )
                for i in range(n)
            ]  # fmt: skip
            return (
                GraphicType.ELLIPSE,
                np.concatenate(out) if out else np.zeros((0, 2)),
                np.full(n, 4),
            )
        horizontal = np.stack((np.stack((x - rx, y), 1), np.stack((x + rx, y), 1)), 1)
        vertical = np.stack((np.stack((x, y - ry), 1), np.stack((x, y + ry), 1)), 1)
        wide = (rx >= ry)[:, None, None]
        pts = np.concatenate(
            (np.where(wide, horizontal, vertical), np.where(wide, vertical, horizontal)), 1
        )
        graphic = GraphicType.ELLIPSE
    if t is not None:
        a00, a01, a02, a10, a11, a12 = (a[:, None] for a in t)
        px, py = pts[..., 0], pts[..., 1]
        pts = np.stack((a00 * px + a01 * py + a02, a10 * px + a11 * py + a12), -1)
        if not np.all(np.isfinite(pts)):
            raise Fallback("not finite after Transform")
    per = pts.shape[1]
    return graphic, pts.reshape(-1, 2), np.full(n, per, dtype=np.int64)


def _chunks(split: RoiSplit) -> Iterator[str]:
    """The ROI text in pieces of about CHUNK_CHARS that end at an ROI end tag."""
    text, position, end = split.text, split.start, split.end
    while position < end:
        stop = min(position + CHUNK_CHARS, end)
        if stop < end:
            cut = text.find("</ROI>", stop)
            stop = end if cut < 0 or cut + 6 > end else cut + 6
        yield text[position:stop]
        position = stop


class _Piece:
    """Shapes of one group from one (chunk, skeleton, shape position)."""

    __slots__ = ("coords", "lengths", "objects", "order", "values")

    def __init__(self, coords, lengths, objects, order, values):
        self.coords = coords
        self.lengths = lengths
        self.objects = objects
        self.order = order  # (object, shape position) sort key
        self.values = values  # list of dicts (or None) per shape, or None


def scan(split: RoiSplit, reader: Any, namespace: str) -> None:
    """Fill ``reader`` (an ``ome_rois._Reader`` whose MapAnnotations are read) with the groups
    of the ROIs in ``split``, as its ``roi`` method would, or raise :class:`Fallback`."""
    if split.prefix:
        raise Fallback("element prefix")
    if _ROI_REF.search(split.head):  # e.g. in MicrobeamManipulation: the full reader counts it
        raise Fallback("an ROIRef outside the Images")
    if split.images > 1 and any("&" in r for r in split.refs):
        raise Fallback("a character reference in an ROIRef")
    plans: dict[str, _Plan] = {}
    pieces: dict[tuple, list[_Piece]] = {}
    other_t: list[tuple[int, str]] = []
    image_refs = [set(split.ref_ids(i)) for i in range(split.images)] if split.images > 1 else []
    objects_seen = 0
    multi_shape = False
    for chunk in _chunks(split):
        if "<!" in chunk or "<?" in chunk:
            raise Fallback("markup declaration among the ROIs")
        # every double quote delimits an attribute value (a stray one fails the checks below)
        parts = chunk.split('"')
        if len(parts) % 2 == 0:
            raise Fallback("odd number of quotes")
        values = np.array(parts[1::2], dtype=object)
        skeletons = '""'.join(parts[0::2]).split("</ROI>")
        del parts
        if skeletons.pop().strip():
            raise Fallback("text after the last ROI")
        index: dict[str, int] = {}
        if len(set(skeletons)) == 1:
            index[skeletons[0]] = 0
            kinds = np.zeros(len(skeletons), dtype=np.int64)
        else:
            kinds = np.fromiter(
                (index.setdefault(s, len(index)) for s in skeletons), np.int64, len(skeletons)
            )
        keys = list(index)
        if len(set(plans) | set(keys)) > MAX_SKELETONS and len(index) * 100 > len(skeletons):
            raise Fallback("too many distinct ROI layouts")
        chunk_plans = [_plan(plans, k, namespace) for k in keys]
        counts = np.array([p.values for p in chunk_plans], dtype=np.int64)[kinds]
        if int(counts.sum()) != len(values):
            raise Fallback("values and skeletons disagree")
        starts = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        belongs = _belongs(reader, chunk_plans, kinds, values, starts, image_refs)
        obj = np.cumsum(belongs) - 1 + objects_seen
        objects_seen += int(belongs.sum())
        for k, plan in enumerate(chunk_plans):
            rows = np.flatnonzero((kinds == k) & belongs)
            if not len(rows):
                continue
            if len(plan.shapes) > 1:
                multi_shape = True
            cols = _Columns(values, starts[rows])
            name = cols.text(plan.roi.get("Name"))
            roi_refs = [cols.text(s) for s in plan.roi_refs]
            for shape in plan.shapes:
                _add_shape(shape, plan, cols, obj[rows], name, roi_refs, reader, pieces, other_t)
    reader.rois = objects_seen
    reader.multi_shape = multi_shape
    reader.other_t.extend(text for _, text in sorted(other_t))
    # groups in the order their first shape appears in the document, as the full reader has them
    first = {key: min(int(p.order[0]) for p in found) for key, found in pieces.items()}
    for key in sorted(pieces, key=first.__getitem__):
        reader.groups[key] = _accumulate(pieces[key])
    if reader.groups:  # the reader's cache of its last group must not point elsewhere
        reader._last = reader._last_acc = None


def _belongs(
    reader: Any,
    plans: list[_Plan],
    kinds: np.ndarray,
    values: np.ndarray,
    starts: np.ndarray,
    image_refs: list[set[str]],
) -> np.ndarray:
    """Which ROIs of a chunk belong to the reader's Image (``ome_rois._Reader._belongs``)."""
    n = len(kinds)
    if len(image_refs) <= 1:
        return np.full(n, reader.image_index == 0)
    ids: list[Any] = [None] * n
    for k, plan in enumerate(plans):
        rows = np.flatnonzero(kinds == k)
        found = _Columns(values, starts[rows]).text(plan.roi.get("ID"))
        for r, v in zip(rows.tolist(), found, strict=True):
            ids[r] = _attribute_value(v) if v else None
    if None in ids:
        raise Fallback("an ROI without ID in a document with several Images")
    index = reader.image_index
    mine = image_refs[index] if index < len(image_refs) else set()
    belongs = np.zeros(n, dtype=bool)
    for r, roi_id in enumerate(ids):
        if roi_id in mine:
            belongs[r] = True
        elif not any(roi_id in refs for refs in image_refs) and index == 0:
            reader.unreferenced.append(roi_id)
            belongs[r] = True
    return belongs


def _plan(plans: dict[str, _Plan], skeleton: str, namespace: str) -> _Plan:
    plan = plans.get(skeleton)
    if plan is None:
        plan = plans[skeleton] = _Plan(skeleton, namespace)
    return plan


def _add_shape(
    shape: _ShapePlan,
    plan: _Plan,
    cols: _Columns,
    obj: np.ndarray,
    name: list[Any],
    roi_refs: list[list[Any]],
    reader: Any,
    pieces: dict[tuple, list[_Piece]],
    other_t: list[tuple[int, str]],
) -> None:
    """Add the shapes at one position of one skeleton's ROIs to their groups."""
    n = len(cols.starts)
    graphic, coords, lengths = _geometry(shape.kind, shape, cols)
    if not np.all(np.isfinite(coords)):  # e.g. X + Width beyond float range
        raise Fallback("a coordinate is not finite")
    group_maps, value_maps = reader.group_maps, reader.value_maps
    meta: list[Any] = [None] * n
    values: list[Any] | None = None
    for column in roi_refs + [cols.text(s) for s in shape.refs]:  # ROI refs, then the shape's
        distinct = set(column)
        if any(r and "&" in r for r in distinct):  # IDs are compared as lxml reads them
            raise Fallback("a character reference in an AnnotationRef ID")
        metas = {r for r in distinct if r in group_maps}
        if metas:
            pairs = zip(meta, column, strict=True)
            meta = [m if m is not None or r not in metas else r for m, r in pairs]
        if any(value_maps.get(r) for r in distinct):
            values = values or [None] * n
            for i, r in enumerate(column):
                found = value_maps.get(r)
                if found:
                    values[i] = {**(values[i] or {}), **found}
    attrs = shape.attrs
    the_t = cols.text(attrs.get("TheT"))
    columns_of = (
        name,
        cols.text(attrs.get("Text")),
        cols.text(attrs.get("StrokeColor")),
        cols.text(attrs.get("FillColor")),
        cols.text(attrs.get("TheZ")),
        cols.text(attrs.get("TheC")),
        the_t,
        meta,
    )
    columns = zip(*columns_of, strict=True)
    cache: dict[tuple, tuple] = {}
    rows: dict[tuple, list[int]] = {}
    distinct = set(columns)
    if len(distinct) == 1:  # the usual case: one group for all of them
        raw = distinct.pop()
        key = cache[raw] = _key(raw, shape.kind, graphic, plan.description)
        rows[key] = list(range(n))
    else:
        for i, raw in enumerate(zip(*columns_of, strict=True)):
            key = cache.get(raw)
            if key is None:
                key = cache[raw] = _key(raw, shape.kind, graphic, plan.description)
            rows.setdefault(key, []).append(i)
    if any(_int(t) for t in set(the_t)):  # DICOM has no time axis: say which shapes lose TheT
        roi_ids = cols.text(plan.roi.get("ID"))
        shape_ids = cols.text(attrs.get("ID"))
        order = obj * POSITIONS + shape.position
        for i, t in enumerate(the_t):
            if _int(t):
                roi = _attribute_value(roi_ids[i]) if roi_ids[i] else f"#{int(obj[i])}"
                shape_id = _attribute_value(shape_ids[i]) if shape_ids[i] else "?"
                other_t.append((int(order[i]), f"{roi}/{shape_id}"))
    ends = np.cumsum(lengths)
    begins = ends - lengths
    for key, members in rows.items():
        m = np.asarray(members, dtype=np.int64)
        if len(m) == n:
            c, ln = coords, lengths
        else:
            ln = lengths[m]
            take = np.repeat(begins[m] - np.concatenate(([0], np.cumsum(ln)[:-1])), ln)
            c = coords[take + np.arange(int(ln.sum()))]
        o = obj[m]
        pieces.setdefault(key, []).append(
            _Piece(
                c, ln, o, o * POSITIONS + shape.position,
                [values[i] for i in members] if values is not None else None,
            )
        )  # fmt: skip


def _int(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except ValueError:
        raise Fallback("an integer attribute is not one") from None


def _key(raw: tuple, kind: str, graphic: GraphicType, description: str | None) -> tuple:
    """The ome_rois._Reader group key of one shape's raw attribute values."""
    from .ome_rois import label_and_colour

    name, text, stroke, fill, the_z, the_c, _the_t, meta = raw
    name = _attribute_value(name) if name else None
    text = _attribute_value(text) if text else None
    try:
        label, label_source, color, color_source = label_and_colour(kind, name, text, stroke, fill)
    except ValueError:
        raise Fallback("bad colour") from None
    z, c = _int(the_z), _int(the_c)
    return (graphic, kind, label, label_source, color, color_source, z, c, description, meta)


def _accumulate(found: list[_Piece]) -> Any:
    """One group's pieces, in document order, as a GroupAccumulator of arrays."""
    import math

    from .shapes import GroupAccumulator

    order = np.concatenate([p.order for p in found])
    lengths = np.concatenate([p.lengths for p in found])
    objects = np.concatenate([p.objects for p in found])
    coords = np.concatenate([p.coords for p in found])
    perm = np.argsort(order, kind="stable")
    if np.any(perm != np.arange(len(perm))):
        ends = np.cumsum(lengths)
        begins = ends - lengths
        ln = lengths[perm]
        take = np.repeat(begins[perm] - np.concatenate(([0], np.cumsum(ln)[:-1])), ln)
        coords = coords[take + np.arange(int(ln.sum()))]
        lengths, objects = ln, objects[perm]
    acc = GroupAccumulator()
    acc.coords = np.ascontiguousarray(coords, dtype=np.float64).ravel()  # type: ignore[assignment]
    acc.lengths = lengths.astype(np.int64)  # type: ignore[assignment]
    acc.objects = objects.astype(np.int64)  # type: ignore[assignment]
    if any(p.values is not None for p in found):
        rows: list[Any] = []
        for p in found:
            rows.extend(p.values if p.values is not None else [None] * len(p.lengths))
        rows = [rows[i] for i in perm.tolist()]
        names: dict[str, None] = {}
        for r in rows:
            if r:
                names.update(dict.fromkeys(r))
        acc.measurements = {
            name: np.array(
                [r.get(name, math.nan) if r else math.nan for r in rows], dtype=np.float64
            )
            for name in names
        }  # type: ignore[assignment]
    return acc
