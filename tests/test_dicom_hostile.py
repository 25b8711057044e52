"""Hostile DICOM input (issue 12): every damaged or lying header is one clear error, never an
internal error, a hang or an allocation the file's own bytes cannot justify.

Each case starts from a good conversion of a generated OME-TIFF and changes it with pydicom.
``info`` and ``convert`` must exit 2 (or 3) with one ``omedicom: error: FILE: ...`` line
naming the attribute and leave nothing behind; ``check`` must report findings, not crash.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli

OMEDICOM = Path(sys.executable).with_name("omedicom")


def _run(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``run_cli`` with a time limit: a hang is a failure, not a stuck test run."""
    cmd = [str(OMEDICOM) if OMEDICOM.exists() else "omedicom", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def good(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Good DICOM folders: JPEG (two levels), native, JPEG-LS and JPEG 2000."""
    tmp = tmp_path_factory.mktemp("hostile")
    jpeg = samples.write_tifffile(tmp / "jpeg.ome.tif", size=(600, 500), levels=2)
    raw = samples.write_tifffile(
        tmp / "raw.ome.tif", size=(300, 200), levels=1, compression=None, tile=128
    )
    out = {}
    for name, src, args in (
        ("jpeg", jpeg, ()),
        ("native", raw, ()),
        ("jpegls", raw, ("--codec", "jpegls")),
        ("j2k", raw, ("--codec", "jpeg2000")),
    ):
        out[name] = tmp / name
        run_cli("convert", src, out[name], "-q", "--pyramid", "keep", *args, check=True)
    return out


def _mutant(
    good: Path, tmp: Path, change: Callable[[pydicom.Dataset], None], name: str = "level0.dcm"
) -> Path:
    folder = tmp / "in"
    shutil.copytree(good, folder)
    ds = pydicom.dcmread(folder / name)
    change(ds)
    ds.save_as(folder / name, enforce_file_format=True)
    return folder


def _refused(folder: Path, tmp: Path, code: int, *needles: str) -> str:
    """``info`` and ``convert`` refuse with one clear message; nothing is written."""
    before = sorted(p.name for p in tmp.iterdir())
    out = tmp / "out.ome.tiff"
    for args in (("info", folder), ("convert", folder, out)):
        proc = _run(*args)
        assert proc.returncode == code, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("omedicom: error: ")]
        assert len(errors) == 1 and "internal error" not in proc.stderr, proc.stderr
        assert errors[0].startswith(f"omedicom: error: {folder}"), proc.stderr
        for needle in needles:
            assert needle in proc.stderr, proc.stderr
        assert not out.exists()
        assert sorted(p.name for p in tmp.iterdir()) == before  # no .partial left
    return proc.stderr


def _checked(folder: Path) -> str:
    """``check`` reports the damage as findings (verdict FAIL), it does not crash."""
    proc = _run("check", folder, "--no-dicom3tools")
    assert "internal error" not in proc.stderr and "SUITE-check-failed" not in proc.stdout
    assert "verdict: FAIL" in proc.stdout, proc.stdout + proc.stderr
    return proc.stdout


def _spacing(value: list) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = value

    return change


def _set(**values: object) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        for key, value in values.items():
            setattr(ds, key, value)

    return change


HEADERS = {
    "negative spacing": (_spacing([-0.0005, 0.0005]), "Pixel Spacing is '-0.0005'"),
    "zero spacing": (_spacing([0, 0]), "Pixel Spacing is '0.0'"),
    "NaN spacing": (_spacing(["NaN", "0.0005"]), "Pixel Spacing is 'NaN'"),
    "infinite spacing": (_spacing(["inf", "0.0005"]), "Pixel Spacing is 'inf'"),
    "no samples": (_set(SamplesPerPixel=0), "Samples per Pixel is 0"),
    "65535 samples": (_set(SamplesPerPixel=65535), "Samples per Pixel is 65535"),
    "zero rows": (_set(Rows=0), "Rows is 0"),
    "zero columns": (_set(Columns=0), "Columns is 0"),
    "12 bits allocated": (_set(BitsAllocated=12), "Bits Allocated is 12"),
    "32 bits allocated": (_set(BitsAllocated=32), "Bits Allocated is 32"),
    "2**31 columns": (_set(TotalPixelMatrixColumns=2**31), "needs 16777216"),
    "16M focal planes": (_set(TotalPixelMatrixFocalPlanes=2**24), "16777216 focal plane(s)"),
    "one frame too many": (_set(NumberOfFrames=7), "Number of Frames is 7"),
    "one frame too few": (_set(NumberOfFrames=5), "Number of Frames is 5"),
}


@pytest.mark.parametrize("case", list(HEADERS))
def test_hostile_header_values_are_refused(good, tmp_path: Path, case: str) -> None:
    change, needle = HEADERS[case]
    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, needle, "level0.dcm")


@pytest.mark.parametrize("case", ["NaN spacing", "2**31 columns", "16M focal planes", "zero rows"])
def test_check_reports_hostile_headers(good, tmp_path: Path, case: str) -> None:
    folder = _mutant(good["jpeg"], tmp_path, HEADERS[case][0])
    report = _checked(folder)
    assert "level0.dcm" in report


def test_focal_planes_and_frames_that_the_pixel_data_cannot_hold(good, tmp_path: Path) -> None:
    """The header agrees with itself (frames = tiles x planes) but the Pixel Data holds a
    quarter of the frames: refused from the file's size, nothing allocated per frame."""

    def change(ds: pydicom.Dataset) -> None:
        ds.TotalPixelMatrixFocalPlanes = 4
        ds.NumberOfFrames = 4 * int(ds.NumberOfFrames)

    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, "Number of Frames is 24", "6 fragment(s)")


def test_native_pixel_data_shorter_than_its_frames(good, tmp_path: Path) -> None:
    def change(ds: pydicom.Dataset) -> None:
        ds.TotalPixelMatrixFocalPlanes = 2
        ds.NumberOfFrames = 2 * int(ds.NumberOfFrames)

    folder = _mutant(good["native"], tmp_path, change)
    _refused(folder, tmp_path, 2, "native Pixel Data holds 294912 bytes", "589824")


def test_sparse_grid_out_of_all_proportion_to_its_frames(good, tmp_path: Path) -> None:
    """TILED_SPARSE lets a grid have absent tiles, but not 2**32 columns for six frames."""

    def change(ds: pydicom.Dataset) -> None:
        nx = -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
        ds.DimensionOrganizationType = "TILED_SPARSE"
        items = []
        for i in range(int(ds.NumberOfFrames)):
            pos = pydicom.Dataset()
            pos.ColumnPositionInTotalImagePixelMatrix = 1 + (i % nx) * int(ds.Columns)
            pos.RowPositionInTotalImagePixelMatrix = 1 + (i // nx) * int(ds.Rows)
            pos.XOffsetInSlideCoordinateSystem = 0
            pos.YOffsetInSlideCoordinateSystem = 0
            pos.ZOffsetInSlideCoordinateSystem = 0
            item = pydicom.Dataset()
            item.PlanePositionSlideSequence = [pos]
            items.append(item)
        ds.PerFrameFunctionalGroupsSequence = items
        ds.TotalPixelMatrixColumns = 2**32 - 1

    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, "the tile grid has", "only 6 frame(s)")


def test_sparse_focal_planes_beyond_the_frames(good, tmp_path: Path) -> None:
    def change(ds: pydicom.Dataset) -> None:
        ds.DimensionOrganizationType = "TILED_SPARSE"
        ds.PerFrameFunctionalGroupsSequence = [pydicom.Dataset() for _ in range(6)]
        ds.TotalPixelMatrixFocalPlanes = 2**24

    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, "Total Pixel Matrix Focal Planes is 16777216", "6 frame(s)")


