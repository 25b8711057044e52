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


def read_ome_xml(ds: Dataset) -> str | None:
    block = _block(ds)
    if block is None or block.get_tag(OME_XML) not in ds:
        return None
    return str(block[OME_XML].value)


def read_tiff_info(ds: Dataset) -> TiffLevelInfo | None:
    block = _block(ds)
    if block is None or block.get_tag(TIFF_INFO) not in ds:
        return None
    data = json.loads(str(block[TIFF_INFO].value))

    def raw(key: str) -> bytes | None:
        return base64.b64decode(data[key]) if data.get(key) else None

    return TiffLevelInfo(
        image_index=int(data["image"]),
        level=int(data["level"]),
        jpeg_tables=raw("jpeg_tables"),
        inserted_marker=raw("inserted_marker"),
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
