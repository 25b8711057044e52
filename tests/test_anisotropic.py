"""Non-square pixels and odd pyramids, through both directions and the conformance checks.

Every other test slide has square pixels and a pyramid that halves evenly, so an X/Y mix-up
(Pixel Spacing written column-first, one axis's downsample used for the other, PhysicalSizeX
read from the row spacing, a check that skips rows) cannot show there. This slide has
PhysicalSizeX 0.25 µm and PhysicalSizeY 0.26 µm, and 1001 × 751 pixels whose levels are
500 × 375 and 250 × 187: the two axes shrink by different factors (2.002 and 2.0027, then
4.004 and 4.016). Every expected value is computed here from those numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli
from lxml import etree

PX, PY = 0.25, 0.26  # µm: OME PhysicalSizeX (column spacing), PhysicalSizeY (row spacing)
SIZE = (1001, 751)  # width, height
SIZES = [(1001, 751), (500, 375), (250, 187)]  # 2×2 means, odd row/column dropped
OME_NS = "{http://www.openmicroscopy.org/Schemas/OME/2016-06}"


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("anisotropic")
    src = samples.write_tifffile(tmp / "aniso.ome.tif", size=SIZE, levels=3, pixel_size=(PX, PY))
    with tifffile.TiffFile(src) as tf:  # the slide is what this file says it is
        assert [(lv.shape[1], lv.shape[0]) for lv in tf.series[0].levels] == SIZES
    out = tmp / "dicom"
    run_cli("convert", src, out, "-q", check=True)
    return {"tmp": tmp, "src": src, "out": out}


def _volume_levels(folder: Path) -> list[pydicom.Dataset]:
    levels = []
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if "ImageType" in ds and ds.ImageType[2] == "VOLUME":
            levels.append(ds)
    return sorted(levels, key=lambda d: -int(d.TotalPixelMatrixColumns))


def _spacing(ds: pydicom.Dataset) -> tuple[float, float]:
    """(row, column) mm: Pixel Spacing is row spacing first (PS3.3 C.7.6.16.2.1)."""
    value = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    return float(value[0]), float(value[1])


def assert_dicom_geometry(folder: Path) -> None:
    """Each level: row spacing = PY × 751 / rows, column spacing = PX × 1001 / columns."""
    levels = _volume_levels(folder)
    assert [(int(d.TotalPixelMatrixColumns), int(d.TotalPixelMatrixRows)) for d in levels] == SIZES
    (w0, h0) = SIZES[0]
    for ds, (w, h) in zip(levels, SIZES, strict=True):
        row, col = _spacing(ds)
        assert row == pytest.approx(PY / 1000 * h0 / h, rel=1e-9), (w, h, "row")
        assert col == pytest.approx(PX / 1000 * w0 / w, rel=1e-9), (w, h, "column")
        # FL (float32): 7 significant digits
        assert float(ds.ImagedVolumeWidth) == pytest.approx(w0 * PX / 1000, rel=1e-6)
        assert float(ds.ImagedVolumeHeight) == pytest.approx(h0 * PY / 1000, rel=1e-6)


def test_ome_tiff_to_dicom_spacing_per_axis_and_level(slide: dict[str, Path]) -> None:
    assert_dicom_geometry(slide["out"])


def _strip_private(src: Path, dst: Path) -> Path:
    """A copy of a DICOM folder without our private block (its carried OME-XML): what a
    DICOM series from another tool gives the reader, Pixel Spacing alone."""
    dst.mkdir()
    for path in src.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.remove_private_tags()
        assert not any(e.tag.is_private for e in ds)
        ds.save_as(dst / path.name)
    return dst


def _ome_physical_size(path: Path) -> tuple[float, float]:
    with tifffile.TiffFile(path) as tf:
        root = etree.fromstring(tf.ome_metadata.encode())
    pixels = root.find(f"{OME_NS}Image/{OME_NS}Pixels")
    assert pixels.get("PhysicalSizeXUnit", "µm") == "µm"
    assert pixels.get("PhysicalSizeYUnit", "µm") == "µm"
    return float(pixels.get("PhysicalSizeX")), float(pixels.get("PhysicalSizeY"))


def _tiff_resolution_um(page: tifffile.TiffPage) -> tuple[float, float]:
    """µm per pixel from XResolution/YResolution (pixels per centimetre)."""
    assert page.tags["ResolutionUnit"].value == 3  # centimetre
    xn, xd = page.tags["XResolution"].value
    yn, yd = page.tags["YResolution"].value
    return 1e4 * xd / xn, 1e4 * yd / yn


def test_dicom_without_carrier_to_ome_tiff_and_back(slide: dict[str, Path]) -> None:
    """The reader takes PhysicalSizeX from the column spacing and Y from the row spacing; the
    OME-TIFF writer's per-level resolution tags follow each axis; and converted back, the
    Pixel Spacing is the original's again."""
    plain = _strip_private(slide["out"], slide["tmp"] / "plain")
    info = run_cli("info", plain, "--json", check=True)
    volume = next(i for i in json.loads(info.stdout)["images"] if i["kind"] == "VOLUME")
    assert volume["pixel_size_um"][0] == pytest.approx(PX, rel=1e-9)
    assert volume["pixel_size_um"][1] == pytest.approx(PY, rel=1e-9)
    back = slide["tmp"] / "plain.ome.tif"
    run_cli("convert", plain, back, "-q", check=True)
    px, py = _ome_physical_size(back)
    assert px == pytest.approx(PX, rel=1e-9) and py == pytest.approx(PY, rel=1e-9)
    with tifffile.TiffFile(back) as tf:
        levels = tf.series[0].levels
        assert [(lv.shape[1], lv.shape[0]) for lv in levels] == SIZES
        for level, (w, h) in zip(levels, SIZES, strict=True):
            rx, ry = _tiff_resolution_um(level.keyframe)
            assert rx == pytest.approx(PX * SIZES[0][0] / w, rel=1e-6), (w, h)
            assert ry == pytest.approx(PY * SIZES[0][1] / h, rel=1e-6), (w, h)
    again = slide["tmp"] / "again"
    run_cli("convert", back, again, "-q", check=True)
    assert_dicom_geometry(again)


