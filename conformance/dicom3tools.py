"""Wrap David Clunie's dicom3tools validators: ``dciodvfy`` (one instance against its IOD) and
``dcentvfy`` (consistency of Patient/Study/Series/Frame of Reference entities across files).

Both write their findings to stderr, one per line, starting ``Error -`` or ``Warning -``. An
``Error`` line is a failure even when the exit code is 0. Debian package: ``dicom3tools``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
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


# -- attribute paths and known false positives ----------------------------------------------------

_PATH = re.compile(r"^</([^>]*)>")
_STEP = re.compile(r"([A-Za-z0-9]+)\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\)(\[\d+\])?")


def attribute_path(message: str) -> str | None:
    """``</A(0040,0560)[1]/B(0040,0551)> - ...`` -> ``A[1]/B`` (dciodvfy's attribute path)."""
    match = _PATH.match(message.strip())
    if not match:
        return None
    steps = [m.group(1) + (m.group(4) or "") for m in _STEP.finditer(match.group(1))]
    return "/".join(steps) or None


#: Attributes of the Specimen module (PS3.3 C.7.6.22) at the top level of a dataset.
_SPECIMEN_MODULE = frozenset(
    {
        "ContainerIdentifier",
        "IssuerOfTheContainerIdentifierSequence",
        "AlternateContainerIdentifierSequence",
        "ContainerTypeCodeSequence",
        "ContainerDescription",
        "ContainerComponentSequence",
        "SpecimenDescriptionSequence",
    }
)

ANN_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.91.1"

#: Standard SOP Classes added after the dicom3tools release Debian ships (2022-06-18); dciodvfy
#: has no IOD for them and says "Information Object Not found".
NEWER_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.7": "Label Map Segmentation Storage (PS3.4 B.5; Sup 243, 2024)",
}


@dataclass(frozen=True)
class KnownIssue:
    """A dicom3tools message that is wrong for the files it matches, and why."""

    tool: str
    pattern: re.Pattern[str]
    reason: str
    source: str
    sop_class: str | None = None
    #: Extra condition on the dataset (pydicom) and the matched message; None = always.
    applies: Callable[[object, str], bool] | None = None


def _group_lacks_common_z(ds: object, message: str) -> bool:
    """The flagged annotation group really has no Common Z Coordinate Value."""
    match = re.search(r"AnnotationGroupSequence\(006a,0002\)\[(\d+)\]", message)
    try:
        groups = ds.AnnotationGroupSequence  # type: ignore[attr-defined]
        group = groups[int(match.group(1)) - 1] if match else None
    except Exception:
        return False
    return group is not None and "CommonZCoordinateValue" not in group


def _newer_sop_class(ds: object, message: str) -> bool:
    return str(getattr(ds, "SOPClassUID", "")) in NEWER_SOP_CLASSES


def _specimen_attribute(ds: object, message: str) -> bool:
    path = attribute_path(message) or ""
    return path.split("[", 1)[0].split("/", 1)[0] in _SPECIMEN_MODULE


KNOWN_FALSE_POSITIVES: tuple[KnownIssue, ...] = (
    KnownIssue(
        tool="dciodvfy",
        pattern=re.compile(
            r"CommonZCoordinateValue\(006a,0010\)> - Only valid for AnnotationCoordinateType of 3D"
        ),
        reason=(
            "dciodvfy reports this for every group of a 2D annotation, also when the group has no "
            "Common Z Coordinate Value: its rule is a Verify on the condition "
            "AnnotationCoordinateTypeIsNot3D that does not test whether the attribute is "
            "present. Reproduced with a 2D POLYGON group written by highdicom 0.28.2, which has "
            "no Common Z Coordinate Value. The suite's own ANN-common-z check reports a Common Z "
            "that is really present in 2D."
        ),
        source=(
            "dicom3tools libsrc/standard/module/vl.tpl, Module MicroscopyBulkSimpleAnnotations "
            '(Verify="CommonZCoordinateValue" Condition="AnnotationCoordinateTypeIsNot3D"); '
            "Debian dicom3tools 1.00~20220618; PS3.3 C.37.1.2 (Common Z Coordinate Value, Type 1C)"
        ),
        sop_class=ANN_SOP_CLASS,
        applies=_group_lacks_common_z,
    ),
    KnownIssue(
        tool="dciodvfy",
        pattern=re.compile(r"- Attribute is not present in standard DICOM IOD"),
        reason=(
            "the Specimen module (Container Identifier, Specimen Description Sequence, ...) is "
            "part of the Microscopy Bulk Simple Annotations IOD with usage U; this dciodvfy "
            "release predates that and calls its attributes non-standard"
        ),
        source=(
            "PS3.3 A.87.1.2 (Microscopy Bulk Simple Annotations IOD Module Table: Specimen "
            "C.7.6.22, U), as listed in highdicom _standard/iod_module_map.json "
            "('microscopy-bulk-simple-annotations': specimen U)"
        ),
        sop_class=ANN_SOP_CLASS,
        applies=_specimen_attribute,
    ),
    KnownIssue(
        tool="dciodvfy",
        pattern=re.compile(r"^Information Object Not found$"),
        reason=(
            "the SOP Class is a standard one that this dciodvfy release does not know, so it did "
            "not validate the file at all: this says nothing about the file (its other messages "
            "come from the modules dciodvfy could still recognise)"
        ),
        source=(
            "PS3.4 B.5 (Standard SOP Classes): Label Map Segmentation Storage "
            "1.2.840.10008.5.1.4.1.1.66.7, added by Supplement 243 (2024), after the Debian "
            "dicom3tools release 1.00~20220618; also listed in highdicom "
            "_standard/sop_class_iod_map.json"
        ),
        applies=_newer_sop_class,
    ),
)


def known_false_positive(finding: Finding, dataset: object | None) -> KnownIssue | None:
    """The known issue that explains ``finding`` for this dataset, if any."""
    try:  # a damaged header (an unknown VR, say) cannot confirm a known issue
        sop_class = str(getattr(dataset, "SOPClassUID", "") or "")
    except Exception:
        return None
    for issue in KNOWN_FALSE_POSITIVES:
        if issue.tool != finding.tool or not issue.pattern.search(finding.message):
            continue
        if issue.sop_class and issue.sop_class != sop_class:
            continue
        try:
            if issue.applies is not None and not issue.applies(dataset, finding.message):
                continue
        except Exception:
            continue
        return issue
    return None
