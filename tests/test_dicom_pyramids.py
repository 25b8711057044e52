"""Real-world DICOM pyramids grouped tolerantly (bridge/dicom/grouping.py), and frame patterns.

Fixtures are real corpus files with only the named attributes changed:

- Bio-Formats' 3-level pyramid (omero-cli-transfer__test_pyramid.ome.tif) converted to DICOM,
  the converter's private carriers removed (a third-party writer has none), then Google
  ``wsi2dcm``'s habits applied one at a time and all together: no Pyramid UID, a Frame of
  Reference UID per level, Imaged Volume Width/Height drifting per level, RESAMPLED on the base;
- Google's wsi-to-dicom-converter JPEG file made TILED_SPARSE with holes, and split into a
  concatenation of two instances.

Each must read as one pyramid of the right number of levels, convert to an OME-TIFF that
tifffile and Bio-Formats ImageInfo read with that many resolutions and the right physical size,
and keep every tile's bytes. ``omedicom check`` still calls the broken attributes errors.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import ome_types
import pydicom
import pytest
import tifffile
from conftest import run_cli
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid
from readers import bioformats_jar
from test_dicom_to_ometiff import dicom_frames, same_tile, tiff_tiles

PYRAMID = "ome-tiff/omero-cli-transfer__test_pyramid.ome.tif"
GOOGLE = "dicom/wsi-to-dicom-converter__jpeg.dicom"
PIXEL_UM = 0.5  # given to the conversion: the Bio-Formats sample has no physical size


def _spacing_mm(ds: pydicom.Dataset) -> float:
    return float(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0])


def _levels(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.glob("level*.dcm"))]


def _save(datasets: list[pydicom.Dataset], folder: Path) -> Path:
    folder.mkdir()
    for k, ds in enumerate(datasets):
        ds.save_as(folder / f"level{k}.dcm", enforce_file_format=True)
    return folder


def no_pyramid_uid(levels: list[pydicom.Dataset]) -> None:
    for ds in levels:
        del ds.PyramidUID


def per_level_frame_of_reference(levels: list[pydicom.Dataset]) -> None:
    for ds in levels:
        ds.FrameOfReferenceUID = generate_uid()


def drifting_imaged_volume(levels: list[pydicom.Dataset]) -> None:
    """Each level's own rounding: a few pixels' worth (of its own spacing) apart."""
    for k, ds in enumerate(levels):
        spacing = _spacing_mm(ds)
        ds.ImagedVolumeWidth = ds.TotalPixelMatrixColumns * spacing + 0.7 * k * spacing
        ds.ImagedVolumeHeight = ds.TotalPixelMatrixRows * spacing - 0.6 * k * spacing


def resampled_base(levels: list[pydicom.Dataset]) -> None:
    levels[0].ImageType = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]


def wsi2dcm(levels: list[pydicom.Dataset]) -> None:
    """All of Google wsi2dcm's habits at once (its base says DERIVED\\PRIMARY\\VOLUME\\NONE)."""
    no_pyramid_uid(levels)
    per_level_frame_of_reference(levels)
    drifting_imaged_volume(levels)
    levels[0].ImageType = ["DERIVED", "PRIMARY", "VOLUME", "NONE"]


MUTATIONS: dict[str, Callable[[list[pydicom.Dataset]], None]] = {
    "no-pyramid-uid": no_pyramid_uid,
    "per-level-frame-of-reference": per_level_frame_of_reference,
    "drifting-imaged-volume": drifting_imaged_volume,
    "resampled-base": resampled_base,
    "wsi2dcm": wsi2dcm,
}


