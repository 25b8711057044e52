"""Streamed Pixel Data: offsets, padding, and the Extended Offset Table, read back by pydicom."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from bridge.dicom import encaps

FRAMES = [b"\xff\xd8" + bytes([i]) * (100 + i) + b"\xff\xd9" for i in range(7)]  # odd and even


def _parts(frames: list[bytes]):
    """Frames split into parts, as tile sources hand them out (SOI, rest)."""
    return ((memoryview(f)[:2], memoryview(f)[2:]) for f in frames)


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
        encaps.write_encapsulated(fh, _parts(FRAMES), len(FRAMES), extended=extended)


@pytest.mark.parametrize("extended", [False, True])
def test_frames_read_back_through_the_offset_table(tmp_path: Path, extended: bool) -> None:
    path = tmp_path / "f.dcm"
    _write(path, extended)
    ds = pydicom.dcmread(path)
    if extended:
        assert "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds
        offsets = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        assert len(ds.ExtendedOffsetTable) == 8 * len(FRAMES)
    else:
        assert "ExtendedOffsetTable" not in ds
        offsets = None
    for i, frame in enumerate(FRAMES):
        got = get_frame(ds.PixelData, i, number_of_frames=len(FRAMES), extended_offsets=offsets)
        assert got.rstrip(b"\x00") == frame  # pydicom returns the padded item value
        assert len(got) % 2 == 0


def test_bot_is_chosen_until_it_cannot_address_the_data() -> None:
    assert not encaps.needs_extended_offsets([1000] * 10)
    assert not encaps.needs_extended_offsets([2**31, 2**31 - 100])  # last offset < 2**32
    assert encaps.needs_extended_offsets([2**31, 2**31, 10])  # third frame starts past 4 GiB
    assert encaps.needs_extended_offsets([10, None])


def test_frame_count_mismatch_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="declared"), open(tmp_path / "a", "wb") as fh:
        encaps.write_encapsulated(fh, _parts(FRAMES), len(FRAMES) + 1, extended=False)
    with pytest.raises(ValueError, match="not 4"), open(tmp_path / "b", "wb") as fh:
        encaps.write_native(fh, [(b"abc",)], 4, 1)
