"""OME ROIs (OME 2016-06 ``ROI``, ``Union``, shapes, ``Transform``) <-> annotation groups.

Reading (:func:`rois_from_ome_xml`) streams the document with lxml ``iterparse`` so that a
million shapes never become a million Python objects: coordinates go straight into flat
arrays. Documents in an older OME schema (e.g. 2010-06, where shapes sat inside ``Shape``) are
first upgraded with ome-types' OME XSLT transforms (``ensure_2016``).

Mapping (MAPPING.md 3.5, issue "annotations both ways"):

=========================  ================================================================
OME                        annotation group
=========================  ================================================================
Point X,Y                  POINT
Line X1,Y1,X2,Y2           POLYLINE of 2 points (``ome:shape`` = Line, to come back a Line)
Polyline Points            POLYLINE
Polygon Points             POLYGON, a closing point equal to the first dropped
Rectangle X,Y,W,H          RECTANGLE, corners TL, TR, BR, BL (a sheared one: POLYGON)
Ellipse X,Y,RX,RY          ELLIPSE, major-axis endpoints then minor-axis endpoints
Transform                  applied to the coordinates
ROI Name (else Text)       group label; ROI Description: group description
StrokeColor (else Fill)    group colour (alpha dropped)
TheZ / TheC                ``z`` / ``channel``; TheT has no DICOM home (warning if > 0)
Mask, Label                no DICOM counterpart: skipped with a warning that names them (they
                           stay in the OME-XML carrier)
=========================  ================================================================

Shapes are grouped by (graphic type, OME shape, label, colour, TheZ, TheC, description and
the omedicom group record below). The way back (:func:`rois_xml`, :func:`insert_rois`) writes
one ROI per source object (each annotation, or the parts of one object) and records what OME
has no attribute for in two MapAnnotation namespaces:

* :data:`GROUP_NS`, referenced from every shape of a group: Annotation Group UID, label,
  graphic type, property category/type codes ``(value, scheme, "meaning")``, generation type,
  algorithm, the coded name and unit of each measurement, provenance facts;
* :data:`MEASUREMENTS_NS`, one per shape that has values: ``K`` = measurement name, value.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..errors import MetadataError
from ..model import AnnotationGroup, GraphicType
from . import codes, section, shapes

OME_2016_06 = section.OME_2016_06
GROUP_NS = "urn:omedicom:annotation-group:1"
MEASUREMENTS_NS = "urn:omedicom:annotation-measurements:1"

_MEASUREMENT_DEF = re.compile(r'^(\(.*?"\))\s+in\s+(\(.*"\))$', re.S)


_LOCAL: dict[Any, str] = {}


def _local(tag: Any) -> str:
    """Local name of an element tag (``{namespace}Name`` -> ``Name``); "" for comments."""
    name = _LOCAL.get(tag)
    if name is None:
        name = tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""
        if len(_LOCAL) < 256:
            _LOCAL[tag] = name
    return name


_COLORS: dict[str | None, tuple[int, int, int] | None] = {}


def _rgb(value: str | None) -> tuple[int, int, int] | None:
    found = _COLORS.get(value, False)
    if found is False:
        found = codes.rgb_from_ome(value)
        if len(_COLORS) < 4096:
            _COLORS[value] = found
    return found  # type: ignore[return-value]


def label_and_colour(
    kind: str, name: str | None, text: str | None, stroke: str | None, fill: str | None
) -> tuple[str, str, tuple[int, int, int] | None, str]:
    """(label, its source, colour, its source) of a shape: the ROI Name, else the shape's Text,
    else the shape kind; StrokeColor, else FillColor (both readers group by these)."""
    if name:
        label, label_source = name, "name"
    elif text:
        label, label_source = text, "text"
    else:
        label, label_source = kind, "none"
    color, color_source = _rgb(stroke), "stroke"
    if color is None:
        color, color_source = _rgb(fill), "fill"
    if color is None:
        color_source = "none"
    return label, label_source, color, color_source


def _float(el: Any, key: str) -> float:
    value = el.get(key)
    if value is None:
        raise ValueError(f"attribute {key} is missing")
    return float(value)


def _int(el: Any, key: str) -> int | None:
    value = el.get(key)
    return int(value) if value not in (None, "") else None


# -- reading ---------------------------------------------------------------------------------


@dataclass
class _GroupMeta:
    """What an omedicom group MapAnnotation says."""

    values: dict[str, str] = field(default_factory=dict)

    def code(self, key: str) -> codes.Code | None:
        return codes.parse_code_text(self.values.get(key))

    def measurement(self, name: str) -> tuple[codes.Code, codes.Code] | None:
        match = _MEASUREMENT_DEF.match(self.values.get(f"Measurement:{name}", ""))
        if not match:
            return None
        found = codes.parse_code_text(match.group(1)), codes.parse_code_text(match.group(2))
        return found if found[0] and found[1] else None  # type: ignore[return-value]


@dataclass(frozen=True)
class _Key:
    graphic_type: GraphicType
    shape: str
    label: str
    label_source: str  # name | text | none
    color: tuple[int, int, int] | None
    color_source: str  # stroke | fill | none
    z: int | None
    channel: int | None
    description: str | None
    meta: str | None  # id of an omedicom group MapAnnotation


class _Reader:
    def __init__(self, image_index: int) -> None:
        self.image_index = image_index
        self.ref_lists: list[list[str]] = []  # ROIRef IDs of each Image, in document order
        self.image_refs: list[set[str]] | None = None  # made when there are several Images
        self.images_seen = 0
        self._last: tuple | None = None
        self._last_acc: shapes.GroupAccumulator | None = None
        self.group_maps: dict[str, _GroupMeta] = {}
        self.value_maps: dict[str, dict[str, float]] = {}
        self.groups: dict[tuple, shapes.GroupAccumulator] = {}
        self.warnings: list[str] = []
        self.skipped: dict[str, list[str]] = {}
        self.unreferenced: list[str] = []
        self.other_t: list[str] = []
        self.rois = 0
        self.multi_shape = False

    # Image and StructuredAnnotations come before ROI elements in an OME document.
    def roi_ref(self, el: Any) -> None:
        while len(self.ref_lists) <= self.images_seen:
            self.ref_lists.append([])
        self.ref_lists[self.images_seen].append(el.get("ID"))

    def image(self, el: Any) -> None:
        self.images_seen += 1
        while len(self.ref_lists) < self.images_seen:
            self.ref_lists.append([])

    def map_annotation(self, el: Any) -> None:
        namespace = el.get("Namespace")
        if namespace not in (GROUP_NS, MEASUREMENTS_NS):
            return
        pairs = [
            (m.get("K") or "", m.text or "")
            for v in el
            if _local(v.tag) == "Value"
            for m in v
            if _local(m.tag) == "M"
        ]
        if namespace == GROUP_NS:
            self.group_maps[el.get("ID")] = _GroupMeta(dict(pairs))
        else:
            values = {}
            for k, v in pairs:
                try:
                    values[k] = float(v)
                except ValueError:
                    continue
            self.value_maps[el.get("ID")] = values

    def _belongs(self, roi_id: str) -> bool:
        if self.images_seen <= 1:
            return self.image_index == 0
        if self.image_refs is None:
            self.image_refs = [set(refs) for refs in self.ref_lists]
            self.ref_lists = []
        if self.image_index < len(self.image_refs) and roi_id in self.image_refs[self.image_index]:
            return True
        if any(roi_id in refs for refs in self.image_refs):
            return False
        if self.image_index == 0:
            self.unreferenced.append(roi_id)
            return True
        return False

    def roi(self, el: Any) -> None:
        roi_id = el.get("ID") or f"#{self.rois}"
        if not self._belongs(roi_id):
            return
        obj = self.rois
        self.rois += 1
        name = el.get("Name") or None
        description = None
        roi_refs: list[str] = []
        union = None
        for child in el:
            tag = _local(child.tag)
            if tag == "Union":
                union = child
            elif tag == "Description":
                description = child.text or None
            elif tag == "AnnotationRef":
                roi_refs.append(child.get("ID"))
        count = 0
        for shape in union if union is not None else ():
            if not isinstance(shape.tag, str):
                continue
            count += self.shape(shape, obj, roi_id, name, description, roi_refs)
        if count > 1:
            self.multi_shape = True

    def shape(
        self,
        el: Any,
        obj: int,
        roi_id: str,
        name: str | None,
        description: str | None,
        roi_refs: list[str],
    ) -> int:
        kind = _local(el.tag)
        shape_id = el.get("ID") or "?"
        if kind not in shapes.OME_SHAPES:
            self.skipped.setdefault(kind, []).append(f"{roi_id}/{shape_id}")
            return 0
        transform = None
        refs = list(roi_refs)
        for child in el:
            tag = _local(child.tag)
            if tag == "Transform":
                transform = tuple(float(child.get(k, d)) for k, d in shapes.TRANSFORM_DEFAULTS)
            elif tag == "AnnotationRef":
                refs.append(child.get("ID"))
        try:
            if kind == "Point" and transform is None:  # the fast path: no array per point
                graphic, points = GraphicType.POINT, None
                x, y = _float(el, "X"), _float(el, "Y")
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError("not finite")
            else:
                graphic, points = self._geometry(kind, el, transform)
        except ValueError as exc:
            self.warnings.append(f"{roi_id}/{shape_id} ({kind}) is skipped: {exc}")
            return 0
        if points is not None and not np.all(np.isfinite(points)):
            self.warnings.append(f"{roi_id}/{shape_id} ({kind}) is skipped: not finite")
            return 0
        meta_id = next((r for r in refs if r in self.group_maps), None)
        values: dict[str, float] | None = None
        for r in refs:
            if r in self.value_maps:
                values = {**(values or {}), **self.value_maps[r]}
        label, label_source, color, color_source = label_and_colour(
            kind, name, el.get("Text") or None, el.get("StrokeColor"), el.get("FillColor")
        )
        the_t = _int(el, "TheT")
        if the_t:
            self.other_t.append(f"{roi_id}/{shape_id}")
        key = (
            graphic,
            kind,
            label,
            label_source,
            color,
            color_source,
            _int(el, "TheZ"),
            _int(el, "TheC"),
            description,
            meta_id,
        )
        if key == self._last:
            acc = self._last_acc
        else:
            acc = self.groups.get(key)  # type: ignore[arg-type]
            if acc is None:
                acc = self.groups[key] = shapes.GroupAccumulator()  # type: ignore[index]
            self._last, self._last_acc = key, acc
        if points is None:
            acc.add_point(x, y, obj, values)
        else:
            acc.add(points, obj, values)
        return 1

    @staticmethod
    def _geometry(
        kind: str, el: Any, t: shapes.Affine | None
    ) -> tuple[GraphicType, np.ndarray | None]:
        if kind == "Point":
            return GraphicType.POINT, shapes.apply(
                np.array([[_float(el, "X"), _float(el, "Y")]]), t
            )
        if kind == "Line":
            pts = np.array(
                [[_float(el, "X1"), _float(el, "Y1")], [_float(el, "X2"), _float(el, "Y2")]]
            )
            return GraphicType.POLYLINE, shapes.apply(pts, t)
        if kind in ("Polyline", "Polygon"):
            pts = shapes.parse_points(el.get("Points") or "")
            if kind == "Polygon":
                if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
                    pts = pts[:-1]
                if len(pts) < 3:
                    raise ValueError(f"a polygon needs 3 distinct points, it has {len(pts)}")
                return GraphicType.POLYGON, shapes.apply(pts, t)
            if len(pts) < 2:
                raise ValueError(f"a polyline needs 2 points, it has {len(pts)}")
            return GraphicType.POLYLINE, shapes.apply(pts, t)
        if kind == "Rectangle":
            corners = shapes.apply(
                shapes.rectangle_corners(
                    _float(el, "X"), _float(el, "Y"), _float(el, "Width"), _float(el, "Height")
                ),
                t,
            )
            graphic = GraphicType.RECTANGLE if shapes.is_rectangle(corners) else GraphicType.POLYGON
            return graphic, corners
        # Ellipse
        return GraphicType.ELLIPSE, shapes.ellipse_axes(
            _float(el, "X"), _float(el, "Y"), _float(el, "RadiusX"), _float(el, "RadiusY"), t
        )

    def result(self) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
        warnings = list(self.warnings)
        for kind, where in self.skipped.items():
            shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
            warnings.append(
                f"{len(where)} OME {kind} shape(s) ({shown}) have no DICOM annotation "
                "counterpart; they are kept only in the OME-XML carried along"
            )
        if self.unreferenced:
            warnings.append(
                f"{len(self.unreferenced)} ROI(s) ({', '.join(self.unreferenced[:5])}) are not "
                "referenced by any Image; they are taken as annotations of the first Image"
            )
        if self.other_t:
            warnings.append(
                f"{len(self.other_t)} shape(s) ({', '.join(self.other_t[:5])}) lie on a time "
                "point other than the first (TheT); DICOM slides have no time axis, so TheT "
                "is dropped from the annotations"
            )
        groups = []
        for key, acc in self.groups.items():
            groups.append(self._group(_Key(*key), acc))
        if not self.multi_shape:
            groups = [_replace_objects(g, None) for g in groups]
        return tuple(groups), tuple(warnings)

    def _group(self, key: _Key, acc: shapes.GroupAccumulator) -> AnnotationGroup:
        coords = np.frombuffer(acc.coords, dtype=np.float64).reshape(-1, 2).copy()
        lengths = np.frombuffer(acc.lengths, dtype=np.int64)
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        meta = self.group_maps.get(key.meta) if key.meta else None
        mvalues = meta.values if meta else {}
        measurements = []
        for name, column in acc.measurements.items():
            found = meta.measurement(name) if meta else None
            name_code, unit_code = found or codes.measurement_codes(name)
            measurements.append(
                AnnotationGroup.Measurement(
                    name_code, unit_code, np.frombuffer(column, dtype=np.float64).copy()
                )
            )
        algorithm = None
        if mvalues.get("AlgorithmName"):
            algorithm = AnnotationGroup.Algorithm(
                mvalues["AlgorithmName"],
                mvalues.get("AlgorithmVersion", ""),
                (meta.code("AlgorithmFamily") if meta else None)
                or ("123109", "DCM", "Manual Processing"),
            )
        provenance = [("ome:shape", key.shape)]
        if key.label_source != "name":
            provenance.append(("ome:label", key.label_source))
        if key.color_source == "fill":
            provenance.append(("ome:color", "fill"))
        provenance += [
            (k, v) for k, v in mvalues.items() if ":" in k and not k.startswith("Measurement:")
        ]
        label = key.label
        if key.label_source == "none" and mvalues.get("AnnotationGroupLabel"):
            label = mvalues["AnnotationGroupLabel"]
        return AnnotationGroup(
            label=label,
            graphic_type=key.graphic_type,
            coordinates=coords,
            offsets=offsets,
            description=key.description,
            color=key.color,
            z=key.z,
            channel=key.channel,
            property_category=meta.code("AnnotationPropertyCategory") if meta else None,
            property_type=meta.code("AnnotationPropertyType") if meta else None,
            measurements=tuple(measurements),
            image_index=self.image_index,
            uid=mvalues.get("AnnotationGroupUID") or None,
            generation=mvalues.get("AnnotationGroupGenerationType") or "MANUAL",
            algorithm=algorithm,
            objects=np.frombuffer(acc.objects, dtype=np.int64).copy(),
            provenance=tuple(dict(provenance).items()),
        )


def _replace_objects(group: AnnotationGroup, objects: np.ndarray | None) -> AnnotationGroup:
    from dataclasses import replace

    return replace(group, objects=objects)


def _to_2016(data: bytes) -> bytes:
    """The document in the 2016-06 schema (older OME schemas upgraded with ome-types' XSLT)."""
    from lxml import etree

    schema = section.ome_schema(data)
    if schema is None or schema == OME_2016_06:
        return data
    try:
        from ome_types._conversion import ensure_2016

        return etree.tostring(ensure_2016(data, as_tree=True))
    except Exception as exc:
        raise MetadataError(
            f"the OME-XML is in schema {schema} and could not be upgraded to 2016-06 ({exc})",
            hint="re-save the file with a current Bio-Formats (bfconvert) to upgrade it",
        ) from None


def _scanned(
    xml: str | bytes, image_index: int, split: section.RoiSplit | None = None
) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]] | None:
    """The ROIs read by the scanner (:mod:`.roi_scan`), or None where it does not apply.
    ``split`` is :func:`section.split_rois` of ``xml`` when the caller has made it already."""
    from lxml import etree

    from . import roi_scan

    if section.ome_schema(xml) != OME_2016_06:
        return None
    if split is None:
        try:
            text = xml if isinstance(xml, str) else bytes(xml).decode("utf-8")
        except UnicodeDecodeError:
            return None
        split = section.split_rois(text)
    if split is None or split.prefix:
        return None
    reader = _Reader(image_index)
    reader.images_seen = split.images
    documents = [split.head.encode("utf-8")]
    if split.maps:
        documents.append(f'<w xmlns="{OME_2016_06}">{split.maps}</w>'.encode())
    try:
        for document in documents:
            for _event, el in etree.iterparse(
                io.BytesIO(document), events=("end",), tag="{*}MapAnnotation", huge_tree=True
            ):
                reader.map_annotation(el)
                el.clear(keep_tail=False)
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"the OME-XML is not well-formed: {exc}") from None
    try:
        roi_scan.scan(split, reader, OME_2016_06)
    except roi_scan.Fallback:
        return None
    return reader.result()