@pytest.fixture(scope="module")
def pyramid_dicom(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bf") / "dicom"
    run_cli(
        "convert",
        "--pyramid",
        "keep",
        corpus / PYRAMID,
        out,
        "-q",
        "--pixel-size",
        str(PIXEL_UM),
        check=True,
    )
    return out


def _mutated(source: Path, tmp: Path, mutate: Callable[[list[pydicom.Dataset]], None]) -> Path:
    levels = _levels(source)
    assert len(levels) == 3
    for ds in levels:
        ds.remove_private_tags()
    mutate(levels)
    return _save(levels, tmp / "mutated")


def bioformats_series(path: Path) -> list[tuple[int, float | None, float | None]]:
    """(resolutions, PhysicalSizeX, PhysicalSizeY) of each series, from one run of Bio-Formats
    ImageInfo (``-noflat`` for the resolution count, ``-omexml`` for the physical size)."""
    java = shutil.which("java")
    assert java
    proc = subprocess.run(
        [java, "-Dbioformats_can_do_upgrade_check=false", "-cp", str(bioformats_jar()),
         "loci.formats.tools.ImageInfo", "-nopix", "-noflat", "-omexml", "-no-upgrade",
         str(path)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    counts = []
    for block in re.split(r"\nSeries #\d+[^\n]*\n", proc.stdout.split("<?xml")[0])[1:]:
        found = re.search(r"Resolutions = (\d+)", block)  # printed only when more than one
        counts.append(int(found.group(1)) if found else 1)
    sizes = [
        (
            float(x.group(1)) if (x := re.search(r'PhysicalSizeX="([^"]+)"', pixels)) else None,
            float(y.group(1)) if (y := re.search(r'PhysicalSizeY="([^"]+)"', pixels)) else None,
        )
        for pixels in re.findall(r"<Pixels [^>]*>", proc.stdout)
    ]
    assert len(sizes) == len(counts), proc.stdout[-2000:]
    return [(n, x, y) for n, (x, y) in zip(counts, sizes, strict=True)]


def _info(folder: Path) -> dict:
    proc = run_cli("info", "--json", folder, check=True)
    return json.loads(proc.stdout)


def _check_ome_tiff(
    folder: Path, out: Path, n_levels: int, pixel_um: float, tmp: Path
) -> tuple[list[bytes], list[list[bytes]]]:
    """Convert, and judge with tifffile and Bio-Formats; the TIFF's tiles per level."""
    proc = run_cli("convert", "--pyramid", "keep", folder, out)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    with tifffile.TiffFile(out) as tf:
        assert len(tf.series) == 1
        assert len(tf.series[0].levels) == n_levels
        pixels = ome_types.from_xml(tf.ome_metadata).images[0].pixels
    assert pixels.physical_size_x == pytest.approx(pixel_um)
    assert pixels.physical_size_y == pytest.approx(pixel_um)
    [(resolutions, x, y)] = bioformats_series(out)
    assert resolutions == n_levels
    assert (x, y) == pytest.approx((pixel_um, pixel_um))
    return [tiff_tiles(out, 0, k) for k in range(n_levels)]


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_wsi2dcm_habits_read_as_one_pyramid(pyramid_dicom: Path, tmp_path: Path, name: str) -> None:
    folder = _mutated(pyramid_dicom, tmp_path, MUTATIONS[name])
    info = _info(folder)
    assert len(info["images"]) == 1, info
    assert [lv["size"] for lv in info["images"][0]["levels"]] == [[16, 16], [8, 8], [4, 4]]
    if name in ("per-level-frame-of-reference", "wsi2dcm"):
        assert any("Frame of Reference UID" in w for w in info["warnings"]), info["warnings"]
    if name == "resampled-base":
        assert any("RESAMPLED on the largest level" in w for w in info["warnings"])
    levels = _levels(folder)
    tiles = _check_ome_tiff(folder, tmp_path / "out.ome.tiff", 3, PIXEL_UM, tmp_path)
    for ds, (level_tiles, tables) in zip(levels, tiles, strict=True):
        frames = dicom_frames(ds)
        assert len(frames) == len(level_tiles)
        assert all(same_tile(f, t, tables) for f, t in zip(frames, level_tiles, strict=True))


def test_the_checker_stays_strict(pyramid_dicom: Path, tmp_path: Path) -> None:
    """What the reader tolerates, ``omedicom check`` reports as errors."""
    folder = _mutated(pyramid_dicom, tmp_path, wsi2dcm)
    resampled_levels = _levels(folder)
    resampled_base(resampled_levels)
    for ds, path in zip(resampled_levels, sorted(folder.glob("level*.dcm")), strict=True):
        ds.save_as(path, enforce_file_format=True)
    proc = run_cli("check", "--json", "--no-dicom3tools", folder)
    findings = json.loads(proc.stdout)["findings"]
    errors = {f["location"].get("attribute") or "" for f in findings if f["severity"] == "error"}
    assert proc.returncode != 0
    assert "FrameOfReferenceUID" in errors, errors
    assert {"ImagedVolumeWidth", "ImagedVolumeHeight"} <= errors, errors
    # a RESAMPLED base is legal when the scan itself was resampled: the checker warns
    assert any(f["id"] == "WSI-image-type" and "RESAMPLED" in f["message"] for f in findings), (
        findings
    )


def test_inconsistent_levels_stay_apart_and_info_says_why(
    pyramid_dicom: Path, tmp_path: Path
) -> None:
    """A level whose extent cannot be the base's is its own image; info names the attribute
    and both values."""

    def wrong_spacing(levels: list[pydicom.Dataset]) -> None:
        wsi2dcm(levels)
        levels[2].SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [
            0.003,
            0.003,
        ]

    folder = _mutated(pyramid_dicom, tmp_path, wrong_spacing)
    info = _info(folder)
    assert [len(i["levels"]) for i in info["images"]] == [2, 1]
    why = [w for w in info["warnings"] if "is not a level of the pyramid" in w]
    assert len(why) == 1, info["warnings"]
    assert "Pixel Spacing" in why[0] and "0.012 mm" in why[0] and "0.008 mm" in why[0]
    text = run_cli("info", folder, check=True).stdout
    assert "is not a level of the pyramid of level0.dcm" in text


def test_several_pyramid_uids_stay_separate(pyramid_dicom: Path, tmp_path: Path) -> None:
    """PS3.3 C.7.11.1 (CP-2135): a series may hold several pyramids, told by Pyramid UID."""

    def two_pyramids(levels: list[pydicom.Dataset]) -> None:
        levels[2].PyramidUID = generate_uid()

    folder = _mutated(pyramid_dicom, tmp_path, two_pyramids)
    info = _info(folder)
    assert sorted(len(i["levels"]) for i in info["images"]) == [1, 2]
    assert any("each with its own Pyramid UID" in w for w in info["warnings"])


# -- frame patterns, from Google's wsi-to-dicom-converter JPEG file (957×715, 256×256 frames)


def _positions(ds: pydicom.Dataset) -> list[tuple[int, int]]:
    nx = -(-ds.TotalPixelMatrixColumns // ds.Columns)
    return [
        (1 + (k % nx) * ds.Columns, 1 + (k // nx) * ds.Rows) for k in range(int(ds.NumberOfFrames))
    ]


def _sparse(ds: pydicom.Dataset, keep: list[int]) -> None:
    """TILED_SPARSE holding only frames ``keep`` (0-based TILED_FULL order)."""
    frames = dicom_frames(ds)
    where = _positions(ds)
    items = []
    for k in keep:
        pos = pydicom.Dataset()
        pos.ColumnPositionInTotalImagePixelMatrix = where[k][0]
        pos.RowPositionInTotalImagePixelMatrix = where[k][1]
        pos.XOffsetInSlideCoordinateSystem = 0
        pos.YOffsetInSlideCoordinateSystem = 0
        pos.ZOffsetInSlideCoordinateSystem = 0
        item = pydicom.Dataset()
        item.PlanePositionSlideSequence = DicomSequence([pos])
        items.append(item)
    ds.DimensionOrganizationType = "TILED_SPARSE"
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(items)
    ds.NumberOfFrames = len(keep)
    ds.PixelData = encapsulate([frames[k] for k in keep])


def test_tiled_sparse_with_holes(corpus: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(corpus / GOOGLE)
    frames = dicom_frames(ds)
    keep = [k for k in range(len(frames)) if k not in (1, 6)]
    _sparse(ds, keep)
    folder = _save([ds], tmp_path / "sparse")
    info = _info(folder)
    assert len(info["images"]) == 1 and len(info["images"][0]["levels"]) == 1
    assert any("2 absent tile(s)" in w for w in info["warnings"]), info["warnings"]
    spacing_um = 1000 * _spacing_mm(ds)
    [(tiles, tables)] = _check_ome_tiff(folder, tmp_path / "out.ome.tiff", 1, spacing_um, tmp_path)
    assert len(tiles) == len(frames)
    for k in keep:  # every tile present is kept; the holes are filled
        assert same_tile(frames[k], tiles[k], tables)


def test_concatenation(corpus: Path, tmp_path: Path) -> None:
    """One instance split in two (PS3.3 C.7.6.16.2.2.4): read as one, every tile kept."""
    ds = pydicom.dcmread(corpus / GOOGLE)
    frames = dicom_frames(ds)
    source_uid = ds.SOPInstanceUID
    concatenation = generate_uid()
    parts = []
    for number, (start, stop) in enumerate([(0, 5), (5, len(frames))], start=1):
        part = pydicom.dcmread(corpus / GOOGLE)
        part.SOPInstanceUID = generate_uid()
        part.file_meta.MediaStorageSOPInstanceUID = part.SOPInstanceUID
        part.ConcatenationUID = concatenation
        part.SOPInstanceUIDOfConcatenationSource = source_uid
        part.InConcatenationNumber = number
        part.InConcatenationTotalNumber = 2
        part.ConcatenationFrameOffsetNumber = start
        part.NumberOfFrames = stop - start
        part.PixelData = encapsulate(frames[start:stop])
        parts.append(part)
    folder = _save(parts[::-1], tmp_path / "concatenation")  # file order must not matter
    info = _info(folder)
    assert len(info["images"]) == 1 and len(info["images"][0]["levels"]) == 1
    spacing_um = 1000 * _spacing_mm(ds)
    [(tiles, tables)] = _check_ome_tiff(folder, tmp_path / "out.ome.tiff", 1, spacing_um, tmp_path)
    assert len(tiles) == len(frames)
    assert all(same_tile(f, t, tables) for f, t in zip(frames, tiles, strict=True))


def test_500_pixel_frames_on_a_smaller_level(corpus: Path, tmp_path: Path) -> None:
    """pathml's 500×500 JPEG frames, and a second level of one such frame on a 404×329 matrix
    (an eighth of 3236×2638, rounded down), a frame larger than its level: one pyramid of two
    levels, re-encoded losslessly (TIFF tiles must be multiples of 16) with warnings."""
    base = pydicom.dcmread(corpus / "dicom" / "pathml__small_dicom.dcm")
    small = pydicom.dcmread(corpus / "dicom" / "pathml__small_dicom.dcm")
    small.SOPInstanceUID = generate_uid()
    small.file_meta.MediaStorageSOPInstanceUID = small.SOPInstanceUID
    small.TotalPixelMatrixColumns, small.TotalPixelMatrixRows = 404, 329
    small.NumberOfFrames = 1
    small.PixelData = encapsulate(dicom_frames(small)[:1])
    folder = tmp_path / "pathml"
    folder.mkdir()
    for k, ds in enumerate((base, small)):
        ds.save_as(folder / f"level{k}.dcm")
    info = _info(folder)
    assert len(info["images"]) == 1, info["warnings"]
    assert [lv["size"] for lv in info["images"][0]["levels"]] == [[3236, 2638], [404, 329]]
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", "--pyramid", "keep", folder, out)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a multiple of 16" in proc.stderr
    with tifffile.TiffFile(out) as tf:
        levels = tf.series[0].levels
        assert [lv.shape[:2] for lv in levels] == [(2638, 3236), (329, 404)]
        assert levels[1].asarray().shape == (329, 404, 3)
    assert bioformats_series(out)[0][0] == 2


def test_real_world_metadata_read_tolerantly(corpus: Path, tmp_path: Path) -> None:
    """Google's file with no Optical Path Sequence, no Image Type, a 21-character DS Pixel
    Spacing and an over-length Manufacturer, plus a THUMBNAIL without Pixel Spacing: read, with
    warnings, and the pixels placed."""
    from pydicom.dataelem import DataElement

    base = pydicom.dcmread(corpus / GOOGLE)
    if "OpticalPathSequence" in base:
        del base.OpticalPathSequence
    del base.ImageType
    measures = base.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    measures["PixelSpacing"] = DataElement(0x00280030, "DS", "0.0167830000000000001\\0.016783")
    base.add_new(0x00080070, "LO", "M" * 90)
    thumb = pydicom.dcmread(corpus / GOOGLE)
    thumb.SOPInstanceUID = generate_uid()
    thumb.file_meta.MediaStorageSOPInstanceUID = thumb.SOPInstanceUID
    thumb.ImageType = ["DERIVED", "PRIMARY", "THUMBNAIL", "RESAMPLED"]
    del thumb.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    folder = _save([base, thumb], tmp_path / "tolerant")
    info = _info(folder)
    kinds = sorted(i["kind"] for i in info["images"])
    assert kinds == ["THUMBNAIL", "VOLUME"], info
    volume = next(i for i in info["images"] if i["kind"] == "VOLUME")
    assert volume["pixel_size_um"] == pytest.approx([16.783, 16.783])
    assert any("no Image Type" in w for w in info["warnings"])
    assert any("exceeds the maximum length of 64" in w for w in info["warnings"])
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", "--pyramid", "keep", folder, out)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    with tifffile.TiffFile(out) as tf:
        assert len(tf.series) == 2
        tiles, tables = tiff_tiles(out, 0, 0)
    frames = dicom_frames(base)
    assert all(same_tile(f, t, tables) for f, t in zip(frames, tiles, strict=True))


def test_instances_split_by_optical_path(pyramid_dicom: Path, tmp_path: Path) -> None:
    """Each level in two instances, one per optical path (as IDC's HTAN series), with
    wsi2dcm's habits: one pyramid of three levels and two channels."""
    levels = _levels(pyramid_dicom)
    for ds in levels:
        ds.remove_private_tags()
    wsi2dcm(levels)
    instances = []
    for ds in levels:
        second = pydicom.dcmread(pyramid_dicom / f"level{levels.index(ds)}.dcm")
        second.remove_private_tags()
        for keyword in ("FrameOfReferenceUID", "ImageType", "ImagedVolumeWidth"):
            setattr(second, keyword, ds.get(keyword))
        second.ImagedVolumeHeight = ds.ImagedVolumeHeight
        del second.PyramidUID
        second.SOPInstanceUID = generate_uid()
        second.file_meta.MediaStorageSOPInstanceUID = second.SOPInstanceUID
        second.OpticalPathSequence[0].OpticalPathIdentifier = "2"
        instances += [ds, second]
    folder = _save(instances, tmp_path / "paths")
    info = _info(folder)
    assert len(info["images"]) == 1, info["warnings"]
    image = info["images"][0]
    assert len(image["levels"]) == 3 and [c["id"] for c in image["channels"]] == ["1", "2"]
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", "--pyramid", "keep", folder, out)
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(out) as tf:
        series = tf.series[0]
        assert len(series.levels) == 3 and series.shape[0] == 2
    assert bioformats_series(out)[0][0] == 3


def test_a_second_scan_of_the_same_size_stays_apart(pyramid_dicom: Path, tmp_path: Path) -> None:
    """Without Pyramid UIDs, a second base level of the same size in another Frame of
    Reference is another scan: its own image, and info says which attribute differs."""
    levels = _levels(pyramid_dicom)
    for ds in levels:
        ds.remove_private_tags()
    no_pyramid_uid(levels)
    rescan = pydicom.dcmread(pyramid_dicom / "level0.dcm")
    rescan.remove_private_tags()
    del rescan.PyramidUID
    rescan.SOPInstanceUID = generate_uid()
    rescan.file_meta.MediaStorageSOPInstanceUID = rescan.SOPInstanceUID
    rescan.FrameOfReferenceUID = generate_uid()
    folder = _save([*levels, rescan], tmp_path / "rescan")
    info = _info(folder)
    assert sorted(len(i["levels"]) for i in info["images"]) == [1, 3], info["warnings"]
    why = [w for w in info["warnings"] if "another scan" in w]
    assert len(why) == 1 and rescan.FrameOfReferenceUID in why[0], info["warnings"]
