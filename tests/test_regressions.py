"""Cases found in review: each was wrong once, and each test fails on that old behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import run_cli
from pydicom.encaps import encapsulate


def _write(path: Path, data: np.ndarray, axes: str, **meta) -> Path:
    tifffile.imwrite(
        path,
        data,
        tile=(64, 64),
        compression="zlib",
        metadata={"axes": axes, "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, **meta},
    )
    return path


def test_eleven_channels_keep_their_order(tmp_path: Path) -> None:
    """Files level0-c10.dcm sort before level0-c2.dcm; channels must not."""
    data = np.stack([np.full((64, 96), 10 + 20 * c, np.uint16) for c in range(11)])
    src = _write(tmp_path / "c11.ome.tif", data, "CYX")
    out = tmp_path / "dicom"
    assert run_cli("convert", src, out, "-q").returncode == 0
    for c in range(11):
        ds = pydicom.dcmread(out / f"level0-c{c + 1}.dcm", stop_before_pixels=True)
        assert ds.OpticalPathSequence[0].OpticalPathIdentifier == str(c + 1)
    back = tmp_path / "back.ome.tiff"
    assert run_cli("convert", out, back, "-q").returncode == 0
    np.testing.assert_array_equal(tifffile.imread(back), data)


def test_plane_order_other_than_xyzct_survives(tmp_path: Path) -> None:
    data = np.stack(
        [np.stack([np.full((64, 64), 100 * z + c, np.uint16) for c in range(3)]) for z in range(2)]
    )  # Z, C, Y, X: DimensionOrder XYCZT
    src = _write(tmp_path / "zc.ome.tif", data, "ZCYX")
    with tifffile.TiffFile(src) as tf:
        assert 'DimensionOrder="XYCZT"' in tf.ome_metadata
    out = tmp_path / "dicom"
    assert run_cli("convert", src, out, "-q").returncode == 0
    back = tmp_path / "back.ome.tiff"
    assert run_cli("convert", out, back, "-q").returncode == 0
    with tifffile.TiffFile(back) as tf:
        series = tf.series[0]
        assert series.axes == "ZCYX"
        np.testing.assert_array_equal(series.asarray(), data)


def test_one_time_point_comes_back_as_a_valid_ome_tiff(tmp_path: Path) -> None:
    data = np.stack([np.full((64, 64), t + 1, np.uint8) for t in range(3)])
    src = _write(tmp_path / "t.ome.tif", data, "TYX")
    out = tmp_path / "dicom"
    assert run_cli("convert", src, out, "--timepoint", "1", "-q").returncode == 0
    back = tmp_path / "back.ome.tiff"
    assert run_cli("convert", out, back, "-q").returncode == 0
    assert run_cli("info", back).returncode == 0
    with tifffile.TiffFile(back) as tf:
        assert 'SizeT="1"' in tf.ome_metadata
        np.testing.assert_array_equal(tf.series[0].asarray(), data[1])


def test_single_frame_split_into_fragments(corpus: Path, tmp_path: Path) -> None:
    """PS3.5 A.4: without an offset table, all fragments of a one-frame image are that frame."""
    ds = pydicom.dcmread(corpus / "dicom" / "openslide-python__boxes_0.dcm")
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    frame = frame[:-1] if frame.endswith(b"\xff\xd9\x00") else frame
    ds.PixelData = encapsulate([frame], fragments_per_frame=3, has_bot=False)
    ds.save_as(tmp_path / "fragments.dcm")
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", tmp_path / "fragments.dcm", out)
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(out) as tf:
        page = tf.pages[0]
        tf.filehandle.seek(page.dataoffsets[0])
        assert tf.filehandle.read(page.databytecounts[0]) == frame


@pytest.mark.parametrize(
    ("keyword", "name"),
    [
        ("PhotometricInterpretation", "Photometric Interpretation"),
        ("Rows", "Rows"),
        ("SamplesPerPixel", "Samples per Pixel"),
    ],
)
def test_missing_pixel_attributes_are_input_errors(
    corpus: Path, tmp_path: Path, keyword: str, name: str
) -> None:
    ds = pydicom.dcmread(corpus / "dicom" / "wsi-to-dicom-converter__jpeg.dicom")
    delattr(ds, keyword)
    ds.save_as(tmp_path / "broken.dcm")
    proc = run_cli("convert", tmp_path / "broken.dcm", tmp_path / "out.ome.tiff")
    assert proc.returncode == 2, proc.stderr
    assert f"broken.dcm: {name} is missing" in proc.stderr, proc.stderr
    assert "internal error" not in proc.stderr
    assert not (tmp_path / "out.ome.tiff").exists()


def test_jpeg_frames_that_disagree_with_rows_and_columns(corpus: Path, tmp_path: Path) -> None:
    ds = pydicom.dcmread(corpus / "dicom" / "wsi-to-dicom-converter__jpeg.dicom")
    ds.Columns = 250
    ds.save_as(tmp_path / "broken.dcm")
    proc = run_cli("convert", tmp_path / "broken.dcm", tmp_path / "out.ome.tiff")
    assert proc.returncode == 2 and "the JPEG frames are 256×256" in proc.stderr


def test_jpeg_codec_needs_a_quality(tmp_path: Path) -> None:
    src = _write(tmp_path / "g.ome.tif", np.zeros((64, 64), np.uint8), "YX")
    proc = run_cli("convert", src, tmp_path / "out", "--codec", "jpeg")
    assert proc.returncode == 2 and "--lossy" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_equal_plane_positions_fall_back_to_the_plane_index(tmp_path: Path) -> None:
    data = np.stack([np.full((64, 64), 10 * (z + 1), np.uint8) for z in range(2)])
    src = _write(tmp_path / "z.ome.tif", data, "ZYX")
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    planes = "".join(
        f'<Plane TheZ="{z}" TheC="0" TheT="0" PositionZ="5" PositionZUnit="µm"/>' for z in (0, 1)
    )
    tifffile.tiffcomment(src, xml.replace("</Pixels>", planes + "</Pixels>").encode())
    out = tmp_path / "dicom"
    assert run_cli("convert", src, out, "-q").returncode == 0
    back = tmp_path / "back.ome.tiff"
    assert run_cli("convert", out, back, "-q").returncode == 0
    np.testing.assert_array_equal(tifffile.imread(back), data)  # no plane overwritten
