"""Tile sources over DICOM frames: each tile is one frame's stored bytes (pad byte removed).

Frames are located once by ``frames.index_frames``; tiles are then handed out as file ranges
(for kernel copies) or bytes, never decoded unless ``decoded()`` is asked for.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..model import Compression, FileRange, Frame
from .sources import RemoteFrame

#: One frame: (file descriptor, ((offset, length), ...)), a frame on a DICOMweb server, or None
#: for a tile with no frame.
Entry = tuple[int, tuple[tuple[int, int], ...]] | RemoteFrame | None


class DicomTileSource:
    """Tiles of one level, possibly spread over several instances (concatenations, one
    instance per optical path or focal plane). ``entries`` maps
    ``((c * nz + z) * ny + y) * nx + x`` to a frame (a list works too); a missing tile yields
    ``blank``. ``origins`` maps the same index to (file, frame number) for messages."""

    def __init__(
        self,
        entries: dict[int, Entry] | list[Entry],
        grid: tuple[int, int],
        planes: tuple[int, int],
        *,
        compression: Compression,
        tile_shape: tuple[int, int, int],
        dtype: str,
        blank: bytes | None = None,
        insert: bytes | None = None,
        label: str = "frame",
        origins: dict[int, tuple[str, int]] | None = None,
    ):
        self.entries = entries
        self.origins = origins or {}
        self.nx, self.ny = grid
        self.nz, self.nc = planes
        self.compression = compression
        self.tile_shape = tile_shape  # rows, columns, samples
        self.dtype = dtype
        self.blank = blank
        self.insert = insert  # a marker segment put after SOI (APP14 for unsignalled RGB)
        self.label = label

    def _key(self, x: int, y: int, z: int, c: int) -> int:
        return ((c * self.nz + z) * self.ny + y) * self.nx + x

    def _entry(self, x: int, y: int, z: int, c: int) -> Entry:
        key = self._key(x, y, z, c)
        if isinstance(self.entries, dict):
            return self.entries.get(key)
        return self.entries[key]

    def missing(self) -> int:
        present = self.entries.values() if isinstance(self.entries, dict) else self.entries
        return self.nx * self.ny * self.nz * self.nc - sum(1 for e in present if e is not None)

    def _damaged(self, x: int, y: int, z: int, c: int, why: str) -> InputError:
        """The error for a frame that cannot be decoded: which frame of which file."""
        origin = self.origins.get(self._key(x, y, z, c))
        if origin is None:
            return InputError(f"{self.label} ({x}, {y}, z={z}, c={c}) cannot be decoded ({why})")
        path, number = origin
        return InputError(
            f"frame {number} cannot be decoded ({why}): the file is damaged",
            path=path,
            hint="fetch the file again, or re-export it from its source",
        )

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        entry = self._entry(x, y, z, c)
        if entry is None:
            if self.blank is None:
                raise InputError(f"{self.label} ({x}, {y}, z={z}, c={c}) is missing")
            return self.blank
        if isinstance(entry, RemoteFrame):
            data = entry.fetch()
            return data[:2] + self.insert + data[2:] if self.insert else data
        fd, ranges = entry
        parts = []
        for offset, length in ranges:
            data = os.pread(fd, length, offset)
            if len(data) != length:
                raise InputError(
                    f"{self.label} ({x}, {y}) is truncated: {length} bytes at {offset} expected",
                    hint="the file was cut short; fetch it again",
                )
            parts.append(data)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        if self.insert:
            data = data[:2] + self.insert + data[2:]
        return data

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        entry = self._entry(x, y, z, c)
        if entry is None:
            return len(self.blank) if self.blank is not None else None
        if isinstance(entry, RemoteFrame):
            return None
        return sum(length for _, length in entry[1]) + len(self.insert or b"")

    def frame_parts(self, keys: Iterable[tuple[int, int, int, int]]) -> Iterator[Frame]:
        for key in keys:
            entry = self._entry(*key)
            if entry is None or isinstance(entry, RemoteFrame):
                yield (self.encoded(*key),)
            else:
                fd, ranges = entry
                parts = [FileRange(fd, offset, length) for offset, length in ranges]
                if self.insert:
                    first = parts[0]
                    parts[:1] = [
                        FileRange(fd, first.offset, 2),
                        self.insert,
                        FileRange(fd, first.offset + 2, first.count - 2),
                    ]
                yield tuple(parts)

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        """The frame's pixels (rows, columns, samples); a frame that does not decode, or
        decodes to another shape or sample type than the header says, is refused."""
        data = self.encoded(x, y, z, c)
        rows, cols, samples = self.tile_shape
        if self.compression is Compression.NONE:
            array = np.frombuffer(data, np.dtype(self.dtype).newbyteorder("<"))
            if array.size != rows * cols * samples:
                raise self._damaged(x, y, z, c, f"{len(data)} bytes for {rows}×{cols}×{samples}")
            return array.reshape(rows, cols, samples)
        import imagecodecs

        try:
            array = imagecodecs.imread(data)
        except Exception as exc:  # imagecodecs raises a codec-specific error per codec
            raise self._damaged(x, y, z, c, f"{type(exc).__name__}: {exc}") from None
        if array.ndim == 2:
            array = array[..., None]
        if array.shape != (rows, cols, samples) or array.dtype != np.dtype(self.dtype):
            raise self._damaged(
                x,
                y,
                z,
                c,
                f"it holds {array.dtype} pixels of shape {array.shape}, the header says "
                f"{self.dtype} of {(rows, cols, samples)}",
            )
        return array
