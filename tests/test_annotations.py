"""Annotations both ways (issue 5): OME ROIs <-> DICOM Microscopy Bulk Simple Annotations.

A real OME-TIFF carrying ROIs (tifffile, then its OME-XML replaced by one made with ome-types)
is converted to DICOM with the installed CLI; the annotation instance is written next to its
``level0.dcm`` with :func:`bridge.annotations.write_dicom_annotations` and judged by highdicom,
dciodvfy and the conformance suite's annotation checks. Expected coordinates are computed here
from the shape definitions, independently of the bridge's geometry code.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import highdicom as hd
import numpy as np
import ome_types
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli
from lxml import etree
from ome_types.model import (
    ROI,
    AffineTransform,
    Color,
    Ellipse,
    Line,
    Point,
    Polygon,
    Polyline,
    Rectangle,
    ROIRef,
)

from bridge.annotations import (
    insert_rois,
    read_dicom_annotations,
    rois_from_ome_xml,
    write_dicom_annotations,
)
from bridge.model import GraphicType
from conformance import dicom3tools

SIZE = (640, 480)
ANGLE = math.radians(30)
ROT = (math.cos(ANGLE), -math.sin(ANGLE), 400.0, math.sin(ANGLE), math.cos(ANGLE), 300.0)
RED, GREEN, BLUE, ORANGE = (255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 128, 0)

# name -> (OME shapes, DICOM graphic type, expected DICOM coordinates of each annotation)
POINTS = [(10.5, 20.25), (100.0, 200.0), (320.125, 11.0)]
POLYGON = [(50.0, 50.0), (150.0, 60.0), (170.5, 140.0), (90.0, 180.0), (40.0, 120.0)]
POLYLINE = [(200.0, 20.0), (260.0, 80.0), (300.0, 40.0), (380.25, 90.75)]
LINE = ((10.0, 400.0), (200.0, 460.0))
RECT = (420.0, 20.0, 120.0, 60.0)
ELLIPSE = (500.0, 200.0, 60.0, 25.0)  # centre x, y, radius x, radius y
TRECT = (0.0, 0.0, 80.0, 40.0)  # transformed by ROT


def _affine(t: tuple, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
    a00, a01, a02, a10, a11, a12 = t
    return [(a00 * x + a01 * y + a02, a10 * x + a11 * y + a12) for x, y in pts]


def _corners(x: float, y: float, w: float, h: float) -> list[tuple[float, float]]:
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


EXPECTED = {
    "cells": ("POINT", [[p] for p in POINTS], RED),
    "tumour outline": ("POLYGON", [POLYGON], GREEN),
    "path": ("POLYLINE", [POLYLINE], BLUE),
    "ruler": ("POLYLINE", [list(LINE)], BLUE),
    "box": ("RECTANGLE", [_corners(*RECT)], ORANGE),
    "oval": (
        "ELLIPSE",
        [
            [
                (ELLIPSE[0] - ELLIPSE[2], ELLIPSE[1]),
                (ELLIPSE[0] + ELLIPSE[2], ELLIPSE[1]),
                (ELLIPSE[0], ELLIPSE[1] - ELLIPSE[3]),
                (ELLIPSE[0], ELLIPSE[1] + ELLIPSE[3]),
            ]
        ],
        RED,
    ),
    "tilted box": ("RECTANGLE", [_affine(ROT, _corners(*TRECT))], GREEN),
}


def _pts(pts: list[tuple[float, float]], close: bool = False) -> str:
    pts = [*pts, pts[0]] if close else pts
    return " ".join(f"{x!r},{y!r}" for x, y in pts)


def acceptance_rois() -> list[ROI]:
    """The acceptance shapes of issue 5 as ome-types ROIs (the polygon closed, as some writers
    do, to check that the closing point is dropped)."""
    c = {k: Color(v) for k, v in (("r", RED), ("g", GREEN), ("b", BLUE), ("o", ORANGE))}
    rois = [
        ROI(
            id=f"ROI:{i}",
            name="cells",
            union=[Point(id=f"Shape:p{i}", x=x, y=y, stroke_color=c["r"])],
        )
        for i, (x, y) in enumerate(POINTS)
    ]
    rois += [
        ROI(
            id="ROI:10",
            name="tumour outline",
            union=[Polygon(id="Shape:10", points=_pts(POLYGON, True), stroke_color=c["g"])],
        ),
        ROI(
            id="ROI:11",
            name="path",
            union=[Polyline(id="Shape:11", points=_pts(POLYLINE), stroke_color=c["b"])],
        ),
        ROI(
            id="ROI:12",
            name="ruler",
            union=[
                Line(
                    id="Shape:12",
                    x1=LINE[0][0],
                    y1=LINE[0][1],
                    x2=LINE[1][0],
                    y2=LINE[1][1],
                    stroke_color=c["b"],
                )
            ],
        ),
        ROI(
            id="ROI:13",
            name="box",
            union=[
                Rectangle(
                    id="Shape:13",
                    x=RECT[0],
                    y=RECT[1],
                    width=RECT[2],
                    height=RECT[3],
                    stroke_color=c["o"],
                )
            ],
        ),
        ROI(
            id="ROI:14",
            name="oval",
            union=[
                Ellipse(
                    id="Shape:14",
                    x=ELLIPSE[0],
                    y=ELLIPSE[1],
                    radius_x=ELLIPSE[2],
                    radius_y=ELLIPSE[3],
                    stroke_color=c["r"],
                )
            ],
        ),
        ROI(
            id="ROI:15",
            name="tilted box",
            union=[
                Rectangle(
                    id="Shape:15",
                    x=TRECT[0],
                    y=TRECT[1],
                    width=TRECT[2],
                    height=TRECT[3],
                    stroke_color=c["g"],
                    transform=AffineTransform(
                        a00=ROT[0], a01=ROT[1], a02=ROT[2], a10=ROT[3], a11=ROT[4], a12=ROT[5]
                    ),
                )
            ],
        ),
    ]
    return rois


#: µm, PhysicalSizeX × PhysicalSizeY: not square, so a row/column mix-up in the 3D (slide mm)
#: coordinates or the conformance checks shows.
PIXEL_SIZE = (0.25, 0.26)


def make_ome_tiff_with_rois(path: Path, rois: list[ROI], size: tuple[int, int] = SIZE) -> str:
    """A tifffile OME-TIFF pyramid (non-square pixels) whose OME-XML is replaced by one
    carrying ``rois``."""
    samples.write_tifffile(path, size=size, levels=2, tile=256, pixel_size=PIXEL_SIZE)
    with tifffile.TiffFile(path) as tif:
        ome = ome_types.from_xml(tif.pages.first.description)
    ome.rois = rois
    ome.images[0].roi_refs = [ROIRef(id=r.id) for r in rois]
    xml = ome_types.to_xml(ome)
    tifffile.tiffcomment(path, comment=xml.encode("utf-8"))
    return xml


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The acceptance OME-TIFF, its conversion to DICOM and the ANN instance ``convert``
    wrote for it (the fixture never writes it itself: a convert that drops it fails here)."""
    tmp = tmp_path_factory.mktemp("ann")
    source = tmp / "rois.ome.tif"
    xml = make_ome_tiff_with_rois(source, acceptance_rois())
    out = tmp / "dicom"
    run_cli("convert", source, out, "-q", check=True)
    groups, warnings = rois_from_ome_xml(xml)
    ann_path = out / "annotations.dcm"
    assert ann_path.is_file(), f"omedicom convert wrote no annotations.dcm: {sorted(out.iterdir())}"
    return {
        "source": source,
        "xml": xml,
        "out": out,
        "ann": ann_path,
        "groups": groups,
        "warnings": warnings,
        "level0": pydicom.dcmread(out / "level0.dcm", stop_before_pixels=True),
    }


