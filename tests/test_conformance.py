"""The conformance suite on DICOM WSI series: good series pass; each check trips on a series
broken on purpose (one attribute of one level changed), with the right check id.

Good series: our own conversions (``cases``) and a PixelMed TIFFToDicom conversion of a libvips
pyramid. Broken ones are copies of a good one with one change made by pydicom.
"""

from __future__ import annotations

import json
from pathlib import Path

import imagecodecs
import jsonschema
import numpy as np
import pydicom
import pytest
from conftest import REPO, Case, run_cli
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pydicom.valuerep import DSfloat
from test_conformance_support import (
    WSI_BASE_CASE,
    broken_copy,
    edit,
    frames,
    ids,
    pixelmed_series,
    plane_positions,
    run,
    set_frames,
    set_spacing,
    spacing,
)

from conformance import dicom3tools
from conformance.catalog import CHECKS
from conformance.findings import Severity
from conformance.runner import _guard

SCHEMA = json.loads((REPO / "conformance" / "report.schema.json").read_text())
needs_dicom3tools = pytest.mark.skipif(
    not dicom3tools.available(), reason="dicom3tools is not installed"
)


@pytest.fixture
def base(cases: dict[str, Case]) -> Path:
    """Our conversion of a tifffile pyramid: level0..2, label, macro, thumbnail."""
    return cases[WSI_BASE_CASE].out


# -- good series pass ----------------------------------------------------------------------------


@needs_dicom3tools
def test_our_output_passes(case: Case) -> None:
    report = run(case.out, tools=True)
    assert report.exit_code == 0, [f for f in report.findings if f.severity is Severity.ERROR]
    assert {"WSI-spacing", "WSI-frame-count", "TOOL-dciodvfy"} <= report.checks_run
    assert not ids(report, Severity.WARNING) - {"TOOL-dciodvfy"}


@needs_dicom3tools
def test_pixelmed_series_from_a_libvips_pyramid_passes() -> None:
    series = pixelmed_series()
    report = run(series, tools=True)
    assert report.exit_code == 0, [f for f in report.findings if f.severity is Severity.ERROR]
    assert sorted(report.levels.values()) == list(range(len(report.files)))  # one level per file
    assert len(report.files) >= 3


# -- one change, one check ---------------------------------------------------------------------


def _level_file(series: Path, level: int) -> str:
    """The file of pyramid level ``level`` (PixelMed names files by its own counter)."""
    report = run(series)
    return next(Path(f).name for f, lvl in report.levels.items() if lvl == level)


def _scale_spacing(ds: Dataset) -> None:
    row, col = spacing(ds)
    set_spacing(ds, row * 1.1, col * 1.1)


def _more_frames(ds: Dataset) -> None:
    ds.NumberOfFrames = int(ds.NumberOfFrames) + 1


def _wider(ds: Dataset) -> None:
    ds.TotalPixelMatrixColumns = int(ds.TotalPixelMatrixColumns) + 2 * int(ds.Columns)


def _imaged_volume(ds: Dataset) -> None:
    ds.ImagedVolumeWidth = float(ds.ImagedVolumeWidth) * 1.02


def _frame_of_reference(ds: Dataset) -> None:
    ds.FrameOfReferenceUID = generate_uid()


SERIES_CHANGES = [
    ("PixelSpacing", _scale_spacing, "WSI-spacing"),
    ("NumberOfFrames", _more_frames, "WSI-frame-count"),
    ("TotalPixelMatrixColumns", _wider, "WSI-spacing"),
    ("TotalPixelMatrixColumns", _wider, "WSI-frame-count"),
    ("ImagedVolumeWidth", _imaged_volume, "WSI-imaged-volume"),
    ("FrameOfReferenceUID", _frame_of_reference, "WSI-frame-of-reference"),
]


@pytest.mark.parametrize("writer", ["omedicom", "pixelmed"])
@pytest.mark.parametrize(("attribute", "change", "check_id"), SERIES_CHANGES)
def test_one_altered_level_is_caught(
    writer: str, attribute: str, change, check_id: str, cases: dict[str, Case], tmp_path: Path
) -> None:
    series = cases[WSI_BASE_CASE].out if writer == "omedicom" else pixelmed_series()
    name = _level_file(series, 1)
    assert check_id not in ids(run(series))
    report = run(broken_copy(series, tmp_path, name, change))
    assert check_id in ids(report, file=name), report.sorted()
    assert report.exit_code == 1
    hits = [f for f in report.findings if f.id == check_id]
    assert all(f.location.file.endswith(name) and f.location.level == 1 for f in hits)


