"""Build the OME-XML of a written OME-TIFF with ome-types (schema 2016-06).

Two cases:

* the slide carries an original OME-XML (it came from an OME-TIFF through DICOM): that document
  is returned with only what describes *this* file changed — the root UUID and Creator, and each
  Image's TiffData (IFD, PlaneCount, UUID/FileName);
* otherwise a document is made from the model: one Image per pyramid and per associated image
  (named ``label``, ``macro``, ``thumbnail``), Pixels with PhysicalSizeX/Y in µm (X from the
  DICOM column spacing), Channels from the optical paths, Plane PositionX/Y (mm) from the
  Total Pixel Matrix Origin and PositionZ (µm) from the focal planes, AcquisitionDate,
  Instrument/Objective, and in StructuredAnnotations the header of every source DICOM
  instance as DICOM JSON (CommentAnnotation, namespace :data:`DICOM_JSON_NS`) plus a
  MapAnnotation of the identifiers people search for (MAPPING.md 4.3).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .. import __version__, fieldmap, specimen, tables
from ..model import Image, ImageKind, Slide
from .positions import stage_from_origin

if TYPE_CHECKING:
    from ..annotations.section import RoiSplit

DICOM_JSON_NS = "urn:omedicom:dicom-json:1"
DICOM_IDS_NS = "urn:omedicom:dicom-identifiers:1"
CREATOR = f"omedicom {__version__}"


def _ifd_layout(images: Sequence[Image]) -> dict[int, tuple[int, int]]:
    """source_index -> (first main-chain IFD, number of planes), in writing order."""
    layout = {}
    ifd = 0
    for image in images:
        planes = image.size_z * image.size_c
        layout[image.source_index] = (ifd, planes)
        ifd += planes
    return layout


def carried_split(slide: Slide) -> RoiSplit | None:
    """The slide's carried OME-XML cut in two (``section.split_rois``), if it has ROIs to cut."""
    from ..annotations.section import split_rois

    return split_rois(slide.carriers.ome_xml) if slide.carriers.ome_xml else None


def build(
    slide: Slide,
    images: Sequence[Image],
    file_name: str,
    file_uuid: str,
    split: RoiSplit | None = None,
    notes: list[str] | None = None,
) -> Iterable[str]:
    """The OME-XML of the file, as pieces of text to write one after the other (a document
    with a million ROIs is never held as one string). ``split`` is :func:`carried_split`.

    A carried OME-XML that ome-types cannot read (damaged in the DICOM private block) is
    not used: the document is built from the model, and ``notes`` says so."""
    from ..annotations import has_rois
    from ..annotations.section import join_rois

    layout = _ifd_layout(images)
    carried = slide.carriers.ome_xml
    if carried:
        xml = _update_carried_lxml(
            split.head if split else carried, images, layout, file_name, file_uuid, slide
        )
        if xml is not None:
            if split is not None:
                try:
                    return join_rois(xml, split)
                except ValueError:
                    pass  # the ome-types path below decides, as before
            elif has_rois(carried):
                return [xml]
            else:
                return _with_rois(xml, slide, images)
        import ome_types

        # ome-types rewrites the document without its ROI part, which goes back in as text:
        # a million shapes as pydantic objects would take minutes and gigabytes
        try:
            ome = ome_types.from_xml(split.head if split else carried, validate=False)
        except Exception as exc:  # lxml, xsdata and pydantic each raise their own errors
            ome = None
            if notes is not None:
                notes.append(
                    f"the carried OME-XML is damaged ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}); the standard attributes are used instead"
                )
        if ome is not None and len(ome.images) == len(images):
            xml = _update_carried(ome, images, layout, file_name, file_uuid, slide)
            if split is not None:  # the original ROIs, Mask and Label included
                try:
                    return join_rois(xml, split)
                except ValueError:  # the head did not come back as it went: do it whole
                    ome = ome_types.from_xml(carried, validate=False)
                    return [_update_carried(ome, images, layout, file_name, file_uuid, slide)]
            if has_rois(carried):
                return [xml]
            return _with_rois(xml, slide, images)
    import ome_types

    xml = _to_xml(_build_new(slide, images, layout, file_name, file_uuid), notes)
    return _with_rois(xml, slide, images)


