"""Hamamatsu NDPI: levels stored as one JPEG strip each, split into tiles without decoding.

Layout (tifffile ``TiffFile._series_ndpi`` and ``TiffPage`` NDPI handling; OpenSlide
``openslide-vendor-hamamatsu.c``): classic TIFF with 64-bit IFD offsets; each pyramid level is
one page whose single strip is a complete JPEG interchange stream with a restart interval (DRI)
of one "stripe" (DRI MCUs wide, one MCU row high); tag 65426 McuStarts gives the byte offset of
each restart interval in the strip (65432 its high bytes). tifffile turns those into per-stripe
data offsets and a stripe-sized JPEG header, which is what is used here.

Tiles (as opentile's ``NdpiStripedPage`` does): a tile is kx × ky stripes. Its stream is the
strip's header with the SOF height and width set to the tile's, then the entropy-coded
segments of its stripes, each ended by RSTm (m counting 0-7 again from the tile's start),
then EOI. Restart intervals reset the DC predictors (ITU-T T.81 F.1.1.5.2 / F.2.1.3.1), so
each segment decodes the same in the new stream: the entropy-coded data is copied, not
re-encoded.

Metadata: 65421 Magnification (-1 marks the macro, -2 the map), 65422/65423 X/YOffsetFrom-
SlideCenter in nm, XResolution/YResolution in centimetres.
"""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile

from ..codecs import jpeg
from ..errors import InputError
from ..model import (
    DEFAULT_ORIENTATION,
    SLIDE_SIZE_MM,
    Codec,
    Compression,
    Equipment,
    Level,
    Objective,
)
from ..model import ImageKind as Kind
from ..ometiff.tiles import RawFile, decode_errors
from . import generic
from .plan import DialectPlan, ImagePlan

#: largest tile side made of stripes (pixels)
TILE_TARGET = 512
_RST = [bytes((0xFF, 0xD0 + m)) for m in range(8)]


def plan(tf: tifffile.TiffFile, path: object) -> DialectPlan:
    """The NDPI pyramid (series "Baseline") and macro (Magnification -1)."""
    warnings: list[str] = []
    images = []
    for series in tf.series:
        first = series.levels[0].keyframe.aspage()
        mag = first.tags.valueof(65421)
        if mag is not None and mag == -1.0:
            kind = Kind.OVERVIEW
        elif series.is_pyramidal or (mag is not None and mag > 0 and not images):
            kind = Kind.VOLUME
        else:
            warnings.append(f"the NDPI series {series.name!r} is not converted (not a pyramid)")
            continue
        if kind is Kind.VOLUME and any(i.kind is Kind.VOLUME for i in images):
            warnings.append(f"the NDPI series {series.name!r} is a second pyramid; skipped")
            continue
        levels = tuple({(0, 0): level.keyframe.aspage()} for level in series.levels)
        image = ImagePlan(
            kind=kind,
            name="macro" if kind is Kind.OVERVIEW else (getattr(path, "stem", None) or "ndpi"),
            levels=levels if kind is Kind.VOLUME else levels[:1],
        )
        if kind is Kind.VOLUME:
            size = generic.pixel_size(first, warnings)
            image = replace(
                image,
                pixel_size_um=size,
                objective=Objective(magnification=float(mag)) if mag and mag > 0 else None,
                origin_mm=_origin(first, size),
                orientation=DEFAULT_ORIENTATION,
            )
        images.append(image)
    if not any(i.kind is Kind.VOLUME for i in images):
        raise InputError("the NDPI file has no pyramid", path=path)
    images.sort(key=lambda i: i.kind is not Kind.VOLUME)
    page = tf.pages.first
    equipment = Equipment(
        manufacturer=_text(page.tags.valueof(271)),  # Make
        model=_text(page.tags.valueof(272)),  # Model
        serial_number=_text(page.tags.valueof(65442)),  # ScannerSerialNumber
    )
    return DialectPlan("Hamamatsu NDPI", tuple(images), tuple(warnings), equipment)


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _origin(
    page: tifffile.TiffPage, size: tuple[float, float] | None
) -> tuple[float, float] | None:
    """Total Pixel Matrix Origin (mm) from the image centre's offset from the slide centre.

    NDPI gives X/YOffsetFromSlideCenter in nm (tags 65422, 65423), image x along the slide's
    long side. On the model's 25 × 75 mm slide with the default orientation (image x along
    slide +Y, image y along slide +X; ``model.DEFAULT_ORIENTATION``) the top-left pixel sits at
    centre + offset - half the imaged size."""
    ox, oy = page.tags.valueof(65422), page.tags.valueof(65423)
    if ox is None or oy is None or size is None:
        return None
    assert DEFAULT_ORIENTATION == (0.0, 1.0, 0.0, 1.0, 0.0, 0.0)
    half_w = page.imagewidth * size[0] / 2000.0
    half_h = page.imagelength * size[1] / 2000.0
    x = SLIDE_SIZE_MM[0] / 2 + oy / 1e6 - half_h
    y = SLIDE_SIZE_MM[1] / 2 + ox / 1e6 - half_w
    return (x, y)