def rois_from_ome_xml(
    xml: str | bytes, image_index: int = 0, split: section.RoiSplit | None = None
) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    """The ROIs of OME Image ``image_index`` as annotation groups, and warnings.

    Warnings name the shapes that cannot become DICOM annotations (Mask, Label), ROIs that no
    Image references (taken for the first Image), shapes on another time point, and shapes
    skipped because they are malformed. Raises :class:`MetadataError` if the XML is not
    well-formed. ``split`` (:func:`section.split_rois` of a 2016-06 ``xml``) saves cutting
    the document again when several Images are read.
    """
    if "ROI" not in xml if isinstance(xml, str) else b"ROI" not in xml:
        return (), ()
    fast = _scanned(xml, image_index, split)
    return fast if fast is not None else _parsed(xml, image_index)


def _parsed(
    xml: str | bytes, image_index: int
) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    """The ROIs read element by element (streaming lxml): every document, every rule."""
    from lxml import etree

    data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    data = _to_2016(data)
    reader = _Reader(image_index)
    # elements of the document's own namespace only: an XMLAnnotation may hold foreign XML
    # with an <Image> or <ROI> of its own
    schema = section.ome_schema(data)
    prefix = f"{{{schema}}}" if schema else "{*}"
    context = etree.iterparse(
        io.BytesIO(data),
        events=("end",),
        tag=tuple(prefix + name for name in ("Image", "ROIRef", "MapAnnotation", "ROI")),
        huge_tree=True,
        remove_comments=True,
    )
    try:
        for _event, el in context:
            tag = _local(el.tag)
            if tag == "ROI":
                reader.roi(el)
            elif tag == "ROIRef":
                reader.roi_ref(el)
            elif tag == "Image":
                reader.image(el)
            else:
                reader.map_annotation(el)
            el.clear(keep_tail=False)
            parent = el.getparent()
            if parent is not None and tag in ("ROI", "ROIRef"):
                while el.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"the OME-XML is not well-formed: {exc}") from None
    except ValueError as exc:  # a number that is not one
        raise MetadataError(f"an OME ROI shape has a bad value: {exc}") from None
    return reader.result()


