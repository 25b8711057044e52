"""Patient, study and slide identity supplied by the user (``--metadata FILE.json`` and options).

The JSON object uses DICOM keywords (PS3.6) as keys. Absent values stay empty (Type 2) and UIDs
are generated: the bridge never invents people.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .dicom.uids import is_valid as is_valid_uid
from .errors import InputError
from .model import Patient

#: DICOM keyword -> Patient field.
KEYWORDS = {
    "PatientName": "name",
    "PatientID": "id",
    "PatientBirthDate": "birth_date",
    "PatientSex": "sex",
    "StudyInstanceUID": "study_uid",
    "StudyID": "study_id",
    "StudyDate": "study_date",
    "StudyTime": "study_time",
    "StudyDescription": "study_description",
    "AccessionNumber": "accession_number",
    "ReferringPhysicianName": "referring_physician",
    "SeriesInstanceUID": "series_uid",
    "SeriesNumber": "series_number",
    "SeriesDescription": "series_description",
}
#: Keys accepted besides the Patient fields.
EXTRA = {"ContainerIdentifier"}


def load(path: str | Path | None, overrides: dict[str, Any]) -> tuple[Patient, str | None]:
    """Read the JSON file (if any), apply CLI overrides, validate; return (patient, slide id)."""
    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InputError(f"cannot read the metadata file ({exc.strerror})", path=path) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"the metadata file is not valid JSON ({exc})", path=path) from None
        if not isinstance(loaded, dict):
            raise InputError("the metadata file must hold one JSON object", path=path)
        unknown = sorted(set(loaded) - set(KEYWORDS) - EXTRA)
        if unknown:
            raise InputError(
                f"unknown keys in the metadata file: {', '.join(unknown)}",
                path=path,
                hint="allowed keys: " + ", ".join(sorted(set(KEYWORDS) | EXTRA)),
            )
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("StudyInstanceUID", "SeriesInstanceUID"):
        if key in values and not is_valid_uid(str(values[key])):
            raise InputError(f"{key} {values[key]!r} is not a valid UID", path=path)
    fields: dict[str, Any] = {}
    for key, field in KEYWORDS.items():
        if key in values and values[key] not in (None, ""):
            fields[field] = int(values[key]) if key == "SeriesNumber" else str(values[key])
    slide_id = values.get("ContainerIdentifier")
    return Patient(**fields), (str(slide_id) if slide_id else None)
