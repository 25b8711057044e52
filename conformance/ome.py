"""Checks of OME-TIFF files (OME-TIFF specification; schema ome-2016-06.xsd); MAPPING.md G3, G9.

The TIFF structure is read with tifffile and the OME-XML with lxml, independently of the
bridge's reader, so that a file the converter refuses still gets a full report. Documents in an
older OME namespace are upgraded with the OME XSLT transforms shipped in ome-types before they are
validated and read (the upgrade is reported).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tifffile
from lxml import etree

from bridge import tables
from bridge.ometiff.omexml import DIMENSION_ORDERS

from . import ome_roi, physics
from .catalog import finding
from .findings import Finding, Severity

OME_2016_06 = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
SCHEMA_ERRORS_SHOWN = 20
W, I = Severity.WARNING, Severity.INFO  # noqa: E741


class Unreadable(Exception):
    """Not a TIFF, or a TIFF whose structure cannot be parsed."""


def local(el: etree._Element) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rsplit("}", 1)[-1]


def children(el: etree._Element, name: str) -> list[etree._Element]:
    return [c for c in el if local(c) == name]


def child(el: etree._Element, name: str) -> etree._Element | None:
    found = children(el, name)
    return found[0] if found else None


@functools.cache
def _schema() -> etree.XMLSchema:
    from ome_types._conversion import OME_2016_06_XSD

    return etree.XMLSchema(etree.parse(str(OME_2016_06_XSD)))


@dataclass
class Plane:
    file: Path
    ifd: int


@dataclass
class OmeImage:
    id: str
    name: str | None
    element: etree._Element
    size: dict[str, int]
    dimension_order: str
    samples_per_pixel: int
    planes: dict[int, Plane] = field(default_factory=dict)

    @property
    def size_c_effective(self) -> int:
        return max(1, self.size["C"] // max(1, self.samples_per_pixel))

    @property
    def plane_count(self) -> int:
        return self.size["Z"] * self.size_c_effective * self.size["T"]

    def plane_index(self, z: int, c: int, t: int) -> int:
        """Plane number of (z, c, t) in DimensionOrder (the letter after XY varies fastest)."""
        sizes = {"Z": self.size["Z"], "C": self.size_c_effective, "T": self.size["T"]}
        coords = {"Z": z, "C": c, "T": t}
        order = self.dimension_order[2:] if len(self.dimension_order) == 5 else "ZCT"
        index, stride = 0, 1
        for axis in order:
            index += coords[axis] * stride
            stride *= sizes[axis]
        return index


class _TiffLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def open_tiff(path: Path) -> tuple[tifffile.TiffFile, list[str]]:
    handler = _TiffLog()
    logger = logging.getLogger("tifffile")
    logger.addHandler(handler)
    try:
        tf = tifffile.TiffFile(path)
        count = len(tf.pages)
    except Exception as exc:
        raise Unreadable(
            f"the TIFF structure cannot be read ({type(exc).__name__}: {exc})"
        ) from None
    finally:
        logger.removeHandler(handler)
    if not count:
        tf.close()
        why = handler.messages[0] if handler.messages else "no IFD"
        raise Unreadable(f"the TIFF has no readable IFD ({why})")
    return tf, handler.messages


class TiffSet:
    """The TIFF files an OME-XML document refers to (multi-file OME-TIFF), opened on demand.

    ``home`` is the file being checked (None for a metadata-only companion document)."""

    def __init__(self, home: Path | None, tf: tifffile.TiffFile | None) -> None:
        self.home = home
        self._files: dict[Path, tifffile.TiffFile | None] = {home: tf} if home else {}

    def get(self, path: Path) -> tifffile.TiffFile | None:
        if path not in self._files:
            try:
                self._files[path] = open_tiff(path)[0] if path.is_file() else None
            except Unreadable:
                self._files[path] = None
        return self._files[path]

    def close(self) -> None:
        for path, tf in self._files.items():
            if tf is not None and path != self.home:
                tf.close()


def _structure(path: Path, tf: tifffile.TiffFile, where: dict) -> Iterator[Finding]:
    """OME-tiff-structure: each IFD and SubIFD through the converter's own page checks, so
    that a file ``omedicom convert`` refuses is a finding here, not a crash of a later check."""
    from bridge.errors import InputError
    from bridge.ometiff.reader import check_layout, tiff_structure

    for index in range(len(tf.pages)):
        what = f"IFD {index}"
        try:
            with tiff_structure(path, what):
                page = tf.pages[index]
                page = page if isinstance(page, tifffile.TiffPage) else page.aspage()
                pages = [(what, page)]
                for level, offset in enumerate(page.subifds or ()):
                    tf.filehandle.seek(offset)
                    sub = tifffile.TiffPage(tf, (page.index, level + 1))
                    pages.append((f"{what} SubIFD {level + 1}", sub))
            for label, one in pages:
                check_layout(path, one, label)
        except InputError as exc:
            yield finding("OME-tiff-structure", exc.message, attribute=what, **where)
            return


def check(path: Path, name: str) -> Iterator[Finding]:
    """Every OME-TIFF check on one file. Raises :class:`Unreadable` when it is not a TIFF."""
    tf, log = open_tiff(path)
    files = TiffSet(path, tf)
    try:
        yield from _check(path, name, tf, log, files)
    finally:
        files.close()
        tf.close()


def check_companion(path: Path, name: str) -> Iterator[Finding]:
    """A metadata-only OME-XML document (``.companion.ome``) and the TIFF files it names."""
    where = {"file": name}
    root, found = parse_xml(path.read_bytes(), path.name, where)
    yield from found
    if root is None:
        return
    files = TiffSet(None, None)
    try:
        images, found = read_images(root, where)
        yield from found
        for image in images:
            yield from map_planes(image, path.parent, None, files, where)
            yield from _sizes(image, files, where)
            yield from _physical_size(image, where)
        yield from _pyramids(images, files, where)
        yield from ome_roi.check(root, images, name)
    finally:
        files.close()


def is_ome_xml(path: Path) -> bool:
    """An XML document with an OME root element (a ``.companion.ome``), by its first bytes."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    except OSError:
        return False
    return head.startswith(b"<") and (b"<OME" in head or b":OME" in head)


