"""The PHI scan of ``omedicom check --phi``: every string attribute, private block and carrier
that looks like a person's name, a date of birth or an identifier, in DICOM or OME-TIFF.

Looks like PHI: a non-empty Person Name (PN); a value of an attribute Table E.1-1 removes,
empties or replaces (D, Z, X and their combinations) that is text or a birth date; any private
attribute holding text; a LABEL or OVERVIEW image (its pixels may show the slide label); in
OME-XML, an Experimenter, an Image/ROI/shape name or text, a Description, a MapAnnotation
value, and the DICOM header JSON carrier, scanned as a dataset. Pseudonyms this tool writes
(``DEID-`` + a keyed hash) and the dummy date are not PHI.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..tables import associated_kind
from .profile import entry
from .remap import DUMMY_DATE, PSEUDONYM_PREFIX

_PSEUDONYM = re.compile(re.escape(PSEUDONYM_PREFIX) + r"[0-9A-F]{11}")
_TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "PN", "UC", "AE"}
_PERSON_ATTRS = ("FirstName", "MiddleName", "LastName", "Email", "UserName", "Institution")
_SHAPES = {"Rectangle", "Ellipse", "Point", "Line", "Polyline", "Polygon", "Mask", "Label"}
_NAMED = {"Image", "Plate", "Well", "Screen", "Project", "Dataset", "Folder", "ROI"}
_BIRTH = {0x00100030, 0x00100032}


@dataclass(frozen=True)
class Finding:
    file: str
    where: str
    value: str
    why: str

    def __str__(self) -> str:
        return f"{self.file}: {self.where}: {self.why}: {self.value[:80]!r}"


def _safe(value: str) -> bool:
    text = value.strip().strip("^=")
    return not text or bool(_PSEUDONYM.fullmatch(text)) or text.startswith(DUMMY_DATE)


def scan(paths: list[Path]) -> list[Finding]:
    """Every finding in the DICOM files, folders and OME-TIFFs under ``paths``."""
    from ..errors import InputError

    found: list[Finding] = []
    for path in paths:
        if not path.exists():
            raise InputError("no such file or directory", path=path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            with open(file, "rb") as fh:
                head = fh.read(132)
            try:
                if head[128:132] == b"DICM":
                    found += scan_dicom(file)
                elif head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                    found += scan_tiff(file)
            except Exception as exc:  # pydicom and tifffile raise many kinds on damaged files
                why = "unreadable, so it cannot be cleared"
                found.append(Finding(file.name, "file", f"{type(exc).__name__}: {exc}", why))
    return found


def scan_dicom(path: Path) -> list[Finding]:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    if "SOPInstanceUID" not in ds:
        raise ValueError("no SOP Instance UID: not a complete DICOM instance")
    out = _dataset(ds, path.name, "")
    image_type = list(ds.get("ImageType", []) or [])
    kind = str(image_type[2]).upper() if len(image_type) > 2 else ""
    redacted = ds.get("PatientIdentityRemoved") == "YES" and ds.get("BurnedInAnnotation") == "NO"
    if kind == "LABEL" or (kind == "OVERVIEW" and not redacted):
        out.append(
            Finding(
                path.name, "ImageType", str(image_type[2]), "its pixels may show the slide label"
            )
        )
    return out


def _dataset(ds, file: str, prefix: str) -> list[Finding]:
    from ..dicom import carrier

    out: list[Finding] = []
    for element in ds:
        where = f"{prefix}{element.keyword or element.tag}"
        if element.VR == "SQ":
            for i, item in enumerate(element.value):
                out += _dataset(item, file, f"{where}[{i}].")
            continue
        value = element.value
        if value in (None, "", b""):
            continue
        if element.tag.is_private:
            if element.tag.element < 0x1000:
                continue  # the private creator names the block, not the patient
            creator = ds.get((element.tag.group << 16) | (element.tag.element >> 8))
            ours = creator is not None and str(creator.value).strip() == carrier.CREATOR
            if ours and element.tag.element & 0xFF == carrier.OME_XML:
                out += scan_ome(str(value), file, f"{where} (OME-XML carrier) ", pixels=False)
                continue
            if ours:
                continue  # the tile layout JSON: numbers and JPEG tables
            text = value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)
            out.append(Finding(file, where, text, "a private attribute may hold anything"))
            continue
        values = list(value) if element.VM > 1 else [value]
        for v in values:
            text = str(v)
            if _safe(text):
                continue
            tag = int(element.tag)
            if element.VR == "PN":
                out.append(Finding(file, where, text, "a person's name"))
            elif tag in _BIRTH:
                out.append(Finding(file, where, text, "a date of birth"))
            elif element.VR in _TEXT_VRS:
                row = entry(tag)
                if row is not None and row.basic not in ("K", "U", "C"):
                    out.append(Finding(file, where, text, f"PS3.15 Table E.1-1 says {row.basic}"))
    return out


def scan_tiff(path: Path) -> list[Finding]:
    import tifffile

    out: list[Finding] = []
    with tifffile.TiffFile(path) as tif:
        if not len(tif.pages):
            raise ValueError("no readable TIFF page")
        for index, page in enumerate(tif.pages):
            for code, name in ((269, "DocumentName"), (285, "PageName"), (315, "Artist")):
                tag = page.tags.get(code)
                if tag is not None and str(tag.value).strip():
                    out.append(Finding(path.name, f"page {index} {name}", str(tag.value), "text"))
            desc = page.tags.get(270)
            if desc is None:
                continue
            text = str(desc.value)
            if text.lstrip().startswith("<") and "OME" in text[:400]:
                out += scan_ome(text, path.name, f"page {index} OME-XML ")
            elif index > 0 and text.strip():
                out.append(Finding(path.name, f"page {index} ImageDescription", text, "text"))
    return out


def scan_ome(text: str, file: str, prefix: str, *, pixels: bool = True) -> list[Finding]:
    """Findings in an OME-XML document; ``pixels``: its Images hold pixels (an OME-TIFF), not
    only metadata (the carrier in a DICOM private block)."""
    from lxml import etree

    try:
        root = etree.fromstring(text.encode("utf-8"))
    except etree.XMLSyntaxError:
        return [Finding(file, prefix.strip(), text[:80], "unreadable XML may hold anything")]
    out: list[Finding] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        name = etree.QName(element.tag).localname
        where = f"{prefix}{name} {element.get('ID', '')}".strip()
        if name in ("Experimenter", "ExperimenterGroup"):
            for attr in (*_PERSON_ATTRS, "Name"):
                if element.get(attr) and not _safe(element.get(attr)):
                    out.append(Finding(file, f"{where} {attr}", element.get(attr), "a person"))
        if name in _NAMED and element.get("Name"):
            value = element.get("Name")
            if not _safe(value) and not (name == "Image" and associated_kind(value)):
                out.append(Finding(file, f"{where} Name", value, "a name may identify"))
            if pixels and name == "Image" and associated_kind(value) in ("LABEL", "OVERVIEW"):
                out.append(Finding(file, f"{where}", value, "its pixels may show the slide label"))
        if name in _SHAPES and element.get("Text") and not _safe(element.get("Text")):
            out.append(Finding(file, f"{where} Text", element.get("Text"), "free text"))
        if name == "Description" and element.text and element.text.strip():
            parent = element.getparent()
            namespace = (parent.get("Namespace") or "") if parent is not None else ""
            if not namespace.startswith("urn:omedicom:"):  # the bridge's own annotations
                out.append(Finding(file, where, element.text.strip(), "free text"))
        if name == "M" and element.text and not _safe(element.text) and _map_value_phi(element):
            out.append(Finding(file, f"{where} {element.get('K')}", element.text, "a value"))
        if name == "CommentAnnotation":
            value = next((c for c in element if etree.QName(c.tag).localname == "Value"), None)
            if value is None or not value.text:
                continue
            if element.get("Namespace") == "urn:omedicom:dicom-json:1":
                from pydicom.dataset import Dataset

                try:
                    ds = Dataset.from_json(value.text)
                except Exception:  # damaged: reported as text
                    ds = None
                if ds is not None:
                    out += _dataset(ds, file, f"{where} (DICOM JSON carrier) ")
                    continue
            out.append(Finding(file, where, value.text.strip(), "free text"))
    return out


def _map_value_phi(m) -> bool:
    """A MapAnnotation value looks like PHI: its key is a DICOM keyword Table E.1-1 does not
    keep, or it is not a keyword and the map is not one of the bridge's own namespaces."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    from ..dicom.uids import is_valid

    text = (m.text or "").strip()
    if is_valid(text) and "." in text:
        return False
    tag = tag_for_keyword(m.get("K", ""))
    if tag is None:
        parent = m.getparent()
        holder = parent.getparent() if parent is not None else None
        namespace = (holder.get("Namespace") or "") if holder is not None else ""
        return not namespace.startswith("urn:omedicom:")
    row = entry(tag)
    return (row is not None and row.basic not in ("K", "U", "C")) or dictionary_VR(tag) == "PN"
