"""Missing pyramid levels, made by anti-aliased 2× reduction, streamed band by band.

A source without lower levels (a single-level OME-TIFF, a DICOM series with its base level only,
a pyramid that stops early) gets new levels below its smallest one until that fits in one tile.
Each new level is ``ceil(size / 2)`` of the level above and is made *from the level above*
(never from level 0, as libvips does). Existing levels are untouched, their tiles copied as
they are.

The filter (``--resample``) is separable and applied before decimation, so detail finer than
the new pixel is removed instead of folding back as moiré (the sampling theorem):

* ``box``: the 2×2 mean, taps (1, 1) / 2 per axis (libvips' ``--pyramid``);
* ``binomial``: taps (1, 3, 3, 1) / 8 per axis centred on the 2×2 block, a wider low-pass;
* ``lanczos``: Lanczos-3 at scale 2, 12 taps per axis (sharpest; values clipped to range).

At the edges every filter weighs only the pixels that exist (the weights are renormalised), so a
partial block at the right or bottom averages what is there: no black fringe. The default is
chosen by the measurement in ``benchmarks/pyramid_alias.py`` (numbers in README.md).

Streaming: the source level is decoded one tile row at a time (tiles in parallel), reduced
(row blocks in parallel), and every new level's bands are encoded (tiles in parallel) as soon as
they are complete, all levels in one pass per plane. The encoded tiles go to an anonymous
temporary file, so memory holds about one band per level, whatever the image's height (a band
is as wide as the level). imagecodecs and numpy release the GIL, so a thread pool uses every
core.

Codec of the new tiles (the source's family): JPEG sources give JPEG at the source's estimated
quality (from its quantisation tables), or ``--lossy Q``; other sources give the lossless codec
``bridge.codecs.transcode`` chooses for their bit depth. DICOM marks the new levels
``DERIVED\\PRIMARY\\VOLUME\\RESAMPLED`` (PS3.3 C.8.12.4.1.1) and carries the lossy history
(C.7.6.1.1.5) through ``Codec.lossy_history``.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np

from .codecs import transcode
from .errors import InputError
from .model import Codec, Compression, FileRange, Frame, Image, ImageKind, Level, Photometric, Slide


class Mode(enum.Enum):
    """``--pyramid``: add missing levels, keep the source's levels, or write level 0 only."""

    AUTO = "auto"
    KEEP = "keep"
    NONE = "none"


class Resample(enum.Enum):
    BOX = "box"
    BINOMIAL = "binomial"
    LANCZOS = "lanczos"


#: Chosen by benchmarks/pyramid_alias.py (README.md, "Pyramids").
DEFAULT_RESAMPLE = Resample.BINOMIAL


def taps(resample: Resample) -> tuple[int, np.ndarray]:
    """(R, weights): output pixel i of a 2× reduction is ``sum_t w[t] * x[2i + 1 - R + t]``
    for t in 0..2R-1, the taps symmetric about the block centre 2i + 0.5."""
    if resample is Resample.BOX:
        return 1, np.array([1, 1], np.int64)
    if resample is Resample.BINOMIAL:
        return 2, np.array([1, 3, 3, 1], np.int64)
    radius = 6  # Lanczos-3 stretched by the scale factor 2: support |d| < 6 source pixels
    d = np.arange(2 * radius) + 1 - radius - 0.5
    w = np.sinc(d / 2) * np.sinc(d / 6)
    return radius, w / w.sum()


def _weight_sums(n_in: int, n_out: int, radius: int, w: np.ndarray) -> np.ndarray:
    """For each output index, the sum of the weights of the taps that fall inside the image."""
    i = np.arange(n_out)[:, None]
    j = 2 * i + 1 - radius + np.arange(len(w))[None, :]
    inside = (j >= 0) & (j < n_in)
    return (w[None, :] * inside).sum(axis=1)


