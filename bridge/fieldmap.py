"""The field-mapping engine: applies ``mappings/fields.toml`` in both directions.

Each row of the table names a model attribute, its OME path (ome-2016-06.xsd) and its DICOM path
(PS3.6 keywords). For the scopes the engine applies (``objective``, ``microscope``, ``detector``,
``channel``) the readers and writers hold no field-by-field code: they hand the engine an OME
element's attributes or a DICOM item and get model keyword arguments back, or hand it a model
object and get the DICOM attributes or ome-types keyword arguments to set.

Rows of the scopes ``image`` and ``specimen`` are applied by the module their ``handler`` column
names; they are in the table so that one place lists every field and its home.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import tables
from .errors import MetadataError

#: Scopes this module applies (the others name a handler).
ENGINE_SCOPES = ("objective", "microscope", "detector", "channel")

#: The DICOM container each engine scope's attributes live in (the prefix of its DICOM path).
CONTAINERS = {
    "objective": "OpticalPathSequence[].",
    "channel": "OpticalPathSequence[].",
    "microscope": "",
    "detector": "ContributingEquipmentSequence[Acquisition Equipment].",
}

#: Maximum characters of the string VRs the engine writes (PS3.5 Table 6.2-1).
_MAX_CHARS = {"SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "UT": 2**32 - 2}


@dataclass(frozen=True)
class Row:
    """One row of ``mappings/fields.toml`` (see the column notes at the top of that file)."""

    scope: str
    model: str
    type: str
    ome: str
    dicom: str
    source: str
    unit: str = ""
    codes: str = ""
    format: str = ""
    handler: str = ""
    direction: str = "both"

    @property
    def ome_attribute(self) -> str | None:
        """The OME attribute name of an ``.../@Name`` path, else None."""
        last = self.ome.rsplit("/", 1)[-1]
        return last[1:] if last.startswith("@") else None

    @property
    def ome_field(self) -> str | None:
        """The ome-types field name of the OME attribute (``LensNA`` -> ``lens_na``)."""
        name = self.ome_attribute
        if name is None:
            return None
        return re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()

    @property
    def keyword(self) -> str | None:
        """The DICOM keyword the value is stored in (last element of the DICOM path)."""
        if not self.dicom:
            return None
        return self.dicom.rsplit(".", 1)[-1].split("[", 1)[0]

    @property
    def engine(self) -> bool:
        return self.scope in ENGINE_SCOPES and not self.handler


@functools.cache
def rows() -> tuple[Row, ...]:
    """Every row of the table, in table order."""
    return tuple(Row(**entry) for entry in tables.table("fields")["field"])


def scope_rows(scope: str) -> tuple[Row, ...]:
    """The rows the engine applies for ``scope``."""
    return tuple(r for r in rows() if r.scope == scope and r.engine)


# -- OME -> model --------------------------------------------------------------------------------


def from_ome(
    scope: str, attributes: Mapping[str, str], notes: list[str], where: str = ""
) -> dict[str, Any]:
    """Model keyword arguments for ``scope`` from an OME element's attributes.

    A number that is not a finite positive one, or a length in a unit that is not a length, is
    dropped and ``notes`` says so (descriptive metadata never stops a conversion)."""
    out: dict[str, Any] = {}
    for row in scope_rows(scope):
        name = row.ome_attribute
        if name is None or row.model in out:
            continue
        raw = attributes.get(name)
        if raw is None or raw.strip() == "":
            continue
        if row.type == "str":
            out[row.model] = raw
            continue
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            notes.append(f"the OME-XML's {where}@{name}={raw!r} is not a positive number; ignored")
            continue
        if row.unit:
            unit = attributes.get(name + "Unit") or row.unit
            try:
                value = tables.length_to_um(value, unit, what=name) / _um(row.unit)
            except MetadataError as exc:
                notes.append(f"{where}: {exc.message}; it is ignored")
                continue
        out[row.model] = value
    return out


def _um(unit: str) -> float:
    """Micrometres per ``unit`` (a UnitsLength symbol)."""
    return tables.length_to_um(1.0, unit)


# -- model -> OME --------------------------------------------------------------------------------


def to_ome(scope: str, obj: Any) -> dict[str, Any]:
    """ome-types keyword arguments for the OME element of ``scope`` from a model object."""
    out: dict[str, Any] = {}
    if obj is None:
        return out
    for row in scope_rows(scope):
        field = row.ome_field
        value = getattr(obj, row.model, None)
        if field is None or value is None or field in out:
            continue
        out[field] = value
        if row.unit:
            out[field + "_unit"] = row.unit
    return out


# -- model -> DICOM ------------------------------------------------------------------------------


def to_dicom(scope: str, obj: Any) -> Iterator[tuple[str, Any]]:
    """(keyword, value) pairs to set on the scope's DICOM container from a model object.

    Values are typed by the keyword's VR (``bridge.dicom.header.lookup``): DS as a Decimal
    String, US as whole numbers, FL as floats, strings cut to their VR's length, code
    sequences as one Code Sequence item from the row's code table (a value the table has no
    code for is not written: it stays in the carrier)."""
    from .dicom.attributes import code_item, ds
    from .dicom.header import lookup

    if obj is None:
        return
    for row in scope_rows(scope):
        value = getattr(obj, row.model, None)
        keyword = row.keyword
        if value is None or value == "" or keyword is None:
            continue
        _, vr = lookup(keyword)
        if row.codes:
            code = tables.code(row.codes, str(value))
            if code:
                yield keyword, [code_item(code)]
        elif vr == "DS":
            yield keyword, ds(float(value))
        elif vr in ("US", "UL"):
            yield keyword, round(float(value))
        elif vr in ("FL", "FD"):
            yield keyword, float(value)
        else:
            text = row.format.format(value) if row.format else str(value)
            yield keyword, text[: _MAX_CHARS.get(vr, 64)]


# -- DICOM -> model ------------------------------------------------------------------------------


def from_dicom(scope: str, item: Any, notes: list[str] | None = None) -> dict[str, Any]:
    """Model keyword arguments for ``scope`` from a DICOM item (pydicom Dataset or any object
    with ``get``). Rows marked ``direction = "to_dicom"`` are not read; values that are not what
    their VR promises are dropped (and ``notes`` says so when given)."""
    out: dict[str, Any] = {}
    if item is None:
        return out
    for row in scope_rows(scope):
        keyword = row.keyword
        if keyword is None or row.direction == "to_dicom" or row.model in out:
            continue
        value = item.get(keyword)
        if value is None or value == "" or (isinstance(value, list) and not value):
            continue
        if row.codes:
            found = reverse_code(row.codes, value)
            if found is not None:
                out[row.model] = found
            continue
        if row.type == "float":
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not math.isfinite(number) or number <= 0:
                if notes is not None:
                    notes.append(f"{keyword} {value!r} is not a positive number; ignored")
                continue
            out[row.model] = number
            continue
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = "\\".join(str(v) for v in value).strip()  # PS3.5 6.4: values joined by \
        else:
            text = str(value).strip()
        if row.format:
            prefix, _, suffix = row.format.partition("{}")
            if not (text.startswith(prefix) and text.endswith(suffix)):
                continue
            text = text[len(prefix) : len(text) - len(suffix) if suffix else None]
        if text and text.lower() != "unknown":
            out[row.model] = text
    return out


def reverse_code(group: str, sequence: Any) -> str | None:
    """The table key whose code is the first item of a code sequence, or None."""
    try:
        first = sequence[0]
        value, scheme = str(first.CodeValue), str(first.CodingSchemeDesignator)
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    for key, code in tables.table("codes").get(group, {}).items():
        if code[0] == value and code[1] == scheme:
            return key
    return None


# -- the README table ----------------------------------------------------------------------------

README_BEGIN = "<!-- fields:begin (generated by scripts/mapping_readme.py from fields.toml) -->"
README_END = "<!-- fields:end -->"


def readme_table() -> str:
    """The Markdown table of every row, for ``mappings/README.md`` (between the markers)."""
    lines = [
        README_BEGIN,
        "",
        "| scope | model | OME | DICOM | unit | codes | how | source |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows():
        if not row.ome:
            how = "DICOM only: carried in the OME DICOM-JSON CommentAnnotation"
        elif not row.dicom:
            how = "OME only: carried in the DICOM OME-XML private block"
        elif row.direction == "to_dicom":
            how = "OME → DICOM (written only)"
        else:
            how = "both ways"
        how += "" if row.engine else f"; applied by {row.handler}"
        cells = [
            row.scope,
            f"`{row.model}`" if row.model else "—",
            f"`{row.ome}`" if row.ome else "—",
            f"`{row.dicom}`" if row.dicom else "—",
            row.unit or "",
            row.codes or "",
            how,
            row.source.replace("|", "\\|"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", README_END]
    return "\n".join(lines)


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the markers replaced by :func:`readme_table`."""
    start, end = readme.find(README_BEGIN), readme.find(README_END)
    if start < 0 or end < 0:
        return readme.rstrip("\n") + "\n\n## Fields\n\n" + readme_table() + "\n"
    return readme[:start] + readme_table() + readme[end + len(README_END) :]
