"""``omedicom check OUT.ome.tiff --against SOURCE`` on DICOM corpus files from other tools.

What a DICOM -> OME-TIFF conversion cannot keep is not a round-trip error: DICOM frames that are
not multiples of 16 must be re-tiled (TIFF 6.0 section 15), and a source without an Optical
Path Sequence or Pixel Spacing has none to carry. Each relaxed rule still fails on a truly broken
conversion: changed tile content, a changed level size, an unforced or lossy re-tiling, an extra
channel."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import tifffile
from conftest import run_cli
from test_conformance_support import ome_xml, run, set_ome_xml

from conformance.findings import Severity
from conformance.report import Report

#: Corpus DICOM files (MANIFEST.md names) whose conversion must compare clean, and the notes
#: the comparison gives: a forced re-tiling (RT-levels) and an implied optical path (RT-channels).
CLEAN = {
    "highdicom__sm_image.dcm": {"RT-levels"},
    "highdicom__sm_image_jpegls.dcm": {"RT-levels"},
    "pathml__small_dicom.dcm": {"RT-levels", "RT-channels", "RT-pixel-size"},
    "wsi-to-dicom-converter__jpeg.dicom": {"RT-channels"},
    "wsi-to-dicom-converter__jpeg2000.dicom": {"RT-channels"},
}


@pytest.fixture(scope="module")
def converted(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each CLEAN corpus file converted once to OME-TIFF (read-only: tests copy before editing)."""
    out = tmp_path_factory.mktemp("rt_corpus")
    done = {}
    for name in CLEAN:
        target = out / f"{name}.ome.tiff"
        run_cli("convert", "--pyramid", "keep", corpus / "dicom" / name, target, "-q", check=True)
        done[name] = target
    return done


def _copy(path: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(path, tmp_path / path.name))


def _errors(report: Report) -> list:
    return [f for f in report.findings if f.id.startswith("RT-") and f.severity is Severity.ERROR]


def _notes(report: Report) -> set[str]:
    return {f.id for f in report.findings if f.id.startswith("RT-") and f.severity is Severity.INFO}


@pytest.mark.parametrize("name", sorted(CLEAN))
def test_corpus_conversion_matches_its_source(
    name: str, corpus: Path, converted: dict[str, Path]
) -> None:
    report = run(converted[name], against=corpus / "dicom" / name)
    assert not _errors(report), _errors(report)
    assert _notes(report) == CLEAN[name], report.sorted()


# -- re-tiling ----------------------------------------------------------------------------------


def test_retiled_tile_content_is_still_compared(
    corpus: Path, converted: dict[str, Path], tmp_path: Path
) -> None:
    """One sample changed inside the 64 x 64 TIFF tile: the 10 x 10 source frame holding it
    (column 0, row 1 of a 5 x 5 grid: frame 6) differs."""
    name = "highdicom__sm_image.dcm"
    out = _copy(converted[name], tmp_path)
    with tifffile.TiffFile(out) as tf:
        page = tf.pages[0]
        assert page.compression == 1 and page.tilewidth == 64 and page.samplesperpixel == 3
        offset = page.dataoffsets[0] + (12 * 64 + 3) * 3  # row 12, column 3, red
    with open(out, "r+b") as fh:
        fh.seek(offset)
        value = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([value ^ 0xFF]))
    report = run(out, against=corpus / "dicom" / name)
    (hit,) = _errors(report)
    assert hit.id == "RT-tiles" and hit.location.frame == 6, hit.message
    assert "1 of 25 tiles" in hit.message


def test_retiled_level_with_another_size_is_an_error(
    corpus: Path, converted: dict[str, Path], tmp_path: Path
) -> None:
    name = "highdicom__sm_image.dcm"
    out = _copy(converted[name], tmp_path)
    with tifffile.TiffFile(out, mode="r+b") as tf:
        tf.pages[0].tags["ImageWidth"].overwrite(48)
    report = run(out, against=corpus / "dicom" / name)
    assert any(f.id == "RT-levels" and "48 x 50" in f.message for f in _errors(report)), (
        report.sorted()
    )


def _rewrite(src: Path, dst: Path, tile: int, compression: str) -> Path:
    """The OME-TIFF's pixels and OME-XML written again with other tiles and compression."""
    xml = ome_xml(src)
    pixels = tifffile.imread(src)
    tifffile.imwrite(
        dst,
        pixels,
        tile=(tile, tile),
        compression=compression,
        photometric="rgb",
        description=xml.encode("utf-8"),
        metadata=None,
    )
    return dst


def test_retiled_lossily_is_an_error(
    corpus: Path, converted: dict[str, Path], tmp_path: Path
) -> None:
    """Re-tiling forced, but the new tiles are lossy JPEG: the source's samples are lost."""
    name = "highdicom__sm_image.dcm"
    out = _rewrite(converted[name], tmp_path / "jpeg.ome.tiff", 64, "jpeg")
    report = run(out, against=corpus / "dicom" / name)
    assert "RT-levels" in _notes(report)
    assert any(f.id == "RT-tiles" and "not lossless" in f.message for f in _errors(report)), (
        report.sorted()
    )


def test_a_retiling_not_forced_is_an_error(
    corpus: Path, converted: dict[str, Path], tmp_path: Path
) -> None:
    """The source's 256 x 256 JPEG frames could be TIFF tiles as they are: 128 x 128 tiles,
    even lossless ones, are not a re-tiling TIFF forces."""
    name = "wsi-to-dicom-converter__jpeg.dicom"
    out = _rewrite(converted[name], tmp_path / "small_tiles.ome.tiff", 128, "zlib")
    report = run(out, against=corpus / "dicom" / name)
    assert any(f.id == "RT-levels" and "128 x 128 tiles" in f.message for f in _errors(report)), (
        report.sorted()
    )
    assert "RT-levels" not in _notes(report)


# -- channels and pixel size of a source that lacks them -----------------------------------------


def test_an_extra_channel_against_a_source_without_optical_paths(
    corpus: Path, converted: dict[str, Path], tmp_path: Path
) -> None:
    """One implied optical path: two OME channels are one too many."""
    name = "wsi-to-dicom-converter__jpeg.dicom"
    out = set_ome_xml(
        _copy(converted[name], tmp_path),
        lambda xml: re.sub(
            r'(<Channel ID="Channel:0:0"[^>]*/>)',
            r'\1<Channel ID="Channel:0:1" SamplesPerPixel="3"/>',
            xml,
            count=1,
        ),
    )
    report = run(out, against=corpus / "dicom" / name)
    assert any(
        f.id == "RT-channels" and "1 optical path(s) for 2 OME channel(s)" in f.message
        for f in _errors(report)
    ), report.sorted()