#: Characters XML 1.0 cannot hold (section 2.2), whatever the escaping
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _to_xml(ome: Any, notes: list[str] | None) -> str:
    """``ome_types.to_xml``; a value with characters XML cannot hold (a control character in
    a DICOM string, say) has them replaced by U+FFFD, and ``notes`` says which."""
    import ome_types

    try:
        return ome_types.to_xml(ome)
    except ValueError as exc:
        if "XML compatible" not in str(exc):
            raise
    cleaned: list[str] = []
    _clean_text(ome, cleaned, set())
    if notes is not None:
        notes.append(
            f"{len(cleaned)} text value(s) held characters XML cannot hold (control "
            f"characters), replaced by U+FFFD: {', '.join(cleaned[:5])}"
        )
    return ome_types.to_xml(ome)


def _clean_text(node: Any, cleaned: list[str], seen: set[int]) -> Any:
    """Replace, in place, what :data:`_NOT_XML` matches in every string of an ome-types
    model; returns the node (a cleaned string for a string)."""
    if isinstance(node, str):
        if _NOT_XML.search(node):
            cleaned.append(repr(node[:40]))
            return _NOT_XML.sub("\ufffd", node)
        return node
    if id(node) in seen:
        return node
    seen.add(id(node))
    if isinstance(node, list):
        for i, item in enumerate(node):
            node[i] = _clean_text(item, cleaned, seen)
    elif hasattr(node, "__dict__"):
        for name, value in list(vars(node).items()):
            new = _clean_text(value, cleaned, seen)
            if new is not value:
                object.__setattr__(node, name, new)
    return node


_OME_NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_XML_DECLARATION = re.compile(r"\A\s*<\?xml[^>]*\?>")


