"""Scanner TIFF dialects (bridge/wsitiff): the corpus's Aperio SVS files and generic pyramidal
TIFF, and generated Aperio JPEG 2000, to DICOM and OME-TIFF, checked with dciodvfy, OpenSlide,
wsidicom, pydicom and Bio-Formats' ImageInfo."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import run_cli
from pydicom.encaps import generate_frames
from readers import bioformats_info, bioformats_jar

from bridge.wsitiff import generic, svs

SOURCES = {
    "cmu1": ("CMU-1-Small-Region.svs", ()),
    "small": ("openslide-python__small.svs", ()),
    "boxes": ("openslide-python__boxes.tiff", ("--pixel-size", "0.25")),
}


@pytest.fixture(scope="module")
def converted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Each corpus file converted once to DICOM and once to OME-TIFF."""
    tmp = tmp_path_factory.mktemp("wsitiff")
    out = {}
    for key, (name, args) in SOURCES.items():
        src = corpus / "wsi-tiff" / name
        dcm, ome = tmp / f"{key}_dicom", tmp / f"{key}.ome.tif"
        run_cli("convert", "--pyramid", "keep", src, dcm, "-q", *args, check=True)
        run_cli(
            "convert", "--pyramid", "keep", src, ome, "-q", check=True
        )  # a .tif name: OME-TIFF, no --to
        out[key] = {"source": src, "dicom": dcm, "ome": ome}
    return out


def _instances(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]


def _by_flavour(folder: Path, flavour: str) -> list[pydicom.Dataset]:
    return [ds for ds in _instances(folder) if ds.ImageType[2] == flavour]


def _scan(jpeg: bytes) -> bytes:
    """The entropy-coded data of a JPEG stream: after the SOS segment, up to and with EOI."""
    start = jpeg.index(b"\xff\xda")
    length = int.from_bytes(jpeg[start + 2 : start + 4], "big")
    end = jpeg.rindex(b"\xff\xd9") + 2
    return jpeg[start + 2 + length : end]


@pytest.mark.parametrize("key", ["cmu1", "small"])
def test_svs_jpeg_tiles_are_the_source_tiles(converted: dict, key: str) -> None:
    item = converted[key]
    (volume,) = _by_flavour(item["dicom"], "VOLUME")
    assert volume.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    frames = list(generate_frames(volume.PixelData, number_of_frames=volume.NumberOfFrames))
    with tifffile.TiffFile(item["source"]) as tf:
        page = tf.pages[0]
        fh = tf.filehandle
        stored = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(offset)
            stored.append(fh.read(count))
    assert len(frames) == len(stored) > 0
    for frame, tile in zip(frames, stored, strict=True):
        assert _scan(frame) == _scan(tile)
    # the shared JPEGTables went into each frame: it decodes on its own
    assert pydicom.pixels.pixel_array(volume, index=0).shape[-1] == 3


@pytest.mark.parametrize("key", ["cmu1", "small"])
def test_svs_mpp_is_the_pixel_spacing(converted: dict, key: str) -> None:
    (volume,) = _by_flavour(converted[key]["dicom"], "VOLUME")
    spacing = volume.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.000499, 0.000499])
    assert float(volume.OpticalPathSequence[0].ObjectiveLensPower) == 20
    assert volume.AcquisitionDateTime.startswith("20091229095915")
    assert (volume.Manufacturer, volume.DeviceSerialNumber) == ("Aperio", "CPAPERIOCS")


