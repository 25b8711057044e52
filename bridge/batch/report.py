"""The final batch report: one row per slide, as CSV and as JSON."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

COLUMNS = (
    "destination",
    "source",
    "state",
    "reason",
    "attempts",
    "skipped",
    "seconds",
    "convert_s",
    "check_s",
    "push_s",
    "verify_s",
    "bytes",
    "files",
    "frames",
    "verbatim_files",
    "check",
    "verify",
    "source_sha256",
    "worker",
)


def row(outcome: dict[str, Any], *, attempts: int, skipped: bool) -> dict[str, Any]:
    timings = outcome.get("timings") or {}
    return {
        "destination": outcome.get("destination"),
        "source": outcome.get("source"),
        "state": outcome.get("state"),
        "reason": outcome.get("reason") or "",
        "attempts": attempts,
        "skipped": skipped,
        "seconds": timings.get("total", ""),
        "convert_s": timings.get("convert", ""),
        "check_s": timings.get("check", ""),
        "push_s": timings.get("push", ""),
        "verify_s": timings.get("verify", ""),
        "bytes": outcome.get("bytes", 0),
        "files": outcome.get("files", 0),
        "frames": outcome.get("frames", 0),
        "verbatim_files": outcome.get("verbatim_files", 0),
        "check": outcome.get("check", "not run"),
        "verify": outcome.get("verify", "not run"),
        "source_sha256": outcome.get("source_sha256", ""),
        "worker": outcome.get("worker", ""),
    }


def write(path: Path, rows: list[dict[str, Any]], summary: dict[str, Any]) -> tuple[Path, Path]:
    """``path`` (CSV) and the same name with ``.json``; both written atomically."""
    from ..convert import staged_file

    csv_path = path if path.suffix.lower() == ".csv" else path.with_suffix(".csv")
    json_path = csv_path.with_suffix(".json")
    with staged_file(csv_path, overwrite=True) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    with staged_file(json_path, overwrite=True) as tmp:
        tmp.write_text(json.dumps({"summary": summary, "slides": rows}, indent=1) + "\n")
    return csv_path, json_path
