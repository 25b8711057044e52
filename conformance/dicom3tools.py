"""Wrap David Clunie's dicom3tools validators: ``dciodvfy`` (one instance against its IOD) and
``dcentvfy`` (consistency of Patient/Study/Series/Frame of Reference entities across files).

Both write their findings to stderr, one per line, starting ``Error -`` or ``Warning -``. An
``Error`` line is a failure even when the exit code is 0. Debian package: ``dicom3tools``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"(Error|Warning) - ")


@dataclass(frozen=True)
class Finding:
    severity: str  # "Error" or "Warning"
    message: str
    tool: str


def available() -> bool:
    return shutil.which("dciodvfy") is not None and shutil.which("dcentvfy") is not None


def _parse(text: str, tool: str) -> list[Finding]:
    findings = []
    # Messages are not always newline-terminated (the IOD name may run into the next line).
    for match in _LINE.finditer(text):
        end = text.find("\n", match.end())
        body = text[match.end() : end if end >= 0 else None].strip()
        nxt = _LINE.search(body)
        if nxt:
            body = body[: nxt.start()].strip()
        findings.append(Finding(match.group(1), body, tool))
    return findings


def _run(args: Sequence[str], tool: str) -> list[Finding]:
    if shutil.which(tool) is None:
        raise FileNotFoundError(f"{tool} is not installed (Debian package dicom3tools)")
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace", check=False)
    findings = _parse(proc.stderr + proc.stdout, tool)
    if proc.returncode not in (0, 1) and not findings:
        findings.append(Finding("Error", f"{tool} exited with {proc.returncode}", tool))
    return findings


def dciodvfy(path: str | Path) -> list[Finding]:
    """Validate one DICOM file against its IOD."""
    return _run(["dciodvfy", "-new", str(path)], "dciodvfy")


def dcentvfy(paths: Sequence[str | Path]) -> list[Finding]:
    """Check that files of one study/series agree on their shared entities."""
    return _run(["dcentvfy", *map(str, paths)], "dcentvfy")


def errors(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "Error"]
