"""``convert --pyramid``: missing levels made by an anti-aliased 2× reduction (bridge/pyramid.py).

Judged by an FFT of a chirp against plain decimation and libvips' own pyramid, a numpy reference
for 16-bit multi-channel z-stacks, OpenSlide, wsidicom, dciodvfy and Bio-Formats.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli
from pydicom.encaps import generate_frames
from readers import bioformats_info

from conformance import dicom3tools

# -- reading DICOM levels back, with pydicom and imagecodecs only --------------------------------


def _frames(ds: pydicom.Dataset) -> list[np.ndarray]:
    rows, cols, n = int(ds.Rows), int(ds.Columns), int(ds.get("NumberOfFrames", 1))
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        out = []
        for data in generate_frames(ds.PixelData, number_of_frames=n):
            array = imagecodecs.imread(data)
            out.append(array.reshape(rows, cols, -1))
        return out
    spp = int(ds.SamplesPerPixel)
    dtype = np.uint16 if int(ds.BitsAllocated) == 16 else np.uint8
    flat = np.frombuffer(ds.PixelData, dtype)
    return list(flat.reshape(n, rows, cols, spp))


def _planes(path: Path) -> list[np.ndarray]:
    """Every focal plane of one instance as (rows, columns, samples), TILED_FULL order."""
    ds = pydicom.dcmread(path)
    width, height = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
    rows, cols = int(ds.Rows), int(ds.Columns)
    nx, ny = -(-width // cols), -(-height // rows)
    frames = _frames(ds)
    planes = []
    for p in range(len(frames) // (nx * ny)):
        image = np.zeros((ny * rows, nx * cols, frames[0].shape[2]), frames[0].dtype)
        for i in range(nx * ny):
            y, x = divmod(i, nx)
            image[y * rows : (y + 1) * rows, x * cols : (x + 1) * cols] = frames[p * nx * ny + i]
        planes.append(image[:height, :width])
    return planes


def _level_files(out: Path) -> list[Path]:
    """The level instances of a one-image, one-channel output, level 0 first."""
    return sorted(out.glob("level*.dcm"), key=lambda p: int(re.match(r"level(\d+)", p.name)[1]))


def _dciodvfy_errors(path: Path) -> list:
    return dicom3tools.errors(dicom3tools.dciodvfy(path))


# -- the chirp: detail rising to level 0's Nyquist frequency -------------------------------------

WIDTH, HEIGHT = 2048, 512


def _chirp() -> np.ndarray:
    """Rows of a chirp whose frequency rises linearly from 0 to 0.5 cycles/px (level 0's
    Nyquist) across the width: at column x it is x / (2 W)."""
    x = np.arange(WIDTH)
    row = 128 + 100 * np.cos(2 * np.pi * 0.25 * x**2 / WIDTH)
    return np.clip(np.rint(row), 0, 255).astype(np.uint8)[None, :].repeat(HEIGHT, 0)


def _alias_energy(level: np.ndarray, k: int) -> float:
    """Energy (FFT, Parseval) of level k where the chirp's frequency exceeds level k's Nyquist
    frequency (level-0 columns beyond W / 2**k): a perfect low-pass leaves nothing there, only
    aliasing does."""
    start = WIDTH // 2**k // 2**k
    region = level[:, start:].astype(np.float64)
    region -= region.mean(axis=1, keepdims=True)
    return float((np.abs(np.fft.rfft(region, axis=1)) ** 2).sum())


@pytest.fixture(scope="module")
def chirp(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("chirp")
    image = _chirp()
    src = tmp / "chirp.ome.tif"
    tifffile.imwrite(
        src, image, tile=(256, 256), photometric="minisblack",
        metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
    )  # fmt: skip
    out = tmp / "dicom"
    proc = run_cli("convert", src, out)  # default: --pyramid auto
    assert proc.returncode == 0, proc.stderr
    levels = [_planes(f)[0][..., 0] for f in _level_files(out)]
    vips_levels = None
    if shutil.which("vips"):
        vips_out = tmp / "vips.tif"
        subprocess.run(
            ["vips", "tiffsave", str(src), str(vips_out), "--tile", "--tile-width", "256",
             "--tile-height", "256", "--pyramid", "--compression", "none"],
            check=True, capture_output=True,
        )  # fmt: skip
        with tifffile.TiffFile(vips_out) as tif:
            vips_levels = [page.asarray() for page in tif.pages]
    return {"image": image, "levels": levels, "vips": vips_levels, "out": out}


def test_auto_adds_levels_until_one_tile_each_half_the_size_rounded_up(chirp) -> None:
    sizes = [(lv.shape[1], lv.shape[0]) for lv in chirp["levels"]]
    assert sizes == [(2048, 512), (1024, 256), (512, 128), (256, 64)]


def test_new_levels_leave_at_most_a_tenth_of_plain_decimations_aliasing(chirp) -> None:
    image = chirp["image"]
    for k, level in enumerate(chirp["levels"][1:], start=1):
        decimated = image[:: 2**k, :: 2**k]
        ratio = _alias_energy(level, k) / _alias_energy(decimated, k)
        print(f"level {k}: alias energy {ratio:.4f} of plain decimation's")
        assert ratio <= 0.10, (k, ratio)
        # and it is a reduction, not a blank: the band-limited part keeps its contrast
        passband = level[:, : WIDTH // 2**k // 2**k // 2]
        assert passband.std() > 50


def test_compared_with_libvips_pyramid(chirp) -> None:
    """libvips' 2×2 mean and our default agree where the chirp is well below each level's
    Nyquist frequency (same geometry, no shift); above it, libvips' box filter aliases more."""
    if chirp["vips"] is None:
        pytest.fail("vips (Debian libvips-tools) is not installed")
    image = chirp["image"]
    by_size = {v.shape[:2]: v for v in chirp["vips"]}
    for k, level in enumerate(chirp["levels"][1:], start=1):
        theirs = by_size[level.shape[:2]]
        theirs = theirs[..., 0] if theirs.ndim == 3 else theirs
        diff = np.abs(level.astype(float) - theirs.astype(float))
        smooth = WIDTH // 2**k // 2**k // 4  # chirp below a quarter of the level's Nyquist
        print(
            f"level {k}: mean |ours - libvips| {diff.mean():.2f} overall, "
            f"{diff[:, :smooth].mean():.2f} in the band-limited part"
        )
        assert diff[:, :smooth].mean() < 2.0
        decimated = image[:: 2**k, :: 2**k]
        assert _alias_energy(level, k) < _alias_energy(theirs, k) < _alias_energy(decimated, k)


