"""QuPath-style GeoJSON (RFC 7946) <-> annotation groups.

QuPath exports its objects as a FeatureCollection (or a bare list of Features, or one
Feature) in image pixel coordinates: x = column, y = row, corner origin, the same frame as the
model's level-0 pixels, so coordinates pass unchanged. Each Feature has ``properties``:
``objectType`` (``annotation``, ``detection``, ``cell``...), ``classification``
``{"name", "color": [r, g, b]}`` (QuPath <= 0.2: ``colorRGB``, a packed ARGB int), an optional
``name``, ``measurements`` (a name -> value object; QuPath <= 0.2: a list of
``{"name", "value"}``) and ``isLocked``.

=====================  =======================================================================
GeoJSON geometry       annotation group
=====================  =======================================================================
Point / MultiPoint     POINT (a Multi* geometry's parts share an ``objects`` id)
LineString / Multi...  POLYLINE
Polygon / Multi...     POLYGON, exterior ring without its closing point; holes (interior
                       rings) have no DICOM counterpart: dropped with a warning
GeometryCollection     its members, sharing an ``objects`` id
=====================  =======================================================================

Features are grouped by (graphic type, classification name, colour, objectType). The label is
the classification name, else the feature's ``name``. ``annotation`` objects are MANUAL, other
object types AUTOMATIC (QuPath detections), with the algorithm from ``mappings``.

Writing puts RECTANGLE and ELLIPSE annotations out as closed Polygons (an ellipse as 72
vertices) so that every GeoJSON reader draws them, and keeps what QuPath has no field for in
foreign members (RFC 7946 6.1) that QuPath ignores: ``"omedicom:groups"`` on the collection
(UID, codes, description, generation, algorithm, measurement codes of each group) and, on each
feature's properties, ``"omedicom:group"`` (its index) and ``"omedicom:points"`` (the exact
RECTANGLE corners / ELLIPSE axis endpoints). Reading uses them when present, so
DICOM -> GeoJSON -> DICOM keeps groups, codes and shapes.

Reading uses :func:`json.loads` with an ``object_hook`` that folds each Feature into flat
arrays as soon as it is decoded, so a million detections never live as a million dicts.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, OutputError
from ..model import AnnotationGroup, GraphicType
from . import codes
from .shapes import GroupAccumulator

_GEOMETRIES = {
    "Point",
    "MultiPoint",
    "LineString",
    "MultiLineString",
    "Polygon",
    "MultiPolygon",
}
_ELLIPSE_VERTICES = 72


@dataclass(frozen=True)
class _Key:
    graphic_type: GraphicType
    label: str
    label_source: str  # classification | name | none
    color: tuple[int, int, int] | None
    object_type: str
    group: int | None  # index into "omedicom:groups"


class _Reader:
    def __init__(self) -> None:
        self.groups: dict[_Key, GroupAccumulator] = {}
        self.objects = 0
        self.multi_part = False
        self.holes = 0
        self.skipped: list[str] = []

    # -- object_hook ------------------------------------------------------------------------
    def hook(self, d: dict) -> Any:
        kind = d.get("type")
        if not isinstance(kind, str):
            return d
        if kind == "Feature":
            self.feature(d)
            return None
        if kind in _GEOMETRIES and "coordinates" in d:
            return ("geometry", kind, d["coordinates"])
        if kind == "GeometryCollection" and "geometries" in d:
            return ("collection", [g for g in d["geometries"] if g is not None])
        return d

    def feature(self, f: dict) -> None:
        geometry = f.get("geometry")
        props = f.get("properties") or {}
        if not isinstance(props, dict):
            props = {}
        if geometry is None:
            self.skipped.append(str(f.get("id", len(self.skipped))))
            return
        obj = self.objects
        self.objects += 1
        parts = list(self._parts(geometry, props))
        if len(parts) > 1:
            self.multi_part = True
        values = _measurements(props.get("measurements"))
        for graphic, points in parts:
            key = self._key(graphic, props)
            acc = self.groups.get(key)
            if acc is None:
                acc = self.groups[key] = GroupAccumulator()
            if isinstance(points, tuple):  # one (x, y)
                acc.add_point(*points, obj, values)
            else:
                acc.add(points, obj, values)

    def _parts(self, geometry: Any, props: dict) -> Any:
        if isinstance(geometry, tuple) and geometry[0] == "collection":
            for g in geometry[1]:
                yield from self._parts(g, props)
            return
        if not (isinstance(geometry, tuple) and geometry[0] == "geometry"):
            return
        _, kind, c = geometry
        exact = props.get("omedicom:points")
        if kind == "Point":
            yield GraphicType.POINT, (float(c[0]), float(c[1]))
        elif kind == "MultiPoint":
            for p in c:
                yield GraphicType.POINT, (float(p[0]), float(p[1]))
        elif kind == "LineString":
            yield GraphicType.POLYLINE, _array(c)
        elif kind == "MultiLineString":
            for line in c:
                yield GraphicType.POLYLINE, _array(line)
        elif kind == "Polygon":
            shape = props.get("omedicom:shape")
            if shape in ("RECTANGLE", "ELLIPSE") and exact is not None:
                yield GraphicType(shape), _array(exact)
            else:
                yield from self._polygon(c)
        elif kind == "MultiPolygon":
            for poly in c:
                yield from self._polygon(poly)

    def _polygon(self, rings: list) -> Any:
        if not rings:
            return
        ring = _array(rings[0])
        if len(ring) > 1 and np.array_equal(ring[0], ring[-1]):
            ring = ring[:-1]
        self.holes += len(rings) - 1
        if len(ring) >= 3:
            yield GraphicType.POLYGON, ring

    @staticmethod
    def _key(graphic: GraphicType, props: dict) -> _Key:
        cls = props.get("classification")
        name = props.get("name")
        if isinstance(cls, dict) and cls.get("name"):
            label, source = str(cls["name"]), "classification"
        elif isinstance(name, str) and name:
            label, source = name, "name"
        else:
            label, source = "", "none"
        color = _color(cls if isinstance(cls, dict) else None) or _color(props)
        group = props.get("omedicom:group")
        return _Key(
            graphic,
            label,
            source,
            color,
            str(props.get("objectType") or "annotation"),
            int(group) if isinstance(group, int) else None,
        )


def _array(c: Any) -> np.ndarray:
    a = np.asarray(c, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError("coordinates are not a list of positions")
    return np.ascontiguousarray(a[:, :2])


def _color(d: dict | None) -> tuple[int, int, int] | None:
    if not d:
        return None
    c = d.get("color")
    if isinstance(c, list) and len(c) >= 3:
        return (int(c[0]), int(c[1]), int(c[2]))
    packed = d.get("colorRGB")
    if isinstance(packed, int):
        v = packed & 0xFFFFFF
        return (v >> 16, (v >> 8) & 255, v & 255)
    return None


def _measurements(m: Any) -> dict[str, float] | None:
    if isinstance(m, dict):
        items = m.items()
    elif isinstance(m, list):
        items = ((e.get("name"), e.get("value")) for e in m if isinstance(e, dict))
    else:
        return None
    out = {}
    for k, v in items:
        if isinstance(k, str):
            out[k] = float(v) if isinstance(v, (int, float)) else math.nan
    return out or None


def read_geojson(source: str | bytes | Path) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    """Annotation groups of a GeoJSON file (a path) or document (str / bytes), and warnings.

    Raises :class:`InputError` for a file that is not GeoJSON.
    """
    name = str(source) if isinstance(source, Path) else "GeoJSON"
    if isinstance(source, Path):
        try:
            text: str | bytes = source.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read the annotations ({exc.strerror})", path=name) from None
    else:
        text = source
    reader = _Reader()
    try:
        doc = json.loads(text, object_hook=reader.hook)
    except (ValueError, TypeError, IndexError) as exc:
        raise InputError(
            f"not a GeoJSON document: {exc}",
            path=name,
            hint="export annotations from QuPath with File > Export objects as GeoJSON",
        ) from None
    if not isinstance(doc, (dict, list)) and doc is not None:
        raise InputError("not a GeoJSON FeatureCollection or Feature", path=name)
    defs = doc.get("omedicom:groups") if isinstance(doc, dict) else None
    if isinstance(doc, dict) and doc.get("type") not in ("FeatureCollection", None, "Feature"):
        raise InputError(f"GeoJSON of type {doc.get('type')!r} holds no features", path=name)
    warnings = []
    if reader.holes:
        warnings.append(
            f"{reader.holes} polygon hole(s) (interior rings) have no DICOM annotation "
            "counterpart and were dropped"
        )
    if reader.skipped:
        warnings.append(f"{len(reader.skipped)} feature(s) without geometry were skipped")
    groups = [
        _group(key, acc, defs if isinstance(defs, list) else None)
        for key, acc in reader.groups.items()
    ]
    if not reader.multi_part:
        from dataclasses import replace

        groups = [replace(g, objects=None) for g in groups]
    return tuple(groups), tuple(warnings)


def _group(key: _Key, acc: GroupAccumulator, defs: list | None) -> AnnotationGroup:
    coords = np.frombuffer(acc.coords, dtype=np.float64).reshape(-1, 2).copy()
    lengths = np.frombuffer(acc.lengths, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    meta: dict = {}
    if defs is not None and key.group is not None and 0 <= key.group < len(defs):
        meta = defs[key.group] if isinstance(defs[key.group], dict) else {}
    mdefs = {m.get("key"): m for m in meta.get("measurements", []) if isinstance(m, dict)}
    measurements = []
    for name, column in acc.measurements.items():
        d = mdefs.get(name)
        if d and _code(d.get("name")) and _code(d.get("unit")):
            name_code, unit_code = _code(d["name"]), _code(d["unit"])
        else:
            name_code, unit_code = codes.measurement_codes(name)
        measurements.append(
            AnnotationGroup.Measurement(
                name_code,  # type: ignore[arg-type]
                unit_code,  # type: ignore[arg-type]
                np.frombuffer(column, dtype=np.float64).copy(),
            )
        )
    generation = str(meta.get("generation") or "")
    algorithm = None
    if isinstance(meta.get("algorithm"), dict):
        a = meta["algorithm"]
        algorithm = AnnotationGroup.Algorithm(
            str(a.get("name", "")),
            str(a.get("version", "")),
            _code(a.get("family")) or ("123109", "DCM", "Manual Processing"),
        )
    if not generation:
        generation = "MANUAL" if key.object_type == "annotation" else "AUTOMATIC"
    if generation != "MANUAL" and algorithm is None:
        name, version, family = codes.detection_algorithm()
        algorithm = AnnotationGroup.Algorithm(name, version, family)
    provenance = {str(k): str(v) for k, v in (meta.get("provenance") or {}).items()}
    provenance["geojson:objectType"] = key.object_type
    if key.label_source != "classification":
        provenance["geojson:label"] = key.label_source
    label = key.label or str(meta.get("label") or "") or key.graphic_type.value.title()
    return AnnotationGroup(
        label=label,
        graphic_type=key.graphic_type,
        coordinates=coords,
        offsets=offsets,
        description=meta.get("description") or None,
        color=key.color,
        z=meta.get("z") if isinstance(meta.get("z"), int) else None,
        channel=meta.get("channel") if isinstance(meta.get("channel"), int) else None,
        property_category=_code(meta.get("propertyCategory")),
        property_type=_code(meta.get("propertyType")),
        measurements=tuple(measurements),
        uid=meta.get("uid") or None,
        generation=generation,
        algorithm=algorithm,
        objects=np.frombuffer(acc.objects, dtype=np.int64).copy(),
        provenance=tuple(provenance.items()),
    )


def _code(value: Any) -> codes.Code | None:
    if isinstance(value, list) and len(value) == 3:
        return (str(value[0]), str(value[1]), str(value[2]))
    return None


# -- writing ---------------------------------------------------------------------------------


def _pt(x: float, y: float) -> str:
    return f"[{x!r},{y!r}]"


def _ring(points: list[list[float]], close: bool) -> str:
    if close:
        points = [*points, points[0]]
    return "[" + ",".join(_pt(x, y) for x, y in points) + "]"


def _ellipse_polygon(ends: np.ndarray) -> list[list[float]]:
    a0, a1, b0, b1 = ends
    centre = (a0 + a1) / 2
    u, v = (a1 - a0) / 2, (b1 - b0) / 2
    t = np.linspace(0, 2 * np.pi, _ELLIPSE_VERTICES, endpoint=False)
    return (centre + np.outer(np.cos(t), u) + np.outer(np.sin(t), v)).tolist()


def _group_def(g: AnnotationGroup, keys: list[str]) -> dict:
    category, type_ = codes.group_codes(g)
    d: dict[str, Any] = {
        "label": g.label,
        "graphicType": g.graphic_type.value,
        "propertyCategory": list(category),
        "propertyType": list(type_),
        "generation": g.generation,
    }
    if g.uid:
        d["uid"] = g.uid
    if g.description:
        d["description"] = g.description
    if g.z is not None:
        d["z"] = g.z
    if g.channel is not None:
        d["channel"] = g.channel
    if g.algorithm:
        d["algorithm"] = {
            "name": g.algorithm.name,
            "version": g.algorithm.version,
            "family": list(g.algorithm.family),
        }
    if g.measurements:
        d["measurements"] = [
            {"key": k, "name": list(m.name), "unit": list(m.unit)}
            for k, m in zip(keys, g.measurements, strict=True)
        ]
    facts = {k: v for k, v in g.provenance if not k.startswith("geojson:")}
    if facts:
        d["provenance"] = facts
    return d


def _geometry(g: AnnotationGroup, i: int, s: int, e: int) -> tuple[str, str, str | None]:
    """(GeoJSON geometry type, coordinates text, exact points text or None)."""
    pts = g.coordinates[s:e].tolist()
    gt = g.graphic_type
    if gt is GraphicType.POINT:
        return "Point", _pt(*pts[0]), None
    if gt is GraphicType.POLYLINE:
        return "LineString", _ring(pts, close=False), None
    if gt is GraphicType.POLYGON:
        return "Polygon", "[" + _ring(pts, close=True) + "]", None
    exact = _ring(pts, close=False)
    if gt is GraphicType.RECTANGLE:
        return "Polygon", "[" + _ring(pts, close=True) + "]", exact
    return "Polygon", "[" + _ring(_ellipse_polygon(g.coordinates[s:e]), close=True) + "]", exact


def _merge(kinds: list[str], texts: list[str]) -> tuple[str, str]:
    if len(kinds) == 1:
        return kinds[0], texts[0]
    if len(set(kinds)) == 1 and kinds[0] in ("Point", "LineString", "Polygon"):
        return "Multi" + kinds[0], "[" + ",".join(texts) + "]"
    return "GeometryCollection", ",".join(
        f'{{"type":"{k}","coordinates":{t}}}' for k, t in zip(kinds, texts, strict=True)
    )


def iter_features(groups: Sequence[AnnotationGroup]) -> Any:
    """The Feature texts (one string each) of ``groups``, then the group definitions."""
    defs = []
    keys_of = []
    for g in groups:
        keys = []
        for m in g.measurements:
            k = codes.measurement_name(m.name, m.unit)
            while k in keys:
                k += " #2"
            keys.append(k)
        keys_of.append(keys)
        defs.append(_group_def(g, keys))
    # objects: annotations sharing an id become one feature
    entries: dict[int, list[tuple[int, int]]] = {}
    singles: list[tuple[int, int]] = []
    for gi, g in enumerate(groups):
        if g.objects is None:
            singles.extend((gi, i) for i in range(g.count))
        else:
            for i, o in enumerate(g.objects.tolist()):
                entries.setdefault(int(o), []).append((gi, i))
    ordered = [v for _, v in sorted(entries.items())] + [[s] for s in singles]
    ends = [g.ends().tolist() for g in groups]
    offsets = [g.offsets.tolist() for g in groups]
    props_of = []
    for gi, g in enumerate(groups):
        object_type = g.fact("geojson:objectType") or (
            "annotation" if g.generation == "MANUAL" else "detection"
        )
        p: dict[str, Any] = {"objectType": object_type}
        source = g.fact("geojson:label")
        if source == "name":
            p["name"] = g.label
        elif source != "none":
            cls: dict[str, Any] = {"name": g.label}
            if g.color:
                cls["color"] = list(g.color)
            p["classification"] = cls
        if g.color and "classification" not in p:
            p["color"] = list(g.color)
        p["isLocked"] = False
        p["omedicom:group"] = gi
        props_of.append(json.dumps(p, ensure_ascii=False, separators=(",", ":"))[:-1])
    mvalues = [
        np.column_stack([m.values for m in g.measurements]).tolist() if g.measurements else None
        for g in groups
    ]
    for members in ordered:
        kinds, texts = [], []
        exact = None
        for gi, i in members:
            kind, text, ex = _geometry(groups[gi], i, offsets[gi][i], ends[gi][i])
            kinds.append(kind)
            texts.append(text)
            exact = exact or ex
        gi, i = members[0]
        kind, coords = _merge(kinds, texts)
        props = props_of[gi]
        if exact is not None and len(members) == 1:
            props += (
                f',"omedicom:shape":"{groups[gi].graphic_type.value}","omedicom:points":{exact}'
            )
        rows = mvalues[gi]
        if rows is not None:
            values = {k: v for k, v in zip(keys_of[gi], rows[i], strict=True) if not math.isnan(v)}
            if values:
                props += ',"measurements":' + json.dumps(
                    values, ensure_ascii=False, separators=(",", ":")
                )
        if kind == "GeometryCollection":
            geometry = f'{{"type":"GeometryCollection","geometries":[{coords}]}}'
        else:
            geometry = f'{{"type":"{kind}","coordinates":{coords}}}'
        yield f'{{"type":"Feature","geometry":{geometry},"properties":{props}}}}}'
    yield defs


def write_geojson(groups: Sequence[AnnotationGroup], out: Path | Any) -> int:
    """Write ``groups`` as a QuPath-style FeatureCollection to ``out`` (a path, written under a
    temporary name and renamed into place, or a text stream). Returns the feature count."""
    if isinstance(out, Path):
        tmp = out.with_name(f".{out.name}.{os.getpid()}.part")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                n = write_geojson(groups, fh)
            os.replace(tmp, out)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise OutputError(f"cannot write the GeoJSON ({exc.strerror})", path=str(out)) from None
        return n
    items = iter_features(groups)
    out.write('{"type":"FeatureCollection","features":[')
    n = 0
    defs: list = []
    for item in items:
        if isinstance(item, list):
            defs = item
            break
        out.write(("\n" if n == 0 else ",\n") + item)
        n += 1
    out.write('\n],"omedicom:groups":' + json.dumps(defs, ensure_ascii=False) + "}\n")
    return n