# -- writing ---------------------------------------------------------------------------------


def _num(v: float) -> str:
    """A float as XML text: its shortest exact repr, integers without '.0'."""
    return repr(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)


def _group_map(group: AnnotationGroup, map_id: str, ns: str) -> str:
    """The omedicom group MapAnnotation (namespace :data:`GROUP_NS`)."""
    category, type_ = codes.group_codes(group)
    pairs: list[tuple[str, str]] = [
        ("AnnotationGroupLabel", group.label),
        ("GraphicType", group.graphic_type.value),
        ("AnnotationPropertyCategory", codes.code_text(category)),
        ("AnnotationPropertyType", codes.code_text(type_)),
        ("AnnotationGroupGenerationType", group.generation),
    ]
    if group.uid:
        pairs.insert(0, ("AnnotationGroupUID", group.uid))
    if group.algorithm:
        pairs += [
            ("AlgorithmName", group.algorithm.name),
            ("AlgorithmVersion", group.algorithm.version),
            ("AlgorithmFamily", codes.code_text(group.algorithm.family)),
        ]
    for key, m in zip(_measurement_keys(group), group.measurements, strict=True):
        pairs.append(
            (f"Measurement:{key}", f"{codes.code_text(m.name)} in {codes.code_text(m.unit)}")
        )
    pairs += [(k, v) for k, v in group.provenance if not k.startswith("ome:")]
    body = "".join(f"<{ns}M K={quoteattr(k)}>{escape(v)}</{ns}M>" for k, v in pairs)
    return (
        f'<{ns}MapAnnotation ID="{map_id}" Namespace="{GROUP_NS}">'
        f"<{ns}Description>omedicom annotation group</{ns}Description>"
        f"<{ns}Value>{body}</{ns}Value></{ns}MapAnnotation>"
    )


