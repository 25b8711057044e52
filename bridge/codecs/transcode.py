"""Lossless transcoding, for tiles whose codec or layout the target cannot hold as they are.

Principle (ARCHITECTURE.md): copy verbatim wherever possible; otherwise decode once and re-encode
losslessly by default. Candidate DICOM codecs (PS3.5 8.2, A.4) and why the defaults are what
they are is measured in ``benchmarks/codecs.py`` (numbers in README.md):

* ``jpegls``   JPEG-LS lossless (1.2.840.10008.1.2.4.80), CharLS via imagecodecs;
* ``jpeg2000`` JPEG 2000 lossless (1.2.840.10008.1.2.4.90), 5-3 reversible wavelet, OpenJPEG;
* ``htj2k``    High-Throughput JPEG 2000 lossless (1.2.840.10008.1.2.4.201), OpenJPH;
* ``native``   uncompressed (Explicit VR Little Endian).
"""

from __future__ import annotations

import enum
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from ..model import Codec, Compression, Frame, Level, Photometric


class Target(enum.Enum):
    NATIVE = "native"
    JPEGLS = "jpegls"
    JPEG2000 = "jpeg2000"
    HTJ2K = "htj2k"
    JPEG = "jpeg"  # only with --lossy


#: Defaults by bits per sample, chosen by measurement (benchmarks/codecs.py): 16-bit -> JPEG-LS
#: (fast, smallest, read by wsidicom, highdicom and Orthanc; OpenSlide reads no 16-bit data
#: anyway); 8-bit -> JPEG 2000, which OpenSlide also reads (it refuses JPEG-LS).
DEFAULTS = {8: Target.JPEG2000, 16: Target.JPEGLS}

_COMPRESSION = {
    Target.NATIVE: Compression.NONE,
    Target.JPEGLS: Compression.JPEGLS,
    Target.JPEG2000: Compression.JPEG2000,
    Target.HTJ2K: Compression.JPEG2000,
    Target.JPEG: Compression.JPEG,
}


def default_target(bits: int) -> Target:
    return DEFAULTS.get(bits, Target.JPEGLS)


def encode(array: np.ndarray, target: Target, quality: int | None = None) -> bytes:
    """Encode one tile (rows, columns[, samples]); lossless unless ``quality`` is given."""
    import imagecodecs

    data = np.ascontiguousarray(array if array.ndim == 2 or array.shape[2] > 1 else array[..., 0])
    if target is Target.NATIVE:
        return data.astype(data.dtype.newbyteorder("<"), copy=False).tobytes()
    if target is Target.JPEGLS:
        return imagecodecs.jpegls_encode(data, level=0 if quality is None else 100 - quality)
    if target is Target.JPEG2000:
        if quality is None:
            return imagecodecs.jpeg2k_encode(data, level=0, codecformat="J2K", reversible=True)
        return imagecodecs.jpeg2k_encode(data, level=quality, codecformat="J2K", reversible=False)
    if target is Target.HTJ2K:
        return imagecodecs.htj2k_encode(data, level=0 if quality is None else quality)
    if target is Target.JPEG:
        return imagecodecs.jpeg8_encode(data, level=quality or 90)
    raise ValueError(target)


def target_codec(source: Codec, target: Target, quality: int | None) -> Codec:
    """The codec of the re-encoded tiles."""
    mono = source.samples_per_pixel == 1
    lossless = quality is None and target is not Target.JPEG
    history = source.lossless is False or source.lossy_history
    if target is Target.JPEG:
        photometric = Photometric.MONOCHROME if mono else Photometric.YCBCR
        return Codec(
            Compression.JPEG,
            photometric,
            8,
            source.samples_per_pixel,
            subsampling=(1, 1) if mono else (2, 2),
            lossless=False,
            process=0xC0,
            lossy_history=True,
        )
    if target in (Target.JPEG2000, Target.HTJ2K) and not mono:
        photometric = Photometric.YBR_RCT if lossless else Photometric.YBR_ICT
    else:
        photometric = Photometric.MONOCHROME if mono else Photometric.RGB
    return Codec(
        _COMPRESSION[target],
        photometric,
        source.bits,
        source.samples_per_pixel,
        lossless=lossless,
        transcoded=target.value,
        lossy_history=history,
    )


class TranscodedTiles:
    """A level's tiles decoded and re-encoded, one tile at a time."""

    def __init__(self, level: Level, target: Target, quality: int | None = None):
        self.level = level
        self.target = target
        self.quality = quality

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        return encode(self.level.tiles.decoded(x, y, z, c), self.target, self.quality)

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return None

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        return self.level.tiles.decoded(x, y, z, c)

    def frame_parts(self, keys: Iterable[tuple[int, int, int, int]]) -> Iterator[Frame]:
        """Encoded tiles in order. Decoding stays in this thread (sources cache decoded
        segments); encoding, which releases the GIL in imagecodecs, runs on every core, with
        at most ``2 × cores`` tiles in flight so memory stays bounded."""
        workers = os.cpu_count() or 1
        if workers == 1:
            for key in keys:
                yield (self.encoded(*key),)
            return
        pending: deque[Future[bytes]] = deque()
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for key in keys:
                tile = self.level.tiles.decoded(*key)
                pending.append(pool.submit(encode, tile, self.target, self.quality))
                if len(pending) >= 2 * workers:
                    yield (pending.popleft().result(),)
            while pending:
                yield (pending.popleft().result(),)


def transcoded(level: Level, target: Target, quality: int | None = None) -> Level:
    """The level with its tiles re-encoded for ``target``."""
    from dataclasses import replace

    codec = target_codec(level.codec, target, quality)
    return replace(
        level,
        codec=codec,
        tiles=TranscodedTiles(level, target, quality),
        jpeg_tables=None,
        issue=None,
    )
