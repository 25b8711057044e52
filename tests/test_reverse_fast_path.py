"""The DICOM -> OME-TIFF path's shortcuts give what the general path gives (issue 13):
the frame index read from the Basic/Extended Offset Table (``bridge.dicom.frames``) and a
carried OME-XML updated with lxml instead of ome-types (``bridge.ometiff.omexml_writer``)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import ome_types
import pydicom
import pytest
import tifffile
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from bridge.dicom import encaps, frames

from .conftest import run_cli
from .samples import write_tifffile

# odd lengths get a pad byte after the EOI (FFD9 00), which the index leaves out
FRAMES = [b"\xff\xd8" + bytes([i + 1]) * (100 + i) + b"\xff\xd9" for i in range(7)]


def _write(path: Path, extended: bool) -> None:
    ds = Dataset()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.NumberOfFrames = len(FRAMES)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    with open(path, "wb") as fh:
        pydicom.dcmwrite(fh, ds, enforce_file_format=True)
        parts = ((memoryview(f)[:2], memoryview(f)[2:]) for f in FRAMES)
        encaps.write_encapsulated(fh, parts, len(FRAMES), extended=extended)


def _frame_bytes(index: frames.FrameIndex) -> list[bytes]:
    with open(index.path, "rb") as fh:
        return [b"".join(os.pread(fh.fileno(), n, o) for o, n in parts) for parts in index.ranges]


def _scan_only(path: Path, monkeypatch: pytest.MonkeyPatch) -> frames.FrameIndex:
    with monkeypatch.context() as m:
        m.setattr(frames, "_frames_from_table", lambda *a: None)
        return frames.index_frames(path, len(FRAMES), 0)


@pytest.mark.parametrize("extended", [False, True])
def test_offset_table_index_equals_the_item_scan(
    tmp_path: Path, extended: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.dcm"
    _write(path, extended)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    eot, position, _ = frames._pixel_data_position(str(path), ds)
    tabled = frames._frames_from_table(str(path), eot, position, len(FRAMES), path.stat().st_size)
    assert tabled is not None  # the table was used
    index = frames.index_frames(path, len(FRAMES), 0)
    assert index.ranges == tabled == _scan_only(path, monkeypatch).ranges
    assert _frame_bytes(index) == FRAMES


def test_a_wrong_basic_offset_table_falls_back_to_the_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.dcm"
    _write(path, extended=False)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    _, position, _ = frames._pixel_data_position(str(path), ds)
    data = bytearray(path.read_bytes())
    third = position + 8 + 4 * 3  # the 4th frame's offset, moved 2 bytes into the 3rd frame
    (offset,) = struct.unpack_from("<I", data, third)
    struct.pack_into("<I", data, third, offset - 2)
    path.write_bytes(bytes(data))
    eot, position, _ = frames._pixel_data_position(str(path), ds)
    assert frames._frames_from_table(str(path), eot, position, len(FRAMES), len(data)) is None
    index = frames.index_frames(path, len(FRAMES), 0)
    assert index.ranges == _scan_only(path, monkeypatch).ranges
    assert _frame_bytes(index) == FRAMES


_CONVERT = """
import json, sys
from bridge import cli
from bridge.ometiff import omexml_writer
if sys.argv[3] == "ome-types":
    omexml_writer._update_carried_lxml = lambda *a: None
assert cli.run(cli.parse(["convert", sys.argv[1], sys.argv[2]])) == 0
print(json.dumps("ome_types" in sys.modules))
"""


def test_carried_ome_xml_is_updated_without_ome_types(tmp_path: Path) -> None:
    src = write_tifffile(tmp_path / "src.ome.tiff", size=(600, 500), levels=2)
    run_cli("convert", src, tmp_path / "dcm", check=True)
    docs = {}
    for way in ("lxml", "ome-types"):
        out = tmp_path / f"{way}.ome.tiff"
        proc = subprocess.run(
            [sys.executable, "-c", _CONVERT, str(tmp_path / "dcm"), str(out), way],
            capture_output=True,
            text=True,
            check=True,
        )
        imported = json.loads(proc.stdout.strip().splitlines()[-1])
        assert imported is (way == "ome-types")
        with tifffile.TiffFile(out) as tif:
            docs[way] = ome_types.from_xml(tif.pages[0].description)
    fast, slow = docs["lxml"], docs["ome-types"]
    data = fast.images[0].pixels.tiff_data_blocks
    assert [(d.ifd, d.plane_count, d.uuid.file_name) for d in data] == [(0, 1, "lxml.ome.tiff")]
    assert data[0].uuid.value == fast.uuid and fast.creator == slow.creator
    same = "urn:uuid:00000000-0000-0000-0000-000000000000"
    for doc in (fast, slow):
        doc.uuid = same
        for image in doc.images:
            for block in image.pixels.tiff_data_blocks:
                block.uuid.value, block.uuid.file_name = same, "x"
    assert fast == slow