def _measurement_keys(group: AnnotationGroup) -> list[str]:
    keys: list[str] = []
    for m in group.measurements:
        key = codes.measurement_name(m.name, m.unit)
        while key in keys:
            key += " #2"
        keys.append(key)
    return keys


@dataclass
class _Ids:
    prefix: str
    n: int = 0

    def next(self, kind: str) -> str:
        self.n += 1
        return f"{kind}:{self.prefix}{self.n}"


def _shape_elements(
    group: AnnotationGroup,
    ids: _Ids,
    map_id: str,
    ns: str,
    shape_text: np.ndarray,
    lo: int = 0,
    hi: int | None = None,
) -> tuple[list[str], list[str]]:
    """(shape XML, measurement MapAnnotation XML) of annotations ``lo:hi`` of ``group``
    (``shape_text`` has one flag per annotation of that slice)."""
    hi = group.count if hi is None else hi
    n = hi - lo
    gt = group.graphic_type
    kind = codes._table()["graphic_type_to_ome_shape"][gt.value]
    if (
        gt is GraphicType.POLYLINE
        and group.fact("ome:shape") == "Line"
        and np.all(group.ends() - group.offsets == 2)
    ):
        kind = "Line"
    common = ""
    if group.color is not None:
        attr = "FillColor" if group.fact("ome:color") == "fill" else "StrokeColor"
        common += f' {attr}="{codes.ome_from_rgb(group.color)}"'
    if group.z is not None:
        common += f' TheZ="{group.z}"'
    if group.channel is not None:
        common += f' TheC="{group.channel}"'
    label_attr = f" Text={quoteattr(group.label)}"
    offsets = group.offsets[lo:hi]
    ends = group.ends()[lo:hi]
    first = int(offsets[0]) if n else 0
    coords = group.coordinates[first : int(ends[-1]) if n else 0]
    offsets, ends = offsets - first, ends - first
    mkeys = _measurement_keys(group)
    mvalues = (
        np.column_stack([m.values[lo:hi] for m in group.measurements])
        if group.measurements
        else None
    )
    out: list[str] = []
    maps: list[str] = []
    if kind == "Point":
        geometry = [f'X="{_num(x)}" Y="{_num(y)}"' for x, y in coords.tolist()]
    elif kind == "Line":
        flat = coords.reshape(-1, 4).tolist()
        geometry = [
            f'X1="{_num(a)}" Y1="{_num(b)}" X2="{_num(c)}" Y2="{_num(d)}"' for a, b, c, d in flat
        ]
    elif kind in ("Polyline", "Polygon"):
        geometry = [
            f'Points="{shapes.points_text(coords[s:e])}"'
            for s, e in zip(offsets.tolist(), ends.tolist(), strict=True)
        ]
    else:
        corners = coords.reshape(-1, 4, 2)
        if kind == "Rectangle":
            params, transforms, rotated = shapes.rectangles_to_ome(corners)
            names = ("X", "Y", "Width", "Height")
        else:
            params, transforms, rotated = shapes.ellipses_to_ome(corners)
            names = ("X", "Y", "RadiusX", "RadiusY")
        geometry = []
        tkeys = ("A00", "A01", "A02", "A10", "A11", "A12")
        for p, t, r in zip(params.tolist(), transforms.tolist(), rotated.tolist(), strict=True):
            attrs = " ".join(f'{k}="{_num(v)}"' for k, v in zip(names, p, strict=True))
            if r:
                attrs += "\x00" + " ".join(f'{k}="{v!r}"' for k, v in zip(tkeys, t, strict=True))
            geometry.append(attrs)
    for i in range(n):
        shape_id = ids.next("Shape")
        attrs = geometry[i]
        transform = ""
        if "\x00" in attrs:
            attrs, t = attrs.split("\x00")
            transform = f"<{ns}Transform {t}/>"
        text = label_attr if shape_text[i] else ""
        refs = ""
        if mvalues is not None:
            row = mvalues[i]
            present = ~np.isnan(row)
            if present.any():
                mid = ids.next("Annotation")
                body = "".join(
                    f"<{ns}M K={quoteattr(k)}>{float(v)!r}</{ns}M>"
                    for k, v, ok in zip(mkeys, row.tolist(), present.tolist(), strict=True)
                    if ok
                )
                maps.append(
                    f'<{ns}MapAnnotation ID="{mid}" Namespace="{MEASUREMENTS_NS}">'
                    f"<{ns}Value>{body}</{ns}Value></{ns}MapAnnotation>"
                )
                refs += f'<{ns}AnnotationRef ID="{mid}"/>'
        inner = transform + refs
        out.append(
            f'<{ns}{kind} ID="{shape_id}" {attrs}{common}{text}>{inner}</{ns}{kind}>'
            if inner
            else f'<{ns}{kind} ID="{shape_id}" {attrs}{common}{text}/>'
        )
    return out, maps