class Reducer:
    """A 2× separable reduction of a stream of full-width row chunks (rows, width, samples).

    ``push(rows)`` takes the next source rows (not copied) and computes every output row that
    became computable, block by block (in parallel on ``pool``), into ``sink(i0, i1)`` (a view
    for output rows i0..i1-1) or into a returned array; ``push(None, final=True)`` computes
    the rest. Between pushes only the few source rows a later output row still needs are kept.
    Integer images with integer taps are reduced in integer arithmetic (exact, rounding half
    up); float images and Lanczos in floating point.
    """

    def __init__(
        self,
        size: tuple[int, int],
        samples: int,
        dtype: np.dtype,
        resample: Resample,
        pool: ThreadPoolExecutor | None,
        split: int = 1 << 30,
    ):
        self.width, self.height = size
        self.out_w, self.out_h = -(-self.width // 2), -(-self.height // 2)
        self.samples = samples
        self.dtype = np.dtype(dtype)
        self.radius, self.w = taps(resample)
        integer_taps = self.w.dtype.kind == "i"
        small = self.dtype.kind == "u" and self.dtype.itemsize <= 2
        if integer_taps and small:
            self.acc = np.dtype(np.uint16 if self.dtype.itemsize == 1 else np.uint32)
        elif integer_taps and self.dtype.kind in "iu":
            self.acc = np.dtype(np.int64)
        else:
            self.acc = np.dtype(np.float64 if self.dtype.itemsize > 2 else np.float32)
        self.w_acc = self.w.astype(self.acc)
        self.wv = _weight_sums(self.height, self.out_h, self.radius, self.w)
        self.wh = _weight_sums(self.width, self.out_w, self.radius, self.w)
        self.total = self.w.sum()
        self.pool = pool
        self.split = split  # output blocks never straddle a multiple of this (a tile row)
        self.carry = np.empty((0, self.width, samples), self.dtype)
        self.base = 0  # source row index of carry[0]
        self.next_out = 0

    def push(
        self,
        rows: np.ndarray | None,
        final: bool = False,
        sink: Callable[[int, int], np.ndarray] | None = None,
    ) -> np.ndarray | None:
        current = None
        if rows is not None and len(rows):
            current = rows.reshape(len(rows), self.width, self.samples)
        cur_base = self.base + len(self.carry)
        end = cur_base + (len(current) if current is not None else 0)
        if final or end >= self.height:
            stop = self.out_h
        else:  # output i needs source rows up to 2i + R
            stop = max(self.next_out, min(self.out_h, (end - 1 - self.radius) // 2 + 1))
        start = self.next_out
        out = None
        if sink is None:
            out = np.empty((max(0, stop - start), self.out_w, self.samples), self.dtype)

            def sink(i0: int, i1: int) -> np.ndarray:
                return out[i0 - start : i1 - start]

        chunks = []
        i = start
        while i < stop:
            nxt = min(stop, (i // 8 + 1) * 8, (i // self.split + 1) * self.split)
            chunks.append((i, nxt))
            i = nxt

        def run(chunk: tuple[int, int]) -> None:
            i0, i1 = chunk
            source, base = self._source(i0, i1, current, cur_base)
            self._rows(source, base, i0, i1, sink(i0, i1))

        if self.pool is not None and len(chunks) > 1:
            list(self.pool.map(run, chunks))
        else:
            for chunk in chunks:
                run(chunk)
        self.next_out = stop
        keep = max(0, 2 * stop + 1 - self.radius)  # first source row still needed
        parts = []
        if keep < cur_base:
            parts.append(self.carry[keep - self.base :])
        if current is not None and keep < end:
            parts.append(current[max(0, keep - cur_base) :])
        self.carry = (
            np.concatenate(parts) if parts else np.empty((0, self.width, self.samples), self.dtype)
        )
        self.base = min(keep, end)
        return out

    def _source(
        self, i0: int, i1: int, current: np.ndarray | None, cur_base: int
    ) -> tuple[np.ndarray, int]:
        """The source rows output rows i0..i1-1 read, and the index of the first: the pushed
        rows themselves, or (at the seam with the previous push) a small joined copy."""
        lo = max(0, 2 * i0 + 1 - self.radius)
        hi = min(self.height, 2 * (i1 - 1) + self.radius + 1)
        if current is not None and lo >= cur_base:
            return current, cur_base
        if current is None or hi <= cur_base:
            return self.carry, self.base
        joined = np.concatenate([self.carry[lo - self.base :], current[: hi - cur_base]])
        return joined, lo

    def _rows(self, source: np.ndarray, base: int, i0: int, i1: int, dest: np.ndarray) -> None:
        """Output rows i0..i1-1: the vertical pass, then the horizontal pass, then the
        normalisation by the weights of the pixels that exist."""
        vert = _reduce_axis(source, i0, i1 - i0, self.height, base, self.radius,
                            self.w_acc, self.acc, axis=0)  # fmt: skip
        if self.acc == np.uint16 and self.samples == 4:
            # four 16-bit lanes in one 64-bit word (SWAR): the horizontal pass runs along
            # contiguous words instead of 4-sample pixels; no lane can overflow, the largest
            # sum is 64 × 255 (binomial) < 2**16
            words = vert.view(np.uint64)
            w64 = self.w_acc.astype(np.uint64)
            out = _reduce_axis(words, 0, self.out_w, self.width, 0, self.radius, w64,
                               np.dtype(np.uint64), axis=1)  # fmt: skip
            out = out.view(np.uint16)
        else:
            out = _reduce_axis(vert, 0, self.out_w, self.width, 0, self.radius, self.w_acc,
                               self.acc, axis=1)  # fmt: skip
        self._normalise(out, self.wv[i0:i1], dest)

    def _normalise(self, out: np.ndarray, wv: np.ndarray, result: np.ndarray) -> None:
        wh = self.wh
        if self.acc.kind == "f":
            out /= (wv[:, None] * wh[None, :]).astype(self.acc)[..., None]
            if self.dtype.kind == "f":
                result[...] = out
                return
            info = np.iinfo(self.dtype)
            result[...] = np.clip(np.rint(out), info.min, info.max)
            return
        total = int(self.total) ** 2
        full_rows = wv == self.total
        full_cols = wh == self.total
        edge_rows = np.flatnonzero(~full_rows)
        cols = np.flatnonzero(~full_cols)
        # edges: divide by the weights that exist (integer, round half up)
        fixed_rows = [
            (k, (out[k].astype(np.int64) + d // 2) // d)
            for k in edge_rows
            for d in [(int(wv[k]) * wh).astype(np.int64)[:, None]]
        ]
        fixed_cols = None
        if len(cols):
            d = (wv[:, None] * wh[None, cols]).astype(np.int64)[..., None]
            fixed_cols = (out[:, cols].astype(np.int64) + d // 2) // d
        if total & (total - 1) == 0 and self.acc.kind == "u":
            out += np.asarray(total // 2, self.acc)
            out >>= total.bit_length() - 1
            result[...] = out
        else:
            result[...] = (out + total // 2) // total
        for k, values in fixed_rows:
            result[k] = values
        if fixed_cols is not None:
            result[:, cols] = fixed_cols


def _reduce_axis(
    x: np.ndarray,
    i0: int,
    n: int,
    limit: int,
    base: int,
    radius: int,
    w: np.ndarray,
    acc: np.dtype,
    axis: int,
) -> np.ndarray:
    """Outputs i0..i0+n-1 along ``axis`` of ``sum_t w[t] * x[2i + 1 - R + t]`` (source index
    ``base`` is ``x``'s first), taps outside 0..limit-1 left out. Outputs whose taps are all
    inside are summed pairwise (the taps are symmetric: w[t] == w[2R-1-t])."""

    def along(start: int, count: int) -> np.ndarray:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start - base, start - base + 2 * count - 1, 2)
        return x[tuple(index)]

    shape = list(x.shape)
    shape[axis] = n
    out = np.empty(shape, acc)
    # interior outputs: every tap inside the image
    lo = min(n, max(0, -(-(radius - 1 - 2 * i0) // 2)))
    hi = max(lo, min(n, (limit - 1 - radius - 2 * i0) // 2 + 1))
    taps_n = len(w)

    def put(k0: int, k1: int) -> tuple[slice, ...]:
        index = [slice(None)] * x.ndim
        index[axis] = slice(k0, k1)
        return tuple(index)

    if hi > lo:
        target = out[put(lo, hi)]
        first = True
        for t in range(taps_n // 2):
            a = along(2 * (i0 + lo) + 1 - radius + t, hi - lo)
            b = along(2 * (i0 + lo) + 1 - radius + (taps_n - 1 - t), hi - lo)
            if first:
                np.add(a, b, out=target, dtype=acc)
                if w[t] != 1:
                    target *= w[t]
                first = False
            elif w[t] == 1:
                target += a
                target += b
            else:
                pair = np.add(a, b, dtype=acc)
                pair *= w[t]
                target += pair
    for k0, k1 in ((0, lo), (hi, n)):  # edge outputs: tap by tap, inside taps only
        if k1 <= k0:
            continue
        target = out[put(k0, k1)]
        target[...] = 0
        for t in range(taps_n):
            first = 2 * (i0 + k0) + 1 - radius + t
            j0, j1 = _span(first, k1 - k0, limit)
            if j1 > j0:
                part = target[put(j0, j1)]
                rows = along(first + 2 * j0, j1 - j0)
                if acc.kind != "f" and w[t] == 1:
                    np.add(part, rows, out=part, casting="unsafe")
                else:
                    np.add(part, np.multiply(rows, w[t], dtype=acc), out=part)
    return out


def _span(first: int, n: int, limit: int) -> tuple[int, int]:
    """The k range [k0, k1) of 0..n-1 for which ``first + 2k`` lies in 0..limit-1."""
    k0 = -(first // 2) if first < 0 else 0
    k1 = min(n, (limit - 1 - first) // 2 + 1)
    return k0, max(k0, k1)


# -- codec of the new levels ----------------------------------------------------------------

_ZIGZAG = np.array(
    [0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34,
     27, 20, 13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44,
     51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63]
)  # fmt: skip
#: ITU-T T.81 Annex K Table K.1, the luminance quantisation table IJG quality scales (natural order)
_LUMA = np.array(
    [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
     56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81,
     104, 113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
)  # fmt: skip


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return np.clip((_LUMA * scale + 50) // 100, 1, 255)


def estimate_quality(stream: bytes) -> int | None:
    """The IJG quality (1-100) whose luminance table (T.81 K.1 scaled as libjpeg does) is
    nearest the stream's first 8-bit DQT table (T.81 B.2.4.1); None without one."""
    pos = 2
    while pos + 4 <= len(stream) and stream[pos] == 0xFF:
        marker = stream[pos + 1]
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        if marker == 0xDB:
            pq_tq = stream[pos + 4]
            if pq_tq >> 4 == 0 and pos + 5 + 64 <= len(stream):
                zz = np.frombuffer(stream[pos + 5 : pos + 5 + 64], np.uint8).astype(np.int64)
                table = np.empty(64, np.int64)
                table[_ZIGZAG] = zz
                errors = [np.abs(_ijg_table(q) - table).sum() for q in range(1, 101)]
                return int(np.argmin(errors)) + 1
            return None
        if marker in (0xDA, 0xD9):
            return None
        pos += 2 + length
    return None


@dataclasses.dataclass(frozen=True)
class Encoding:
    """How the new tiles are stored: a JPEG quality, a lossless target, or raw samples."""

    codec: Codec
    encode: Callable[[np.ndarray], bytes]


def choose_encoding(level: Level, quality: int | None, raw: bool) -> Encoding:
    """The source's codec family: JPEG at the estimated (or given) quality for 8-bit JPEG,
    the lossless default for the bit depth otherwise, raw samples when ``raw`` (the writer
    re-encodes every level anyway, ``--codec``)."""
    source = level.codec
    mono = source.samples_per_pixel == 1
    if raw:
        codec = Codec(
            Compression.NONE,
            Photometric.MONOCHROME if mono else Photometric.RGB,
            source.bits,
            source.samples_per_pixel,
            lossless=True,
            signed=source.signed,
            floating=source.floating,
            lossy_history=source.lossless is False or source.lossy_history,
        )
        return Encoding(codec, lambda a: transcode.encode(a, transcode.Target.NATIVE))
    if source.compression is Compression.JPEG and source.bits == 8 and not source.lossless:
        if quality is None:
            try:
                quality = estimate_quality(level.tiles.encoded(0, 0)) or 90
            except Exception:  # a damaged first tile: decoding will say so
                quality = 90
        sub = (1, 1) if mono else (source.subsampling if source.photometric is Photometric.YCBCR
                                   else (2, 2))  # fmt: skip
        codec = Codec(
            Compression.JPEG,
            Photometric.MONOCHROME if mono else Photometric.YCBCR,
            8,
            source.samples_per_pixel,
            subsampling=sub,
            lossless=False,
            process=0xC0,
            lossy_history=True,
        )
        import imagecodecs

        subsampling = {(1, 1): "444", (2, 1): "422", (2, 2): "420"}.get(sub, "420")
        q = quality

        def jpeg(a: np.ndarray) -> bytes:
            if mono:
                return imagecodecs.jpeg8_encode(a[..., 0], level=q)
            space = "RGBA" if a.shape[2] == 4 else None  # the 4th lane is ignored
            return imagecodecs.jpeg8_encode(
                a, level=q, colorspace=space, outcolorspace="YCBCR", subsampling=subsampling
            )

        return Encoding(codec, jpeg)
    if quality is not None and source.bits == 8:
        target = transcode.Target.JPEG
    else:
        target = transcode.default_target(source.bits)
        quality = None
    codec = transcode.target_codec(source, target, quality)
    return Encoding(codec, lambda a: transcode.encode(a, target, quality))


# -- the generated levels -------------------------------------------------------------------


class PyramidBuilder:
    """Makes every new level of one image, plane by plane, on the first request for a plane.

    All new levels of a plane come out of one pass over the source level (tile row by tile
    row), their encoded tiles appended to an anonymous temporary file.
    """

    def __init__(
        self,
        image: Image,
        source: Level,
        sizes: Sequence[tuple[int, int]],
        encoding: Encoding,
        resample: Resample,
        workers: int | None = None,
        path: str | None = None,
    ):
        self.path = path or image.name or "the source"
        self.image = image
        self.source = source
        self.sizes = list(sizes)
        self.encoding = encoding
        self.resample = resample
        self.workers = workers or os.cpu_count() or 1
        self.tile = source.tile_size
        self.samples = source.codec.samples_per_pixel
        self.dtype = np.dtype(image.dtype)
        # 8-bit RGB is held as RGBX: 4-byte pixels, decoded and encoded so by libjpeg-turbo,
        # reduced four lanes at a time (Reducer)
        self.lanes = 4 if self.samples == 3 and self.dtype == np.uint8 else self.samples
        codec = source.codec
        self.jpeg_out = encoding.codec.compression is Compression.JPEG
        self.scratch = threading.local()
        self.jpeg = (
            codec.compression is Compression.JPEG
            and codec.bits == 8
            and not codec.lossless
            and not getattr(source.tiles, "decode_only", False)
        )
        self.index: dict[tuple[int, int, int, int, int], tuple[int, int]] = {}
        self.done: set[tuple[int, int]] = set()
        # closed by close(), which the slide's close calls
        self.spill = tempfile.TemporaryFile(prefix="omedicom-pyramid-")  # noqa: SIM115
        self.size = 0
        self.lock = threading.Lock()
        # sources that cache decoded segments are not safe to decode from several threads
        self.serial = threading.Lock() if getattr(source.tiles, "decode_only", False) else None

    def close(self) -> None:
        self.spill.close()

    def levels(self) -> list[Level]:
        nx0 = self.source.index + 1
        base_w, base_h = self.image.size
        return [
            Level(
                nx0 + k,
                size,
                self.tile,
                self.encoding.codec,
                GeneratedTiles(self, k),
                downsample=(base_w / size[0], base_h / size[1]),
            )
            for k, size in enumerate(self.sizes)
        ]

    # -- building ---------------------------------------------------------------------------

    def ensure(self, z: int, c: int) -> None:
        with self.lock:
            if (z, c) not in self.done:
                try:
                    self._build(z, c)
                except InputError as exc:  # a damaged tile: copying would not have noticed
                    exc.message += (
                        f" (new pyramid levels are made from every tile of level "
                        f"{self.source.index})"
                    )
                    exc.args = (f"{exc.path}: {exc.message}" if exc.path else exc.message,)
                    keep = "convert with --pyramid keep to copy the tiles as they are"
                    exc.hint = f"{exc.hint}; or {keep}" if exc.hint else keep
                    raise
                self.done.add((z, c))

    def _decode_into(self, band: np.ndarray, x: int, *, y: int, z: int, c: int) -> None:
        """Decode source tile (x, y) into its place in ``band`` (the tile row's pixels)."""
        tw = self.tile[0]
        rows, cols = band.shape[0], min(tw, band.shape[1] - x * tw)
        if self.jpeg:  # straight through libjpeg-turbo, RGBX when the band is
            import imagecodecs

            from .ometiff.tiles import decode_errors

            data = self.source.tiles.encoded(x, y, z, c)
            space = "RGBA" if self.lanes == 4 else None
            # into a buffer each thread reuses: fresh pages for every tile cost a third more
            scratch = getattr(self.scratch, "tile", None)
            if scratch is None:
                shape = (self.tile[1], self.tile[0], self.lanes)
                scratch = self.scratch.tile = np.empty(shape, np.uint8)
            with decode_errors(f"tile ({x}, {y})", str(self.path)):
                try:
                    array = imagecodecs.jpeg8_decode(data, outcolorspace=space, out=scratch)
                except Exception:  # another size than the tiling says: decode it as it is
                    array = imagecodecs.jpeg8_decode(data, outcolorspace=space)
        elif self.serial is not None:
            with self.serial:
                array = self.source.tiles.decoded(x, y, z, c)
        else:
            array = self.source.tiles.decoded(x, y, z, c)
        array = array.reshape(array.shape[0], array.shape[1], -1)
        if array.shape[0] < rows or array.shape[1] < cols:
            raise InputError(
                f"tile ({x}, {y}) of level {self.source.index} decodes to "
                f"{array.shape[1]}×{array.shape[0]} px, smaller than its place in the level"
            )
        target = band[:, x * tw : x * tw + cols]
        if array.shape[2] == band.shape[2]:
            target[...] = array[:rows, :cols]
        else:
            target[..., : self.samples] = array[:rows, :cols, : self.samples]

    def _build(self, z: int, c: int) -> None:
        tw, th = self.tile
        width, height = self.source.size
        nx, ny = self.source.grid
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            sizes = [self.source.size, *self.sizes]
            reducers = [
                Reducer(sizes[k], self.lanes, self.dtype, self.resample, pool, split=th)
                for k in range(len(self.sizes))
            ]
            # Each new level's rows go into one buffer: a tile row (th rows) plus room for
            # what one push (PIECE source rows) makes beyond it. A complete tile row is
            # emitted, and the rows after it moved to the front.
            piece = max(16, th // 4)
            rings = [
                np.empty((th + piece // 2 + 16, w, self.lanes), self.dtype) for w, _ in self.sizes
            ]
            starts = [0] * len(self.sizes)  # output row held in rings[k][0]

            def sink(k: int) -> Callable[[int, int], np.ndarray]:
                """Output rows of new level k go straight into its buffer."""

                def view(i0: int, i1: int) -> np.ndarray:
                    return rings[k][i0 - starts[k] : i1 - starts[k]]

                return view

            def emit(k: int, y: int, band: np.ndarray, final: bool) -> None:
                """Tile row y of new level k is complete: encode its tiles, then hand it to
                the next level's reducer."""
                cols = -(-self.sizes[k][0] // tw)

                def encode(x: int) -> bytes:
                    tile = band[:, x * tw : (x + 1) * tw]
                    if tile.shape[0] != th or tile.shape[1] != tw:  # edge: pad by repetition
                        tile = np.pad(
                            tile,
                            ((0, th - tile.shape[0]), (0, tw - tile.shape[1]), (0, 0)),
                            mode="edge",
                        )
                    if tile.shape[2] != self.samples and not self.jpeg_out:
                        tile = tile[..., : self.samples]
                    return self.encoding.encode(np.ascontiguousarray(tile))

                for x, data in enumerate(pool.map(encode, range(cols))):
                    self.index[(k, z, c, x, y)] = (self.size, len(data))
                    self.spill.write(data)
                    self.size += len(data)
                if k + 1 < len(self.sizes):
                    feed(k + 1, band, final)

            def feed(k: int, rows: np.ndarray | None, final: bool) -> None:
                """Rows of the level above new level k, pushed PIECE rows at a time;
                ``final``: the last of them."""
                count = 0 if rows is None else len(rows)
                cuts = list(range(0, count, piece)) or [0]
                for j, cut in enumerate(cuts):
                    last = final and j == len(cuts) - 1
                    part = None if rows is None else rows[cut : cut + piece]
                    reducers[k].push(part, final=last, sink=sink(k))
                    drain(k, last)

            def drain(k: int, final: bool) -> None:
                """Emit the complete tile rows of new level k."""
                height_k = self.sizes[k][1]
                emitted = False
                while True:
                    rows = min(th, height_k - starts[k])
                    held = reducers[k].next_out - starts[k]
                    if rows <= 0 or held < rows:
                        break
                    ring = rings[k]
                    emit(k, starts[k] // th, ring[:rows], final and starts[k] + rows >= height_k)
                    ring[: held - rows] = ring[rows:held]
                    starts[k] += rows
                    emitted = True
                if final and not emitted and k + 1 < len(self.sizes):
                    feed(k + 1, None, True)

            rows_buffer = np.empty((th, width, self.lanes), self.dtype)  # reused: no page faults
            for y in range(ny):
                band = rows_buffer[: min(th, height - y * th)]
                list(pool.map(partial(self._decode_into, band, y=y, z=z, c=c), range(nx)))
                feed(0, band, y == ny - 1)
        self.spill.flush()

    # -- serving ----------------------------------------------------------------------------

    def entry(self, k: int, x: int, y: int, z: int, c: int) -> tuple[int, int]:
        self.ensure(z, c)
        return self.index[(k, z, c, x, y)]

    def read(self, k: int, x: int, y: int, z: int, c: int) -> bytes:
        offset, count = self.entry(k, x, y, z, c)
        return os.pread(self.spill.fileno(), count, offset)


class GeneratedTiles:
    """The tile source of one new level (``bridge.model.TileSource``)."""

    def __init__(self, builder: PyramidBuilder, k: int):
        self.builder = builder
        self.k = k

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        return self.builder.read(self.k, x, y, z, c)

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return self.builder.entry(self.k, x, y, z, c)[1]

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        data = self.encoded(x, y, z, c)
        codec = self.builder.encoding.codec
        tw, th = self.builder.tile
        if codec.compression is Compression.NONE:
            dtype = self.builder.dtype.newbyteorder("<")
            return np.frombuffer(data, dtype).reshape(th, tw, -1)
        import imagecodecs

        array = imagecodecs.imread(data)
        return array.reshape(array.shape[0], array.shape[1], -1)

    def stored_bytes(self) -> int:
        """The size of all this level's encoded tiles, every plane (makes them first)."""
        for z in range(self.builder.image.size_z):
            for c in range(self.builder.image.size_c):
                self.builder.ensure(z, c)
        return sum(n for key, (_, n) in self.builder.index.items() if key[0] == self.k)

    def frame_parts(self, keys: Iterable[tuple[int, int, int, int]]) -> Iterator[Frame]:
        fd = self.builder.spill.fileno()
        for x, y, z, c in keys:
            offset, count = self.builder.entry(self.k, x, y, z, c)
            yield (FileRange(fd, offset, count),)


def missing_sizes(level: Level, single: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes of the levels to add below ``level`` until one fits in ``single`` (w, h)."""
    w, h = level.size
    sizes = []
    while w > single[0] or h > single[1]:
        w, h = -(-w // 2), -(-h // 2)
        sizes.append((w, h))
    return sizes


def apply(
    slide: Slide,
    mode: Mode,
    *,
    resample: Resample = DEFAULT_RESAMPLE,
    quality: int | None = None,
    raw: bool = False,
    workers: int | None = None,
) -> Slide:
    """The slide with its pyramids completed (``auto``), cut to level 0 (``none``) or as it is
    (``keep``); associated images are never touched."""
    if mode is Mode.KEEP:
        return slide
    images: list[Image] = []
    builders: list[PyramidBuilder] = []
    for image in slide.images:
        if image.kind is not ImageKind.VOLUME or not image.levels:
            images.append(image)
            continue
        if mode is Mode.NONE:
            images.append(dataclasses.replace(image, levels=image.levels[:1]))
            continue
        last = image.levels[-1]
        sizes = missing_sizes(last, last.tile_size)
        if not sizes or last.issue or last.codec.floating:  # no lossless codec for floats
            images.append(image)
            continue
        encoding = choose_encoding(last, quality, raw)
        builder = PyramidBuilder(image, last, sizes, encoding, resample, workers, path=slide.source)
        builders.append(builder)
        images.append(dataclasses.replace(image, levels=image.levels + tuple(builder.levels())))
    if not builders:
        return dataclasses.replace(slide, images=tuple(images))
    previous = slide.close

    def close() -> None:
        for b in builders:
            b.close()
        if previous:
            previous()

    return dataclasses.replace(slide, images=tuple(images), close=close)
