"""Value length limits of the string VRs (PS3.5 6.2, Table 6.2-1), in every sequence item.

The DS limit (16 bytes) gets its own check id because converters break it most often: Python's
``str(float)`` gives ``0.0002419999986886978`` (21 characters) and pydicom writes it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from .catalog import finding
from .dicomfiles import walk
from .findings import Finding

#: Maximum value length per VR (PS3.5 Table 6.2-1). AS and DA are fixed length.
MAX_LENGTH = {
    "AE": 16,
    "AS": 4,
    "CS": 16,
    "DA": 8,
    "DS": 16,
    "DT": 26,
    "IS": 12,
    "LO": 64,
    "PN": 64,  # per component group
    "SH": 16,
    "TM": 14,
    "UI": 64,
}

#: Findings per file and check before the rest are summarised in one.
LIMIT = 20


def _texts(vr: str, elem: object) -> list[str]:
    """The element's values as stored (raw bytes decoded), padding removed."""
    if isinstance(elem, RawDataElement):
        data = elem.value
        if data is None:
            return []
        text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else str(data)
        parts = text.split("\\")
    else:
        value = getattr(elem, "value", None)
        if value is None:
            return []
        seq = value if isinstance(value, (list, tuple)) or hasattr(value, "_list") else [value]
        parts = [str(getattr(v, "original_string", None) or v) for v in seq]
    return [p.rstrip(" \x00") for p in parts]


def check(ds: Dataset, file: str) -> Iterator[Finding]:
    """Every over-long value: DS under ``DICOM-ds-length``, others ``DICOM-value-length``."""
    found: dict[str, list[Finding]] = {"DICOM-ds-length": [], "DICOM-value-length": []}
    for path, (vr, elem) in walk(ds):
        limit = MAX_LENGTH.get(vr)
        if limit is None:
            continue
        for value in _texts(vr, elem):
            pieces = value.split("=") if vr == "PN" else [value]
            length = max((len(p.encode("utf-8")) if vr != "PN" else len(p)) for p in pieces)
            if length <= limit:
                continue
            check_id = "DICOM-ds-length" if vr == "DS" else "DICOM-value-length"
            shown = value if len(value) <= 80 else value[:77] + "..."
            found[check_id].append(
                finding(
                    check_id,
                    f"{vr} value {shown!r} is {length} characters; {vr} allows at most {limit}",
                    file=file,
                    attribute=path,
                )
            )
    for check_id, items in found.items():
        yield from items[:LIMIT]
        if len(items) > LIMIT:
            yield finding(
                check_id,
                f"{len(items) - LIMIT} more over-long values (not listed)",
                file=file,
            )
