"""Rough edges found by trying omedicom as a new user (issue 12): output names, the console,
messages. Each test failed before its fix."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import samples
import tifffile
from conftest import run_cli


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small pyramidal JPEG OME-TIFF with a label, macro and thumbnail."""
    tmp = tmp_path_factory.mktemp("slide")
    return samples.write_tifffile(tmp / "small.ome.tif", size=(600, 500), levels=2, label=True)


@pytest.fixture(scope="module")
def dicom(slide: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``slide`` converted to DICOM."""
    out = tmp_path_factory.mktemp("dicom") / "small_dicom"
    run_cli("convert", slide, out, "-q", check=True)
    return out


def _one_error(proc, code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("omedicom: error: "), proc.stderr
    assert sum(line.startswith("omedicom: error") for line in lines) == 1, proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


# 1. output names longer than NAME_MAX


@pytest.mark.parametrize("direction", ["to-dicom", "to-ome-tiff"])
def test_output_name_over_255_bytes_is_an_output_error(
    direction: str, slide: Path, dicom: Path, tmp_path: Path
) -> None:
    src, name = (slide, "d" * 260) if direction == "to-dicom" else (dicom, "o" * 252 + ".ome.tiff")
    proc = run_cli("convert", src, tmp_path / name)
    _one_error(proc, 4, "bytes long", "at most 255 bytes", "shorter")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("direction", ["to-dicom", "to-ome-tiff"])
def test_output_name_of_255_bytes_is_written(
    direction: str, slide: Path, dicom: Path, tmp_path: Path
) -> None:
    """The hidden staging name is longer than the target's; it is cut to fit."""
    src, name = (
        (slide, "é" * 127 + "d") if direction == "to-dicom" else (dicom, "o" * 246 + ".ome.tiff")
    )
    assert len(os.fsencode(name)) == 255
    proc = run_cli("convert", src, tmp_path / name, "-q")
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == [name]


# 2. a target name that is not UTF-8


def test_non_utf8_ome_tiff_name_is_refused_clearly(dicom: Path, tmp_path: Path) -> None:
    target = os.fsencode(tmp_path) + b"/out\xff.ome.tiff"
    proc = run_cli("convert", dicom, os.fsdecode(target))
    _one_error(proc, 4, "not valid UTF-8", "out\\xff.ome.tiff", "hint:")
    assert os.listdir(os.fsencode(tmp_path)) == []


def test_non_utf8_dicom_folder_name_is_written(slide: Path, tmp_path: Path) -> None:
    target = os.fsencode(tmp_path) + b"/out\xff"
    proc = run_cli("convert", slide, os.fsdecode(target), "-q")
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(os.fsencode(tmp_path)) == [b"out\xff"]


# 3. a parent that is a file


@pytest.mark.parametrize("direction", ["to-dicom", "to-ome-tiff"])
def test_parent_that_is_a_file_is_named(
    direction: str, slide: Path, dicom: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine")
    src, target = (
        (slide, blocker / "out")
        if direction == "to-dicom"
        else (dicom, blocker / "x" / "o.ome.tiff")
    )
    proc = run_cli("convert", src, target)
    _one_error(proc, 4, f"{blocker} is a file, not a folder")
    assert "File exists" not in proc.stderr
    assert blocker.read_text() == "mine"


# 6. the OME-XML names the final file, not the staging file


def test_ome_xml_names_the_final_file(dicom: Path, tmp_path: Path) -> None:
    out = tmp_path / "back.ome.tiff"
    run_cli("convert", dicom, out, "-q", check=True)
    with tifffile.TiffFile(out) as tf:
        xml = tf.ome_metadata
    assert 'FileName="back.ome.tiff"' in xml
    assert ".partial" not in xml


# 4. a reader of stdout that goes away


PIPED_COMMANDS = [
    ("info", "--json", "{dicom}"),
    ("info", "{slide}"),
    ("check", "{dicom}"),
    ("check", "--json", "{slide}"),
    ("check", "{dicom}", "--against", "{slide}"),
    ("--help",),
]


def _args(command: tuple[str, ...], slide: Path, dicom: Path) -> list[str]:
    return [a.format(slide=slide, dicom=dicom) for a in command]


@pytest.mark.parametrize("command", PIPED_COMMANDS, ids=" ".join)
def test_closed_stdout_pipe_ends_quietly(command, slide: Path, dicom: Path) -> None:
    """``omedicom ... | head -0``: the reader has gone before the first write."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("omedicom")
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [str(exe), *_args(command, slide, dicom)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert proc.returncode in (0, 141), proc.stderr
    assert proc.stderr == ""


@pytest.mark.parametrize("command", PIPED_COMMANDS, ids=" ".join)
def test_stdout_pipe_closed_after_one_line_ends_quietly(command, slide: Path, dicom: Path) -> None:
    """``omedicom ... | head -1``."""
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("omedicom")
    proc = subprocess.Popen(
        [str(exe), *_args(command, slide, dicom)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline()
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert code in (0, 141), stderr
    assert stderr == ""


# 5. library warnings


def test_library_warnings_are_printed_as_ours(capsys) -> None:
    import argparse
    import warnings

    from bridge import cli

    def command(args) -> int:
        for _ in range(2):  # from two places: shown once
            text = "The value length (66) exceeds the maximum length of 64"
            warnings.warn(text, UserWarning, stacklevel=1 + _)
        return 0

    assert cli.run(argparse.Namespace(func=command, debug=False)) == 0
    err = capsys.readouterr().err
    assert err == "omedicom: warning: The value length (66) exceeds the maximum length of 64\n"


def test_pydicom_warnings_do_not_leak_raw(corpus: Path) -> None:
    """pydicom warns about the over-long UIDs of this file when push reads it (the server is
    absent: the push itself fails, exit 5)."""
    src = corpus / "dicom" / "pathml__small_dicom.dcm"
    proc = run_cli("push", src, "--dicomweb", "http://127.0.0.1:9/dicom-web")
    assert "omedicom: warning: The value length (66) exceeds" in proc.stderr, proc.stderr
    assert "UserWarning" not in proc.stderr and "site-packages" not in proc.stderr
    assert "warn_and_log" not in proc.stderr
    assert all(line.startswith(("omedicom: ", "  hint: ")) for line in proc.stderr.splitlines())


# 7. an OME-TIFF source with a TIFF-looking target; the message says what was written


@pytest.mark.parametrize("name", ["out.ome.tiff", "out.tif", "OUT.BTF"])
def test_ome_tiff_to_tiff_name_is_refused(name: str, slide: Path, tmp_path: Path) -> None:
    proc = run_cli("convert", slide, tmp_path / name)
    _one_error(proc, 2, "the source is an OME-TIFF", "--to dicom", "folder name")
    assert list(tmp_path.iterdir()) == []


def test_explicit_to_dicom_with_tiff_name_says_dicom(slide: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.ome.tiff"
    proc = run_cli("convert", slide, out, "--to", "dicom", "--pyramid", "keep")
    assert proc.returncode == 0, proc.stderr
    assert out.is_dir()
    assert "wrote 5 DICOM instance(s)" in proc.stderr and "OME-TIFF" not in proc.stderr


def test_ome_tiff_without_tiff_suffix_says_ome_tiff(dicom: Path, tmp_path: Path) -> None:
    out = tmp_path / "slide_out"
    proc = run_cli("convert", dicom, out)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()
    assert "wrote an OME-TIFF with" in proc.stderr and "DICOM instance" not in proc.stderr


# 8. the top-level help tells both directions and the truth about re-encoding


def test_top_level_help_tells_both_directions_and_re_encoding() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "never re-encoded" not in text
    assert "re-encoded losslessly" in text and "the conversion says so" in text
    assert "convert a slide, OME-TIFF -> DICOM WSI or DICOM WSI -> OME-TIFF" in text
    assert "omedicom convert slide_dicom/ slide.ome.tiff DICOM -> OME-TIFF" in text
    assert "omedicom convert slide.ome.tiff slide_dicom/ OME-TIFF -> DICOM" in text


@pytest.fixture(scope="module")
def jpeg_label_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiled JPEG pyramid with an SVS-style label: one JPEG strip covering the whole image
    (RowsPerStrip = ImageLength), 301×150, not a multiple of the 16×16 MCU."""
    path = tmp_path_factory.mktemp("label") / "labelled.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(
            samples.tissue(500, 600),
            tile=(256, 256),
            photometric="rgb",
            compression="jpeg",
            metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "Name": "s"},
        )
        tw.write(
            samples.tissue(150, 301, seed=7),
            photometric="rgb",
            compression="jpeg",
            rowsperstrip=150,
            metadata={"Name": "label"},
        )
    return path


