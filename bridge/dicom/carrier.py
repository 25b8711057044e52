"""Lossless carriers on the DICOM side (MAPPING.md 4.3; documented in mappings/README.md).

A private block (PS3.5 7.8) in group 0x0077 with creator ``OMEDICOM 1`` holds:

* (0077,xx10) UT: the source's complete OME-XML, UTF-8 (Specific Character Set ISO_IR 192);
* (0077,xx11) UT: JSON describing how the source OME-TIFF stored this instance's tiles:
  ``{"image": i, "level": L, "jpeg_tables": base64 | null, "inserted_marker": base64 | null}``
  so the way back can take shared JPEGTables and an inserted APP14 out of each frame again.

And the other way, ``header_json`` is an instance's header as DICOM JSON (PS3.18 F.2) with Pixel
Data, the offset tables and this private block left out: the OME-TIFF writer keeps it in the
OME-XML so that a round trip gives the same attributes and UIDs back.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

from ..model import TiffLevelInfo

if TYPE_CHECKING:  # pydicom is imported where a pydicom dataset is read (header.py says why)
    from pydicom.dataset import Dataset

    from . import header

GROUP = 0x0077
CREATOR = "OMEDICOM 1"
OME_XML = 0x10
TIFF_INFO = 0x11

#: Attributes that never travel in the JSON carrier: pixels and what depends on their layout.
_DROP = {
    0x7FE00010,  # Pixel Data
    0x7FE00001,  # Extended Offset Table
    0x7FE00002,  # Extended Offset Table Lengths
    0xFFFCFFFC,  # Data Set Trailing Padding
}


def _block(ds: Dataset) -> Any | None:
    try:
        return ds.private_block(GROUP, CREATOR)
    except KeyError:
        return None


def write(ds: header.Dataset, ome_xml: str | None, info: TiffLevelInfo | None) -> None:
    """Add the private carrier block to a dataset the writer made (nothing when there is
    nothing to carry). It is the dataset's only private block, so it takes the first block,
    0x10: creator at (0077,0010), elements at (0077,10xx) (PS3.5 7.8.1)."""
    if not ome_xml and info is None:
        return
    ds.add_new((GROUP << 16) | 0x0010, "LO", CREATOR)
    if ome_xml:
        ds.add_new((GROUP << 16) | 0x1000 | OME_XML, "UT", ome_xml)
    if info is not None:
        text = json.dumps(_info_dict(info), sort_keys=True)
        ds.add_new((GROUP << 16) | 0x1000 | TIFF_INFO, "UT", text)


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode("ascii") if data else None


def _info_dict(info: TiffLevelInfo) -> dict[str, Any]:
    return {
        "image": info.image_index,
        "level": info.level,
        "jpeg_tables": _b64(info.jpeg_tables),
        "inserted_marker": _b64(info.inserted_marker),
    }


class Damaged(ValueError):
    """A carrier that cannot be used as it is; the message says what is wrong with it. The
    reader then warns and uses the standard attributes instead (issue 12)."""


def read_ome_xml(ds: Dataset) -> str | None:
    block = _block(ds)
    if block is None or block.get_tag(OME_XML) not in ds:
        return None
    return str(block[OME_XML].value)


def read_tiff_info(ds: Dataset) -> TiffLevelInfo | None:
    """The (0077,xx11) JSON, checked: ``image`` and ``level`` whole numbers >= 0, the byte
    strings base64 of a JPEG tables stream (SOI ... EOI, TIFF tag 347) and of a marker segment.
    Raises :class:`Damaged` for anything else."""
    block = _block(ds)
    if block is None or block.get_tag(TIFF_INFO) not in ds:
        return None
    try:
        data = json.loads(str(block[TIFF_INFO].value))
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested too deep
        raise Damaged(f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Damaged(f"a JSON {type(data).__name__}, not an object")
    numbers = {}
    for key in ("image", "level"):
        value = data.get(key)
        if type(value) is not int or value < 0:
            raise Damaged(f'"{key}" is {value!r}, not a whole number >= 0')
        numbers[key] = value

    def raw(key: str, start: bytes) -> bytes | None:
        value = data.get(key)
        if value is None or value == "":
            return None
        try:
            decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else None
        except ValueError:
            decoded = None
        if not decoded or not decoded.startswith(start):
            raise Damaged(f'"{key}" is not base64 of a JPEG marker segment')
        return decoded

    tables = raw("jpeg_tables", b"\xff\xd8")
    if tables is not None and not tables.endswith(b"\xff\xd9"):
        raise Damaged('"jpeg_tables" is not a JPEG tables stream (SOI ... EOI)')
    return TiffLevelInfo(
        image_index=numbers["image"],
        level=numbers["level"],
        jpeg_tables=tables,
        inserted_marker=raw("inserted_marker", b"\xff"),
    )


def header_json(ds: Dataset) -> str:
    """The dataset as DICOM JSON without pixels, offset tables or the bridge's private block."""
    from pydicom.dataset import Dataset

    copy = Dataset()
    block_tags = set()
    block = _block(ds)
    if block is not None:
        block_tags = {block.get_tag(e) for e in (OME_XML, TIFF_INFO)}
        block_tags.add((GROUP << 16) | (block.block_start >> 8))  # the creator element
    for element in ds:
        if int(element.tag) in _DROP or int(element.tag) in block_tags:
            continue
        copy.add(element)
    return json.dumps(copy.to_json_dict(bulk_data_threshold=2**31), sort_keys=True)


def dataset_from_json(text: str) -> Dataset:
    from pydicom.dataset import Dataset

    return Dataset.from_json(text)


_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def carried_header(text: str) -> Dataset:
    """A header carried in an OME-XML CommentAnnotation (``urn:omedicom:dicom-json:1``) as a
    dataset, every value read once: DICOM JSON (PS3.18 F.2) of a VL Whole Slide Microscopy
    instance with valid UIDs. Raises :class:`Damaged` for anything else."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dataset_from_json(text)
            for element in ds.iterall():
                _ = element.value
    except Exception as exc:  # pydicom raises what its JSON and value parsers raise
        raise Damaged(f"not DICOM JSON: {type(exc).__name__}: {str(exc)[:160]}") from None
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        value = ds.get(keyword)
        if value is not None and not (
            isinstance(value, str) and len(value) <= 64 and _UID.match(value)
        ):
            raise Damaged(f"{keyword} {value!r} is not a UID")
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.77.1.6":
        raise Damaged("not a VL Whole Slide Microscopy header (SOP Class UID)")
    return ds
