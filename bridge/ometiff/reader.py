"""OME-TIFF -> slide model.

Implements the OME-TIFF specification (ome-model docs ``ome-tiff/specification.rst``, schema
2016-06): the OME-XML in the first IFD's ImageDescription, ``TiffData`` mapping planes to IFDs
(0-based IFD, FirstZ/FirstC/FirstT, PlaneCount), and sub-resolutions in the SubIFDs tag (330) of
each plane's IFD, largest first. Older schema namespaces and the ``ome:`` prefix are accepted
(ome-types upgrades them with the OME XSLT transforms).

Nothing is decoded: levels hand out each tile's stored bytes (see ``tiles.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import reprlib
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .. import fieldmap, specimen, tables
from ..codecs import jpeg, jpeg2000
from ..errors import BridgeError, InputError, MetadataError, UnsupportedError
from ..model import (
    Carriers,
    Channel,
    Codec,
    Compression,
    Detector,
    DicomHeader,
    Image,
    ImageKind,
    Level,
    Microscope,
    Objective,
    Photometric,
    Slide,
    TiffLevelInfo,
)
from . import omexml, positions
from .description import lean_descriptions
from .tiles import (
    DecodingSource,
    PageTiles,
    RawFile,
    StripRetileSource,
    TiffTileSource,
)

#: TIFF Compression tag values -> model codec (TIFF 6.0; tifffile.COMPRESSION).
_COMPRESSION = {
    1: Compression.NONE,
    7: Compression.JPEG,
    5: Compression.LZW,
    8: Compression.DEFLATE,
    32946: Compression.DEFLATE,
    32773: Compression.PACKBITS,
    34925: Compression.LZMA,
    50000: Compression.ZSTD,
    33003: Compression.JPEG2000,
    33004: Compression.JPEG2000,
    33005: Compression.JPEG2000,
    34712: Compression.JPEG2000,
    50001: Compression.WEBP,
    50002: Compression.JPEGXL,
}

#: Largest image kept as one native tile when the TIFF is striped rather than tiled.
_SINGLE_TILE_MAX = 1024
_RETILE = 512


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.tf2", ".ome.tf8", ".ome.btf", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def read(path: str | os.PathLike[str], *, timepoint: int | None = None) -> Slide:
    """Open an OME-TIFF and describe it as a :class:`Slide` (tiles are read lazily).

    Raises :class:`InputError` for files that are not (OME-)TIFF, are truncated or whose OME-XML
    contradicts the IFDs, and :class:`UnsupportedError` for layouts this version cannot convert.
    The returned slide's ``close`` releases the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such file", path=path)
    with _TiffLog() as log:
        try:
            with lean_descriptions():  # a 240 MB OME-XML is not held three times
                tf = tifffile.TiffFile(path)
        except tifffile.TiffFileError as exc:
            raise InputError(
                f"not a TIFF file ({exc})",
                path=path,
                hint="omedicom convert reads OME-TIFF (.ome.tif/.ome.tiff) files",
            ) from None
        except _PARSE_ERRORS as exc:
            raise InputError(
                f"the TIFF structure cannot be read ({type(exc).__name__}: {exc})",
                path=path,
                hint="the TIFF structure is damaged; export or fetch the file again",
            ) from None
        raw = RawFile(str(path))
        try:
            log.refuse_damage(path)
            slide = _read(path, tf, raw, timepoint)
            log.refuse_damage(path)  # IFDs are parsed as they are first used
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


class _TiffLog(logging.Handler):
    """Collects what tifffile logs while parsing (it logs, rather than raises, damaged tags)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._logger = logging.getLogger("tifffile")

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def refuse_damage(self, path: Path) -> None:
        if self.messages:
            raise InputError(
                "the TIFF structure is damaged or truncated (" + self.messages[0] + ")",
                path=path,
                hint="the file was cut short or corrupted; fetch or export it again",
            )

    def __enter__(self) -> _TiffLog:
        self._propagate = self._logger.propagate
        self._logger.addHandler(self)
        self._logger.propagate = False
        return self

    def __exit__(self, *exc: object) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate


#: What tifffile and numpy raise on IFDs and tags they cannot parse (tifffile raises its own
#: TiffFileError for some, and lets struct, numpy and dict errors through for others).
_PARSE_ERRORS = (
    tifffile.TiffFileError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
    struct.error,
    OSError,
)


@contextmanager
def tiff_structure(path: Path, what: str) -> Iterator[None]:
    """Parser errors while ``what`` is read from the file are damage in the file: one
    :class:`InputError` naming the part. Only tifffile's parsing goes inside."""
    try:
        yield
    except _PARSE_ERRORS as exc:
        raise InputError(
            f"{what} cannot be read ({type(exc).__name__}: {exc})",
            path=path,
            hint="the TIFF structure is damaged; export or fetch the file again",
        ) from None