def test_spacing_within_level_rounding_is_accepted(base: Path, tmp_path: Path) -> None:
    """Level sizes are rounded: a spacing off by less than one pixel of the level is fine."""

    def nudge(ds: Dataset) -> None:
        row, col = spacing(ds)
        set_spacing(ds, row * (1 + 0.5 / int(ds.TotalPixelMatrixRows)), col)

    assert "WSI-spacing" not in ids(run(broken_copy(base, tmp_path, "level1.dcm", nudge)))


def test_imaged_volume_disagreeing_with_every_level_is_an_extent_error(
    base: Path, tmp_path: Path
) -> None:
    out = broken_copy(base, tmp_path, "level0.dcm", _imaged_volume)
    for name in ("level1.dcm", "level2.dcm", "thumbnail.dcm"):
        edit(out / name, _imaged_volume)
    report = run(out)
    assert "WSI-extent" in ids(report)
    assert "WSI-imaged-volume" not in ids(report)  # the same on every level


def test_zero_imaged_volume_depth(base: Path, tmp_path: Path) -> None:
    def flat(ds: Dataset) -> None:
        ds.ImagedVolumeDepth = 0.0

    assert "WSI-imaged-volume" in ids(run(broken_copy(base, tmp_path, "level0.dcm", flat)))


def test_origin_moved_on_one_level(base: Path, tmp_path: Path) -> None:
    def move(ds: Dataset) -> None:
        item = ds.TotalPixelMatrixOriginSequence[0]
        item.XOffsetInSlideCoordinateSystem = float(item.XOffsetInSlideCoordinateSystem) + 0.5

    report = run(broken_copy(base, tmp_path, "level2.dcm", move))
    assert ids(report) == {"WSI-origin"}


def test_orientation(base: Path, tmp_path: Path) -> None:
    def rotate(ds: Dataset) -> None:
        ds.ImageOrientationSlide = [1, 0, 0, 0, 1, 0]

    def skew(ds: Dataset) -> None:
        ds.ImageOrientationSlide = [0, 1, 0, 1, 1, 0]

    rotated = run(broken_copy(base, tmp_path, "level1.dcm", rotate, "rotated"))
    assert ids(rotated) == {"WSI-orientation"}
    assert all("differs from the base level" in f.message for f in rotated.findings)
    skewed = run(broken_copy(base, tmp_path, "level0.dcm", skew, "skewed"))
    assert any(
        "orthogonal unit vectors" in f.message for f in skewed.findings if f.id == "WSI-orientation"
    )


def test_pyramid_split_across_pyramid_uids(base: Path, tmp_path: Path) -> None:
    def new_pyramid(ds: Dataset) -> None:
        ds.PyramidUID = generate_uid()

    report = run(broken_copy(base, tmp_path, "level1.dcm", new_pyramid))
    assert "WSI-pyramid-uid" in ids(report)


def test_pyramid_uid_missing_on_one_level(base: Path, tmp_path: Path) -> None:
    def drop(ds: Dataset) -> None:
        del ds.PyramidUID

    report = run(broken_copy(base, tmp_path, "level2.dcm", drop))
    assert "WSI-pyramid-uid" in ids(report, file="level2.dcm")


def test_patient_differs_on_one_level(base: Path, tmp_path: Path) -> None:
    def other(ds: Dataset) -> None:
        ds.PatientID = "SOMEONE-ELSE"

    report = run(broken_copy(base, tmp_path, "level1.dcm", other))
    assert ids(report) == {"WSI-study-patient"}
    assert report.findings[0].location.attribute == "PatientID"


def test_frame_positions_undefined(base: Path, tmp_path: Path) -> None:
    def undefined(ds: Dataset) -> None:
        del ds.DimensionOrganizationType

    assert ids(run(broken_copy(base, tmp_path, "level0.dcm", undefined))) == {"WSI-tile-grid"}


def test_explicit_positions_that_contradict_tiled_full(base: Path, tmp_path: Path) -> None:
    def swapped(items: list[Dataset]) -> None:
        a, b = (items[i].PlanePositionSlideSequence[0] for i in (0, 1))
        a.ColumnPositionInTotalImagePixelMatrix, b.ColumnPositionInTotalImagePixelMatrix = (
            b.ColumnPositionInTotalImagePixelMatrix,
            a.ColumnPositionInTotalImagePixelMatrix,
        )

    right = run(broken_copy(base, tmp_path, "level1.dcm", plane_positions, "right"))
    assert not ids(right)
    wrong = run(
        broken_copy(base, tmp_path, "level1.dcm", lambda ds: plane_positions(ds, swapped), "wrong")
    )
    assert ids(wrong) == {"WSI-tile-grid"}


