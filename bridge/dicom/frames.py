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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010), little endian


#: Where a header parse stopped (the Pixel Data element's start), set on the data set by the
#: reader's one parse of the header so the frame index need not parse it again.
HEADER_END = "_omedicom_header_end"


def _pixel_data_position(path: str, ds: Any = None) -> tuple[bytes | None, int, int]:
    """Extended Offset Table (if any), value offset and value length of Pixel Data
    (0xFFFFFFFF when encapsulated).

    The header is parsed up to Pixel Data only (pydicom stops before it); the Pixel Data
    element's own header (tag, VR, length: PS3.5 7.1.2) is then read where the parse stopped,
    so the pixels are never walked element by element nor loaded. Anything unusual there
    (big endian, a deflated data set) falls back to pydicom's deferred read."""
    with open(path, "rb") as fh:
        start = getattr(ds, HEADER_END, None) if ds is not None else None
        if start is None:
            with warnings.catch_warnings():  # a file cut short is reported below, as an error
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fh, stop_before_pixels=True, defer_size=256)
            start = fh.tell()
        eot = ds.ExtendedOffsetTable if "ExtendedOffsetTable" in ds else None
        syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
        head = os.pread(fh.fileno(), 12, start)
    little = syntax is not None and syntax in _LITTLE_ENDIAN
    if little and len(head) == 12 and head[:4] == _PIXEL_DATA_TAG:
        if head[4:6] in (b"OB", b"OW") and syntax != "1.2.840.10008.1.2":
            (length,), position = struct.unpack("<I", head[8:12]), start + 12
        else:  # implicit VR: tag, then a 4-byte length
            (length,), position = struct.unpack("<I", head[4:8]), start + 8
        return eot, position, 0xFFFFFFFF if length == 0xFFFFFFFF else -1
    return _pixel_data_position_pydicom(path)


#: Uncompressed-header transfer syntaxes pydicom leaves the file position in (PS3.5 A.1-A.4):
#: every little-endian one but Deflated Explicit VR Little Endian.
_LITTLE_ENDIAN = frozenset(
    {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.50",
     "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",
     "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81", "1.2.840.10008.1.2.4.90",
     "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
     "1.2.840.10008.1.2.4.203", "1.2.840.10008.1.2.5"}
)  # fmt: skip


def _pixel_data_position_pydicom(path: str) -> tuple[bytes | None, int, int]:
    """:func:`_pixel_data_position` the slow way: pydicom's deferred read of Pixel Data."""
    with open(path, "rb") as fh:
        with warnings.catch_warnings():  # a file cut short is reported below, as an error
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(fh, defer_size=256)
        if "PixelData" not in ds:
            cut = truncation(path)
            if cut:
                raise truncated_error(path, cut)
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