# 9. info says strips for striped levels


def test_info_says_strips_for_a_striped_level(jpeg_label_slide: Path) -> None:
    import json

    proc = run_cli("info", jpeg_label_slide, check=True)
    assert "301×150 px, strips of 150 rows (1 strip), jpeg" in proc.stdout, proc.stdout
    assert "600×500 px, tiles 256×256 (3×2)" in proc.stdout
    data = json.loads(run_cli("info", "--json", jpeg_label_slide, check=True).stdout)
    level0, label = data["images"][0]["levels"][0], data["images"][1]["levels"][0]
    assert (level0["layout"], level0["rows_per_strip"], level0["strips"]) == ("tiles", None, None)
    assert (label["layout"], label["rows_per_strip"], label["strips"]) == ("strips", 150, 1)
    assert label["tile_size"] == [301, 150] and label["grid"] == [1, 1]  # the fields as before


# 10. info on a folder of two slides lists both


def test_info_lists_every_slide_of_a_folder(
    dicom: Path, jpeg_label_slide: Path, tmp_path: Path
) -> None:
    import json
    import shutil

    other = tmp_path / "other"
    run_cli("convert", jpeg_label_slide, other, "-q", check=True)
    both = tmp_path / "both"
    shutil.copytree(dicom, both)
    shutil.copy(other / "level0.dcm", both / "other-level0.dcm")
    proc = run_cli("info", both)
    assert proc.returncode == 0, proc.stderr
    assert "2 slides (DICOM series)" in proc.stdout
    assert "slide 1 of 2" in proc.stdout and "slide 2 of 2" in proc.stdout
    data = json.loads(run_cli("info", "--json", both, check=True).stdout)
    assert sorted(s["slide_id"] for s in data["slides"]) == ["labelled", "small"]
    uid = next(s["series_uid"] for s in data["slides"] if s["slide_id"] == "labelled")
    one = json.loads(run_cli("info", "--json", both, "--series", uid, check=True).stdout)
    assert "slides" not in one and one["slide_id"] == "labelled"