def _read(path: Path, tf: tifffile.TiffFile, raw: RawFile, timepoint: int | None) -> Slide:
    xml = tf.pages.first.description if len(tf.pages) else ""
    if not xml or ("<OME" not in xml[:4096] and ":OME" not in xml[:4096]):
        raise InputError(
            "not an OME-TIFF: the first IFD has no OME-XML ImageDescription",
            path=path,
            hint="write the file with OME metadata (Bio-Formats bfconvert, QuPath, tifffile "
            "ome=True), or add it with tifffile.tiffcomment",
        )
    warnings: list[str] = []
    if not xml.isascii():
        xml = _utf8_description(tf.pages.first, raw, xml, warnings)
    split = None
    if "ROI" in xml:  # cheap test first: most slides have none
        from ..annotations.section import split_rois

        split = split_rois(xml)  # the metadata is read without the (maybe huge) ROI part
    ome = parse_ome_xml(split.head if split is not None else xml, path)
    images = []
    warnings.extend(ome.warnings)
    for index, ome_image in enumerate(ome.images):
        image = _read_image(path, tf, raw, ome, ome_image, index, warnings, timepoint)
        if image is not None:
            images.append(image)
    if not images:
        raise InputError("the OME-XML describes no image with pixels in this file", path=path)
    images = list(positions.place(images, ome.images, timepoint or 0, warnings))
    annotations: list[Any] = []
    if "ROI" in xml:  # cheap test first: most slides have none
        from ..annotations import has_rois, rois_from_ome_xml

        if has_rois(xml):
            for image in images:
                if image.kind is not ImageKind.VOLUME:
                    continue
                groups, notes = rois_from_ome_xml(xml, image.source_index, split)
                annotations.extend(groups)
                warnings.extend(notes)
    tiff_info = tuple(
        TiffLevelInfo(
            image.source_index, level.index, level.jpeg_tables, level.codec.inserted_marker
        )
        for image in images
        for level in image.levels
    )
    return Slide(
        slide_id=_stem(path),
        images=tuple(images),
        annotations=tuple(annotations),
        carriers=Carriers(ome_xml=xml, dicom=_dicom_headers(ome), tiff=tiff_info),
        specimen=specimen.from_ome_maps(ome.maps, warnings),
        source=str(path),
        warnings=tuple(warnings),
        close=raw.close,
    )


def _utf8_description(page: tifffile.TiffPage, raw: RawFile, text: str, notes: list[str]) -> str:
    """The OME-XML as UTF-8, which the OME-TIFF specification requires of it.

    tifffile decodes an ImageDescription that is not valid UTF-8 as another code page, so a
    "µm" unit would read as "Âµm" and a name would change its letters without a word. The
    stored bytes are decoded again here; bytes that are not UTF-8 become U+FFFD, and the
    conversion says so."""
    tag = page.tags.get(270)
    if tag is None:
        return text
    data = raw.read(tag.valueoffset, tag.count, "the ImageDescription").rstrip(b"\0")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 4]
        notes.append(
            f"the OME-XML is not valid UTF-8 (bytes {bad!r} at offset {exc.start}); the "
            "undecodable bytes were replaced by U+FFFD"
        )
        return data.decode("utf-8", "replace").strip()


def _dicom_headers(ome: omexml.Ome) -> tuple[DicomHeader, ...]:
    """DICOM headers an earlier DICOM -> OME-TIFF conversion left in the OME-XML
    (CommentAnnotations in the ``urn:omedicom:dicom-json:1`` namespace, see omexml_writer)."""
    from .omexml_writer import DICOM_JSON_NS

    headers = []
    for index, image in enumerate(ome.images):
        for ref in image.annotation_refs:
            comment = ome.comments.get(ref)
            if comment is None or comment.namespace != DICOM_JSON_NS:
                continue
            fields = dict(
                part.split("=", 1) for part in (comment.description or "").split() if "=" in part
            )
            if not {"SOPInstanceUID", "level", "TransferSyntaxUID"} <= set(fields):
                continue
            headers.append(
                DicomHeader(
                    image_index=index,
                    level=int(fields["level"]),
                    sop_instance_uid=fields["SOPInstanceUID"],
                    transfer_syntax=fields["TransferSyntaxUID"],
                    json=comment.value,
                )
            )
    return tuple(headers)


def parse_ome_xml(xml: str, path: Path | str | None = None) -> omexml.Ome:
    """Parse OME-XML of any schema version (see ``omexml.py``), naming the file on error."""
    try:
        return omexml.parse(xml)
    except MetadataError as exc:
        raise MetadataError(
            f"the OME-XML cannot be read: {exc.message}", path=path, hint=exc.hint
        ) from None


def _plane_index(order: str, sizes: dict[str, int], z: int, c: int, t: int) -> int:
    """Linear plane index of (z, c, t) in an OME DimensionOrder such as 'XYZCT'."""
    pos = {"Z": z, "C": c, "T": t}
    index = 0
    stride = 1
    for dim in order[2:]:
        index += pos[dim] * stride
        stride *= sizes[dim]
    return index


def _plane_coords(order: str, sizes: dict[str, int], p: int) -> tuple[int, int, int]:
    pos = {}
    for dim in order[2:]:
        pos[dim] = p % sizes[dim]
        p //= sizes[dim]
    return pos["Z"], pos["C"], pos["T"]


def _same_file(path: Path, ome: omexml.Ome, td: omexml.TiffData) -> bool:
    """Whether a TiffData UUID element points at this file (OME spec "Multi-file OME-TIFF").

    Files are often renamed after writing, so the recorded FileName alone does not decide: the
    UUID matching the root OME UUID does, and so does a FileName that names no other file when
    every TiffData of the document names that same file.
    """
    if ome.uuid and td.uuid == ome.uuid:
        return True
    name = td.file_name
    if not name or Path(name).name == path.name:
        return True
    names = {t.file_name for image in ome.images for t in image.pixels.tiff_data if t.file_name}
    return len(names) == 1 and not (path.parent / Path(name).name).exists()