def test_svs_label_and_macro_become_label_and_overview(converted: dict) -> None:
    folder = converted["cmu1"]["dicom"]
    (label,) = _by_flavour(folder, "LABEL")
    (overview,) = _by_flavour(folder, "OVERVIEW")
    assert (label.TotalPixelMatrixColumns, label.TotalPixelMatrixRows) == (387, 463)
    assert (overview.TotalPixelMatrixColumns, overview.TotalPixelMatrixRows) == (1280, 431)
    with tifffile.TiffFile(converted["cmu1"]["source"]) as tf:
        want = tf.series[2].asarray()  # the LZW label, decoded by tifffile
    got = pydicom.pixels.pixel_array(label)  # lossless JPEG 2000
    assert np.array_equal(got[:463, :387], want)


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed")
@pytest.mark.parametrize("key", list(SOURCES))
def test_dciodvfy_finds_no_error(converted: dict, key: str) -> None:
    from conformance import dicom3tools

    for path in sorted(converted[key]["dicom"].glob("*.dcm")):
        errors = dicom3tools.errors(dicom3tools.dciodvfy(path))
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize("key", list(SOURCES))
def test_openslide_and_wsidicom_see_the_source_levels(converted: dict, key: str) -> None:
    import openslide
    import wsidicom

    item = converted[key]
    source = openslide.OpenSlide(str(item["source"]))
    (volume,) = [p for p in item["dicom"].glob("*.dcm") if p.name.startswith("level0")]
    result = openslide.OpenSlide(str(volume))
    assert result.level_count == source.level_count
    assert result.level_dimensions == source.level_dimensions
    if key == "cmu1":
        assert {"label", "macro"} <= set(result.associated_images)
    for level, (width, height) in enumerate(source.level_dimensions):
        # the same pixels through the same decoder: copied tiles, or lossless re-encoding
        size = (min(width, 300), min(height, 300))
        for x, y in ((0, 0), (width - size[0], height - size[1])):
            ds = source.level_downsamples[level]
            at = (int(x * ds), int(y * ds))
            want = np.asarray(source.read_region(at, level, size))
            assert np.array_equal(np.asarray(result.read_region(at, level, size)), want)
    with wsidicom.WsiDicom.open(item["dicom"]) as slide:
        assert len(slide.levels) == source.level_count