# -- the conformance checks see each axis ------------------------------------------------------


def _check(*args: str | Path) -> tuple[int, list[dict]]:
    proc = run_cli("check", *args, "--json", "--no-dicom3tools")
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)["findings"]


def _errors(findings: list[dict]) -> list[dict]:
    return [f for f in findings if f["severity"] == "error"]


def test_check_passes_the_non_square_slide(slide: dict[str, Path]) -> None:
    code, findings = _check(slide["out"], "--against", slide["src"])
    assert code == 0 and not _errors(findings), findings


def _with_spacing(slide: dict[str, Path], dst: Path, level: int, row: float, col: float) -> Path:
    """A copy of the DICOM output whose level ``level`` has Pixel Spacing ``[row, col]``."""
    shutil.copytree(slide["out"], dst)
    ds = _volume_levels(dst)[level]
    path = dst / Path(ds.filename).name
    full = pydicom.dcmread(path)
    full.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [
        f"{row:.10g}",
        f"{col:.10g}",
    ]
    full.save_as(path)
    return dst


@pytest.mark.parametrize("axis", ["row", "column"])
def test_check_finds_one_wrong_axis_on_a_level(
    slide: dict[str, Path], tmp_path: Path, axis: str
) -> None:
    """Level 1's row (or column) spacing 10 % off, the other axis right: WSI-spacing names
    that axis, and only that axis."""
    row, col = _spacing(_volume_levels(slide["out"])[1])
    if axis == "row":
        row *= 1.1
    else:
        col *= 1.1
    broken = _with_spacing(slide, tmp_path / "broken", 1, row, col)
    code, findings = _check(broken)
    spacing = [f for f in _errors(findings) if f["id"] == "WSI-spacing"]
    assert code == 1
    assert len(spacing) == 1, findings
    assert spacing[0]["message"].startswith(f"{axis} spacing"), spacing


def test_check_against_the_source_finds_swapped_axes(
    slide: dict[str, Path], tmp_path: Path
) -> None:
    """Every level's Pixel Spacing written column-first: consistent between levels, so only
    the comparison with the OME PhysicalSizeX/Y can see it."""
    broken = tmp_path / "swapped"
    shutil.copytree(slide["out"], broken)
    for ds in _volume_levels(broken):
        row, col = _spacing(ds)
        path = broken / Path(ds.filename).name
        full = pydicom.dcmread(path)
        full.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [
            f"{col:.10g}",
            f"{row:.10g}",
        ]
        full.save_as(path)
    code, findings = _check(broken, "--against", slide["src"])
    assert code == 1
    assert "RT-pixel-size" in {f["id"] for f in _errors(findings)}, findings