def _sparse(change=None):
    def apply(ds: Dataset) -> None:
        ds.DimensionOrganizationType = "TILED_SPARSE"
        plane_positions(ds, change)

    return apply


def test_tiled_sparse_positions(base: Path, tmp_path: Path) -> None:
    def overlap(items: list[Dataset]) -> None:
        items[1].PlanePositionSlideSequence[0].ColumnPositionInTotalImagePixelMatrix = 100

    def outside(items: list[Dataset]) -> None:
        items[2].PlanePositionSlideSequence[0].RowPositionInTotalImagePixelMatrix = 5000

    assert not ids(run(broken_copy(base, tmp_path, "level1.dcm", _sparse(), "clean")))
    overlapping = run(broken_copy(base, tmp_path, "level1.dcm", _sparse(overlap), "overlap"))
    assert ids(overlapping) == {"WSI-sparse-positions"}
    assert "overlap" in overlapping.findings[0].message
    out = run(broken_copy(base, tmp_path, "level1.dcm", _sparse(outside), "outside"))
    assert ids(out) == {"WSI-sparse-positions"}
    assert "frame 3" in out.findings[0].message


def test_tiled_sparse_frame_count(base: Path, tmp_path: Path) -> None:
    def fewer(items: list[Dataset]) -> None:
        del items[-1]

    assert "WSI-frame-count" in ids(run(broken_copy(base, tmp_path, "level1.dcm", _sparse(fewer))))


def test_image_type(base: Path, tmp_path: Path) -> None:
    def label_in_pyramid(ds: Dataset) -> None:
        ds.PyramidUID = generate_uid()

    def secondary(ds: Dataset) -> None:
        ds.ImageType = ["DERIVED", "SECONDARY", "VOLUME", "RESAMPLED"]

    def base_says_resampled(ds: Dataset) -> None:
        ds.ImageType = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        ds.SharedFunctionalGroupsSequence[0].WholeSlideMicroscopyImageFrameTypeSequence[
            0
        ].FrameType = ds.ImageType

    assert ids(run(broken_copy(base, tmp_path, "label.dcm", label_in_pyramid, "a"))) == {
        "WSI-image-type"
    }
    assert ids(run(broken_copy(base, tmp_path, "level1.dcm", secondary, "b"))) == {"WSI-image-type"}
    warned = run(broken_copy(base, tmp_path, "level0.dcm", base_says_resampled, "c"))
    assert not ids(warned)
    assert "WSI-image-type" in ids(warned, Severity.WARNING)


