"""Where a DICOM reader's frames come from: local files, or a DICOMweb series read lazily.

The reader asks a provider for each instance's frame entries; the tile source then reads an
entry only when a writer asks for that tile. Local files give ``(fd, ranges)`` (file ranges
for kernel copies); a remote series gives :class:`RemoteFrame` handles fetched through WADO-RS
in the stored transfer syntax, a run of frames per request, so a slide streams from a PACS
into a writer with no local copy of the whole slide.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydicom.dataset import Dataset

from ..errors import InputError
from .frames import index_frames


class RemoteSeries(Protocol):
    """What a DICOMweb series must offer (``bridge.pacs.dicomweb.RemoteSeries`` does)."""

    def transfer_syntax(self, sop_instance_uid: str) -> str: ...

    def frames(self, sop_instance_uid: str, numbers: Sequence[int]) -> Iterator[bytes]: ...


@dataclass(frozen=True, slots=True)
class RemoteFrame:
    """Frame ``number`` (1-based) of a remote instance."""

    fetcher: RemoteFrames
    uid: str
    number: int
    count: int  # frames in the instance

    def fetch(self) -> bytes:
        return self.fetcher.frame(self.uid, self.number, self.count)


class FileFrames:
    """Frames of local files: one descriptor per file, frames located without loading them."""

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}

    def entries(
        self, path: Path, ds: Dataset, n_frames: int, frame_size: int
    ) -> tuple[list, bool, int]:
        """(entries, encapsulated, stored bytes) of one instance."""
        index = index_frames(path, n_frames, frame_size, ds)
        fd = self.fds.get(str(path))
        if fd is None:
            fd = self.fds[str(path)] = os.open(path, os.O_RDONLY)
        stored = sum(length for ranges in index.ranges for _, length in ranges)
        return [(fd, ranges) for ranges in index.ranges], index.encapsulated, stored

    def first(self, entry: tuple) -> bytes:
        fd, ranges = entry
        return b"".join(os.pread(fd, length, offset) for offset, length in ranges)

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


class RemoteFrames:
    """Frames of a DICOMweb series, fetched on demand, ``run`` frames per request, the most
    recent ``keep`` frames cached (writers read tiles in order)."""

    def __init__(self, series: RemoteSeries, *, run: int = 32, keep: int = 64):
        self.series = series
        self.run = run
        self.cache: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self.keep = keep

    def entries(
        self, path: Path, ds: Dataset, n_frames: int, frame_size: int
    ) -> tuple[list, bool, int]:
        uid = str(ds.SOPInstanceUID)
        syntax = ds.file_meta.TransferSyntaxUID
        frames = [RemoteFrame(self, uid, k + 1, n_frames) for k in range(n_frames)]
        return frames, syntax.is_compressed, 0

    def first(self, entry: RemoteFrame) -> bytes:
        return entry.fetch()

    def frame(self, uid: str, number: int, count: int) -> bytes:
        key = (uid, number)
        if key not in self.cache:
            numbers = list(range(number, min(count, number + self.run - 1) + 1))
            for n, data in zip(numbers, self.series.frames(uid, numbers), strict=False):
                if data.endswith(b"\xff\xd9\x00"):  # the pad byte of an odd-length stream
                    data = data[:-1]
                self.cache[(uid, n)] = data
                while len(self.cache) > self.keep:
                    self.cache.popitem(last=False)
        if key not in self.cache:
            raise InputError(f"frame {number} of instance {uid} did not arrive")
        return self.cache[key]

    def close(self) -> None:
        self.cache.clear()
