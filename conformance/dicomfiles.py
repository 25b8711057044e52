"""Reading DICOM files for checking: headers only, tolerant of damage, pixel data located lazily.

Headers are read with pydicom (``defer_size``: large values such as Pixel Data, ICC profiles
and annotation coordinates stay in the file until a check asks for them). Every accessor here
returns ``None`` instead of raising when a value is absent or cannot be parsed, so that one bad
attribute produces one finding, not a crash.
"""

from __future__ import annotations

import math
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

#: SOP Class UIDs the suite knows (PS3.4 B.5).
WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
ANN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.91.1"

PIXEL_DATA = 0x7FE00010
_ITEM = 0xE000FFFE  # (FFFE,E000) read as little-endian uint32
_SEQ_DELIM = 0xE0DDFFFE

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(path: Path) -> str:
    """``"dicom"`` (Part 10: DICM at byte 128), ``"tiff"`` or ``"other"``."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return "other"
    if head[128:132] == b"DICM":
        return "dicom"
    if head[:4] in TIFF_MAGIC:
        return "tiff"
    return "other"


@dataclass(frozen=True)
class PixelDataLocation:
    """Where the Pixel Data value starts in the file; ``length`` None = undefined length
    (encapsulated)."""

    offset: int
    length: int | None
    little_endian: bool


@dataclass
class Instance:
    """One DICOM file: its header and where its pixel data is."""

    path: Path
    name: str
    ds: Dataset
    pixel_data: PixelDataLocation | None
    #: What went wrong while reading (e.g. the file ends inside the Pixel Data).
    problems: tuple[str, ...] = ()

    @property
    def sop_class(self) -> str:
        return str(text(self.ds, "SOPClassUID") or "")

    @property
    def transfer_syntax(self) -> UID:
        meta = getattr(self.ds, "file_meta", None)
        value = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
        return UID(str(value or "1.2.840.10008.1.2.1"))

    @property
    def is_wsi(self) -> bool:
        return self.sop_class == WSI_SOP_CLASS

    @property
    def is_ann(self) -> bool:
        return self.sop_class == ANN_SOP_CLASS

    @property
    def image_type(self) -> list[str]:
        return [str(v).strip().upper() for v in values(self.ds, "ImageType")]

    @property
    def flavour(self) -> str | None:
        """Image Type value 3 (VOLUME, LABEL, OVERVIEW, THUMBNAIL), or None when absent."""
        it = self.image_type
        return it[2] if len(it) > 2 else None

    @property
    def matrix(self) -> tuple[int, int] | None:
        """(Total Pixel Matrix Columns, Rows)."""
        w, h = integer(self.ds, "TotalPixelMatrixColumns"), integer(self.ds, "TotalPixelMatrixRows")
        return (w, h) if w is not None and h is not None else None

    @property
    def tile(self) -> tuple[int, int] | None:
        """(Columns, Rows) of one frame."""
        c, r = integer(self.ds, "Columns"), integer(self.ds, "Rows")
        return (c, r) if c is not None and r is not None else None


class ReadError(Exception):
    """A file that looks like DICOM cannot be parsed."""


def read(path: Path, name: str) -> Instance:
    """Read the header of a DICOM file; Pixel Data is located, not loaded."""
    problems: list[str] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(path, defer_size=512)
            if "SOPClassUID" not in ds and caught:
                # pydicom gives up on the whole dataset when the file ends inside Pixel Data;
                # the header before it is still worth checking
                problems = [str(w.message) for w in caught]
                ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many kinds on damaged files
        raise ReadError(f"{type(exc).__name__}: {exc}") from None
    if "SOPClassUID" not in ds:
        raise ReadError("no SOP Class UID: not a DICOM instance")
    return Instance(path, name, ds, _locate_pixel_data(path, ds), tuple(problems))


def _locate_pixel_data(path: Path, ds: Dataset) -> PixelDataLocation | None:
    """Parse the Pixel Data element header at the position pydicom recorded (PS3.5 7.1)."""
    if PIXEL_DATA not in ds:
        return None
    try:
        elem = ds.get_item(PIXEL_DATA)
        tell = getattr(elem, "file_tell", None) or getattr(elem, "value_tell", None)
    except Exception:
        return None
    if tell is None:
        return None
    _implicit, little = _encoding(ds)
    order = "<" if little else ">"
    # pydicom records where the value starts; the element header (tag, VR, length) precedes
    # it: 12 bytes for explicit VR OB/OW, 8 bytes for implicit VR (PS3.5 7.1.2, 7.1.3).
    with open(path, "rb") as fh:
        for back in (12, 8):
            if tell < back:
                continue
            fh.seek(tell - back)
            head = fh.read(back)
            if struct.unpack(order + "HH", head[:4]) != (0x7FE0, 0x0010):
                continue
            (length,) = struct.unpack(order + "I", head[back - 4 : back])
            return PixelDataLocation(tell, None if length == 0xFFFFFFFF else length, little)
    return None


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    enc = getattr(ds, "original_encoding", None)
    if enc and enc[0] is not None:
        return bool(enc[0]), bool(enc[1])
    ts = UID(
        str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "1.2.840.10008.1.2.1"))
    )
    return ts.is_implicit_VR, ts.is_little_endian


# -- tolerant accessors ------------------------------------------------------------------------


def raw(ds: Dataset | None, keyword: str) -> Any:
    """The value of ``keyword`` or None (absent, empty or unparsable)."""
    if ds is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = ds.get(keyword)
    except Exception:
        return None
    if value is None or value == "" or (hasattr(value, "__len__") and len(value) == 0):
        return None if not isinstance(value, (int, float)) else value
    return value


def values(ds: Dataset | None, keyword: str) -> list[Any]:
    """A multi-valued attribute as a list (a single value becomes one item)."""
    value = raw(ds, keyword)
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def text(ds: Dataset | None, keyword: str) -> str | None:
    value = raw(ds, keyword)
    return None if value is None else str(value).strip()


def number(ds: Dataset | None, keyword: str) -> float | None:
    value = raw(ds, keyword)
    if value is None:
        return None
    if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)):
        value = list(value)
        if not value:
            return None
        value = value[0]
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


def integer(ds: Dataset | None, keyword: str) -> int | None:
    value = number(ds, keyword)
    return None if value is None else int(value)


def numbers(ds: Dataset | None, keyword: str) -> list[float] | None:
    """All values of a numeric multi-valued attribute, or None if any is not a number."""
    out = []
    for v in values(ds, keyword):
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            return None
    return out or None


def ds_text(ds: Dataset | None, keyword: str) -> list[str]:
    """The stored text of each value of a DS attribute (for precision-aware comparisons)."""
    out = []
    for v in values(ds, keyword):
        out.append(str(getattr(v, "original_string", None) or v).strip())
    return out


def item(ds: Dataset | None, keyword: str, index: int = 0) -> Dataset | None:
    seq = raw(ds, keyword)
    try:
        return seq[index] if seq is not None and len(seq) > index else None
    except Exception:
        return None


def items(ds: Dataset | None, keyword: str) -> list[Dataset]:
    seq = raw(ds, keyword)
    try:
        return list(seq) if seq is not None else []
    except Exception:
        return []


def functional(ds: Dataset, group: str, keyword: str, frame: int | None = None) -> Any:
    """A functional group macro attribute: per-frame item ``frame`` (0-based) if given and
    present, else the shared one (PS3.3 C.7.6.16)."""
    if frame is not None:
        per = item(item(ds, "PerFrameFunctionalGroupsSequence", frame), group)
        value = raw(per, keyword)
        if value is not None:
            return value
    shared = item(item(ds, "SharedFunctionalGroupsSequence"), group)
    return raw(shared, keyword)


def pixel_spacing(ds: Dataset) -> tuple[tuple[float, float], tuple[str, str]] | None:
    """((row spacing, column spacing) in mm, their stored DS text) from Pixel Measures; the
    top-level Pixel Spacing is used only when the functional groups have none."""
    for source in (
        item(item(ds, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence"),
        item(item(ds, "PerFrameFunctionalGroupsSequence"), "PixelMeasuresSequence"),
        ds,
    ):
        got = numbers(source, "PixelSpacing")
        if got and len(got) == 2:
            texts = ds_text(source, "PixelSpacing")
            return (got[0], got[1]), (texts[0], texts[1])
    return None


def ds_resolution(text_value: str) -> float:
    """The rounding a decimal string may hide: half a unit in its last place when the writer
    had to cut it to the 16-character DS limit (15 or 16 characters), else 0 - a short value
    such as ``0.0005`` says exactly what it means (PS3.5 6.2, DS)."""
    t = text_value.strip().lower()
    if len(t) < 15:
        return 0.0
    mantissa, _, exponent = t.partition("e")
    decimals = len(mantissa.partition(".")[2]) if "." in mantissa else 0
    try:
        exp = int(exponent) if exponent else 0
    except ValueError:
        exp = 0
    return 0.5 * 10.0 ** (exp - decimals)


def uid(ds: Dataset | None, keyword: str) -> str | None:
    value = text(ds, keyword)
    return value.rstrip("\x00").strip() if value else None


def walk(ds: Dataset, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every element of a dataset and its sequence items, with its attribute path
    (``Keyword[1]/Keyword`` with 1-based item numbers, as dciodvfy prints them); raw elements
    are yielded unconverted where possible."""
    for tag in list(ds.keys()):
        if tag == PIXEL_DATA:
            continue
        try:
            elem = ds.get_item(tag)
        except Exception:
            continue
        keyword = pydicom.datadict.keyword_for_tag(tag) or f"({tag.group:04X},{tag.element:04X})"
        here = f"{path}/{keyword}" if path else keyword
        vr = getattr(elem, "VR", None)
        if vr is None:
            try:
                vr = pydicom.datadict.dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        if vr == "SQ":
            try:
                seq = ds[tag].value
            except Exception:
                continue
            for n, sub in enumerate(seq or [], start=1):
                yield from walk(sub, f"{here}[{n}]")
            continue
        yield here, (vr, elem)
