"""Round trip: compare a converted slide with its source, tile by tile and field by field.

Both sides are first reduced to the same neutral digest - a list of pyramid levels, each with its
size, tile size, codec and tile hashes in DICOM TILED_FULL order (x, y, then focal plane, then
optical path), plus pixel size, channel names, ICC profile and associated images - so the
comparison does not care which side is DICOM and which OME-TIFF. ``digest_dicom`` and
``digest_ometiff`` read the files with pydicom/tifffile directly (not through the bridge).

Tile identity (MAPPING.md G12): JPEG tiles compare by SHA-256 of their entropy-coded data (from
the first SOS to EOI, pad bytes dropped), so merged JPEGTables, an inserted APP14 marker and the
DICOM pad byte do not count; uncompressed tiles compare by SHA-256 of their samples inside the
image (edge padding is unspecified), as little-endian values.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import numpy as np
import tifffile

from bridge import tables
from bridge.codecs import jpeg

from . import frames as framelib
from . import ome
from .catalog import finding
from .dicomfiles import Instance, integer, items, pixel_spacing, raw, text
from .findings import Finding, Severity
from .pyramid import group

#: Tile hashes for a grid of (tile width, tile height): TILED_FULL order.
Hasher = Callable[[tuple[int, int]], list[str]]


@dataclass
class LevelDigest:
    size: tuple[int, int]
    tile_size: tuple[int, int] | None  # None: striped TIFF (no tiles of its own)
    codec: str  # "jpeg", "native" or another codec family: "jpeg2000", "jpegls", "lzw", ...
    hashes: Hasher = field(repr=False)  # of the stored tiles: entropy-coded data / codestream
    codec_name: str = ""  # in words, for messages: "JPEG 2000 lossless", "LZW", ...
    lossless: bool | None = None  # None: unknown
    pixels: Hasher | None = field(default=None, repr=False)  # of the decoded samples
    spacing_mm: tuple[float, float] | None = None  # (row, column), DICOM only
    file: str | None = None  # the file holding the level (the first, if several)


@dataclass
class SlideDigest:
    kind: str  # "DICOM" or "OME-TIFF"
    name: str
    levels: list[LevelDigest] = field(default_factory=list)
    pixel_size_um: tuple[float, float] | None = None  # (x, y), OME only
    channels: list[str | None] = field(default_factory=list)
    icc: list[bytes] = field(default_factory=list)  # per optical path (DICOM) / level 0 (TIFF)
    associated: dict[str, tuple[int, int]] = field(default_factory=dict)  # LABEL/... -> size
    close: Callable[[], None] | None = field(default=None, repr=False)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _jpeg_hash(stream: bytes) -> str:
    try:
        return _sha(jpeg.entropy_coded_data(stream))
    except jpeg.JpegError:
        return "undecodable:" + _sha(stream)


def _stream_hash(stream: bytes) -> str:
    """Other codestreams (JPEG 2000, JPEG-LS): the bytes without a trailing DICOM pad."""
    if stream.endswith(b"\xff\xd9\x00"):
        stream = stream[:-1]
    return _sha(stream)


def _native_hash(tile: np.ndarray, valid: tuple[int, int]) -> str:
    """Samples inside the image (rows, columns), as little-endian bytes."""
    arr = np.asarray(tile)
    if arr.ndim == 2:
        arr = arr[..., None]
    arr = arr[: valid[1], : valid[0]]
    return _sha(np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"))).tobytes())


def _valid(size: tuple[int, int], tile: tuple[int, int], x: int, y: int) -> tuple[int, int]:
    return (min(tile[0], size[0] - x * tile[0]), min(tile[1], size[1] - y * tile[1]))


# -- DICOM side ---------------------------------------------------------------------------------


def digest_dicom(instances: list[Instance], name: str) -> SlideDigest:
    out = SlideDigest("DICOM", name)
    pyramids = group(instances)
    for inst in instances:
        if inst.is_wsi and inst.flavour in ("LABEL", "OVERVIEW", "THUMBNAIL") and inst.matrix:
            out.associated.setdefault(inst.flavour, inst.matrix)
    if not pyramids:
        return out
    p = pyramids[0]
    for level in p.levels:
        insts = sorted(level.instances, key=lambda i: integer(i.ds, "InConcatenationNumber") or 0)
        out.levels.append(_dicom_level(insts, level.size))
    # the optical paths of the base level, in order of first appearance: all in one instance,
    # or one instance per path (as omedicom and the IDC store multiplexed fluorescence)
    paths, seen = [], set()
    base_instances = sorted(
        p.levels[0].instances, key=lambda i: integer(i.ds, "InstanceNumber") or 0
    )
    for inst in base_instances:
        for op in items(inst.ds, "OpticalPathSequence"):
            key = text(op, "OpticalPathIdentifier")
            if key not in seen:
                seen.add(key)
                paths.append(op)
    out.channels = [text(op, "OpticalPathDescription") for op in paths]
    out.icc = [bytes(raw(op, "ICCProfile") or b"") for op in paths]
    return out


def _dicom_level(insts: list[Instance], size: tuple[int, int]) -> LevelDigest:
    first = insts[0]
    tile = first.tile or (0, 0)
    ts = first.transfer_syntax
    codec, codec_name, lossless = _DICOM_CODECS.get(
        str(ts), ("native", "native (uncompressed)", True) if not ts.is_compressed else None
    ) or (str(ts), ts.name, None)
    spacing = pixel_spacing(first.ds)
    nx = -(-size[0] // tile[0]) if tile[0] else 1
    ny = -(-size[1] // tile[1]) if tile[1] else 1

    def frames(decoded: bool) -> list[str]:
        out = []
        for inst in insts:
            idx = framelib.index(inst)
            for n, parts in enumerate(idx.frames):
                data = framelib.read_frame(inst, parts)
                if codec == "jpeg" and not decoded:
                    out.append(_jpeg_hash(data))
                elif codec == "native" or decoded:
                    f = len(out)
                    x, y = f % nx, (f // nx) % ny
                    try:
                        arr = framelib.decode(inst, data)
                    except Exception:
                        out.append(f"undecodable:{n}")
                        continue
                    out.append(_native_hash(arr, _valid(size, tile, x, y)))
                else:
                    out.append(_stream_hash(data))
        return out

    return LevelDigest(
        size,
        tile,
        codec,
        lambda grid: frames(False),
        codec_name=codec_name,
        lossless=lossless,
        pixels=lambda grid: frames(True),
        spacing_mm=spacing[0] if spacing else None,
        file=first.name,
    )


#: Transfer syntaxes by codec family, name and losslessness (PS3.5 A.4, PS3.6 Annex A).
_DICOM_CODECS: dict[str, tuple[str, str, bool]] = {
    "1.2.840.10008.1.2.4.50": ("jpeg", "JPEG baseline", False),
    "1.2.840.10008.1.2.4.51": ("jpeg", "JPEG extended", False),
    "1.2.840.10008.1.2.4.57": ("jpeg-lossless", "JPEG lossless", True),
    "1.2.840.10008.1.2.4.70": ("jpeg-lossless", "JPEG lossless (SV1)", True),
    "1.2.840.10008.1.2.4.80": ("jpegls", "JPEG-LS lossless", True),
    "1.2.840.10008.1.2.4.81": ("jpegls", "JPEG-LS near-lossless", False),
    "1.2.840.10008.1.2.4.90": ("jpeg2000", "JPEG 2000 lossless", True),
    "1.2.840.10008.1.2.4.91": ("jpeg2000", "JPEG 2000", False),
    "1.2.840.10008.1.2.4.201": ("htj2k", "HTJ2K lossless", True),
    "1.2.840.10008.1.2.4.202": ("htj2k", "HTJ2K lossless (RPCL)", True),
    "1.2.840.10008.1.2.4.203": ("htj2k", "HTJ2K", False),
    "1.2.840.10008.1.2.5": ("rle", "RLE lossless", True),
}

#: TIFF Compression (tag 259) values by codec family, name and losslessness (None: depends).
_TIFF_CODECS: dict[int, tuple[str, str, bool | None]] = {
    1: ("native", "native (uncompressed)", True),
    5: ("lzw", "LZW", True),
    6: ("jpeg", "JPEG (old-style)", False),
    7: ("jpeg", "JPEG", False),
    8: ("deflate", "Deflate", True),
    32946: ("deflate", "Deflate", True),
    32773: ("packbits", "PackBits", True),
    34925: ("lzma", "LZMA", True),
    50000: ("zstd", "Zstd", True),
    34926: ("zstd", "Zstd", True),
    33003: ("jpeg2000", "JPEG 2000 (YCbCr)", None),
    33004: ("jpeg2000", "JPEG 2000", None),
    33005: ("jpeg2000", "JPEG 2000", None),
    34712: ("jpeg2000", "JPEG 2000", None),
    50001: ("webp", "WebP", None),
}


# -- OME-TIFF side ------------------------------------------------------------------------------


def digest_ometiff(path: Path, name: str) -> SlideDigest:
    out = SlideDigest("OME-TIFF", name)
    tf, _log = ome.open_tiff(path)
    out.close = tf.close
    description = tf.pages[0].description if len(tf.pages) else ""
    root, _found = (
        ome.parse_xml(description.encode("utf-8"), "IFD 0", {}) if description else (None, [])
    )
    if root is None:
        tf.close()
        raise ome.Unreadable("no readable OME-XML")
    images, _ = ome.read_images(root, {})
    uuid = ome.own_uuid_of(tf)
    files = ome.TiffSet(path, tf)
    volumes = []
    for image in images:
        list(ome.map_planes(image, path.parent, uuid, files, {}))
        kind = tables.associated_kind(image.name)
        if kind:
            out.associated.setdefault(kind, (image.size["X"], image.size["Y"]))
        else:
            volumes.append(image)
    if not volumes:
        return out
    image = volumes[0]
    px = ome.child(image.element, "Pixels")
    try:
        sx = tables.length_to_um(float(px.get("PhysicalSizeX")), px.get("PhysicalSizeXUnit"))
        sy = tables.length_to_um(float(px.get("PhysicalSizeY")), px.get("PhysicalSizeYUnit"))
        out.pixel_size_um = (sx, sy)
    except Exception:
        out.pixel_size_um = None
    out.channels = [c.get("Name") for c in ome.children(px, "Channel")]
    planes = [image.planes[k] for k in sorted(image.planes) if image.planes[k].file == path]
    # TILED_FULL order: z fastest, then c (t = 0 only)
    order = []
    for c in range(image.size_c_effective):
        for z in range(image.size["Z"]):
            plane = image.planes.get(image.plane_index(z, c, 0))
            if plane is not None and plane.file == path:
                order.append(plane.ifd)
    if not planes:
        return out
    first = tf.pages[order[0] if order else planes[0].ifd]
    icc = first.iccprofile
    out.icc = [bytes(icc)] if icc else []
    n_levels = 1 + (len(first.subifds) if first.subifds else 0)
    for level in range(n_levels):
        out.levels.append(_tiff_level(tf, order, level, name))
    return out


def _j2k_reversible(tf: tifffile.TiffFile, page: tifffile.TiffPage) -> bool | None:
    """Whether a page's JPEG 2000 tiles are lossless: the reversible 5-3 wavelet of the first
    tile's COD marker (ISO/IEC 15444-1 A.6.1)."""
    from bridge.codecs import jpeg2000

    tf.filehandle.seek(page.dataoffsets[0])
    try:
        return jpeg2000.parse_header(tf.filehandle.read(page.databytecounts[0])).reversible
    except jpeg2000.J2kError:
        return None