def _update_carried_lxml(
    text: str, images: Sequence[Image], layout: dict, file_name: str, file_uuid: str, slide: Slide
) -> str | None:
    """The carried OME-XML with what describes *this* file changed (root UUID and Creator, each
    Image's TiffData: OME 2016-06 ``Pixels`` = Channel*, TiffData+, Plane*), edited in place
    with lxml: the common case without importing ome-types (~0.5-0.9 s of import and model
    building per conversion). ``None`` when the document needs ome-types' handling (another
    schema version or a prefixed root, not one Image per written image, several time points to
    cut, BinData or MetadataOnly to replace, a specimen to add, or XML lxml cannot parse):
    :func:`_update_carried` then does it as before."""
    if slide.specimen and specimen.ome_pairs(slide.specimen):
        return None
    if "<!DOCTYPE" in text[:4096]:
        return None
    from lxml import etree

    try:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        root = etree.fromstring(_XML_DECLARATION.sub("", text, count=1), parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    ns = "{" + _OME_NS + "}"
    if root.tag != f"{ns}OME" or root.prefix is not None:
        return None
    ome_images = root.findall(f"{ns}Image")
    if len(ome_images) != len(images):
        return None
    blocks = []
    for index, ome_image in enumerate(ome_images):
        if index not in layout:
            continue
        pixels = ome_image.find(f"{ns}Pixels")
        if pixels is None or int(pixels.get("SizeT", "1")) > 1:
            return None
        if any(child.tag in (f"{ns}BinData", f"{ns}MetadataOnly") for child in pixels):
            return None
        blocks.append((pixels, layout[index]))
    for pixels, (ifd, planes) in blocks:
        for old in pixels.findall(f"{ns}TiffData"):
            pixels.remove(old)
        channels = pixels.findall(f"{ns}Channel")
        position = pixels.index(channels[-1]) + 1 if channels else 0
        tiff_data = etree.Element(f"{ns}TiffData", IFD=str(ifd), PlaneCount=str(planes))
        uuid = etree.SubElement(tiff_data, f"{ns}UUID", FileName=file_name)
        uuid.text = file_uuid
        tiff_data.tail = pixels.text
        pixels.insert(position, tiff_data)
    root.set("UUID", file_uuid)
    root.set("Creator", CREATOR)
    return etree.tostring(root, encoding="unicode")


def _add_specimen(ome: Any, slide: Slide) -> None:
    """Add the slide's specimen (stains given with ``--specimen``, or read from DICOM) to a
    carried document as a MapAnnotation (``bridge.specimen``), unless it has one already."""
    from ome_types.model import AnnotationRef, Map, MapAnnotation, StructuredAnnotations

    pairs = specimen.ome_pairs(slide.specimen) if slide.specimen else []
    if not pairs or not ome.images:
        return
    if ome.structured_annotations is None:
        ome.structured_annotations = StructuredAnnotations()
    maps = ome.structured_annotations.map_annotations
    if any(m.namespace == specimen.NAMESPACE for m in maps):
        return
    aid = "Annotation:omedicom-specimen"
    ms = [Map.M(k=k, value=v) for k, v in pairs]
    maps.append(MapAnnotation(id=aid, namespace=specimen.NAMESPACE, value=Map(ms=ms)))
    ome.images[0].annotation_refs.append(AnnotationRef(id=aid))


def _with_rois(xml: str, slide: Slide, images: Sequence[Image]) -> list[str]:
    """Add the slide's annotation groups as ROIs of the Image they belong to."""
    from ..annotations.ome_rois import insert_parts

    groups = {
        position: [g for g in slide.annotations if g.image_index == image.source_index]
        for position, image in enumerate(images)
    }
    return insert_parts(xml, groups)


def _tiff_data(layout: tuple[int, int], file_name: str, file_uuid: str) -> Any:
    from ome_types.model import TiffData

    ifd, planes = layout
    return TiffData(
        ifd=ifd,
        plane_count=planes,
        uuid=TiffData.UUID(value=file_uuid, file_name=file_name),
    )


def _update_carried(
    ome: Any, images: Sequence[Image], layout: dict, file_name: str, file_uuid: str, slide: Slide
) -> str:

    _add_specimen(ome, slide)
    ome.uuid = file_uuid
    ome.creator = CREATOR
    by_index = {image.source_index: image for image in images}
    for index, ome_image in enumerate(ome.images):
        if index not in layout:
            continue
        pixels = ome_image.pixels
        pixels.tiff_data_blocks = [_tiff_data(layout[index], file_name, file_uuid)]
        image = by_index.get(index)
        if image is not None and pixels.size_t > 1:
            # one time point was written: say so, keep that point's Plane elements
            t = image.time_point or 0
            pixels.size_t = 1
            pixels.planes = [p for p in pixels.planes if p.the_t == t]
            for plane in pixels.planes:
                plane.the_t = 0
    return _to_xml(ome, None)


def plane_orders(
    slide: Slide, images: Sequence[Image], split: RoiSplit | None = None
) -> dict[int, str]:
    """The order the OME-TIFF writer stores each image's planes in (by source index): the
    carried OME-XML's DimensionOrder when there is one (so it stays true), else XYZCT (Z
    fastest). ``split`` is :func:`carried_split`: the metadata is read from its head."""
    orders = {image.source_index: "XYZCT" for image in images}
    if slide.carriers.ome_xml:
        from .omexml import parse

        try:
            ome = parse(split.head if split else slide.carriers.ome_xml)
        except Exception:
            return orders
        for index in orders:
            if len(ome.images) > index:
                orders[index] = ome.images[index].pixels.dimension_order
    return orders


def _build_new(
    slide: Slide, images: Sequence[Image], layout: dict, file_name: str, file_uuid: str
) -> Any:
    from ome_types.model import (
        OME,
        Channel,
        CommentAnnotation,
        DetectorSettings,
        InstrumentRef,
        Map,
        MapAnnotation,
        ObjectiveSettings,
        Pixels,
        StructuredAnnotations,
    )
    from ome_types.model import Image as OmeImage

    comments = []
    maps = []
    instruments = []
    ome_images = []
    kind_names = tables.table("associated_images")["kind_to_name"]
    for n, image in enumerate(images):
        samples = image.samples_per_pixel
        size_c = image.size_c * samples
        channels = []
        for k, ch in enumerate(image.channels or ()):
            entry: dict[str, Any] = {"id": f"Channel:{n}:{k}", "samples_per_pixel": samples}
            entry.update(fieldmap.to_ome("channel", ch))
            if ch.color:
                r, g, b, a = ch.color
                entry["color"] = (r, g, b, a / 255)
            channels.append(Channel(**entry))
        if not channels:
            channels = [Channel(id=f"Channel:{n}:0", samples_per_pixel=samples)]
        pixels: dict[str, Any] = {
            "id": f"Pixels:{n}",
            "dimension_order": "XYZCT",
            "type": image.dtype,
            "size_x": image.size[0],
            "size_y": image.size[1],
            "size_z": image.size_z,
            "size_c": size_c,
            "size_t": 1,
            "interleaved": samples > 1,
            "big_endian": False,
            "channels": channels,
            "tiff_data_blocks": [_tiff_data(layout[image.source_index], file_name, file_uuid)],
        }
        if image.pixel_size_um and image.kind in (ImageKind.VOLUME, ImageKind.THUMBNAIL):
            pixels["physical_size_x"] = image.pixel_size_um[0]
            pixels["physical_size_y"] = image.pixel_size_um[1]
        z = image.focal_planes_um
        if len(z) > 1:  # the mean step; Plane/@PositionZ keeps each plane's own Z
            pixels["physical_size_z"] = (z[-1] - z[0]) / (len(z) - 1)
        planes = _planes(image, size_c // samples or 1)
        if planes:
            pixels["planes"] = planes
        if image.kind is ImageKind.VOLUME:
            name = image.name or slide.slide_id
        else:
            name = kind_names[image.kind.value]
        entry = {"id": f"Image:{n}", "name": name, "pixels": Pixels(**pixels)}
        if image.acquired:
            entry["acquisition_date"] = image.acquired
        if image.description:
            entry["description"] = image.description
        number = len(instruments)
        instrument = _instrument(image, number)
        if instrument is not None:
            instruments.append(instrument)
            _light_paths(channels, instrument, number)
            if instrument.objectives:
                entry["objective_settings"] = ObjectiveSettings(id=instrument.objectives[0].id)
            if instrument.detectors and channels:
                for channel in channels:
                    channel.detector_settings = DetectorSettings(id=instrument.detectors[0].id)
            entry["instrument_ref"] = InstrumentRef(id=instrument.id)
        refs = []
        for header in slide.carriers.dicom:
            if header.image_index != image.source_index:
                continue
            aid = f"Annotation:{len(comments) + len(maps)}"
            comments.append(
                CommentAnnotation(
                    id=aid,
                    namespace=DICOM_JSON_NS,
                    description=(
                        f"SOPInstanceUID={header.sop_instance_uid} level={header.level} "
                        f"TransferSyntaxUID={header.transfer_syntax}"
                    ),
                    value=header.json,
                )
            )
            refs.append(aid)
        if image.source_index == images[0].source_index and slide.carriers.dicom:
            aid = f"Annotation:{len(comments) + len(maps)}"
            maps.append(MapAnnotation(id=aid, namespace=DICOM_IDS_NS, value=Map(ms=_ids(slide))))
            refs.append(aid)
        if image.kind is ImageKind.VOLUME and slide.specimen and specimen.ome_pairs(slide.specimen):
            aid = f"Annotation:{len(comments) + len(maps)}"
            pairs = [Map.M(k=k, value=v) for k, v in specimen.ome_pairs(slide.specimen)]
            maps.append(MapAnnotation(id=aid, namespace=specimen.NAMESPACE, value=Map(ms=pairs)))
            refs.append(aid)
        if refs:
            from ome_types.model import AnnotationRef

            entry["annotation_refs"] = [AnnotationRef(id=r) for r in refs]
        ome_images.append(OmeImage(**entry))
    annotations = StructuredAnnotations(comment_annotations=comments, map_annotations=maps)
    return OME(
        uuid=file_uuid,
        creator=CREATOR,
        images=ome_images,
        instruments=instruments,
        structured_annotations=annotations,
    )


def _instrument(image: Image, number: int) -> Any:
    """An OME Instrument with the image's Microscope, Detector and Objective (the fields of
    ``mappings/fields.toml``, through ``bridge.fieldmap``), or None when it has none."""
    from ome_types.model import Detector, Filter, Instrument, Microscope, Objective
    from ome_types.model import TransmittanceRange as Range

    objective = fieldmap.to_ome("objective", image.objective)
    microscope = fieldmap.to_ome("microscope", image.microscope)
    detector = fieldmap.to_ome("detector", image.detector)
    filters = [
        Filter(
            id=_filter_id(number, k, kind),
            transmittance_range=Range(
                cut_in=band[0], cut_in_unit="nm", cut_out=band[1], cut_out_unit="nm"
            ),
        )
        for k, channel in enumerate(image.channels)
        for kind, band in (("ex", channel.excitation_band_nm), ("em", channel.emission_band_nm))
        if band is not None
    ]
    sources = _light_sources(image, number)
    if not (objective or microscope or detector or filters or sources):
        return None
    parts: dict[str, Any] = {"id": f"Instrument:{number}"}
    if microscope:
        parts["microscope"] = Microscope(**microscope)
    if objective:
        parts["objectives"] = [Objective(id=f"Objective:{number}:0", **objective)]
    if detector:
        parts["detectors"] = [Detector(id=f"Detector:{number}:0", **detector)]
    if filters:
        parts["filters"] = filters
    for field, element in sources:
        parts.setdefault(field, []).append(element)
    return Instrument(**parts)


#: OME light source element -> ome-types Instrument field and class name.
_SOURCE_FIELDS = {
    "Laser": ("lasers", "Laser"),
    "LightEmittingDiode": ("light_emitting_diodes", "LightEmittingDiode"),
    "Filament": ("filaments", "Filament"),
    "Arc": ("arcs", "Arc"),
}


def _light_sources(image: Image, number: int) -> list[tuple[str, Any]]:
    """(Instrument field, element) of each channel's light source (mappings/codes.toml
    [illuminator_type] keys: the element name, "/Type" for Arc and Filament)."""
    import ome_types.model as model

    out = []
    for k, channel in enumerate(image.channels):
        kind, _, kind_type = (channel.illuminator or "").partition("/")
        if kind not in _SOURCE_FIELDS:
            continue
        field, name = _SOURCE_FIELDS[kind]
        extra = {"type": kind_type} if kind_type else {}
        out.append((field, getattr(model, name)(id=_source_id(number, k), **extra)))
    return out


def _source_id(number: int, channel: int) -> str:
    return f"LightSource:{number}:{channel}"


def _filter_id(number: int, channel: int, kind: str) -> str:
    return f"Filter:{number}:{channel}:{kind}"


def _light_paths(channels: list[Any], instrument: Any, number: int) -> None:
    """Each Channel's LightSourceSettings and LightPath reference its light source and its
    excitation and emission Filter (OME 2016-06 LightPath ExcitationFilterRef /
    EmissionFilterRef): the way back of the DICOM illuminator type and pass bands."""
    from ome_types.model import FilterRef, LightPath, LightSourceSettings

    sources = {s.id for s in instrument.light_source_group}
    for k, channel in enumerate(channels):
        if _source_id(number, k) in sources:
            channel.light_source_settings = LightSourceSettings(id=_source_id(number, k))
    ids = {f.id for f in instrument.filters}
    for k, channel in enumerate(channels):
        ex, em = _filter_id(number, k, "ex"), _filter_id(number, k, "em")
        if ex in ids or em in ids:
            channel.light_path = LightPath(
                excitation_filters=[FilterRef(id=ex)] if ex in ids else [],
                emission_filters=[FilterRef(id=em)] if em in ids else [],
            )


def _planes(image: Image, size_c: int) -> list[Any]:
    """Plane elements: PositionZ (µm) of each focal plane of an uneven or multi-plane stack,
    and for a pyramid placed on the slide the stage PositionX/PositionY (mm) of its centre,
    from the Total Pixel Matrix Origin and Image Orientation (Slide) (``positions``: stage x =
    slide Y, stage y = slide X), so that the way back places each pyramid where it was."""
    from ome_types.model import Plane

    z = image.focal_planes_um
    where: dict[str, Any] = {}
    if (
        image.kind is ImageKind.VOLUME
        and image.origin_mm is not None
        and image.orientation is not None
        and image.pixel_size_um is not None
    ):
        extent = (
            image.size[0] * image.pixel_size_um[0] / 1000.0,
            image.size[1] * image.pixel_size_um[1] / 1000.0,
        )
        x, y = stage_from_origin(image.origin_mm, image.orientation, extent)
        if math.isfinite(x) and math.isfinite(y):  # damaged cosines can overflow
            where = {"position_x": x, "position_x_unit": "mm", "position_y": y}
            where["position_y_unit"] = "mm"
    if len(z) < 2 and not where:
        return []
    return [
        Plane(
            the_z=k,
            the_c=c,
            the_t=0,
            **({"position_z": z[k], "position_z_unit": "µm"} if len(z) > 1 else {}),
            **where,
        )
        for c in range(size_c)
        for k in range(len(z))
    ]


def _ids(slide: Slide) -> list[Any]:
    """Identifiers people search by (may be PHI: they are the source's own values)."""
    from ome_types.model import Map

    patient = slide.patient
    pairs = [
        ("ContainerIdentifier", slide.slide_id),
        ("PatientID", patient.id),
        ("PatientName", patient.name),
        ("StudyInstanceUID", patient.study_uid),
        ("SeriesInstanceUID", patient.series_uid),
        ("AccessionNumber", patient.accession_number),
    ]
    return [Map.M(k=k, value=v) for k, v in pairs if v]