@dataclass(frozen=True)
class RoiXml:
    """Serialised ROIs of one Image: ``rois`` (ROI elements), ``annotations`` (MapAnnotations
    for StructuredAnnotations) and ``refs`` (ROIRef elements for the Image), each as pieces of
    text to write one after the other (a million ROIs are never one string)."""

    rois: tuple[str, ...]
    annotations: tuple[str, ...]
    refs: tuple[str, ...]
    count: int


#: Annotations serialised per step of the one-shape-per-ROI path: bounds the small strings
#: alive at a time.
SLICE = 1 << 16


def rois_xml(
    groups: Sequence[AnnotationGroup],
    *,
    prefix: str = "omedicom:0:",
    ns: str = "",
    general: bool = False,
) -> RoiXml:
    """OME 2016-06 XML for ``groups``: one ROI per object (annotation, or the parts that share
    an ``objects`` id), each shape referencing its group's MapAnnotation. ``ns`` is the
    element prefix of the target document (``"ome:"``) or empty for a default namespace.

    When no group has ``objects`` (every annotation its own ROI, the DICOM default) the XML is
    made slice by slice, with the same IDs and text as the general path (``general=True``).
    """
    if not general and all(g.objects is None for g in groups):
        return _one_shape_rois(groups, prefix, ns)
    ids = _Ids(prefix)
    annotations: list[str] = []
    per_group: list[tuple[list[str], str, str | None]] = []
    map_ids: list[str] = []
    # object id of each annotation, over all groups; groups without objects get fresh ids
    base = 1 + max(
        (int(g.objects.max()) for g in groups if g.objects is not None and g.count), default=-1
    )
    object_ids = []
    for g in groups:
        if g.objects is not None:
            object_ids.append(np.asarray(g.objects, dtype=np.int64))
        else:
            object_ids.append(np.arange(base, base + g.count, dtype=np.int64))
            base += g.count
    all_ids = np.concatenate(object_ids) if object_ids else np.zeros(0, np.int64)
    group_of = (
        np.concatenate([np.full(g.count, k, dtype=np.int64) for k, g in enumerate(groups)])
        if groups
        else np.zeros(0, np.int64)
    )
    order = np.argsort(all_ids, kind="stable")
    sorted_ids = all_ids[order]
    starts = (
        np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
        if len(sorted_ids)
        else np.zeros(0, np.int64)
    )
    bounds = np.append(starts, len(sorted_ids))
    # an ROI whose shapes come from groups with different labels names each shape (Text)
    mixed = np.zeros(len(all_ids), dtype=bool)
    labels = np.array([g.label for g in groups], dtype=object)
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if e - s > 1 and len(set(labels[group_of[order[s:e]]].tolist())) > 1:
            mixed[order[s:e]] = True
    first = 0
    for g in groups:
        map_id = ids.next("Annotation")
        annotations.append(_group_map(g, map_id, ns))
        text = mixed[first : first + g.count] | (g.fact("ome:label") == "text")
        first += g.count
        elements, maps = _shape_elements(g, ids, map_id, ns, text)
        annotations.extend(maps)
        name = None if g.fact("ome:label") in ("text", "none") else g.label
        per_group.append((elements, g.description or "", name))
        map_ids.append(map_id)
    flat_shapes = [s for elements, _, _ in per_group for s in elements]
    rois: list[str] = []
    refs: list[str] = []
    for s, e in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        members = order[s:e]
        gk = int(group_of[members[0]])
        _, description, name = per_group[gk]
        if e - s > 1 and mixed[members[0]]:
            name = None
        roi_id = ids.next("ROI")
        name_attr = f" Name={quoteattr(name)}" if name else ""
        # the group's MapAnnotation: on the ROI, or on each shape when groups are mixed
        kinds = group_of[members]
        if e - s == 1 or np.all(kinds == gk):
            body = "".join(flat_shapes[m] for m in members.tolist())
            after = f'<{ns}AnnotationRef ID="{map_ids[gk]}"/>'
        else:
            body = "".join(
                _with_ref(flat_shapes[m], f'<{ns}AnnotationRef ID="{map_ids[int(k)]}"/>')
                for m, k in zip(members.tolist(), kinds.tolist(), strict=True)
            )
            after = ""
        desc = f"<{ns}Description>{escape(description)}</{ns}Description>" if description else ""
        rois.append(
            f'<{ns}ROI ID="{roi_id}"{name_attr}><{ns}Union>{body}</{ns}Union>'
            f"{after}{desc}</{ns}ROI>"
        )
        refs.append(f'<{ns}ROIRef ID="{roi_id}"/>')
    return RoiXml(("".join(rois),), ("".join(annotations),), ("".join(refs),), len(rois))