def _check(
    path: Path, name: str, tf: tifffile.TiffFile, log: list[str], files: TiffSet
) -> Iterator[Finding]:
    where = {"file": name}
    for message in log[:5]:
        yield finding(
            "OME-xml", f"tifffile reports a damaged structure: {message}", severity=W, **where
        )
    description = tf.pages[0].description if len(tf.pages) else ""
    if not log and "<OME" not in description and ":OME" not in description:
        from . import wsitiff  # a scanner's TIFF dialect: checked as such

        yield from wsitiff.check(path, name, tf)
        return
    if not description or ("<OME" not in description and ":OME" not in description):
        yield finding(
            "OME-xml",
            (
                "the first IFD's ImageDescription cannot be read: the file is damaged or cut short"
                if log and not description
                else "the first IFD's ImageDescription holds no OME-XML: this is a plain TIFF, "
                "not an OME-TIFF"
            ),
            attribute="IFD 0 ImageDescription",
            **where,
        )
        return
    damaged = list(_structure(path, tf, where))
    yield from damaged
    if damaged:  # the other checks read what these tags describe
        return
    root, found = parse_xml(description.encode("utf-8"), "ImageDescription of IFD 0", where)
    yield from found
    if root is None:
        return
    binary_only = child(root, "BinaryOnly")
    if binary_only is not None:
        metadata_file = binary_only.get("MetadataFile") or ""
        companion = path.parent / metadata_file
        if not metadata_file or not companion.is_file():
            yield finding(
                "OME-xml",
                f"BinaryOnly points to the metadata file {metadata_file!r}, which is not next to "
                "this file",
                attribute="BinaryOnly/@MetadataFile",
                **where,
            )
            return
        yield finding(
            "OME-xml",
            f"the metadata is in {metadata_file} (BinaryOnly); it was read from there",
            severity=I,
            attribute="BinaryOnly/@MetadataFile",
            **where,
        )
        root, found = parse_xml(companion.read_bytes(), metadata_file, where)
        yield from found
        if root is None:
            return
    root_uuid = own_uuid_of(tf)
    images, found = read_images(root, where)
    yield from found
    referenced: set[int] = set()
    for image in images:
        yield from map_planes(image, path.parent, root_uuid, files, where)
        referenced |= {p.ifd for p in image.planes.values() if p.file == path}
        yield from _sizes(image, files, where)
        yield from _physical_size(image, where)
    unreferenced = sorted(set(range(len(tf.pages))) - referenced)
    if images and unreferenced:
        shown = ", ".join(map(str, unreferenced[:10]))
        yield finding(
            "OME-ifd-count",
            f"{len(tf.pages)} main-chain IFDs, but {len(unreferenced)} of them (IFD {shown}) "
            "belong to no Image's TiffData; OME readers ignore them",
            severity=W,
            **where,
        )
    yield from _pyramids(images, files, where)
    yield from _tiles(tf, where)
    yield from physics.check_ome(root, where)
    yield from ome_roi.check(root, images, name)