def _plane_ifds(
    path: Path,
    tf: tifffile.TiffFile,
    ome: omexml.Ome,
    ome_image: omexml.Image,
    sizes: dict[str, int],
) -> dict[tuple[int, int, int], int]:
    """Map (z, c, t) -> main-chain IFD index from the TiffData elements (OME spec "TiffData")."""
    pixels = ome_image.pixels
    order = pixels.dimension_order
    n_planes = sizes["Z"] * sizes["C"] * sizes["T"]
    mapping: dict[tuple[int, int, int], int] = {}
    n_ifds = len(tf.pages)
    if n_planes > n_ifds:  # every plane is an IFD of its own: the file bounds the count
        raise MetadataError(
            f"the OME-XML of image {ome_image.id} declares {n_planes} planes (SizeZ "
            f"{sizes['Z']} × SizeC {sizes['C']} × SizeT {sizes['T']}), but the file has only "
            f"{n_ifds} IFDs",
            path=path,
            hint="the OME-XML disagrees with the TIFF structure; the file may be damaged",
        )
    for td in pixels.tiff_data:
        if td.uuid is not None and not _same_file(path, ome, td):
            raise UnsupportedError(
                f"image {ome_image.id} has planes in another file ({td.file_name}); "
                "multi-file OME-TIFF is not supported yet",
                path=path,
                hint="merge the files into one OME-TIFF first (e.g. bfconvert)",
            )
        first = _plane_index(order, sizes, td.first_z, td.first_c, td.first_t)
        ifd = td.ifd or 0
        if td.plane_count is not None:
            count = td.plane_count
            if ifd + count > n_ifds:
                raise MetadataError(
                    f"a TiffData of image {ome_image.id} maps {count} planes from IFD {ifd}, "
                    f"but the file has only {n_ifds} IFDs",
                    path=path,
                    hint="the OME-XML disagrees with the TIFF structure; the file may be damaged",
                )
        elif td.ifd is not None:
            count = 1
        else:
            count = min(n_planes - first, n_ifds - ifd)
        for k in range(count):
            if first + k >= n_planes:
                break
            mapping[_plane_coords(order, sizes, first + k)] = ifd + k
    if not pixels.tiff_data:
        raise UnsupportedError(
            f"image {ome_image.id} keeps its pixels outside TIFF IFDs (BinData or MetadataOnly)",
            path=path,
        )
    for key, ifd in mapping.items():
        if ifd >= n_ifds:
            raise MetadataError(
                f"the OME-XML maps plane z={key[0]} c={key[1]} t={key[2]} of image "
                f"{ome_image.id} to IFD {ifd}, but the file has only {n_ifds} IFDs",
                path=path,
                hint="the OME-XML disagrees with the TIFF structure; the file may be damaged",
            )
    missing = n_planes - len(mapping)
    if missing:
        raise MetadataError(
            f"the OME-XML of image {ome_image.id} declares {n_planes} planes "
            f"(SizeZ·SizeC·SizeT / SamplesPerPixel) but its TiffData cover {len(mapping)}",
            path=path,
            hint="the OME-XML disagrees with the TIFF structure; the file may be damaged",
        )
    return mapping


def _sub_pages(tf: tifffile.TiffFile, page: tifffile.TiffPage) -> list[tifffile.TiffPage]:
    """The SubIFD pages of a main-chain page, largest first (OME spec "Sub-resolutions")."""
    out = []
    for level, offset in enumerate(page.subifds or ()):
        tf.filehandle.seek(offset)
        out.append(tifffile.TiffPage(tf, (page.index, level + 1)))
    return out


def _channel(
    ch: omexml.Channel, warnings: list[str], instrument: omexml.Instrument | None = None
) -> Channel:
    """A Channel: the mapped fields from ``mappings/fields.toml`` (``bridge.fieldmap``), the
    structural ones (ID, SamplesPerPixel) and those a handler owns (Color, IlluminationType,
    the filters' pass bands)."""
    mapped = fieldmap.from_ome("channel", ch.attributes, warnings, f"Channel {ch.id} ")
    return Channel(
        id=ch.id,
        samples_per_pixel=ch.samples_per_pixel or 1,
        color=ch.rgba,
        illumination=ch.illumination_type,
        contrast=ch.contrast_method,
        excitation_band_nm=_band(instrument, ch, excitation=True),
        emission_band_nm=_band(instrument, ch, excitation=False),
        illuminator=instrument.light_sources.get(ch.light_source_id or "") if instrument else None,
        **mapped,
    )


def _band(
    instrument: omexml.Instrument | None, ch: omexml.Channel, *, excitation: bool
) -> tuple[float, float] | None:
    """(CutIn, CutOut) nm of the channel's first excitation (emission) filter: its LightPath's
    filter, else its FilterSet's (OME Filter/TransmittanceRange, UnitsLength default nm).
    None when there is none or it is not a band (two positive lengths, CutIn < CutOut)."""
    if instrument is None:
        return None
    ids = ch.excitation_filter_ids if excitation else ch.emission_filter_ids
    if not ids and ch.filter_set_id in instrument.filter_sets:
        ids = instrument.filter_sets[ch.filter_set_id][0 if excitation else 1]
    for fid in ids:
        attributes = instrument.filters.get(fid, {})
        try:
            cut = [
                tables.length_to_um(float(attributes[key]), attributes.get(key + "Unit") or "nm")
                * 1e3
                for key in ("CutIn", "CutOut")
            ]
        except (KeyError, ValueError, MetadataError):
            continue
        if 0 < cut[0] < cut[1] and all(map(np.isfinite, cut)):
            return (cut[0], cut[1])
    return None


