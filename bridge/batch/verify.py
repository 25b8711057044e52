"""``omedicom verify``: compare a manifest with what is stored, frame by frame.

From a folder, every file's frames are read as stored. From a PACS, WADO-RS is asked for each
instance's frames with the exact media type and transfer syntax the manifest records (PS3.18
8.7.3.5.2, Table 8.7.3-5), and an answer in any other syntax is an error: a server that
transcoded would otherwise hide a change behind a decode.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import manifest as mf

#: Frames asked for per WADO-RS request.
_FRAMES_PER_REQUEST = 64


@dataclass
class Verdict:
    """What verify found: every difference, one line each, naming the file and the frame."""

    where: str
    files: int = 0
    frames: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        if self.ok:
            return (
                f"verified {self.files} file(s), {self.frames} frame(s) in {self.where}: all equal"
            )
        return (
            f"{len(self.differences)} difference(s) in {self.where} "
            f"({self.files} file(s), {self.frames} frame(s) compared)"
        )


def destination_of(manifest_path: Path, data: dict[str, Any]) -> Path:
    """The output a manifest names: its own path without ``.sha256.json``."""
    name = manifest_path.name
    if name.endswith(mf.SUFFIX):
        return manifest_path.with_name(name[: -len(mf.SUFFIX)])
    return manifest_path.parent / str(data.get("destination", ""))


def verify_folder(data: dict[str, Any], folder: Path) -> Verdict:
    """Compare the manifest with the files under ``folder`` (or the one file it names)."""
    verdict = Verdict(str(folder))
    if not folder.exists():
        verdict.differences.append(f"{folder}: missing")
        return verdict
    listed = {entry["name"] for entry in data["files"]}
    for entry in data["files"]:
        path = folder / entry["name"] if folder.is_dir() else folder
        if not folder.is_dir() and entry["name"] != folder.name and len(data["files"]) > 1:
            path = folder.parent / entry["name"]
        if not path.exists():
            verdict.differences.append(f"{entry['name']}: missing")
            continue
        verdict.files += 1
        try:
            _compare(verdict, entry, mf.iter_frames(path))
        except (InputError, OSError, ValueError) as exc:
            verdict.differences.append(f"{entry['name']}: cannot be read ({exc})")
    if folder.is_dir():
        for path in mf.output_files(folder):
            name = path.relative_to(folder).as_posix()
            if name not in listed:
                verdict.differences.append(f"{name}: not in the manifest")
    return verdict


def _compare(verdict: Verdict, entry: dict[str, Any], frames: Any) -> None:
    expected: list[str] = entry["frames"]
    count = 0
    for number, frame in enumerate(frames, start=1):
        count += 1
        verdict.frames += 1
        if number > len(expected):
            continue
        if hashlib.sha256(frame).hexdigest() != expected[number - 1]:
            verdict.differences.append(f"{entry['name']}: frame {number} differs (SHA-256)")
    if count != len(expected):
        verdict.differences.append(
            f"{entry['name']}: {count} frame(s) stored, the manifest lists {len(expected)}"
        )


def verify_dicomweb(data: dict[str, Any], web: Any, study_uid: str | None = None) -> Verdict:
    """Compare the manifest with the frames a DICOMweb server returns (WADO-RS, exact
    transfer syntax); ``study_uid`` must match the manifest's when given."""
    from ..pacs.errors import PacsError
    from ..pacs.records import RemoteInstance
    from ..pacs.retry import TransientError

    verdict = Verdict(web.name)
    for entry in data["files"]:
        sop = entry.get("sop_instance_uid")
        if not sop:
            raise InputError(
                f"{entry['name']} is not a DICOM instance: only DICOM outputs can be verified "
                "against a PACS"
            )
        if study_uid and entry.get("study_uid") != study_uid:
            raise InputError(
                f"{entry['name']} belongs to study {entry.get('study_uid')}, not {study_uid}",
                hint="give the Study Instance UID the manifest records, or leave --study out",
            )
        ref = RemoteInstance(
            entry["study_uid"],
            entry["series_uid"],
            sop,
            entry.get("sop_class_uid", ""),
            len(entry["frames"]),
        )
        verdict.files += 1
        numbers = list(range(1, len(entry["frames"]) + 1))
        try:
            frames = (
                frame
                for start in range(0, len(numbers), _FRAMES_PER_REQUEST)
                for frame, _ in web.frames(
                    ref, numbers[start : start + _FRAMES_PER_REQUEST], entry["transfer_syntax"]
                )
            )
            _compare(verdict, entry, frames)
        except PacsError as exc:
            verdict.differences.append(f"{entry['name']} ({sop}): {exc.message}")
        except TransientError as exc:
            verdict.differences.append(f"{entry['name']} ({sop}): {exc}")
    return verdict


def verify(
    manifest_path: Path,
    folder: Path | None = None,
    *,
    web: Any = None,
    study_uid: str | None = None,
) -> Verdict:
    """Verify a manifest against ``folder`` (default: the output it names) or a server."""
    data = mf.load(manifest_path)
    if web is not None:
        return verify_dicomweb(data, web, study_uid)
    target = folder if folder is not None else destination_of(manifest_path, data)
    return verify_folder(data, Path(os.path.normpath(target)))
