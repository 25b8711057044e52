"""Where each frame of a DICOM instance lies in its file, found without loading Pixel Data.

Encapsulated Pixel Data (PS3.5 A.4) is a sequence of items: the Basic Offset Table, then
fragments, then a Sequence Delimitation Item. A frame is one fragment, or several grouped by
the Basic or Extended Offset Table. Native Pixel Data (PS3.5 8.1.1) holds frames back to back.
The index lists, per frame, the file ranges of its fragments with the trailing pad byte of an
odd-length stream (a 0x00 after the JPEG/J2K EOI marker FFD9) left out.
"""

from __future__ import annotations

import itertools
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import pydicom

from ..errors import InputError, UnsupportedError

ITEM = 0xE000FFFE
SEQ_DELIMITER = 0xE0DDFFFE


@dataclass(frozen=True)
class FrameIndex:
    """File ranges ``(offset, length)`` of each frame's fragments, in frame order."""

    path: str
    ranges: tuple[tuple[tuple[int, int], ...], ...]
    encapsulated: bool

    def __len__(self) -> int:
        return len(self.ranges)


def _pixel_data_position(path: str) -> tuple[bytes | None, int, int]:
    """Extended Offset Table (if any), value offset and value length of Pixel Data
    (0xFFFFFFFF when encapsulated)."""
    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, defer_size=256)
        if "PixelData" not in ds:
            raise InputError("the instance has no Pixel Data", path=path)
        element = ds.get_item("PixelData")
        # a deferred element knows where its value starts (file_tell); a small one read
        # whole is a RawDataElement (value_tell)
        position = getattr(element, "file_tell", None)
        if position is None:
            position = element.value_tell  # type: ignore[union-attr]
        undefined = getattr(element, "is_undefined_length", None)
        if undefined is None:  # RawDataElement: the length field itself
            undefined = element.length == 0xFFFFFFFF  # type: ignore[union-attr]
        length = 0xFFFFFFFF if undefined else -1
        eot = ds.ExtendedOffsetTable if "ExtendedOffsetTable" in ds else None
    return eot, position, length


def index_frames(path: str | Path, n_frames: int, frame_size: int) -> FrameIndex:
    """Index the frames of one instance. ``frame_size`` is the byte size of a native frame."""
    path = str(path)
    eot, position, length = _pixel_data_position(path)
    size = os.path.getsize(path)
    if length != 0xFFFFFFFF:
        # the value length is the 4 bytes before the value (PS3.5 7.1.2, OB/OW and implicit VR)
        with open(path, "rb") as fh:
            declared = struct.unpack("<I", os.pread(fh.fileno(), 4, position - 4).rjust(4, b"\0"))
        held = min(declared[0], size - position)
        if frame_size * n_frames > held:
            raise InputError(
                f"native Pixel Data holds {held} bytes, but {n_frames} frame(s) of Rows × "
                f"Columns × Samples per Pixel × bytes per sample = {frame_size} bytes need "
                f"{frame_size * n_frames}",
                path=path,
                hint="the file was cut short or its header is damaged; fetch it again",
            )
        ranges = tuple(((position + i * frame_size, frame_size),) for i in range(n_frames))
        return FrameIndex(path, ranges, False)
    fragments = _fragments(path, position, size)
    if not fragments:
        raise InputError("the encapsulated Pixel Data holds no fragments", path=path)
    bot, fragments = fragments[0], fragments[1:]
    if len(fragments) < n_frames:  # PS3.5 A.4: a frame is one fragment or more
        raise InputError(
            f"Number of Frames is {n_frames}, but the encapsulated Pixel Data holds only "
            f"{len(fragments)} fragment(s)",
            path=path,
            hint="the file was cut short or its header is damaged; fetch it again",
        )
    if len(fragments) == n_frames:
        groups = [[f] for f in fragments]
    elif n_frames == 1:  # PS3.5 A.4: every fragment belongs to the only frame
        groups = [list(fragments)]
    else:
        offsets = _offsets(path, eot, bot)
        if offsets is None or len(offsets) != n_frames:
            raise UnsupportedError(
                f"{len(fragments)} fragments for {n_frames} frames and no offset table that "
                "groups them",
                path=path,
            )
        first = fragments[0][0] - 8
        starts = [first + o for o in offsets]
        groups = [[] for _ in range(n_frames)]
        frame = -1
        for fragment in fragments:
            while frame + 1 < n_frames and fragment[0] - 8 >= starts[frame + 1]:
                frame += 1
            groups[frame].append(fragment)
        if any(not g for g in groups) or frame < 0:
            raise InputError("the offset table does not match the Pixel Data fragments", path=path)
    out = []
    with open(path, "rb") as fh:
        fd = fh.fileno()
        for group in groups:
            last_offset, last_length = group[-1]
            if last_length >= 2:
                tail = os.pread(fd, 2, last_offset + last_length - 2)
                if tail[1] == 0 and tail[0] == 0xD9:  # FFD9 00: EOI then the pad byte
                    group[-1] = (last_offset, last_length - 1)
            out.append(tuple(group))
    return FrameIndex(path, tuple(out), True)


def _fragments(path: str, position: int, size: int) -> list[tuple[int, int]]:
    """Items of encapsulated Pixel Data: [(value offset, value length), ...], BOT first."""
    items = []
    with open(path, "rb") as fh:
        fd = fh.fileno()
        pos = position
        while True:
            header = os.pread(fd, 8, pos)
            if len(header) < 8:
                raise InputError(
                    "the encapsulated Pixel Data is truncated (no Sequence Delimitation Item)",
                    path=path,
                    hint="the file was cut short; fetch it again",
                )
            tag, length = struct.unpack("<II", header)
            if tag == SEQ_DELIMITER:
                break
            if tag != ITEM:
                raise InputError(f"unexpected tag {tag:#010x} inside Pixel Data", path=path)
            if pos + 8 + length > size:
                raise InputError(
                    f"a Pixel Data fragment at offset {pos} is truncated ({length} bytes "
                    f"declared, {size - pos - 8} in the file)",
                    path=path,
                    hint="the file was cut short; fetch it again",
                )
            items.append((pos + 8, length))
            pos += 8 + length
    return items


def _offsets(path: str, eot: bytes | None, bot: tuple[int, int]) -> list[int] | None:
    """The Extended (8-byte) or Basic (4-byte) Offset Table (PS3.5 A.4); a table whose first
    offset is not 0 or whose offsets do not increase is refused as damaged."""
    if eot:
        eot = bytes(eot)
        offsets = list(struct.unpack(f"<{len(eot) // 8}Q", eot[: len(eot) // 8 * 8]))
    elif bot[1]:
        with open(path, "rb") as fh:
            data = os.pread(fh.fileno(), bot[1], bot[0])
        offsets = list(struct.unpack(f"<{len(data) // 4}I", data[: len(data) // 4 * 4]))
    else:
        return None
    if offsets and (offsets[0] != 0 or any(b <= a for a, b in itertools.pairwise(offsets))):
        raise InputError(
            "the offset table of the Pixel Data is damaged (its offsets must start at 0 and "
            "increase)",
            path=path,
            hint="the file is damaged; re-export it from its source",
        )
    return offsets
