"""OME-TIFF -> DICOM WSI, judged by others: dciodvfy/dcentvfy, wsidicom, OpenSlide, pydicom.

Every case in conftest.CASE_NAMES is a pyramidal OME-TIFF written by another tool; each test
below runs on every case.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import Case
from pydicom.encaps import generate_frames, parse_basic_offsets

from conformance import dicom3tools


def _instances(case: Case) -> dict[str, pydicom.Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted(case.out.glob("*.dcm"))}


def _levels(case: Case) -> list[pydicom.Dataset]:
    found = [d for d in _instances(case).values() if d.ImageType[2] == "VOLUME"]
    return sorted(found, key=lambda d: -int(d.TotalPixelMatrixColumns))


def _source_level_pages(case: Case) -> list[tifffile.TiffPage]:
    with tifffile.TiffFile(case.source) as tf:
        return [lvl.pages[0] for lvl in tf.series[0].levels]


def _source_tiles(case: Case, level: int) -> tuple[list[bytes], bytes | None]:
    with tifffile.TiffFile(case.source) as tf:
        page = tf.series[0].levels[level].pages[0]
        fh = tf.filehandle
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(offset)
            tiles.append(fh.read(count))
        return tiles, page.jpegtables


def _frames(ds: pydicom.Dataset) -> list[bytes]:
    n = int(ds.NumberOfFrames)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=n))
    size = len(ds.PixelData) // n
    return [ds.PixelData[i * size : (i + 1) * size] for i in range(n)]


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_dciodvfy_finds_no_error(case: Case) -> None:
    files = sorted(case.out.glob("*.dcm"))
    assert files
    for path in files:
        errors = dicom3tools.errors(dicom3tools.dciodvfy(path))
        assert not errors, f"{path.name}: " + "; ".join(e.message for e in errors)


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_dcentvfy_finds_the_series_consistent(case: Case) -> None:
    errors = dicom3tools.errors(dicom3tools.dcentvfy(sorted(case.out.glob("*.dcm"))))
    assert not errors, "; ".join(e.message for e in errors)


def test_one_instance_per_level_sharing_uids(case: Case) -> None:
    levels = _levels(case)
    pages = _source_level_pages(case)
    assert len(levels) == len(pages)
    every = list(_instances(case).values())
    for key in ("StudyInstanceUID", "SeriesInstanceUID"):
        assert len({str(d[key].value) for d in every}) == 1, key
    assert len({d.FrameOfReferenceUID for d in levels}) == 1
    assert len({d.PyramidUID for d in levels}) == 1
    for index, (ds, page) in enumerate(zip(levels, pages, strict=True)):
        assert (ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows) == (
            page.imagewidth,
            page.imagelength,
        )
        expected = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        if index:
            expected = ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        assert list(ds.ImageType) == expected
        assert ds.DimensionOrganizationType == "TILED_FULL"
        assert ds.PhotometricInterpretation == case.photometric


def test_pixel_spacing_is_row_then_column_in_mm(case: Case) -> None:
    levels = _levels(case)
    base = levels[0]
    width0, height0 = base.TotalPixelMatrixColumns, base.TotalPixelMatrixRows
    for ds in levels:
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        stored = [v.original_string for v in measures.PixelSpacing]  # the DS text in the file
        assert all(len(v) <= 16 for v in stored), stored
        row, col = (float(v) for v in measures.PixelSpacing)
        expect_col = case.pixel_size / 1000 * width0 / ds.TotalPixelMatrixColumns
        expect_row = case.pixel_size / 1000 * height0 / ds.TotalPixelMatrixRows
        assert col == pytest.approx(expect_col, rel=1e-9)
        assert row == pytest.approx(expect_row, rel=1e-9)
        assert ds.ImagedVolumeWidth == pytest.approx(width0 * case.pixel_size / 1000, rel=1e-6)
        assert ds.ImagedVolumeHeight == pytest.approx(height0 * case.pixel_size / 1000, rel=1e-6)
    origins = {
        (
            d.TotalPixelMatrixOriginSequence[0].XOffsetInSlideCoordinateSystem,
            d.TotalPixelMatrixOriginSequence[0].YOffsetInSlideCoordinateSystem,
        )
        for d in levels
    }
    assert len(origins) == 1


#: Adobe APP14 marker segment with transform 0 (RGB, Adobe TN 5116; T.872 6.5.3), inserted
#: after SOI into RGB JPEG that does not say it is RGB. Written out field by field here, not
#: taken from the package.
APP14_RGB = (
    b"\xff\xee"  # APP14 marker
    + (14).to_bytes(2, "big")  # segment length: itself and the 12 bytes that follow
    + b"Adobe"
    + (100).to_bytes(2, "big")  # DCTEncodeVersion
    + (0x8000).to_bytes(2, "big")  # APP14Flags0
    + (0).to_bytes(2, "big")  # APP14Flags1
    + b"\x00"  # ColorTransform 0: no transform, the components are R, G, B
)

#: Sources whose JPEG tiles carry no colour signal (no APP14, no JFIF, ids 1-2-3) while the TIFF
#: says RGB: the frames need APP14_RGB so that decoders do not assume YCbCr.
UNSIGNALLED_RGB = {"aperio-unsignalled-rgb"}


def expected_jpeg_frame(tile: bytes, tables: bytes | None, rgb_app14: bool) -> bytes:
    """The frame a verbatim copy of a TIFF JPEG tile must be, byte for byte.

    * TIFF JPEGTables (TIFF Technical Note 2) is ``SOI, DQT/DHT segments, EOI``; a tile written
      with it is an abbreviated stream ``SOI, ..., EOI``. DICOM needs a complete interchange
      stream per frame (PS3.5 8.2.1, 10.4), so the tables' segments go right after the tile's
      SOI: ``tile[0:2] + tables[2:-2] + tile[2:]``.
    * Unsignalled RGB: APP14_RGB right after SOI (before the tables).
    * Each frame is one fragment, whose length must be even (PS3.5 A.4): an odd-length stream
      gets one trailing 0x00 after its EOI, nothing otherwise.
    """
    assert tile[:2] == b"\xff\xd8" and tile[-2:] == b"\xff\xd9"
    stream = tile
    if tables and len(tables) > 4:
        assert tables[:2] == b"\xff\xd8" and tables[-2:] == b"\xff\xd9"
        stream = stream[:2] + tables[2:-2] + stream[2:]
    if rgb_app14:
        stream = stream[:2] + APP14_RGB + stream[2:]
    return stream + b"\x00" if len(stream) % 2 else stream


def test_every_frame_is_its_source_tile(case: Case) -> None:
    """Tile by tile, byte for byte: a compressed frame is the source tile completed with the
    shared JPEGTables, APP14 inserted for unsignalled RGB and a pad byte for odd lengths (the
    rules are in :func:`expected_jpeg_frame`), and its header says it is lossy JPEG copied
    (Lossy Image Compression 01, method ISO_10918_1: PS3.3 C.7.6.1.1.5); uncompressed frames
    are the source tile bytes (or, for strips, the source rows)."""
    for index, ds in enumerate(_levels(case)):
        frames = _frames(ds)
        tiles, tables = _source_tiles(case, index)
        ts = ds.file_meta.TransferSyntaxUID
        if ts.is_compressed:
            assert ts == pydicom.uid.JPEGBaseline8Bit
            assert ds.LossyImageCompression == "01"
            assert ds.LossyImageCompressionMethod == "ISO_10918_1"
            assert len(frames) == len(tiles)
            app14 = case.name in UNSIGNALLED_RGB
            for i, (frame, tile) in enumerate(zip(frames, tiles, strict=True)):
                want = expected_jpeg_frame(tile, tables, app14)
                assert frame == want, f"level {index} frame {i}"
        elif ds.Rows * ds.Columns * ds.SamplesPerPixel == len(tiles[0]):
            assert frames == tiles
        else:  # strips re-tiled: compare with the source rows, zero padded
            source = tifffile.TiffFile(case.source).series[0].levels[index].asarray()
            source = source.reshape(source.shape[0], source.shape[1], -1)
            rows, cols = ds.Rows, ds.Columns
            nx = -(-source.shape[1] // cols)
            for i, frame in enumerate(frames):
                ty, tx = divmod(i, nx)
                want = np.zeros((rows, cols, source.shape[2]), np.uint8)
                part = source[ty * rows : (ty + 1) * rows, tx * cols : (tx + 1) * cols]
                want[: part.shape[0], : part.shape[1]] = part
                assert frame == want.tobytes(), f"level {index} frame {i}"


def test_basic_offset_table_points_at_frames(case: Case) -> None:
    for ds in _levels(case):
        if not ds.file_meta.TransferSyntaxUID.is_compressed:
            continue
        with open(ds.filename, "rb") as fh:
            el = pydicom.dcmread(fh, defer_size=64).get_item("PixelData")
            fh.seek(el.file_tell)
            offsets = parse_basic_offsets(fh)
            first = fh.tell()
            frames = _frames(ds)
            assert len(offsets) == len(frames)
            for offset, frame in zip(offsets, frames, strict=True):
                fh.seek(first + offset)
                assert fh.read(4) == b"\xfe\xff\x00\xe0"
                assert int.from_bytes(fh.read(4), "little") == len(frame)


def test_icc_profile_comes_from_the_tiff_or_is_srgb(case: Case) -> None:
    from bridge.dicom.attributes import srgb_profile

    for ds in _instances(case).values():
        path = ds.OpticalPathSequence[0]
        if case.photometric == "MONOCHROME2":
            assert "ICCProfile" not in path
        elif case.icc is not None:
            assert path.ICCProfile == case.icc
        else:
            assert path.ICCProfile == srgb_profile()


def test_wsidicom_sees_the_source_pyramid(case: Case) -> None:
    import wsidicom

    pages = _source_level_pages(case)
    with wsidicom.WsiDicom.open(case.out) as slide:
        assert len(slide.levels) == len(pages)
        for level, page in zip(slide.levels, pages, strict=True):
            assert (level.size.width, level.size.height) == (page.imagewidth, page.imagelength)
            ds_x = pages[0].imagewidth / page.imagewidth
            assert level.mpp.width == pytest.approx(case.pixel_size * ds_x, rel=1e-6)


def _places(width: int, height: int, size: int) -> list[tuple[int, int, int, int]]:
    """Six regions per level: corners, centre, and one straddling tile borders."""
    w, h = min(size, width), min(size, height)
    return [
        (0, 0, w, h),
        (width - w, 0, w, h),
        (0, height - h, w, h),
        (width - w, height - h, w, h),
        ((width - w) // 2, (height - h) // 2, w, h),
        (max(0, min(width - w, 250)), max(0, min(height - h, 250)), w, h),
    ]


def _source_levels(case: Case) -> list[np.ndarray]:
    with tifffile.TiffFile(case.source) as tf:
        return [lvl.asarray() for lvl in tf.series[0].levels]


def test_wsidicom_read_region_equals_the_source(case: Case) -> None:
    import wsidicom

    sources = _source_levels(case)
    with wsidicom.WsiDicom.open(case.out) as slide:
        for index, source in enumerate(sources):
            height, width = source.shape[:2]
            for x, y, w, h in _places(width, height, 96):
                region = slide.read_region((x, y), index, (w, h))
                got = np.asarray(region.convert("L" if source.ndim == 2 else "RGB"))
                want = source[y : y + h, x : x + w]
                np.testing.assert_array_equal(got, want, err_msg=f"level {index} at {(x, y)}")


def test_openslide_reads_rgb_output(rgb_case: Case) -> None:
    case = rgb_case
    assert case.rgb
    import openslide

    sources = _source_levels(case)
    slide = openslide.OpenSlide(str(case.out / "level0.dcm"))
    try:
        assert slide.level_count == len(sources)
        mpp = float(slide.properties[openslide.PROPERTY_NAME_MPP_X])
        assert mpp == pytest.approx(case.pixel_size, rel=1e-6)
        for index, source in enumerate(sources):
            height, width = source.shape[:2]
            assert slide.level_dimensions[index] == (width, height)
            factor = slide.level_downsamples[index]
            for x, y, w, h in _places(width, height, 80):
                region = slide.read_region((round(x * factor), round(y * factor)), index, (w, h))
                got = np.asarray(region.convert("RGB"))
                np.testing.assert_array_equal(
                    got, source[y : y + h, x : x + w], err_msg=f"level {index} at {(x, y)}"
                )
    finally:
        slide.close()


@pytest.mark.parametrize(
    ("series", "name", "image_type", "burned_in"),
    [
        (1, "label.dcm", ["ORIGINAL", "PRIMARY", "LABEL", "NONE"], "YES"),
        (2, "macro.dcm", ["ORIGINAL", "PRIMARY", "OVERVIEW", "NONE"], "YES"),
        (3, "thumbnail.dcm", ["DERIVED", "PRIMARY", "THUMBNAIL", "RESAMPLED"], "NO"),
    ],
)
def test_associated_images_become_their_own_instances(
    cases: dict[str, Case], series: int, name: str, image_type: list[str], burned_in: str
) -> None:
    import imagecodecs

    case = cases["tifffile-ycbcr420"]
    ds = pydicom.dcmread(case.out / name)
    assert list(ds.ImageType) == image_type
    assert ds.SpecimenLabelInImage == burned_in == ds.BurnedInAnnotation
    assert "PyramidUID" not in ds
    assert int(ds.NumberOfFrames) == 1
    with tifffile.TiffFile(case.source) as tf:
        source = tf.series[series].asarray()
        stored = tf.series[series].pages[0]
        fh = tf.filehandle
        fh.seek(stored.dataoffsets[0])
        raw = fh.read(stored.databytecounts[0])
    frame = _frames(ds)[0]
    if ds.file_meta.TransferSyntaxUID.is_compressed:  # a single JPEG strip, copied
        assert frame == expected_jpeg_frame(raw, stored.jpegtables, False)
        assert ds.LossyImageCompression == "01"
        decoded = imagecodecs.imread(frame)
    else:
        decoded = np.frombuffer(frame, np.uint8).reshape(ds.Rows, ds.Columns, 3)
    np.testing.assert_array_equal(decoded[: source.shape[0], : source.shape[1]], source)
    if image_type[2] == "THUMBNAIL":  # in the slide frame: spacing spans the whole slide
        level0 = pydicom.dcmread(case.out / "level0.dcm", stop_before_pixels=True)
        assert ds.FrameOfReferenceUID == level0.FrameOfReferenceUID
        spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert float(spacing[1]) * ds.TotalPixelMatrixColumns == pytest.approx(
            level0.ImagedVolumeWidth, rel=1e-6
        )


def test_wsidicom_finds_label_and_overview(cases: dict[str, Case]) -> None:
    import wsidicom

    with wsidicom.WsiDicom.open(cases["tifffile-ycbcr420"].out) as slide:
        assert slide.labels is not None and slide.overviews is not None
        label = slide.read_label()
        assert label.size == (256, 128)


def test_identity_is_empty_unless_given(cases: dict[str, Case], tmp_path: Path) -> None:
    from conftest import run_cli

    case = cases["tifffile-ycbcr444"]
    level0 = pydicom.dcmread(case.out / "level0.dcm")
    assert level0.PatientName == "" and level0.PatientID == ""
    assert level0.ContainerIdentifier == "ycbcr444"
    meta = tmp_path / "meta.json"
    uid = "1.2.826.0.1.3680043.8.498.1"
    meta.write_text(
        json.dumps(
            {
                "PatientName": "Doe^Jane",
                "PatientID": "P1",
                "StudyInstanceUID": uid,
                "ContainerIdentifier": "S-1",
            }
        )
    )
    out = tmp_path / "out"
    args = ("--metadata", meta, "--accession-number", "A7", "-q")
    run_cli("convert", case.source, out, *args, check=True)
    for path in out.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert ds.PatientName == "Doe^Jane" and ds.PatientID == "P1"
        assert ds.StudyInstanceUID == uid
        assert ds.AccessionNumber == "A7"
        assert ds.ContainerIdentifier == "S-1"
    out2 = tmp_path / "out2"
    run_cli("convert", case.source, out2, "--slide-id", "SLIDE-9", "-q", check=True)
    assert pydicom.dcmread(out2 / "level1.dcm").ContainerIdentifier == "SLIDE-9"