def _divisor(count: int, step: int, target: int = TILE_TARGET) -> int:
    """The largest k dividing ``count`` with k × step <= target (at least 1)."""
    best = 1
    for k in range(1, count + 1):
        if count % k == 0 and k * step <= target:
            best = k
    return best


def _patch_sof(header: bytes, width: int, height: int) -> bytes:
    """The header with the SOF's number of lines and samples per line set (T.81 B.2.2)."""
    pos = 2
    while pos + 4 <= len(header):
        if header[pos] != 0xFF:
            raise jpeg.JpegError(f"no marker at offset {pos} of the NDPI JPEG header")
        marker = header[pos + 1]
        length = struct.unpack(">H", header[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return header[: pos + 5] + struct.pack(">HH", height, width) + header[pos + 9 :]
        pos += 2 + length
    raise jpeg.JpegError("the NDPI JPEG header has no SOF segment")


class NdpiTileSource:
    """Tiles of kx × ky stripes of one NDPI level, assembled from the stored segments."""

    def __init__(
        self,
        raw: RawFile,
        header: bytes,
        offsets: tuple[int, ...],
        counts: tuple[int, ...],
        stripes: tuple[int, int],
        per_tile: tuple[int, int],
        tile_size: tuple[int, int],
        label: str,
    ):
        self.raw = raw
        self.header = _patch_sof(header, *tile_size)
        self.offsets, self.counts = offsets, counts
        self.nsx, self.nsy = stripes
        self.kx, self.ky = per_tile
        self.label = label

    def _segment(self, i: int) -> bytes:
        data = self.raw.read(self.offsets[i], self.counts[i], f"{self.label} stripe {i}")
        end = data.rstrip(b"\0")  # a stripe may be followed by padding
        if len(end) < 2 or end[-2] != 0xFF or not (0xD0 <= end[-1] <= 0xD9):
            raise InputError(
                f"{self.label}: stripe {i} does not end with a restart marker or EOI; the "
                "McuStarts tag does not match the JPEG strip",
                path=self.raw.path,
            )
        return end[:-2]

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        parts = [self.header]
        n = 0
        for row in range(y * self.ky, (y + 1) * self.ky):
            for col in range(x * self.kx, (x + 1) * self.kx):
                if n:
                    parts.append(_RST[(n - 1) % 8])
                parts.append(self._segment(row * self.nsx + col))
                n += 1
        parts.append(jpeg.EOI)
        return b"".join(parts)

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return None

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray:
        import imagecodecs

        with decode_errors(f"{self.label} ({x}, {y})", self.raw.path):
            array = imagecodecs.jpeg8_decode(self.encoded(x, y, z, c))
        return array.reshape(array.shape[0], array.shape[1], -1)


def strip_level(
    path: Path,
    raw: RawFile,
    li: int,
    pages: dict[tuple[int, int], tifffile.TiffPage],
    size0: tuple[int, int],
    where: str,
    warnings: list[str],
) -> Level | None:
    """A level whose JPEG strip tifffile split at McuStarts, as tiles of whole stripes; None
    when the page has no McuStarts (the caller decodes the strip then)."""
    page = pages[(0, 0)]
    header = getattr(page, "jpegheader", None)
    if not header or page.tags.valueof(65426) is None or len(page.dataoffsets) < 2:
        return None
    what = f"{where} level {li}"
    size = (page.imagewidth, page.imagelength)
    sw, sh = page.tilewidth, page.tilelength
    nsx, nsy = -(-size[0] // sw), -(-size[1] // sh)
    if nsx * nsy != len(page.dataoffsets):
        warnings.append(
            f"{what}: {len(page.dataoffsets)} restart intervals for {nsx}×{nsy} stripes; "
            "the strip is decoded instead"
        )
        return None
    kx, ky = _divisor(nsx, sw), _divisor(nsy, sh)
    tile = (kx * sw, ky * sh)
    source = NdpiTileSource(
        raw,
        bytes(header),  # SOI to SOS, the SOF set to one stripe by tifffile
        tuple(page.dataoffsets),
        tuple(page.databytecounts),
        (nsx, nsy),
        (kx, ky),
        tile,
        what,
    )
    try:
        parsed = jpeg.parse_header(source.encoded(0, 0))
    except jpeg.JpegError as exc:
        raise InputError(
            f"{what}: the NDPI strip is not a JPEG stream ({exc})", path=path
        ) from None
    photometric, insert = jpeg.decide_photometric(parsed, tiff_rgb=int(page.photometric) == 2)
    if insert:
        return None  # an unsignalled RGB strip: the decoding path says what it does
    codec = Codec(
        compression=Compression.JPEG,
        photometric=photometric,
        bits=8,
        samples_per_pixel=len(parsed.components),
        subsampling=parsed.subsampling,
        lossless=parsed.lossless,
        process=parsed.sof & 0xFF,
    )
    warnings.append(
        f"{what}: JPEG strip split at its restart markers into {tile[0]}×{tile[1]} tiles "
        f"({kx}×{ky} stripes of {sw}×{sh}); the entropy-coded data is copied"
    )
    return Level(
        li,
        size,
        tile,
        codec,
        source,
        (size0[0] / size[0], size0[1] / size[1]),
        None,
        int(sum(page.databytecounts)),
    )
