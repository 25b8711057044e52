"""De-identify an OME-XML document (OME 2016-06 schema) by the rules the DICOM side follows.

* Experimenter and ExperimenterGroup (names, e-mail, institution) are removed, with every
  reference to them;
* Image, Plate, Well, Screen, Project, Dataset and Folder names become pseudonyms (an associated
  image keeps its role name: label, macro, thumbnail), Descriptions are removed (cleaned under
  Clean Descriptors);
* AcquisitionDate and other dates follow the date option (removed, shifted, kept);
* MapAnnotation values: UIDs remapped, identifiers pseudonymized, the rest removed;
* ROI Name/Description and shape Text: pseudonyms (cleaned under Clean Descriptors), so an
  annotation keeps the same label on both sides;
* TiffData UUID FileName: the source file name is not kept; document and file UUIDs are remapped;
* the DICOM header JSON carrier (CommentAnnotation ``urn:omedicom:dicom-json:1``) is decoded and
  de-identified as a DICOM dataset; other comment, tag, term and XML annotations are removed;
* instrument serial and lot numbers are removed unless Retain Device Identity is selected.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import TYPE_CHECKING

from lxml import etree

from ..tables import associated_kind

if TYPE_CHECKING:
    from .dataset import Cleaner

DICOM_JSON_NS = "urn:omedicom:dicom-json:1"
_NAMED = {"Image", "Plate", "Well", "Screen", "Project", "Dataset", "Folder", "ROI", "Reagent"}
_DROPPED = {"Experimenter", "ExperimenterGroup", "ExperimenterRef", "ExperimenterGroupRef"}
_DROPPED_ANNOTATIONS = {"TagAnnotation", "TermAnnotation", "XMLAnnotation", "TimestampAnnotation"}
_SHAPES = {"Rectangle", "Ellipse", "Point", "Line", "Polyline", "Polygon", "Mask", "Label"}
_DATES = {"AcquisitionDate", "Timestamp"}


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def clean_ome_xml(text: str, cleaner: Cleaner) -> str:
    """The de-identified document (unchanged text if it is not XML: then it is removed)."""
    try:
        root = etree.fromstring(text.encode("utf-8"))
    except etree.XMLSyntaxError:
        return ""
    for element in list(root.iter()):
        name = _local(element.tag)
        if not name:
            continue
        parent = element.getparent()
        if name in _DROPPED or name in _DROPPED_ANNOTATIONS:
            if parent is not None:
                parent.remove(element)
            continue
        if name == "Image" and _dropped(element.get("Name"), cleaner) and parent is not None:
            parent.remove(element)  # its instance is left out too (labels, overviews)
            continue
        if name in _NAMED and element.get("Name"):
            element.set("Name", _name(element.get("Name"), name, cleaner))
        if name in _SHAPES and element.get("Text"):
            element.set("Text", _text(element.get("Text"), cleaner))
        if name in _DATES and element.text:
            _date_element(element, cleaner)
        if name == "UUID":
            if element.get("FileName"):
                element.set("FileName", "deidentified.ome.tiff")
            if element.text:
                element.text = _uuid(element.text, cleaner)
        if name == "OME" and element.get("UUID"):
            element.set("UUID", _uuid(element.get("UUID"), cleaner))
        if not cleaner.options.has("retain-device-identity"):
            for attr in ("SerialNumber", "LotNumber"):
                if attr in element.attrib:
                    del element.attrib[attr]
        if name == "MapAnnotation":
            _map(element, cleaner)
        if name == "CommentAnnotation":
            _comment(element, cleaner)
    for element in list(root.iter()):
        if _local(element.tag) == "Description" and element.getparent() is not None:
            parent = element.getparent()
            if cleaner.options.has("clean-descriptors") and element.text:
                element.text = cleaner.scrub(element.text)
            elif (
                _local(parent.tag) != "CommentAnnotation"
                or parent.get("Namespace") != DICOM_JSON_NS
            ):
                parent.remove(element)
    _drop_dangling_refs(root)
    return etree.tostring(root, encoding="unicode")


def _drop_dangling_refs(root) -> None:
    """Remove references (AnnotationRef, ROIRef, ...) to elements removed above: the schema's
    keyrefs require every referenced ID to exist."""
    ids = {
        e.get("ID")
        for e in root.iter()
        if isinstance(e.tag, str) and e.get("ID") and not _local(e.tag).endswith("Ref")
    }
    for element in list(root.iter()):
        name = _local(element.tag)
        if name.endswith("Ref") and element.get("ID") not in ids:
            element.getparent().remove(element)


def _dropped(name: str | None, cleaner: Cleaner) -> bool:
    kind = associated_kind(name)
    return (kind == "LABEL" and cleaner.options.labels == "drop") or (
        kind == "OVERVIEW" and cleaner.options.overview == "drop"
    )


def _name(value: str, element: str, cleaner: Cleaner) -> str:
    if element == "Image" and associated_kind(value) is not None:
        return value
    if cleaner.options.has("clean-descriptors"):
        return cleaner.scrub(value)
    return cleaner.remap.identifier(value)


def _text(value: str, cleaner: Cleaner) -> str:
    if cleaner.options.has("clean-descriptors"):
        return cleaner.scrub(value)
    return cleaner.remap.identifier(value)


def _uuid(value: str, cleaner: Cleaner) -> str:
    digest = cleaner.remap.uid(value)  # remembered in the audit with the UIDs
    return f"urn:uuid:{uuid.UUID(int=int(digest.split('.')[-1]) & ((1 << 128) - 1))}"


def _date_element(element, cleaner: Cleaner) -> None:
    mode = cleaner.options.dates
    if mode == "full":
        return
    if mode == "removed":
        element.getparent().remove(element)
        return
    text = element.text.strip()
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        element.getparent().remove(element)
        return
    moved = when - dt.timedelta(days=cleaner.remap.shift_days)
    element.text = moved.isoformat().replace("+00:00", "Z")


def _map(element, cleaner: Cleaner) -> None:
    """MapAnnotation values: a key that is a DICOM keyword follows Table E.1-1 for that
    attribute; other keys keep their value only in the bridge's own namespaces (annotation
    group properties, measurements), else the value is removed."""
    from pydicom.datadict import tag_for_keyword

    from ..dicom.uids import is_valid
    from .dataset import PSEUDONYMIZED
    from .profile import action

    ours = (element.get("Namespace") or "").startswith("urn:omedicom:")
    for m in list(element.iter()):
        if _local(m.tag) != "M":
            continue
        key, value = m.get("K", ""), (m.text or "").strip()
        if not value:
            continue
        tag = tag_for_keyword(key)
        act = action(tag, cleaner.options) if tag is not None else None
        if (tag is not None and act is None) or act == "K" or (tag is None and ours):
            continue
        if act == "C":
            m.text = cleaner.scrub(value)
        elif act is not None and "U" in act and is_valid(value):
            m.text = cleaner.remap.uid(value)
        elif act is not None and ("D" in act or tag in PSEUDONYMIZED):
            m.text = cleaner.remap.identifier(value)
        else:
            m.getparent().remove(m)


def _comment(element, cleaner: Cleaner) -> None:
    value = next((c for c in element if _local(c.tag) == "Value"), None)
    if element.get("Namespace") != DICOM_JSON_NS or value is None or not value.text:
        element.getparent().remove(element)
        return
    from pydicom.dataset import Dataset

    try:
        ds = Dataset.from_json(value.text)
    except Exception:  # a damaged carrier: nothing of it can be trusted, so it goes
        element.getparent().remove(element)
        return
    cleaner.clean(ds)
    value.text = json.dumps(ds.to_json_dict(bulk_data_threshold=2**31), sort_keys=True)
    for child in element:
        if _local(child.tag) == "Description" and child.text:
            child.text = " ".join(_remap_pair(p, cleaner) for p in child.text.split())


def _remap_pair(pair: str, cleaner: Cleaner) -> str:
    key, sep, value = pair.partition("=")
    return f"{key}={cleaner.remap.uid(value)}" if sep and key == "SOPInstanceUID" else pair
