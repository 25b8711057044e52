"""Tests written for survivors of the mutation run (scripts/mutation.py; README "Mutation
testing"): what the check report says, besides its findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import samples
from conftest import run_cli


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("mutants")
    src = samples.write_tifffile(tmp / "small.ome.tif", size=(300, 200), levels=1)
    out = tmp / "dicom"
    run_cli("convert", "--pyramid", "keep", src, out, "-q", check=True)
    return {"src": src, "out": out}


def test_text_report_names_what_it_compared_with(small: dict[str, Path]) -> None:
    """conformance/report.py: the headline of the text report says ``--against``'s source."""
    proc = run_cli("check", small["out"], "--against", small["src"], "--no-dicom3tools")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    headline = proc.stdout.splitlines()[0]
    assert headline.startswith("omedicom check: 1 file(s); 0 error(s)"), headline
    assert headline.endswith(f"; compared with {small['src']}"), headline
    alone = run_cli("check", small["out"], "--no-dicom3tools")
    assert "compared with" not in alone.stdout.splitlines()[0]


def test_checks_run_are_those_of_the_inputs(small: dict[str, Path]) -> None:
    """conformance/runner.py: a DICOM image series runs the DICOM and WSI checks, and the
    report lists those, not the OME-TIFF, annotation or round-trip ones."""
    proc = run_cli("check", small["out"], "--json", "--no-dicom3tools")
    ran = json.loads(proc.stdout)["checks_run"]
    assert "WSI-spacing" in ran and "DICOM-sop-class" in ran
    assert [c for c in ran if not c.startswith(("DICOM-", "WSI-"))] == []
    against = run_cli("check", small["out"], "--against", small["src"], "--json")
    assert any(c.startswith("RT-") for c in json.loads(against.stdout)["checks_run"])


def _ome_color(r: int, g: int, b: int) -> int:
    """OME Color: RGBA packed in a signed 32-bit integer (ome.xsd Color)."""
    value = (r << 24) | (g << 16) | (b << 8) | 0xFF
    return value - (1 << 32) if value >= 1 << 31 else value


def test_channel_colour_becomes_a_black_to_colour_palette(tmp_path: Path) -> None:
    """bridge/dicom/writer.py ``_palette``: each fluorescence channel's OME Color becomes a
    Palette Color Lookup Table (PS3.3 C.8.12.5.1.4) that runs from black, entry 0, to the
    colour, entry 255: entry i of component k is round(i × k / 255) × 257 (16-bit entries)."""
    import numpy as np
    import pydicom
    import tifffile

    colours = [(255, 0, 0), (0, 200, 100)]
    data = np.stack([np.full((64, 96), 40 * (c + 1), np.uint8) for c in range(2)])
    src = tmp_path / "colours.ome.tif"
    tifffile.imwrite(
        src, data, tile=(64, 64), compression="zlib",
        metadata={
            "axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
            "Channel": {"Name": ["red", "teal"], "Color": [_ome_color(*c) for c in colours]},
        },
    )  # fmt: skip
    out = tmp_path / "dicom"
    run_cli("convert", "--pyramid", "keep", src, out, "-q", check=True)
    items = {}
    for path in out.glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for item in ds.get("OpticalPathSequence", []):
            items[str(item.get("OpticalPathDescription", ""))] = item
    assert set(items) >= {"red", "teal"}, sorted(items)
    ramp = np.arange(256) / 255
    for name, colour in zip(["red", "teal"], colours, strict=True):
        (lut,) = items[name].PaletteColorLookupTableSequence
        for keyword, k in zip(("Red", "Green", "Blue"), colour, strict=True):
            assert list(lut[f"{keyword}PaletteColorLookupTableDescriptor"].value) == [256, 0, 16]
            got = np.frombuffer(lut[f"{keyword}PaletteColorLookupTableData"].value, "<u2")
            np.testing.assert_array_equal(got, np.round(ramp * k) * 257, err_msg=name + keyword)


def test_a_deflate_round_trip_keeps_its_carried_layout_silently(tmp_path: Path) -> None:
    """bridge/dicom/reader.py: the TIFF layout carried for a level without JPEG tables or an
    inserted marker (here Deflate) is whole, so the way back says nothing about it."""
    src = samples.write_tifffile(tmp_path / "zlib.ome.tif", size=(300, 200), levels=1,
                                 compression="zlib")  # fmt: skip
    run_cli("convert", src, tmp_path / "dicom", "-q", check=True)
    back = run_cli("convert", tmp_path / "dicom", tmp_path / "back.ome.tiff")
    assert back.returncode == 0, back.stderr
    assert "carried TIFF layout" not in back.stderr, back.stderr


def test_uncompressed_strips_are_cut_into_tiles_column_by_column(tmp_path: Path) -> None:
    """bridge/ometiff/tiles.py: a striped uncompressed level wider than one DICOM tile is read
    strip row by strip row at each tile's column offset; every frame holds its own columns."""
    import numpy as np
    import pydicom
    import tifffile
    from pydicom.encaps import generate_frames

    image = samples.tissue(300, 1300, seed=11)  # wider than one tile (1024): 512-pixel tiles
    src = tmp_path / "strips.ome.tif"
    meta = {"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(src, image, photometric="rgb", rowsperstrip=16, metadata=meta)
    run_cli("convert", src, tmp_path / "dicom", "-q", check=True)
    ds = pydicom.dcmread(tmp_path / "dicom" / "level0.dcm")
    rows, cols, n = ds.Rows, ds.Columns, int(ds.NumberOfFrames)
    across = -(-1300 // cols)
    assert across > 1  # the tiles do start at column offsets
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        import imagecodecs

        frames = [imagecodecs.imread(f) for f in generate_frames(ds.PixelData, number_of_frames=n)]
    else:
        size = rows * cols * 3
        frames = [
            np.frombuffer(ds.PixelData[i * size : (i + 1) * size], np.uint8) for i in range(n)
        ]
    for i, frame in enumerate(frames):
        ty, tx = divmod(i, across)
        want = np.zeros((rows, cols, 3), np.uint8)
        part = image[ty * rows : (ty + 1) * rows, tx * cols : (tx + 1) * cols]
        want[: part.shape[0], : part.shape[1]] = part
        np.testing.assert_array_equal(np.asarray(frame).reshape(rows, cols, 3), want, f"frame {i}")


def test_frames_in_several_fragments_without_an_offset_table(
    small: dict[str, Path], tmp_path: Path
) -> None:
    """conformance/frames.py: with an empty Basic Offset Table, fragments that do not start a
    JPEG stream (no SOI) continue the frame before them (PS3.5 A.4): two fragments per frame
    are still one frame each, and the check passes."""
    import shutil

    import pydicom
    from pydicom.encaps import encapsulate, generate_frames

    folder = tmp_path / "fragmented"
    shutil.copytree(small["out"], folder)
    path = folder / "level0.dcm"
    ds = pydicom.dcmread(path)
    n = int(ds.NumberOfFrames)
    assert n > 1
    frames = list(generate_frames(ds.PixelData, number_of_frames=n))
    ds.PixelData = encapsulate(frames, fragments_per_frame=2, has_bot=False)
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.save_as(path)
    proc = run_cli("check", folder, "--json", "--no-dicom3tools", "--deep")
    report = json.loads(proc.stdout)
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    assert proc.returncode == 0 and errors == [], errors