def own_uuid_of(tf: tifffile.TiffFile) -> str | None:
    try:
        own = etree.fromstring(tf.pages[0].description.encode("utf-8"))
    except Exception:
        return None
    return own.get("UUID")


def parse_xml(data: bytes, what: str, where: dict) -> tuple[etree._Element | None, list[Finding]]:
    """Parse, upgrade to 2016-06 if needed, and validate against the XSD."""
    from ome_types._conversion import ensure_2016

    out: list[Finding] = []
    try:
        original = etree.fromstring(data)
    except etree.XMLSyntaxError as exc:
        out.append(
            finding("OME-xml", f"the OME-XML in {what} is not well-formed XML ({exc})", **where)
        )
        return None, out
    if local(original) != "OME":
        out.append(
            finding("OME-xml", f"the XML root in {what} is <{local(original)}>, not <OME>", **where)
        )
        return None, out
    namespace = original.tag[1:].split("}", 1)[0] if original.tag.startswith("{") else ""
    if namespace == OME_2016_06:
        tree = original.getroottree()
    else:
        try:
            tree = ensure_2016(data, as_tree=True)
        except Exception as exc:
            out.append(
                finding(
                    "OME-schema",
                    f"namespace {namespace!r} cannot be upgraded to 2016-06 ({exc})",
                    **where,
                )
            )
            return None, out
        out.append(
            finding(
                "OME-schema",
                f"written in the older schema {namespace}; upgraded to 2016-06 with the OME XSLT "
                "transforms before validation",
                severity=I,
                **where,
            )
        )
    schema = _schema()
    if not schema.validate(tree):
        errors = list(schema.error_log)
        for e in errors[:SCHEMA_ERRORS_SHOWN]:
            out.append(
                finding(
                    "OME-schema",
                    f"{what}, line {e.line}: {e.message}",
                    attribute=f"line {e.line}",
                    **where,
                )
            )
        if len(errors) > SCHEMA_ERRORS_SHOWN:
            out.append(
                finding(
                    "OME-schema", f"{len(errors) - SCHEMA_ERRORS_SHOWN} more schema errors", **where
                )
            )
    root = tree.getroot() if hasattr(tree, "getroot") else tree
    return root, out


def _int(el: etree._Element, key: str, default: int | None = None) -> int | None:
    value = el.get(key)
    if value is None or value.strip() == "":
        return default
    try:
        return int(value)
    except ValueError:
        return default