def _measured_rows(group: AnnotationGroup) -> int:
    """Annotations of ``group`` with at least one measurement value (one MapAnnotation each)."""
    if not group.measurements:
        return 0
    values = np.column_stack([m.values for m in group.measurements])
    return int(np.count_nonzero(~np.all(np.isnan(values), axis=1)))


def _one_shape_rois(groups: Sequence[AnnotationGroup], prefix: str, ns: str) -> RoiXml:
    """:func:`rois_xml` when every annotation is an ROI of its own, in slices of SLICE."""
    ids = _Ids(prefix)
    # shape and MapAnnotation IDs come first, then the ROI IDs (as in the general path)
    roi_number = 1 + sum(1 + g.count + _measured_rows(g) for g in groups)
    annotations: list[str] = []
    rois: list[str] = []
    refs: list[str] = []
    for g in groups:
        map_id = ids.next("Annotation")
        annotations.append(_group_map(g, map_id, ns))
        label = g.fact("ome:label")
        name = None if label in ("text", "none") else g.label
        name_attr = f" Name={quoteattr(name)}" if name else ""
        desc = (
            f"<{ns}Description>{escape(g.description)}</{ns}Description>" if g.description else ""
        )
        head = f'<{ns}ROI ID="ROI:{prefix}'
        middle = f'"{name_attr}><{ns}Union>'
        tail = f'</{ns}Union><{ns}AnnotationRef ID="{map_id}"/>{desc}</{ns}ROI>'
        for lo in range(0, g.count, SLICE):
            hi = min(lo + SLICE, g.count)
            text = np.full(hi - lo, label == "text")
            elements, maps = _shape_elements(g, ids, map_id, ns, text, lo, hi)
            annotations.append("".join(maps))
            numbers = range(roi_number, roi_number + len(elements))
            rois.append(
                "".join(
                    [f"{head}{r}{middle}{e}{tail}" for r, e in zip(numbers, elements, strict=True)]
                )
            )
            refs.append("".join([f'<{ns}ROIRef ID="ROI:{prefix}{r}"/>' for r in numbers]))
            roi_number += len(elements)
    count = sum(g.count for g in groups)
    return RoiXml(tuple(rois), tuple(a for a in annotations if a), tuple(refs), count)


