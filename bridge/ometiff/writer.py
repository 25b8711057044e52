"""Slide model -> OME-TIFF (OME-TIFF specification, schema 2016-06), tiles copied verbatim.

Layout: BigTIFF; one OME Image per pyramid, then the associated images named ``label``,
``macro`` and ``thumbnail`` (understood by QuPath, opentile and tifffile). Each pyramid's base
level is a main-chain IFD whose lower levels sit in its SubIFDs (tag 330) with NewSubfileType 1
("Sub-resolutions" in the OME-TIFF specification). The OME-XML, built with ome-types, goes into
the first IFD's ImageDescription.

Tiles: JPEG and JPEG 2000 frames are written as they are (the DICOM pad byte is already gone);
shared JPEGTables that a source OME-TIFF had are split out again (recorded in the DICOM carrier),
so the file does not grow. Native frames become uncompressed tiles. What TIFF cannot hold as it
is (JPEG-LS, tiles whose size is not a multiple of 16) is decoded and written losslessly with
Deflate, and the conversion says so.
"""

from __future__ import annotations

import io
import os
import struct
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .. import __version__
from ..errors import InputError, OutputError, UnsupportedError
from ..model import (
    Compression,
    FileRange,
    Image,
    ImageKind,
    Level,
    Photometric,
    Slide,
    TiffLevelInfo,
)
from ..retile import retiled

#: TIFF compression used for JPEG 2000 codestreams: 33005, Aperio's "JPEG 2000 RGB", which
#: tifffile (imagecodecs) and Bio-Formats both read; the codestream carries its own colour
#: transform, so the TIFF photometric is RGB (or MINISBLACK).
TIFF_JPEG2000 = 33005
RETILE = 256


@dataclass
class LevelPlan:
    """How one level goes into TIFF: verbatim bytes, or decoded tiles re-encoded losslessly."""

    level: Level
    tile: tuple[int, int]  # (rows, columns)
    options: dict[str, Any]
    verbatim: bool
    strip: bytes = b""  # bytes after SOI to take out of each JPEG frame (APP14 + tables)
    notes: list[str] = field(default_factory=list)


def _tiff_info(slide: Slide, image: Image, level: Level) -> TiffLevelInfo | None:
    for info in slide.carriers.tiff:
        if info.image_index == image.source_index and info.level == level.index:
            return info
    return None


