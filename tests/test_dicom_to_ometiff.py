"""DICOM WSI -> OME-TIFF, judged by tifffile, Bio-Formats and the OME schema; and round trips
that lose nothing, compared tile by tile and field by field."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import ome_types
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli
from pydicom.encaps import generate_frames
from readers import bioformats_info, pixelmed_tiff_to_dicom

WSM_FILES = [
    "highdicom__sm_image.dcm",
    "highdicom__sm_image_grayscale.dcm",
    "highdicom__sm_image_jpegls.dcm",
    "openslide-python__boxes_0.dcm",
    "openslide-python__boxes_1.dcm",
    "pathml__small_dicom.dcm",
    "wsi-to-dicom-converter__jpeg.dicom",
    "wsi-to-dicom-converter__jpeg2000.dicom",
]
#: Frames TIFF can hold as they are (tile sizes a multiple of 16, codec TIFF knows).
VERBATIM = {
    "openslide-python__boxes_0.dcm",
    "openslide-python__boxes_1.dcm",
    "wsi-to-dicom-converter__jpeg.dicom",
    "wsi-to-dicom-converter__jpeg2000.dicom",
}


def dicom_frames(ds: pydicom.Dataset) -> list[bytes]:
    """Frames as stored, the pad byte after an EOI marker taken off."""
    n = int(ds.get("NumberOfFrames", 1))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        frames = generate_frames(ds.PixelData, number_of_frames=n)
        return [f[:-1] if f.endswith(b"\xff\xd9\x00") else f for f in frames]
    size = len(ds.PixelData) // n
    return [ds.PixelData[i * size : (i + 1) * size] for i in range(n)]


def tiff_tiles(path: Path, series: int = 0, level: int = 0) -> tuple[list[bytes], bytes | None]:
    with tifffile.TiffFile(path) as tf:
        page = tf.series[series].levels[level].pages[0]
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            tf.filehandle.seek(offset)
            tiles.append(tf.filehandle.read(count))
        return tiles, page.jpegtables


def same_tile(frame: bytes, tile: bytes, tables: bytes | None) -> bool:
    """A verbatim copy, byte for byte, by rules written out here (not the package's):

    * ``frame`` comes from :func:`dicom_frames`, which took off the pad byte: a fragment has
      an even length (PS3.5 A.4), so an odd-length JPEG stream is stored with one 0x00 after
      its EOI, which is not part of the stream;
    * a TIFF tile may be abbreviated, its DQT/DHT segments in the page's JPEGTables
      (``SOI tables EOI``, TIFF Technical Note 2); put back after the tile's SOI it must give
      the frame: ``tile[:2] + tables[2:-2] + tile[2:]``;
    * JPEG 2000 and native frames are the tile bytes.
    """
    if frame[:2] == b"\xff\xd8":
        assert frame[-2:] == b"\xff\xd9" and tile[-2:] == b"\xff\xd9"
        if tables and len(tables) > 4:
            tile = tile[:2] + tables[2:-2] + tile[2:]
    return frame == tile


@pytest.fixture(scope="module")
def converted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    out = tmp_path_factory.mktemp("dicom2ome")
    results = {}
    for name in WSM_FILES:
        target = out / f"{name}.ome.tiff"
        proc = run_cli("convert", corpus / "dicom" / name, target)
        results[name] = (proc, target)
    return results


@pytest.mark.parametrize("name", WSM_FILES)
def test_every_corpus_wsm_file_converts(converted: dict, corpus: Path, name: str) -> None:
    proc, target = converted[name]
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    source = pydicom.dcmread(corpus / "dicom" / name)
    with tifffile.TiffFile(target) as tf:
        assert tf.is_ome and tf.is_bigtiff
        ome_types.validate_xml(tf.ome_metadata)  # the 2016-06 XSD
        ome = ome_types.from_xml(tf.ome_metadata)
        series = tf.series[0]
        assert series.shape[:2] == (source.TotalPixelMatrixRows, source.TotalPixelMatrixColumns)
        pixels = ome.images[0].pixels
        try:
            measures = source.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
            row, col = (float(v) for v in measures.PixelSpacing)
        except AttributeError:
            assert pixels.physical_size_x is None  # pathml has no Pixel Spacing at all
        else:
            assert pixels.physical_size_x == pytest.approx(col * 1000, rel=1e-9)
            assert pixels.physical_size_y == pytest.approx(row * 1000, rel=1e-9)
        # the DICOM header travels in the OME-XML
        comments = ome.structured_annotations.comment_annotations
        assert any(source.SOPInstanceUID in (c.description or "") for c in comments)
        decoded = series.asarray()
    if name in VERBATIM:
        tiles, tables = tiff_tiles(target)
        frames = dicom_frames(source)
        assert len(tiles) == len(frames)
        assert all(same_tile(f, t, tables) for f, t in zip(frames, tiles, strict=True))
    else:  # re-tiled or transcoded losslessly: the pixels are the DICOM's decoded pixels
        if name != "pathml__small_dicom.dcm":  # its frames are JPEG: pydicom decodes alike
            pixels_in = source.pixel_array
            rows, cols = source.Rows, source.Columns
            nx = -(-source.TotalPixelMatrixColumns // cols)
            for f in range(int(source.NumberOfFrames)):
                y, x = divmod(f, nx)
                want = pixels_in[f][: decoded.shape[0] - y * rows, : decoded.shape[1] - x * cols]
                got = decoded[y * rows : (y + 1) * rows, x * cols : (x + 1) * cols]
                np.testing.assert_array_equal(got, want.reshape(got.shape))
        assert "losslessly" in proc.stderr or "re-tiled" in proc.stderr


def test_pathml_converts_with_warnings(converted: dict) -> None:
    proc, _ = converted["pathml__small_dicom.dcm"]
    assert proc.returncode == 0
    for needle in ("exceeds the maximum length", "no Image Type", "not a multiple of 16"):
        assert needle in proc.stderr


@pytest.mark.parametrize("name", WSM_FILES)
def test_bioformats_and_tifffile_see_the_pyramid(converted: dict, corpus: Path, name: str) -> None:
    _, target = converted[name]
    source = pydicom.dcmread(corpus / "dicom" / name, stop_before_pixels=True)
    with tifffile.TiffFile(target) as tf:
        levels = tf.series[0].levels
    info = bioformats_info(target)
    # one level in the source; --pyramid auto adds halvings until one fits in a tile
    width, height = source.TotalPixelMatrixColumns, source.TotalPixelMatrixRows
    widths = [width]
    while width > source.Columns or height > source.Rows:
        width, height = -(-width // 2), -(-height // 2)
        widths.append(width)
    assert info[0].resolutions == len(levels) == len(widths)
    assert [lv.shape[1] for lv in levels] == widths
    assert (info[0].width, info[0].height) == (
        source.TotalPixelMatrixColumns,
        source.TotalPixelMatrixRows,
    )
    assert info[0].rgb == (source.SamplesPerPixel == 3)
    assert info[0].pixel_type == ("uint16" if source.BitsAllocated == 16 else "uint8")


def test_non_wsi_dicom_is_refused_clearly(corpus: Path, tmp_path: Path) -> None:
    for name, what in [
        ("highdicom__seg_image_sm_dots.dcm", "Segmentation Storage"),
        ("highdicom__sm_annotations.dcm", "only annotations"),
    ]:
        out = tmp_path / f"{name}.ome.tiff"
        proc = run_cli("convert", corpus / "dicom" / name, out)
        assert proc.returncode == 2, proc.stderr
        assert "no DICOM VL Whole Slide Microscopy image found" in proc.stderr
        assert what in proc.stderr and "Traceback" not in proc.stderr
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_empty_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("convert", empty, tmp_path / "out.ome.tiff")
    assert proc.returncode == 2 and "no DICOM files found" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_two_slides_in_one_folder_ask_to_choose(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(corpus / "dicom" / "openslide-python__boxes_0.dcm", folder)
    shutil.copy(corpus / "dicom" / "highdicom__sm_image.dcm", folder)
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", folder, out)
    assert proc.returncode == 2
    assert "2 slides (series)" in proc.stderr and "--series" in proc.stderr
    assert not out.exists()
    chosen = pydicom.dcmread(folder / "highdicom__sm_image.dcm").SeriesInstanceUID
    proc = run_cli("convert", folder, out, "--series", chosen)
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(out) as tf:
        assert tf.series[0].shape[:2] == (50, 50)


def test_truncated_frame(corpus: Path, tmp_path: Path) -> None:
    src = tmp_path / "cut.dcm"
    data = (corpus / "dicom" / "wsi-to-dicom-converter__jpeg.dicom").read_bytes()
    src.write_bytes(data[: len(data) - 5000])
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", src, out)
    assert proc.returncode == 2, proc.stderr
    assert "truncated" in proc.stderr and "Traceback" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.dcm"]


def test_pixelmed_series_from_a_libvips_pyramid(tmp_path: Path) -> None:
    """PixelMed's TIFFToDicom output converts, every tile verbatim."""
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, samples.tissue(1000, 1200, seed=3), photometric="rgb")
    pyramid = tmp_path / "vips.tif"
    import subprocess

    subprocess.run(
        ["vips", "tiffsave", str(plain), str(pyramid), "--tile", "--tile-width", "256",
         "--tile-height", "256", "--pyramid", "--compression", "jpeg", "--Q", "85"],
        check=True,
    )  # fmt: skip
    files = pixelmed_tiff_to_dicom(pyramid, tmp_path / "pixelmed")
    assert len(files) == 4
    out = tmp_path / "pm.ome.tiff"
    proc = run_cli("convert", tmp_path / "pixelmed", out)
    assert proc.returncode == 0, proc.stderr
    by_width = {int(d.TotalPixelMatrixColumns): d for d in (pydicom.dcmread(f) for f in files)}
    with tifffile.TiffFile(out) as tf:
        levels = tf.series[0].levels
    assert [lv.shape[1] for lv in levels] == sorted(by_width, reverse=True)
    for index, width in enumerate(sorted(by_width, reverse=True)):
        frames = dicom_frames(by_width[width])
        tiles, tables = tiff_tiles(out, 0, index)
        assert len(frames) == len(tiles)
        assert all(same_tile(f, t, tables) for f, t in zip(frames, tiles, strict=True))
    info = bioformats_info(out)
    assert info[0].resolutions == 4
    assert info[0].widths == tuple(sorted(by_width, reverse=True))
