"""Scanner TIFF dialects -> slide model (the dialect modules say what the pages are; this
module makes levels of them with the OME-TIFF reader's level code, so tiles are handed out
as stored: JPEG with shared JPEGTables merged, JPEG 2000 codestreams, NDPI strips split at
restart markers).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import tifffile

from ..errors import BridgeError, InputError, MetadataError, UnsupportedError
from ..model import (
    Carriers,
    Compression,
    Image,
    ImageKind,
    Level,
    Photometric,
    Slide,
    TiffLevelInfo,
)
from ..ometiff.reader import (
    _PARSE_ERRORS,
    _check_counts,
    _icc_profile,
    _level_issue,
    _read_level,
    _stem,
    _TiffLog,
    check_layout,
    tiff_structure,
)
from ..ometiff.tiles import PageTiles, RawFile, TiffTileSource
from .plan import DialectPlan, ImagePlan

#: TIFF Compression values Aperio gives its JPEG 2000 tiles (tifffile.COMPRESSION
#: APERIO_JP2000_YCBC, APERIO_JP2000_RGB). 33003 codestreams hold full-range Y, Cb, Cr as their
#: components with no multiple component transform (COD MCT byte 0), so a decoder returns
#: YCbCr and OpenSlide converts it to RGB after decoding. DICOM has no label for that in a
#: WSI: YBR_ICT means a decoder returns RGB (PS3.5 8.2.4) and the WSI module allows only
#: MONOCHROME2, RGB, YBR_FULL_422, YBR_ICT, YBR_RCT (PS3.3 C.8.12.4.1.5; dciodvfy rejects
#: YBR_FULL). The tiles are copied with the MCT byte switched on instead (``jpeg2000.with_ict``),
#: which makes them true YBR_ICT streams. 33005 holds RGB unless its Photometric tag says YCbCr.
#: Aperio's two JPEG 2000 compressions: 33003 YCbCr components, 33005 RGB.
APERIO_J2K = (33003, 33005)
APERIO_J2K_YCBCR = 33003


def dialect_of(tf: tifffile.TiffFile) -> str:
    """The dialect module for a TIFF without OME-XML, by tifffile's recognition."""
    if tf.is_svs:
        return "svs"
    if tf.is_qpi:
        return "qptiff"
    if tf.is_ndpi:
        return "ndpi"
    if tf.is_philips:
        return "philips"
    return "generic"


def _plan(kind: str, tf: tifffile.TiffFile, path: Path) -> DialectPlan:
    if kind == "svs":
        from . import svs

        return svs.plan(tf, path)
    if kind == "qptiff":
        from . import qptiff

        return qptiff.plan(tf, path)
    if kind == "ndpi":
        from . import ndpi

        return ndpi.plan(tf, path)
    if kind == "philips":
        from . import philips

        return philips.plan(tf, path)
    from . import generic

    return generic.plan(tf, path)


def read(path: str | os.PathLike[str]) -> Slide:
    """Open a scanner TIFF (no OME-XML) and describe it as a :class:`Slide`.

    The returned slide's ``close`` releases the file; ``Slide.dialect`` names the dialect.
    """
    path = Path(path)
    with _TiffLog() as log:
        try:
            tf = tifffile.TiffFile(path)
        except _PARSE_ERRORS as exc:
            raise InputError(
                f"the TIFF structure cannot be read ({type(exc).__name__}: {exc})",
                path=path,
                hint="the TIFF structure is damaged; export or fetch the file again",
            ) from None
        raw = RawFile(str(path))
        try:
            log.refuse_damage(path)
            with tiff_structure(path, "the TIFF dialect's pages"):
                plan = _plan(dialect_of(tf), tf, path)
            slide = _slide(path, plan, raw)
            log.refuse_damage(path)
        except BridgeError as exc:
            raw.close()
            tf.close()
            raise exc.at(path) from None
        except Exception:
            raw.close()
            tf.close()
            raise
    tf.close()
    return slide


def _slide(path: Path, plan: DialectPlan, raw: RawFile) -> Slide:
    warnings = list(plan.warnings)
    images = [_image(path, raw, index, ip, warnings) for index, ip in enumerate(plan.images)]
    tiff_info = tuple(
        TiffLevelInfo(image.source_index, lv.index, lv.jpeg_tables, lv.codec.inserted_marker)
        for image in images
        for lv in image.levels
    )
    return Slide(
        slide_id=_stem(path),
        images=tuple(images),
        carriers=Carriers(tiff=tiff_info),
        source=str(path),
        warnings=tuple(warnings),
        dialect=plan.dialect,
        equipment=plan.equipment,
        close=raw.close,
    )


