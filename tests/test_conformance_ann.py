"""The conformance suite on Microscopy Bulk Simple Annotations, written by highdicom against our
own converted pyramid, then broken one attribute at a time with pydicom."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import Case
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from test_conformance_support import (
    WSI_BASE_CASE,
    annotation_group,
    copy_series,
    edit,
    ids,
    run,
    slide_mm,
    write_annotations,
)

from conformance import dicom3tools
from conformance.findings import Severity

ANN = "annotations.dcm"


def _groups() -> list:
    return [
        annotation_group(
            1, "POINT", [[[10, 10]], [[1199.5, 999.5]], [[0, 0]]], measurements=[1, 2, 3]
        ),
        annotation_group(
            2, "POLYGON", [[[1, 1], [10, 1], [10, 10]], [[20, 20], [30, 20], [30, 30], [20, 30]]]
        ),
        annotation_group(3, "POLYLINE", [[[1, 1], [10, 1]], [[20, 20], [30, 20], [30, 30]]]),
        annotation_group(4, "RECTANGLE", [[[1, 1], [10, 1], [10, 10], [1, 10]]]),
        annotation_group(5, "ELLIPSE", [[[0, 5], [10, 5], [5, 3], [5, 7]]], measurements=[7.5]),
    ]


@pytest.fixture
def annotated(cases: dict[str, Case], tmp_path: Path) -> Path:
    """Our converted series plus 2D annotations of every graphic type on level 0."""
    folder = copy_series(cases[WSI_BASE_CASE].out, tmp_path / "series")
    write_annotations(folder / "level0.dcm", folder / ANN, _groups())
    return folder


def _edit_group(folder: Path, number: int, change) -> Path:
    def apply(ds: Dataset) -> None:
        change(ds.AnnotationGroupSequence[number - 1])

    edit(folder / ANN, apply)
    return folder


def _points(values: list[float]) -> bytes:
    return np.asarray(values, "<f8").tobytes()


def _index(values: list[int]) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def test_good_annotations_pass(annotated: Path) -> None:
    report = run(annotated)
    assert report.exit_code == 0, report.sorted()
    assert {"ANN-coordinates", "ANN-point-count", "ANN-point-index"} <= report.checks_run


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_dciodvfy_common_z_message_is_a_marked_false_positive(annotated: Path) -> None:
    """dciodvfy flags every 2D group for Common Z; the groups have none: the messages are shown,
    marked and not counted as errors."""
    report = run(annotated, tools=True)
    flagged = [
        f
        for f in report.findings
        if f.id == "TOOL-dciodvfy" and "CommonZCoordinateValue" in f.message
    ]
    assert len(flagged) == 5
    for f in flagged:
        assert f.severity is Severity.WARNING and f.tool_severity == "error"
        assert "Verify" in f.known_false_positive.source and "2D" in f.known_false_positive.reason
    assert report.exit_code == 0


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_common_z_really_present_is_not_excused(annotated: Path) -> None:
    _edit_group(annotated, 2, lambda g: setattr(g, "CommonZCoordinateValue", [0.0]))
    report = run(annotated, tools=True)
    assert "ANN-common-z" in ids(report)
    real = [f for f in report.findings if f.id == "TOOL-dciodvfy" and "[2]/CommonZ" in f.message]
    assert real and real[0].severity is Severity.ERROR and real[0].known_false_positive is None


def test_point_outside_the_referenced_matrix(annotated: Path) -> None:
    _edit_group(
        annotated,
        1,
        lambda g: setattr(g, "DoublePointCoordinatesData", _points([10, 10, 1210, 5, 0, 0])),
    )
    report = run(annotated)
    assert ids(report) == {"ANN-coordinates"}
    assert "(1210, 5)" in report.findings[0].message and report.findings[0].location.group == 1


def test_polygon_repeating_its_first_point(annotated: Path) -> None:
    def close(g: Dataset) -> None:
        g.DoublePointCoordinatesData = _points(
            [1, 1, 10, 1, 10, 10, 1, 1, 20, 20, 30, 20, 30, 30, 20, 30]
        )
        g.LongPrimitivePointIndexList = _index([1, 9])

    report = run(_edit_group(annotated, 2, close))
    assert ids(report) == {"ANN-point-count"}
    assert "repeat the first point" in report.findings[0].message


def test_polygon_with_two_points_and_wrong_rectangle_count(annotated: Path) -> None:
    def two_points(g: Dataset) -> None:
        g.DoublePointCoordinatesData = _points([1, 1, 10, 1, 20, 20, 30, 20, 30, 30, 20, 30])
        g.LongPrimitivePointIndexList = _index([1, 5])

    _edit_group(annotated, 2, two_points)
    _edit_group(annotated, 4, lambda g: setattr(g, "NumberOfAnnotations", 2))
    report = run(annotated)
    assert ids(report) == {"ANN-point-count"}
    assert {f.location.group for f in report.findings} == {2, 4}


def test_point_index_list(annotated: Path) -> None:
    _edit_group(annotated, 3, lambda g: setattr(g, "LongPrimitivePointIndexList", _index([3, 5])))
    report = run(annotated)
    assert ids(report) == {"ANN-point-index"}
    assert "not 1" in report.findings[0].message


def test_missing_point_index_list(annotated: Path) -> None:
    _edit_group(annotated, 2, lambda g: delattr(g, "LongPrimitivePointIndexList"))
    assert ids(run(annotated)) == {"ANN-point-index"}


def test_referenced_image_not_in_the_series(annotated: Path) -> None:
    def elsewhere(ds: Dataset) -> None:
        ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = generate_uid()

    edit(annotated / ANN, elsewhere)
    assert ids(run(annotated)) == {"ANN-referenced-image"}
    alone = run(annotated / ANN)  # without its images: cannot be verified, a warning only
    assert not ids(alone) and "ANN-referenced-image" in ids(alone, Severity.WARNING)


def test_referenced_image_of_another_frame_of_reference(annotated: Path) -> None:
    edit(annotated / ANN, lambda ds: setattr(ds, "FrameOfReferenceUID", generate_uid()))
    report = run(annotated)
    assert ids(report) == {"ANN-referenced-image"}
    assert "Frame of Reference" in report.findings[0].message


def test_referenced_image_that_is_a_label(annotated: Path) -> None:
    label = pydicom.dcmread(annotated / "label.dcm", stop_before_pixels=True)
    edit(
        annotated / ANN,
        lambda ds: setattr(
            ds.ReferencedImageSequence[0], "ReferencedSOPInstanceUID", label.SOPInstanceUID
        ),
    )
    assert "ANN-referenced-image" in ids(run(annotated))


def test_common_z_in_2d(annotated: Path) -> None:
    _edit_group(annotated, 1, lambda g: setattr(g, "CommonZCoordinateValue", [0.001]))
    report = run(annotated)
    assert ids(report) == {"ANN-common-z"}


def test_measurements_shorter_than_the_annotations(annotated: Path) -> None:
    def short(g: Dataset) -> None:
        values = g.MeasurementsSequence[0].MeasurementValuesSequence[0]
        values.FloatingPointValues = np.asarray([1, 2], "<f4").tobytes()

    report = run(_edit_group(annotated, 1, short))
    assert ids(report) == {"ANN-measurements"}
    assert "2 values for 3 annotations" in report.findings[0].message


def test_measurement_index_list_out_of_range(annotated: Path) -> None:
    def indexed(g: Dataset) -> None:
        values = g.MeasurementsSequence[0].MeasurementValuesSequence[0]
        values.FloatingPointValues = np.asarray([1, 2], "<f4").tobytes()
        values.AnnotationIndexList = _index([1, 4])

    report = run(_edit_group(annotated, 1, indexed))
    assert ids(report) == {"ANN-measurements"}
    assert "outside 1..3" in report.findings[0].message


def test_structure(annotated: Path) -> None:
    def renumber(ds: Dataset) -> None:
        ds.AnnotationGroupSequence[0].AnnotationGroupNumber = 7

    def both_kinds(g: Dataset) -> None:
        g.PointCoordinatesData = np.asarray([1, 1, 2, 2, 3, 3], "<f4").tobytes()

    edit(annotated / ANN, renumber)
    _edit_group(annotated, 2, both_kinds)
    report = run(annotated)
    assert ids(report) == {"ANN-structure"}
    messages = " ".join(f.message for f in report.findings)
    assert "Annotation Group Number 7" in messages and "both are present" in messages


# -- 3D ------------------------------------------------------------------------------------------


def _3d(folder: Path, pixels: list[list[float]], z_mm: float = 0.0005) -> Path:
    level0 = folder / "level0.dcm"
    xy = slide_mm(level0, np.asarray(pixels))
    xyz = np.column_stack([xy, np.full(len(xy), z_mm)])
    write_annotations(
        level0, folder / ANN, [annotation_group(1, "POINT", [[p] for p in xyz])], "3D"
    )
    return folder / ANN


def test_3d_annotations(cases: dict[str, Case], tmp_path: Path) -> None:
    folder = copy_series(cases[WSI_BASE_CASE].out, tmp_path / "series")
    ann = _3d(folder, [[10, 10], [600, 500], [1190, 990]])
    ds = pydicom.dcmread(ann)
    assert "CommonZCoordinateValue" in ds.AnnotationGroupSequence[0]  # highdicom factored it
    assert run(folder).exit_code == 0

    _3d(folder, [[10, 10], [1500, 500]])  # 300 pixels right of the image
    report = run(folder)
    assert ids(report) == {"ANN-coordinates"}


def test_3d_points_sharing_z_must_factor_it(cases: dict[str, Case], tmp_path: Path) -> None:
    folder = copy_series(cases[WSI_BASE_CASE].out, tmp_path / "series")
    ann = _3d(folder, [[10, 10], [600, 500]])

    def unfactor(ds: Dataset) -> None:
        g = ds.AnnotationGroupSequence[0]
        xy = np.frombuffer(g.DoublePointCoordinatesData, "<f8").reshape(-1, 2)
        z = float(g.CommonZCoordinateValue)
        del g.CommonZCoordinateValue
        g.DoublePointCoordinatesData = (
            np.column_stack([xy, np.full(len(xy), z)]).astype("<f8").tobytes()
        )

    edit(ann, unfactor)
    report = run(folder)
    assert ids(report) == {"ANN-common-z"}
    assert "must then be factored out" in report.findings[0].message


def test_3d_without_frame_of_reference(cases: dict[str, Case], tmp_path: Path) -> None:
    folder = copy_series(cases[WSI_BASE_CASE].out, tmp_path / "series")
    edit(_3d(folder, [[10, 10]]), lambda ds: delattr(ds, "FrameOfReferenceUID"))
    assert "ANN-referenced-image" in ids(run(folder))


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_json_report_with_tool_findings_follows_the_schema(annotated: Path) -> None:
    import json

    import jsonschema
    from conftest import REPO

    from conformance.report import as_json

    schema = json.loads((REPO / "conformance" / "report.schema.json").read_text())
    data = as_json(run(annotated, tools=True))
    jsonschema.validate(data, schema)
    marked = [f for f in data["findings"] if "known_false_positive" in f]
    assert marked and all(f["tool"] == "dciodvfy" and f["tool_severity"] for f in marked)
    data["findings"][0]["severity"] = "fatal"  # the schema can fail
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)