def test_concatenation_with_focal_planes_its_frames_cannot_hold(good, tmp_path: Path) -> None:
    """Found by fuzzing: a lone concatenation member with 16M focal planes hung the reader
    (a list of every plane's Z) before its frames were counted against them."""

    def change(ds: pydicom.Dataset) -> None:
        ds.ConcatenationUID = "1.2.3.4"
        ds.InConcatenationNumber = 1
        ds.TotalPixelMatrixFocalPlanes = 2**24

    folder = _mutant(good["j2k"], tmp_path, change)
    _refused(folder, tmp_path, 2, "the concatenation's instances hold 6 frames in all")


def test_sparse_frames_without_a_functional_group_each(good, tmp_path: Path) -> None:
    def change(ds: pydicom.Dataset) -> None:
        ds.DimensionOrganizationType = "TILED_SPARSE"
        ds.PerFrameFunctionalGroupsSequence = [pydicom.Dataset() for _ in range(2)]

    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, "Number of Frames is 6", "has 2 item(s)")


# -- transfer syntax against the frames' bytes (item 3) ---------------------------------------

HTJ2K = "1.2.840.10008.1.2.4.201"


def _relabel(syntax: str) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        ds.file_meta.TransferSyntaxUID = syntax

    return change


def _relabel_file(path: Path, syntax: str) -> None:
    """Change only the file meta's Transfer Syntax UID (pydicom refuses to save native pixels
    under a compressed syntax, which is the point here): the data set bytes stay as they are."""
    import io

    from pydicom.filewriter import write_file_meta_info

    data = path.read_bytes()
    meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
    end = 132 + 12 + int(meta.FileMetaInformationGroupLength)
    meta.TransferSyntaxUID = syntax
    del meta.FileMetaInformationGroupLength
    out = io.BytesIO()
    write_file_meta_info(pydicom.filebase.DicomFileLike(out), meta, enforce_standard=True)
    path.write_bytes(data[:132] + out.getvalue() + data[end:])


