"""Streamed Pixel Data: offsets, padding, and the Extended Offset Table, read back by pydicom."""

from __future__ import annotations

import errno
import os
import random
import struct
import threading
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.uid import JPEGBaseline8Bit, SecondaryCaptureImageStorage, generate_uid

from bridge.dicom import encaps
from bridge.model import FileRange

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


# -- the batched copy: file ranges read into buffers, written at their place -------------------

ITEM_TAG = b"\xfe\xff\x00\xe0"
PREFIX = b"DICM-HEADER-STAND-IN"


def _source_frames(path: Path, fd: int) -> tuple[list[tuple], list[bytes]]:
    """Frames as tile sources hand them out, over a file of random bytes, and the bytes each
    frame stands for: single ranges back to back in the source (one read for a run), a gap,
    ranges with bytes spliced in after the first two bytes (merged JPEG tables), plain bytes,
    and parts larger than a buffer (a range: copied by the kernel; bytes: written at once)."""
    data = random.Random(7).randbytes(20_000)
    path.write_bytes(data)
    parts: list[tuple] = []
    expected: list[bytes] = []
    offset = 0
    rng = random.Random(11)
    for i in range(60):
        count = rng.randrange(3, 180)
        if i % 7 == 3:
            offset += rng.randrange(1, 50)  # not back to back with the previous range
        if i % 5 == 2:
            middle = bytes([i]) * (i % 4 + 1)
            parts.append((FileRange(fd, offset, 2), middle, FileRange(fd, offset + 2, count - 2)))
            expected.append(data[offset : offset + 2] + middle + data[offset + 2 : offset + count])
        elif i % 11 == 6:
            parts.append((data[offset : offset + count],))
            expected.append(data[offset : offset + count])
        else:
            parts.append((FileRange(fd, offset, count),))
            expected.append(data[offset : offset + count])
        offset += count
    big = data[offset : offset + 1001]
    parts.insert(10, (FileRange(fd, offset, 1001),))
    expected.insert(10, big)
    parts.insert(20, (big[:700],))
    expected.insert(20, big[:700])
    return parts, expected


def _expected_encapsulated(frames: list[bytes], extended: bool) -> bytes:
    """PS3.5 A.4 written out by hand: items of even length, offset table, delimiter."""
    items = b""
    offsets = []
    lengths = []
    for frame in frames:
        value = frame + b"\x00" * (len(frame) & 1)
        offsets.append(len(items))
        lengths.append(len(value))
        items += ITEM_TAG + struct.pack("<I", len(value)) + value
    out = PREFIX
    n = len(frames)
    if extended:
        out += b"\xe0\x7f\x01\x00OV\x00\x00" + struct.pack("<I", 8 * n)
        out += struct.pack(f"<{n}Q", *offsets)
        out += b"\xe0\x7f\x02\x00OV\x00\x00" + struct.pack("<I", 8 * n)
        out += struct.pack(f"<{n}Q", *lengths)
    out += b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
    bot = b"" if extended else struct.pack(f"<{n}I", *offsets)
    out += ITEM_TAG + struct.pack("<I", len(bot)) + bot
    return out + items + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@pytest.fixture
def small_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Buffers of 256 bytes, two of them: many flushes, runs cut at buffer ends, reuse."""
    monkeypatch.setattr(encaps, "BUFFER_BYTES", 256)
    monkeypatch.setattr(encaps, "BUFFERS", 2)


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize("extended", [False, True])
def test_batched_copy_writes_exactly_the_items(
    tmp_path: Path, small_buffers: None, overlap: bool, extended: bool
) -> None:
    """Every part lands at its place, whether buffers are written on a second thread or not:
    the output equals the encapsulation written out by hand, byte for byte."""
    fd = os.open(tmp_path / "src", os.O_RDWR | os.O_CREAT)
    try:
        frames, expected = _source_frames(tmp_path / "src", fd)
        seen: list[int] = []
        with open(tmp_path / "out", "wb") as fh:
            fh.write(PREFIX)
            lengths = encaps.write_encapsulated(
                fh, frames, len(frames), extended=extended, progress=seen.append, overlap=overlap
            )
            assert fh.tell() == len(_expected_encapsulated(expected, extended))
    finally:
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == _expected_encapsulated(expected, extended)
    assert list(lengths) == [len(f) + (len(f) & 1) for f in expected]
    assert sum(seen) == len(frames)


@pytest.mark.parametrize("overlap", [False, True])
def test_batched_copy_of_native_frames(tmp_path: Path, small_buffers: None, overlap: bool) -> None:
    data = random.Random(3).randbytes(3000)
    (tmp_path / "src").write_bytes(data)
    fd = os.open(tmp_path / "src", os.O_RDONLY)
    try:
        # 9 frames of 301 bytes: ranges, one frame of two ranges, one of bytes (odd total)
        frames = [(FileRange(fd, 301 * i, 301),) for i in range(9)]
        frames[4] = (FileRange(fd, 301 * 4, 100), FileRange(fd, 301 * 4 + 100, 201))
        frames[6] = (data[301 * 6 : 301 * 7],)
        with open(tmp_path / "out", "wb") as fh:
            fh.write(PREFIX)
            encaps.write_native(fh, frames, 301, 9, overlap=overlap)
    finally:
        os.close(fd)
    header = b"\xe0\x7f\x10\x00OB\x00\x00" + struct.pack("<I", 301 * 9 + 1)
    assert (tmp_path / "out").read_bytes() == PREFIX + header + data[: 301 * 9] + b"\x00"


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pixel-data-writer"]


@pytest.mark.parametrize("overlap", [False, True])
def test_a_source_cut_short_is_an_eof_error(
    tmp_path: Path, small_buffers: None, overlap: bool
) -> None:
    (tmp_path / "src").write_bytes(bytes(1000))
    fd = os.open(tmp_path / "src", os.O_RDONLY)
    try:
        frames = [(FileRange(fd, 100 * i, 100),) for i in range(12)]  # the last two: past the end
        with pytest.raises(EOFError), open(tmp_path / "out", "wb") as fh:
            encaps.write_encapsulated(fh, frames, 12, extended=False, overlap=overlap)
    finally:
        os.close(fd)
    assert not _writer_threads()


def test_a_failed_write_on_the_writer_thread_is_raised(
    tmp_path: Path, small_buffers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = encaps._pwrite_all

    def full_disk(fd: int, data, position: int) -> None:
        if threading.current_thread().name == "pixel-data-writer" and position > 2000:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data, position)

    monkeypatch.setattr(encaps, "_pwrite_all", full_disk)
    frames = [(bytes([i]) * 97,) for i in range(100)]
    with pytest.raises(OSError, match="No space"), open(tmp_path / "out", "wb") as fh:
        encaps.write_encapsulated(fh, frames, 100, extended=False, overlap=True)
    assert not _writer_threads()


def test_a_failing_source_stops_the_writer_thread(tmp_path: Path, small_buffers: None) -> None:
    def frames():
        for i in range(50):
            yield (bytes([i]) * 90,)
        raise RuntimeError("tile source broke")

    with pytest.raises(RuntimeError, match="broke"), open(tmp_path / "out", "wb") as fh:
        encaps.write_encapsulated(fh, frames(), 80, extended=False, overlap=True)
    assert not _writer_threads()


def test_more_frames_than_declared_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="declared"), open(tmp_path / "a", "wb") as fh:
        encaps.write_encapsulated(fh, _parts(FRAMES), len(FRAMES) - 1, extended=False)
