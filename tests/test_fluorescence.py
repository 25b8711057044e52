"""Fluorescence, z-stacks, bit depths and codecs DICOM lacks: multi-channel uint16 z-stacks
with Deflate tiles, palettes, planar RGB, time series, signed data; judged by dciodvfy,
wsidicom and highdicom, and round-tripped pixel for pixel."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import ome_types
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli
from readers import bioformats_jar

from conformance import dicom3tools

NAMES = ["DAPI", "FITC", "Cy3", "Cy5"]
EXCITATION = [353.0, 493.0, 550.0, 650.0]
EMISSION = [465.0, 520.0, 570.0, 670.0]


def _stack(c: int, z: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    planes = [
        [
            (1000 + 500 * k + 300 * np.sin(x / (30 + 5 * k) + j) * np.cos(y / 40))
            + rng.normal(0, 20, (h, w))
            for j in range(z)
        ]
        for k in range(c)
    ]
    return np.clip(planes, 0, 4095).astype(np.uint16)  # 12-bit data in 16-bit samples


def write_zstack(path: Path, *, z_step: float = 1.5, t: int = 1) -> Path:
    """4 channels × 3 planes uint16, Deflate tiles, 3-level SubIFD pyramid, named channels."""
    data = _stack(4, 3, 600, 700)
    if t > 1:
        data = np.stack([data + k for k in range(t)])
    meta = {
        "axes": "TCZYX" if t > 1 else "CZYX",
        "PhysicalSizeX": 0.65,
        "PhysicalSizeY": 0.65,
        "PhysicalSizeZ": z_step,
        "SignificantBits": 12,
        "Name": "zstack",
        "Channel": {
            "Name": NAMES,
            "ExcitationWavelength": EXCITATION,
            "EmissionWavelength": EMISSION,
        },
    }
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(data, tile=(256, 256), compression="zlib", metadata=meta, subifds=2)
        tw.write(data[..., ::2, ::2], tile=(256, 256), compression="zlib", subfiletype=1)
        tw.write(data[..., ::4, ::4], tile=(256, 256), compression="zlib", subfiletype=1)
    return path


@pytest.fixture(scope="module")
def zstack(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    tmp = tmp_path_factory.mktemp("zstack")
    src = write_zstack(tmp / "zstack.ome.tif")
    out = tmp / "dicom"
    proc = run_cli("convert", src, out)
    assert proc.returncode == 0, proc.stderr
    back = tmp / "back.ome.tiff"
    assert run_cli("convert", out, back, "-q").returncode == 0
    return src, out, back, proc.stderr


def test_channels_become_named_optical_paths_one_instance_each(zstack) -> None:
    _, out, _, messages = zstack
    files = sorted(out.glob("*.dcm"))
    assert [f.name for f in files] == [
        f"level{lv}-c{c}.dcm" for lv in range(3) for c in (1, 2, 3, 4)
    ]
    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        c = int(path.stem.split("-c")[1]) - 1
        assert ds.PhotometricInterpretation == "MONOCHROME2"
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit) == (16, 16, 15)
        assert ds.PresentationLUTShape == "IDENTITY"
        assert ds.NumberOfOpticalPaths == 1
        path_item = ds.OpticalPathSequence[0]
        assert path_item.OpticalPathIdentifier == str(c + 1)
        assert path_item.OpticalPathDescription == NAMES[c]
        assert path_item.IlluminationWaveLength == EXCITATION[c]
        assert path_item.LightPathFilterPassThroughWavelength == round(EXCITATION[c])
        assert path_item.ImagePathFilterPassThroughWavelength == round(EMISSION[c])
        assert path_item.IlluminationTypeCodeSequence[0].CodeValue == "111743"  # epifluorescence
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"  # JPEG-LS lossless
        assert ds.LossyImageCompression == "00"
        # z-stack: three focal planes 1.5 µm apart, in TILED_FULL order
        assert ds.TotalPixelMatrixFocalPlanes == 3
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        assert float(measures.SpacingBetweenSlices) == pytest.approx(0.0015)
        assert ds.NumberOfFrames == 3 * len(range(0, ds.TotalPixelMatrixColumns, 256)) * len(
            range(0, ds.TotalPixelMatrixRows, 256)
        )
    assert "decoded and re-encoded as jpegls (lossless)" in messages


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_dciodvfy_and_dcentvfy_accept_the_fluorescence_series(zstack) -> None:
    _, out, _, _ = zstack
    files = sorted(out.glob("*.dcm"))
    for path in files:
        errors = dicom3tools.errors(dicom3tools.dciodvfy(path))
        assert not errors, f"{path.name}: {errors}"
    assert not dicom3tools.errors(dicom3tools.dcentvfy(files))


def test_other_readers_see_channels_and_planes(zstack) -> None:
    import highdicom as hd
    import wsidicom

    src, out, _, _ = zstack
    with tifffile.TiffFile(src) as tf:
        source = tf.series[0].levels[0].asarray()  # C, Z, Y, X
    with wsidicom.WsiDicom.open(out) as slide:
        assert len(slide.levels) == 3
        assert slide.levels[0].focal_planes == [0.0, 1.5, 3.0]
        assert sorted(slide.levels[0].optical_paths) == ["1", "2", "3", "4"]
        region = np.asarray(slide.read_region((100, 200), 0, (64, 64), z=1.5, path="3"))
        np.testing.assert_array_equal(region, source[2, 1, 200:264, 100:164])
    image = hd.imread(str(out / "level0-c4.dcm"))
    frame = image.get_frame(3 + 1)  # 3 x 3 tiles per plane: frame 4 is plane 0, tile (0, 1)
    np.testing.assert_array_equal(frame, source[3, 0, 256:512, 0:256])


def test_round_trip_is_pixel_identical_with_metadata(zstack) -> None:
    src, _, back, _ = zstack
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(back) as b:
        assert len(a.series[0].levels) == len(b.series[0].levels) == 3
        for la, lb in zip(a.series[0].levels, b.series[0].levels, strict=True):
            assert la.axes == lb.axes
            np.testing.assert_array_equal(la.asarray(), lb.asarray())
        ome = ome_types.from_xml(b.ome_metadata)
    pixels = ome.images[0].pixels
    assert [c.name for c in pixels.channels] == NAMES
    assert [c.excitation_wavelength for c in pixels.channels] == EXCITATION
    assert [c.emission_wavelength for c in pixels.channels] == EMISSION
    assert pixels.physical_size_z == 1.5
    assert pixels.significant_bits == 12  # carried losslessly; DICOM says 16/16/15


def test_without_the_carrier_channels_and_planes_come_from_dicom(zstack, tmp_path: Path) -> None:
    """De-identified (private block removed): the OME-XML is rebuilt from DICOM attributes."""
    src, out, _, _ = zstack
    stripped = tmp_path / "stripped"
    stripped.mkdir()
    for path in out.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.remove_private_tags()
        ds.save_as(stripped / path.name)
    back = tmp_path / "rebuilt.ome.tiff"
    proc = run_cli("convert", stripped, back)
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(back) as b:
        for la, lb in zip(a.series[0].levels, b.series[0].levels, strict=True):
            np.testing.assert_array_equal(la.asarray(), lb.asarray())
        ome_types.validate_xml(b.ome_metadata)
        pixels = ome_types.from_xml(b.ome_metadata).images[0].pixels
    assert (pixels.size_c, pixels.size_z) == (4, 3)
    assert [c.name for c in pixels.channels] == NAMES
    assert [c.excitation_wavelength for c in pixels.channels] == EXCITATION
    assert [c.emission_wavelength for c in pixels.channels] == EMISSION
    assert pixels.physical_size_z == pytest.approx(1.5)


def test_uneven_planes_get_one_instance_each(tmp_path: Path) -> None:
    src = write_zstack(tmp_path / "uneven.ome.tif")
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    planes = "".join(
        f'<Plane TheZ="{z}" TheC="{c}" TheT="0" PositionZ="{pz}" PositionZUnit="µm"/>'
        for c in range(4)
        for z, pz in enumerate((0.0, 1.0, 4.0))
    )
    tifffile.tiffcomment(src, xml.replace("</Pixels>", planes + "</Pixels>").encode())
    out = tmp_path / "dicom"
    proc = run_cli("convert", src, out, "-q")
    assert proc.returncode == 0, proc.stderr
    level0 = sorted(p.name for p in out.glob("level0-*.dcm"))
    assert level0 == [f"level0-c{c}-z{z}.dcm" for c in (1, 2, 3, 4) for z in (1, 2, 3)]
    offsets = [
        float(pydicom.dcmread(out / f"level0-c1-z{z}.dcm").TotalPixelMatrixOriginSequence[0]
              .ZOffsetInSlideCoordinateSystem)
        for z in (1, 2, 3)
    ]  # fmt: skip
    assert offsets == [0.0, 1.0, 4.0]
    for name in level0[:3]:
        assert not dicom3tools.errors(dicom3tools.dciodvfy(out / name))


def test_time_series_needs_a_choice(tmp_path: Path) -> None:
    src = write_zstack(tmp_path / "time.ome.tif", t=2)
    refused = run_cli("convert", src, tmp_path / "refused")
    assert refused.returncode == 3
    assert "2 time points" in refused.stderr and "--timepoint" in refused.stderr
    assert "--all-timepoints" in refused.stderr
    assert not (tmp_path / "refused").exists()
    one = tmp_path / "one"
    assert run_cli("convert", src, one, "--timepoint", "1", "-q").returncode == 0
    frames_t1 = pydicom.dcmread(one / "level2-c1.dcm").pixel_array
    every = tmp_path / "every"
    assert run_cli("convert", src, every, "--all-timepoints", "-q").returncode == 0
    assert sorted(p.name for p in every.iterdir()) == ["t0", "t1"]
    t0 = pydicom.dcmread(every / "t0" / "level2-c1.dcm")
    t1 = pydicom.dcmread(every / "t1" / "level2-c1.dcm")
    assert t0.SeriesInstanceUID != t1.SeriesInstanceUID
    np.testing.assert_array_equal(t1.pixel_array, frames_t1)
    inside = (slice(None), slice(0, t0.TotalPixelMatrixRows), slice(0, t0.TotalPixelMatrixColumns))
    diff = t1.pixel_array[inside].astype(int) - t0.pixel_array[inside]
    np.testing.assert_array_equal(diff, 1)  # the test data add t to every sample
    bad = run_cli("convert", src, tmp_path / "bad", "--timepoint", "5")
    assert bad.returncode == 2 and "out of range" in bad.stderr


#: What dciodvfy (Debian 12 dicom3tools 1.00~20220618) says of any HTJ2K file.
HTJ2K_FALSE_POSITIVES = (
    "Undefined value length of other byte/word element is illegal in non-encapsulated "
    "transfer syntax",
    "Dicom dataset read failed",
    "</PixelData(7fe0,0010)> - Missing attribute for Type 1C Conditional - Module=<ImagePixel>",
)


@pytest.mark.parametrize(
    ("codec", "syntax"),
    [
        ("native", "1.2.840.10008.1.2.1"),
        ("jpeg2000", "1.2.840.10008.1.2.4.90"),
        ("htj2k", "1.2.840.10008.1.2.4.201"),
        ("jpegls", "1.2.840.10008.1.2.4.80"),
    ],
)
def test_codec_choice_is_lossless_and_read_by_wsidicom(tmp_path: Path, codec, syntax) -> None:
    import wsidicom

    src = tmp_path / "one.ome.tif"
    data = _stack(1, 1, 300, 400)[0, 0]
    tifffile.imwrite(
        src, data, tile=(128, 128), compression="zlib",
        metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
    )  # fmt: skip
    out = tmp_path / codec
    assert run_cli("convert", src, out, "--codec", codec, "-q").returncode == 0
    ds = pydicom.dcmread(out / "level0.dcm")
    assert ds.file_meta.TransferSyntaxUID == syntax
    errors = dicom3tools.errors(dicom3tools.dciodvfy(out / "level0.dcm"))
    if codec == "htj2k":
        # Known false positive: Debian 12's dicom3tools predates the HTJ2K transfer syntaxes
        # (PS3.5 2023), reads the encapsulated Pixel Data as native and then misses it: these
        # three messages exactly, and nothing else (any other error is real).
        assert sorted(e.message for e in errors) == sorted(HTJ2K_FALSE_POSITIVES), errors
    else:
        assert not errors, errors
    with wsidicom.WsiDicom.open(out) as slide:
        np.testing.assert_array_equal(np.asarray(slide.read_region((0, 0), 0, (400, 300))), data)


def test_lossy_is_asked_for_and_said(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "z.ome.tif", size=(300, 200), compression="zlib")
    out = tmp_path / "lossy"
    proc = run_cli("convert", src, out, "--codec", "jpeg", "--lossy", "80")
    assert proc.returncode == 0, proc.stderr
    assert "lossy, quality 80" in proc.stderr
    ds = pydicom.dcmread(out / "level0.dcm", stop_before_pixels=True)
    assert ds.LossyImageCompression == "01"
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"


CORPUS_OUTCOMES = {
    # file: None = converts both ways with identical pixels, else the refusal's words
    "libvips__multi-channel-z-series.ome.tif": "int samples (8-bit)",
    "viv__multi-channel.ome.tif": "int samples (8-bit)",
    "bioformats2raw__mini-flim-moduloC.ome.tiff": "int samples (8-bit)",
    "aicsimageio__s_1_t_1_c_1_z_1.ome.tiff": None,
    "qupath__cells.ome.tif": None,
    "qupath__cells-2c.ome.tif": None,
}


@pytest.mark.parametrize("name", sorted(CORPUS_OUTCOMES))
def test_corpus_ome_tiff_both_ways_or_a_clear_refusal(corpus: Path, tmp_path: Path, name) -> None:
    src = corpus / "ome-tiff" / name
    out = tmp_path / "dicom"
    proc = run_cli("convert", src, out, "--pixel-size", "1")
    expected = CORPUS_OUTCOMES[name]
    if expected:
        assert proc.returncode == 3 and expected in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and not out.exists()
        return
    assert proc.returncode == 0, proc.stderr
    for path in out.glob("*.dcm"):
        assert not dicom3tools.errors(dicom3tools.dciodvfy(path)), path.name
    back = tmp_path / "back.ome.tiff"
    assert run_cli("convert", out, back, "-q").returncode == 0
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(back) as b:
        x, y = a.series[0].asarray(), b.series[0].asarray()
        if a.series[0].axes == "SYX":  # planar RGB comes back interleaved
            x = np.moveaxis(x, 0, -1)
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    "name",
    [
        "highdicom__sm_image_grayscale.dcm",
        "highdicom__sm_image_jpegls.dcm",
        "wsi-to-dicom-converter__jpeg2000.dicom",
    ],
)
def test_corpus_dicom_both_ways_pixel_identical(corpus: Path, tmp_path: Path, name) -> None:
    import wsidicom

    middle = tmp_path / "middle.ome.tiff"
    assert run_cli("convert", corpus / "dicom" / name, middle, "-q").returncode == 0
    back = tmp_path / "back"
    proc = run_cli("convert", middle, back)
    assert proc.returncode == 0, proc.stderr
    with wsidicom.WsiDicom.open(corpus / "dicom" / name) as a, wsidicom.WsiDicom.open(back) as b:
        size = a.levels[0].size
        ra = np.asarray(a.read_region((0, 0), 0, (size.width, size.height)))
        rb = np.asarray(b.read_region((0, 0), 0, (size.width, size.height)))
        np.testing.assert_array_equal(ra, rb)


def test_bioformats_planar_jpeg_converts_and_says_what_happened(tmp_path: Path) -> None:
    """Bio-Formats writes RGB JPEG as one greyscale JPEG per colour plane."""
    plain = tmp_path / "in.tif"
    tifffile.imwrite(plain, samples.tissue(600, 800, seed=5), photometric="rgb")
    src = tmp_path / "bf.ome.tiff"
    subprocess.run(
        ["java", "-Dbioformats_can_do_upgrade_check=false", "-cp", str(bioformats_jar()),
         "loci.formats.tools.ImageConverter", "-no-upgrade", "-compression", "JPEG",
         "-tilex", "256", "-tiley", "256", str(plain), str(src)],
        check=True, capture_output=True,
    )  # fmt: skip
    with tifffile.TiffFile(src) as tf:
        assert tf.pages[0].planarconfig == 2 and tf.pages[0].compression == 7
        planes = []
        fh = tf.filehandle
        page = tf.pages[0]
        import imagecodecs

        n = len(page.dataoffsets) // 3
        for s in range(3):  # the first tile of each colour plane, decoded as it is stored
            fh.seek(page.dataoffsets[s * n])
            planes.append(imagecodecs.jpeg8_decode(fh.read(page.databytecounts[s * n])))
    out = tmp_path / "dicom"
    proc = run_cli("convert", src, out, "--slide-id", "BF")
    assert proc.returncode == 0, proc.stderr
    assert "separate planes" in proc.stderr and "re-encoded as jpeg2000 (lossless)" in proc.stderr
    ds = pydicom.dcmread(out / "level0.dcm")
    assert ds.LossyImageCompression == "01"  # it was JPEG once
    assert not dicom3tools.errors(dicom3tools.dciodvfy(out / "level0.dcm"))
    import wsidicom

    with wsidicom.WsiDicom.open(out) as slide:
        tile = np.asarray(slide.read_region((0, 0), 0, (256, 256)).convert("RGB"))
    np.testing.assert_array_equal(tile, np.stack(planes, axis=-1))