def _by_label(ann: hd.ann.MicroscopyBulkSimpleAnnotations) -> dict[str, list]:
    found: dict[str, list] = {}
    for g in ann.AnnotationGroupSequence:
        found.setdefault(g.label, []).append(g)
    return found


def test_ome_rois_become_one_group_per_name_and_shape(converted: dict) -> None:
    labels = sorted((g.label, g.graphic_type.value, g.count) for g in converted["groups"])
    assert labels == sorted((name, gt, len(coords)) for name, (gt, coords, _) in EXPECTED.items())
    assert converted["warnings"] == ()


def test_annotation_coordinates_equal_the_ome_shapes(converted: dict) -> None:
    """Read by highdicom: every acceptance shape at the same place within 1e-6 px."""
    ann = hd.ann.annread(converted["ann"])
    assert ann.AnnotationCoordinateType == "2D"
    assert ann.PixelOriginInterpretation == "VOLUME"
    groups = _by_label(ann)
    for name, (gt, expected, color) in EXPECTED.items():
        (group,) = groups[name]
        assert group.graphic_type.value == gt, name
        data = group.get_graphic_data("2D")
        assert len(data) == len(expected), name
        for got, want in zip(data, expected, strict=True):
            assert got.shape == (len(want), 2), name
            np.testing.assert_allclose(got, np.array(want), rtol=0, atol=1e-6, err_msg=name)
        lab = hd.color.CIELabColor.from_dicom_value(
            [int(v) for v in group.RecommendedDisplayCIELabValue]
        )
        assert lab.to_rgb() == color, name


