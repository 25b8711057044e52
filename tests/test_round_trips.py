"""Round trips that lose nothing: OME-TIFF -> DICOM -> OME-TIFF and DICOM -> OME-TIFF -> DICOM,
compared tile by tile and field by field."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import ome_types
import pydicom
import pytest
import tifffile
from conftest import Case, run_cli
from test_dicom_to_ometiff import dicom_frames

#: Pixel Data and what only describes its layout in the file; file meta is not in the dataset.
LAYOUT = {0x7FE00010, 0x7FE00001, 0x7FE00002}


def _all_tiles(path: Path) -> list[tuple[tuple[int, int], list[bytes], bytes | None, bool]]:
    """Every level of every series: (size, stored tiles or strips, JPEGTables, tiled)."""
    out = []
    with tifffile.TiffFile(path) as tf:
        fh = tf.filehandle
        for series in tf.series:
            for level in series.levels:
                page = level.pages[0]
                tiles = []
                for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                    fh.seek(offset)
                    tiles.append(fh.read(count))
                size = (page.imagewidth, page.imagelength)
                out.append((size, tiles, page.jpegtables, page.is_tiled))
    return out


def _ome_without_file_identity(path: Path) -> ome_types.OME:
    with tifffile.TiffFile(path) as tf:
        ome = ome_types.from_xml(tf.ome_metadata, validate=False)
    ome.uuid = None
    ome.creator = None
    for image in ome.images:
        for td in image.pixels.tiff_data_blocks:
            td.uuid = None
    return ome


def test_ome_tiff_to_dicom_and_back(case: Case, tmp_path: Path) -> None:
    back = tmp_path / "back.ome.tiff"
    proc = run_cli("convert", case.out, back, "--pyramid", "keep")  # the levels it came with
    assert proc.returncode == 0, proc.stderr
    assert _ome_without_file_identity(back) == _ome_without_file_identity(case.source)
    original, returned = _all_tiles(case.source), _all_tiles(back)
    assert [r[0] for r in returned] == [o[0] for o in original]
    for (size, tiles_a, tables_a, tiled), (_, tiles_b, tables_b, _) in zip(
        original, returned, strict=True
    ):
        if not tiled:  # strips come back as tiles: compared by pixels below
            continue
        assert tables_b == tables_a, size
        assert len(tiles_b) == len(tiles_a), size
        for i, (a, b) in enumerate(zip(tiles_a, tiles_b, strict=True)):
            assert a == b, f"{size} tile {i}"
    with tifffile.TiffFile(case.source) as ta, tifffile.TiffFile(back) as tb:
        assert len(ta.series) == len(tb.series)
        for sa, sb in zip(ta.series, tb.series, strict=True):
            for la, lb in zip(sa.levels, sb.levels, strict=True):
                np.testing.assert_array_equal(la.asarray(), lb.asarray())


def test_shared_jpeg_tables_come_back_and_the_file_does_not_grow(
    cases: dict[str, Case], tmp_path: Path
) -> None:
    case = cases["vips-shared-tables"]
    back = tmp_path / "back.ome.tiff"
    assert run_cli("convert", case.out, back, "-q").returncode == 0
    with tifffile.TiffFile(back) as tf:
        assert all(level.pages[0].jpegtables for level in tf.series[0].levels)
    grown = back.stat().st_size - case.source.stat().st_size
    assert grown < 0.02 * case.source.stat().st_size, grown


def _compare_dicom(original: list[Path], returned: list[Path]) -> None:
    by_uid = {pydicom.dcmread(p).SOPInstanceUID: p for p in returned}
    assert len(by_uid) == len(original) == len(returned)
    for path in original:
        a = pydicom.dcmread(path)
        b = pydicom.dcmread(by_uid[a.SOPInstanceUID])
        assert b.file_meta.TransferSyntaxUID == a.file_meta.TransferSyntaxUID
        tags = {int(e.tag) for e in a} | {int(e.tag) for e in b}
        for tag in sorted(tags - LAYOUT):
            assert tag in a and tag in b, f"{path.name}: {pydicom.tag.Tag(tag)} only on one side"
            assert a[tag].value == b[tag].value, f"{path.name}: {a[tag].keyword} differs"
        assert dicom_frames(a) == dicom_frames(b), path.name


@pytest.mark.parametrize(
    "names",
    [
        ["wsi-to-dicom-converter__jpeg.dicom"],
        ["wsi-to-dicom-converter__jpeg2000.dicom"],
        ["openslide-python__boxes_0.dcm", "openslide-python__boxes_1.dcm"],
        ["highdicom__sm_image.dcm"],
        ["highdicom__sm_image_grayscale.dcm"],
    ],
)
def test_dicom_to_ome_tiff_and_back(corpus: Path, tmp_path: Path, names: list[str]) -> None:
    folder = tmp_path / "source"
    folder.mkdir()
    for name in names:
        shutil.copy(corpus / "dicom" / name, folder)
    middle = tmp_path / "middle.ome.tiff"
    # a round trip restores the levels the source has (new levels: test_pyramid.py)
    assert run_cli("convert", folder, middle, "-q", "--pyramid", "keep").returncode == 0
    back = tmp_path / "back"
    proc = run_cli("convert", middle, back, "--pyramid", "keep")
    assert proc.returncode == 0, proc.stderr
    _compare_dicom(sorted(folder.iterdir()), sorted(back.iterdir()))


def test_pixelmed_series_round_trip(tmp_path: Path) -> None:
    """A multi-level series written by another tool (PixelMed) comes back identical."""
    import subprocess

    import samples
    from readers import pixelmed_tiff_to_dicom

    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, samples.tissue(700, 900, seed=4), photometric="rgb")
    pyramid = tmp_path / "vips.tif"
    subprocess.run(
        ["vips", "tiffsave", str(plain), str(pyramid), "--tile", "--pyramid",
         "--compression", "jpeg"],
        check=True,
    )  # fmt: skip
    files = pixelmed_tiff_to_dicom(pyramid, tmp_path / "pixelmed")
    middle = tmp_path / "middle.ome.tiff"
    assert run_cli("convert", tmp_path / "pixelmed", middle, "-q").returncode == 0
    back = tmp_path / "back"
    assert run_cli("convert", middle, back, "-q").returncode == 0
    _compare_dicom(files, sorted(back.iterdir()))


#: A real Zeiss CZI converted by Bio-Formats: an Instrument (Microscope, Objectives, Detectors,
#: light sources) that the Image refers to through InstrumentRef, ObjectiveSettings and
#: DetectorSettings, and 290 kB of StructuredAnnotations.
ZEISS = "ome-tiff/aicsimageio__s_1_t_1_c_1_z_1.ome.tiff"


def _element_counts(xml: str) -> dict[str, int]:
    from collections import Counter

    from lxml import etree

    return Counter(etree.QName(e).localname for e in etree.fromstring(xml.encode()).iter())


def _dangling_references(xml: str) -> list[str]:
    """IDs that a ``...Ref`` or ``...Settings`` element names but no element defines."""
    from lxml import etree

    root = etree.fromstring(xml.encode())
    defined, wanted = set(), []
    for e in root.iter():
        qname = etree.QName(e)
        name = qname.localname
        if qname.namespace != root.nsmap[None]:  # e.g. StructuredAnnotations' own content
            continue
        if name.endswith(("Ref", "Settings")):
            wanted.append(f"{name}={e.get('ID')}")
        elif e.get("ID") is not None:
            defined.add(e.get("ID"))
    return [w for w in wanted if w.split("=", 1)[1] not in defined]


def test_zeiss_instrument_survives_ome_tiff_dicom_ome_tiff(corpus: Path, tmp_path: Path) -> None:
    """The whole OME-XML comes back (ome-types model equality: every element and attribute),
    file identity (UUIDs, Creator, TiffData file names) aside; no reference dangles."""
    src = corpus / ZEISS
    dicom = tmp_path / "dicom"
    assert run_cli("convert", src, dicom, "-q").returncode == 0
    back = tmp_path / "back.ome.tiff"
    proc = run_cli("convert", dicom, back, "-q")
    assert proc.returncode == 0, proc.stderr
    with tifffile.TiffFile(src) as a, tifffile.TiffFile(back) as b:
        xml_a, xml_b = a.ome_metadata, b.ome_metadata
    counts = _element_counts(xml_a)
    assert counts["Objective"] >= 1 and counts["Detector"] >= 1 and counts["InstrumentRef"] == 1
    assert _dangling_references(xml_a) == []  # the source is whole
    assert _dangling_references(xml_b) == []
    assert _element_counts(xml_b) == counts
    assert _ome_without_file_identity(back) == _ome_without_file_identity(src)
