"""``omedicom check --against``: a converted slide against its source, tile by tile and field by
field. Every conversion of the ``cases`` fixture matches its source; copies with one tile
swapped or one field altered do not, with the right check id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import samples
from conftest import Case, run_cli
from pydicom.dataset import Dataset
from test_conformance_support import (
    WSI_BASE_CASE,
    broken_copy,
    edit,
    frames,
    ids,
    run,
    set_frames,
    set_spacing,
    spacing,
)

from conformance.findings import Severity


def _rt(report) -> set[str]:
    return {
        f.id for f in report.findings if f.id.startswith("RT-") and f.severity is not Severity.INFO
    }


def test_every_conversion_matches_its_source(case: Case) -> None:
    report = run(case.out, against=case.source)
    assert not _rt(report), [f for f in report.findings if f.id.startswith("RT-")]
    assert report.exit_code == 0
    assert {"RT-tiles", "RT-levels", "RT-pixel-size"} <= report.checks_run


def test_the_comparison_runs_both_ways(case: Case) -> None:
    """PATH may be the OME-TIFF and SOURCE the DICOM: the same digests, compared."""
    assert not _rt(run(case.source, against=case.out))


def test_swapped_tiles(cases: dict[str, Case], tmp_path: Path) -> None:
    def swap(ds: Dataset) -> None:
        f = frames(ds)
        f[3], f[4] = f[4], f[3]
        set_frames(ds, f)

    case = cases[WSI_BASE_CASE]
    report = run(broken_copy(case.out, tmp_path, "level0.dcm", swap), against=case.source)
    assert ids(report) == {"RT-tiles"}
    (hit,) = report.findings
    assert hit.location.level == 0 and hit.location.frame == 4 and "frames 4, 5" in hit.message


def test_one_changed_sample_in_an_uncompressed_tile(cases: dict[str, Case], tmp_path: Path) -> None:
    def poke(ds: Dataset) -> None:
        data = bytearray(ds.PixelData)
        data[int(ds.Rows) * int(ds.Columns) * 3 + 5] ^= 0xFF  # frame 2, one sample
        ds.PixelData = bytes(data)

    case = cases["tifffile-uncompressed"]
    report = run(broken_copy(case.out, tmp_path, "level0.dcm", poke), against=case.source)
    assert ids(report) == {"RT-tiles"}
    assert report.findings[0].location.frame == 2


def test_padding_outside_the_image_does_not_count(cases: dict[str, Case], tmp_path: Path) -> None:
    """Edge tiles are padded to full size; what the padding holds is not part of the image."""

    def paint_padding(ds: Dataset) -> None:
        rows, cols = int(ds.Rows), int(ds.Columns)
        width = int(ds.TotalPixelMatrixColumns)
        nx = -(-width // cols)
        data = np.frombuffer(ds.PixelData, np.uint8).copy().reshape(-1, rows, cols, 3)
        data[nx - 1, :, width - (nx - 1) * cols :, :] = 123  # right edge tile, outside the image
        ds.PixelData = data.tobytes()

    case = cases["tifffile-uncompressed"]
    assert not ids(
        run(broken_copy(case.out, tmp_path, "level0.dcm", paint_padding), against=case.source)
    )


def test_pixel_spacing_that_disagrees_with_physical_size(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    """Every level (and the imaged volume) scaled alike: geometrically consistent, but not the
    source's PhysicalSize any more."""

    def scale(ds: Dataset) -> None:
        row, col = spacing(ds)
        set_spacing(ds, row * 2, col * 2)
        ds.ImagedVolumeWidth = float(ds.ImagedVolumeWidth) * 2
        ds.ImagedVolumeHeight = float(ds.ImagedVolumeHeight) * 2

    case = cases[WSI_BASE_CASE]
    out = broken_copy(case.out, tmp_path, "level0.dcm", scale)
    for name in ("level1.dcm", "level2.dcm", "thumbnail.dcm"):
        edit(out / name, scale)
    report = run(out, against=case.source)
    assert ids(report) == {"RT-pixel-size"}
    assert {f.location.level for f in report.findings} == {0, 1, 2}