def nominal_downsample(size0: tuple[int, int], size: tuple[int, int]) -> tuple[float, float]:
    """The factor a level was reduced by: a power of two when each side is that fraction of
    level 0 rounded either way (pyramid writers halve and round: libvips, Aperio, NDPI), else
    the plain ratio. 37 of 300 pixels is 1/8, not 1/8.108: the pixel spacing is 8 times level
    0's (wsidicom refuses levels whose spacing is no whole power of two of the base)."""
    ratio = (size0[0] / size[0], size0[1] / size[1])
    k = round(math.log2(max(ratio[0], 1.0)))
    factor = 2**k
    if all(size[i] in (size0[i] // factor, -(-size0[i] // factor)) for i in (0, 1)):
        return (float(factor), float(factor))
    return ratio


def _image(path: Path, raw: RawFile, index: int, ip: ImagePlan, warnings: list[str]) -> Image:
    where = f"image {index} ({ip.name})"
    first = ip.levels[0][(0, 0)]
    size0 = (first.imagewidth, first.imagelength)
    levels: list[Level] = []
    for li, pages in enumerate(ip.levels):
        retile = levels[0].tile_size if levels else None
        if ip.kind in (ImageKind.LABEL, ImageKind.OVERVIEW):
            retile = (-(-size0[0] // 16) * 16, -(-size0[1] // 16) * 16)  # one frame (dciodvfy)
        with tiff_structure(path, f"{where} level {li}"):
            level = _level(path, raw, li, pages, size0, ip, where, warnings, retile)
        level = dataclasses.replace(level, downsample=nominal_downsample(size0, level.size))
        if levels and (level.size[0] >= levels[-1].size[0] or level.size[1] >= levels[-1].size[1]):
            raise MetadataError(
                f"{where}: level {li} ({level.size[0]}×{level.size[1]}) is not smaller than "
                f"the level above it",
                path=path,
            )
        levels.append(level)
    spp = first.samplesperpixel if first.planarconfig == 1 else 1
    return Image(
        kind=ip.kind,
        name=ip.name,
        dtype=str(first.dtype),
        samples_per_pixel=spp,
        photometric=levels[0].codec.photometric,
        levels=tuple(levels),
        channels=ip.channels,
        pixel_size_um=ip.pixel_size_um,
        origin_mm=ip.origin_mm,
        orientation=ip.orientation if ip.origin_mm else None,
        acquired=ip.acquired,
        description=ip.description,
        objective=ip.objective,
        icc_profile=_icc_profile(first, where, warnings),
        source_index=index,
    )


def _level(
    path: Path,
    raw: RawFile,
    li: int,
    pages: dict[tuple[int, int], tifffile.TiffPage],
    size0: tuple[int, int],
    ip: ImagePlan,
    where: str,
    warnings: list[str],
    retile: tuple[int, int] | None,
) -> Level:
    page = pages[(0, 0)]
    value = int(page.compression)
    what = f"{where} level {li}"
    if (
        value in APERIO_J2K
        and page.is_tiled
        and _sound(path, raw, pages, what, Compression.JPEG2000)
    ):
        return _aperio_j2k(path, raw, li, pages, size0, where, warnings)
    ndpi_strip = value == 7 and getattr(page, "jpegheader", None)  # split at McuStarts
    if ndpi_strip and _sound(path, raw, pages, what, Compression.JPEG):
        from . import ndpi

        level = ndpi.strip_level(path, raw, li, pages, size0, where, warnings)
        if level is not None:
            return level
    stored = (page.tags.valueof(256), page.tags.valueof(257))
    real = (page.imagewidth, page.imagelength)
    whole = all(isinstance(v, int) for v in stored)
    if whole and stored != real and stored[0] >= real[0] and stored[1] >= real[1]:
        # tifffile gave a padded Philips sub-level its real size: the tiles are read on the
        # stored grid, the level takes the real size (the grid's padding is never written)
        for p in pages.values():
            p.imagewidth, p.imagelength = stored
        try:
            level = _read_level(path, raw, li, pages, size0, ip.kind, where, warnings, retile)
        finally:
            for p in pages.values():
                p.imagewidth, p.imagelength = real
        return dataclasses.replace(level, size=real)
    level = _read_level(path, raw, li, pages, size0, ip.kind, where, warnings, retile)
    if not page.is_tiled:
        level = dataclasses.replace(
            level, rows_per_strip=min(page.rowsperstrip or level.size[1], level.size[1])
        )
    return level


def _sound(path: Path, raw: RawFile, pages: dict, what: str, compression: Compression) -> bool:
    """The OME-TIFF reader's page checks (refusing damaged tags and tile data past the end);
    False when a level has an issue to report instead (missing tiles, sample layout), which
    the OME-TIFF reader's level code then records."""
    page = pages[(0, 0)]
    for key, other in pages.items():
        check_layout(path, other, f"{what} plane {key}")
        if _check_counts(path, raw, other, f"{what} plane {key}"):
            return False
    return _level_issue(page, compression, what) is None


def _aperio_j2k(path, raw, li, pages, size0, where, warnings) -> Level:
    """Aperio JPEG 2000 tiles (33003: YCbCr samples, 33005: RGB or, by its Photometric tag,
    YCbCr), copied as they are (YCbCr ones with their colour transform switched on, see
    ``IctTileSource``) and signalled as RGB, YBR_ICT or YBR_RCT."""
    from ..codecs import jpeg2000
    from ..model import Codec

    page = pages[(0, 0)]
    what = f"{where} level {li}"
    size = (page.imagewidth, page.imagelength)
    tile_size = (page.tilewidth, page.tilelength)
    grid = (-(-size[0] // tile_size[0]), -(-size[1] // tile_size[1]))
    planes = {key: PageTiles(p.dataoffsets, p.databytecounts) for key, p in pages.items()}
    source = TiffTileSource(raw, planes, grid, label=f"{what} tile")
    try:
        header = jpeg2000.parse_header(source.stored(0, 0))
    except jpeg2000.J2kError as exc:
        raise InputError(
            f"{what}: the first tile is not a JPEG 2000 codestream ({exc})", path=path
        ) from None
    if (header.width, header.height) != tile_size or header.components != page.samplesperpixel:
        raise MetadataError(
            f"{what}: the JPEG 2000 tiles are {header.width}×{header.height} with "
            f"{header.components} components, the TIFF says {tile_size[0]}×{tile_size[1]} "
            f"with {page.samplesperpixel} samples",
            path=path,
        )
    ycbcr = int(page.compression) == APERIO_J2K_YCBCR or int(page.photometric) == 6
    tiles: object = source
    if header.mct:  # the codestream does the transform itself: a decoder returns RGB
        if ycbcr and int(page.compression) == APERIO_J2K_YCBCR:
            raise UnsupportedError(
                f"{what}: Aperio YCbCr JPEG 2000 (33003) whose codestream also has the "
                "multiple component transform; no DICOM colour label fits it. Re-save the "
                "slide as RGB (33005) or JPEG and convert that"
            )
        photometric = Photometric.YBR_RCT if header.reversible else Photometric.YBR_ICT
    elif ycbcr:  # the components are Y, Cb, Cr: switch the codestream's own ICT on
        try:
            jpeg2000.with_ict(source.stored(0, 0))
        except jpeg2000.J2kError as exc:
            raise UnsupportedError(
                f"{what}: YCbCr JPEG 2000 tiles without a colour transform cannot be "
                f"signalled in DICOM ({exc}); convert with --transcode to re-encode them"
            ) from None
        photometric = Photometric.YBR_ICT
        tiles = IctTileSource(source)
    else:
        photometric = Photometric.RGB
    codec = Codec(
        compression=Compression.JPEG2000,
        photometric=photometric,
        bits=page.bitspersample,
        samples_per_pixel=page.samplesperpixel,
        lossless=header.reversible,
    )
    return Level(
        li,
        size,
        tile_size,
        codec,
        tiles,
        (size0[0] / size[0], size0[1] / size[1]),
        None,
        sum(int(sum(p.databytecounts)) for p in pages.values()),
    )


class IctTileSource:
    """Aperio YCbCr JPEG 2000 tiles with the multiple component transform switched on
    (``jpeg2000.with_ict``: one header byte; the coded data is the file's own), so a decoder
    returns RGB and DICOM YBR_ICT (PS3.5 8.2.4) says what they are."""

    def __init__(self, source: TiffTileSource):
        self.source = source

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes:
        from ..codecs import jpeg2000

        data = self.source.stored(x, y, z, c)
        try:
            return jpeg2000.with_ict(data)
        except jpeg2000.J2kError as exc:
            raise InputError(
                f"{self.source.label} ({x}, {y}): not a JPEG 2000 codestream like the "
                f"first tile ({exc})",
                path=self.source.raw.path,
            ) from None

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        return self.source.encoded_size(x, y, z, c)

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0):
        import imagecodecs

        from ..ometiff.tiles import decode_errors

        with decode_errors(f"{self.source.label} ({x}, {y})", self.source.raw.path):
            array = imagecodecs.imread(self.encoded(x, y, z, c))
        return array.reshape(array.shape[0], array.shape[1], -1)
