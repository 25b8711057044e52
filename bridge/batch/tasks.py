"""The tasks of a batch: one per slide, from a CSV file or from a folder walk."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

#: The CSV columns (the first row names them); ``source`` and ``destination`` are required.
COLUMNS = ("source", "destination", "slide_id", "metadata_json", "specimen_json")

#: File name suffixes of the OME-TIFF files a folder walk picks up.
OME_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".ome.btf", ".ome.tf2", ".ome.tf8")


@dataclass(frozen=True)
class Task:
    """One slide: convert ``source`` into ``destination`` (both absolute)."""

    source: Path
    destination: Path
    slide_id: str | None = None
    metadata_json: Path | None = None
    specimen_json: Path | None = None

    @property
    def key(self) -> str:
        """The task's identity in the ledger: its destination."""
        return str(self.destination)


def read_csv(path: Path) -> list[Task]:
    """The tasks of a CSV file with a header row (``source,destination`` and optionally
    ``slide_id,metadata_json,specimen_json``); relative paths are relative to the CSV file."""
    base = path.resolve().parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in ("source", "destination") if c not in header]
            unknown = [c for c in header if c not in COLUMNS]
            if missing or unknown:
                raise InputError(
                    "the CSV header must name source,destination"
                    + (f" (missing: {', '.join(missing)})" if missing else "")
                    + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
                    path=path,
                    hint=f"the first row names the columns; allowed: {','.join(COLUMNS)}",
                )
            reader.fieldnames = header
            tasks = []
            for number, row in enumerate(reader, start=2):
                tasks.append(_row_task(path, number, row, base))
    except OSError as exc:
        raise InputError(f"cannot read the task list ({exc.strerror})", path=path) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"not a CSV text file ({exc})", path=path) from None
    return _unique(tasks, path)


def _row_task(path: Path, number: int, row: dict[str, str | None], base: Path) -> Task:
    def value(name: str) -> str | None:
        text = (row.get(name) or "").strip()
        return text or None

    source, destination = value("source"), value("destination")
    if not source or not destination:
        raise InputError(
            f"row {number} has no {'source' if not source else 'destination'}", path=path
        )

    def resolve(text: str | None) -> Path | None:
        return None if text is None else (base / Path(text).expanduser()).absolute()

    return Task(
        resolve(source),  # type: ignore[arg-type]
        resolve(destination),  # type: ignore[arg-type]
        value("slide_id"),
        resolve(value("metadata_json")),
        resolve(value("specimen_json")),
    )


def walk(src_dir: Path, dst_dir: Path) -> list[Task]:
    """One task per slide under ``src_dir``: each OME-TIFF file becomes a DICOM folder, each
    folder holding DICOM files (DICM at byte 128, PS3.10 7.1) becomes an OME-TIFF, at the same
    relative place under ``dst_dir``. Hidden files and folders are skipped."""
    if not src_dir.is_dir():
        raise InputError("not a folder", path=src_dir, hint="give SRC_DIR DST_DIR, or LIST.csv")
    src_dir, dst_dir = src_dir.absolute(), dst_dir.absolute()
    if dst_dir == src_dir or src_dir in dst_dir.parents:
        raise InputError(
            "the destination folder is inside the source folder",
            path=dst_dir,
            hint="choose a destination outside SRC_DIR, so a re-run does not convert outputs",
        )
    tasks: list[Task] = []
    for folder, dirs, files in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        rel = here.relative_to(src_dir)
        dicom = False
        for name in sorted(f for f in files if not f.startswith(".")):
            lower = name.lower()
            if lower.endswith(OME_TIFF_SUFFIXES):
                stem = name[: -len(next(s for s in OME_TIFF_SUFFIXES if lower.endswith(s)))]
                tasks.append(Task(here / name, dst_dir / rel / stem))
            elif not dicom and _is_dicom(here / name):
                dicom = True
        if dicom:
            target = dst_dir / f"{rel}.ome.tiff" if rel.parts else dst_dir / "slide.ome.tiff"
            tasks.append(Task(here, target))
    if not tasks:
        raise InputError(
            "no OME-TIFF files (*.ome.tif[f]) and no folders of DICOM files found", path=src_dir
        )
    return _unique(tasks, src_dir)


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _unique(tasks: list[Task], where: Path) -> list[Task]:
    seen: dict[str, Task] = {}
    for task in tasks:
        if task.key in seen:
            raise InputError(
                f"two tasks write to {task.destination} ({seen[task.key].source} and "
                f"{task.source})",
                path=where,
                hint="give every slide its own destination",
            )
        seen[task.key] = task
    return tasks
