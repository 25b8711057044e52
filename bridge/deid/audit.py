"""The audit record (issue 14 point 4): every source UID and identifier with its replacement,
the date shift, the options and the table's source, as JSON written *beside* the output (never
inside it). With it a data custodian can re-identify; without it nobody can."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from ..errors import OutputError


def audit_path(dst: Path) -> Path:
    """``DST.audit.json`` next to ``DST``."""
    return dst.parent / f"{dst.name}.audit.json"


def write(path: Path, record: dict[str, Any]) -> None:
    """Write the record atomically (a temporary file renamed into place), private to the user
    (mode 0600: it re-identifies)."""
    text = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(name, path)
    except OSError as exc:
        raise OutputError(f"cannot write the audit record ({exc.strerror})", path=path) from None


def read(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def reidentify(record: dict[str, Any], value: str) -> str | None:
    """The source value a replacement stands for (a UID or an identifier), or None."""
    for table in ("uids", "identifiers"):
        for old, new in record.get(table, {}).items():
            if new == value:
                return old
    return None