def test_annotation_instance_joins_the_slide(converted: dict) -> None:
    ann = pydicom.dcmread(converted["ann"])
    level0 = converted["level0"]
    assert ann.SOPClassUID == "1.2.840.10008.5.1.4.1.1.91.1"
    assert ann.Modality == "ANN"
    assert ann.StudyInstanceUID == level0.StudyInstanceUID
    assert ann.SeriesInstanceUID != level0.SeriesInstanceUID
    assert ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID == level0.SOPInstanceUID
    assert ann.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    for g in ann.AnnotationGroupSequence:
        assert "DoublePointCoordinatesData" in g  # float64: OME doubles survive exactly


def _real_errors(path: Path) -> list:
    """dciodvfy errors, less the documented false positives (bridge/annotations/README.md)."""
    ds = pydicom.dcmread(path)
    found = dicom3tools.errors(dicom3tools.dciodvfy(path))
    known = getattr(dicom3tools, "known_false_positive", None)
    out = []
    for f in found:
        if known is not None and known(f, ds) is not None:
            continue
        if (
            known is None
            and "CommonZCoordinateValue" in f.message
            and "Only valid for" in (f.message)
        ):
            assert all("CommonZCoordinateValue" not in g for g in ds.AnnotationGroupSequence)
            continue
        out.append(f)
    return out


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_dciodvfy_finds_no_error_in_the_annotations(converted: dict) -> None:
    assert _real_errors(converted["ann"]) == []


def test_conformance_annotation_checks_pass(converted: dict) -> None:
    from conformance import ann as ann_checks
    from conformance import dicomfiles
    from conformance.findings import Severity

    ann = dicomfiles.read(converted["ann"], "annotations.dcm")
    images = [dicomfiles.read(p, p.name) for p in sorted(converted["out"].glob("level*.dcm"))]
    findings = list(ann_checks.check(ann, images))
    assert [f for f in findings if f.severity is Severity.ERROR] == []


def test_conformance_annotation_checks_can_fail(converted: dict, tmp_path: Path) -> None:
    """The same checks trip on a copy whose polygon repeats its first point."""
    from conformance import ann as ann_checks
    from conformance import dicomfiles
    from conformance.findings import Severity

    ds = pydicom.dcmread(converted["ann"])
    for g in ds.AnnotationGroupSequence:
        if g.GraphicType == "POLYGON":
            flat = np.frombuffer(g.DoublePointCoordinatesData, "<f8").copy()
            flat[-2:] = flat[:2]
            g.DoublePointCoordinatesData = flat.tobytes()
    broken = tmp_path / "broken.dcm"
    ds.save_as(broken)
    images = [dicomfiles.read(p, p.name) for p in sorted(converted["out"].glob("level*.dcm"))]
    findings = list(ann_checks.check(dicomfiles.read(broken, broken.name), images))
    assert any(f.severity is Severity.ERROR for f in findings)