def _objective(ome: omexml.Ome, ome_image: omexml.Image, notes: list[str]) -> Objective | None:
    obj = ome.objectives.get(ome_image.objective_id or "")
    if obj is None:
        return None
    return Objective(
        **fieldmap.from_ome("objective", obj.attributes, notes, f"Objective {obj.id} ")
    )


def _instrument(ome: omexml.Ome, ome_image: omexml.Image) -> omexml.Instrument | None:
    """The Image's Instrument: its InstrumentRef, else its objective's, else the only one."""
    for iid in (ome_image.instrument_id, _objective_instrument(ome, ome_image)):
        if iid is not None and iid in ome.instruments:
            return ome.instruments[iid]
    return next(iter(ome.instruments.values())) if len(ome.instruments) == 1 else None


def _objective_instrument(ome: omexml.Ome, ome_image: omexml.Image) -> str | None:
    obj = ome.objectives.get(ome_image.objective_id or "")
    return obj.instrument_id if obj is not None else None


def _microscope(instrument: omexml.Instrument | None, notes: list[str]) -> Microscope | None:
    if instrument is None or not instrument.microscope:
        return None
    mapped = fieldmap.from_ome("microscope", instrument.microscope, notes, "Microscope ")
    return Microscope(**mapped) if mapped else None


def _detector(
    instrument: omexml.Instrument | None, ome_image: omexml.Image, notes: list[str]
) -> Detector | None:
    """The detector of the Image's first Channel with DetectorSettings, else the Instrument's
    only Detector."""
    if instrument is None or not instrument.detectors:
        return None
    wanted = next((c.detector_id for c in ome_image.pixels.channels if c.detector_id), None)
    attributes = instrument.detectors.get(wanted or "")
    if attributes is None and len(instrument.detectors) == 1:
        attributes = next(iter(instrument.detectors.values()))
    if attributes is None:
        return None
    mapped = fieldmap.from_ome("detector", attributes, notes, "Detector ")
    return Detector(**mapped) if mapped else None


def _physical_size(pixels: omexml.Pixels) -> tuple[float, float] | None:
    x, y = pixels.physical_size_x, pixels.physical_size_y
    if x is None and y is None:
        return None
    x = x or y
    y = y or x
    assert x is not None and y is not None
    sx = tables.length_to_um(*x, what="PhysicalSizeX")
    sy = tables.length_to_um(*y, what="PhysicalSizeY")
    if sx <= 0 or sy <= 0:
        raise MetadataError(f"PhysicalSize ({sx}, {sy}) µm is not positive")
    return (sx, sy)


