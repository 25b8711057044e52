"""The conformance suite on OME-TIFF: files written by tifffile and libvips pass; each check
trips on a copy whose OME-XML or TIFF structure was changed in one place."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import samples
import tifffile
from test_conformance_support import add_rois, ids, run, set_ome_xml

from conformance.findings import Severity

GOOD_SHAPES = (
    '<Point ID="Shape:1" X="10" Y="20" TheZ="0" TheC="0" TheT="0"/>'
    '<Rectangle ID="Shape:2" X="0" Y="0" Width="600" Height="500"/>'
    '<Ellipse ID="Shape:3" X="300" Y="250" RadiusX="100" RadiusY="50"/>'
    '<Polygon ID="Shape:4" Points="1,1 100,1 100,100"/>'
    '<Polyline ID="Shape:5" Points="1,1 599,499"/>'
    '<Line ID="Shape:6" X1="0" Y1="0" X2="600" Y2="500"/>'
    '<Rectangle ID="Shape:7" X="0" Y="0" Width="100" Height="100">'
    '<Transform A00="1" A10="0" A01="0" A11="1" A02="450" A12="350"/></Rectangle>'
)


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 600 x 500 tifffile pyramid (3 SubIFD levels, 256-pixel JPEG tiles) with ROIs."""
    path = samples.write_tifffile(tmp_path_factory.mktemp("ome") / "good.ome.tif", size=(600, 500))
    return set_ome_xml(path, lambda xml: add_rois(xml, GOOD_SHAPES))


@pytest.fixture
def copy(good: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(good, tmp_path / "slide.ome.tif"))


def test_good_files_pass(good: Path, tmp_path: Path) -> None:
    report = run(good)
    assert report.exit_code == 0 and not ids(report, None), report.sorted()
    vips = run(samples.write_vips(tmp_path / "vips.ome.tif"))
    assert vips.exit_code == 0 and not ids(vips, None), vips.sorted()
    with_label = run(samples.write_tifffile(tmp_path / "label.ome.tif", label=True))
    assert with_label.exit_code == 0
    # the label, macro and thumbnail images have no PhysicalSize: a note, not a warning
    assert ids(with_label, None) == {"OME-physical-size"}
    assert ids(with_label, Severity.INFO) == {"OME-physical-size"}


def test_plain_tiff_is_checked_as_a_generic_tiff(tmp_path: Path) -> None:
    """No OME-XML: the TIFF-dialect checks run (conformance/wsitiff.py); a plain tiled TIFF
    passes, with a warning that DICOM will need --pixel-size."""
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, samples.tissue(64, 64), photometric="rgb", tile=(16, 16))
    report = run(path)
    assert report.exit_code == 0 and not ids(report)
    assert ids(report, Severity.WARNING) == {"TIFF-pixel-size"}
    assert ids(report, Severity.INFO) == {"TIFF-dialect"}


def test_not_well_formed_xml(copy: Path) -> None:
    set_ome_xml(copy, lambda xml: xml.replace("</OME>", "</OMEX>"))
    assert ids(run(copy)) == {"OME-xml"}


def test_schema_violation(copy: Path) -> None:
    set_ome_xml(
        copy, lambda xml: xml.replace('DimensionOrder="', 'Shape="round" DimensionOrder="', 1)
    )
    report = run(copy)
    assert ids(report) == {"OME-schema"}
    assert "Shape" in report.findings[0].message and report.findings[
        0
    ].location.attribute.startswith("line ")


def test_size_disagrees_with_ifd(copy: Path) -> None:
    set_ome_xml(copy, lambda xml: xml.replace('SizeX="600"', 'SizeX="640"'))
    report = run(copy)
    assert "OME-size" in ids(report)
    assert "640 x 500" in next(f.message for f in report.findings if f.id == "OME-size")


def test_plane_count_disagrees_with_ifds(copy: Path) -> None:
    set_ome_xml(copy, lambda xml: xml.replace('SizeZ="1"', 'SizeZ="2"'))
    report = run(copy)
    assert ids(report) == {"OME-ifd-count"}
    assert "= 2" in report.findings[0].message