def _shape_vertices(shape) -> tuple[str, np.ndarray]:
    """(OME shape kind, vertices after Transform), computed from ome-types objects."""
    kind = type(shape).__name__
    if kind == "Point":
        pts = [(shape.x, shape.y)]
    elif kind == "Line":
        pts = [(shape.x1, shape.y1), (shape.x2, shape.y2)]
    elif kind in ("Polygon", "Polyline"):
        pts = [tuple(map(float, p.split(","))) for p in shape.points.split()]
        if kind == "Polygon" and pts[0] == pts[-1]:
            pts = pts[:-1]
    elif kind == "Rectangle":
        pts = _corners(shape.x, shape.y, shape.width, shape.height)
    else:  # Ellipse: the curve at 8 angles, which any equivalent description reproduces
        t = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        pts = list(
            zip(
                shape.x + shape.radius_x * np.cos(t),
                shape.y + shape.radius_y * np.sin(t),
                strict=True,
            )
        )
    if shape.transform is not None:
        tr = shape.transform
        pts = _affine((tr.a00, tr.a01, tr.a02, tr.a10, tr.a11, tr.a12), pts)
    return kind, np.array(pts, dtype=np.float64)


def _shapes_by_name(ome: ome_types.OME) -> dict[str, list]:
    found: dict[str, list] = {}
    for roi in ome.rois:
        for shape in roi.union:
            found.setdefault(roi.name or shape.text, []).append(shape)
    return found


def _same_ellipse(a: np.ndarray, b: np.ndarray) -> bool:
    """Two point sets on the same ellipse (sampled at different phases): compare by fitting
    the conic through a and testing b on it."""
    x, y = a[:, 0], a[:, 1]
    m = np.column_stack((x * x, x * y, y * y, x, y, np.ones_like(x)))
    conic = np.linalg.svd(m)[2][-1]
    xb, yb = b[:, 0], b[:, 1]
    mb = np.column_stack((xb * xb, xb * yb, yb * yb, xb, yb, np.ones_like(xb)))
    return bool(np.all(np.abs(mb @ conic) < 1e-9 * np.abs(conic).max() * 1e6))


def test_converting_back_gives_the_same_shapes(converted: dict) -> None:
    """DICOM -> OME: same shape types, vertices (within 1e-6 px), names and colours."""
    groups, warnings = read_dicom_annotations([converted["ann"]], converted["level0"])
    assert warnings == ()
    base = ome_types.from_xml(converted["xml"])
    base.rois = []
    base.images[0].roi_refs = []
    back = ome_types.from_xml(insert_rois(ome_types.to_xml(base), groups, 0))
    assert len(back.images[0].roi_refs) == len(back.rois) == 9
    original = _shapes_by_name(ome_types.from_xml(converted["xml"]))
    returned = _shapes_by_name(back)
    assert sorted(original) == sorted(returned)
    for name, shapes_ in original.items():
        got = returned[name]
        assert len(got) == len(shapes_), name
        for a, b in zip(shapes_, got, strict=True):
            kind_a, pts_a = _shape_vertices(a)
            kind_b, pts_b = _shape_vertices(b)
            assert kind_a == kind_b, name
            assert int(a.stroke_color) == int(b.stroke_color), name
            if kind_a == "Ellipse":
                assert _same_ellipse(pts_a, pts_b), name
                assert math.isclose(
                    max(a.radius_x, a.radius_y), max(b.radius_x, b.radius_y), abs_tol=1e-6
                )
            else:
                np.testing.assert_allclose(pts_b, pts_a, rtol=0, atol=1e-6, err_msg=name)


def test_the_round_tripped_ome_xml_is_schema_valid(converted: dict) -> None:
    groups, _ = read_dicom_annotations([converted["ann"]], converted["level0"])
    base = ome_types.from_xml(converted["xml"])
    base.rois = []
    base.images[0].roi_refs = []
    xml = insert_rois(ome_types.to_xml(base), groups, 0)
    schema = etree.XMLSchema(
        etree.parse(os.path.join(os.path.dirname(ome_types.__file__), "ome-2016-06.xsd"))
    )
    assert schema.validate(etree.fromstring(xml.encode())), schema.error_log