def truncation(path: str | Path) -> str | None:
    """Where a DICOM file was cut short, in words, or ``None`` when it ends where its data
    set does (PS3.5 7.1: each element's value is as long as its Value Length says).

    The header is read up to Pixel Data (7FE0,0010): a file that continues past that point
    but whose full read found no Pixel Data ends inside it; otherwise the last element read
    must end exactly at the end of the file."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True, defer_size=256)
        except Exception:  # the header itself cannot be parsed: not a truncation we can place
            return None
        end = fh.tell()
    if end < size:  # stopped at Pixel Data
        if not _pixel_data_cut(path, end, size):
            return None
        return (
            f"it has {size} bytes and ends inside Pixel Data, which starts at byte {end} "
            f"({size - end} bytes of it are present)"
        )
    tags = list(ds.keys())
    if not tags:
        return None
    last = ds.get_item(tags[-1])
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return None
    if tell + length > size:
        return (
            f"it has {size} bytes and ends inside attribute {tags[-1]}, whose value would end "
            f"at byte {tell + length}, before any Pixel Data"
        )
    if tell + length < size:
        return (
            f"it has {size} bytes and ends inside the header, {size - tell - length} bytes "
            f"after attribute {tags[-1]}, before any Pixel Data"
        )
    # ends exactly after an element: a whole-slide image must have Pixel Data (Type 1)
    return f"it has {size} bytes and ends right after attribute {tags[-1]}, before any Pixel Data"


def _pixel_data_cut(path: str | Path, start: int, size: int) -> bool:
    """Whether the Pixel Data element starting at byte ``start`` runs past the end of the
    file: its defined length does (PS3.5 7.1.2), or its items do not reach the Sequence
    Delimitation Item (PS3.5 A.4)."""
    with open(path, "rb") as fh:
        fd = fh.fileno()
        header = os.pread(fd, 12, start)
        if len(header) < 12:
            return True
        if header[4:6] in (b"OB", b"OW"):  # explicit VR: 2 reserved bytes, 4-byte length
            (length,), pos = struct.unpack("<I", header[8:12]), start + 12
        else:  # implicit VR
            (length,), pos = struct.unpack("<I", header[4:8]), start + 8
        if length != 0xFFFFFFFF:
            return pos + length > size
        while True:
            item = os.pread(fd, 8, pos)
            if len(item) < 8:
                return True
            tag, length = struct.unpack("<II", item)
            if tag != ITEM:
                return False  # the delimiter, or something else that is not a cut
            if pos + 8 + length > size:
                return True
            pos += 8 + length


def truncated_error(path: str | Path, where: str) -> InputError:
    """The error for a file cut short (:func:`truncation` says where)."""
    return InputError(
        f"the file is truncated: {where}",
        path=path,
        hint="the file was cut short (an interrupted download or copy); fetch it again",
    )


def index_frames(path: str | Path, n_frames: int, frame_size: int, ds: Any = None) -> FrameIndex:
    """Index the frames of one instance. ``frame_size`` is the byte size of a native frame;
    ``ds``, the instance's header if the caller parsed it already (with :data:`HEADER_END`)."""
    path = str(path)
    eot, position, length = _pixel_data_position(path, ds)
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
    tabled = _frames_from_table(path, eot, position, n_frames, size)
    if tabled is not None:
        return FrameIndex(path, tabled, True)
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


def _frames_from_table(
    path: str, eot: bytes | None, position: int, n_frames: int, size: int
) -> tuple[tuple[tuple[int, int], ...], ...] | None:
    """The frame index read from the Extended or Basic Offset Table (PS3.5 A.4) when it has
    one entry per frame and each frame is one fragment: one 10-byte read per frame (the two
    last bytes of the previous fragment, for the pad byte, and this item's tag and length,
    which must agree with the table) instead of walking the items and then reading each tail.
    ``None`` when there is no such table or anything disagrees: the item scan then decides."""
    with open(path, "rb") as fh:
        fd = fh.fileno()
        head = os.pread(fd, 8, position)
        if len(head) < 8 or n_frames < 2:
            return None
        tag, bot_length = struct.unpack("<II", head)
        if tag != ITEM or position + 8 + bot_length > size:
            return None
        if not eot and bot_length != 4 * n_frames:
            return None
        try:
            offsets = _offsets(path, eot, (position + 8, bot_length))
        except InputError:
            return None
        if offsets is None or len(offsets) != n_frames:
            return None
        first = position + 8 + bot_length
        starts = [first + o for o in offsets]
        out = []
        previous: tuple[int, int] | None = None
        unpack = struct.unpack_from
        pread = os.pread
        for i, start in enumerate(starts):
            data = pread(fd, 10, start - 2)
            if len(data) < 10:
                return None
            tag, length = unpack("<II", data, 2)
            if tag != ITEM:
                return None
            if previous is not None:
                out.append((_unpadded(previous, data),))
            if i + 1 < n_frames:
                if length != starts[i + 1] - start - 8:
                    return None  # several fragments in a frame: the scan groups them
            elif start + 8 + length > size:
                return None
            previous = (start + 8, length)
        assert previous is not None
        data = pread(fd, 10, previous[0] + previous[1] - 2)
        if len(data) < 10 or unpack("<I", data, 2)[0] != SEQ_DELIMITER:
            return None
        out.append((_unpadded(previous, data),))
    return tuple(out)


def _unpadded(fragment: tuple[int, int], tail: bytes) -> tuple[int, int]:
    """``fragment`` without the pad byte after a JPEG EOI (FFD9 00), ``tail`` starting with
    the fragment's last two bytes."""
    offset, length = fragment
    if length >= 2 and tail[1] == 0 and tail[0] == 0xD9:
        return (offset, length - 1)
    return fragment


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