def _read_image(
    path: Path,
    tf: tifffile.TiffFile,
    raw: RawFile,
    ome: omexml.Ome,
    ome_image: omexml.Image,
    index: int,
    warnings: list[str],
    timepoint: int | None = None,
) -> Image | None:
    pixels = ome_image.pixels
    instrument = _instrument(ome, ome_image)
    channels = tuple(_channel(ch, warnings, instrument) for ch in pixels.channels)
    spp = channels[0].samples_per_pixel if channels else 1
    size_c = pixels.size_c // spp if pixels.size_c >= spp else pixels.size_c
    sizes = {"Z": pixels.size_z, "C": max(1, size_c), "T": pixels.size_t}
    if len(channels) > sizes["C"]:  # OME: SizeC = the Channels' SamplesPerPixel summed
        raise MetadataError(
            f"the OME-XML of image {ome_image.id} has {len(channels)} Channel elements of "
            f"{spp} sample(s) each for SizeC {pixels.size_c}",
            path=path,
            hint="the OME-XML is damaged; rewrite it (tifffile.tiffcomment) or re-export the file",
        )
    ifds = _plane_ifds(path, tf, ome, ome_image, sizes)
    kind_name = tables.associated_kind(ome_image.name)
    kind = ImageKind(kind_name) if kind_name else ImageKind.VOLUME
    where = f"image {index} ({ome_image.name or ome_image.id})"

    # Planes used: the first time point (time series are an issue of their own).
    t = timepoint or 0
    if timepoint is not None and not 0 <= timepoint < sizes["T"]:
        raise InputError(
            f"{where} has {sizes['T']} time point(s); --timepoint {timepoint} is out of range",
            path=path,
            hint=f"time points are numbered 0 to {sizes['T'] - 1}",
        )
    plane_pages: dict[tuple[int, int], tifffile.TiffPage] = {}
    for z in range(sizes["Z"]):
        for c in range(sizes["C"]):
            ifd = ifds[(z, c, t)]
            with tiff_structure(path, f"IFD {ifd}"):
                page = tf.pages[ifd]
                if not isinstance(page, tifffile.TiffPage):
                    page = page.aspage()
            plane_pages[(z, c)] = page
    first = plane_pages[(0, 0)]

    # The OME-XML must agree with the IFDs (the TIFF structure wins, but we refuse to guess).
    if (first.imagewidth, first.imagelength) != (pixels.size_x, pixels.size_y):
        raise MetadataError(
            f"{where}: the OME-XML says {pixels.size_x}×{pixels.size_y} pixels but IFD "
            f"{first.index} holds {first.imagewidth}×{first.imagelength}",
            path=path,
            hint="the OME-XML disagrees with the TIFF structure; rewrite the OME-XML "
            "(tifffile.tiffcomment) or re-export the file",
        )
    ome_dtype = _ome_dtype(pixels.type, path)
    with tiff_structure(path, f"IFD {first.index}"):
        page_dtype = first.dtype
    if page_dtype is not None and np.dtype(page_dtype) != ome_dtype:
        raise MetadataError(
            f"{where}: the OME-XML says pixel type {pixels.type} but IFD {first.index} "
            f"holds {np.dtype(page_dtype).name}",
            path=path,
            hint="the OME-XML disagrees with the TIFF structure",
        )
    if first.samplesperpixel != spp and first.planarconfig == 1:
        raise MetadataError(
            f"{where}: the OME-XML says {spp} samples per pixel, IFD {first.index} has "
            f"{first.samplesperpixel}",
            path=path,
        )

    level_pages: list[dict[tuple[int, int], tifffile.TiffPage]] = [plane_pages]
    with tiff_structure(path, f"the SubIFDs of IFD {first.index}"):
        subs = {key: _sub_pages(tf, page) for key, page in plane_pages.items()}
    counts = {len(v) for v in subs.values()}
    if len(counts) != 1:
        raise MetadataError(f"{where}: planes have different numbers of SubIFD levels", path=path)
    n_sub = counts.pop()
    if kind is not ImageKind.VOLUME:
        n_sub = 0  # associated images: the full-resolution picture only
    for level in range(n_sub):
        level_pages.append({key: pages[level] for key, pages in subs.items()})

    levels = []
    size0 = (first.imagewidth, first.imagelength)
    previous = None
    for li, pages in enumerate(level_pages):
        # Striped uncompressed levels are re-tiled to level 0's tile size: readers such as
        # wsidicom expect one tile size across a pyramid.
        retile = levels[0].tile_size if levels else None
        lv = _read_level(path, raw, li, pages, size0, kind, where, warnings, retile)
        if not pages[(0, 0)].is_tiled:  # TIFF RowsPerStrip, for ``omedicom info``
            rps = min(pages[(0, 0)].rowsperstrip or lv.size[1], lv.size[1])
            lv = dataclasses.replace(lv, rows_per_strip=rps)
        if previous is not None and (lv.size[0] >= previous[0] or lv.size[1] >= previous[1]):
            raise MetadataError(
                f"{where}: SubIFD level {li} ({lv.size[0]}×{lv.size[1]}) is not smaller than "
                f"the level above it ({previous[0]}×{previous[1]})",
                path=path,
            )
        previous = lv.size
        levels.append(lv)

    z_um = _focal_planes(pixels, sizes, t)

    if any(p.colormap is not None for p in plane_pages.values()):
        # palette pages: the indices are the data, the palette is the channel's colour
        coloured = []
        for c, channel in enumerate(channels[: sizes["C"]]):
            colormap = plane_pages[(0, c)].colormap
            palette = None if colormap is None else np.asarray(colormap)
            if palette is not None and (
                palette.ndim != 2 or palette.shape[0] != 3 or not palette.shape[1]
            ):
                # TIFF 6.0 section 5: ColorMap holds 3 × 2**BitsPerSample values
                warnings.append(
                    f"image {index} channel {c}: the TIFF ColorMap has {palette.size} values, "
                    "not 3 per palette entry; its colour is not used"
                )
                palette = None
            if channel.color is None and palette is not None:
                top = palette[:, -1]
                rgb = tuple(int(v) >> 8 if int(palette.max()) > 255 else int(v) for v in top)
                channel = dataclasses.replace(channel, color=(*rgb, 255))
            coloured.append(channel)
        channels = (*coloured, *channels[sizes["C"] :])
    return Image(
        kind=kind,
        name=ome_image.name,
        dtype=ome_dtype.name,
        samples_per_pixel=spp,
        photometric=levels[0].codec.photometric,
        levels=tuple(levels),
        channels=channels,
        focal_planes_um=z_um,
        pixel_size_um=_physical_size(pixels),
        acquired=ome_image.acquisition_date,
        description=ome_image.description,
        objective=_objective(ome, ome_image, warnings),
        microscope=_microscope(_instrument(ome, ome_image), warnings),
        detector=_detector(_instrument(ome, ome_image), ome_image, warnings),
        icc_profile=_icc_profile(first, where, warnings),
        source_index=index,
        time_points=sizes["T"],
        time_point=timepoint,
    )


def _icc_profile(page: tifffile.TiffPage, where: str, warnings: list[str]) -> bytes | None:
    """The ICC profile of TIFF tag 34675 (InterColorProfile, type UNDEFINED): bytes that
    begin with a profile header (ICC.1 7.2: the size, then "acsp" at offset 36). A tag of
    another type or a value that is no profile is dropped, and the conversion says so."""
    value = page.iccprofile
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)) and len(value) >= 128 and value[36:40] == b"acsp":
        return bytes(value)
    warnings.append(f"{where}: the ICC profile tag (34675) holds no ICC profile; it is ignored")
    return None


_OME_TYPES = {
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "float": "float32",
    "double": "float64",
    "complex": "complex64",
    "double-complex": "complex128",
    "bit": "bool",
}


def _ome_dtype(name: str, path: Path) -> np.dtype:
    """numpy dtype of an OME Pixels/@Type (ome-2016-06.xsd PixelType)."""
    if name not in _OME_TYPES:
        raise MetadataError(f"unknown OME pixel type {name!r}", path=path)
    return np.dtype(_OME_TYPES[name])