def test_focal_plane_and_channel_survive_through_the_private_block(
    converted: dict, tmp_path: Path
) -> None:
    """A single-plane RGB image has no plane 3 nor optical path 2: DICOM says 'all', with a
    warning, and the bridge's private block brings TheZ/TheC back."""
    from dataclasses import replace

    group = replace(converted["groups"][0], z=3, channel=2)
    written = write_dicom_annotations([group], converted["level0"], tmp_path / "a.dcm")
    assert len(written.warnings) == 2
    assert "focal plane 3" in written.warnings[0] and "channel 2" in written.warnings[1]
    ds = pydicom.dcmread(tmp_path / "a.dcm")
    assert ds.AnnotationGroupSequence[0].AnnotationAppliesToAllOpticalPaths == "YES"
    (back,), _ = read_dicom_annotations([tmp_path / "a.dcm"], converted["level0"])
    assert (back.z, back.channel) == (3, 2)


def test_three_d_annotations_map_to_slide_millimetres_and_back(
    converted: dict, tmp_path: Path
) -> None:
    """On a 3-plane image, groups on different planes are written in 3D (mm, Common Z) and
    read back to the same pixels and planes."""
    from dataclasses import replace

    level0 = pydicom.Dataset(converted["level0"])
    level0.TotalPixelMatrixFocalPlanes = 3
    level0.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices = "0.002"
    by_label = {g.label: g for g in converted["groups"]}
    groups = [replace(by_label["cells"], z=0), replace(by_label["tumour outline"], z=2)]
    written = write_dicom_annotations(groups, level0, tmp_path / "3d.dcm")
    assert written.coordinate_type == "3D"
    ds = pydicom.dcmread(tmp_path / "3d.dcm")
    assert ds.FrameOfReferenceUID == level0.FrameOfReferenceUID
    cells = ds.AnnotationGroupSequence[0]
    assert float(cells.CommonZCoordinateValue) == 0.0
    assert float(ds.AnnotationGroupSequence[1].CommonZCoordinateValue) == pytest.approx(0.004)
    # independent check of the mapping: Image Orientation (Slide) and origin of level 0
    o = [float(v) for v in level0.ImageOrientationSlide]
    org = level0.TotalPixelMatrixOriginSequence[0]
    dr, dc = (
        float(v)
        for v in level0.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    )
    xy = np.frombuffer(cells.DoublePointCoordinatesData, "<f8").reshape(-1, 2)
    for (col, row), (x_mm, y_mm) in zip(POINTS, xy.tolist(), strict=True):
        assert x_mm == pytest.approx(
            float(org.XOffsetInSlideCoordinateSystem) + col * dc * o[0] + row * dr * o[3], abs=1e-9
        )
        assert y_mm == pytest.approx(
            float(org.YOffsetInSlideCoordinateSystem) + col * dc * o[1] + row * dr * o[4], abs=1e-9
        )
    back, _ = read_dicom_annotations([tmp_path / "3d.dcm"], level0)
    assert [g.z for g in back] == [0, 2]
    for a, b in zip(groups, back, strict=True):
        np.testing.assert_allclose(b.coordinates, a.coordinates, rtol=0, atol=1e-6)


def test_annotations_of_another_slide_are_left_out(converted: dict) -> None:
    other = pydicom.Dataset(converted["level0"])
    other.SOPInstanceUID = pydicom.uid.generate_uid()
    groups, warnings = read_dicom_annotations([converted["ann"]], other)
    assert groups == ()
    assert "not a level of this slide" in warnings[0]