def _tiff_level(tf: tifffile.TiffFile, ifds: list[int], level: int, name: str) -> LevelDigest:
    def page_of(ifd: int) -> tifffile.TiffPage:
        page = tf.pages[ifd]
        return page if level == 0 else list(page.pages)[level - 1]

    first = page_of(ifds[0])
    size = (first.imagewidth, first.imagelength)
    tile = (first.tilewidth, first.tilelength) if first.is_tiled else None
    value = int(first.compression)
    if value == 7 and tile is None and len(first.dataoffsets) == 1:
        tile = size
    codec, codec_name, lossless = _TIFF_CODECS.get(
        value, (f"tiff-{value}", f"TIFF compression {value}", None)
    )
    if codec == "jpeg2000" and first.dataoffsets:
        lossless = _j2k_reversible(tf, first)
        codec_name += " lossless" if lossless else ""

    # a JPEG strip holding the whole image is one tile, copied as it is (one DICOM frame)
    whole_strip = codec == "jpeg" and not first.is_tiled and len(first.dataoffsets) == 1

    def stored(grid: tuple[int, int]) -> list[str]:
        if codec == "native" or not (first.is_tiled or whole_strip):
            return pixels(grid)
        out = []
        fh = tf.filehandle
        for ifd in ifds:
            page = page_of(ifd)
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                fh.seek(offset)
                data = fh.read(count)
                out.append(_jpeg_hash(data) if codec == "jpeg" else _stream_hash(data))
        return out

    def pixels(grid: tuple[int, int]) -> list[str]:
        out = []
        for ifd in ifds:
            page = page_of(ifd)
            arr = page.asarray()
            if arr.ndim == 3 and page.planarconfig == 2 and arr.shape[0] == page.samplesperpixel:
                arr = np.moveaxis(arr, 0, -1)
            tw, th = grid
            nx, ny = -(-size[0] // tw), -(-size[1] // th)
            for y in range(ny):
                for x in range(nx):
                    part = arr[y * th : (y + 1) * th, x * tw : (x + 1) * tw]
                    out.append(_native_hash(part, (part.shape[1], part.shape[0])))
        return out

    return LevelDigest(
        size,
        tile,
        codec,
        stored,
        file=name,
        codec_name=codec_name,
        lossless=lossless,
        pixels=pixels,
    )


# -- comparison ---------------------------------------------------------------------------------


def compare(converted: SlideDigest, source: SlideDigest, file: str) -> Iterator[Finding]:
    """Findings where ``converted`` does not carry ``source``."""
    w = {"file": file}
    have, want = len(converted.levels), len(source.levels)
    if have > want and _halvings(converted.levels[want - 1 :]):
        yield finding(
            "RT-levels",
            f"levels {want}-{have - 1} are not in the source: each is half the size of the one "
            "above, rounded up (new pyramid levels, convert --pyramid auto)",
            severity=Severity.INFO,
            **w,
        )
    elif have != want:
        yield finding(
            "RT-levels",
            f"{have} pyramid levels, the source ({source.name}) has {want}",
            **w,
        )
    for i, (c, s) in enumerate(zip(converted.levels, source.levels, strict=False)):
        w = {"file": c.file or file}
        if c.size != s.size:
            yield finding(
                "RT-levels",
                f"level {i} is {c.size[0]} x {c.size[1]}, the source's {s.size[0]} x {s.size[1]}",
                level=i,
                **w,
            )
            continue
        tiled = c.tile_size and s.tile_size
        if tiled and c.tile_size != s.tile_size and _forced_retile(c, s, converted, source):
            yield from _retiled(i, c, s, w)
            continue
        if tiled and c.tile_size != s.tile_size:
            yield finding(
                "RT-levels",
                f"level {i} has {c.tile_size[0]} x {c.tile_size[1]} tiles, the source "
                f"{s.tile_size[0]} x {s.tile_size[1]}",
                level=i,
                **w,
            )
            continue
        yield from _tiles(i, c, s, w)
    w = {"file": file}
    yield from _pixel_size(converted, source, w)
    yield from _channels(converted, source, w)
    yield from _icc(converted, source, w)
    yield from _associated(converted, source, w)


def _halvings(levels: list[LevelDigest]) -> bool:
    """Whether each level is the one above halved, rounded up (``bridge.pyramid``)."""
    return all(b.size == (-(-a.size[0] // 2), -(-a.size[1] // 2)) for a, b in pairwise(levels))


def _tiles(i: int, c: LevelDigest, s: LevelDigest, w: dict) -> Iterator[Finding]:
    """Tiles copied as they are compare by their coded data; tiles the conversion re-encoded
    losslessly (omedicom's own choice for codecs the target cannot hold) by their samples."""
    grid = c.tile_size or s.tile_size
    same = c.codec == s.codec or {c.codec, s.codec} == {"native"}
    comparable = c.tile_size == s.tile_size or "native" in (c.codec, s.codec)
    if same and comparable:
        by_pixels = False
    elif c.lossless and "jpeg" not in (c.codec, s.codec) and c.pixels and s.pixels:
        by_pixels = True
        yield finding(
            "RT-tiles",
            f"level {i}: tiles re-encoded losslessly as {c.codec_name or c.codec} (the "
            f"source's are {s.codec_name or s.codec}); compared by their decoded samples",
            severity=Severity.INFO,
            level=i,
            **w,
        )
    elif same:
        yield finding(
            "RT-tiles",
            f"level {i}: stored as {_layout(c)} here and as {_layout(s)} in the source: the "
            "tiles were not copied",
            level=i,
            **w,
        )
        return
    else:
        yield finding(
            "RT-tiles",
            f"level {i}: tiles are {c.codec_name or c.codec} here and "
            f"{s.codec_name or s.codec} in the source: not copied"
            + ("" if c.lossless else ", and not re-encoded losslessly"),
            level=i,
            **w,
        )
        return
    if grid is None:
        return
    if by_pixels:
        a, b = c.pixels(grid), s.pixels(grid)  # type: ignore[misc]
    else:
        a, b = c.hashes(grid), s.hashes(grid)
    yield from _differ(i, a, b, _what_hashed(c, by_pixels), w)


#: TIFF 6.0 section 15: TileWidth and TileLength must be multiples of 16.
TIFF_TILE_MULTIPLE = 16


def _forced_retile(
    c: LevelDigest, s: LevelDigest, converted: SlideDigest, source: SlideDigest
) -> bool:
    """Whether the converted OME-TIFF had to choose other tiles than its DICOM source's frames:
    frames that are not a multiple of 16 wide and high (TIFF 6.0 section 15, TileWidth /
    TileLength) cannot be TIFF tiles. Only in that direction: a DICOM frame may have any size
    (PS3.3 C.8.12.4.1.1), so a DICOM conversion that changes the TIFF's tiles is not forced."""
    if converted.kind != "OME-TIFF" or source.kind != "DICOM":
        return False
    assert c.tile_size is not None and s.tile_size is not None
    return any(v % TIFF_TILE_MULTIPLE for v in s.tile_size) and not any(
        v % TIFF_TILE_MULTIPLE for v in c.tile_size
    )


def _retiled(i: int, c: LevelDigest, s: LevelDigest, w: dict) -> Iterator[Finding]:
    """A level the target format forced into other tiles: a note, then the tile content
    compared by decoded samples on the source's frame grid (the converted level cut into the
    source's frames). The new tiles must be lossless: re-tiling lossy tiles means decoding
    them, and a lossy re-encoding loses what the source had."""
    assert c.tile_size is not None and s.tile_size is not None
    yield finding(
        "RT-levels",
        f"level {i}: re-tiled from the source's {s.tile_size[0]} x {s.tile_size[1]} frames to "
        f"{c.tile_size[0]} x {c.tile_size[1]} tiles (TIFF tiles must be multiples of "
        f"{TIFF_TILE_MULTIPLE}); tile content compared by decoded samples on the source's grid",
        severity=Severity.INFO,
        level=i,
        **w,
    )
    if not c.lossless or c.pixels is None or s.pixels is None:
        yield finding(
            "RT-tiles",
            f"level {i}: re-tiled as {c.codec_name or c.codec}, which is not lossless: the "
            f"source's {s.codec_name or s.codec} samples are not kept",
            level=i,
            **w,
        )
        return
    a, b = c.pixels(s.tile_size), s.pixels(s.tile_size)
    yield from _differ(i, a, b, "decoded samples", w)


def _differ(i: int, a: list[str], b: list[str], what: str, w: dict) -> Iterator[Finding]:
    if len(a) != len(b):
        yield finding(
            "RT-tiles", f"level {i}: {len(a)} tiles, the source has {len(b)}", level=i, **w
        )
    differ = [n for n, (x, y) in enumerate(zip(a, b, strict=False)) if x != y]
    if differ:
        shown = ", ".join(str(n + 1) for n in differ[:10])
        yield finding(
            "RT-tiles",
            f"level {i}: {len(differ)} of {min(len(a), len(b))} tiles differ from the source "
            f"(SHA-256 of {what}); frames {shown}{' ...' if len(differ) > 10 else ''}",
            level=i,
            frame=differ[0] + 1,
            **w,
        )


def _layout(level: LevelDigest) -> str:
    name = level.codec_name or level.codec
    if level.tile_size is None:
        return f"{name} strips"
    return f"{level.tile_size[0]} x {level.tile_size[1]} {name} tiles"


def _what_hashed(level: LevelDigest, by_pixels: bool) -> str:
    if by_pixels or level.codec == "native" or not level.tile_size:
        return "samples"
    return "entropy-coded data" if level.codec == "jpeg" else f"{level.codec_name} codestreams"


def _pair(converted: SlideDigest, source: SlideDigest) -> tuple[SlideDigest, SlideDigest]:
    """(the DICOM digest, the OME-TIFF digest)."""
    return (converted, source) if converted.kind == "DICOM" else (source, converted)


def _pixel_size(converted: SlideDigest, source: SlideDigest, w: dict) -> Iterator[Finding]:
    if converted.kind == source.kind:
        yield from _same_pixel_size(converted, source, w)
        return
    dicom, tiff = _pair(converted, source)
    if not dicom.levels or not tiff.levels:
        return
    if tiff.pixel_size_um is None and dicom.levels[0].spacing_mm is None:
        # a DICOM source without Pixel Spacing has none to carry (checking it reports that)
        yield finding(
            "RT-pixel-size",
            "neither the OME-TIFF (PhysicalSizeX/Y) nor the DICOM (Pixel Spacing) has a pixel "
            "size: nothing to compare",
            severity=Severity.INFO,
            **w,
        )
        return
    if tiff.pixel_size_um is None:
        yield finding(
            "RT-pixel-size",
            "the OME-TIFF has no PhysicalSizeX/Y; the DICOM Pixel Spacing came from elsewhere "
            "(e.g. --pixel-size) and cannot be compared",
            severity=Severity.INFO,
            **w,
        )
        return
    sx, sy = tiff.pixel_size_um
    w0, h0 = tiff.levels[0].size
    for i, level in enumerate(dicom.levels):
        if i < len(converted.levels) and converted.levels[i].file:
            w = {"file": converted.levels[i].file}
        if level.spacing_mm is None:
            yield finding("RT-pixel-size", f"level {i} has no Pixel Spacing", level=i, **w)
            continue
        row, col = level.spacing_mm
        want_col = sx / 1000.0 * w0 / level.size[0]
        want_row = sy / 1000.0 * h0 / level.size[1]
        for label, axis, size, got, want in (
            ("column", "X", sx, col, want_col),
            ("row", "Y", sy, row, want_row),
        ):
            if abs(got / want - 1) > 1e-6:
                yield finding(
                    "RT-pixel-size",
                    f"level {i} {label} spacing {got:.9g} mm; OME PhysicalSize{axis} "
                    f"{size:g} µm x downsample gives {want:.9g} mm",
                    level=i,
                    attribute="PixelSpacing",
                    **w,
                )


def _same_pixel_size(converted: SlideDigest, source: SlideDigest, w: dict) -> Iterator[Finding]:
    """Two OME-TIFFs: PhysicalSizeX/Y (OME Pixels, in µm); two DICOM series: every level's
    Pixel Spacing (PS3.3 C.7.6.16.2.1, Pixel Measures)."""
    if converted.kind == "OME-TIFF":
        a, b = converted.pixel_size_um, source.pixel_size_um
        if a == b or (a and b and all(abs(x / y - 1) <= 1e-6 for x, y in zip(a, b, strict=True))):
            return
        yield finding(
            "RT-pixel-size",
            f"PhysicalSizeX/Y is {_um(a)}, the source's {_um(b)}",
            **w,
        )
        return
    for i, (c, s) in enumerate(zip(converted.levels, source.levels, strict=False)):
        a, b = c.spacing_mm, s.spacing_mm
        if a == b or (a and b and all(abs(x / y - 1) <= 1e-6 for x, y in zip(a, b, strict=True))):
            continue
        yield finding(
            "RT-pixel-size",
            f"level {i} Pixel Spacing is {a}, the source's {b} (mm, row then column)",
            level=i,
            attribute="PixelSpacing",
            **{"file": c.file or w["file"]},
        )


def _um(size: tuple[float, float] | None) -> str:
    return "absent" if size is None else f"{size[0]:g} x {size[1]:g} µm"


def _channels(converted: SlideDigest, source: SlideDigest, w: dict) -> Iterator[Finding]:
    if converted.kind == source.kind:
        if converted.channels != source.channels:
            yield finding(
                "RT-channels",
                f"channels {converted.channels}, the source's {source.channels}",
                **w,
            )
        return
    dicom, tiff = _pair(converted, source)
    if not dicom.levels or not tiff.levels:
        return
    paths = dicom.channels
    if not paths and source is dicom:
        # The Optical Path Sequence is Type 1 (PS3.3 C.8.12.5): a source without it is
        # non-conformant, which `check SOURCE` reports; its pixels imply one optical path.
        paths = [None]
        yield finding(
            "RT-channels",
            "the DICOM source has no Optical Path Sequence; compared as one implied optical path",
            severity=Severity.INFO,
            attribute="OpticalPathSequence",
            **w,
        )
    if len(paths) != len(tiff.channels) and tiff.channels:
        yield finding(
            "RT-channels",
            f"{len(paths)} optical path(s) for {len(tiff.channels)} OME channel(s)",
            attribute="OpticalPathSequence",
            **w,
        )
        return
    for n, (a, b) in enumerate(zip(paths, tiff.channels, strict=False), start=1):
        if b and a != b:
            yield finding(
                "RT-channels",
                f"optical path {n} is described {a!r}; the OME channel is named {b!r}",
                attribute=f"OpticalPathSequence[{n}]/OpticalPathDescription",
                **w,
            )


def _icc(converted: SlideDigest, source: SlideDigest, w: dict) -> Iterator[Finding]:
    if converted.kind == source.kind:
        if not source.icc and converted.icc:
            yield finding(
                "RT-icc",
                f"an ICC profile ({len(converted.icc[0])} bytes) the source does not have (a "
                "DICOM step on the way adds sRGB, which colour images require)",
                severity=Severity.INFO,
                **w,
            )
        elif converted.icc != source.icc:
            yield finding(
                "RT-icc",
                f"ICC profiles of {[len(p) for p in converted.icc]} bytes, the source's "
                f"{[len(p) for p in source.icc]} bytes",
                **w,
            )
        return
    dicom, tiff = _pair(converted, source)
    if not tiff.icc or not dicom.levels:
        return
    for n, profile in enumerate(dicom.icc, start=1):
        if profile != tiff.icc[0]:
            yield finding(
                "RT-icc",
                f"optical path {n}'s ICC profile ({len(profile)} bytes) is not the TIFF's "
                f"InterColorProfile ({len(tiff.icc[0])} bytes, SHA-256 {_sha(tiff.icc[0])[:12]})",
                attribute=f"OpticalPathSequence[{n}]/ICCProfile",
                **w,
            )


def _associated(converted: SlideDigest, source: SlideDigest, w: dict) -> Iterator[Finding]:
    for kind, size in source.associated.items():
        got = converted.associated.get(kind)
        if got is None:
            yield finding("RT-associated", f"the source's {kind} image is missing", image=kind, **w)
        elif got != size:
            yield finding(
                "RT-associated",
                f"the {kind} image is {got[0]} x {got[1]}, the source's {size[0]} x {size[1]}",
                image=kind,
                **w,
            )
    for kind in converted.associated.keys() - source.associated.keys():
        yield finding(
            "RT-associated",
            f"a {kind} image that the source does not have",
            severity=Severity.WARNING,
            image=kind,
            **w,
        )
