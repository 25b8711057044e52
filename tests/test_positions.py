"""Each OME Image at its own place on the slide: Plane PositionX/Y ⇄ Total Pixel Matrix Origin.

The rule (``bridge/ometiff/positions.py``): a stage position is the centre of its image; stage
x runs along slide Y and stage y along slide X (Image Orientation (Slide) ``0\\1\\0\\1\\0\\0``);
the offsets between Images are kept, and the set is centred on the 25 × 75 mm slide when it
does not lie on it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import run_cli

from bridge.ometiff import omexml

PIXEL_UM = 0.5
WIDTH, HEIGHT = 512, 256  # pixels: 0.256 mm along slide Y, 0.128 mm along slide X


def _write(
    path: Path,
    positions: list[list[tuple[float, float]] | None],
    *,
    unit: str = "µm",
    pixel_size: float | None = PIXEL_UM,
) -> Path:
    """One OME Image (series) per entry, each with len(entry) time points whose first planes
    stand at those stage (x, y) positions; ``None``: no Plane positions."""
    with tifffile.TiffWriter(path, ome=True) as tw:
        for i, where in enumerate(positions):
            t = len(where) if where else 1
            data = np.stack([np.full((HEIGHT, WIDTH), 40 * i + k, np.uint8) for k in range(t)])
            meta: dict = {"axes": "TYX", "Name": f"position {i}"}
            if pixel_size is not None:
                meta |= {"PhysicalSizeX": pixel_size, "PhysicalSizeY": pixel_size}
            if where:
                meta["Plane"] = {
                    "PositionX": [x for x, _ in where],
                    "PositionXUnit": [unit] * t,
                    "PositionY": [y for _, y in where],
                    "PositionYUnit": [unit] * t,
                }
            tw.write(data, tile=(256, 256), metadata=meta)
    return path


def _origins(out: Path) -> dict[str, tuple[float, float]]:
    """File name -> (X, Y) Offset in Slide Coordinate System of each written instance."""
    found = {}
    for path in sorted(out.glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert [float(v) for v in ds.ImageOrientationSlide] == [0, 1, 0, 1, 0, 0]
        item = ds.TotalPixelMatrixOriginSequence[0]
        found[path.name] = (
            float(item.XOffsetInSlideCoordinateSystem),
            float(item.YOffsetInSlideCoordinateSystem),
        )
    return found


def _convert(src: Path, out: Path, *args: str) -> str:
    proc = run_cli("convert", src, out, "--pyramid", "keep", *args)  # the levels written
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def _today(width_px: int = WIDTH, height_px: int = HEIGHT) -> tuple[float, float]:
    """The origin of an image centred on the 25 × 75 mm slide (height along X)."""
    return (12.5 - height_px * PIXEL_UM / 2000, 37.5 - width_px * PIXEL_UM / 2000)


def _assert_centred_as_today(out: Path) -> None:
    origins = _origins(out)
    assert len(origins) == 2
    for origin in origins.values():
        assert origin == pytest.approx(_today(), abs=1e-9)


def _plane_positions(path: Path) -> list[tuple[float, str, float, str]]:
    """(PositionX, unit, PositionY, unit) of each Plane of each Image, in document order."""
    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    return [
        (p.position_x[0], p.position_x[1], p.position_y[0], p.position_y[1])
        for image in omexml.parse(xml).images
        for p in image.pixels.planes
        if p.position_x is not None and p.position_y is not None
    ]


def test_two_positions_keep_their_offsets_on_the_slide(tmp_path: Path) -> None:
    """1.2 mm apart in stage X and 0.3 mm in stage Y, far off the slide's coordinates (a real
    stage's zero): the origins differ by 0.3 mm in slide X and 1.2 mm in slide Y."""
    src = _write(tmp_path / "two.ome.tif", [[(-33280.5, 1262.37)], [(-32080.5, 1562.37)]])
    out = tmp_path / "dicom"
    _convert(src, out, "-q")
    origins = _origins(out)
    assert sorted(origins) == ["image0-level0.dcm", "image1-level0.dcm"]
    (x0, y0), (x1, y1) = origins["image0-level0.dcm"], origins["image1-level0.dcm"]
    assert x1 - x0 == pytest.approx(0.3, abs=1e-9)  # stage Y -> slide X
    assert y1 - y0 == pytest.approx(1.2, abs=1e-9)  # stage X -> slide Y
    # the set (0.428 × 1.456 mm) is centred on the slide, as one image is today
    w, h = WIDTH * PIXEL_UM / 1000, HEIGHT * PIXEL_UM / 1000
    assert (x0 + x1 + h) / 2 == pytest.approx(12.5, abs=1e-9)
    assert (y0 + y1 + w) / 2 == pytest.approx(37.5, abs=1e-9)
    proc = run_cli("check", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_positions_on_the_slide_are_used_as_they_are(tmp_path: Path) -> None:
    """Stage positions that lie on the slide are its coordinates: the centre of the image."""
    src = _write(tmp_path / "on.ome.tif", [[(30000.0, 10000.0)], [(31200.0, 10300.0)]])
    out = tmp_path / "dicom"
    _convert(src, out, "-q")
    w, h = WIDTH * PIXEL_UM / 1000, HEIGHT * PIXEL_UM / 1000
    origins = _origins(out)
    assert origins["image0-level0.dcm"] == pytest.approx((10.0 - h / 2, 30.0 - w / 2), abs=1e-9)
    assert origins["image1-level0.dcm"] == pytest.approx((10.3 - h / 2, 31.2 - w / 2), abs=1e-9)


def test_positions_come_back_in_ome_tiff(tmp_path: Path) -> None:
    src = _write(tmp_path / "two.ome.tif", [[(-33280.5, 1262.37)], [(-32080.5, 1562.37)]])
    out = tmp_path / "dicom"
    _convert(src, out, "-q")
    back = tmp_path / "back.ome.tiff"
    _convert(out, back, "-q")  # the carried OME-XML: the source's own values
    assert _plane_positions(back) == [
        (-33280.5, "µm", 1262.37, "µm"),
        (-32080.5, "µm", 1562.37, "µm"),
    ]


def test_without_carriers_dicom_origins_survive_a_round_trip(tmp_path: Path) -> None:
    """DICOM → OME-TIFF → DICOM with nothing carried: the origins travel as Plane positions."""
    src = _write(tmp_path / "two.ome.tif", [[(-33280.5, 1262.37)], [(-32080.5, 1562.37)]])
    out = tmp_path / "dicom"
    _convert(src, out, "-q")
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for path in out.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.remove_private_tags()  # no carried OME-XML
        ds.save_as(stripped / path.name)
    rebuilt = tmp_path / "rebuilt.ome.tiff"
    _convert(stripped, rebuilt, "-q")
    positions = _plane_positions(rebuilt)
    assert [(ux, uy) for _, ux, _, uy in positions] == [("mm", "mm")] * 2
    (ax, _, ay, _), (bx, _, by, _) = positions
    assert (bx - ax, by - ay) == pytest.approx((1.2, 0.3), abs=1e-9)
    # and back, without the DICOM headers the OME-TIFF carries: the positions alone place them
    with tifffile.TiffFile(rebuilt) as tf:
        xml = tf.ome_metadata
    xml = re.sub(r"<StructuredAnnotations>.*</StructuredAnnotations>", "", xml, flags=re.S)
    xml = re.sub(r"<AnnotationRef [^>]*/>", "", xml)
    assert "dicom-json" not in xml
    tifffile.tiffcomment(rebuilt, xml.encode())
    again = tmp_path / "again"
    _convert(rebuilt, again, "-q")
    before, after = _origins(out), _origins(again)
    assert sorted(before) == sorted(after)
    for name, origin in before.items():
        assert after[name] == pytest.approx(origin, abs=1e-9)


def test_without_positions_the_image_is_centred_as_before(tmp_path: Path) -> None:
    src = _write(tmp_path / "none.ome.tif", [None, None])
    out = tmp_path / "dicom"
    assert "warning" not in _convert(src, out)
    _assert_centred_as_today(out)


def test_reference_frame_positions_cannot_be_placed(tmp_path: Path) -> None:
    """Positions without a physical unit: today's placement, and a warning since they differ."""
    src = _write(
        tmp_path / "rf.ome.tif",
        [[(17698520.0, 44134172.0)], [(17798520.0, 44134172.0)]],
        unit="reference frame",
    )
    out = tmp_path / "dicom"
    stderr = _convert(src, out)
    assert "omedicom: warning:" in stderr and "'reference frame'" in stderr, stderr
    assert "different stage positions" in stderr
    _assert_centred_as_today(out)


def test_equal_reference_frame_positions_say_nothing(tmp_path: Path) -> None:
    src = _write(tmp_path / "rf.ome.tif", [[(5.0, 5.0)], [(5.0, 5.0)]], unit="reference frame")
    out = tmp_path / "dicom"
    assert "warning" not in _convert(src, out)
    _assert_centred_as_today(out)


def test_positions_without_a_pixel_size_cannot_be_placed(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "nosize.ome.tif", [[(1000.0, 1000.0)], [(2200.0, 1300.0)]], pixel_size=None
    )
    out = tmp_path / "dicom"
    stderr = _convert(src, out, "--pixel-size", str(PIXEL_UM))
    assert "PhysicalSizeX" in stderr and "centred" in stderr, stderr
    _assert_centred_as_today(out)


def test_positions_too_large_for_a_slide_are_said_and_not_used(tmp_path: Path) -> None:
    src = _write(tmp_path / "huge.ome.tif", [[(-1e308, 0.0)], [(1e308, 0.0)]], unit="m")
    out = tmp_path / "dicom"
    stderr = _convert(src, out)
    assert "omedicom: warning:" in stderr and "centred" in stderr, stderr
    _assert_centred_as_today(out)


@pytest.mark.parametrize("timepoint", [0, 1])
def test_the_chosen_time_point_gives_the_positions(tmp_path: Path, timepoint: int) -> None:
    """A multi-position time series (SizeT 2, two Images): the stage moved between the time
    points, and each converted time point is placed by its own planes."""
    series = [
        [(30000.0, 10000.0), (30100.0, 10000.0)],
        [(31200.0, 10300.0), (31200.0, 10500.0)],
    ]
    src = _write(tmp_path / "tp.ome.tif", series)
    out = tmp_path / "dicom"
    _convert(src, out, "--timepoint", str(timepoint), "-q")
    w, h = WIDTH * PIXEL_UM / 1000, HEIGHT * PIXEL_UM / 1000
    origins = _origins(out)
    for i in (0, 1):
        x, y = series[i][timepoint]
        expected = (y / 1000 - h / 2, x / 1000 - w / 2)
        assert origins[f"image{i}-level0.dcm"] == pytest.approx(expected, abs=1e-9)


def test_plane_positions_are_read_and_bad_ones_dropped() -> None:
    xml = (
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0">'
        '<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="1" SizeY="1" '
        'SizeZ="1" SizeC="1" SizeT="2"><TiffData/>'
        '<Plane TheZ="0" TheC="0" TheT="0" PositionX="1.5" PositionXUnit="mm" PositionY="-2"/>'
        '<Plane TheZ="0" TheC="0" TheT="1" PositionX="NaN" PositionY="inf"/>'
        "</Pixels></Image></OME>"
    )
    ome = omexml.parse(xml)
    first, second = ome.images[0].pixels.planes
    assert first.position_x == (1.5, "mm")
    assert first.position_y == (-2.0, "reference frame")  # the schema's default unit
    assert second.position_x is None and second.position_y is None
    assert any("PositionX='NaN'" in note for note in ome.warnings), ome.warnings


def test_a_damaged_dicom_placement_writes_no_position(tmp_path: Path) -> None:
    """Finite but absurd origin and cosines whose centre overflows: the conversion succeeds,
    without a Plane position (rather than PositionX="inf")."""
    src = _write(tmp_path / "one.ome.tif", [[(30000.0, 10000.0)]])
    out = tmp_path / "dicom"
    _convert(src, out, "-q")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    ds = pydicom.dcmread(out / "level0.dcm")
    ds.remove_private_tags()
    ds.ImageOrientationSlide = [0, 1e308, 0, 1e308, 0, 0]
    item = ds.TotalPixelMatrixOriginSequence[0]
    item.XOffsetInSlideCoordinateSystem = item.YOffsetInSlideCoordinateSystem = 1.7e308
    ds.save_as(damaged / "level0.dcm")
    back = tmp_path / "back.ome.tiff"
    _convert(damaged, back, "-q")
    with tifffile.TiffFile(back) as tf:
        assert "PositionX" not in tf.ome_metadata and "PositionY" not in tf.ome_metadata


def test_a_dicom_sources_own_placement_wins_over_its_plane_positions(
    corpus: Path, tmp_path: Path
) -> None:
    """highdicom's sample is rotated (``0\\-1\\0\\-1\\0\\0``); its OME-TIFF has Plane positions
    and the carried header. Re-encoded on the way back (so the header is not reused whole), it
    keeps its own origin and orientation, not the positions' default orientation."""
    src = corpus / "dicom" / "highdicom__sm_image.dcm"
    mid = tmp_path / "mid.ome.tiff"
    _convert(src, mid, "-q")
    assert _plane_positions(mid)  # the positions are there, and must not win
    back = tmp_path / "back"
    _convert(mid, back, "--codec", "jpeg2000", "-q")
    a = pydicom.dcmread(src, stop_before_pixels=True)
    b = pydicom.dcmread(back / "level0.dcm", stop_before_pixels=True)
    assert b.file_meta.TransferSyntaxUID != a.file_meta.TransferSyntaxUID
    assert [float(v) for v in b.ImageOrientationSlide] == [0, -1, 0, -1, 0, 0]
    for key in ("XOffsetInSlideCoordinateSystem", "YOffsetInSlideCoordinateSystem"):
        want = float(a.TotalPixelMatrixOriginSequence[0][key].value)
        assert float(b.TotalPixelMatrixOriginSequence[0][key].value) == pytest.approx(want)


def test_a_damaged_carried_origin_is_said_and_the_positions_place_it(
    corpus: Path, tmp_path: Path
) -> None:
    """The carried header's X Offset edited to 1e999 (inf): not an internal error; a warning,
    and the image is placed by its Plane positions (its centre stays where it was)."""
    src = corpus / "dicom" / "highdicom__sm_image.dcm"
    mid = tmp_path / "mid.ome.tiff"
    _convert(src, mid, "-q")
    with tifffile.TiffFile(mid) as tf:
        xml = tf.ome_metadata
    good = '"0040072A": {"Value": [23.449873], "vr": "DS"}'
    assert good in xml
    tifffile.tiffcomment(mid, xml.replace(good, good.replace("23.449873", '"1e999"')).encode())
    back = tmp_path / "back"
    stderr = _convert(mid, back, "--codec", "jpeg2000")
    assert "omedicom: warning: the carried DICOM header of image 0" in stderr, stderr
    assert "internal error" not in stderr
    a = pydicom.dcmread(src, stop_before_pixels=True)
    b = pydicom.dcmread(back / "level0.dcm", stop_before_pixels=True)
    assert [float(v) for v in b.ImageOrientationSlide] == [0, 1, 0, 1, 0, 0]

    def centre(ds: pydicom.Dataset) -> tuple[float, float]:
        """origin + row cosines · width / 2 + column cosines · height / 2 (PS3.3 C.8.12.4)."""
        item = ds.TotalPixelMatrixOriginSequence[0]
        rx, ry, _, cx, cy, _ = (float(v) for v in ds.ImageOrientationSlide)
        spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        w = ds.TotalPixelMatrixColumns * float(spacing[1])
        h = ds.TotalPixelMatrixRows * float(spacing[0])
        x = float(item.XOffsetInSlideCoordinateSystem) + (rx * w + cx * h) / 2
        y = float(item.YOffsetInSlideCoordinateSystem) + (ry * w + cy * h) / 2
        return (x, y)

    assert centre(b) == pytest.approx(centre(a), abs=1e-6)
