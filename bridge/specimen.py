"""Specimen and stains: ``--specimen FILE.json``, OME MapAnnotations and DICOM TID 8001.

OME has no stain element. The bridge keeps stains in an OME ``MapAnnotation`` with Namespace
:data:`NAMESPACE`, referenced from the Image, with these keys (one ``Stain`` entry per stain):

``Stain``
    a CID 8112 stain, written ``meaning [SCHEME:VALUE]`` (``hematoxylin stain [SCT:12710003]``);
    read also as a common name (``hematoxylin``, ``eosin``) or a free-text substance.
``SpecimenDescription``
    free text (DICOM Specimen Short Description).

DICOM (PS3.3 C.8.12.2.1, PS3.16 TID 8001 Specimen Preparation, TID 8003 Specimen Staining): one
Specimen Description Sequence item whose Specimen Preparation Sequence holds a staining step:
Specimen Identifier (TEXT), Processing type = Staining (CODE), and one Using substance (CODE,
CID 8112; TEXT for a substance that has no code) per stain.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from . import tables
from .errors import InputError
from .model import Specimen

NAMESPACE = "urn:omedicom:specimen:1"
_CODED = re.compile(r"^(?P<meaning>.*) \[(?P<scheme>[^:\]]+):(?P<value>[^\]]+)\]$")
#: Keys a ``--specimen`` JSON object may have.
JSON_KEYS = ("stains", "description")

Code = tuple[str, str, str]


def stain_code(entry: Any) -> Code:
    """A stain as ``(value, scheme, meaning)``: a ``[code, scheme, meaning]`` triple, a common
    name from ``mappings/codes.toml`` [stains], or the meaning of a CID 8112 concept
    (``"hematoxylin stain"``, ``"periodic acid Schiff stain"``). Anything else is an error."""
    if isinstance(entry, (list, tuple)):
        if len(entry) == 3 and all(isinstance(v, str) and v for v in entry):
            return (entry[0], entry[1], entry[2])
        raise ValueError(f"a coded stain is [code, scheme, meaning], not {entry!r}")
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"a stain is a name or a [code, scheme, meaning] triple, not {entry!r}")
    name = entry.strip().lower()
    found = tables.code("stains", name)
    if found:
        return found
    for candidate in (name, f"{name} stain"):
        code = _cid_8112().get(candidate)
        if code:
            return code
    raise ValueError(f"{entry!r} is not a stain of PS3.16 CID 8112")


@functools.cache
def _cid_8112() -> dict[str, Code]:
    """CID 8112 (Tissue Stains) by lower-case meaning, from pydicom's copy of PS3.16."""
    try:  # pydicom's generated copy of PS3.16; a private module, so it may move
        from pydicom.sr import _cid_dict
        from pydicom.sr.codedict import codes
    except ImportError:
        return {}
    out = {}
    for scheme, keywords in _cid_dict.cid_concepts.get(8112, {}).items():
        for keyword in keywords:
            code = getattr(getattr(codes, scheme), keyword)
            out[code.meaning.lower()] = (code.value, code.scheme_designator, code.meaning)
    return out


def load(path: str | Path) -> Specimen:
    """Read ``--specimen FILE.json``: ``{"stains": [...], "description": "..."}``."""
    try:
        loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the specimen file ({exc.strerror})", path=path) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"the specimen file is not valid JSON ({exc})", path=path) from None
    if not isinstance(loaded, dict):
        raise InputError("the specimen file must hold one JSON object", path=path)
    unknown = sorted(set(loaded) - set(JSON_KEYS))
    if unknown:
        raise InputError(
            f"unknown keys in the specimen file: {', '.join(unknown)}",
            path=path,
            hint="allowed keys: " + ", ".join(JSON_KEYS),
        )
    stains = loaded.get("stains", [])
    if not isinstance(stains, list):
        raise InputError("'stains' must be a list", path=path)
    try:
        codes = tuple(stain_code(s) for s in stains)
    except ValueError as exc:
        raise InputError(
            f"the specimen file: {exc}",
            path=path,
            hint='give common names ("hematoxylin", "eosin") or [code, scheme, meaning] '
            'triples such as ["12710003", "SCT", "hematoxylin stain"]',
        ) from None
    description = loaded.get("description")
    if description is not None and not isinstance(description, str):
        raise InputError("'description' must be a string", path=path)
    return Specimen(stains=codes, description=description or None)


# -- OME MapAnnotation ---------------------------------------------------------------------------


def from_ome_maps(
    maps: Mapping[str, tuple[str | None, Sequence[tuple[str, str]]]], notes: list[str]
) -> Specimen | None:
    """The specimen of the first MapAnnotation in :data:`NAMESPACE`, or None."""
    for namespace, pairs in maps.values():
        if namespace != NAMESPACE:
            continue
        stains = []
        description = None
        for key, value in pairs:
            if key == "Stain":
                stains.append(_stain_from_text(value, notes))
            elif key == "SpecimenDescription":
                description = value or None
        return Specimen(stains=tuple(stains), description=description)
    return None


