"""Coded concepts and colours of annotation groups, from ``mappings/annotations.toml``.

* Annotation Property Category / Type (PS3.3 C.37.1.2, CID 7150 / CID 8135): by group label,
  else by graphic type, else the table's default.
* Measurement names (QuPath's ``"Area µm^2"`` ...) to coded concept + UCUM unit and back; names
  without a table entry get a code in the private scheme ``99OMEDICOM`` (PS3.3 8.2: private
  schemes start with ``99``) whose Code Meaning is the name.
* Colours: OME ``Color`` is a signed 32-bit RGBA integer (OME 2016-06 ``Color``); DICOM
  Recommended Display CIELab Value (0062,000D) is scaled CIELab (PS3.3 C.10.7.1.1), converted
  with highdicom's ``CIELabColor`` (8-bit sRGB round-trips exactly).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .. import tables

Code = tuple[str, str, str]

_CODE_TEXT = re.compile(r'^\(\s*(.*?)\s*,\s*(.*?)\s*,\s*"(.*)"\s*\)$', re.S)


def _table() -> dict:
    return tables.table("annotations")


def _code(entry: list[str]) -> Code:
    return (str(entry[0]), str(entry[1]), str(entry[2]))


def property_codes(label: str, graphic_type: str) -> tuple[Code, Code]:
    """Default (category, type) codes for a group without codes of its own."""
    table = _table()
    entry = table["by_label"].get(label.strip().lower())
    if entry is None:
        entry = table["default_by_graphic_type"].get(graphic_type, table["default"])
    return _code(entry["category"]), _code(entry["type"])


def group_codes(group: Any) -> tuple[Code, Code]:
    """The group's (category, type) codes, defaults filled in from the table."""
    category, type_ = property_codes(group.label, group.graphic_type.value)
    return group.property_category or category, group.property_type or type_


def detection_algorithm() -> tuple[str, str, Code]:
    """(name, version, family code) written for automatic GeoJSON detections."""
    entry = _table()["detection_algorithm"]
    return str(entry["name"]), str(entry["version"]), _code(entry["family"])


def measurement_codes(name: str) -> tuple[Code, Code]:
    """(concept name code, UCUM unit code) for a measurement called ``name``."""
    table = _table()
    entry = table["measurements"].get(name)
    if entry is not None:
        return _code(entry["name"]), _code(entry["unit"])
    private = table["private_measurement"]
    value = "M" + hashlib.sha1(name.encode("utf-8")).hexdigest()[:15].upper()  # SH <= 16
    return (value, str(private["scheme"]), name[:64]), _code(private["unit"])


def measurement_name(name: Code, unit: Code) -> str:
    """The measurement's name for GeoJSON / OME keys: the table's name for this code and unit,
    the meaning of a private code, else ``"<meaning> <unit>"``."""
    for key, entry in _table()["measurements"].items():
        if _code(entry["name"])[:2] == name[:2] and _code(entry["unit"])[:2] == unit[:2]:
            return str(key)
    if name[1] == _table()["private_measurement"]["scheme"] or unit[0] in ("1", ""):
        return name[2]
    return f"{name[2]} {unit[0]}"


def code_text(code: Code) -> str:
    """PS3.16 notation ``(value, scheme, "meaning")``."""
    return f'({code[0]}, {code[1]}, "{code[2]}")'


def parse_code_text(text: str | None) -> Code | None:
    """Inverse of :func:`code_text`; ``None`` when ``text`` is not in that form."""
    if not text:
        return None
    match = _CODE_TEXT.match(text.strip())
    return (match.group(1), match.group(2), match.group(3)) if match else None


# -- colours ---------------------------------------------------------------------------------


def rgb_from_ome(value: int | str | None) -> tuple[int, int, int] | None:
    """(r, g, b) of an OME Color (signed 32-bit RGBA); alpha is dropped."""
    if value is None or value == "":
        return None
    v = int(value) & 0xFFFFFFFF
    return (v >> 24, (v >> 16) & 255, (v >> 8) & 255)


def ome_from_rgb(rgb: tuple[int, int, int], alpha: int = 255) -> int:
    """OME Color (signed 32-bit RGBA) of an opaque sRGB colour."""
    r, g, b = rgb
    v = (r << 24) | (g << 16) | (b << 8) | alpha
    return v - (1 << 32) if v >= 1 << 31 else v


def cielab_from_rgb(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """DICOM scaled CIELab (three US values) of an 8-bit sRGB colour."""
    from highdicom.color import CIELabColor

    return tuple(int(v) for v in CIELabColor.from_rgb(*rgb).value)  # type: ignore[return-value]


def rgb_from_cielab(value: tuple[int, int, int] | list[int]) -> tuple[int, int, int]:
    """8-bit sRGB of a DICOM scaled CIELab value (clipped to the sRGB gamut)."""
    from highdicom.color import CIELabColor

    return tuple(int(v) for v in CIELabColor.from_dicom_value(list(value)).to_rgb(clip=True))  # type: ignore[return-value]
