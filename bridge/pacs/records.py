"""What a transfer works on and reports: local and remote instances, outcomes, reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydicom.uid import UID


def uid_name(uid: str) -> str:
    """A UID with its registered name, e.g. ``1.2.840.10008.1.2.4.50 (JPEG Baseline ...)``."""
    name = UID(uid).name
    return uid if name == uid else f"{name} ({uid})"


@dataclass(frozen=True)
class LocalInstance:
    """One DICOM Part 10 file to send (PS3.10 7.1: File Meta Information says how it is
    encoded; the SOP Class and Instance UIDs identify it on the server)."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    study_uid: str
    series_uid: str
    transfer_syntax: str
    frames: int
    size: int


@dataclass(frozen=True)
class RemoteInstance:
    """One instance a server holds, as QIDO-RS or C-FIND describes it (PS3.18 10.6,
    PS3.4 C.6.1.1.5)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    frames: int


@dataclass(frozen=True)
class SeriesSummary:
    """One series on the server: one line of ``omedicom pull --list``."""

    study_uid: str
    series_uid: str
    modality: str
    instances: int | None
    patient_id: str
    patient_name: str
    container_id: str
    description: str
    study_date: str


@dataclass(frozen=True)
class Rejection:
    """An instance the server refused, with its SOP class and the server's reason."""

    instance: LocalInstance
    reason: str

    def describe(self) -> str:
        return (
            f"{self.instance.path.name} (SOP Instance {self.instance.sop_instance_uid}, "
            f"{uid_name(self.instance.sop_class_uid)}): {self.reason}"
        )


@dataclass
class BatchOutcome:
    """What one request (STOW-RS) or one association (C-STORE) achieved.

    ``stored``: the server acknowledged them. ``rejected``: refused, with a reason.
    ``retry``: not stored because of a transient failure (``reason`` says which); they are
    sent again after a pause. ``split``: the server refused the batch as a whole without
    naming instances; they are sent again one by one to find the culprit.
    """

    stored: list[LocalInstance] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    retry: list[LocalInstance] = field(default_factory=list)
    reason: str | None = None
    split: list[LocalInstance] = field(default_factory=list)


@dataclass
class PushReport:
    """The account of a push. ``sent`` holds only instances the server acknowledged; after
    ``verified`` is set, only those a final query found on the server."""

    destination: str
    total: int = 0
    sent: list[LocalInstance] = field(default_factory=list)
    skipped: list[LocalInstance] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verified: bool = False

    @property
    def unsent(self) -> int:
        return self.total - len(self.sent) - len(self.skipped) - len(self.rejected)

    def summary(self) -> str:
        frames = sum(i.frames for i in self.sent)
        text = (
            f"sent {len(self.sent)} of {self.total} instance(s) ({frames} frames) to "
            f"{self.destination}"
        )
        if self.skipped:
            text += f"; {len(self.skipped)} skipped (the server already held them)"
        if self.rejected:
            text += f"; {len(self.rejected)} rejected"
        if self.unsent:
            text += f"; {self.unsent} not sent"
        if self.sent:
            text += (
                "; a final query found every sent instance on the server"
                if self.verified
                else "; acknowledged by the server, not verified by a final query"
            )
        return text


@dataclass
class PullReport:
    """The account of a pull: instances received, the files written (the DICOM files, or the
    one OME-TIFF), their frames and stored transfer syntaxes."""

    source: str
    total: int = 0
    received: int = 0
    files: list[Path] = field(default_factory=list)
    frames: int = 0
    transfer_syntaxes: set[str] = field(default_factory=set)

    def summary(self, target: Path) -> str:
        syntaxes = ", ".join(sorted(UID(t).name for t in self.transfer_syntaxes)) or "none"
        return (
            f"pulled {self.received} of {self.total} instance(s) ({self.frames} frames) "
            f"from {self.source} to {target}; stored transfer syntaxes: {syntaxes}"
        )
