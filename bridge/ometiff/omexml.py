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
FirstC, FirstT, PlaneCount, UUID + FileName); Plane (TheZ, TheC, TheT, PositionX/Y/Z + units);
Instrument/Microscope, Detector, Filter/TransmittanceRange, FilterSet and the Objective's, the
Channel's attributes as they are (``bridge.fieldmap`` maps them, ``mappings/fields.toml``);
Image/InstrumentRef, Channel/DetectorSettings, LightPath, FilterSetRef; MapAnnotations (K, value).
"""

from __future__ import annotations

import math
import re
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
    detector_id: str | None = None  # DetectorSettings/@ID
    # Filter IDs of LightPath/ExcitationFilterRef, EmissionFilterRef; FilterSetRef/@ID
    excitation_filter_ids: tuple[str, ...] = ()
    emission_filter_ids: tuple[str, ...] = ()
    filter_set_id: str | None = None
    light_source_id: str | None = None  # LightSourceSettings/@ID
    # the element's attributes, for the field-mapping engine (bridge.fieldmap)
    attributes: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def rgba(self) -> tuple[int, int, int, int] | None:
        if self.color is None:
            return None
        v = self.color & 0xFFFFFFFF
        return (v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255)


@dataclass(frozen=True)
class Plane:
    """Pixels/Plane: 0-based TheZ/TheC/TheT and the stage position of the plane
    (PositionX/Y/Z as (value, unit), the unit "reference frame" when the document names none,
    ome-2016-06.xsd Plane; a value that is not a finite number is dropped with a note)."""

    the_z: int
    the_c: int
    the_t: int
    position_z: tuple[float, str] | None = None  # unit default "reference frame"
    position_x: tuple[float, str] | None = None
    position_y: tuple[float, str] | None = None


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
    instrument_id: str | None = None  # InstrumentRef/@ID


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
    attributes: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    instrument_id: str | None = None


@dataclass(frozen=True)
class Instrument:
    """Instrument: its Microscope's and Detectors' attributes (for ``bridge.fieldmap``)."""

    id: str
    microscope: dict[str, str] | None = None
    detectors: dict[str, dict[str, str]] = field(default_factory=dict)
    # Filter ID -> its TransmittanceRange's attributes; FilterSet ID -> (excitation, emission)
    filters: dict[str, dict[str, str]] = field(default_factory=dict)
    filter_sets: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)
    # light source ID -> its kind: the element name, with "/Type" for Arc and Filament
    light_sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ome:
    uuid: str | None
    images: tuple[Image, ...]
    objectives: dict[str, Objective]
    namespace: str
    comments: dict[str, Comment] = field(default_factory=dict)
    instruments: dict[str, Instrument] = field(default_factory=dict)
    # MapAnnotations: ID -> (Namespace, ((K, value), ...))
    maps: dict[str, tuple[str | None, tuple[tuple[str, str], ...]]] = field(default_factory=dict)
    # Values that were not what the schema allows and were dropped, said in words.
    warnings: tuple[str, ...] = ()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


#: Pixels/@DimensionOrder values (ome-2016-06.xsd, simpleType DimensionOrder).
DIMENSION_ORDERS = frozenset({"XYZCT", "XYZTC", "XYCTZ", "XYCZT", "XYTCZ", "XYTZC"})

#: xsd:int lexical space: optional sign, decimal digits (whitespace is collapsed first).
_INTEGER = re.compile(r"[+-]?[0-9]+")

#: The largest value of xsd:int, the type of every count and index in the schema.
_INT_MAX = 2**31 - 1


def _where(el: ET.Element, key: str) -> str:
    owner = el.get("ID")
    name = _local(el.tag)
    return f"{name} {owner} @{key}" if owner else f"{name}/@{key}"


def _int(el: ET.Element, key: str, *, minimum: int = 0) -> int | None:
    """An integer attribute (xsd:int with the schema's lower bound: NonNegativeInt 0,
    PositiveInt 1), or None when absent. Anything else is a :class:`MetadataError`: these are
    the sizes and indices that decide which bytes are read, so no value is guessed."""
    value = el.get(key)
    if value is None or (value.strip() == "" and key not in _REQUIRED):
        return None
    text = value.strip()
    if not _INTEGER.fullmatch(text) or not minimum <= int(text) <= _INT_MAX:
        bound = "a positive" if minimum == 1 else "a non-negative"
        raise MetadataError(
            f"{_where(el, key)}={value!r} is not {bound} whole number",
            hint="the OME-XML is damaged; rewrite it (tifffile.tiffcomment) or re-export the file",
        )
    return int(text)


#: Attributes that must have a value when present (an empty string is not "absent").
_REQUIRED = frozenset({"SizeX", "SizeY", "SizeZ", "SizeC", "SizeT"})


def _float(el: ET.Element, key: str, notes: list[str], *, positive: bool = False) -> float | None:
    """A finite xsd:float attribute (PositiveFloat where ``positive``), or None. A value that
    is not one is descriptive metadata gone wrong: it is dropped, and ``notes`` says so."""
    value = el.get(key)
    if value is None or value.strip() == "":
        return None
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or (positive and number <= 0):
        kind = "a positive number" if positive else "a finite number"
        notes.append(f"the OME-XML's {_where(el, key)}={value!r} is not {kind}; it is ignored")
        return None
    return number


def _length(
    el: ET.Element, key: str, default_unit: str, notes: list[str], *, positive: bool = True
) -> tuple[float, str] | None:
    value = _float(el, key, notes, positive=positive)
    if value is None:
        return None
    return (value, el.get(key + "Unit") or default_unit)


def _color(el: ET.Element, notes: list[str]) -> int | None:
    """Channel/@Color, a signed 32-bit RGBA integer (ome-2016-06.xsd Color)."""
    value = el.get("Color")
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if _INTEGER.fullmatch(text) and -(2**31) <= int(text) < 2**32:
        return int(text)
    notes.append(f"the OME-XML's {_where(el, 'Color')}={value!r} is not an RGBA integer; ignored")
    return None


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


def _ref(el: ET.Element, name: str) -> str | None:
    """The ID attribute of child ``name`` (a reference such as InstrumentRef), or None."""
    child = _child(el, name)
    return child.get("ID") if child is not None else None


#: The LightSource substitution group of ome-2016-06.xsd.
_LIGHT_SOURCES = frozenset(
    {"Laser", "Arc", "Filament", "LightEmittingDiode", "GenericExcitationSource"}
)


def _refs(el: ET.Element | None, name: str) -> tuple[str, ...]:
    """The ID attributes of every child ``name`` of ``el`` (references), in order."""
    return () if el is None else tuple(c.get("ID", "") for c in _children(el, name))


def _text(el: ET.Element | None) -> str | None:
    return None if el is None else (el.text or "")


#: The start of the root element: what comes before it is the prolog.
_FIRST_ELEMENT = re.compile(rb"<[A-Za-z_]")


def _refuse_dtd(data: bytes) -> None:
    """Refuse a document type declaration. OME-XML has none (ome-2016-06.xsd is a schema, not a
    DTD); a DTD only brings entities: internal ones that expand a few bytes into gigabytes, and
    external ones (``<!ENTITY % x SYSTEM "file:///etc/passwd">``) that name other files. Nothing
    is expanded or fetched, and the document is not copied on into a DICOM carrier."""
    start = _FIRST_ELEMENT.search(data)
    prolog = data[: start.start()] if start else data
    if b"<!DOCTYPE" in prolog or b"<!ENTITY" in prolog:
        raise MetadataError(
            "the OME-XML has a DOCTYPE declaration (entities), which OME-XML never needs and "
            "which is refused for safety",
            hint="remove the <!DOCTYPE ...> from the ImageDescription (tifffile.tiffcomment)",
        )


def _root(xml: str | bytes) -> ET.Element:
    data = xml.encode("utf-8", "surrogateescape") if isinstance(xml, str) else xml
    _refuse_dtd(data)
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise MetadataError(f"the OME-XML is not well-formed XML ({exc})") from None
    except (LookupError, ValueError) as exc:  # e.g. encoding="abc" in the XML declaration
        raise MetadataError(f"the OME-XML cannot be decoded ({exc})") from None
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
    notes: list[str] = []
    objectives: dict[str, Objective] = {}
    instruments: dict[str, Instrument] = {}
    for instrument in _children(root, "Instrument"):
        iid = instrument.get("ID", "")
        microscope = _child(instrument, "Microscope")
        instruments[iid] = Instrument(
            id=iid,
            microscope=dict(microscope.attrib) if microscope is not None else None,
            detectors={d.get("ID", ""): dict(d.attrib) for d in _children(instrument, "Detector")},
            filters={
                f.get("ID", ""): dict(r.attrib)
                if (r := _child(f, "TransmittanceRange")) is not None
                else {}
                for f in _children(instrument, "Filter")
            },
            light_sources={
                s.get("ID", ""): _local(s.tag)
                + (f"/{s.get('Type')}" if _local(s.tag) in ("Arc", "Filament") else "")
                for s in instrument
                if _local(s.tag) in _LIGHT_SOURCES
            },
            filter_sets={
                s.get("ID", ""): (_refs(s, "ExcitationFilterRef"), _refs(s, "EmissionFilterRef"))
                for s in _children(instrument, "FilterSet")
            },
        )
        for obj in _children(instrument, "Objective"):
            objectives[obj.get("ID", "")] = Objective(
                id=obj.get("ID", ""),
                nominal_magnification=_float(obj, "NominalMagnification", notes, positive=True),
                lens_na=_float(obj, "LensNA", notes, positive=True),
                immersion=obj.get("Immersion"),
                manufacturer=obj.get("Manufacturer"),
                model=obj.get("Model"),
                attributes=dict(obj.attrib),
                instrument_id=iid,
            )
    images = [_image(image, notes) for image in _children(root, "Image")]
    comments = {}
    annotations = _child(root, "StructuredAnnotations")
    for comment in _children(annotations, "CommentAnnotation") if annotations is not None else ():
        comments[comment.get("ID", "")] = Comment(
            id=comment.get("ID", ""),
            namespace=comment.get("Namespace"),
            description=_text(_child(comment, "Description")),
            value=_text(_child(comment, "Value")) or "",
        )
    maps = {}
    for mapped in _children(annotations, "MapAnnotation") if annotations is not None else ():
        value = _child(mapped, "Value")
        pairs = tuple(
            (m.get("K", ""), m.text or "")
            for m in (_children(value, "M") if value is not None else ())
        )
        maps[mapped.get("ID", "")] = (mapped.get("Namespace"), pairs)
    return Ome(
        root.get("UUID"),
        tuple(images),
        objectives,
        namespace,
        comments,
        instruments=instruments,
        warnings=tuple(notes),
        maps=maps,
    )


def _pixels(px: ET.Element, notes: list[str]) -> Pixels:
    """Pixels with its Channels, TiffData and Planes (ome-2016-06.xsd Pixels). Sizes, indices,
    DimensionOrder and Type decide which bytes are read: a bad one refuses the document.
    Descriptive values (lengths, wavelengths, colour) that are not numbers are dropped."""
    order = px.get("DimensionOrder", "XYZCT")
    if order not in DIMENSION_ORDERS:
        raise MetadataError(
            f"Pixels {px.get('ID')} has DimensionOrder={order!r}; the schema allows "
            + ", ".join(sorted(DIMENSION_ORDERS)),
            hint="the OME-XML is damaged; rewrite it (tifffile.tiffcomment) or re-export the file",
        )
    channels = tuple(
        Channel(
            id=ch.get("ID", ""),
            name=ch.get("Name"),
            samples_per_pixel=_int(ch, "SamplesPerPixel", minimum=1),
            color=_color(ch, notes),
            excitation=_length(ch, "ExcitationWavelength", "nm", notes),
            emission=_length(ch, "EmissionWavelength", "nm", notes),
            illumination_type=ch.get("IlluminationType"),
            contrast_method=ch.get("ContrastMethod"),
            fluor=ch.get("Fluor"),
            detector_id=_ref(ch, "DetectorSettings"),
            excitation_filter_ids=_refs(_child(ch, "LightPath"), "ExcitationFilterRef"),
            emission_filter_ids=_refs(_child(ch, "LightPath"), "EmissionFilterRef"),
            filter_set_id=_ref(ch, "FilterSetRef"),
            light_source_id=_ref(ch, "LightSourceSettings"),
            attributes=dict(ch.attrib),
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
    planes = []
    for pl in _children(px, "Plane"):
        try:
            the_z, the_c, the_t = (_int(pl, k) or 0 for k in ("TheZ", "TheC", "TheT"))
        except MetadataError as exc:
            notes.append(f"a Plane is ignored: {exc.message}")
            continue
        x, y, z = (
            _length(pl, key, "reference frame", notes, positive=False)
            for key in ("PositionX", "PositionY", "PositionZ")
        )
        planes.append(Plane(the_z, the_c, the_t, z, x, y))
    bits = None
    try:
        bits = _int(px, "SignificantBits", minimum=1)
    except MetadataError as exc:
        notes.append(f"{exc.message}; it is ignored")
    return Pixels(
        dimension_order=order,
        type=px.get("Type", ""),
        size_x=_int(px, "SizeX", minimum=1) or 0,
        size_y=_int(px, "SizeY", minimum=1) or 0,
        size_z=_int(px, "SizeZ", minimum=1) or 1,
        size_c=_int(px, "SizeC", minimum=1) or 1,
        size_t=_int(px, "SizeT", minimum=1) or 1,
        physical_size_x=_length(px, "PhysicalSizeX", "µm", notes),
        physical_size_y=_length(px, "PhysicalSizeY", "µm", notes),
        physical_size_z=_length(px, "PhysicalSizeZ", "µm", notes),
        significant_bits=bits,
        interleaved=_bool(px, "Interleaved"),
        channels=channels,
        tiff_data=tuple(tiff_data),
        planes=tuple(planes),
    )


def _image(image: ET.Element, notes: list[str]) -> Image:
    px = _child(image, "Pixels")
    if px is None:
        raise MetadataError(f"OME Image {image.get('ID')} has no Pixels element")
    settings = _child(image, "ObjectiveSettings")
    return Image(
        id=image.get("ID", ""),
        pixels=_pixels(px, notes),
        name=image.get("Name"),
        description=_text(_child(image, "Description")),
        acquisition_date=_date(_text(_child(image, "AcquisitionDate"))),
        objective_id=settings.get("ID") if settings is not None else None,
        instrument_id=_ref(image, "InstrumentRef"),
        annotation_refs=tuple(ref.get("ID", "") for ref in _children(image, "AnnotationRef")),
    )