def read_images(root: etree._Element, where: dict) -> tuple[list[OmeImage], list[Finding]]:
    images, out = [], []
    for el in children(root, "Image"):
        px = child(el, "Pixels")
        image_id = el.get("ID", "?")
        if px is None:
            out.append(finding("OME-xml", "Image without Pixels", image=image_id, **where))
            continue
        size = {k: _int(px, f"Size{k}", 1 if k in "ZCT" else None) for k in "XYZCT"}
        if size["X"] is None or size["Y"] is None:
            out.append(
                finding("OME-size", "Pixels without a valid SizeX/SizeY", image=image_id, **where)
            )
            continue
        size = {k: max(0, v or 0) for k, v in size.items()}
        order = px.get("DimensionOrder", "XYZCT")
        if order not in DIMENSION_ORDERS:
            out.append(
                finding(
                    "OME-xml",
                    f"Pixels/@DimensionOrder is {order!r}; the schema allows "
                    + ", ".join(sorted(DIMENSION_ORDERS)),
                    image=image_id,
                    attribute="DimensionOrder",
                    **where,
                )
            )
            continue
        channels = children(px, "Channel")
        spp = _int(channels[0], "SamplesPerPixel", 1) if channels else 1
        images.append(OmeImage(image_id, el.get("Name"), el, size, order, spp or 1))
    return images, out


def map_planes(
    image: OmeImage, folder: Path, own_uuid: str | None, files: TiffSet, where: dict
) -> Iterator[Finding]:
    """G9: TiffData in range, planes mapped once, as many planes as Z x C x T / samples.

    A TiffData without UUID, or with the document's own UUID, refers to ``files.home``; others
    name their file (UUID/@FileName), looked up in ``folder``."""
    px = child(image.element, "Pixels")
    entries = children(px, "TiffData")
    w = {**where, "image": image.id}
    if not entries:
        if child(px, "MetadataOnly") is not None or child(px, "BinData") is not None:
            yield finding(
                "OME-ifd-count",
                "the Image's pixels are not in TIFF IFDs (MetadataOnly/BinData)",
                severity=I,
                **w,
            )
        else:
            yield finding(
                "OME-ifd-count", "the Image has no TiffData: no IFD holds its planes", **w
            )
        return
    if image.size["C"] % max(1, image.samples_per_pixel):
        yield finding(
            "OME-ifd-count",
            f"SizeC {image.size['C']} is not a multiple of SamplesPerPixel "
            f"{image.samples_per_pixel}",
            **w,
        )
    total = image.plane_count
    for n, td in enumerate(entries, start=1):
        attr = f"Image[@ID='{image.id}']/Pixels/TiffData[{n}]"
        first = {k: _int(td, f"First{k}", 0) or 0 for k in "ZCT"}
        ifd = _int(td, "IFD", 0) or 0
        has_ifd = td.get("IFD") is not None
        uuid_el = child(td, "UUID")
        uuid_text = (uuid_el.text or "").strip() if uuid_el is not None else ""
        if uuid_text and uuid_text != own_uuid:
            file_name = uuid_el.get("FileName") or ""
            target = folder / file_name if file_name else None
        else:
            target = files.home
        tf = files.get(target) if target is not None else None
        if tf is None:
            yield finding(
                "OME-tiffdata",
                f"TiffData {n} refers to "
                + (f"file {target.name}" if target is not None else "no file (no UUID/FileName)")
                + (f" ({uuid_text})" if uuid_text else "")
                + ", which is not a readable TIFF next to this document",
                attribute=f"{attr}/UUID",
                **w,
            )
            continue
        count_in_file = len(tf.pages)
        if target != files.home:
            other_uuid = own_uuid_of(tf)
            if other_uuid and other_uuid != uuid_text:
                yield finding(
                    "OME-tiffdata",
                    f"TiffData {n}: {target.name}'s OME UUID is {other_uuid}, not {uuid_text}",
                    severity=W,
                    attribute=f"{attr}/UUID",
                    **w,
                )
        default_count = 1 if has_ifd else max(0, min(count_in_file - ifd, total))
        count = _int(td, "PlaneCount", default_count) or 0
        limits = {"Z": image.size["Z"], "C": image.size_c_effective, "T": image.size["T"]}
        over = [f"First{k}={first[k]} >= {limits[k]}" for k in "ZCT" if first[k] >= limits[k]]
        if over:
            yield finding("OME-tiffdata", f"TiffData {n}: {', '.join(over)}", attribute=attr, **w)
            continue
        start = image.plane_index(first["Z"], first["C"], first["T"])
        for k in range(count):
            plane, index = start + k, ifd + k
            if index >= count_in_file:
                yield finding(
                    "OME-tiffdata",
                    f"TiffData {n} maps plane {plane} to IFD {index}, but "
                    f"{target.name} has {count_in_file} IFDs",
                    attribute=attr,
                    **w,
                )
                break
            if plane >= total:
                yield finding(
                    "OME-tiffdata",
                    f"TiffData {n} maps IFD {index} to plane {plane}, beyond the {total} planes "
                    "of SizeZ x SizeC x SizeT / SamplesPerPixel",
                    attribute=attr,
                    **w,
                )
                break
            if plane in image.planes:
                yield finding(
                    "OME-tiffdata",
                    f"plane {plane} is mapped twice (IFD {image.planes[plane].ifd} and IFD "
                    f"{index})",
                    attribute=attr,
                    **w,
                )
            image.planes[plane] = Plane(target, index)
    if len(image.planes) != total:
        s = image.size
        yield finding(
            "OME-ifd-count",
            f"TiffData maps {len(image.planes)} planes; SizeZ {s['Z']} x SizeC {s['C']} x SizeT "
            f"{s['T']} / SamplesPerPixel {image.samples_per_pixel} = {total}",
            attribute=f"Image[@ID='{image.id}']/Pixels",
            **w,
        )


