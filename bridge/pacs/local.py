"""The instances a push sends: a folder of DICOM files, or an OME-TIFF converted on the way.

Only DICOM Part 10 files (PS3.10 7.1: 128-byte preamble, ``DICM``, File Meta Information) are
sent, because the File Meta Information says the transfer syntax the bytes are in; files are
sent as they are, never decoded. Other files in the folder (notes, DICOMDIR) are ignored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from ..errors import InputError
from .records import LocalInstance

#: Media Storage Directory Storage (PS3.10 8.6): a DICOMDIR is an index, not an instance.
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"

_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "NumberOfFrames",
]


def _is_part10(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def read_instance(path: Path) -> LocalInstance:
    """The identity of one DICOM file, read without its pixel data."""
    try:
        ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read this DICOM file ({exc})", path=path) from None
    meta = getattr(ds, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    missing = [k for k in _TAGS[:4] if not str(ds.get(k, "") or "")]
    if not syntax:
        missing.append("TransferSyntaxUID (file meta)")
    if missing:
        raise InputError(
            f"the file lacks {', '.join(missing)}, which a PACS needs to store it",
            path=path,
            hint="repair the file, or remove it from the folder",
        )
    frames = ds.get("NumberOfFrames", 1)
    return LocalInstance(
        path=path,
        sop_class_uid=str(ds.SOPClassUID),
        sop_instance_uid=str(ds.SOPInstanceUID),
        study_uid=str(ds.StudyInstanceUID),
        series_uid=str(ds.SeriesInstanceUID),
        transfer_syntax=syntax,
        frames=int(frames) if frames not in (None, "") else 1,
        size=path.stat().st_size,
    )


def scan(folder: Path) -> list[LocalInstance]:
    """Every DICOM instance under ``folder`` (recursively), in path order.

    Two files with one SOP Instance UID are an error: a server keeps only one of them.
    """
    if not folder.is_dir():
        raise InputError("not a directory", path=folder)
    instances: list[LocalInstance] = []
    seen: dict[str, Path] = {}
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            if not _is_part10(path):
                continue
            inst = read_instance(path)
            if inst.sop_class_uid == DICOMDIR_CLASS:
                continue
            if inst.sop_instance_uid in seen:
                raise InputError(
                    f"the same SOP Instance UID {inst.sop_instance_uid} is in "
                    f"{seen[inst.sop_instance_uid]} too",
                    path=path,
                    hint="a PACS holds one instance per UID; remove the duplicate",
                )
            seen[inst.sop_instance_uid] = path
            instances.append(inst)
    if not instances:
        raise InputError(
            "no DICOM files (Part 10, with a DICM header) in this folder",
            path=folder,
            hint="push takes a folder of DICOM files or an OME-TIFF",
        )
    return instances


@contextmanager
def instances_of(
    src: Path,
    *,
    progress: Callable[[int, str], Callable[[int], None]] | None = None,
) -> Iterator[list[LocalInstance]]:
    """The instances of ``src``: a DICOM folder or file as it is; an OME-TIFF converted into
    a temporary folder first (removed afterwards, also on failure)."""
    from ..convert import sniff

    kind = sniff(src)
    if kind == "dicom":
        if src.is_dir():
            yield scan(src)
        else:
            yield [read_instance(src)]
        return
    from ..convert import convert

    tmp = Path(tempfile.mkdtemp(prefix="omedicom-push-"))
    try:
        result = convert(src, tmp / "dicom", progress=progress)
        yield scan(result.target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
