"""Regenerate ``mappings/deid_profile.toml``: PS3.15 Annex E Table E.1-1 as data.

Table E.1-1 ("Application Level Confidentiality Profile Attributes") says, for every attribute
that can identify a patient, what the Basic Profile does (D, Z, X, K, C, U and the combinations
X/Z, X/D, X/Z/D, Z/D, X/Z/U*) and what each option changes. The standard publishes it only as
DocBook/HTML, so this script reads two machine-readable copies extracted from the standard by
their authors, both from PyPI:

* ``dicom-anonymizer`` (KitwareMedical, BSD): ``dicomfields_<edition>.py`` holds the Basic
  Profile column, one Python list per action, of a recent edition (2026c in 2.1.0);
* ``dicom-standard`` (Innolitics, MIT): ``confidentiality_profile_attributes.json`` holds every
  column, options included, of the edition it was built from (2020).

The Basic Profile action comes from the newer edition; the option columns from the older one
(attributes added to the table since then have no option entries, so the options leave them to
the Basic Profile: the conservative side). Usage::

    python scripts/deid_table.py            # downloads both wheels with pip into a temp folder
    python scripts/deid_table.py A.whl B.whl
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ANONYMIZER = "dicom-anonymizer==2.1.0"
EDITION = "2026c"
STANDARD = "dicom-standard==0.1.0"
STANDARD_EDITION = "2020 (dicom-standard 0.1.0 was built 2020-04-07)"

#: the Kitware list names and the Table E.1-1 action each stands for
LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}

#: Innolitics column names -> option names used in the TOML (PS3.15 E.3.x)
OPTIONS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_full_dates",
    "rtnLongModifDatesOpt": "retain_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}


def _wheels(args: list[str]) -> tuple[Path, Path]:
    if len(args) == 2:
        return Path(args[0]), Path(args[1])
    folder = Path(tempfile.mkdtemp())
    pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder)]
    subprocess.run([*pip, ANONYMIZER, STANDARD], check=True)
    return next(folder.glob("dicom_anonymizer-*.whl")), next(folder.glob("dicom_standard-*.whl"))


def _key(group: int, element: int, group_mask: int = 0xFFFF, element_mask: int = 0xFFFF) -> str:
    """An 8-hex-digit tag key; digits a mask leaves free are ``x``."""
    out = ""
    for value, mask in ((group, group_mask), (element, element_mask)):
        for shift in (12, 8, 4, 0):
            out += "x" if not (mask >> shift) & 0xF else f"{(value >> shift) & 0xF:x}"
    return out


def basic_column(wheel: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as zf:
        name = f"dicomanonymizer/dicom_anonymization_databases/dicomfields_{EDITION}.py"
        tree = ast.parse(zf.read(name).decode("utf-8"))
    column: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            action = LISTS.get(node.targets[0].id)
            if action is None:
                continue
            for tag in ast.literal_eval(node.value):
                column[_key(*tag)] = action
    return column


def option_columns(wheel: Path) -> dict[str, dict[str, str]]:
    with zipfile.ZipFile(wheel) as zf:
        member = next(
            n for n in zf.namelist() if n.endswith("confidentiality_profile_attributes.json")
        )
        rows = json.loads(zf.read(member))
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        key = row["id"].lower()
        if len(key) != 8:  # the row for every private attribute (odd groups), not one tag
            key = "private"
        entry = {"name": row["name"], "basic": row["basicProfile"]}
        for column, option in OPTIONS.items():
            if row.get(column):
                entry[option] = row[column]
        out[key] = entry
    return out


def _name(key: str, older: dict[str, dict[str, str]]) -> str:
    if key in older:
        return older[key]["name"]
    if "x" not in key:
        from pydicom.datadict import dictionary_description

        try:
            return dictionary_description(int(key, 16))
        except KeyError:
            pass
    return ""


def main(argv: list[str]) -> int:
    anonymizer, standard = _wheels(argv)
    basic = basic_column(anonymizer)
    older = option_columns(standard)
    lines = [
        "# PS3.15 Annex E, Table E.1-1 (Application Level Confidentiality Profile Attributes).",
        "# GENERATED by scripts/deid_table.py: do not edit; regenerate instead.",
        '# Keys are tags as 8 hex digits (x: any digit), "private" for every private attribute.',
        "# basic: the Basic Profile action;",
        "# other keys: the action of that option (PS3.15 E.3) where the table gives one.",
        "",
        "[source]",
        f'basic = "PS3.15 {EDITION} Table E.1-1, Basic Profile column, as packaged in '
        f'{ANONYMIZER} (dicomfields_{EDITION})"',
        f'options = "PS3.15 {STANDARD_EDITION} Table E.1-1 option columns, as packaged in '
        f'{STANDARD} (confidentiality_profile_attributes.json)"',
        f'edition = "{EDITION}"',
        "",
        "[attributes]",
    ]
    for key in sorted(set(basic) | set(older)):
        entry: dict[str, str] = {"name": _name(key, older)}
        entry["basic"] = basic.get(key) or older[key]["basic"]
        if key not in basic and key != "private":  # the newer copy does not list it
            entry["removed_since"] = STANDARD_EDITION.split()[0]
        for option in OPTIONS.values():
            if option in older.get(key, {}):
                entry[option] = older[key][option]
        fields = ", ".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in entry.items())
        lines.append(f'"{key}" = {{ {fields} }}')
    out = Path(__file__).resolve().parents[1] / "mappings" / "deid_profile.toml"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out.name}: {len(basic | older)} attributes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