def _sizes(image: OmeImage, files: TiffSet, where: dict) -> Iterator[Finding]:
    """SizeX/SizeY = the width/length of the IFDs holding the Image's planes."""
    w = {**where, "image": image.id}
    for plane in sorted(image.planes):
        p = image.planes[plane]
        tf = files.get(p.file)
        if tf is None:
            continue
        page = tf.pages[p.ifd]
        if (page.imagewidth, page.imagelength) != (image.size["X"], image.size["Y"]):
            yield finding(
                "OME-size",
                f"SizeX x SizeY is {image.size['X']} x {image.size['Y']}, but IFD {p.ifd} of "
                f"{p.file.name} (plane {plane}) is {page.imagewidth} x {page.imagelength}",
                attribute=f"Image[@ID='{image.id}']/Pixels/@SizeX",
                **w,
            )
            return


def _physical_size(image: OmeImage, where: dict) -> Iterator[Finding]:
    px = child(image.element, "Pixels")
    associated = tables.associated_kind(image.name) is not None
    w = {**where, "image": image.id}
    for axis in "XY":
        key = f"PhysicalSize{axis}"
        attr = f"Image[@ID='{image.id}']/Pixels/@{key}"
        value = px.get(key)
        if value is None:
            yield finding(
                "OME-physical-size",
                f"{key} is absent: the image has no physical scale"
                + (" (an associated image)" if associated else "; DICOM needs Pixel Spacing"),
                severity=I if associated else W,
                attribute=attr,
                **w,
            )
            continue
        try:
            number = float(value)
        except ValueError:
            yield finding(
                "OME-physical-size", f"{key}={value!r} is not a number", attribute=attr, **w
            )
            continue
        if not number > 0:
            yield finding(
                "OME-physical-size", f"{key}={value} is not positive", attribute=attr, **w
            )
            continue
        unit = px.get(key + "Unit") or "µm"
        if unit not in tables.table("units")["length"]:
            yield finding(
                "OME-physical-size",
                f"{key}Unit {unit!r} is not a physical length (mappings/units.toml)",
                severity=W,
                attribute=attr + "Unit",
                **w,
            )