def plan_level(slide: Slide, image: Image, level: Level) -> LevelPlan:
    """Decide codec, photometric and tiling of one level (raises for what cannot be written)."""
    if level.issue:
        raise UnsupportedError(level.issue, path=slide.source)
    codec = level.codec
    cols, rows = level.tile_size
    mono = codec.samples_per_pixel == 1
    photometric = "minisblack" if mono else "rgb"
    aligned = cols % 16 == 0 and rows % 16 == 0
    # a TIFF-dialect source's LZW/Deflate/strip levels hand out decoded tiles only
    decode_only = getattr(level.tiles, "decode_only", False)
    if codec.compression is Compression.JPEG and aligned and not decode_only:
        options: dict[str, Any] = {"compression": "jpeg", "photometric": photometric}
        if codec.photometric is Photometric.YCBCR:
            options["subsampling"] = codec.subsampling
        elif codec.photometric is Photometric.RGB:
            options["compressionargs"] = {"outcolorspace": "RGB"}
        info = _tiff_info(slide, image, level)
        strip = b""
        if info is not None:  # the source OME-TIFF's own way of storing these tiles
            if info.jpeg_tables:
                options["jpegtables"] = info.jpeg_tables
            strip = (info.inserted_marker or b"") + (
                info.jpeg_tables[2:-2] if info.jpeg_tables else b""
            )
        return LevelPlan(level, (rows, cols), options, True, strip)
    if codec.compression is Compression.JPEG2000 and aligned and not decode_only:
        return LevelPlan(
            level, (rows, cols), {"compression": TIFF_JPEG2000, "photometric": photometric}, True
        )
    if codec.compression is Compression.NONE and aligned and not decode_only:
        return LevelPlan(level, (rows, cols), {"photometric": photometric}, True)
    if codec.compression in (Compression.JPEG, Compression.JPEG2000, Compression.JPEGLS,
                             Compression.NONE) or decode_only:  # fmt: skip
        size = min(RETILE, -(-max(level.size) // 16) * 16)
        tile = (rows, cols) if aligned else (size, size)  # keep the frame grid where TIFF can
        why = (
            f"the source's {codec.compression.value} strips or tiles are read decoded"
            if decode_only
            else f"{codec.compression.value} cannot be stored in TIFF as it is"
            if aligned
            else f"{cols}×{rows} frames are not a multiple of 16"
        )
        note = (
            f"image {image.source_index} level {level.index}: {why}; tiles decoded and "
            f"written losslessly (Deflate, {tile[1]}×{tile[0]} tiles)"
            if codec.compression is not Compression.NONE
            else f"image {image.source_index} level {level.index}: {why}; re-tiled to "
            f"{tile[1]}×{tile[0]} (bytes moved, no codec)"
        )
        options = {"photometric": photometric}
        if codec.compression is not Compression.NONE:
            options["compression"] = "zlib"
        return LevelPlan(level, tile, options, False, notes=[note])
    raise UnsupportedError(
        f"{codec.compression.value} tiles cannot be written to OME-TIFF", path=slide.source
    )


def _verbatim_tiles(plan: LevelPlan, z: int, c: int) -> Iterator[bytes]:
    level = plan.level
    nx, ny = level.grid
    strip = plan.strip
    n = len(strip)
    parts_of = getattr(level.tiles, "frame_parts", None)
    if parts_of is not None:  # file ranges: copied in the kernel once tifffile is done
        keys = ((x, y, z, c) for y in range(ny) for x in range(nx))
        for parts in parts_of(keys):
            if not any(isinstance(p, FileRange) for p in parts):
                data = b"".join(parts)
                yield data[:2] + data[2 + n :] if n and data[2 : 2 + n] == strip else data
                continue
            if n and _head(parts, 2 + n)[2:] == strip:
                parts = _cut(parts, 2, 2 + n)
            yield Deferred.of(parts)
        return
    for y in range(ny):
        for x in range(nx):
            data = level.tiles.encoded(x, y, z, c)
            if n and data[2 : 2 + n] == strip:
                data = data[:2] + data[2 + n :]
            yield data


class Deferred(bytes):
    """A tile as zero bytes of its length, standing for its parts (file ranges and bytes):
    tifffile lays out the file and writes the IFDs, :class:`_DeferringFile` skips the zeros,
    and :meth:`_DeferringFile.fill` copies the parts into place (``copy_file_range``), so the
    tiles never pass through Python."""

    parts: tuple[bytes | memoryview | FileRange, ...]

    @classmethod
    def of(cls, parts: Iterable[bytes | memoryview | FileRange]) -> Deferred:
        parts = tuple(parts)
        tile = cls(sum(len(p) for p in parts))
        tile.parts = parts
        return tile


def _head(parts: Iterable[bytes | memoryview | FileRange], size: int) -> bytes:
    """The first ``size`` bytes of a frame given as parts."""
    out = b""
    for part in parts:
        if len(out) >= size:
            break
        want = size - len(out)
        if isinstance(part, FileRange):
            out += os.pread(part.fd, min(want, part.count), part.offset)
        else:
            out += bytes(part[:want])
    return out


def _cut(
    parts: Iterable[bytes | memoryview | FileRange], start: int, stop: int
) -> list[bytes | memoryview | FileRange]:
    """The parts of a frame with its bytes ``[start, stop)`` taken out."""
    out: list[bytes | memoryview | FileRange] = []
    position = 0
    for part in parts:
        size = len(part)
        keep = [(position, min(position + size, start)), (max(position, stop), position + size)]
        for a, b in keep:
            if b <= a:
                continue
            if isinstance(part, FileRange):
                out.append(FileRange(part.fd, part.offset + a - position, b - a))
            else:
                out.append(part[a - position : b - position])
        position += size
    return out


class _DeferringFile(io.BufferedRandom):
    """The output file as tifffile sees it: :class:`Deferred` tiles are skipped (their place
    recorded) instead of written; :meth:`fill` writes them at their places afterwards."""

    def __init__(self, path: Path):
        super().__init__(io.FileIO(path, "w+"))
        self.pending: list[tuple[int, tuple[bytes | memoryview | FileRange, ...]]] = []

    def write(self, data: Any) -> int:  # type: ignore[override]
        if type(data) is Deferred:
            self.pending.append((self.tell(), data.parts))  # not the zeros: they are freed
            self.seek(len(data), os.SEEK_CUR)
            return len(data)
        return super().write(data)

    def fill(self) -> None:
        """Write every deferred tile at its place: runs of tiles that lie back to back in the
        output are read into one buffer (``preadv``, one call per tile) and written with one
        ``pwrite``, so a slide costs a few thousand large writes, not one per tile."""
        from ..dicom.encaps import _pwrite_all

        self.flush()
        fd = self.fileno()
        buffer = memoryview(bytearray(FILL_BUFFER))
        used = 0
        start = 0  # output position of buffer[0]
        for position, parts in self.pending:
            size = sum(len(p) for p in parts)
            if used and (position != start + used or used + size > FILL_BUFFER):
                _pwrite_all(fd, buffer[:used], start)
                used = 0
            if not used:
                start = position
            if size > FILL_BUFFER:  # a tile larger than the buffer: on its own
                _pwrite_all(fd, b"".join(_read(p) for p in parts), position)
                continue
            for part in parts:
                view = buffer[used : used + len(part)]
                if isinstance(part, FileRange):
                    if os.preadv(part.fd, [view], part.offset) != part.count:
                        view[:] = _read(part)
                else:
                    view[:] = part
                used += len(part)
        if used:
            _pwrite_all(fd, buffer[:used], start)
        self.pending.clear()


#: Bytes of the buffer that deferred tiles are gathered in before one write.
FILL_BUFFER = 4 << 20


def _read(part: bytes | memoryview | FileRange) -> bytes:
    """A part's bytes; a file range that the file no longer holds is a truncated frame."""
    if not isinstance(part, FileRange):
        return bytes(part)
    data = os.pread(part.fd, part.count, part.offset)
    if len(data) != part.count:
        raise InputError(
            f"a frame is truncated: {part.count} bytes at {part.offset} expected",
            hint="the file was cut short; fetch it again",
        )
    return data


#: What the first IFD's ImageDescription holds until :func:`put_description` points it at the
#: OME-XML.
PLACEHOLDER = b"omedicom: the OME-XML follows at the end of the file"


def put_description(path: Path, pieces: Iterable[str]) -> None:
    """Append the OME-XML to a BigTIFF written by tifffile and point the first IFD's
    ImageDescription (tag 270, ASCII, NUL-terminated: TIFF 6.0 section 2) at it.

    The document is written piece by piece, so a 240 MB OME-XML of a million ROIs is never
    held as one string (or as its UTF-8 bytes). BigTIFF: the header's bytes 8-15 hold the first
    IFD's offset; an IFD is an 8-byte entry count, then 20-byte entries (tag, type, 8-byte
    count, 8-byte value or offset).
    """
    with open(path, "r+b") as f:
        header = f.read(16)
        if header[:4] != b"II+\x00":
            raise OutputError(f"{path} is not a little-endian BigTIFF")
        (ifd,) = struct.unpack("<Q", header[8:16])
        f.seek(ifd)
        (count,) = struct.unpack("<Q", f.read(8))
        entries = f.read(20 * count)
        for i in range(count):
            if struct.unpack_from("<H", entries, 20 * i)[0] == 270:
                entry = ifd + 8 + 20 * i
                break
        else:
            raise OutputError(f"{path}: the first IFD has no ImageDescription to point")
        end = f.seek(0, os.SEEK_END)
        if end % 2:  # values start on a word boundary
            f.write(b"\x00")
            end += 1
        size = 0
        for piece in pieces:
            data = piece.encode("utf-8")
            f.write(data)
            size += len(data)
        f.write(b"\x00")
        f.seek(entry + 4)
        f.write(struct.pack("<QQ", size + 1, end))


class OmeTiffWriter:
    """Writes one slide as one OME-TIFF file."""

    def __init__(self, slide: Slide, *, progress: Callable[[int], None] | None = None):
        self.slide = slide
        self.progress = progress
        self.notes: list[str] = []
        self.images = sorted(
            slide.images, key=lambda i: (i.kind is not ImageKind.VOLUME, i.source_index)
        )
        self.plans = {
            (image.source_index, level.index): plan_level(slide, image, level)
            for image in self.images
            for level in self._levels(image)
        }
        for plan in self.plans.values():
            self.notes.extend(plan.notes)
        from .omexml_writer import carried_split, plane_orders

        self.split = carried_split(slide)  # a carried OME-XML is cut once, read twice
        self.orders = plane_orders(slide, self.images, self.split)

    @staticmethod
    def _levels(image: Image) -> tuple[Level, ...]:
        return image.levels if image.kind is ImageKind.VOLUME else image.levels[:1]

    def frame_count(self) -> int:
        total = 0
        for image in self.images:
            for level in self._levels(image):
                plan = self.plans[(image.source_index, level.index)]
                rows, cols = plan.tile
                n = -(-level.size[0] // cols) * -(-level.size[1] // rows)
                total += n * image.size_z * image.size_c
        return total

    def write(self, path: Path, *, name: str | None = None) -> None:
        """Write the OME-TIFF to ``path``; ``name`` is the file name it will finally have
        (recorded in ``TiffData/UUID/@FileName``), when ``path`` is a staging name."""
        from . import omexml_writer

        file_uuid = f"urn:uuid:{uuid.uuid4()}"
        xml = omexml_writer.build(
            self.slide, self.images, name or path.name, file_uuid, self.split, self.notes
        )
        with _DeferringFile(path) as out, tifffile.TiffWriter(out, bigtiff=True, ome=False) as tw:
            first = True
            for image in self.images:
                levels = self._levels(image)
                for level in levels:
                    plan = self.plans[(image.source_index, level.index)]
                    self._write_level(
                        tw,
                        image,
                        plan,
                        description=PLACEHOLDER if first else None,
                        subifds=len(levels) - 1 if level.index == 0 and len(levels) > 1 else None,
                    )
                    first = False
            tw.close()
            out.fill()
        put_description(path, xml)

    def _write_level(
        self,
        tw: tifffile.TiffWriter,
        image: Image,
        plan: LevelPlan,
        *,
        description: bytes | None,
        subifds: int | None,
    ) -> None:
        level = plan.level
        dtype = np.dtype(image.dtype)
        width, height = level.size
        samples = level.codec.samples_per_pixel
        order = self.orders.get(image.source_index, "XYZCT")
        if order.index("C") < order.index("Z"):  # C varies faster than Z
            planes = [(z, c) for z in range(image.size_z) for c in range(image.size_c)]
        else:
            planes = [(z, c) for c in range(image.size_c) for z in range(image.size_z)]
        shape: tuple[int, ...] = (height, width, samples) if samples > 1 else (height, width)
        if len(planes) > 1:
            shape = (len(planes), *shape)

        def tiles() -> Iterator[Any]:
            for z, c in planes:
                source = (
                    _verbatim_tiles(plan, z, c)
                    if plan.verbatim
                    else retiled(plan.level, plan.tile, z, c, dtype)
                )
                for tile in source:
                    if self.progress:
                        self.progress(1)
                    yield tile

        options = dict(plan.options)
        if image.icc_profile and samples == 3:
            options["iccprofile"] = image.icc_profile
        if image.pixel_size_um:
            sx = image.pixel_size_um[0] * level.downsample[0]
            sy = image.pixel_size_um[1] * level.downsample[1]
            options["resolution"] = (1e4 / sx, 1e4 / sy)
            options["resolutionunit"] = "CENTIMETER"
        tw.write(
            tiles(),
            shape=shape,
            dtype=dtype,
            tile=plan.tile,
            subifds=subifds,
            subfiletype=1 if level.index > 0 else 0,
            description=description,
            metadata=None,
            software=f"omedicom {__version__}",
            **options,
        )