def test_unreferenced_ifd_is_a_warning(tmp_path: Path) -> None:
    path = samples.write_tifffile(tmp_path / "extra.ome.tif", size=(300, 200), levels=1)
    with tifffile.TiffWriter(path, append="force") as tw:
        tw.write(np.zeros((32, 32), np.uint8))
    report = run(path)
    assert not ids(report) and "OME-ifd-count" in ids(report, Severity.WARNING)


def test_tiffdata_out_of_range(copy: Path) -> None:
    set_ome_xml(copy, lambda xml: xml.replace('<TiffData IFD="0"', '<TiffData IFD="4"', 1))
    report = run(copy)
    assert "OME-tiffdata" in ids(report)
    assert "IFD 4" in next(f.message for f in report.findings if f.id == "OME-tiffdata")


def test_tiffdata_first_plane_out_of_range(copy: Path) -> None:
    set_ome_xml(copy, lambda xml: xml.replace("<TiffData ", '<TiffData FirstT="1" ', 1))
    assert "OME-tiffdata" in ids(run(copy))


def test_subifd_levels_that_grow(tmp_path: Path) -> None:
    path = tmp_path / "grow.ome.tif"
    image = samples.tissue(256, 256)
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(image, subifds=2, tile=(64, 64), photometric="rgb", metadata={"axes": "YXS"})
        tw.write(image[::2, ::2].copy(), subfiletype=1, tile=(64, 64), photometric="rgb")
        tw.write(image[::1, ::2].copy(), subfiletype=1, tile=(64, 64), photometric="rgb")
    report = run(path)
    assert ids(report) == {"OME-subifd-levels"}
    hit = next(
        f for f in report.findings if f.id == "OME-subifd-levels" and f.severity is Severity.ERROR
    )
    assert hit.location.level == 2


def test_subifd_factors_that_change(tmp_path: Path) -> None:
    path = tmp_path / "factors.ome.tif"
    image = samples.tissue(512, 512)
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(image, subifds=2, tile=(64, 64), photometric="rgb", metadata={"axes": "YXS"})
        tw.write(image[::2, ::2].copy(), subfiletype=1, tile=(64, 64), photometric="rgb")
        tw.write(image[::8, ::8].copy(), subfiletype=1, tile=(64, 64), photometric="rgb")
    report = run(path)
    assert not ids(report)
    assert any(
        "factor changes" in f.message for f in report.findings if f.id == "OME-subifd-levels"
    )


def test_physical_size(copy: Path, tmp_path: Path) -> None:
    set_ome_xml(copy, lambda xml: xml.replace('PhysicalSizeX="0.5"', 'PhysicalSizeX="-0.5"'))
    report = run(copy)
    assert {"OME-physical-size", "OME-schema"} <= ids(report)  # PositiveFloat in the XSD too
    absent = samples.write_tifffile(tmp_path / "nosize.ome.tif", size=(300, 200), pixel_size=None)
    report = run(absent)
    assert not ids(report) and ids(report, Severity.WARNING) == {"OME-physical-size"}


def test_tile_size_not_a_multiple_of_16(copy: Path) -> None:
    with tifffile.TiffFile(copy, mode="r+b") as tf:
        tf.pages[0].tags["TileWidth"].overwrite(248)
    report = run(copy)
    assert "OME-tile-size" in ids(report)
    assert "248 x 256" in next(f.message for f in report.findings if f.id == "OME-tile-size")