@pytest.mark.parametrize(
    ("source", "syntax", "needles"),
    [
        ("jpeg", "1.2.840.10008.1.2.4.90", ("first frame is JPEG", "JPEG 2000")),
        ("jpeg", HTJ2K, ("first frame is JPEG", HTJ2K)),
        ("jpeg", "1.2.840.10008.1.2.4.80", ("first frame is JPEG (", "JPEG-LS")),
        ("jpegls", "1.2.840.10008.1.2.4.50", ("first frame is JPEG-LS", "1.2.840.10008.1.2.4.50")),
        ("j2k", "1.2.840.10008.1.2.4.50", ("first frame is a JPEG 2000 codestream",)),
    ],
)
def test_transfer_syntax_that_disagrees_with_the_frames(
    good, tmp_path: Path, source: str, syntax: str, needles: tuple[str, ...]
) -> None:
    folder = _mutant(good[source], tmp_path, _relabel(syntax))
    _refused(folder, tmp_path, 2, "Transfer Syntax UID", "mislabelled", *needles)


@pytest.mark.parametrize(
    ("source", "syntax", "needles"),
    [
        ("native", "1.2.840.10008.1.2.4.50", ("Pixel Data is native (not encapsulated)",)),
        ("jpeg", "1.2.840.10008.1.2.1", ("says native pixels", "encapsulated")),
    ],
)
def test_native_and_encapsulated_pixel_data_mislabelled(
    good, tmp_path: Path, source: str, syntax: str, needles: tuple[str, ...]
) -> None:
    folder = tmp_path / "in"
    shutil.copytree(good[source], folder)
    _relabel_file(folder / "level0.dcm", syntax)
    _refused(folder, tmp_path, 2, "Transfer Syntax UID", "mislabelled", *needles)


def test_jpeg_labelled_htj2k_is_never_written_as_htj2k(good, tmp_path: Path) -> None:
    """What convert writes, check accepts: mislabelled frames never reach an OME-TIFF."""
    folder = _mutant(good["jpeg"], tmp_path, _relabel(HTJ2K))
    _refused(folder, tmp_path, 2, HTJ2K)
    _checked(folder)


@pytest.mark.parametrize(("source", "columns"), [("jpeg", 200), ("j2k", 100), ("jpegls", 100)])
def test_frames_that_disagree_with_columns_and_rows(
    good, tmp_path: Path, source: str, columns: int
) -> None:
    """Columns changed so that the tile grid (and so Number of Frames) still agrees."""
    folder = _mutant(good[source], tmp_path, _set(Columns=columns))
    _refused(folder, tmp_path, 2, f"the header says {columns}×", "Columns × Rows")


# -- damaged frames and offset tables (item 5) -----------------------------------------------


def _frames_of(ds: pydicom.Dataset) -> list[bytes]:
    return list(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))