def test_lower_level_references_are_scaled_to_level0(converted: dict, tmp_path: Path) -> None:
    level1 = pydicom.dcmread(converted["out"] / "level1.dcm", stop_before_pixels=True)
    by_label = {g.label: g for g in converted["groups"]}
    box = by_label["box"]
    sx = int(converted["level0"].TotalPixelMatrixColumns) / int(level1.TotalPixelMatrixColumns)
    sy = int(converted["level0"].TotalPixelMatrixRows) / int(level1.TotalPixelMatrixRows)
    assert sx == sy == 2
    # the box in level-1 pixels, written against level 1: the reader scales it to level 0
    on_level1 = replace(box, coordinates=box.coordinates / [sx, sy])
    written = write_dicom_annotations([on_level1], level1, tmp_path / "l1.dcm")
    assert written.warnings == ()  # inside level 1: nothing moved
    (back,), _ = read_dicom_annotations([tmp_path / "l1.dcm"], [converted["level0"], level1])
    np.testing.assert_allclose(back.coordinates, box.coordinates, atol=1e-6)


def test_group_types_and_codes_come_from_the_mapping_table(converted: dict) -> None:
    ann = hd.ann.annread(converted["ann"])
    groups = _by_label(ann)
    cells = groups["cells"][0]
    assert cells.annotated_property_type.value == "4421005"  # SCT Cell, default for POINT
    box = groups["box"][0]
    assert (box.annotated_property_category.value, box.annotated_property_type.value) == (
        "91723000",
        "85756007",
    )
    assert {g[0].AnnotationGroupGenerationType for g in groups.values()} == {"MANUAL"}
    numbers = [int(g.AnnotationGroupNumber) for g in ann.AnnotationGroupSequence]
    assert numbers == list(range(1, len(numbers) + 1))


def test_labelless_and_text_shapes_keep_their_ome_form(tmp_path: Path) -> None:
    """Shapes named by Text (no ROI Name) come back with Text; a Line stays a Line."""
    xml = ome_types.to_xml(
        ome_types.model.OME(
            images=[
                ome_types.model.Image(
                    id="Image:0",
                    pixels=ome_types.model.Pixels(
                        id="Pixels:0",
                        dimension_order="XYZCT",
                        type="uint8",
                        size_x=10,
                        size_y=10,
                        size_z=1,
                        size_c=1,
                        size_t=1,
                        metadata_only=True,
                    ),
                    roi_refs=[ROIRef(id="ROI:1")],
                )
            ],
            rois=[ROI(id="ROI:1", union=[Line(id="Shape:1", x1=1, y1=2, x2=3, y2=4, text="m")])],
        )
    )
    groups, _ = rois_from_ome_xml(xml)
    assert groups[0].label == "m" and groups[0].graphic_type is GraphicType.POLYLINE
    base = ome_types.from_xml(xml)
    base.rois = []
    base.images[0].roi_refs = []
    back = ome_types.from_xml(insert_rois(ome_types.to_xml(base), groups, 0))
    (shape,) = back.rois[0].union
    assert type(shape).__name__ == "Line" and shape.text == "m" and back.rois[0].name is None


def test_add_rois_to_an_ome_types_document(converted: dict) -> None:
    """The ome-types entry point (for the OME-TIFF writer) gives the same ROIs as insert_rois."""
    from bridge.annotations import add_rois_to_ome, has_rois

    base = ome_types.from_xml(converted["xml"])
    base.rois = []
    base.images[0].roi_refs = []
    assert not has_rois(ome_types.to_xml(base))
    add_rois_to_ome(base, converted["groups"], 0)
    assert has_rois(ome_types.to_xml(base))
    assert len(base.rois) == len(base.images[0].roi_refs) == 9
    again, _ = rois_from_ome_xml(ome_types.to_xml(base))
    assert sorted((g.label, g.count) for g in again) == sorted(
        (g.label, g.count) for g in converted["groups"]
    )
    for a in converted["groups"]:
        b = next(g for g in again if g.label == a.label)
        np.testing.assert_allclose(b.coordinates, a.coordinates, rtol=0, atol=1e-9)


# -- annotations outside the image (issue 12: exit 0 must mean `check` accepts the output) ----


def _group(kind: GraphicType, annotations: list[list[tuple[float, float]]], **kw):
    from bridge.model import AnnotationGroup

    lengths = [len(a) for a in annotations]
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    coords = np.array([p for a in annotations for p in a], dtype=np.float64)
    return AnnotationGroup(
        label=kind.value.lower(), graphic_type=kind, coordinates=coords, offsets=offsets, **kw
    )