def _focal_planes(pixels: omexml.Pixels, sizes: dict[str, int], t: int) -> tuple[float, ...]:
    """Z of each plane in µm: Plane/@PositionZ where every plane has one in a length unit
    (uneven stacks), else multiples of PhysicalSizeZ, else 0, 1, 2, ... (OME Pixels, Plane)."""
    n = sizes["Z"]
    known: dict[int, float] = {}
    for plane in pixels.planes:
        if plane.the_c == 0 and plane.the_t == t and plane.position_z is not None:
            value, unit = plane.position_z
            if unit in tables.table("units")["length"]:
                known[plane.the_z] = tables.length_to_um(value, unit)
    if n > 1 and len(known) == n:
        z = [known[k] - known[0] for k in range(n)]
        if all(b > a for a, b in itertools.pairwise(z)):  # glass to coverslip, no repeats
            return tuple(z)
    if pixels.physical_size_z is not None:
        dz = tables.length_to_um(*pixels.physical_size_z, what="PhysicalSizeZ")
        return tuple(k * dz for k in range(n))
    return tuple(float(k) for k in range(n))


def _enum_name(enum: Any, value: int) -> str:
    try:
        return str(enum(value).name)
    except ValueError:
        return str(value)


#: tifffile page attributes that must each be one integer (TIFF 6.0 baseline fields).
_SCALAR_TAGS = (
    "imagewidth",
    "imagelength",
    "imagedepth",
    "tilewidth",
    "tilelength",
    "rowsperstrip",
    "samplesperpixel",
    "bitspersample",
    "sampleformat",
    "photometric",
    "compression",
    "planarconfig",
)


