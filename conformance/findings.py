"""What a check reports: findings with a stable id, a severity, a location and a reference.

A finding says *what* is wrong (``message``), *where* (``location``: file, pyramid level, frame,
attribute path, image, annotation group or shape) and *by which rule* (``reference``: a PS3.x
section, an OME schema element, or the TIFF specification). Findings that come from another
tool (dciodvfy, dcentvfy) keep that tool's name; when one of them is known to be wrong, it stays
in the report with ``known_false_positive`` saying why and where that is shown.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path


class Severity(enum.Enum):
    """How bad a finding is. Only errors make ``omedicom check`` fail (exit code 1)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


@dataclass(frozen=True)
class Location:
    """Where a finding applies. Every field is optional; ``level`` is the 0-based pyramid level
    (0 = largest), ``frame`` the 1-based DICOM frame number (0-based tile index for TIFF)."""

    file: str | None = None
    level: int | None = None
    frame: int | None = None
    attribute: str | None = None
    image: str | None = None
    group: int | None = None

    def as_dict(self) -> dict[str, str | int]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class KnownFalsePositive:
    """Why a tool's message is known to be wrong, and where that can be verified."""

    reason: str
    source: str


@dataclass(frozen=True)
class Finding:
    id: str
    severity: Severity
    message: str
    location: Location = field(default_factory=Location)
    reference: str = ""
    tool: str | None = None
    tool_severity: str | None = None
    known_false_positive: KnownFalsePositive | None = None

    def sort_key(self) -> tuple:
        """File, level, then the worst first; then check id and position."""
        loc = self.location
        return (
            loc.file or "",
            -1 if loc.level is None else loc.level,
            self.severity.rank,
            self.id,
            loc.image or "",
            -1 if loc.group is None else loc.group,
            -1 if loc.frame is None else loc.frame,
            loc.attribute or "",
            self.message,
        )

    def as_dict(self) -> dict:
        out: dict = {
            "id": self.id,
            "severity": self.severity.value,
            "message": self.message,
            "location": self.location.as_dict(),
            "reference": self.reference,
        }
        if self.tool:
            out["tool"] = self.tool
            out["tool_severity"] = self.tool_severity
        if self.known_false_positive:
            out["known_false_positive"] = {
                "reason": self.known_false_positive.reason,
                "source": self.known_false_positive.source,
            }
        return out


#: Exit codes of ``omedicom check``.
EXIT_OK, EXIT_ERRORS, EXIT_UNREADABLE = 0, 1, 2

#: Check ids whose findings mean an input could not be read at all (exit code 2).
UNREADABLE_IDS = frozenset({"INPUT-unreadable"})


@dataclass
class Report:
    """All findings of one ``omedicom check`` run, and what was checked."""

    inputs: list[str]
    against: str | None = None
    findings: list[Finding] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    checks_run: set[str] = field(default_factory=set)
    levels: dict[str, int] = field(default_factory=dict)  # file -> pyramid level

    def add(self, findings: Iterable[Finding]) -> None:
        self.findings.extend(findings)

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=Finding.sort_key)

    def count(self, severity: Severity) -> int:
        return sum(1 for f in self.findings if f.severity is severity)

    def error_ids(self) -> set[str]:
        return {f.id for f in self.findings if f.severity is Severity.ERROR}

    @property
    def exit_code(self) -> int:
        if any(f.id in UNREADABLE_IDS for f in self.findings):
            return EXIT_UNREADABLE
        if self.count(Severity.ERROR):
            return EXIT_ERRORS
        return EXIT_OK


def relative(path: str | Path) -> str:
    """How a file is named in reports: as given, with forward slashes."""
    return Path(path).as_posix()