def _with_ref(shape: str, ref: str) -> str:
    """A shape element with one more AnnotationRef child (after Transform, if any)."""
    if shape.endswith("/>"):
        tag = shape[1 : shape.index(" ")]
        return f"{shape[:-2]}>{ref}</{tag}>"
    cut = shape.rindex("</")
    return shape[:cut] + ref + shape[cut:]


_ROI_TAG = re.compile(r"<(?:\w+:)?ROI[\s>/]")


def has_rois(xml: str | bytes) -> bool:
    """Whether an OME-XML document already holds ROI elements."""
    if isinstance(xml, str):
        return _ROI_TAG.search(xml) is not None
    return re.search(rb"<(?:\w+:)?ROI[\s>/]", xml) is not None


def insert_rois(xml: str, groups: Sequence[AnnotationGroup], image_index: int = 0) -> str:
    """``xml`` (an OME 2016-06 document) with ``groups`` added as ROIs of Image
    ``image_index``: ROI elements after StructuredAnnotations, their MapAnnotations inside it,
    ROIRefs in the Image (after Pixels, as the schema orders them). See :func:`insert_parts`.
    """
    return "".join(insert_parts(xml, {image_index: groups}))


def insert_parts(xml: str, groups: dict[int, Sequence[AnnotationGroup]]) -> list[str]:
    """``xml`` with the groups of each Image index in ``groups`` added as ROIs, as pieces of
    text to write one after the other.

    The document's own ROI part (if any) is cut out first (:mod:`.section`), the small rest is
    placed with lxml, and the (possibly huge) ROI text is spliced in as strings, so a million
    shapes cost string joins, not a million tree nodes.
    """
    from lxml import etree

    groups = {k: v for k, v in groups.items() if v}
    if not groups:
        return [xml]
    split = section.split_rois(xml) if has_rois(xml) else None
    head = split.head if split is not None else xml
    try:
        root = etree.fromstring(head.encode("utf-8"), etree.XMLParser(huge_tree=True))
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"the OME-XML is not well-formed: {exc}") from None
    ns_uri = etree.QName(root).namespace
    prefix = root.prefix
    ns = f"{prefix}:" if prefix else ""
    images = [c for c in root if _local(c.tag) == "Image"]
    tag_prefix = f"{{{ns_uri}}}" if ns_uri else ""
    bodies: dict[str, tuple[str, ...]] = {}
    rois: list[str] = []
    annotations: list[str] = []
    for image_index, image_groups in sorted(groups.items()):
        if image_index >= len(images):
            raise MetadataError(
                f"annotations belong to image {image_index}, but the OME-XML has "
                f"{len(images)} Image element(s)"
            )
        n = 0
        while f'"ROI:omedicom:{image_index}.{n}:' in xml:
            n += 1
        parts = rois_xml(image_groups, prefix=f"omedicom:{image_index}.{n}:", ns=ns)
        mark = f"omedicom-splice-refs{image_index}-{id(parts)}"
        bodies[mark] = parts.refs
        rois.extend(parts.rois)
        annotations.extend(parts.annotations)
        # ROIRef: after Pixels and existing ROIRefs, before MicrobeamManipulationRef etc.
        image = images[image_index]
        position = 0
        for i, child in enumerate(image):
            if _local(child.tag) in ("Pixels", "ROIRef"):
                position = i + 1
        image.insert(position, etree.Comment(mark))
    # StructuredAnnotations: after Image/ROI predecessors in the OME sequence
    sa = next((c for c in root if _local(c.tag) == "StructuredAnnotations"), None)
    if sa is None:
        sa = etree.Element(f"{tag_prefix}StructuredAnnotations", nsmap=None)
        after = [c for c in root if _local(c.tag) in _BEFORE_SA]
        root.insert(root.index(after[-1]) + 1 if after else 0, sa)
    mark = f"omedicom-splice-sa-{id(bodies)}"
    sa.append(etree.Comment(mark))
    bodies[mark] = tuple(annotations)
    # ROI elements: after StructuredAnnotations and existing ROIs, before BinaryOnly
    last = max(
        (root.index(c) for c in root if _local(c.tag) in ("StructuredAnnotations", "ROI")),
        default=len(root) - 1,
    )
    mark = f"omedicom-splice-rois-{id(bodies)}"
    bodies[mark] = tuple(rois)
    if split is None:
        root.insert(last + 1, etree.Comment(mark))
    text = etree.tostring(root, encoding="unicode")
    if split is not None:  # the document's own ROIs back in, the new ones after them
        text = "".join(section.join_rois(text, split, prefix or "", [f"<!--{mark}-->"]))
    pieces = [
        '<?xml version="1.0" encoding="UTF-8"?>\n' if xml.lstrip().startswith("<?xml") else ""
    ]
    for key in sorted(bodies, key=lambda k: text.index(k)):
        before, text = text.split(f"<!--{key}-->", 1)
        pieces += [before, *bodies[key]]
    pieces.append(text)
    return [p for p in pieces if p]


