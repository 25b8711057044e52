"""Tile sources over TIFF pages: encoded bytes straight from the file, never decoded on the way.

A page's tiles are addressed in TIFF order (row-major), which is DICOM TILED_FULL order within a
plane (PS3.3 C.7.6.17.3). Reads use ``os.pread`` on one shared descriptor, so no seek state is
shared and nothing but the requested tile is in memory.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..codecs.jpeg import insert_after_soi, merge_tables
from ..errors import BridgeError, InputError
from ..model import FileRange, Frame


@contextmanager
def decode_errors(what: str, path: str) -> Iterator[None]:
    """Whatever a codec raises on the stored bytes of one tile (imagecodecs' LZW, Deflate,
    JPEG, JPEG-LS ... errors, tifffile's and numpy's on a wrong size) is damage in the input:
    one :class:`InputError` that names the tile."""
    try:
        yield
    except (BridgeError, MemoryError):
        raise
    except Exception as exc:
        raise InputError(
            f"{what} cannot be decoded ({type(exc).__name__}: {exc}): the file is damaged",
            path=path,
            hint="the tile's compressed bytes are corrupt; fetch or export the file again",
        ) from None


class RawFile:
    """A read-only descriptor shared by every tile source of one file."""

    def __init__(self, path: str):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size

    def read(self, offset: int, count: int, what: str) -> bytes:
        data = os.pread(self.fd, count, offset)
        if len(data) != count:
            raise InputError(
                f"{what} is truncated: {count} bytes at offset {offset} were expected, "
                f"the file ends after {len(data)}",
                path=self.path,
                hint="the file was cut short (an interrupted copy or download?); fetch it again",
            )
        return data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


@dataclass(frozen=True)
class PageTiles:
    """Offsets and byte counts of one page's tiles (one plane of one level)."""

    offsets: Sequence[int]
    bytecounts: Sequence[int]


