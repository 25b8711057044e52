"""A fast, typed reading of the OME-XML fields the bridge maps (OME schema 2016-06).

Why not ``ome_types.from_xml`` on the conversion path: importing ome-types and building its
pydantic models costs about 0.5 s, more than copying a 600 MB slide (benchmarks/README.md).
This module reads the elements below with the standard library's ElementTree, namespace-
agnostic (so the ``ome:`` prefix and default-namespace documents read alike), into frozen
dataclasses. Documents in an *older* schema namespace are first upgraded to 2016-06 with
ome-types' bundled OME XSLT transforms (``ome_types.ensure_2016``), so one reader serves all.
The test suite checks this reader against ``ome_types.from_xml`` on every corpus document.

Elements read (ome-2016-06.xsd): OME/@UUID; Instrument/Objective (ID, NominalMagnification,
LensNA, Immersion, Manufacturer, Model); Image (ID, Name, AcquisitionDate, Description,
ObjectiveSettings/@ID); Pixels (DimensionOrder, Type, Size*, PhysicalSize* + units,
SignificantBits, Interleaved); Channel (ID, Name, SamplesPerPixel, Color, Excitation/
EmissionWavelength + units, IlluminationType, ContrastMethod, Fluor); TiffData (IFD, FirstZ,
FirstC, FirstT, PlaneCount, UUID + FileName).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import MetadataError

OME_2016_06 = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


@dataclass(frozen=True)
class TiffData:
    ifd: int | None = None
    first_z: int = 0
    first_c: int = 0
    first_t: int = 0
    plane_count: int | None = None
    uuid: str | None = None
    file_name: str | None = None


@dataclass(frozen=True)
class Channel:
    id: str
    name: str | None = None
    samples_per_pixel: int | None = None
    color: int | None = None  # signed 32-bit RGBA, as in the schema
    excitation: tuple[float, str] | None = None  # (value, unit)
    emission: tuple[float, str] | None = None
    illumination_type: str | None = None
    contrast_method: str | None = None
    fluor: str | None = None

    @property
    def rgba(self) -> tuple[int, int, int, int] | None:
        if self.color is None:
            return None
        v = self.color & 0xFFFFFFFF
        return (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)


@dataclass(frozen=True)
class Plane:
    """Pixels/Plane: 0-based TheZ/TheC/TheT and the stage position of the plane."""

    the_z: int
    the_c: int
    the_t: int
    position_z: tuple[float, str] | None = None  # unit default "reference frame"


@dataclass(frozen=True)
class Pixels:
    dimension_order: str
    type: str
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    physical_size_x: tuple[float, str] | None = None  # (value, unit)
    physical_size_y: tuple[float, str] | None = None
    physical_size_z: tuple[float, str] | None = None
    significant_bits: int | None = None
    interleaved: bool | None = None
    channels: tuple[Channel, ...] = ()
    tiff_data: tuple[TiffData, ...] = ()
    planes: tuple[Plane, ...] = ()


@dataclass(frozen=True)
class Image:
    id: str
    pixels: Pixels
    name: str | None = None
    description: str | None = None
    acquisition_date: datetime | None = None
    objective_id: str | None = None
    annotation_refs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Comment:
    """A StructuredAnnotations/CommentAnnotation (the carrier of DICOM headers)."""

    id: str
    namespace: str | None
    description: str | None
    value: str


@dataclass(frozen=True)
class Objective:
    id: str
    nominal_magnification: float | None = None
    lens_na: float | None = None
    immersion: str | None = None
    manufacturer: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class Ome:
    uuid: str | None
    images: tuple[Image, ...]
    objectives: dict[str, Objective]
    namespace: str
    comments: dict[str, Comment] = field(default_factory=dict)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _int(el: ET.Element, key: str) -> int | None:
    value = el.get(key)
    return int(value) if value not in (None, "") else None


def _float(el: ET.Element, key: str) -> float | None:
    value = el.get(key)
    return float(value) if value not in (None, "") else None


def _length(el: ET.Element, key: str, default_unit: str) -> tuple[float, str] | None:
    value = _float(el, key)
    if value is None:
        return None
    return (value, el.get(key + "Unit") or default_unit)


def _bool(el: ET.Element, key: str) -> bool | None:
    value = el.get(key)
    return None if value is None else value.strip().lower() in ("true", "1")


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _text(el: ET.Element | None) -> str | None:
    return None if el is None else (el.text or "")


def _root(xml: str | bytes) -> ET.Element:
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MetadataError(f"the OME-XML is not well-formed XML ({exc})") from None
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if _local(root.tag) != "OME":
        raise MetadataError(f"the XML root is <{_local(root.tag)}>, not <OME>")
    if namespace != OME_2016_06:
        root = _upgrade(data, namespace)
    return root


def _upgrade(data: bytes, namespace: str) -> ET.Element:
    """Upgrade an older OME schema to 2016-06 with the OME XSLT transforms (via ome-types)."""
    try:
        from lxml import etree
        from ome_types._conversion import ensure_2016
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise MetadataError(f"cannot upgrade OME-XML in {namespace!r}: {exc}") from None
    try:
        tree = ensure_2016(data, as_tree=True)
    except Exception as exc:
        raise MetadataError(f"OME-XML namespace {namespace!r} cannot be read ({exc})") from None
    return ET.fromstring(etree.tostring(tree))


def parse(xml: str | bytes) -> Ome:
    """Read an OME-XML document (any schema version ome-types can upgrade).

    ROIs are not read here (see ``bridge.annotations``): when the document has some, they are
    cut off first, as text, so that a million shapes do not become a million elements.
    """
    if "ROI" in xml if isinstance(xml, str) else b"ROI" in xml:
        from ..annotations.section import split_rois

        try:
            text = xml if isinstance(xml, str) else xml.decode("utf-8")
        except UnicodeDecodeError:
            text = ""  # the full parse below says what is wrong
        split = split_rois(text) if text else None
        if split is not None:
            xml = split.head
    root = _root(xml)
    namespace = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    objectives: dict[str, Objective] = {}
    for instrument in _children(root, "Instrument"):
        for obj in _children(instrument, "Objective"):
            objectives[obj.get("ID", "")] = Objective(
                id=obj.get("ID", ""),
                nominal_magnification=_float(obj, "NominalMagnification"),
                lens_na=_float(obj, "LensNA"),
                immersion=obj.get("Immersion"),
                manufacturer=obj.get("Manufacturer"),
                model=obj.get("Model"),
            )
    images = []
    for image in _children(root, "Image"):
        px = _child(image, "Pixels")
        if px is None:
            raise MetadataError(f"OME Image {image.get('ID')} has no Pixels element")
        channels = tuple(
            Channel(
                id=ch.get("ID", ""),
                name=ch.get("Name"),
                samples_per_pixel=_int(ch, "SamplesPerPixel"),
                color=_int(ch, "Color"),
                excitation=_length(ch, "ExcitationWavelength", "nm"),
                emission=_length(ch, "EmissionWavelength", "nm"),
                illumination_type=ch.get("IlluminationType"),
                contrast_method=ch.get("ContrastMethod"),
                fluor=ch.get("Fluor"),
            )
            for ch in _children(px, "Channel")
        )
        tiff_data = []
        for td in _children(px, "TiffData"):
            uuid = _child(td, "UUID")
            tiff_data.append(
                TiffData(
                    ifd=_int(td, "IFD"),
                    first_z=_int(td, "FirstZ") or 0,
                    first_c=_int(td, "FirstC") or 0,
                    first_t=_int(td, "FirstT") or 0,
                    plane_count=_int(td, "PlaneCount"),
                    uuid=(uuid.text or "").strip() or None if uuid is not None else None,
                    file_name=uuid.get("FileName") if uuid is not None else None,
                )
            )
        try:
            pixels = Pixels(
                dimension_order=px.get("DimensionOrder", "XYZCT"),
                type=px.get("Type", ""),
                size_x=int(px.get("SizeX", "0")),
                size_y=int(px.get("SizeY", "0")),
                size_z=int(px.get("SizeZ", "1")),
                size_c=int(px.get("SizeC", "1")),
                size_t=int(px.get("SizeT", "1")),
                physical_size_x=_length(px, "PhysicalSizeX", "µm"),
                physical_size_y=_length(px, "PhysicalSizeY", "µm"),
                physical_size_z=_length(px, "PhysicalSizeZ", "µm"),
                significant_bits=_int(px, "SignificantBits"),
                interleaved=_bool(px, "Interleaved"),
                channels=channels,
                tiff_data=tuple(tiff_data),
                planes=tuple(
                    Plane(
                        the_z=_int(pl, "TheZ") or 0,
                        the_c=_int(pl, "TheC") or 0,
                        the_t=_int(pl, "TheT") or 0,
                        position_z=_length(pl, "PositionZ", "reference frame"),
                    )
                    for pl in _children(px, "Plane")
                ),
            )
        except ValueError as exc:
            raise MetadataError(f"OME Image {image.get('ID')}: bad Pixels value ({exc})") from None
        settings = _child(image, "ObjectiveSettings")
        images.append(
            Image(
                id=image.get("ID", ""),
                pixels=pixels,
                name=image.get("Name"),
                description=_text(_child(image, "Description")),
                acquisition_date=_date(_text(_child(image, "AcquisitionDate"))),
                objective_id=settings.get("ID") if settings is not None else None,
                annotation_refs=tuple(
                    ref.get("ID", "") for ref in _children(image, "AnnotationRef")
                ),
            )
        )
    comments = {}
    annotations = _child(root, "StructuredAnnotations")
    for comment in _children(annotations, "CommentAnnotation") if annotations is not None else ():
        comments[comment.get("ID", "")] = Comment(
            id=comment.get("ID", ""),
            namespace=comment.get("Namespace"),
            description=_text(_child(comment, "Description")),
            value=_text(_child(comment, "Value")) or "",
        )
    return Ome(root.get("UUID"), tuple(images), objectives, namespace, comments)
