"""Annotation groups <-> DICOM Microscopy Bulk Simple Annotations (PS3.3 A.87, C.37.1.2).

Written and read with highdicom (``hd.ann.MicroscopyBulkSimpleAnnotations``,
``hd.ann.AnnotationGroup``, ``hd.ann.Measurements``, ``hd.ann.annread``). highdicom builds
every module and group item; the bulk arrays (Double Point Coordinates Data (0066,0022) OD,
Long Primitive Point Index List (0066,0040) OL, Number of Annotations) are then set from numpy
in exactly the encoding highdicom uses, because its constructor takes one array per
annotation, which a million cell centroids must not become. Coordinates are always written as
float64 (OD), so OME / GeoJSON doubles survive exactly.

Coordinates:

* **2D** (the default): (column, row) pixels of the base level's Total Pixel Matrix,
  Pixel Origin Interpretation VOLUME, the identity mapping from the model's level-0 pixels:
  corner origin, no half-pixel shift. That DICOM means the corner frame here is an
  interpretation (MAPPING.md Corrections 5): PS3.3 states it for Graphic Data (0070,0022)
  and the Bulk Annotations text only says "units of pixels".
* **3D** when groups are on different focal planes of a multi-plane image: slide coordinates
  in mm in the image's Frame of Reference (C.8.12.2), ``X = X0 + c·Δc·Rx + r·Δr·Cx`` (and Y
  likewise) with the Total Pixel Matrix Origin read as the *corner* of pixel 1\\1, as the
  bridge's writer and wsidicom do (highdicom's transformer reads it as the pixel centre:
  half a pixel apart, MAPPING.md 0 item 6). Z is the focal plane's offset in mm, factored
  into Common Z Coordinate Value.

What DICOM has no attribute for travels in a private block of each group item (creator
:data:`PRIVATE_CREATOR`, group 0x0077): ``xx01`` UT, JSON of the group's provenance facts
(which OME shape, where the label came from, a TheZ/TheC the image could not take);
``xx02`` OL, the source object of each annotation (uint32) when objects have several parts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from .. import __version__
from ..errors import InputError, MetadataError, OutputError
from ..model import AnnotationGroup, GraphicType
from . import codes
from .bounds import fit_to_image

ANN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.91.1"
PRIVATE_GROUP = 0x0077
PRIVATE_CREATOR = "OMEDICOM ANN 1"
_FIXED = {GraphicType.POINT: 1, GraphicType.RECTANGLE: 4, GraphicType.ELLIPSE: 4}


@dataclass(frozen=True)
class ImageGeometry:
    """Where the base level's pixels are: PS3.3 C.8.12.9 (Total Pixel Matrix Origin), C.8.12.4
    (Image Orientation (Slide)), C.7.6.16.2.1 (Pixel Spacing = [row, column] spacing, mm)."""

    sop_instance_uid: str
    sop_class_uid: str
    columns: int
    rows: int
    frame_of_reference_uid: str | None
    origin_mm: tuple[float, float]
    orientation: tuple[float, float, float, float, float, float]
    spacing_mm: tuple[float, float] | None  # (row spacing, column spacing)
    focal_planes_mm: tuple[float, ...]
    optical_paths: tuple[str, ...]

    @property
    def matrix(self) -> np.ndarray:
        """2x2 pixel (col, row) -> slide (X, Y) mm linear map."""
        if self.spacing_mm is None:
            raise MetadataError(
                f"image {self.sop_instance_uid} has no Pixel Spacing; 3D annotations need it"
            )
        dr, dc = self.spacing_mm
        o = self.orientation
        return np.array([[o[0] * dc, o[3] * dr], [o[1] * dc, o[4] * dr]])

    def to_slide(self, xy: np.ndarray) -> np.ndarray:
        return xy @ self.matrix.T + np.array(self.origin_mm)

    def to_pixels(self, xy_mm: np.ndarray) -> np.ndarray:
        return (xy_mm - np.array(self.origin_mm)) @ np.linalg.inv(self.matrix).T


def _floats(value: Any) -> list[float]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)) or (
        hasattr(value, "__iter__") and not isinstance(value, str)
    ):
        return [float(v) for v in value]
    return [float(value)]


def image_geometry(ds: Dataset) -> ImageGeometry:
    """The geometry of a VL Whole Slide Microscopy level (PS3.3 A.32.8)."""
    origin = (0.0, 0.0)
    z0_mm = 0.0
    if "TotalPixelMatrixOriginSequence" in ds and ds.TotalPixelMatrixOriginSequence:
        item = ds.TotalPixelMatrixOriginSequence[0]
        origin = (
            float(item.get("XOffsetInSlideCoordinateSystem", 0) or 0),
            float(item.get("YOffsetInSlideCoordinateSystem", 0) or 0),
        )
        z0_mm = float(item.get("ZOffsetInSlideCoordinateSystem", 0) or 0) / 1000.0  # µm
    orientation = tuple(_floats(ds.get("ImageOrientationSlide"))) or (0, 1, 0, 1, 0, 0)
    spacing = None
    z_spacing = None
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        measures = shared[0].get("PixelMeasuresSequence")
        if measures:
            values = _floats(measures[0].get("PixelSpacing"))
            if len(values) == 2:
                spacing = (values[0], values[1])
            between = measures[0].get("SpacingBetweenSlices")
            z_spacing = float(between) if between not in (None, "") else None
    planes: list[float] = []
    for frame in ds.get("PerFrameFunctionalGroupsSequence") or ():
        pos = frame.get("PlanePositionSlideSequence")
        if pos and "ZOffsetInSlideCoordinateSystem" in pos[0]:
            planes.append(float(pos[0].ZOffsetInSlideCoordinateSystem) / 1000.0)
    n_planes = int(ds.get("TotalPixelMatrixFocalPlanes", 1) or 1)
    if planes:
        focal = tuple(sorted(set(planes)))
    else:
        step = z_spacing or 0.0
        focal = tuple(z0_mm + k * step for k in range(n_planes))
    paths = tuple(
        str(item.get("OpticalPathIdentifier", "")) for item in ds.get("OpticalPathSequence") or ()
    )
    return ImageGeometry(
        sop_instance_uid=str(ds.SOPInstanceUID),
        sop_class_uid=str(ds.SOPClassUID),
        columns=int(ds.TotalPixelMatrixColumns),
        rows=int(ds.TotalPixelMatrixRows),
        frame_of_reference_uid=str(ds.FrameOfReferenceUID) if "FrameOfReferenceUID" in ds else None,
        origin_mm=origin,
        orientation=tuple(float(v) for v in orientation[:6]),  # type: ignore[arg-type]
        spacing_mm=spacing,
        focal_planes_mm=focal,
        optical_paths=paths,
    )


# -- checks ----------------------------------------------------------------------------------


def check_group(group: AnnotationGroup) -> None:
    """Raise :class:`MetadataError` unless ``group`` obeys PS3.3 C.37.1.2 (graphic types):
    POINT 1 point, RECTANGLE / ELLIPSE 4, POLYLINE >= 2, POLYGON >= 3 with first != last."""
    coords, offsets = group.coordinates, group.offsets
    name = f"annotation group {group.label!r} ({group.graphic_type.value})"
    if coords.ndim != 2 or coords.shape[1] != 2 or len(offsets) == 0:
        raise MetadataError(f"{name} has no coordinates or they are not (x, y) pairs")
    if offsets[0] != 0 or np.any(np.diff(offsets) <= 0) or offsets[-1] >= len(coords):
        raise MetadataError(f"{name}: annotation offsets are not increasing from 0")
    if not np.all(np.isfinite(coords)):
        raise MetadataError(f"{name} has coordinates that are not finite numbers")
    lengths = group.ends() - offsets
    gt = group.graphic_type
    bad: np.ndarray
    if gt in _FIXED:
        bad = lengths != _FIXED[gt]
        need = f"exactly {_FIXED[gt]} point(s)"
    elif gt is GraphicType.POLYLINE:
        bad = lengths < 2
        need = "at least 2 points"
    else:
        first, last = coords[offsets], coords[group.ends() - 1]
        bad = (lengths < 3) | np.all(first == last, axis=1)
        need = "at least 3 points, the last not repeating the first"
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise MetadataError(
            f"{name}: annotation {i + 1} has {int(lengths[i])} point(s); "
            f"{gt.value} annotations need {need} (PS3.3 C.37.1.2)"
        )
    for m in group.measurements:
        if len(m.values) != len(offsets):
            raise MetadataError(
                f"{name}: measurement {m.name[2]!r} has {len(m.values)} values for "
                f"{len(offsets)} annotations"
            )


# -- writing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrittenAnnotations:
    path: Path
    sop_instance_uid: str
    series_instance_uid: str
    groups: int
    annotations: int
    coordinate_type: str
    warnings: tuple[str, ...]


def _coded(code: codes.Code) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code[0], scheme_designator=code[1], meaning=code[2])


def _read_source(source: Path | str | Dataset) -> Dataset:
    if isinstance(source, Dataset):
        return source
    try:
        # long values (the OME-XML carrier of the image: 240 MB with a million ROIs) are left
        # in the file; the annotation instance takes only identifying attributes from it
        return dcmread(source, stop_before_pixels=True, defer_size="64 KB")
    except Exception as exc:
        raise InputError(
            f"cannot read the image the annotations refer to ({exc})", path=str(source)
        ) from None


def write_dicom_annotations(
    groups: Sequence[AnnotationGroup],
    source_image: Path | str | Dataset,
    out_path: Path | str,
    *,
    series_instance_uid: str | None = None,
    series_number: int | None = None,
    instance_number: int = 1,
    content_label: str = "ANNOTATIONS",
    content_description: str | None = "Annotations converted by omedicom",
) -> WrittenAnnotations:
    """Write ``groups`` as one Microscopy Bulk Simple Annotations instance at ``out_path``.

    ``source_image`` is the base level (``level0.dcm``) of the slide: the instance joins its
    Study (Patient, Study, Specimen copied by highdicom), references it (Referenced Image
    Sequence, Pixel Origin Interpretation VOLUME) and, for 3D, shares its Frame of Reference.
    A new series is made unless ``series_instance_uid`` is given (ANN is its own modality).
    The file is written under a temporary name and renamed into place.
    """
    import highdicom as hd

    out_path = Path(out_path)
    ds = _read_source(source_image)
    geo = image_geometry(ds)
    warnings: list[str] = []
    if not groups:
        raise MetadataError("there are no annotations to write")
    for g in groups:
        check_group(g)
    three_d = len(geo.focal_planes_mm) > 1 and any(g.z is not None for g in groups)
    if not three_d:
        groups = _inside(groups, geo, warnings)
    hd_groups = []
    total = 0
    for number, group in enumerate(groups, start=1):
        hd_groups.append(_hd_group(hd, number, group, geo, three_d, warnings))
        total += group.count
    if series_number is None:
        try:
            series_number = int(ds.get("SeriesNumber", 0) or 0) + 1
        except ValueError:
            series_number = 2
    series_uid = series_instance_uid or generate_uid()
    ann = hd.ann.MicroscopyBulkSimpleAnnotations(
        source_images=[ds],
        annotation_coordinate_type="3D" if three_d else "2D",
        annotation_groups=hd_groups,
        series_instance_uid=series_uid,
        series_number=series_number,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer="omedicom",
        manufacturer_model_name="omedicom",
        software_versions=f"omedicom {__version__}",
        device_serial_number="Unknown",
        content_label=content_label,
        content_description=content_description,
        pixel_origin_interpretation="VOLUME",
    )
    if "SeriesDescription" not in ann:
        ann.SeriesDescription = "Annotations"
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.part")
    try:
        ann.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, out_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write the annotations ({exc})", path=str(out_path)) from None
    return WrittenAnnotations(
        out_path,
        str(ann.SOPInstanceUID),
        series_uid,
        len(hd_groups),
        total,
        "3D" if three_d else "2D",
        tuple(warnings),
    )


class NothingInside(MetadataError):
    """Every annotation lies outside the image the instance would reference."""


def _inside(
    groups: Sequence[AnnotationGroup], geo: ImageGeometry, warnings: list[str]
) -> list[AnnotationGroup]:
    """The groups brought inside the referenced Total Pixel Matrix (:mod:`.bounds`); groups
    with nothing inside are left out, and :class:`NothingInside` is raised when none is left."""
    kept = []
    for number, group in enumerate(groups, start=1):
        fitted = fit_to_image(
            group, geo.columns, geo.rows, f"annotation group {number} ({group.label!r})"
        )
        if fitted.note:
            warnings.append(fitted.note)
        if fitted.group is not None:
            kept.append(fitted.group)
    if not kept:
        raise NothingInside(
            f"every annotation lies outside the image (0..{geo.columns} x 0..{geo.rows} "
            "pixels); no annotation instance was written",
            hint="check that the annotations belong to this slide and are in its level-0 pixels",
        )
    return kept


def _hd_group(
    hd: Any,
    number: int,
    group: AnnotationGroup,
    geo: ImageGeometry,
    three_d: bool,
    warnings: list[str],
) -> Any:
    provenance = dict(group.provenance)
    name = f"annotation group {number} ({group.label!r})"
    # TheZ: a focal plane in 3D; a single-plane image takes plane 0 as it is
    z_mm: float | None = None
    if group.z is not None:
        if three_d and group.z < len(geo.focal_planes_mm):
            z_mm = geo.focal_planes_mm[group.z]
        else:
            provenance["ome:z"] = str(group.z)
            if group.z >= len(geo.focal_planes_mm):
                warnings.append(
                    f"{name} is on focal plane {group.z} (TheZ) but the image has "
                    f"{len(geo.focal_planes_mm)}; it is written for all planes"
                )
    path_id: str | None = None
    if group.channel is not None:
        if group.channel < len(geo.optical_paths) and len(geo.optical_paths) > 1:
            path_id = geo.optical_paths[group.channel]
        else:
            provenance["ome:c"] = str(group.channel)
            if group.channel >= len(geo.optical_paths):
                warnings.append(
                    f"{name} refers to channel {group.channel} (TheC) but the image has "
                    f"{len(geo.optical_paths)} optical path(s); it is written for all paths"
                )
    coords = np.ascontiguousarray(group.coordinates, dtype=np.float64)
    if not three_d:
        data = coords  # inside the image: see _inside
    else:
        xy = geo.to_slide(coords)
        z = z_mm if z_mm is not None else geo.focal_planes_mm[0]
        data = np.column_stack((xy, np.full(len(xy), z)))
    category, type_ = codes.group_codes(group)
    label = group.label or group.graphic_type.value
    if len(label) > 64:  # LO
        provenance["label"] = label
        label = label[:64]
    generation = group.generation if group.generation else "MANUAL"
    algorithm = None
    if generation != "MANUAL":
        algo = group.algorithm or AnnotationGroup.Algorithm("unknown", "unknown")
        algorithm = hd.AlgorithmIdentificationSequence(
            name=algo.name, family=_coded(algo.family), version=algo.version or "unknown"
        )
    color = hd.color.CIELabColor.from_rgb(*group.color) if group.color else None
    first = data[group.offsets[0] : group.ends()[0]]
    item = hd.ann.AnnotationGroup(
        number=number,
        uid=group.uid or generate_uid(),
        label=label,
        annotated_property_category=_coded(category),
        annotated_property_type=_coded(type_),
        graphic_type=group.graphic_type.value,
        graphic_data=[first],
        algorithm_type=generation,
        algorithm_identification=algorithm,
        description=group.description,
        display_color=color,
    )
    # the bulk arrays, encoded as highdicom encodes them (ann/content.py)
    for keyword in ("PointCoordinatesData", "DoublePointCoordinatesData"):
        if keyword in item:
            delattr(item, keyword)
    if three_d:
        item.CommonZCoordinateValue = float(data[0, 2])
        flat = data[:, :2].ravel()
        item.AnnotationAppliesToAllZPlanes = "NO" if z_mm is not None else "YES"
    else:
        flat = data.ravel()
    dims = 2
    item.NumberOfAnnotations = group.count
    item.DoublePointCoordinatesData = np.ascontiguousarray(flat, dtype="<f8").tobytes()
    if group.graphic_type in (GraphicType.POLYLINE, GraphicType.POLYGON):
        index = (group.offsets.astype(np.int64) * dims + 1).astype("<u4")
        item.LongPrimitivePointIndexList = index.tobytes()
    item._graphic_data = {}  # decoded again from the arrays on request
    if path_id is not None:
        item.AnnotationAppliesToAllOpticalPaths = "NO"
        item.ReferencedOpticalPathIdentifier = path_id
    if group.measurements:
        item.MeasurementsSequence = [
            hd.ann.Measurements(
                name=_coded(m.name),
                values=np.asarray(m.values, dtype=np.float64),
                unit=_coded(m.unit),
            )
            for m in group.measurements
        ]
    if provenance or group.objects is not None:
        block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
        if provenance:
            block.add_new(0x01, "UT", json.dumps(provenance, ensure_ascii=False))
        if group.objects is not None:
            block.add_new(0x02, "OL", np.asarray(group.objects, dtype="<u4").tobytes())
    return item


# -- reading ---------------------------------------------------------------------------------


def _raw(item: Dataset, keyword: str) -> bytes | None:
    if keyword not in item:
        return None
    value = item[keyword].value
    return bytes(value) if value is not None else None


def _private(item: Dataset) -> tuple[dict[str, str], np.ndarray | None]:
    try:
        block = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    except KeyError:
        return {}, None
    facts: dict[str, str] = {}
    objects = None
    if 0x01 in block:
        try:
            facts = {str(k): str(v) for k, v in json.loads(block[0x01].value).items()}
        except (ValueError, AttributeError):
            facts = {}
    if 0x02 in block:
        objects = np.frombuffer(bytes(block[0x02].value), dtype="<u4").astype(np.int64)
    return facts, objects


def _code_of(seq: Any) -> codes.Code | None:
    if not seq:
        return None
    c = seq[0]
    return (str(c.CodeValue), str(c.CodingSchemeDesignator), str(c.CodeMeaning))


def read_dicom_annotations(
    paths: Sequence[Path | str],
    images: Dataset | Sequence[Dataset],
    *,
    image_index: int = 0,
) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    """Annotation groups of the ANN instances ``paths`` that belong to the pyramid ``images``
    (its level datasets, level 0 first or the largest; headers are enough).

    2D annotations referencing any level are scaled to level-0 pixels; FRAME-relative ones
    are shifted by their TILED_FULL frame position. 3D annotations (mm) are mapped back to
    level-0 pixels through the origin, orientation and spacing of the base level, and their Z
    to the nearest focal plane. Instances that refer to another image or Frame of Reference
    are left out with a warning.
    """
    import highdicom as hd

    levels = [images] if isinstance(images, Dataset) else list(images)
    if not levels:
        raise MetadataError("no image to relate the annotations to")
    base = max(levels, key=lambda d: int(d.TotalPixelMatrixColumns))
    geo = image_geometry(base)
    by_uid = {str(d.SOPInstanceUID): d for d in levels}
    groups: list[AnnotationGroup] = []
    warnings: list[str] = []
    for path in paths:
        try:
            ann = hd.ann.annread(path)
        except Exception as exc:
            raise InputError(
                f"cannot read the annotation instance ({exc})", path=str(path)
            ) from None
        ctype = str(ann.get("AnnotationCoordinateType", ""))
        scale = np.array([1.0, 1.0])
        shift = np.array([0.0, 0.0])
        if ctype == "2D":
            refs = ann.get("ReferencedImageSequence") or []
            ref_uid = str(refs[0].ReferencedSOPInstanceUID) if refs else ""
            ref = by_uid.get(ref_uid)
            if ref is None:
                warnings.append(
                    f"{Path(path).name}: its annotations refer to image {ref_uid or '(none)'}, "
                    "which is not a level of this slide; left out"
                )
                continue
            scale = np.array(
                [
                    geo.columns / int(ref.TotalPixelMatrixColumns),
                    geo.rows / int(ref.TotalPixelMatrixRows),
                ]
            )
            if str(ann.get("PixelOriginInterpretation", "VOLUME")) == "FRAME":
                frames = refs[0].get("ReferencedFrameNumber")
                frame = int(_floats(frames)[0]) if frames is not None else 1
                across = -(-int(ref.TotalPixelMatrixColumns) // int(ref.Columns))
                down = -(-int(ref.TotalPixelMatrixRows) // int(ref.Rows))
                k = (frame - 1) % (across * down)
                shift = np.array([(k % across) * int(ref.Columns), (k // across) * int(ref.Rows)])
        elif ctype == "3D":
            if str(ann.get("FrameOfReferenceUID", "")) != (geo.frame_of_reference_uid or ""):
                warnings.append(
                    f"{Path(path).name}: its 3D annotations are in another Frame of Reference "
                    "than this slide; left out"
                )
                continue
        else:
            raise InputError(
                f"Annotation Coordinate Type is {ctype or 'missing'}; it must be 2D or 3D",
                path=str(path),
            )
        for item in ann.AnnotationGroupSequence:
            group = _read_group(item, ctype, geo, scale, shift, image_index, warnings, path)
            if group is not None:
                groups.append(group)
    return tuple(groups), tuple(warnings)


def _read_group(
    item: Any,
    ctype: str,
    geo: ImageGeometry,
    scale: np.ndarray,
    shift: np.ndarray,
    image_index: int,
    warnings: list[str],
    path: Path | str,
) -> AnnotationGroup | None:
    label = str(item.get("AnnotationGroupLabel", ""))
    where = f"{Path(path).name} group {item.get('AnnotationGroupNumber', '?')} ({label!r})"
    try:
        graphic = GraphicType(str(item.GraphicType))
    except (AttributeError, ValueError):
        warnings.append(f"{where}: graphic type {item.get('GraphicType')!r} unknown; left out")
        return None
    raw = _raw(item, "DoublePointCoordinatesData")
    values = (
        np.frombuffer(raw, dtype="<f8")
        if raw is not None
        else np.frombuffer(_raw(item, "PointCoordinatesData") or b"", dtype="<f4").astype(
            np.float64
        )
    )
    common_z = _floats(item.get("CommonZCoordinateValue"))
    dims = 2 if ctype == "2D" or common_z else 3
    if values.size % dims:
        warnings.append(f"{where}: {values.size} coordinate values are not {dims}-tuples; left out")
        return None
    points = values.reshape(-1, dims)
    n = int(item.get("NumberOfAnnotations", 0) or 0)
    if graphic in _FIXED:
        offsets = np.arange(n, dtype=np.int64) * _FIXED[graphic]
    else:
        lppil = _raw(item, "LongPrimitivePointIndexList") or b""
        offsets = (np.frombuffer(lppil, dtype="<u4").astype(np.int64) - 1) // dims
    if n == 0 or len(offsets) != n or (len(offsets) and offsets[-1] >= len(points)):
        warnings.append(f"{where}: Number of Annotations does not match its coordinates; left out")
        return None
    facts, objects = _private(item)
    z: int | None = None
    if ctype == "3D":
        zs = points[:, 2] if dims == 3 else np.full(len(points), common_z[0])
        xy = geo.to_pixels(points[:, :2])
        if str(item.get("AnnotationAppliesToAllZPlanes", "NO")) != "YES":
            planes = np.array(geo.focal_planes_mm)
            nearest = np.abs(planes[None, :] - np.unique(zs)[:, None]).argmin(axis=1)
            z = int(nearest[0])
            if len(set(nearest.tolist())) > 1:
                warnings.append(
                    f"{where}: annotations on several focal planes are read as plane {z}"
                )
    else:
        xy = points * scale + shift
    if z is None and "ome:z" in facts:
        z = int(facts.pop("ome:z"))
    channel: int | None = None
    if str(item.get("AnnotationAppliesToAllOpticalPaths", "YES")) == "NO":
        ids = item.get("ReferencedOpticalPathIdentifier")
        ident = str(ids[0] if isinstance(ids, (list, tuple)) or hasattr(ids, "append") else ids)
        if ident in geo.optical_paths:
            channel = geo.optical_paths.index(ident)
        else:
            warnings.append(f"{where}: optical path {ident!r} is not in the image")
    if channel is None and "ome:c" in facts:
        channel = int(facts.pop("ome:c"))
    facts.pop("ome:z", None)
    facts.pop("ome:c", None)
    if "label" in facts:
        label = facts.pop("label")
    measurements = []
    for m in item.get("MeasurementsSequence") or ():
        mv = m.MeasurementValuesSequence[0]
        stored = np.frombuffer(bytes(mv.FloatingPointValues), dtype="<f4").astype(np.float64)
        column = np.full(n, np.nan)
        if "AnnotationIndexList" in mv:
            index = np.frombuffer(bytes(mv.AnnotationIndexList), dtype="<u4").astype(np.int64) - 1
            column[index] = stored
        else:
            column[: len(stored)] = stored
        measurements.append(
            AnnotationGroup.Measurement(
                _code_of(m.ConceptNameCodeSequence),  # type: ignore[arg-type]
                _code_of(m.MeasurementUnitsCodeSequence),  # type: ignore[arg-type]
                column,
            )
        )
    algorithm = None
    algo_seq = item.get("AnnotationGroupAlgorithmIdentificationSequence")
    if algo_seq:
        a = algo_seq[0]
        algorithm = AnnotationGroup.Algorithm(
            str(a.get("AlgorithmName", "")),
            str(a.get("AlgorithmVersion", "")),
            _code_of(a.get("AlgorithmFamilyCodeSequence"))
            or ("123109", "DCM", "Manual Processing"),
        )
    lab = item.get("RecommendedDisplayCIELabValue")
    color = codes.rgb_from_cielab([int(v) for v in lab]) if lab else None
    if objects is not None and len(objects) != n:
        objects = None
    description = item.get("AnnotationGroupDescription")
    return AnnotationGroup(
        label=label,
        graphic_type=graphic,
        coordinates=np.ascontiguousarray(xy, dtype=np.float64),
        offsets=offsets,
        description=str(description) if description else None,
        color=color,
        z=z,
        channel=channel,
        property_category=_code_of(item.get("AnnotationPropertyCategoryCodeSequence")),
        property_type=_code_of(item.get("AnnotationPropertyTypeCodeSequence")),
        measurements=tuple(measurements),
        image_index=image_index,
        uid=str(item.get("AnnotationGroupUID", "")) or None,
        generation=str(item.get("AnnotationGroupGenerationType", "MANUAL") or "MANUAL"),
        algorithm=algorithm,
        objects=objects,
        provenance=tuple(facts.items()),
    )


def with_image_index(groups: Sequence[AnnotationGroup], index: int) -> tuple[AnnotationGroup, ...]:
    return tuple(replace(g, image_index=index) for g in groups)