class TiffTileSource:
    """Encoded tiles of one level, one :class:`PageTiles` per (z, c) plane.

    ``tables`` (the JPEGTables tag) are merged into each tile and ``insert`` (an APP14 marker
    where an RGB stream does not say it is RGB) is put after SOI, so each returned stream is a
    complete interchange stream (DICOM PS3.5 A.4). Without either, the bytes are the file's own.
    """

    def __init__(
        self,
        raw: RawFile,
        planes: dict[tuple[int, int], PageTiles],
        grid: tuple[int, int],
        *,
        tables: bytes | None = None,
        insert: bytes | None = None,
        native: tuple[int, int, int, str] | None = None,
        label: str = "tile",
    ):
        self.raw = raw
        self.planes = planes
        self.nx, self.ny = grid
        self.tables = tables if tables and len(tables) > 4 else None
        self.insert = insert
        # uncompressed tiles: (rows, columns, samples, numpy dtype with the file's byte order)
        self.native = native
        self.swap = native is not None and np.dtype(native[3]).byteorder == ">"
        self.label = label
        self._extra = (len(self.tables) - 4 if self.tables else 0) + len(insert or b"")

    def _locate(self, x: int, y: int, z: int, c: int) -> tuple[int, int]:
        plane = self.planes[(z, c)]
        i = y * self.nx + x
        return plane.offsets[i], plane.bytecounts[i]

    def stored(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        """The tile exactly as the file stores it (abbreviated JPEG, no inserted marker)."""
        offset, count = self._locate(x, y, z, c)
        return self.raw.read(offset, count, f"{self.label} ({x}, {y}) of plane z={z} c={c}")

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        data = self.stored(x, y, z, c)
        if self.swap:  # big-endian uncompressed samples: little-endian is what targets hold
            return (
                np.frombuffer(data, self.native[3])
                .astype(np.dtype(self.native[3]).newbyteorder("<"))
                .tobytes()
            )  # type: ignore[index]
        if self.tables:
            data = merge_tables(data, self.tables)
        if self.insert:
            data = insert_after_soi(data, self.insert)
        return data

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return self._locate(x, y, z, c)[1] + self._extra

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        if self.native is not None:
            rows, cols, samples, dtype = self.native
            array = np.frombuffer(self.stored(x, y, z, c), dtype)
            return array.reshape(rows, cols, samples)
        import imagecodecs

        what = f"{self.label} ({x}, {y})"
        with decode_errors(what, self.raw.path):
            array = imagecodecs.imread(self.encoded(x, y, z, c))
        return array.reshape(array.shape[0], array.shape[1], -1)

    def frame_parts(self, keys: Iterable[tuple[int, int, int, int]]) -> Iterator[Frame]:
        """The ``encoded`` streams of many tiles, as parts that name file ranges.

        Nothing is read here: the writer copies each range file to file in the kernel. A
        stream that needs tables merged or a marker inserted is the tile's SOI, the inserted
        bytes, then the rest of the tile, which is exactly ``encoded()``.
        """
        if self.swap:
            for key in keys:
                yield (self.encoded(*key),)
            return
        fd = self.raw.fd
        size = self.raw.size
        middle = (self.insert or b"") + (self.tables[2:-2] if self.tables else b"")
        nx = self.nx
        plane_key = None
        offsets: Sequence[int] = ()
        counts: Sequence[int] = ()
        for x, y, z, c in keys:
            if (z, c) != plane_key:  # keys come plane by plane
                plane_key = (z, c)
                plane = self.planes[plane_key]
                offsets, counts = plane.offsets, plane.bytecounts
            offset, count = offsets[y * nx + x], counts[y * nx + x]
            if offset + count > size:
                self.raw.read(offset, count, f"{self.label} ({x}, {y}) of plane z={z} c={c}")
            if middle:
                yield (FileRange(fd, offset, 2), middle, FileRange(fd, offset + 2, count - 2))
            else:
                yield (FileRange(fd, offset, count),)


class StripRetileSource:
    """Uncompressed strips (or one uncompressed image) handed out as full-size tiles.

    No codec is involved: each tile is assembled row by row from the strips' byte ranges, edge
    tiles padded with zeros (the padding content of DICOM edge frames is unspecified,
    PS3.3 C.7.6.17.3). 16-bit big-endian samples are swapped to little-endian.
    """

    def __init__(
        self,
        raw: RawFile,
        planes: dict[tuple[int, int], PageTiles],
        size: tuple[int, int],
        tile_size: tuple[int, int],
        rows_per_strip: int,
        bytes_per_pixel: int,
        *,
        swap16: bool = False,
    ):
        self.raw = raw
        self.planes = planes
        self.width, self.height = size
        self.tw, self.th = tile_size
        self.rps = rows_per_strip
        self.bpp = bytes_per_pixel
        self.swap16 = swap16

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        plane = self.planes[(z, c)]
        row_bytes = self.width * self.bpp
        x0 = x * self.tw
        x1 = min(self.width, x0 + self.tw)
        out = bytearray(self.tw * self.th * self.bpp)
        out_row = self.tw * self.bpp
        for r in range(self.th):
            row = y * self.th + r
            if row >= self.height:
                break
            strip, within = divmod(row, self.rps)
            offset = plane.offsets[strip] + within * row_bytes + x0 * self.bpp
            count = (x1 - x0) * self.bpp
            out[r * out_row : r * out_row + count] = self.raw.read(
                offset, count, f"strip {strip} (row {row}) of plane z={z} c={c}"
            )
        if self.swap16:
            out = bytearray(np.frombuffer(out, ">u2").astype("<u2").tobytes())
        return bytes(out)

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return self.tw * self.th * self.bpp

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        dtype = "<u2" if self.bpp in (2, 6) else "u1"
        arr = np.frombuffer(self.encoded(x, y, z, c), dtype)
        return arr.reshape(self.th, self.tw, -1)


class DecodingSource:
    """Tiles of any TIFF layout, decoded through tifffile: LZW, Deflate, Zstd, PackBits, LZMA
    (with predictors), strips, planar-separate samples, palette indices. For levels the target
    cannot hold as they are; ``encoded`` is not available (``decode_only``).

    Output tiles are ``tile_size`` (columns, rows), zero-padded at the edges. Decoded segments
    are cached (the most recent ``cache_size``), so a row of output tiles decodes each source
    strip or tile once.
    """

    decode_only = True

    def __init__(
        self,
        raw: RawFile,
        pages: dict[tuple[int, int], Any],
        tile_size: tuple[int, int],
        *,
        label: str = "tile",
        cache_size: int = 64,
    ):
        self.raw = raw
        self.pages = pages
        self.tw, self.th = tile_size
        self.label = label
        self.cache: OrderedDict[tuple[int, int, int], np.ndarray] = OrderedDict()
        self.cache_size = cache_size
        page = next(iter(pages.values()))
        self.width, self.height = page.imagewidth, page.imagelength
        self.samples = page.samplesperpixel
        self.separate = page.planarconfig == 2 and self.samples > 1
        self.tiled = page.is_tiled
        if page.is_tiled:
            self.seg_w, self.seg_h = page.tilewidth, page.tilelength
        else:
            self.seg_w, self.seg_h = self.width, min(page.rowsperstrip or self.height, self.height)
        self.seg_nx = -(-self.width // self.seg_w)
        self.seg_ny = -(-self.height // self.seg_h)
        self.dtype = np.dtype(page.dtype)

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        raise NotImplementedError("these tiles must be decoded and re-encoded")

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return None

    def _segment(self, z: int, c: int, index: int) -> np.ndarray:
        key = (z, c, index)
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        page = self.pages[(z, c)]
        offset, count = page.dataoffsets[index], page.databytecounts[index]
        what = f"{self.label} segment {index}"
        data = self.raw.read(offset, count, what)
        with decode_errors(what, self.raw.path):
            if int(page.compression) == 7:
                # JPEG straight through libjpeg-turbo: a single-component stream per colour
                # plane (Bio-Formats writes RGB this way, with a YCbCr Photometric tag tifffile
                # refuses)
                import imagecodecs

                decoded = imagecodecs.jpeg8_decode(merge_tables(data, page.jpegtables))
                array = decoded.reshape(decoded.shape[0], decoded.shape[1], -1)
            else:
                segment, _, shape = page.decode(data, index, jpegtables=page.jpegtables)
                if segment is None:
                    raise ValueError("no data")
                array = np.asarray(segment).reshape(shape[1], shape[2], shape[3])  # rows, cols
        samples = 1 if self.separate else self.samples
        # the last strip holds only the rows left (TIFF 6.0 section 3, RowsPerStrip)
        row = (index % (self.seg_nx * self.seg_ny)) // self.seg_nx
        rows = self.seg_h if self.tiled else min(self.seg_h, self.height - row * self.seg_h)
        if array.shape[0] < rows or array.shape[1] < self.seg_w or array.shape[2] != samples:
            raise InputError(
                f"{what} decodes to {array.shape[1]}×{array.shape[0]} with {array.shape[2]} "
                f"sample(s), the TIFF tags say {self.seg_w}×{rows} with {samples}: the "
                "file is damaged",
                path=self.raw.path,
            )
        self.cache[key] = array
        if len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        return array

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        out = np.zeros((self.th, self.tw, self.samples), self.dtype)
        x0, y0 = x * self.tw, y * self.th
        x1, y1 = min(self.width, x0 + self.tw), min(self.height, y0 + self.th)
        per_plane = self.seg_nx * self.seg_ny
        for sy in range(y0 // self.seg_h, (y1 - 1) // self.seg_h + 1):
            for sx in range(x0 // self.seg_w, (x1 - 1) // self.seg_w + 1):
                ax0, ay0 = max(x0, sx * self.seg_w), max(y0, sy * self.seg_h)
                ax1, ay1 = min(x1, (sx + 1) * self.seg_w), min(y1, (sy + 1) * self.seg_h)
                planes = range(self.samples) if self.separate else (None,)
                for s in planes:
                    index = sy * self.seg_nx + sx + (s * per_plane if s is not None else 0)
                    seg = self._segment(z, c, index)
                    part = seg[
                        ay0 - sy * self.seg_h : ay1 - sy * self.seg_h,
                        ax0 - sx * self.seg_w : ax1 - sx * self.seg_w,
                    ]
                    target = out[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
                    if s is None:
                        target[...] = part
                    else:
                        target[..., s] = part[..., 0]
        return out