def test_outside_annotations_are_dropped_and_edges_clamped() -> None:
    from bridge.annotations.bounds import fit_to_image
    from bridge.model import AnnotationGroup

    far = [(5.0, 2.0**32)]  # wholly outside: dropped
    edge = [(-3.0, 5.0), (12.0, 5.0)]  # crosses the image: clamped to x = 0 and x = 10
    inside = [(1.0, 1.0), (2.0, 2.0)]
    m = AnnotationGroup.Measurement(
        ("a", "b", "area"), ("um2", "UCUM", "um2"), np.array([1, 2, 3.0])
    )
    group = _group(GraphicType.POLYLINE, [[*far, (6.0, 2.0**32)], edge, inside], measurements=(m,))
    fitted = fit_to_image(group, 10, 8, "g")
    assert fitted.group is not None and fitted.note is not None
    assert "1 of 3 annotation(s) lying outside were dropped" in fitted.note
    assert "2 point(s) were moved to the nearest image edge" in fitted.note
    np.testing.assert_array_equal(fitted.group.offsets, [0, 2])
    np.testing.assert_allclose(fitted.group.coordinates, [[0, 5], [10, 5], [1, 1], [2, 2]])
    np.testing.assert_allclose(fitted.group.measurements[0].values, [2, 3])
    # an ellipse cannot lose an endpoint and stay itself: any point outside drops it
    oval = _group(GraphicType.ELLIPSE, [[(-1.0, 4.0), (5.0, 4.0), (2.0, 2.0), (2.0, 6.0)]])
    assert fit_to_image(oval, 10, 8, "e").group is None
    # a group wholly inside comes back as it is, with no note
    same = fit_to_image(_group(GraphicType.POINT, [[(0.0, 0.0)], [(10.0, 8.0)]]), 10, 8, "p")
    assert same.note is None and same.group is not None
    np.testing.assert_array_equal(same.group.coordinates, [[0, 0], [10, 8]])


def test_rois_far_outside_convert_to_an_instance_check_accepts(tmp_path: Path) -> None:
    """A Rectangle at Y = 2**32 (a fuzz finding): convert says it was dropped, writes the
    shapes that lie on the image, and `check` finds no ANN-coordinates error in the output."""
    rois = [
        ROI(
            id="ROI:0",
            name="far",
            union=[Rectangle(id="Shape:0", x=5, y=2.0**32, width=4, height=4)],
        ),
        ROI(
            id="ROI:1",
            name="edge",
            union=[Rectangle(id="Shape:1", x=600, y=10, width=80, height=20)],
        ),
        ROI(id="ROI:2", name="in", union=[Point(id="Shape:2", x=10, y=10)]),
    ]
    source = tmp_path / "far.ome.tif"
    make_ome_tiff_with_rois(source, rois)
    out = tmp_path / "dicom"
    proc = run_cli("convert", source, out, check=True)
    assert "lying outside were dropped" in proc.stderr
    assert "moved to the nearest image edge" in proc.stderr
    ann = hd.ann.annread(out / "annotations.dcm")
    labels = {g.label: g for g in ann.AnnotationGroupSequence}
    assert set(labels) == {"edge", "in"}
    edge = labels["edge"].get_graphic_data("2D")[0]
    assert edge[:, 0].max() == SIZE[0]  # x = 680 clamped to the right edge, 640
    report = run_cli("check", out, "--json")
    findings = json.loads(report.stdout)["findings"]
    assert [f for f in findings if f["id"] == "ANN-coordinates"] == []


def test_rois_all_outside_write_no_annotation_instance(tmp_path: Path) -> None:
    rois = [ROI(id="ROI:0", name="far", union=[Point(id="Shape:0", x=1e9, y=1e9)])]
    source = tmp_path / "far.ome.tif"
    make_ome_tiff_with_rois(source, rois)
    out = tmp_path / "dicom"
    proc = run_cli("convert", source, out, check=True)
    assert "every annotation lies outside the image" in proc.stderr
    assert not (out / "annotations.dcm").exists()
    assert (out / "level0.dcm").exists()
