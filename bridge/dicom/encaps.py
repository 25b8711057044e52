"""Stream Pixel Data to disk, one frame at a time (DICOM PS3.5 A.4 and 8.1.1).

The dataset header is written by pydicom; Pixel Data (7FE0,0010) and, when needed, the Extended
Offset Table (7FE0,0001) and its Lengths (7FE0,0002) are appended here by hand, because they
are the last elements of the dataset. Offsets are filled in by seeking back once all frames are
written, so frames of unknown length stream too and no frame is held longer than it is written.

* Encapsulated: one fragment per frame; odd-length frames get one trailing 0x00 (item values
  have even length). A Basic Offset Table is used while the last offset fits 32 bits; beyond
  that the BOT stays empty and an Extended Offset Table (64-bit) is written instead.
* Native: Pixel Data with an explicit length, frames back to back, one pad byte if the total is
  odd.
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from collections.abc import Callable, Iterable
from typing import BinaryIO

from ..model import FileRange, Frame

ITEM = b"\xfe\xff\x00\xe0"
SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
PIXEL_DATA = b"\xe0\x7f\x10\x00"
EOT = b"\xe0\x7f\x01\x00"
EOT_LENGTHS = b"\xe0\x7f\x02\x00"
_UNDEFINED = 0xFFFFFFFF
_BOT_LIMIT = 2**32


def _long_header(tag: bytes, vr: bytes, length: int) -> bytes:
    """Explicit VR little endian header of an element with a 4-byte length (OB, OW, OV)."""
    return tag + vr + b"\x00\x00" + struct.pack("<I", length)


def needs_extended_offsets(frame_sizes: Iterable[int | None]) -> bool:
    """Whether a Basic Offset Table cannot address these frames (last offset >= 2**32).

    Unknown sizes (None) count as the worst case, so the extended table is chosen.
    """
    total = 0
    last = 0
    for size in frame_sizes:
        if size is None:
            return True
        last = total
        total += 8 + size + (size & 1)
    return last >= _BOT_LIMIT


_IOV_MAX = 512  # iovecs per writev call (Linux IOV_MAX is 1024)
_BATCH_BYTES = 8 << 20


class _VectorWriter:
    """Appends buffers to a file descriptor with few ``writev`` calls and no joining copies."""

    def __init__(self, fd: int, position: int):
        self.fd = fd
        self.position = position
        self._iov: list[bytes | memoryview] = []
        self._pending = 0

    def add(self, buffer: bytes | memoryview | FileRange) -> None:
        if isinstance(buffer, FileRange):
            self.flush()
            self._copy(buffer)
        elif len(buffer):
            self._iov.append(buffer)
            self._pending += len(buffer)
            if len(self._iov) >= _IOV_MAX or self._pending >= _BATCH_BYTES:
                self.flush()

    _kernel_copy = hasattr(os, "copy_file_range")

    def _copy(self, part: FileRange) -> None:
        offset, left = part.offset, part.count
        while left and _VectorWriter._kernel_copy:
            try:
                n = os.copy_file_range(part.fd, self.fd, left, offset)
            except OSError:  # e.g. EXDEV/EINVAL on some file systems: copy through memory
                _VectorWriter._kernel_copy = False
                break
            if n == 0:
                raise EOFError(f"the source ends before offset {offset + left}")
            offset += n
            left -= n
            self.position += n
        while left:
            data = os.pread(part.fd, min(left, 8 << 20), offset)
            if not data:
                raise EOFError(f"the source ends before offset {offset + left}")
            os.write(self.fd, data)  # regular files: written whole
            offset += len(data)
            left -= len(data)
            self.position += len(data)

    def tell(self) -> int:
        """File position after everything added so far."""
        return self.position + self._pending

    def flush(self) -> None:
        iov, start = self._iov, 0
        while start < len(iov):
            written = os.writev(self.fd, iov[start:] if start else iov)
            self.position += written
            # skip what was written; keep the rest of a partly written buffer
            while start < len(iov) and written >= len(iov[start]):
                written -= len(iov[start])
                start += 1
            if written:
                iov[start] = memoryview(iov[start])[written:]
        self._iov = []
        self._pending = 0


def _frame_length(frame: Frame) -> int:
    return sum(len(part) for part in frame)


def write_encapsulated(
    fh: BinaryIO,
    frames: Iterable[Frame],
    n_frames: int,
    *,
    extended: bool,
    progress: Callable[[int], None] | None = None,
) -> array:
    """Append encapsulated Pixel Data (and the EOT when ``extended``); return item lengths.

    ``fh`` must be a real file (``fileno``, seekable); it is flushed first and positioned at
    the end of the Pixel Data afterwards.
    """
    fh.flush()
    fd = fh.fileno()
    out = _VectorWriter(fd, os.lseek(fd, 0, os.SEEK_CUR))
    eot_pos = -1
    if extended:
        out.add(_long_header(EOT, b"OV", 8 * n_frames))
        eot_pos = out.tell()
        out.add(bytes(8 * n_frames))
        out.add(_long_header(EOT_LENGTHS, b"OV", 8 * n_frames))
        out.add(bytes(8 * n_frames))
    out.add(_long_header(PIXEL_DATA, b"OB", _UNDEFINED))
    bot_size = 0 if extended else 4 * n_frames
    out.add(ITEM + struct.pack("<I", bot_size))
    bot_pos = out.tell()
    out.add(bytes(bot_size))
    first_item = out.tell()
    offset = 0
    offsets = array("Q")  # 8 bytes a frame, not a Python int object each
    lengths = array("Q")
    pad = b"\x00"
    for frame in frames:
        n = _frame_length(frame)
        padded = n + (n & 1)
        offsets.append(offset)
        lengths.append(padded)
        out.add(ITEM + struct.pack("<I", padded))
        for part in frame:
            out.add(part)
        if n & 1:
            out.add(pad)
        offset += 8 + padded
        if progress:
            progress(1)
    if len(offsets) != n_frames:
        raise ValueError(f"{len(offsets)} frames were written, {n_frames} were declared")
    out.add(SEQ_DELIMITER)
    out.flush()
    assert out.position == first_item + offset + len(SEQ_DELIMITER)
    if extended:
        if sys.byteorder != "little":
            offsets.byteswap()
            lengths.byteswap()
        os.pwrite(fd, offsets.tobytes(), eot_pos)
        os.pwrite(fd, lengths.tobytes(), eot_pos + 8 * n_frames + 12)
    else:
        if offsets and offsets[-1] >= _BOT_LIMIT:
            raise ValueError("a Basic Offset Table cannot address these frames")
        bot = array("I", offsets)
        if sys.byteorder != "little":
            bot.byteswap()
        os.pwrite(fd, bot.tobytes(), bot_pos)
    fh.seek(out.position)
    return lengths


def write_native(
    fh: BinaryIO,
    frames: Iterable[Frame],
    frame_size: int,
    n_frames: int,
    *,
    vr: bytes = b"OB",
    progress: Callable[[int], None] | None = None,
) -> None:
    """Append native Pixel Data: ``n_frames`` frames of exactly ``frame_size`` bytes."""
    fh.flush()
    fd = fh.fileno()
    out = _VectorWriter(fd, os.lseek(fd, 0, os.SEEK_CUR))
    total = frame_size * n_frames
    out.add(_long_header(PIXEL_DATA, vr, total + (total & 1)))
    count = 0
    for frame in frames:
        n = _frame_length(frame)
        if n != frame_size:
            raise ValueError(f"native frame {count} has {n} bytes, not {frame_size}")
        for part in frame:
            out.add(part)
        count += 1
        if progress:
            progress(1)
    if count != n_frames:
        raise ValueError(f"{count} frames were written, {n_frames} were declared")
    if total & 1:
        out.add(b"\x00")
    out.flush()
    fh.seek(out.position)