def test_missing_level_and_missing_label(cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases[WSI_BASE_CASE]
    out = broken_copy(case.out, tmp_path, "level0.dcm", lambda ds: None)
    (out / "level2.dcm").unlink()
    (out / "label.dcm").unlink()
    report = run(out, against=case.source)
    assert ids(report) == {"RT-levels", "RT-associated"}
    assert any("LABEL image is missing" in f.message for f in report.findings)


def test_icc_profile_replaced(cases: dict[str, Case], tmp_path: Path) -> None:
    def other_icc(ds: Dataset) -> None:
        ds.OpticalPathSequence[0].ICCProfile = (
            ds.OpticalPathSequence[0].ICCProfile[:-4] + b"\0\0\0\0"
        )

    case = cases["tifffile-icc"]
    report = run(broken_copy(case.out, tmp_path, "level0.dcm", other_icc), against=case.source)
    assert ids(report) == {"RT-icc"}


def test_channel_name(tmp_path: Path) -> None:
    source = samples.write_tifffile(tmp_path / "named.ome.tif", size=(600, 500))
    from test_conformance_support import set_ome_xml

    set_ome_xml(
        source,
        lambda xml: xml.replace(
            '<Channel ID="Channel:0:0"', '<Channel ID="Channel:0:0" Name="H&amp;E"'
        ),
    )
    out = tmp_path / "named_dicom"
    run_cli("convert", source, out, "-q", check=True)
    assert (
        pydicom.dcmread(out / "level0.dcm").OpticalPathSequence[0].OpticalPathDescription == "H&E"
    )
    assert not ids(run(out, against=source))

    def rename(ds: Dataset) -> None:
        ds.OpticalPathSequence[0].OpticalPathDescription = "Brightfield"

    report = run(broken_copy(out, tmp_path, "level0.dcm", rename), against=source)
    assert ids(report) == {"RT-channels"}
    assert "'H&E'" in report.findings[0].message


def test_dicom_to_ome_tiff_conversion_checked_against_its_dicom_source(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    """The other direction: our OME-TIFF output of a DICOM series, compared with that series."""
    series = cases[WSI_BASE_CASE].out
    target = tmp_path / "back.ome.tif"
    proc = run_cli("convert", series, target, "-q")
    assert proc.returncode == 0, proc.stderr  # a missing direction fails, it does not skip
    report = run(target, against=series)
    assert report.exit_code == 0 and not _rt(report), report.sorted()


def test_against_on_the_command_line(cases: dict[str, Case], tmp_path: Path) -> None:
    case = cases[WSI_BASE_CASE]
    good = run_cli("check", case.out, "--against", case.source, "--json", "--no-dicom3tools")
    assert good.returncode == 0 and json.loads(good.stdout)["against"] == str(case.source)
    missing = run_cli("check", case.out, "--against", tmp_path / "nope.ome.tif", "--no-dicom3tools")
    assert missing.returncode == 2 and "INPUT-unreadable" in missing.stdout


def test_a_dicom_conversion_without_optical_paths_is_an_error(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    """Only a DICOM *source* without an Optical Path Sequence implies one path: a converted
    DICOM series that drops it (Type 1, PS3.3 C.8.12.5) lost the OME channel."""

    def drop(ds: Dataset) -> None:
        del ds.OpticalPathSequence

    case = cases[WSI_BASE_CASE]
    report = run(broken_copy(case.out, tmp_path, "level0.dcm", drop), against=case.source)
    assert any(
        f.id == "RT-channels" and "0 optical path(s) for 1 OME channel(s)" in f.message
        for f in report.findings
        if f.severity is Severity.ERROR
    ), report.sorted()