def _pyramids(images: list[OmeImage], files: TiffSet, where: dict) -> Iterator[Finding]:
    """G9: SubIFD levels strictly shrink, consistently, the same for every plane."""
    for image in images:
        w = {**where, "image": image.id}
        shapes_per_plane = []
        for plane in sorted(image.planes):
            p = image.planes[plane]
            tf = files.get(p.file)
            if tf is None:
                continue
            page = tf.pages[p.ifd]
            subs = list(page.pages) if page.subifds else []
            levels = [(page.imagewidth, page.imagelength)] + [
                (s.imagewidth, s.imagelength) for s in subs
            ]
            shapes_per_plane.append((plane, p.ifd, levels))
            for j, s in enumerate(subs, start=1):
                if not (int(s.subfiletype) & 1):
                    yield finding(
                        "OME-subifd-levels",
                        f"IFD {p.ifd} SubIFD {j} has NewSubfileType {int(s.subfiletype)}; "
                        "sub-resolutions should be 1 (reduced resolution)",
                        severity=W,
                        level=j,
                        **w,
                    )
        if not shapes_per_plane:
            continue
        plane0, ifd0, levels = shapes_per_plane[0]
        for plane, ifd, other in shapes_per_plane[1:]:
            if other != levels:
                yield finding(
                    "OME-subifd-levels",
                    f"plane {plane} (IFD {ifd}) has levels {other}, plane {plane0} (IFD {ifd0}) "
                    f"has {levels}: every plane must have the same sub-resolutions",
                    **w,
                )
                break
        factors = []
        for j in range(1, len(levels)):
            (w0, h0), (w1, h1) = levels[j - 1], levels[j]
            if (w1 >= w0 and w0 > 1) or (h1 >= h0 and h0 > 1) or (w1, h1) == (w0, h0):
                yield finding(
                    "OME-subifd-levels",
                    f"level {j} ({w1} x {h1}) does not shrink from level {j - 1} ({w0} x {h0}); "
                    "SubIFD levels must be ordered largest to smallest",
                    level=j,
                    **w,
                )
                factors = []
                break
            fx, fy = w0 / w1, h0 / h1
            tol = 1.0 / min(w1, h1) + 1.0 / min(w0, h0)
            if abs(fx / fy - 1) > tol:
                yield finding(
                    "OME-subifd-levels",
                    f"level {j} is downsampled by {fx:.3g} in X but {fy:.3g} in Y",
                    severity=W,
                    level=j,
                    **w,
                )
            factors.append((j, fx, tol))
        for (j0, f0, t0), (j1, f1, t1) in itertools.pairwise(factors):
            if abs(f1 / f0 - 1) > t0 + t1:
                yield finding(
                    "OME-subifd-levels",
                    f"the downsampling factor changes from {f0:.3g} (level {j0}) to {f1:.3g} "
                    f"(level {j1}); the specification recommends one constant factor",
                    severity=W,
                    level=j1,
                    **w,
                )


def _tiles(tf: tifffile.TiffFile, where: dict) -> Iterator[Finding]:
    """TIFF 6.0 section 15: TileWidth and TileLength are multiples of 16."""
    for i, page in enumerate(tf.pages):
        subs = list(page.pages) if page.subifds else []
        for j, p in enumerate([page, *subs]):
            if not p.is_tiled:
                tags = p.tags
                if "TileWidth" in tags or "TileLength" in tags:  # present, but 0: no tiling
                    tw, tl = (
                        tags[k].value if k in tags else "absent"
                        for k in ("TileWidth", "TileLength")
                    )
                    yield finding(
                        "OME-tile-size",
                        f"IFD {i}{f' SubIFD {j}' if j else ''} has TileWidth {tw} and TileLength "
                        f"{tl}: no valid tiling, so readers cannot find its tiles; TIFF requires "
                        "positive multiples of 16",
                        level=j if j else None,
                        attribute=f"IFD {i} TileWidth/TileLength",
                        **where,
                    )
                continue
            tw, tl = p.tilewidth, p.tilelength
            if tw % 16 or tl % 16:
                yield finding(
                    "OME-tile-size",
                    f"IFD {i}{f' SubIFD {j}' if j else ''} has {tw} x {tl} tiles; TIFF requires "
                    "multiples of 16",
                    level=j if j else None,
                    attribute=f"IFD {i} TileWidth/TileLength",
                    **where,
                )