def _stain_from_text(text: str, notes: list[str]) -> Code:
    match = _CODED.match(text.strip())
    if match:
        return (match["value"], match["scheme"], match["meaning"])
    try:
        return stain_code(text)
    except ValueError:
        notes.append(f"the stain {text!r} has no CID 8112 code; it is written as free text")
        return ("", "", text.strip())


def ome_pairs(specimen: Specimen) -> list[tuple[str, str]]:
    """The MapAnnotation entries of a specimen (keys in the module docstring)."""
    pairs = [
        ("Stain", f"{meaning} [{scheme}:{value}]" if scheme else meaning)
        for value, scheme, meaning in specimen.stains
    ]
    if specimen.description:
        pairs.append(("SpecimenDescription", specimen.description))
    return pairs


# -- DICOM ---------------------------------------------------------------------------------------


def dicom_item(specimen: Specimen | None, identifier: str, uid: str) -> Any:
    """A Specimen Description Sequence item (PS3.3 C.8.12.2.1) for ``bridge.dicom.header``."""
    from .dicom.header import Dataset

    item = Dataset()
    item.SpecimenIdentifier = identifier[:64]
    item.SpecimenUID = uid
    item.IssuerOfTheSpecimenIdentifierSequence = []
    steps = []
    if specimen is not None and specimen.description:
        item.SpecimenShortDescription = specimen.description[:64]
    if specimen is not None and specimen.stains:
        content = [_text(tables.code("specimen", "specimen_identifier"), identifier[:64])]
        content.append(
            _coded(tables.code("specimen", "processing_type"), tables.code("specimen", "staining"))
        )
        substance = tables.code("specimen", "using_substance")
        for value, scheme, meaning in specimen.stains:
            if scheme:
                content.append(_coded(substance, (value, scheme, meaning)))
            else:
                content.append(_text(substance, meaning))
        step = Dataset()
        step.SpecimenPreparationStepContentItemSequence = content
        steps.append(step)
    item.SpecimenPreparationSequence = steps
    return item


def _text(name: Any, value: str) -> Any:
    from .dicom.attributes import code_item
    from .dicom.header import Dataset

    item = Dataset()
    item.ValueType = "TEXT"
    item.ConceptNameCodeSequence = [code_item(name)]
    item.TextValue = value
    return item


def _coded(name: Any, value: Code) -> Any:
    from .dicom.attributes import code_item
    from .dicom.header import Dataset

    item = Dataset()
    item.ValueType = "CODE"
    item.ConceptNameCodeSequence = [code_item(name)]
    item.ConceptCodeSequence = [code_item(value)]
    return item


def from_dicom(dataset: Any) -> Specimen | None:
    """The specimen of a DICOM instance: the first Specimen Description item, its identifier,
    UID, short description and the substances of its staining steps (TID 8001/8003)."""
    try:
        item = dataset.SpecimenDescriptionSequence[0]
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    substance = tables.code("specimen", "using_substance")
    stains: list[Code] = []
    for step in item.get("SpecimenPreparationSequence", None) or ():
        content = step.get("SpecimenPreparationStepContentItemSequence", None) or ()
        if not any(_name(c) == ("111701", "DCM") and _is_staining(_concept(c)) for c in content):
            continue
        for c in content:
            if _name(c) != substance[:2]:
                continue
            if c.get("ValueType") == "CODE":
                stains.append(_concept(c))
            elif c.get("TextValue"):
                stains.append(("", "", str(c.TextValue)))
    description = item.get("SpecimenShortDescription") or None
    return Specimen(
        identifier=str(item.get("SpecimenIdentifier", "")) or None,
        uid=str(item.get("SpecimenUID", "")) or None,
        stains=tuple(dict.fromkeys(stains)),
        description=str(description) if description else None,
    )


def _is_staining(code: Code) -> bool:
    """A CID 8111 processing type that is a staining: Staining (SCT 127790008) or a kind of
    it (e.g. "Fluorescent staining", as IDC's HTAN series write)."""
    staining = tables.code("specimen", "staining")
    return code[:2] == staining[:2] or code[2].lower().endswith("staining")


def _name(content: Any) -> tuple[str, str]:
    try:
        code = content.ConceptNameCodeSequence[0]
        return (str(code.CodeValue), str(code.CodingSchemeDesignator))
    except (AttributeError, IndexError, KeyError):
        return ("", "")


def _concept(content: Any) -> Code:
    try:
        code = content.ConceptCodeSequence[0]
        return (str(code.CodeValue), str(code.CodingSchemeDesignator), str(code.CodeMeaning))
    except (AttributeError, IndexError, KeyError):
        return ("", "", "")
