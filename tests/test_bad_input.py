"""Bad input gets one clear message, a non-zero exit and no files left behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import samples
import tifffile
from conftest import run_cli

from bridge.errors import InputError


def _assert_refused(src: Path, tmp_path: Path, code: int, *needles: str, args=()) -> str:
    out = tmp_path / "out"
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_cli("convert", src, out, *args)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("omedicom: error: "), proc.stderr
    assert len([line for line in lines if line.startswith("omedicom: error")]) == 1
    for needle in needles:
        assert needle in proc.stderr, proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary left over
    return proc.stderr


def test_not_a_tiff(tmp_path: Path) -> None:
    src = tmp_path / "notes.ome.tif"
    src.write_text("this is not an image\n")
    _assert_refused(src, tmp_path, 2, "not a TIFF or DICOM file", str(src))


def test_empty_file(tmp_path: Path) -> None:
    src = tmp_path / "empty.ome.tif"
    src.write_bytes(b"")
    _assert_refused(src, tmp_path, 2, "empty")


def test_plain_tiff_without_ome_xml(tmp_path: Path) -> None:
    src = tmp_path / "plain.tif"
    tifffile.imwrite(src, samples.tissue(64, 64), photometric="rgb", tile=(16, 16))
    # read as a generic TIFF (bridge/wsitiff), which has no pixel size to give DICOM
    _assert_refused(src, tmp_path, 2, "no physical pixel size", "--pixel-size")


def test_truncated_file(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "cut.ome.tif", size=(600, 500))
    data = src.read_bytes()
    src.write_bytes(data[: len(data) * 2 // 3])
    _assert_refused(src, tmp_path, 2, "truncated", "again")


def test_truncated_tile_data(tmp_path: Path) -> None:
    """Tile byte counts that reach past the end of the file (the tile data was cut short)."""
    src = samples.write_tifffile(tmp_path / "short.ome.tif", size=(600, 500))
    size = src.stat().st_size
    with tifffile.TiffFile(src, mode="r+b") as tf:
        page = tf.pages[0]
        counts = list(page.databytecounts)
        counts[-1] = size - page.dataoffsets[-1] + 1000  # the last tile needs bytes past EOF
        page.tags["TileByteCounts"].overwrite(counts)
    assert src.stat().st_size == size
    _assert_refused(src, tmp_path, 2, "truncated", "tile", "fetch it again")


def test_ome_xml_disagrees_with_ifds(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "liar.ome.tif", size=(600, 500))
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    assert 'SizeX="600"' in xml
    tifffile.tiffcomment(src, xml.replace('SizeX="600"', 'SizeX="640"').encode())
    _assert_refused(src, tmp_path, 2, "OME-XML says 640×500", "600×500", "disagrees")


def test_ome_xml_with_missing_planes(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "planes.ome.tif", size=(300, 200), levels=2)
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    bad = xml.replace('SizeZ="1"', 'SizeZ="4"')
    assert bad != xml
    tifffile.tiffcomment(src, bad.encode())
    _assert_refused(src, tmp_path, 2, "4 planes", "disagrees")


def test_no_physical_size_says_how_to_pass_one(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "nosize.ome.tif", size=(300, 200), pixel_size=None)
    _assert_refused(src, tmp_path, 2, "no physical pixel size", "--pixel-size")
    out = tmp_path / "fixed"
    proc = run_cli("convert", src, out, "--pixel-size", "0.3", "-q")
    assert proc.returncode == 0, proc.stderr
    assert len(list(out.glob("*.dcm"))) == 3


@pytest.mark.parametrize("dtype", ["int8", "int16", "float32"])
def test_signed_and_float_samples_are_refused_clearly(tmp_path: Path, dtype: str) -> None:
    import numpy as np

    src = tmp_path / "signed.ome.tif"
    data = (samples.tissue(64, 96)[..., 0].astype(np.int16) - 128).astype(dtype)
    tifffile.imwrite(
        src,
        data,
        tile=(32, 32),
        metadata={"axes": "YX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5},
    )
    _assert_refused(src, tmp_path, 3, "unsigned integers only", "cannot be kept")


def test_corpus_signed_file_is_refused(corpus: Path, tmp_path: Path) -> None:
    src = corpus / "ome-tiff" / "viv__multi-channel.ome.tif"
    _assert_refused(src, tmp_path, 3, "int samples (8-bit)", args=("--pixel-size", "1"))


def test_existing_output_is_not_overwritten(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "ok.ome.tif", size=(300, 200), levels=2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = run_cli("convert", src, out)
    assert proc.returncode == 4
    assert "--overwrite" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    proc = run_cli("convert", src, out, "--overwrite", "-q")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["level0.dcm", "level1.dcm"]


def test_source_shrinking_mid_conversion_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    """The source file is cut short after level 0 has been written (another process
    truncating it): a clear error, the staged output removed, DST never created."""
    from bridge import convert
    from bridge.dicom import writer

    src = samples.write_tifffile(tmp_path / "mid.ome.tif", size=(600, 500), levels=3)
    out = tmp_path / "out"
    real_write_file = writer.SlideWriter._write_file
    staged: list[str] = []

    def write_then_cut(self, path, *args):
        real_write_file(self, path, *args)
        if path.name == "level0.dcm":
            staged.extend(sorted(p.name for p in path.parent.iterdir()))
            os.truncate(src, 4096)

    monkeypatch.setattr(writer.SlideWriter, "_write_file", write_then_cut)
    with pytest.raises(InputError, match="truncated"):
        convert.convert(src, out)
    assert staged == ["level0.dcm"]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mid.ome.tif"]


def test_bad_metadata_file(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "m.ome.tif", size=(300, 200), levels=1)
    meta = tmp_path / "meta.json"
    meta.write_text('{"PatientNmae": "typo"}')
    _assert_refused(src, tmp_path, 2, "unknown keys", "PatientNmae", args=("--metadata", meta))


def test_companion_folder_and_file_say_what_to_give(corpus: Path, tmp_path: Path) -> None:
    """A multi-file OME-TIFF set (viv's companion folder) is not read as DICOM: the folder
    names its TIFF files, and the companion OME-XML file is called what it is."""
    folder = corpus / "ome-tiff" / "viv__companion-multifile"
    proc = run_cli("convert", folder, tmp_path / "out")
    assert proc.returncode == 2
    assert "OME companion file (multifile.companion.ome)" in proc.stderr
    assert "multifile-Z1.ome.tiff" in proc.stderr
    proc = run_cli("convert", folder / "multifile.companion.ome", tmp_path / "out")
    assert proc.returncode == 3
    assert "companion file of a multi-file OME-TIFF set" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