_BEFORE_SA = (
    "Rights",
    "Project",
    "Dataset",
    "Folder",
    "Experiment",
    "Plate",
    "Screen",
    "Experimenter",
    "ExperimenterGroup",
    "Instrument",
    "Image",
)


def add_rois_to_ome(ome: Any, groups: Sequence[AnnotationGroup], image_index: int = 0) -> None:
    """Add ``groups`` to an ``ome_types.OME`` in place (ROIs, their MapAnnotations, the Image's
    ROIRefs). Builds the XML with :func:`insert_rois` and reads it back with ome-types, so it
    suits small sets; for large ones call :func:`insert_rois` on the serialised document."""
    import ome_types

    if not groups:
        return
    updated = ome_types.from_xml(insert_rois(ome_types.to_xml(ome), groups, image_index))
    ome.rois = updated.rois
    ome.structured_annotations = updated.structured_annotations
    ome.images[image_index].roi_refs = updated.images[image_index].roi_refs


def ome_document(groups: Sequence[AnnotationGroup], creator: str) -> str:
    """A stand-alone OME 2016-06 document holding only ``groups`` as ROIs (no Image)."""
    parts = rois_xml(groups)
    sa = (
        f"<StructuredAnnotations>{''.join(parts.annotations)}</StructuredAnnotations>"
        if parts.annotations
        else ""
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<OME xmlns="{OME_2016_06}" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        f'xsi:schemaLocation="{OME_2016_06} {OME_2016_06}/ome.xsd" Creator={quoteattr(creator)}>'
        f"{sa}{''.join(parts.rois)}</OME>\n"
    )


def iter_shapes(groups: Iterable[AnnotationGroup]) -> Iterator[tuple[str, np.ndarray]]:
    """(graphic type, points) of every annotation, in order (for tests and small sets)."""
    for g in groups:
        for i in range(g.count):
            yield g.graphic_type.value, g.annotation(i)
