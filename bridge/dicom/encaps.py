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

import struct
from collections.abc import Callable, Iterable
from typing import BinaryIO

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


def write_encapsulated(
    fh: BinaryIO,
    frames: Iterable[bytes],
    n_frames: int,
    *,
    extended: bool,
    progress: Callable[[int], None] | None = None,
) -> list[int]:
    """Append encapsulated Pixel Data (and the EOT when ``extended``); return item lengths."""
    eot_pos = -1
    if extended:
        fh.write(_long_header(EOT, b"OV", 8 * n_frames))
        eot_pos = fh.tell()
        fh.write(bytes(8 * n_frames))
        fh.write(_long_header(EOT_LENGTHS, b"OV", 8 * n_frames))
        fh.write(bytes(8 * n_frames))
    fh.write(_long_header(PIXEL_DATA, b"OB", _UNDEFINED))
    bot_size = 0 if extended else 4 * n_frames
    fh.write(ITEM + struct.pack("<I", bot_size))
    bot_pos = fh.tell()
    fh.write(bytes(bot_size))
    first_item = fh.tell()
    offsets: list[int] = []
    lengths: list[int] = []
    for frame in frames:
        offsets.append(fh.tell() - first_item)
        n = len(frame)
        padded = n + (n & 1)
        fh.write(ITEM + struct.pack("<I", padded))
        fh.write(frame)
        if n & 1:
            fh.write(b"\x00")
        lengths.append(padded)
        if progress:
            progress(1)
    if len(offsets) != n_frames:
        raise ValueError(f"{len(offsets)} frames were written, {n_frames} were declared")
    fh.write(SEQ_DELIMITER)
    end = fh.tell()
    if extended:
        fh.seek(eot_pos)
        fh.write(struct.pack(f"<{n_frames}Q", *offsets))
        fh.seek(eot_pos + 8 * n_frames + 12)
        fh.write(struct.pack(f"<{n_frames}Q", *lengths))
    else:
        if offsets and offsets[-1] >= _BOT_LIMIT:
            raise ValueError("a Basic Offset Table cannot address these frames")
        fh.seek(bot_pos)
        fh.write(struct.pack(f"<{n_frames}I", *offsets))
    fh.seek(end)
    return lengths


def write_native(
    fh: BinaryIO,
    frames: Iterable[bytes],
    frame_size: int,
    n_frames: int,
    *,
    vr: bytes = b"OB",
    progress: Callable[[int], None] | None = None,
) -> None:
    """Append native Pixel Data: ``n_frames`` frames of exactly ``frame_size`` bytes."""
    total = frame_size * n_frames
    fh.write(_long_header(PIXEL_DATA, vr, total + (total & 1)))
    count = 0
    for frame in frames:
        if len(frame) != frame_size:
            raise ValueError(f"native frame {count} has {len(frame)} bytes, not {frame_size}")
        fh.write(frame)
        count += 1
        if progress:
            progress(1)
    if count != n_frames:
        raise ValueError(f"{count} frames were written, {n_frames} were declared")
    if total & 1:
        fh.write(b"\x00")