def _ome_xml(path: Path) -> str:
    proc = subprocess.run(
        ["java", "-cp", str(bioformats_jar()), "loci.formats.tools.ImageInfo", "-nopix",
         "-omexml-only", "-no-upgrade", str(path)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return proc.stdout


def test_svs_to_ome_tiff_reads_in_bioformats(converted: dict) -> None:
    path = converted["cmu1"]["ome"]
    series = bioformats_info(path)
    assert [(s.width, s.height) for s in series] == [
        (2220, 2967),
        (574, 768),
        (387, 463),
        (1280, 431),
    ]
    xml = _ome_xml(path)
    names = re.findall(r'<Image ID="Image:\d+" Name="([^"]*)"', xml)
    assert names == ["CMU-1", "thumbnail", "label", "macro"]
    first = re.search(r"<Pixels [^>]*>", xml).group(0)
    assert 'PhysicalSizeX="0.499"' in first and 'PhysicalSizeY="0.499"' in first
    assert 'NominalMagnification="20.0"' in xml


def test_generic_pyramid_to_ome_tiff_keeps_its_resolutions(converted: dict) -> None:
    (series,) = bioformats_info(converted["boxes"]["ome"])
    assert series.resolutions == 4
    assert series.widths == (300, 150, 75, 37)
    # 72 dpi is no measurement: the OME-TIFF states no physical size rather than a wrong one
    assert "PhysicalSizeX" not in _ome_xml(converted["boxes"]["ome"])


def test_small_svs_to_ome_tiff_reads_in_bioformats(converted: dict) -> None:
    path = converted["small"]["ome"]
    assert [(s.width, s.height) for s in bioformats_info(path)] == [(16, 16), (16, 16)]
    xml = _ome_xml(path)
    assert re.findall(r'<Image ID="Image:\d+" Name="([^"]*)"', xml) == ["CMU-1", "thumbnail"]
    assert 'PhysicalSizeX="0.499"' in re.search(r"<Pixels [^>]*>", xml).group(0)


def test_generic_placeholder_dpi_is_refused_with_the_hint(corpus: Path, tmp_path: Path) -> None:
    """boxes.tiff says 72 dpi (28.35 pixels per cm): a writer's default, not a measurement."""
    proc = run_cli(
        "convert",
        "--pyramid",
        "keep",
        corpus / "wsi-tiff" / "openslide-python__boxes.tiff",
        tmp_path / "o",
    )
    assert proc.returncode == 2
    assert "--pixel-size" in proc.stderr and "writer's default" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_info_names_the_dialect(corpus: Path) -> None:
    proc = run_cli("info", corpus / "wsi-tiff" / "CMU-1-Small-Region.svs", check=True)
    assert "format: TIFF (Aperio SVS)" in proc.stdout
    assert "LABEL" in proc.stdout and "OVERVIEW" in proc.stdout
    proc = run_cli("info", corpus / "wsi-tiff" / "openslide-python__boxes.tiff", check=True)
    assert "format: TIFF (generic pyramidal TIFF)" in proc.stdout


def test_svs_description_parses_as_openslide_does() -> None:
    text = (
        "Aperio Image Library v1\r\n46000x32914 (256x256) JPEG/RGB Q=30"
        "|AppMag = 40|MPP = 0.25|AppMag = 1"
    )
    assert svs.properties(text) == {"AppMag": "40", "MPP": "0.25"}


def test_generic_resolution_gives_a_pixel_size_unless_a_placeholder(tmp_path: Path) -> None:
    data = np.zeros((64, 64), np.uint8)
    cases = {
        (2500.0, "CENTIMETER"): (4.0, 4.0),  # 4 µm pixels
        (72.0, "INCH"): None,
        (96.0, "CENTIMETER"): None,
        (300.0, "INCH"): None,
        (1000.0, "INCH"): (25.4, 25.4),
    }
    for (density, unit), want in cases.items():
        path = tmp_path / f"{density}{unit}.tif"
        tifffile.imwrite(path, data, resolution=(density, density), resolutionunit=unit)
        notes: list[str] = []
        with tifffile.TiffFile(path) as tf:
            got = generic.pixel_size(tf.pages[0], notes)
        assert got == (pytest.approx(want) if want else None), (density, unit)
        assert bool(notes) == (want is None)


def _colours() -> np.ndarray:
    """A 256×256 RGB picture with saturated and mixed colours (gradients and a red block)."""
    yy, xx = np.mgrid[0:256, 0:256]
    rgb = np.stack([xx, yy, 255 - (xx + yy) // 2], -1).astype(np.uint8)
    rgb[:64, :64] = (200, 30, 30)
    rgb[64:128, 192:256] = (20, 160, 40)
    return rgb


def _ycbcr(rgb: np.ndarray) -> np.ndarray:
    """Full-range (JFIF) YCbCr, what Aperio's 33003 codestreams hold as their components."""
    r, g, b = (rgb[..., i].astype(float) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    return np.clip(np.round(np.stack([y, cb, cr], -1)), 0, 255).astype(np.uint8)


def _aperio_j2k(
    path: Path,
    compression: int,
    photometric: str = "rgb",
    *,
    lossless: bool = False,
    mct: bool = False,
) -> tuple[Path, list[bytes]]:
    """A tiled SVS whose tiles are 9-7 JPEG 2000 codestreams without the multiple component
    transform, as Aperio (Kakadu) writes them: YCbCr components for compression 33003 or a
    YCbCr Photometric tag, RGB components for 33005 with an RGB one."""
    import imagecodecs

    rgb = _colours()
    image = _ycbcr(rgb) if compression == 33003 or photometric == "ycbcr" else rgb
    tiles = [
        imagecodecs.jpeg2k_encode(
            image[y : y + 128, x : x + 128], level=0 if lossless else 90, codecformat="J2K", mct=mct
        )
        for y in (0, 128)
        for x in (0, 128)
    ]
    desc = "Aperio Image Library v12.0.0\r\n256x256 (128x128) J2K/KDU Q=70|AppMag = 40|MPP = 0.25"
    with tifffile.TiffWriter(path) as tw:
        tw.write(
            iter(tiles),
            shape=(256, 256, 3),
            dtype="uint8",
            tile=(128, 128),
            compression=compression,
            photometric=photometric,
            description=desc,
            metadata=None,  # no tifffile "shaped" description: this is SVS
        )
    return path, tiles


def _mct_set(tile: bytes) -> bytes:
    """The tile with its COD multiple component transform byte set, by hand (T.800 A.6.1)."""
    cod = tile.index(b"\xff\x52")
    return tile[: cod + 8] + b"\x01" + tile[cod + 9 :]


@pytest.mark.parametrize(
    ("compression", "tiff_photometric", "photometric"),
    [(33003, "rgb", "YBR_ICT"), (33005, "rgb", "RGB"), (33005, "ycbcr", "YBR_ICT")],
)
def test_aperio_jpeg2000_is_copied_with_its_colour_signalled(
    tmp_path: Path, compression: int, tiff_photometric: str, photometric: str
) -> None:
    """YCbCr tiles (no MCT in the codestream) get the MCT byte switched on, nothing else, so
    they are YBR_ICT streams a decoder returns RGB from: pydicom and wsidicom see
    the colours OpenSlide sees in the SVS; RGB tiles are copied byte for byte."""
    import openslide
    import wsidicom

    from conformance import dicom3tools

    src, tiles = _aperio_j2k(tmp_path / "j2k.svs", compression, tiff_photometric)
    out = tmp_path / "out"
    run_cli("convert", "--pyramid", "keep", src, out, "-q", check=True)
    (volume,) = _by_flavour(out, "VOLUME")
    assert volume.PhotometricInterpretation == photometric
    assert volume.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"
    frames = [
        f.rstrip(b"\0")
        for f in generate_frames(volume.PixelData, number_of_frames=volume.NumberOfFrames)
    ]
    want = [t if photometric == "RGB" else _mct_set(t) for t in tiles]
    assert frames == [t.rstrip(b"\0") for t in want]

    truth = _colours().astype(int)
    if compression == 33003:  # OpenSlide decodes 33003 and converts YCbCr itself
        shown = openslide.OpenSlide(str(src)).read_region((0, 0), 0, (256, 256)).convert("RGB")
        assert np.abs(np.asarray(shown, int) - truth).max() <= 4
    got = pydicom.pixels.pixel_array(volume).astype(int)  # frames, rows, columns, samples
    mosaic = np.concatenate([np.concatenate(list(got[r * 2 : r * 2 + 2]), 1) for r in (0, 1)])
    assert np.abs(mosaic - truth).max() <= 4
    with wsidicom.WsiDicom.open(out) as slide:
        region = np.asarray(slide.read_region((0, 0), 0, (256, 256)).convert("RGB"), int)
    assert np.abs(region - truth).max() <= 4
    for path in sorted(out.glob("*.dcm")):
        errors = dicom3tools.errors(dicom3tools.dciodvfy(path))
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize(("lossless", "mct"), [(True, False), (False, True)])
def test_aperio_ycbcr_jpeg2000_without_a_dicom_label_is_refused(
    tmp_path: Path, lossless: bool, mct: bool
) -> None:
    """33003 with the 5-3 wavelet (switching MCT on would give RCT, not YCbCr -> RGB) or with
    MCT already on (a decoder returns YCbCr through the transform): exit 3, nothing written."""
    src, _ = _aperio_j2k(tmp_path / "j2k.svs", 33003, lossless=lossless, mct=mct)
    out = tmp_path / "out"
    proc = run_cli("convert", "--pyramid", "keep", src, out, "-q")
    assert proc.returncode == 3, proc.stderr
    assert "YCbCr" in proc.stderr
    assert not out.exists() or not any(out.iterdir())


def test_ict_switch_sets_every_cod_and_gives_rgb() -> None:
    """``jpeg2000.with_ict`` also sets the MCT byte of a COD in a tile-part header (T.800
    A.4.2), and the result decodes (OpenJPEG, via imagecodecs) to the RGB the YCbCr came from."""
    import struct

    import imagecodecs

    from bridge.codecs import jpeg2000

    rgb = _colours()[:128, :128]
    stream = imagecodecs.jpeg2k_encode(_ycbcr(rgb), level=90, codecformat="J2K", mct=False)
    cod_at = stream.index(b"\xff\x52")
    cod = stream[cod_at : cod_at + 2 + struct.unpack(">H", stream[cod_at + 2 : cod_at + 4])[0]]
    sot = stream.index(b"\xff\x90")
    psot = struct.unpack(">I", stream[sot + 6 : sot + 10])[0]
    tiled = (
        stream[: sot + 6]
        + struct.pack(">I", psot + len(cod))
        + stream[sot + 10 : sot + 12]
        + cod  # the same COD again, in the tile-part header
        + stream[sot + 12 :]
    )
    switched = jpeg2000.with_ict(tiled)
    assert [switched[p + 8] for p in jpeg2000._cod_positions(switched)] == [1, 1]
    decoded = imagecodecs.jpeg2k_decode(switched).astype(int)
    assert np.abs(decoded - rgb.astype(int)).max() <= 4
    assert np.abs(imagecodecs.jpeg2k_decode(tiled).astype(int) - rgb.astype(int)).max() > 50


def test_aperio_ycbcr_jpeg2000_keeps_its_colour_in_ome_tiff(tmp_path: Path) -> None:
    """SVS 33003 -> OME-TIFF: the tiles (MCT switched on) are stored as RGB JPEG 2000 and
    tifffile and Bio-Formats both decode the colours of the source."""
    src, _ = _aperio_j2k(tmp_path / "j2k.svs", 33003)
    ome = tmp_path / "j2k.ome.tif"
    run_cli("convert", "--pyramid", "keep", src, ome, "-q", check=True)
    truth = _colours().astype(int)
    with tifffile.TiffFile(ome) as tf:
        assert tf.is_ome and int(tf.pages[0].photometric) == 2  # RGB
        assert np.abs(tf.pages[0].asarray().astype(int) - truth).max() <= 4
    flat = tmp_path / "bioformats.tif"
    java = shutil.which("java") or "java"
    subprocess.run(
        [java, "-cp", str(bioformats_jar()), "loci.formats.tools.ImageConverter",
         "-series", "0", "-no-upgrade", str(ome), str(flat)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    plane = tifffile.imread(flat)
    plane = plane if plane.shape[-1] == 3 else np.moveaxis(plane, 0, -1)
    assert np.abs(plane.astype(int) - truth).max() <= 4


@pytest.fixture(scope="module")
def dialects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated NDPI and QPTIFF (tests/dialect_samples.py), each converted to DICOM."""
    import dialect_samples

    tmp = tmp_path_factory.mktemp("dialects")
    out = {
        "ndpi": dialect_samples.write_ndpi(tmp / "sample.ndpi"),
        "qptiff": dialect_samples.write_qptiff(tmp / "sample.qptiff"),
        "philips": dialect_samples.write_philips(tmp / "sample-philips.tiff"),
    }
    for key, src in list(out.items()):
        run_cli("convert", "--pyramid", "keep", src, tmp / f"{key}_dicom", "-q", check=True)
        out[f"{key}_dicom"] = tmp / f"{key}_dicom"
    return out


def _segments(scan: bytes) -> list[bytes]:
    """Entropy-coded data cut at its restart markers (RSTn and the final EOI taken out)."""
    return re.split(rb"\xff[\xd0-\xd7]", scan.removesuffix(b"\xff\xd9"))


def test_ndpi_strips_are_split_into_verbatim_tiles(dialects: dict) -> None:
    import imagecodecs

    src = dialects["ndpi"]
    volume = next(ds for ds in _instances(dialects["ndpi_dicom"]) if ds.ImageType[2] == "VOLUME")
    assert volume.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    frames = list(generate_frames(volume.PixelData, number_of_frames=volume.NumberOfFrames))
    with tifffile.TiffFile(src) as tf:
        assert tf.is_ndpi
        page = tf.pages[0]
        fh = tf.filehandle
        fh.seek(page.tags[273].value[0])
        strip = fh.read(page.tags[279].value[0])
        source = tf.pages[0].asarray()
    stripes = _segments(_scan(strip))  # the scanner's restart intervals, 128×16 each
    tiles_x = volume.TotalPixelMatrixColumns // volume.Columns
    per_row, per_col = volume.Columns // 128, volume.Rows // 16
    assert len(frames) == tiles_x * (volume.TotalPixelMatrixRows // volume.Rows) > 1
    for i, frame in enumerate(frames):
        ty, tx = divmod(i, tiles_x)
        want = [
            stripes[(ty * per_col + r) * (1024 // 128) + tx * per_row + s]
            for r in range(per_col)
            for s in range(per_row)
        ]
        assert _segments(_scan(frame)) == want
        pixels = imagecodecs.jpeg8_decode(frame)
        y0, x0 = ty * volume.Rows, tx * volume.Columns
        want = source[y0 : y0 + volume.Rows, x0 : x0 + volume.Columns]
        # the same pixels, but for the 4:2:0 chroma upsampling at the tile's own edges,
        # which libjpeg interpolates with the neighbours the strip had
        assert np.array_equal(pixels[2:-2, 2:-2], want[2:-2, 2:-2])


def test_ndpi_metadata_and_macro(dialects: dict) -> None:
    instances = _instances(dialects["ndpi_dicom"])
    volume = next(ds for ds in instances if ds.ImageType[2] == "VOLUME")
    spacing = volume.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.00046, 0.00046])
    assert float(volume.OpticalPathSequence[0].ObjectiveLensPower) == 20
    origin = volume.TotalPixelMatrixOriginSequence[0]
    # centre of a 25 × 75 mm slide + the offsets (x 1.25 mm, y -0.5 mm) - half the image
    assert float(origin.XOffsetInSlideCoordinateSystem) == pytest.approx(
        12.5 - 0.5 - 768 * 0.00046 / 2
    )
    assert float(origin.YOffsetInSlideCoordinateSystem) == pytest.approx(
        37.5 + 1.25 - 1024 * 0.00046 / 2
    )
    assert [ds.ImageType[2] for ds in instances].count("OVERVIEW") == 1
    equipment = (volume.Manufacturer, volume.ManufacturerModelName, volume.DeviceSerialNumber)
    assert equipment == ("Hamamatsu", "C13210", "SN-0042")
    import openslide

    slide = openslide.OpenSlide(str(dialects["ndpi_dicom"] / "level0.dcm"))
    assert slide.level_count == 2 and "macro" in slide.associated_images


def test_qptiff_channels_are_named_with_wavelengths(dialects: dict) -> None:
    from dialect_samples import QPTIFF_CHANNELS

    instances = _instances(dialects["qptiff_dicom"])
    volumes = [ds for ds in instances if ds.ImageType[2] == "VOLUME"]
    base = [ds for ds in volumes if ds.TotalPixelMatrixColumns == 512]
    assert len(base) == 3 and len(volumes) == 6
    paths = sorted(
        (ds.OpticalPathSequence[0] for ds in base), key=lambda p: int(p.OpticalPathIdentifier)
    )
    for path, (_name, marker, _c, ex, _em) in zip(paths, QPTIFF_CHANNELS, strict=True):
        assert path.OpticalPathDescription == marker
        assert float(path.IlluminationWaveLength) == pytest.approx(sum(ex) / 2)
    with tifffile.TiffFile(dialects["qptiff"]) as tf:
        dapi = tf.pages[0].asarray()
    first = next(ds for ds in base if ds.OpticalPathSequence[0].OpticalPathDescription == "Nuclei")
    frames = pydicom.pixels.pixel_array(first)
    assert np.array_equal(frames[0], dapi[:256, :256])
    kinds = sorted(ds.ImageType[2] for ds in instances if ds.ImageType[2] != "VOLUME")
    assert kinds == ["LABEL", "OVERVIEW", "THUMBNAIL"]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dicom3tools is not installed")
@pytest.mark.parametrize("key", ["ndpi", "qptiff", "philips"])
def test_dialect_fixtures_pass_dciodvfy(dialects: dict, key: str) -> None:
    from conformance import dicom3tools

    for path in sorted(dialects[f"{key}_dicom"].glob("*.dcm")):
        errors = dicom3tools.errors(dicom3tools.dciodvfy(path))
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize(
    ("key", "name"),
    [("ndpi", "Hamamatsu NDPI"), ("qptiff", "Akoya QPTIFF"), ("philips", "Philips TIFF")],
)
def test_info_names_generated_dialects(dialects: dict, key: str, name: str) -> None:
    proc = run_cli("info", dialects[key], check=True)
    assert f"format: TIFF ({name})" in proc.stdout
    if key == "qptiff":  # DICOM has no emission wavelength attribute; the model keeps it
        assert "channel Channel:0:1 CD8 ex 490.0 nm em 525.0 nm" in proc.stdout


def test_check_reads_dialects_as_such(corpus: Path, dialects: dict) -> None:
    """`omedicom check` on scanner TIFFs: the dialect named, boxes.tiff's 72 dpi a warning."""
    import json

    svs_file = corpus / "wsi-tiff" / "CMU-1-Small-Region.svs"
    boxes = corpus / "wsi-tiff" / "openslide-python__boxes.tiff"
    proc = run_cli("check", svs_file, boxes, dialects["ndpi"], dialects["qptiff"], "--json")
    assert proc.returncode == 0, proc.stdout[-3000:]
    findings = json.loads(proc.stdout)["findings"]
    notes = [f["message"] for f in findings if f["id"] == "TIFF-dialect"]
    for name in ("Aperio SVS", "generic pyramidal TIFF", "Hamamatsu NDPI", "Akoya QPTIFF"):
        assert any(f"read as {name}" in n for n in notes), notes
    warned = {f["location"]["file"] for f in findings if f["id"] == "TIFF-pixel-size"}
    assert [Path(w).name for w in warned] == [boxes.name]


def test_philips_levels_spacing_and_tiles(dialects: dict) -> None:
    """The padded sub-levels take their real size; DICOM_PIXEL_SPACING and the acquisition
    time reach DICOM; the JPEG tiles are the stored ones."""
    instances = _instances(dialects["philips_dicom"])
    volumes = sorted(
        (ds for ds in instances if ds.ImageType[2] == "VOLUME"),
        key=lambda ds: -ds.TotalPixelMatrixColumns,
    )
    sizes = [(ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows) for ds in volumes]
    assert sizes == [(768, 512), (384, 256), (192, 128)]
    spacing = volumes[0].SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([0.00025, 0.00025])
    assert volumes[0].AcquisitionDateTime.startswith("20190304101112")
    first = volumes[0]
    equipment = (first.Manufacturer, first.ManufacturerModelName, first.DeviceSerialNumber)
    assert equipment == ("PHILIPS", "UFS Scanner", "FMT0123")
    assert {ds.ImageType[2] for ds in instances} == {"VOLUME", "LABEL", "OVERVIEW"}
    with tifffile.TiffFile(dialects["philips"]) as tf:
        page = tf.pages[1]  # level 1, stored as 512×256: two tiles, both in the 384 px level
        fh = tf.filehandle
        stored = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(offset)
            stored.append(fh.read(count))
    frames = list(generate_frames(volumes[1].PixelData, number_of_frames=2))
    assert [_scan(f) for f in frames] == [_scan(t) for t in stored]
    import openslide

    slide = openslide.OpenSlide(str(dialects["philips_dicom"] / "level0.dcm"))
    assert slide.level_dimensions == ((768, 512), (384, 256), (192, 128))


def test_damaged_dialect_files_are_described_or_refused(
    corpus: Path, dialects: dict, tmp_path: Path
) -> None:
    """Bytes changed in the headers and tags (and files cut short) of each dialect: the reader
    gives a slide that ``describe`` can describe, or one BridgeError, never another exception
    (what fuzz/ does for OME-TIFF and DICOM)."""
    import random

    from bridge.convert import open_slide
    from bridge.errors import BridgeError
    from bridge.info import describe

    sources = [
        corpus / "wsi-tiff" / "openslide-python__small.svs",
        corpus / "wsi-tiff" / "openslide-python__boxes.tiff",
        _aperio_j2k(tmp_path / "j2k.svs", 33003)[0],
        dialects["ndpi"],
        dialects["qptiff"],
        dialects["philips"],
    ]
    rng = random.Random(17)
    refused = described = 0
    for i in range(240):
        src = sources[i % len(sources)]
        data = bytearray(src.read_bytes())
        for _ in range(rng.randint(1, 6)):
            reach = 4096 if rng.random() < 0.7 else len(data)
            data[rng.randrange(min(reach, len(data)))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = data[: int(len(data) * rng.random())]
        mutant = tmp_path / f"mutant{src.suffix}"
        mutant.write_bytes(bytes(data))
        try:
            slide = open_slide(mutant)
        except BridgeError:
            refused += 1
            continue
        try:
            assert isinstance(describe(slide), dict)
            described += 1
        finally:
            if slide.close:
                slide.close()
    assert refused and described  # both outcomes happen: the mutations reach the parsers


def test_ome_tiff_stays_first_choice(corpus: Path, tmp_path: Path) -> None:
    """Aperio's own tiles (abbreviated RGB JPEG, shared tables) in an OME-TIFF: the OME-XML
    decides, the OME-TIFF reader reads it, with the OME metadata rather than a dialect's."""
    import samples

    from bridge.convert import open_slide

    path = samples.write_aperio_ome(corpus, tmp_path / "aperio.ome.tif")
    slide = open_slide(path)
    try:
        assert slide.dialect is None and slide.carriers.ome_xml
    finally:
        slide.close()
    assert "format:" not in run_cli("info", path, check=True).stdout


def test_svs_icc_profile_reaches_dicom(tmp_path: Path) -> None:
    """An SVS's InterColorProfile (tag 34675), as Aperio GT450 scanners write one."""
    import samples
    from conftest import _distinct_icc

    icc = _distinct_icc()
    path = tmp_path / "icc.svs"
    desc = "Aperio Image Library v12.0.0\r\n256x256 (128x128) JPEG/RGB Q=70|AppMag = 40|MPP = 0.25"
    tifffile.imwrite(
        path,
        samples.tissue(256, 256),
        photometric="rgb",
        tile=(128, 128),
        compression="jpeg",
        description=desc,
        iccprofile=icc,
        metadata=None,
    )
    run_cli("convert", "--pyramid", "keep", path, tmp_path / "out", "-q", check=True)
    (volume,) = _by_flavour(tmp_path / "out", "VOLUME")
    assert volume.OpticalPathSequence[0].ICCProfile == icc
    assert float(volume.OpticalPathSequence[0].ObjectiveLensPower) == 40