def check_layout(path: Path, page: tifffile.TiffPage, what: str) -> None:
    """Refuse a page whose tags cannot describe its own data (TIFF 6.0 sections 3, 15).

    Everything later computed from the tags (tile grids, decoded tile buffers, byte ranges) is
    bounded here by what the file holds: the image and its tiles have a size, a tile is not
    larger than the image it tiles (rounded up to the 16-pixel multiple the specification asks
    for, with room for the 512-pixel tiles writers use on small images), and there is exactly
    one offset and one byte count per tile or strip, each within the file.
    """

    def refuse(problem: str) -> InputError:
        return InputError(
            f"{what}: {problem}",
            path=path,
            hint="the TIFF tags are damaged; export or fetch the file again",
        )

    for name in _SCALAR_TAGS:  # a tag of another type or count reads as bytes or a tuple
        value = getattr(page, name, 0)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
            shown = reprlib.repr(value)
            raise refuse(f"the TIFF tag behind {name} holds {shown}, not one whole number")
    width, height = page.imagewidth, page.imagelength
    if width < 1 or height < 1:
        raise refuse(f"ImageWidth × ImageLength is {width}×{height}")
    spp = page.samplesperpixel
    if spp < 1:
        raise refuse(f"SamplesPerPixel is {spp}")
    planes = spp if page.planarconfig == 2 else 1
    tags = page.tags
    if not page.is_tiled and (322 in tags or 323 in tags):  # tifffile: a 0 means "strips"
        width_tag, length_tag = tags.valueof(322), tags.valueof(323)
        raise refuse(
            f"TileWidth is {width_tag} and TileLength {length_tag}: the tags name tiles of no size"
        )
    if page.is_tiled:
        tw, th = page.tilewidth, page.tilelength
        for name, tile, size in (("TileWidth", tw, width), ("TileLength", th, height)):
            if tile < 1 or tile > max(512, -(-size // 16) * 16):
                raise refuse(f"{name} is {tile} for an image of {size} pixels")
        segments = -(-width // tw) * -(-height // th) * planes * max(1, page.imagedepth)
        kind = "tile"
    else:
        rps = min(page.rowsperstrip or height, height)
        if rps < 1:
            raise refuse(f"RowsPerStrip is {page.rowsperstrip}")
        segments = -(-height // rps) * planes
        kind = "strip"
    offsets, counts = page.dataoffsets, page.databytecounts
    try:
        for values in (offsets, counts):
            kinds = np.asarray(values).dtype.kind if len(values) else "u"
            if kinds not in "iuO" or (kinds == "O" and not all(type(v) is int for v in values)):
                raise TypeError  # e.g. a FLOAT or RATIONAL tag (TIFF 6.0: SHORT or LONG)
            np.asarray(values, dtype=np.uint64)
    except (ValueError, TypeError, OverflowError):
        raise refuse(f"the {kind} offsets or byte counts are not whole numbers") from None
    if len(offsets) != segments or len(counts) != segments:
        raise refuse(
            f"the tags list {len(offsets)} {kind} offsets and {len(counts)} byte counts; "
            f"{width}×{height} pixels in {kind}s as the tags say need {segments}"
        )


def _check_counts(path: Path, raw: RawFile, page: tifffile.TiffPage, what: str) -> str | None:
    """Refuse tile data past the end of the file; report missing (empty) tiles as an issue.
    Called after :func:`check_layout`, so offsets and counts pair up."""
    offsets = np.asarray(page.dataoffsets, dtype=np.uint64)
    counts = np.asarray(page.databytecounts, dtype=np.uint64)
    # each is checked alone first: their sum could not overflow then
    ends = np.minimum(offsets, raw.size + 1) + np.minimum(counts, raw.size + 1)
    if offsets.size and int(ends.max()) > raw.size:
        bad = int(np.argmax(ends > raw.size))
        raise InputError(
            f"{what} is truncated: tile {bad} needs bytes up to offset "
            f"{int(offsets[bad]) + int(counts[bad])}, the file has {raw.size}",
            path=path,
            hint="the file was cut short (an interrupted copy or download?); fetch it again",
        )
    if offsets.size and (counts == 0).any():
        missing = int((counts == 0).sum())
        return f"{what} has {missing} missing (empty) tiles; sparse tiling is not supported yet"
    return None


def _level_issue(page: tifffile.TiffPage, compression: Compression, what: str) -> str | None:
    """Why a level cannot be stored in DICOM WSI at all, or None.

    DICOM WSI pixels are unsigned 8- or 16-bit integers, MONOCHROME2 needing Rescale Intercept
    0 and Slope 1 (PS3.3 C.8.12.4, MAPPING.md Corrections 2): signed or floating-point samples
    cannot be stored without changing their values, so they are refused rather than shifted.
    """
    spp, bits = page.samplesperpixel, page.bitspersample
    if int(page.photometric) not in (0, 1, 2, 3, 6):
        name = _enum_name(tifffile.PHOTOMETRIC, int(page.photometric))
        return f"{what} has TIFF photometric interpretation {name}, which is not supported"
    if int(page.photometric) == 0:
        return f"{what} is MINISWHITE (0 = white), which DICOM WSI cannot state; not supported"
    kind = _enum_name(tifffile.SAMPLEFORMAT, page.sampleformat).lower()
    if page.sampleformat != 1:
        return (
            f"{what} has {kind} samples ({bits}-bit); DICOM whole-slide images hold unsigned "
            "integers only (Pixel Representation 0, Rescale Intercept 0), so the values "
            "cannot be kept"
        )
    if bits not in (8, 16):
        return f"{what} has {bits}-bit samples; only 8- and 16-bit images can be converted"
    if spp not in (1, 3):
        return f"{what} has {spp} samples per pixel; only 1 or 3 can be converted"
    if compression is Compression.OTHER:
        value = int(page.compression)
        return (
            f"{what} is compressed with {_enum_name(tifffile.COMPRESSION, value)} (TIFF "
            f"compression {value}), which this version cannot decode"
        )
    return None


def _copyable(page: tifffile.TiffPage, compression: Compression) -> bool:
    """Whether the stored tiles can go into DICOM as they are (else: decode, re-encode)."""
    spp, bits = page.samplesperpixel, page.bitspersample
    if (page.planarconfig == 2 and spp > 1) or int(page.photometric) == 3:
        return False
    if compression is Compression.JPEG:
        return bits == 8 and (page.is_tiled or len(page.dataoffsets) == 1)
    if compression is Compression.JPEG2000:
        return page.is_tiled and int(page.compression) != 33003
    return compression is Compression.NONE


def _decode_reason(page: tifffile.TiffPage, compression: Compression, what: str) -> str:
    value = int(page.compression)
    if page.planarconfig == 2 and page.samplesperpixel > 1:
        layout = "colour samples in separate planes (PlanarConfiguration 2)"
    elif int(page.photometric) == 3:
        layout = "palette indices (stored as greyscale, the palette as the channel colour)"
    elif not page.is_tiled and compression is not Compression.NONE:
        layout = f"{_enum_name(tifffile.COMPRESSION, value)} strips"
    else:
        layout = f"{_enum_name(tifffile.COMPRESSION, value)} tiles (TIFF compression {value})"
    return f"{what}: {layout}; DICOM cannot hold them as they are, so they are decoded"


_PHOTOMETRIC = {1: Photometric.MONOCHROME, 2: Photometric.RGB, 6: Photometric.YCBCR}


def _read_level(
    path: Path,
    raw: RawFile,
    li: int,
    pages: dict[tuple[int, int], tifffile.TiffPage],
    size0: tuple[int, int],
    kind: ImageKind,
    where: str,
    warnings: list[str],
    retile: tuple[int, int] | None = None,
) -> Level:
    """Describe one level. Levels this version cannot copy carry an ``issue`` instead of
    raising, so ``omedicom info`` still describes them; writers refuse them."""
    page = pages[(0, 0)]
    what = f"{where} level {li}"
    size = (page.imagewidth, page.imagelength)
    issue = None
    for key, other in pages.items():
        if (other.imagewidth, other.imagelength) != size or other.compression != page.compression:
            raise MetadataError(f"{what}: plane {key} differs in size or codec", path=path)
        check_layout(path, other, f"{what} plane {key}")
        issue = _check_counts(path, raw, other, f"{what} plane {key}") or issue
    downsample = (size0[0] / size[0], size0[1] / size[1])
    compression = _COMPRESSION.get(int(page.compression), Compression.OTHER)
    spp, bits = page.samplesperpixel, page.bitspersample
    tiff_photometric = _PHOTOMETRIC.get(int(page.photometric), Photometric.PALETTE)
    issue = issue or _level_issue(page, compression, what)
    planes = {key: PageTiles(p.dataoffsets, p.databytecounts) for key, p in pages.items()}
    compressed_bytes = sum(int(sum(p.databytecounts)) for p in pages.values())
    tiled = page.is_tiled
    tile_size = (page.tilewidth, page.tilelength) if tiled else size
    grid = (-(-size[0] // tile_size[0]), -(-size[1] // tile_size[1]))
    codec = Codec(
        compression=compression,
        photometric=tiff_photometric,
        bits=bits,
        samples_per_pixel=spp,
        lossless=True if compression is not Compression.JPEG else None,
        signed=page.sampleformat == 2,
        floating=page.sampleformat == 3,
        little_endian=page.parent.byteorder == "<",
    )

    if issue is None and not _copyable(page, compression):
        # Decode once with tifffile; the target re-encodes losslessly (and says so).
        if tiled and tile_size[0] % 16 == 0 and tile_size[1] % 16 == 0:
            out_tile = tile_size
        elif retile is not None:
            out_tile = retile
        elif size[0] <= _SINGLE_TILE_MAX and size[1] <= _SINGLE_TILE_MAX:
            out_tile = (-(-size[0] // 16) * 16, -(-size[1] // 16) * 16)
        else:
            out_tile = (_RETILE, _RETILE)
        warnings.append(_decode_reason(page, compression, what))
        photometric = tiff_photometric
        if photometric in (Photometric.PALETTE,):
            photometric = Photometric.MONOCHROME
        elif photometric is Photometric.YCBCR:
            photometric = Photometric.RGB  # tifffile decodes YCbCr to RGB
        codec = dataclasses.replace(
            codec,
            photometric=photometric,
            lossless=compression not in (Compression.JPEG, Compression.WEBP),
        )
        source = DecodingSource(raw, pages, out_tile, label=f"{what}")
        return Level(li, size, out_tile, codec, source, downsample, None, compressed_bytes)
    if issue is None and compression is Compression.JPEG:
        tables_bytes = page.jpegtables
        probe = TiffTileSource(raw, planes, grid, tables=tables_bytes, label=f"{what} tile")
        try:
            header = jpeg.parse_header(probe.encoded(0, 0))
        except jpeg.JpegError as exc:
            raise InputError(
                f"{what}: the first tile is not a JPEG stream ({exc})", path=path
            ) from None
        photometric, insert = jpeg.decide_photometric(
            header, tiff_rgb=tiff_photometric is Photometric.RGB
        )
        if (header.width, header.height) != tile_size or len(header.components) != spp:
            raise MetadataError(
                f"{what}: the JPEG tiles are {header.width}×{header.height} with "
                f"{len(header.components)} components, the TIFF says {tile_size[0]}×"
                f"{tile_size[1]} with {spp} samples",
                path=path,
            )
        if header.precision != 8:
            issue = f"{what}: {header.precision}-bit JPEG is not supported yet"
        if insert:
            warnings.append(
                f"{what}: RGB JPEG tiles without colour signalling; an Adobe APP14 marker "
                "(transform 0) is inserted so decoders read them as RGB"
            )
        codec = Codec(
            compression=Compression.JPEG,
            photometric=photometric,
            bits=8,
            samples_per_pixel=spp,
            subsampling=header.subsampling,
            lossless=header.lossless,
            process=header.sof & 0xFF,
            inserted_marker=insert,
        )
        source = TiffTileSource(
            raw, planes, grid, tables=tables_bytes, insert=insert, label=f"{what} tile"
        )
        return Level(
            li, size, tile_size, codec, source, downsample, tables_bytes, compressed_bytes, issue
        )

    if issue is None and compression is Compression.JPEG2000 and not tiled:
        issue = f"{what} is striped JPEG 2000; only tiled JPEG 2000 can be copied"
    if issue is None and compression is Compression.JPEG2000:
        probe = TiffTileSource(raw, planes, grid, label=f"{what} tile")
        try:
            header = jpeg2000.parse_header(probe.stored(0, 0))
        except jpeg2000.J2kError as exc:
            raise InputError(
                f"{what}: the first tile is not a JPEG 2000 codestream ({exc})", path=path
            ) from None
        if (header.width, header.height) != tile_size or header.components != spp:
            raise MetadataError(
                f"{what}: the JPEG 2000 tiles are {header.width}×{header.height} with "
                f"{header.components} components, the TIFF says {tile_size[0]}×{tile_size[1]} "
                f"with {spp} samples",
                path=path,
            )
        if spp == 1:
            photometric = Photometric.MONOCHROME
        elif header.mct:
            photometric = Photometric.YBR_RCT if header.reversible else Photometric.YBR_ICT
        else:
            photometric = Photometric.RGB
        codec = dataclasses.replace(codec, photometric=photometric, lossless=header.reversible)
        return Level(li, size, tile_size, codec, probe, downsample, None, compressed_bytes)

    if issue is None and compression is Compression.NONE and not tiled:
        # Strips become tiles without any codec: rows are copied into full-size tiles.
        if retile is not None:
            tile_size = retile
        elif size[0] > _SINGLE_TILE_MAX or size[1] > _SINGLE_TILE_MAX:
            tile_size = (_RETILE, _RETILE)
        rps = min(page.rowsperstrip or size[1], size[1])
        retiled = StripRetileSource(
            raw,
            planes,
            size,
            tile_size,
            rps,
            spp * bits // 8,
            swap16=bits == 16 and page.parent.byteorder == ">",
        )
        return Level(li, size, tile_size, codec, retiled, downsample, None, compressed_bytes)

    native = None
    if compression is Compression.NONE:
        order = page.parent.byteorder
        native = (tile_size[1], tile_size[0], spp, np.dtype(page.dtype).newbyteorder(order).str)
    source = TiffTileSource(raw, planes, grid, native=native, label=f"{what} tile")
    return Level(
        li, size, tile_size, codec, source, downsample, page.jpegtables, compressed_bytes, issue
    )