def _z_stack(
    tmp_path: Path, corpus: Path, z_offsets_um: list[float] | None, spacing_mm: float | None
) -> Path:
    """highdicom's 10 x 10-tile test image made a two-plane TILED_FULL z-stack."""
    path = tmp_path / "zstack.dcm"
    ds = pydicom.dcmread(corpus / "dicom" / "highdicom__sm_image.dcm")
    n = int(ds.NumberOfFrames)
    ds.PixelData = ds.PixelData * 2
    ds.NumberOfFrames = 2 * n
    ds.TotalPixelMatrixFocalPlanes = 2
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    if spacing_mm is not None:
        measures.SpacingBetweenSlices = spacing_mm
    if z_offsets_um is not None:
        plane_positions(ds)
        for f, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
            item.PlanePositionSlideSequence[0].ColumnPositionInTotalImagePixelMatrix = (
                f % 5
            ) * 10 + 1
            item.PlanePositionSlideSequence[0].RowPositionInTotalImagePixelMatrix = (
                f // 5 % 5
            ) * 10 + 1
            item.PlanePositionSlideSequence[0].ZOffsetInSlideCoordinateSystem = z_offsets_um[f // n]
    ds.save_as(path, enforce_file_format=True)
    return path


def test_focal_planes(corpus: Path, tmp_path: Path) -> None:
    for label, z, step, bad in (
        ("even", [0.0, 2.0], 0.002, False),
        ("no-spacing", None, None, True),
        ("uneven", [0.0, 3.5], 0.002, True),
        ("decreasing", [2.0, 0.0], 0.002, True),
    ):
        folder = tmp_path / label
        folder.mkdir()
        found = ids(run(_z_stack(folder, corpus, z, step)))
        assert ("WSI-focal-planes" in found) is bad, (label, found)
        assert found <= {"WSI-focal-planes"}, (label, found)


def test_frame_that_decodes_to_another_size(base: Path, tmp_path: Path) -> None:
    def small_middle_frame(ds: Dataset) -> None:
        f = frames(ds)
        f[len(f) // 2] = imagecodecs.jpeg8_encode(np.zeros((128, 128, 3), np.uint8))
        set_frames(ds, f)

    report = run(broken_copy(base, tmp_path, "level0.dcm", small_middle_frame))
    assert ids(report) == {"WSI-frame-decode"}
    (hit,) = report.findings
    assert hit.location.frame == 11 and "128 x 128" in hit.message  # 20 frames: the middle one


def test_damaged_frame_found_only_with_deep(base: Path, tmp_path: Path) -> None:
    """Frame 2 is neither first, middle nor last: only --deep decodes it."""

    def damage(ds: Dataset) -> None:
        f = frames(ds)
        f[1] = f[1][:300] + bytes(300)
        set_frames(ds, f)

    out = broken_copy(base, tmp_path, "level0.dcm", damage)
    assert not ids(run(out))
    deep = run(out, deep=True)
    assert ids(deep) == {"WSI-frame-decode"}
    assert deep.findings[0].location.frame == 2


def test_pixel_data_with_a_frame_missing(base: Path, tmp_path: Path) -> None:
    def drop_last(ds: Dataset) -> None:
        set_frames(ds, frames(ds)[:-1])

    report = run(broken_copy(base, tmp_path, "level0.dcm", drop_last))
    assert ids(report) == {"DICOM-pixel-data"}
    assert "19 frames" in report.findings[0].message


def test_native_pixel_data_too_short(cases: dict[str, Case], tmp_path: Path) -> None:
    def cut(ds: Dataset) -> None:
        ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]

    series = cases["tifffile-uncompressed"].out
    assert not ids(run(series))
    assert "DICOM-pixel-data" in ids(run(broken_copy(series, tmp_path, "level0.dcm", cut)))


def test_ds_longer_than_16_characters(base: Path, tmp_path: Path) -> None:
    def long_ds(ds: Dataset) -> None:
        item = ds.TotalPixelMatrixOriginSequence[0]
        item.XOffsetInSlideCoordinateSystem = DSfloat(
            "12.2500000000000001", auto_format=False, validation_mode=config.IGNORE
        )

    report = run(broken_copy(base, tmp_path, "level0.dcm", long_ds))
    assert ids(report) == {"DICOM-ds-length"}
    assert report.findings[0].location.attribute == (
        "TotalPixelMatrixOriginSequence[1]/XOffsetInSlideCoordinateSystem"
    )


def test_over_long_values_of_other_vrs(base: Path, tmp_path: Path) -> None:
    def long_sh(ds: Dataset) -> None:
        with pytest.warns(UserWarning):
            ds.AccessionNumber = "A" * 20

    report = run(broken_copy(base, tmp_path, "level0.dcm", long_sh))
    assert ids(report) == {"DICOM-value-length"}
    assert report.findings[0].location.attribute == "AccessionNumber"


# -- inputs, tools, exit codes, JSON ------------------------------------------------------------


def test_unreadable_and_skipped_files(base: Path, tmp_path: Path) -> None:
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "README.txt").write_text("not an image")
    (folder / "cut.dcm").write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\x40")
    report = run(folder)
    assert report.exit_code == 2
    assert ids(report) == {"INPUT-unreadable"}
    assert ids(report, Severity.INFO) == {"INPUT-skipped"}
    assert run(tmp_path / "missing").exit_code == 2
    proc = run_cli("check", str(tmp_path / "missing"))
    assert proc.returncode == 2 and "no such file or folder" in proc.stdout


def test_other_sop_classes_get_generic_checks_only(corpus: Path) -> None:
    report = run(corpus / "dicom" / "highdicom__seg_image_sm_dots.dcm")
    assert ids(report, Severity.INFO) == {"DICOM-sop-class"}
    assert not ids(report)


def test_a_crashing_check_becomes_a_finding() -> None:
    def explodes():
        yield from ()
        raise ZeroDivisionError("boom")

    (f,) = list(_guard("the test check", "x.dcm", explodes))
    assert (f.id, f.severity, f.location.file) == ("SUITE-check-failed", Severity.ERROR, "x.dcm")
    assert "ZeroDivisionError: boom" in f.message


@needs_dicom3tools
def test_dciodvfy_errors_become_findings_with_their_attribute(base: Path, tmp_path: Path) -> None:
    def no_container(ds: Dataset) -> None:
        del ds.ContainerIdentifier

    report = run(broken_copy(base, tmp_path, "level1.dcm", no_container), tools=True)
    hits = [f for f in report.findings if f.id == "TOOL-dciodvfy" and f.severity is Severity.ERROR]
    assert [h.location.attribute for h in hits] == ["ContainerIdentifier"]
    assert hits[0].tool == "dciodvfy" and hits[0].location.level == 1
    assert report.exit_code == 1


