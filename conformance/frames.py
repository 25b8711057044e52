"""Frames of a DICOM instance, read lazily from the file, and their decoding.

Encapsulated Pixel Data (PS3.5 A.4) is an item sequence: the Basic Offset Table, then one or
more fragments per frame, then a Sequence Delimitation Item. Only the item headers are read to
index it (8 bytes per fragment); a frame's bytes are read when a check asks for that frame.
Frames map to fragments 1:1, or through the Extended Offset Table (7FE0,0001/0002), or the Basic
Offset Table, or - when neither exists - by the codestream start markers (JPEG SOI, JPEG 2000
SOC).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass, field

import numpy as np
from pydicom.uid import UID

from .dicomfiles import Instance, integer, raw

_ITEM = (0xFFFE, 0xE000)
_DELIMITER = (0xFFFE, 0xE0DD)
_STARTS = (b"\xff\xd8", b"\xff\x4f", b"\xff\x0a")  # JPEG SOI, JPEG 2000 SOC, JPEG XL

# Transfer syntaxes by codec family (PS3.5 Table A-1 / pydicom.uid).
_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}
_JPEG_LOSSLESS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
_JPEG_LS = {"1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"}
_J2K = {
    "1.2.840.10008.1.2.4.90",
    "1.2.840.10008.1.2.4.91",
    "1.2.840.10008.1.2.4.201",
    "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
}
_JPEG_XL = {"1.2.840.10008.1.2.4.110", "1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112"}
_RLE = "1.2.840.10008.1.2.5"


class PixelDataError(Exception):
    """The Pixel Data cannot be indexed (damaged item structure)."""


@dataclass
class FrameIndex:
    """Where each frame's bytes are: a list of (offset, length) parts per frame."""

    frames: list[list[tuple[int, int]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    native_frame_size: int | None = None


def _bytes_per_frame(inst: Instance) -> int | None:
    ds = inst.ds
    rows, cols = integer(ds, "Rows"), integer(ds, "Columns")
    spp, bits = integer(ds, "SamplesPerPixel") or 1, integer(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    return rows * cols * spp * ((bits + 7) // 8)


def index(inst: Instance) -> FrameIndex:
    """Index the frames of an instance's Pixel Data (PS3.5 A.4, 8.1.1)."""
    loc = inst.pixel_data
    n_frames = integer(inst.ds, "NumberOfFrames") or 1
    out = FrameIndex()
    if loc is None:
        out.problems.append("the instance has no Pixel Data")
        return out
    if loc.length is not None:  # native
        size = _bytes_per_frame(inst)
        out.native_frame_size = size
        if not size:
            out.problems.append("Rows, Columns or Bits Allocated is missing")
            return out
        available = loc.length // size
        out.frames = [[(loc.offset + i * size, size)] for i in range(min(available, n_frames))]
        if loc.length < size * n_frames:
            out.problems.append(
                f"native Pixel Data has {loc.length} bytes, {size * n_frames} needed for "
                f"{n_frames} frames of {size} bytes"
            )
        elif loc.length > size * n_frames + 1:
            out.problems.append(
                f"native Pixel Data has {loc.length} bytes, more than the {size * n_frames} of "
                f"{n_frames} frames"
            )
        return out
    order = "<" if loc.little_endian else ">"
    items = _items(inst, loc.offset, order)
    if not items:
        out.problems.append("encapsulated Pixel Data has no Basic Offset Table item")
        return out
    (bot_offset, bot_length), fragments = items[0], items[1:]
    base = fragments[0][0] - 8 if fragments else 0  # offsets count from the first item's tag
    eot = raw(inst.ds, "ExtendedOffsetTable")
    eot_lengths = raw(inst.ds, "ExtendedOffsetTableLengths")
    if eot is not None and eot_lengths is not None:
        offsets = list(struct.unpack(f"{order}{len(eot) // 8}Q", bytes(eot)))
        lengths = list(struct.unpack(f"{order}{len(eot_lengths) // 8}Q", bytes(eot_lengths)))
        starts = {off - 8 - base: (off, length) for off, length in fragments}
        if bot_length:
            out.problems.append(
                "the Basic Offset Table must be empty with an Extended Offset Table"
            )
        for i, (o, n) in enumerate(zip(offsets, lengths, strict=False)):
            frag = starts.get(o)
            if frag is None:
                out.problems.append(f"Extended Offset Table entry {i + 1} ({o}) is not an item")
                continue
            if frag[1] != n:
                out.problems.append(
                    f"Extended Offset Table length {n} of frame {i + 1} != item length {frag[1]}"
                )
            out.frames.append([frag])
        if len(offsets) != len(lengths):
            out.problems.append("Extended Offset Table and its Lengths differ in size")
    elif bot_length:
        with open(inst.path, "rb") as fh:
            fh.seek(bot_offset)
            bot = fh.read(bot_length)
        offsets = list(struct.unpack(f"{order}{len(bot) // 4}I", bot))
        if offsets and offsets[0] != 0:
            out.problems.append(f"the Basic Offset Table's first offset is {offsets[0]}, not 0")
        starts = [off - 8 - base for off, _ in fragments]  # increasing: items follow each other
        bounds = [*offsets, starts[-1] + 1 if starts else 0]
        for i in range(len(offsets)):
            lo = bisect.bisect_left(starts, bounds[i])
            hi = bisect.bisect_left(starts, bounds[i + 1]) if bounds[i + 1] > bounds[i] else lo
            parts = fragments[lo:hi]
            if not parts:
                out.problems.append(f"Basic Offset Table entry {i + 1} points at no item")
            out.frames.append(parts)
    elif len(fragments) == n_frames or n_frames == 1:
        out.frames = [[f] for f in fragments] if n_frames != 1 else [fragments]
    else:
        heads = _heads(inst, fragments)
        for frag, head in zip(fragments, heads, strict=True):
            if head in _STARTS or not out.frames:
                out.frames.append([frag])
            else:
                out.frames[-1].append(frag)
    if len(out.frames) != n_frames:
        out.problems.append(
            f"Pixel Data holds {len(out.frames)} frames, Number of Frames is {n_frames}"
        )
    return out


def _items(inst: Instance, start: int, order: str) -> list[tuple[int, int]]:
    """(value offset, length) of every item up to the Sequence Delimitation Item."""
    found = []
    with open(inst.path, "rb") as fh:
        fh.seek(0, 2)
        end = fh.tell()
        pos = start
        while True:
            fh.seek(pos)
            head = fh.read(8)
            if len(head) < 8:
                raise PixelDataError(
                    f"the Pixel Data ends without a Sequence Delimitation Item (byte {pos})"
                )
            group, element, length = struct.unpack(order + "HHI", head)
            if (group, element) == _DELIMITER:
                return found
            if (group, element) != _ITEM:
                raise PixelDataError(
                    f"expected an item tag (FFFE,E000) at byte {pos}, found "
                    f"({group:04X},{element:04X})"
                )
            if pos + 8 + length > end:
                raise PixelDataError(
                    f"item {len(found)} at byte {pos} claims {length} bytes; the file ends first"
                )
            found.append((pos + 8, length))
            pos += 8 + length


def _heads(inst: Instance, fragments: list[tuple[int, int]]) -> list[bytes]:
    out = []
    with open(inst.path, "rb") as fh:
        for off, _n in fragments:
            fh.seek(off)
            out.append(fh.read(2))
    return out


def read_frame(inst: Instance, parts: list[tuple[int, int]]) -> bytes:
    chunks = []
    with open(inst.path, "rb") as fh:
        for off, n in parts:
            fh.seek(off)
            chunks.append(fh.read(n))
    return b"".join(chunks)


class CannotDecode(Exception):
    """No decoder here for this transfer syntax (not a defect of the file)."""


def decode(inst: Instance, data: bytes) -> np.ndarray:
    """Decode one frame with imagecodecs (or as native samples)."""
    import imagecodecs

    ts = str(inst.transfer_syntax)
    ds = inst.ds
    if not UID(ts).is_compressed:
        rows, cols = integer(ds, "Rows") or 0, integer(ds, "Columns") or 0
        spp, bits = integer(ds, "SamplesPerPixel") or 1, integer(ds, "BitsAllocated") or 8
        dtype = np.dtype(f"{'<' if UID(ts).is_little_endian else '>'}u{(bits + 7) // 8}")
        arr = np.frombuffer(data, dtype=dtype, count=len(data) // dtype.itemsize)
        if arr.size < rows * cols * spp:
            raise ValueError(f"{arr.size} samples, {rows * cols * spp} needed")
        return arr[: rows * cols * spp].reshape(rows, cols, spp)
    if ts in _JPEG or ts in _JPEG_LOSSLESS:
        return imagecodecs.jpeg_decode(data)
    if ts in _JPEG_LS:
        return imagecodecs.jpegls_decode(data)
    if ts in _J2K:
        return imagecodecs.jpeg2k_decode(data)
    if ts in _JPEG_XL:
        return imagecodecs.jpegxl_decode(data)
    if ts == _RLE:
        from pydicom.pixels.decoders.rle import _rle_decode_frame

        rows, cols = integer(ds, "Rows") or 0, integer(ds, "Columns") or 0
        spp, bits = integer(ds, "SamplesPerPixel") or 1, integer(ds, "BitsAllocated") or 8
        nbytes = (bits + 7) // 8
        out = bytes(_rle_decode_frame(data, rows, cols, spp, bits))
        if len(out) != rows * cols * spp * nbytes:
            raise ValueError(f"RLE frame decodes to {len(out)} bytes")
        return np.frombuffer(out, np.uint8).reshape(rows, cols, spp * nbytes)[..., :spp]
    raise CannotDecode(f"no decoder for transfer syntax {ts}")


def shape_of(arr: np.ndarray) -> tuple[int, int, int]:
    """(rows, columns, samples) of a decoded frame."""
    if arr.ndim == 2:
        return (arr.shape[0], arr.shape[1], 1)
    return (arr.shape[0], arr.shape[1], arr.shape[2])