# -- 16-bit, 3 channels, 2 focal planes ----------------------------------------------------------


def _reference(plane: np.ndarray) -> np.ndarray:
    """numpy reference of one 2× step: binomial (1, 3, 3, 1) / 8 per axis centred on the 2×2
    block, weights renormalised over the pixels that exist, rounded half up."""
    w = np.array([1.0, 3.0, 3.0, 1.0])

    def axis(a: np.ndarray, ax: int) -> np.ndarray:
        n = a.shape[ax]
        m = -(-n // 2)
        pad = [(0, 0)] * a.ndim
        pad[ax] = (1, 2 * m + 1 - n)
        values = np.pad(a, pad)
        inside = np.pad(np.ones(n), (1, 2 * m + 1 - n))
        total = sum(np.take(values, range(t, t + 2 * m, 2), axis=ax) * w[t] for t in range(4))
        weight = sum(inside[t : t + 2 * m : 2] * w[t] for t in range(4))
        shape = [1] * a.ndim
        shape[ax] = m
        return total / weight.reshape(shape)

    return np.floor(axis(axis(plane.astype(np.float64), 0), 1) + 0.5)


def test_16bit_three_channels_two_planes_all_reduced(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    c, z, h, w = 3, 2, 300, 420
    yy, xx = np.mgrid[0:h, 0:w]
    data = np.stack(
        [
            np.stack(
                [
                    20000
                    + 15000 * np.sin(xx / (7 + k) + j) * np.cos(yy / 11)
                    + rng.normal(0, 3000, (h, w))
                    for j in range(z)
                ]
            )
            for k in range(c)
        ]
    )
    data = np.clip(data, 0, 65535).astype(np.uint16)
    src = tmp_path / "fluo.ome.tif"
    meta = {"axes": "CZYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65, "PhysicalSizeZ": 2.0,
            "Channel": {"Name": ["DAPI", "FITC", "Cy5"]}}  # fmt: skip
    tifffile.imwrite(src, data, tile=(128, 128), compression="zlib", metadata=meta)
    out = tmp_path / "dicom"
    proc = run_cli("convert", src, out)
    assert proc.returncode == 0, proc.stderr
    for ch in range(c):
        files = sorted(out.glob(f"level*-c{ch + 1}.dcm"))
        assert [f.name for f in files] == [f"level{k}-c{ch + 1}.dcm" for k in range(3)]
        expected = [data[ch, j].astype(np.float64) for j in range(z)]
        for k, path in enumerate(files):
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            assert int(ds.BitsAllocated) == 16 and ds.TotalPixelMatrixFocalPlanes == z
            planes = _planes(path)
            assert len(planes) == z
            for j, plane in enumerate(planes):
                plane = plane[..., 0]
                if k:
                    expected[j] = _reference(expected[j])
                assert plane.dtype == np.uint16
                assert plane.shape == expected[j].shape
                assert abs(plane.mean() - expected[j].mean()) <= 1.0, (ch, k, j)
                assert np.abs(plane - expected[j]).max() <= 1
                assert data[ch, j].min() <= plane.min() and plane.max() <= data[ch, j].max()
        assert not _dciodvfy_errors(files[-1])


# -- RGB JPEG: OpenSlide, wsidicom, dciodvfy, geometry, lossy history ---------------------------


@pytest.fixture(scope="module")
def rgb(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("rgb")
    src = samples.write_tifffile(tmp / "flat.ome.tiff", size=(1500, 1100), levels=1, label=True)
    out = tmp / "dicom"
    proc = run_cli("convert", src, out)
    assert proc.returncode == 0, proc.stderr
    return {"src": src, "out": out, "tmp": tmp}


def test_rgb_levels_open_in_openslide_and_wsidicom_and_pass_dciodvfy(rgb) -> None:
    import openslide
    from wsidicom import WsiDicom

    out = rgb["out"]
    files = _level_files(out)
    assert [f.name for f in files] == [f"level{k}.dcm" for k in range(4)]
    slide = openslide.OpenSlide(str(out / "level0.dcm"))
    assert slide.level_count == 4
    assert slide.level_dimensions == ((1500, 1100), (750, 550), (375, 275), (188, 138))
    for k in range(4):
        w, h = slide.level_dimensions[k]
        region = np.asarray(slide.read_region((0, 0), k, (w, h)).convert("RGB"))
        assert region.std() > 5  # tissue, not blank
    slide.close()
    with WsiDicom.open(out) as wsi:
        assert len(wsi.levels) == 4
        for k, level in enumerate(wsi.levels):
            assert level.mpp.width == pytest.approx(0.5 * 1500 / level.size.width, rel=1e-6)
            size = (level.size.width, level.size.height)
            region = np.asarray(wsi.read_region((0, 0), k, size).convert("RGB"))
            assert region.shape[:2] == (level.size.height, level.size.width)
            assert region.std() > 5
    for path in out.glob("*.dcm"):
        assert not _dciodvfy_errors(path), path.name


def test_new_levels_are_derived_resampled_lossy_with_exact_spacing(rgb) -> None:
    out = rgb["out"]
    base = pydicom.dcmread(out / "level0.dcm", stop_before_pixels=True)
    bw, bh = int(base.TotalPixelMatrixColumns), int(base.TotalPixelMatrixRows)
    (bsy, bsx) = (float(v) for v in base.SharedFunctionalGroupsSequence[0]
                  .PixelMeasuresSequence[0].PixelSpacing)  # fmt: skip
    for k in range(1, 4):
        ds = pydicom.dcmread(out / f"level{k}.dcm", stop_before_pixels=True)
        assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
        assert ds.LossyImageCompression == "01"
        assert ds.LossyImageCompressionMethod == "ISO_10918_1"
        assert float(ds.LossyImageCompressionRatio) > 1
        w, h = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
        assert (w, h) == (-(-bw // 2**k), -(-bh // 2**k))
        sy, sx = (float(v) for v in ds.SharedFunctionalGroupsSequence[0]
                  .PixelMeasuresSequence[0].PixelSpacing)  # fmt: skip
        assert sx == pytest.approx(bsx * bw / w, rel=1e-6)
        assert sy == pytest.approx(bsy * bh / h, rel=1e-6)
        assert ds.ImagedVolumeWidth == base.ImagedVolumeWidth
        assert ds.ImagedVolumeHeight == base.ImagedVolumeHeight
        assert ds.TotalPixelMatrixOriginSequence == base.TotalPixelMatrixOriginSequence
        assert ds.PyramidUID == base.PyramidUID
        assert ds.file_meta.TransferSyntaxUID == base.file_meta.TransferSyntaxUID  # JPEG


def test_associated_images_get_no_pyramid(rgb) -> None:
    for path in rgb["out"].glob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.ImageType[2] != "VOLUME":
            assert path.name.startswith(("label", "macro", "thumbnail")), path.name
    labels = [p for p in rgb["out"].glob("*.dcm") if p.name.startswith("label")]
    assert len(labels) == 1


def test_keep_writes_the_source_levels_only_and_none_level_0(rgb, tmp_path: Path) -> None:
    keep, none = tmp_path / "keep", tmp_path / "none"
    assert run_cli("convert", rgb["src"], keep, "--pyramid", "keep").returncode == 0
    assert [f.name for f in _level_files(keep)] == ["level0.dcm"]
    pyramid = tmp_path / "pyramid.ome.tiff"
    samples.write_tifffile(pyramid, size=(1500, 1100), levels=3)
    assert run_cli("convert", pyramid, none, "--pyramid", "none").returncode == 0
    assert [f.name for f in _level_files(none)] == ["level0.dcm"]


def test_complete_pyramid_unchanged_by_auto_tiles_byte_identical(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "full.ome.tiff", size=(1200, 1000), levels=4)
    auto, keep = tmp_path / "auto", tmp_path / "keep"
    assert run_cli("convert", src, auto).returncode == 0
    assert run_cli("convert", src, keep, "--pyramid", "keep").returncode == 0
    names = [f.name for f in _level_files(auto)]
    assert names == [f.name for f in _level_files(keep)] == [f"level{k}.dcm" for k in range(4)]
    with tifffile.TiffFile(src) as tif:
        pages = [tif.pages[0], *tif.pages[0].pages]
        stored = []
        for page in pages:
            data = []
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                tif.filehandle.seek(offset)
                data.append(tif.filehandle.read(count))
            stored.append(data)
    for k, name in enumerate(names):
        a = pydicom.dcmread(auto / name)
        b = pydicom.dcmread(keep / name)
        fa = list(generate_frames(a.PixelData, number_of_frames=int(a.NumberOfFrames)))
        fb = list(generate_frames(b.PixelData, number_of_frames=int(b.NumberOfFrames)))
        assert fa == fb
        assert [f.rstrip(b"\x00") for f in fa] == [s.rstrip(b"\x00") for s in stored[k]]


def test_dicom_base_only_to_ome_tiff_gets_subifds_bioformats_reads(rgb, tmp_path: Path) -> None:
    base_only = tmp_path / "base"
    assert run_cli("convert", rgb["src"], base_only, "--pyramid", "keep").returncode == 0
    back = tmp_path / "back.ome.tiff"
    proc = run_cli("convert", base_only, back)
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(back) as tif:
        levels = tif.series[0].levels
        assert [lv.shape[:2] for lv in levels] == [(1100, 1500), (550, 750), (275, 375), (138, 188)]
        assert len(tif.pages[0].subifds or ()) == 3
    info = bioformats_info(back)
    assert info[0].resolutions == 4
    assert info[0].widths[:4] == (1500, 750, 375, 188)
    check = run_cli("check", back)
    assert check.returncode == 0, check.stdout + check.stderr


def test_resample_box_is_the_2x2_mean_of_the_pixels_that_exist(tmp_path: Path) -> None:
    """--resample box: each new pixel is the rounded mean of its 2×2 block; at the odd right
    and bottom edges, of the 2 or 1 pixels there are (no black fringe)."""
    src = tmp_path / "small.ome.tif"
    image = samples.tissue(601, 701, seed=5)
    meta = {"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    tifffile.imwrite(src, image, tile=(256, 256), photometric="rgb", metadata=meta)
    out = tmp_path / "box"
    proc = run_cli("convert", src, out, "--resample", "box", "--codec", "jpeg2000")
    assert proc.returncode == 0, proc.stderr
    level1 = _planes(out / "level1.dcm")[0]
    p = np.pad(image, ((0, 1), (0, 1), (0, 0)), mode="edge").astype(np.uint16)
    mean = (p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2] + 2) // 4
    assert level1.shape == (301, 351, 3)
    assert np.array_equal(level1, mean)
    assert level1[-1].min() > 0 and level1[:, -1].min() > 0


def test_check_against_the_source_passes_and_notes_the_new_levels(rgb) -> None:
    proc = run_cli("check", rgb["out"], "--against", rgb["src"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "levels 1-3 are not in the source" in proc.stdout
    assert " 0 error(s)" in proc.stdout


@pytest.mark.parametrize("quality", [30, 50, 75, 85, 90, 97])
def test_jpeg_quality_is_estimated_from_the_quantisation_tables(quality: int) -> None:
    """New JPEG levels are encoded at the source's quality: libjpeg's own tables recognised."""
    from bridge.pyramid import estimate_quality

    stream = imagecodecs.jpeg8_encode(samples.tissue(64, 64), level=quality)
    assert estimate_quality(stream) == quality
    assert estimate_quality(b"\xff\xd8\xff\xd9") is None


def test_a_tile_that_does_not_decode_stops_auto_and_names_keep(tmp_path: Path) -> None:
    """New levels need every tile decoded: a damaged one is refused (exit 2, nothing written)
    with the way out, --pyramid keep, which copies the tiles as they are."""
    src = samples.write_tifffile(tmp_path / "damaged.ome.tif", size=(600, 500), levels=1)
    with tifffile.TiffFile(src) as tif:
        offset = tif.pages[0].dataoffsets[3]
    with open(src, "r+b") as fh:
        fh.seek(offset + 2)
        fh.write(bytes(40))  # the tables after SOI
    proc = run_cli("convert", src, tmp_path / "auto")
    assert proc.returncode == 2, proc.stderr
    assert "tile (0, 1) cannot be decoded" in proc.stderr and "--pyramid keep" in proc.stderr
    assert str(src) in proc.stderr
    assert not (tmp_path / "auto").exists()
    assert run_cli("convert", src, tmp_path / "keep", "--pyramid", "keep").returncode == 0