# 11. info lists annotation groups


def test_info_lists_annotation_groups(slide: Path, tmp_path: Path) -> None:
    import json

    geojson = tmp_path / "cells.geojson"
    polygon = [[[10, 10], [50, 10], [50, 50], [10, 10]]]
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": polygon},
            "properties": {"objectType": "annotation", "classification": {"name": "Tumor"}},
        }
    ] * 2 + [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [100, 100]},
            "properties": {"objectType": "annotation", "classification": {"name": "Cell"}},
        }
    ]
    geojson.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    out = tmp_path / "annotated"
    run_cli("convert", slide, out, "--annotations", geojson, "-q", check=True)
    for target in (out, slide):
        proc = run_cli("info", target, check=True)
        assert ("annotations:" in proc.stdout) == (target == out), proc.stdout
    text = run_cli("info", out, check=True).stdout
    assert "annotations: 2 group(s)" in text
    assert "Tumor: 2 polygon(s)" in text and "Cell: 1 point(s)" in text
    data = json.loads(run_cli("info", "--json", out, check=True).stdout)
    groups = {g["label"]: (g["graphic_type"], g["count"]) for g in data["annotations"]}
    assert groups == {"Tumor": ("POLYGON", 2), "Cell": ("POINT", 1)}


# 17. a JPEG strip covering the whole image is one frame, copied verbatim