@needs_dicom3tools
def test_dcentvfy_sees_inconsistent_entities(base: Path, tmp_path: Path) -> None:
    def other_patient(ds: Dataset) -> None:
        ds.PatientID = "SOMEONE-ELSE"

    report = run(broken_copy(base, tmp_path, "label.dcm", other_patient), tools=True)
    hits = [f for f in report.findings if f.id == "TOOL-dcentvfy" and f.severity is Severity.ERROR]
    assert hits and all("Different PatientID" in f.message for f in hits)
    assert {f.location.file.rsplit("/", 1)[-1] for f in hits} <= {
        "level0.dcm",
        "level1.dcm",
        "level2.dcm",
        "macro.dcm",
        "thumbnail.dcm",
        "label.dcm",
    }


def test_without_dicom3tools_the_report_says_so(base: Path, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()  # a PATH without dciodvfy
    import os
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("omedicom")
    proc = subprocess.run(
        [str(exe), "check", str(base), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bin_dir)},
        check=False,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0
    assert [f["id"] for f in report["findings"]] == ["TOOL-missing"]


def test_cli_exit_codes_and_json_schema(base: Path, tmp_path: Path) -> None:
    broken = broken_copy(base, tmp_path, "level1.dcm", _scale_spacing)
    for path, code in ((base, 0), (broken, 1), (tmp_path / "nothing-here", 2)):
        proc = run_cli("check", path, "--json", "--no-dicom3tools")
        assert proc.returncode == code, proc.stderr
        data = json.loads(proc.stdout)
        jsonschema.validate(data, SCHEMA)
        assert data["exit_code"] == code and data["verdict"] == ("pass" if code == 0 else "fail")
    hit = next(
        f
        for f in json.loads(run_cli("check", broken, "--json").stdout)["findings"]
        if f["id"] == "WSI-spacing"
    )
    assert hit["location"]["level"] == 1 and hit["reference"].startswith("PS3.3 C.7.6.16.2.1")
    assert hit["location"]["attribute"].endswith("PixelSpacing[1]") or hit["location"][
        "attribute"
    ].endswith("PixelSpacing[2]")


def test_text_report_groups_by_file_and_level(base: Path, tmp_path: Path) -> None:
    broken = broken_copy(base, tmp_path, "level1.dcm", _scale_spacing)
    proc = run_cli("check", broken, "--no-dicom3tools")
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    heading = next(
        i for i, line in enumerate(lines) if line.endswith("level1.dcm  [pyramid level 1]")
    )
    block = lines[heading + 1 : lines.index("", heading)]
    assert any(" WSI-spacing " in line for line in block)
    assert block[0].startswith("  error ")
    assert lines[-1] == "verdict: FAIL (errors found) - exit code 1"
    assert any(line.endswith("level0.dcm  [pyramid level 0]: no findings") for line in lines)


def test_help_teaches() -> None:
    proc = run_cli("check", "--help")
    assert proc.returncode == 0
    for needle in ("--against", "--json", "--deep", "exit codes", "examples"):
        assert needle in proc.stdout


def test_every_check_is_documented() -> None:
    readme = (REPO / "conformance" / "README.md").read_text()
    for check_id in CHECKS:
        assert f"`{check_id}`" in readme, check_id


def test_every_check_has_a_test_that_trips_it() -> None:
    """Each catalogued id is named in an assertion of some conformance test (a new check
    without its broken-file test fails here)."""
    sources = "".join(p.read_text() for p in (REPO / "tests").glob("test_conformance*.py"))
    untested = [c for c in CHECKS if f'"{c}"' not in sources]
    assert not untested


def test_file_cut_short_inside_the_pixel_data(base: Path, tmp_path: Path) -> None:
    """pydicom drops the whole dataset of such a file; the header is read again without the
    pixel data, checked, and the damage reported."""
    folder = broken_copy(base, tmp_path, "level1.dcm", lambda ds: None)
    data = (folder / "level0.dcm").read_bytes()
    (folder / "level0.dcm").write_bytes(data[: len(data) * 2 // 3])
    report = run(folder)
    assert ids(report) == {"DICOM-pixel-data"}
    assert any("End of file" in f.message for f in report.findings)
    assert report.levels == {f"{folder.as_posix()}/level{i}.dcm": i for i in range(3)}