def _damage_frame(number: int) -> Callable[[pydicom.Dataset], None]:
    """Keep the frame's header (so it still looks like its codec) and garble its data."""

    def change(ds: pydicom.Dataset) -> None:
        frames = _frames_of(ds)
        frame = bytearray(frames[number - 1])
        rng = np.random.default_rng(number)
        cut = len(frame) // 3
        frame[cut:] = rng.integers(0, 256, len(frame) - cut, dtype=np.uint8).tobytes()
        frames[number - 1] = bytes(frame[: len(frame) // 2])
        ds.PixelData = pydicom.encaps.encapsulate(frames)

    return change


@pytest.mark.parametrize("source", ["jpegls", "j2k"])
def test_corrupt_frame_on_the_decode_path(good, tmp_path: Path, source: str) -> None:
    """DICOM -> OME-TIFF decodes what it cannot copy (JPEG-LS; J2K when re-encoded): a frame
    that does not decode is named, with its file."""
    folder = _mutant(good[source], tmp_path, _damage_frame(2))
    out = tmp_path / "out.ome.tiff"
    args = ("--to", "dicom") if source == "j2k" else ()
    target = tmp_path / "out" if source == "j2k" else out
    proc = _run("convert", folder, target, *args, *(("--codec", "jpegls") if args else ()))
    assert proc.returncode == 2, proc.stderr
    assert "frame 2 cannot be decoded" in proc.stderr and "level0.dcm" in proc.stderr
    assert "the file is damaged" in proc.stderr
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_basic_offset_table_with_wrong_values(good, tmp_path: Path) -> None:
    """Two fragments per frame grouped by a Basic Offset Table that does not increase."""

    def change(ds: pydicom.Dataset) -> None:
        frames = _frames_of(ds)
        halves = [part for f in frames for part in (f[: len(f) // 2], f[len(f) // 2 :])]

        def item(data: bytes) -> bytes:
            data += b"\0" * (len(data) % 2)
            return b"\xfe\xff\x00\xe0" + len(data).to_bytes(4, "little") + data

        table = b"".join(int(v).to_bytes(4, "little") for v in [0, 50, 50, 10, 20, 30])
        body = b"".join(item(h) for h in halves)
        ds.PixelData = item(table) + body + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"

    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, "offset table", "damaged")


def test_extended_offset_table_of_odd_length(good, tmp_path: Path) -> None:
    def change(ds: pydicom.Dataset) -> None:
        frames = _frames_of(ds)
        halves = [part for f in frames for part in (f[: len(f) // 2], f[len(f) // 2 :])]
        ds.PixelData = pydicom.encaps.encapsulate(halves, has_bot=False)
        ds.ExtendedOffsetTable = bytes(8 * 6 + 3)
        ds.ExtendedOffsetTableLengths = bytes(8 * 6)

    folder = _mutant(good["jpeg"], tmp_path, change)
    _refused(folder, tmp_path, 2, "offset table", "damaged")


def test_item_tag_damaged(good, tmp_path: Path) -> None:
    path = good["jpeg"] / "level0.dcm"
    folder = tmp_path / "in"
    shutil.copytree(good["jpeg"], folder)
    data = bytearray((folder / "level0.dcm").read_bytes())
    pixel_data = data.rindex(b"\xe0\x7f\x10\x00")  # (7FE0,0010), then the Basic Offset Table
    second = data.index(b"\xfe\xff\x00\xe0", pixel_data + 20)
    data[second : second + 4] = b"\xfe\xff\x0d\xe0"
    (folder / "level0.dcm").write_bytes(bytes(data))
    assert path.read_bytes() != bytes(data)
    _refused(folder, tmp_path, 2, "unexpected tag 0xe00dfffe inside Pixel Data")


def test_good_slides_still_convert(good, tmp_path: Path) -> None:
    """The checks refuse only what is wrong: the good conversions read back."""
    for name, folder in good.items():
        out = tmp_path / f"{name}.ome.tiff"
        proc = _run("convert", folder, out, "-q")
        assert proc.returncode == 0, proc.stderr
        with tifffile.TiffFile(out) as tf:
            assert tf.series[0].shape[:2] in ((500, 600), (200, 300))


# -- damaged carriers: warn and use the standard attributes (item 4) --------------------------

INSTEAD = "the standard attributes are used instead"


def _set_private(element: int, value: str) -> Callable[[pydicom.Dataset], None]:
    def change(ds: pydicom.Dataset) -> None:
        block = ds.private_block(0x0077, "OMEDICOM 1")
        assert block.get_tag(element) in ds
        ds[block.get_tag(element)].value = value

    return change


def _converts_with_warning(folder: Path, tmp: Path, warning: str) -> None:
    """The conversion succeeds, says what it ignored, and its output passes check."""
    out = tmp / "out.ome.tiff"
    proc = _run("convert", folder, out)
    assert proc.returncode == 0, proc.stderr
    assert f"omedicom: warning: {warning}" in proc.stderr and INSTEAD in proc.stderr
    checked = _run("check", out, "--no-dicom3tools")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _all_files(good: Path, tmp: Path, change: Callable[[pydicom.Dataset], None]) -> Path:
    folder = tmp / "in"
    shutil.copytree(good, folder)
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path)
    return folder


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("<OME><Image>not closed", "not well-formed"),
        ("hello", "not well-formed"),
        (None, "Image 0 says 6000×500 px"),
    ],
)
def test_damaged_carried_ome_xml(good, tmp_path: Path, text: str | None, why: str) -> None:
    if text is None:  # well-formed, but it disagrees with the pixels
        ds = pydicom.dcmread(good["jpeg"] / "level0.dcm")
        text = ds[0x00771010].value.replace('SizeX="600"', 'SizeX="6000"')
        assert text != ds[0x00771010].value
    folder = _all_files(good["jpeg"], tmp_path, _set_private(0x10, text))
    _converts_with_warning(folder, tmp_path, "the carried OME-XML is damaged (")
    info = _run("info", folder)
    assert info.returncode == 0 and why in info.stdout + info.stderr


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "a JSON list"),
        ('{"image": "x", "level": 0}', "\"image\" is 'x'"),
        ('{"image": 0, "level": 0, "jpeg_tables": "!!!"}', '"jpeg_tables" is not base64'),
    ],
)
def test_damaged_carried_tiff_layout(good, tmp_path: Path, text: str, why: str) -> None:
    folder = _all_files(good["jpeg"], tmp_path, _set_private(0x11, text))
    _converts_with_warning(folder, tmp_path, "")
    info = _run("info", folder)
    assert info.returncode == 0 and why in info.stdout + info.stderr


def test_carried_tiff_layout_that_splits_a_pyramid(good, tmp_path: Path) -> None:
    """Well-formed, but the two levels of one pyramid claim different OME Images."""
    text = '{"image": 5, "level": 1, "jpeg_tables": null, "inserted_marker": null}'
    folder = _mutant(good["jpeg"], tmp_path, _set_private(0x11, text), "level1.dcm")
    _converts_with_warning(folder, tmp_path, "the carried TIFF layout is damaged (its image")


def _dicom_json_variants() -> dict[str, Callable[[dict], object]]:
    def types(d: dict) -> dict:
        d["00280010"] = {"vr": "US", "Value": ["abc"]}
        return d

    def disagree(d: dict) -> dict:
        d["00280002"] = {"vr": "US", "Value": [1]}
        return d

    def uid(d: dict) -> dict:
        d["0020000D"] = {"vr": "UI", "Value": ["not a uid!"]}
        return d

    return {
        "not JSON": lambda d: "{not json",
        "a list": lambda d: [1, 2],
        "wrong types": types,
        "disagrees with the pixels": disagree,
        "bad UID": uid,
    }


@pytest.mark.parametrize("variant", list(_dicom_json_variants()))
def test_damaged_dicom_json_in_ome_xml(corpus: Path, tmp_path: Path, variant: str) -> None:
    """A DICOM -> OME-TIFF conversion keeps each DICOM header as DICOM JSON in a
    CommentAnnotation; damaged, the way back warns and writes the standard attributes."""
    import html
    import json
    import re

    src = tmp_path / "src.ome.tiff"
    run_cli(
        "convert", corpus / "dicom" / "wsi-to-dicom-converter__jpeg.dicom", src, "-q", check=True
    )
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    found = re.search(
        r"(<CommentAnnotation[^>]*urn:omedicom:dicom-json:1[^>]*>.*?<Value>)(.*?)(</Value>)",
        xml,
        re.S,
    )
    assert found is not None
    value = _dicom_json_variants()[variant](json.loads(html.unescape(found.group(2))))
    text = value if isinstance(value, str) else json.dumps(value)
    tifffile.tiffcomment(
        src, xml.replace(found.group(0), found.group(1) + html.escape(text) + found.group(3))
    )
    out = tmp_path / "out"
    proc = _run("convert", src, out)
    assert proc.returncode == 0, proc.stderr
    assert "the carried DICOM header of image 0 level 0 is damaged" in proc.stderr
    assert INSTEAD in proc.stderr
    checked = _run("check", out, "--no-dicom3tools")
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("at", [200, 248])
def test_base_level_cut_before_its_sop_class_is_not_skipped(good, tmp_path: Path, at: int) -> None:
    """A folder whose base instance was cut short before its SOP Class UID: it was skipped as
    "not a whole-slide image", and the next level converted as the base, with the wrong pixel
    size. The cut is an input error naming the file."""
    folder = tmp_path / "in"
    shutil.copytree(good["jpeg"], folder)
    base = folder / "level0.dcm"
    base.write_bytes(base.read_bytes()[:at])
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (("info", folder), ("convert", folder, tmp_path / "out.ome.tiff")):
        proc = _run(*args)
        assert proc.returncode == 2, proc.stderr
        assert f"{base}: the file has no SOP Class UID" in proc.stderr, proc.stderr
        assert f"({at} bytes)" in proc.stderr and "cut short" in proc.stderr
        assert "internal error" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before