def test_whole_image_jpeg_strip_is_copied_verbatim(jpeg_label_slide: Path, tmp_path: Path) -> None:
    import pydicom
    from pydicom.encaps import generate_frames

    out = tmp_path / "out"
    proc = run_cli("convert", jpeg_label_slide, out)
    assert proc.returncode == 0, proc.stderr
    assert "decoded" not in proc.stderr  # nothing re-encoded
    with tifffile.TiffFile(jpeg_label_slide) as tf:
        page = tf.pages[1]
        assert not page.is_tiled and page.rowsperstrip >= page.imagelength
        (offset,), (count,) = page.dataoffsets, page.databytecounts
        tf.filehandle.seek(offset)
        strip = tf.filehandle.read(count)
    ds = pydicom.dcmread(out / "label.dcm")
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert (int(ds.NumberOfFrames), ds.Rows, ds.Columns) == (1, 150, 301)
    (frame,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert frame == strip + b"\x00" * (len(strip) % 2)


# 12. a truncated DICOM file says so


@pytest.mark.parametrize(
    ("keep", "needles"),
    [
        (-3000, ("ends inside Pixel Data, which starts at byte",)),
        (600, ("ends inside attribute", "whose value would end at byte")),
        (1500, ("before any Pixel Data",)),
    ],
    ids=["in-pixel-data", "in-an-attribute", "between-attributes"],
)
@pytest.mark.parametrize("command", ["convert", "info"])
def test_truncated_dicom_says_truncated(
    keep: int, needles: tuple[str, ...], command: str, dicom: Path, tmp_path: Path
) -> None:
    data = (dicom / "level0.dcm").read_bytes()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(data[:keep])
    size = len(data[:keep])
    args = ("convert", cut, tmp_path / "out.ome.tiff") if command == "convert" else ("info", cut)
    proc = run_cli(*args)
    _one_error(proc, 2, "the file is truncated", f"it has {size} bytes", "fetch it again", *needles)
    assert "has no Pixel Data" not in proc.stderr and "AttributeError" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.dcm"]


# 13. check --against: OME-TIFF with OME-TIFF, lossless re-encoding, codec names


@pytest.fixture(scope="module")
def lzw_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiled LZW: DICOM cannot hold it, so convert re-encodes it losslessly (JPEG 2000)."""
    tmp = tmp_path_factory.mktemp("lzw")
    return samples.write_tifffile(tmp / "lzw.ome.tif", size=(600, 500), levels=2, compression="lzw")


def test_check_ome_tiff_against_itself_and_its_round_trip(slide: Path, tmp_path: Path) -> None:
    proc = run_cli("check", slide, "--against", slide)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Pixel Spacing" not in proc.stdout
    dicom, back = tmp_path / "dicom", tmp_path / "back.ome.tiff"
    run_cli("convert", slide, dicom, "-q", check=True)
    run_cli("convert", dicom, back, "-q", check=True)
    proc = run_cli("check", back, "--against", slide)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "Pixel Spacing" not in proc.stdout


def test_check_ome_tiff_against_another_slide_finds_the_differences(
    lzw_slide: Path, tmp_path: Path
) -> None:
    other = samples.write_tifffile(
        tmp_path / "other.ome.tif", size=(600, 500), levels=2, compression="lzw", pixel_size=0.25
    )
    proc = run_cli("check", other, "--against", lzw_slide)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "tiles differ from the source" in proc.stdout
    assert "PhysicalSizeX/Y is 0.25 x 0.25 µm, the source's 0.5 x 0.5 µm" in proc.stdout


def test_check_accepts_omedicom_lossless_re_encoding_and_names_codecs(
    lzw_slide: Path, tmp_path: Path
) -> None:
    dicom, back = tmp_path / "dicom", tmp_path / "back.ome.tiff"
    run_cli("convert", lzw_slide, dicom, "-q", check=True)
    run_cli("convert", dicom, back, "-q", check=True)
    for converted, source in ((dicom, lzw_slide), (back, lzw_slide), (back, dicom)):
        proc = run_cli("check", converted, "--against", source)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "1.2.840.10008" not in proc.stdout  # no raw transfer syntax UID
        assert "native" not in proc.stdout.replace("native (uncompressed)", "")
    proc = run_cli("check", dicom, "--against", lzw_slide)
    assert "re-encoded losslessly as JPEG 2000 lossless (the source's are LZW)" in proc.stdout
    assert "compared by their decoded samples" in proc.stdout


# 14. check reports damaged TIFFs as findings, never as an internal error


def _damaged(slide: Path, tmp_path: Path, how: str) -> Path:
    data = bytearray(slide.read_bytes())
    with tifffile.TiffFile(slide) as tf:
        first = tf.pages[0].offset
    if how == "tile-width-0":
        out = tmp_path / "tw0.ome.tif"
        out.write_bytes(data)
        with tifffile.TiffFile(out, mode="r+b") as tf:
            tf.pages[0].tags["TileWidth"].overwrite(0)
        return out
    if how == "ifd-tag-count":
        data[first : first + 8] = b"\x00" * 7 + b"\x01"  # BigTIFF: 2**56 entries
    elif how == "cut-short":
        data = data[: len(data) // 3]
    elif how == "no-ome-xml":
        data = data[:200]
    out = tmp_path / f"{how}.ome.tif"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize("how", ["tile-width-0", "ifd-tag-count", "cut-short", "no-ome-xml"])
def test_check_reports_a_damaged_tiff_as_a_finding(
    how: str, slide: Path, dicom: Path, tmp_path: Path
) -> None:
    bad = _damaged(slide, tmp_path, how)
    for args in ((bad,), (bad, "--against", slide), (dicom, "--against", bad)):
        proc = run_cli("check", *args)
        assert proc.returncode in (1, 2), proc.stdout + proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        assert "error " in proc.stdout and "FAIL" in proc.stdout, proc.stdout
        assert all(line.startswith("omedicom: ") for line in proc.stderr.splitlines())
    if how == "tile-width-0":
        proc = run_cli("check", bad)
        assert "OME-tiff-structure" in proc.stdout and "TileWidth is 0" in proc.stdout


# 15. the README lists every Debian package the test command installs and no missing file


def test_readme_lists_the_test_packages_and_links_no_missing_file() -> None:
    import re

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    script = (REPO / "scripts" / "test.sh").read_text()
    packages = re.search(r'^PACKAGES="([^"]+)"', script, re.M).group(1).split()
    assert "dicom3tools" in packages  # the script names its packages, and the README each
    for package in packages:
        assert f"`{package}`" in readme, package
    assert "PEERS.md" not in readme
    assert "never decoded and re-encoded" not in readme
    for link in re.findall(r"\]\(([^)#]+)\)", readme):
        if not link.startswith("http"):
            assert (REPO / link).exists(), link