@pytest.mark.parametrize(
    ("shape", "check_id"),
    [
        ('<Point ID="Shape:9" X="601" Y="20"/>', "OME-roi-coordinates"),
        (
            '<Ellipse ID="Shape:9" X="580" Y="250" RadiusX="40" RadiusY="10"/>',
            "OME-roi-coordinates",
        ),
        (
            '<Rectangle ID="Shape:9" X="0" Y="0" Width="10" Height="10">'
            '<Transform A00="1" A10="0" A01="0" A11="1" A02="0" A12="495"/></Rectangle>',
            "OME-roi-coordinates",
        ),
        ('<Polygon ID="Shape:9" Points="1,1 10,10"/>', "OME-roi-points"),
        ('<Polyline ID="Shape:9" Points="1,1 2"/>', "OME-roi-points"),
        ('<Point ID="Shape:9" X="1" Y="1" TheZ="1"/>', "OME-roi-planes"),
        ('<Point ID="Shape:9" X="1" Y="1" TheC="3"/>', "OME-roi-planes"),
    ],
)
def test_roi_shapes(copy: Path, shape: str, check_id: str) -> None:
    set_ome_xml(copy, lambda xml: xml.replace('<Point ID="Shape:1"', shape + '<Point ID="Shape:1"'))
    report = run(copy)
    assert check_id in ids(report)
    assert ids(report) <= {check_id, "OME-schema"}
    hit = next(f for f in report.findings if f.id == check_id)
    assert "Shape:9" in hit.location.attribute


def test_corpus_rois_are_checked(corpus: Path) -> None:
    """The 2010-06 sample's ROIs (points at 1,1 in a 6 x 4 image, TheC 0..2) pass after the
    XSLT upgrade, and would fail against a smaller image."""
    path = corpus / "ome-tiff" / "ome-model__2010-06_6x4y1z1t3c8b-swatch-ROI.ome.tiff"
    report = run(path)
    assert report.exit_code == 0
    assert "OME-schema" in ids(report, Severity.INFO)  # the upgrade is reported


def test_not_a_tiff(tmp_path: Path) -> None:
    path = tmp_path / "fake.ome.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 20)
    report = run(path)
    assert report.exit_code == 2 and ids(report) == {"INPUT-unreadable"}


def test_file_cut_short(good: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.ome.tif"
    data = good.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    report = run(path)
    assert ids(report) == {"OME-xml"}
    assert "damaged or cut short" in next(
        f.message for f in report.findings if f.severity is Severity.ERROR
    )


@pytest.mark.parametrize(
    ("tag", "value", "needle"),
    [
        ("TileWidth", 0, "TileWidth is 0"),
        ("TileLength", 65535, "TileLength is 65535"),
        ("ImageWidth", 0, "ImageWidth × ImageLength is 0×500"),
    ],
)
def test_tags_that_cannot_describe_the_data(copy: Path, tag: str, value: int, needle: str) -> None:
    """OME-tiff-structure: the converter's page checks run first; the checks after them read
    what these tags describe and used to crash (ZeroDivisionError) on such a file."""
    with tifffile.TiffFile(copy, mode="r+b") as tf:
        tf.pages[0].tags[tag].overwrite(value)
    report = run(copy)
    assert ids(report) == {"OME-tiff-structure"}, report.sorted()
    assert needle in next(f.message for f in report.findings if f.id == "OME-tiff-structure")
    assert report.exit_code == 1


def _svs(path: Path, level_sizes: list[tuple[int, int]]) -> Path:
    """A small Aperio SVS (tiled uncompressed pages, the strip thumbnail second, as Aperio
    writes it) whose levels have the given (w, h)."""
    desc = "Aperio Image Library v12.0.0\r\n256x256 (64x64) RAW|AppMag = 20|MPP = 0.5"
    with tifffile.TiffWriter(path) as tw:
        for i, (width, height) in enumerate(level_sizes):
            if i == 1:
                tw.write(samples.tissue(32, 32), photometric="rgb", description=desc, metadata=None)
            tw.write(
                samples.tissue(height, width),
                photometric="rgb",
                tile=(64, 64),
                description=desc,
                metadata=None,
            )
    return path


def test_scanner_tiff_levels_must_shrink_evenly(tmp_path: Path) -> None:
    good = run(_svs(tmp_path / "good.svs", [(256, 256), (128, 128)]))
    assert good.exit_code == 0 and not ids(good, Severity.WARNING) and not ids(good)
    uneven = run(_svs(tmp_path / "uneven.svs", [(256, 256), (128, 64)]))
    assert ids(uneven, Severity.WARNING) == {"TIFF-levels"} and uneven.exit_code == 0
    growing = run(_svs(tmp_path / "growing.svs", [(256, 256), (320, 320)]))
    assert ids(growing) == {"TIFF-levels"} and growing.exit_code == 1
