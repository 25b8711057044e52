"""The report of ``omedicom check``: text for people, JSON for machines.

The text groups findings by file and pyramid level, errors first. Repeated findings of one check
with the same explanation are folded after a few (``... and 190 more like this``); ``--json``
always lists everything. The JSON layout is specified by ``report.schema.json`` next to this
module; ``SCHEMA_VERSION`` changes when it does.
"""

from __future__ import annotations

import json
from collections import defaultdict

from bridge import __version__

from .catalog import CHECKS
from .findings import Finding, Report, Severity

SCHEMA_VERSION = 1
#: Findings of one check and one kind shown per file before the rest are counted.
FOLD = 3

_LABEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "info"}


def as_json(report: Report) -> dict:
    findings = report.sorted()
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "omedicom check", "version": __version__},
        "inputs": report.inputs,
        "against": report.against,
        "verdict": "fail" if report.exit_code else "pass",
        "exit_code": report.exit_code,
        "summary": {
            "files": len(report.files),
            "errors": report.count(Severity.ERROR),
            "warnings": report.count(Severity.WARNING),
            "infos": report.count(Severity.INFO),
        },
        "files": [
            {"file": f, **({"level": report.levels[f]} if f in report.levels else {})}
            for f in report.files
        ],
        "checks_run": sorted(report.checks_run),
        "findings": [f.as_dict() for f in findings],
    }


def dumps(report: Report) -> str:
    return json.dumps(as_json(report), indent=2, ensure_ascii=False)


def _heading(file: str | None, level: int | None, report: Report) -> str:
    if file is None:
        return "(the files as a set)"
    lvl = level if level is not None else report.levels.get(file)
    return f"{file}" + (f"  [pyramid level {lvl}]" if lvl is not None else "")


def _line(f: Finding, note: int | None) -> list[str]:
    label = _LABEL[f.severity] + ("*" if f.known_false_positive else "")
    head = f"  {label:<8} {f.id:<22} {f.message}"
    loc = f.location
    where = [
        x
        for x in (
            f"image {loc.image}" if loc.image else None,
            f"annotation group {loc.group}" if loc.group is not None else None,
            f"frame {loc.frame}" if loc.frame is not None else None,
            loc.attribute,
        )
        if x
    ]
    ref = f.reference if f.reference and f.reference != "-" else ""
    tail = " | ".join(x for x in ("; ".join(where), ref) if x)
    lines = [head]
    if tail:
        lines.append(f"  {'':<8} {'':<22} ({tail})")
    if note is not None:
        lines.append(
            f"  {'':<8} {'':<22} * {f.tool} says {f.tool_severity}; known false positive [{note}]"
        )
    return lines


def as_text(report: Report) -> str:
    """Findings grouped by file and pyramid level, the worst first; known false positives of
    dicom3tools marked ``*`` and explained once, in numbered notes at the end."""
    findings = report.sorted()
    by_file: dict[str | None, list[Finding]] = defaultdict(list)
    for f in findings:
        by_file[f.location.file].append(f)
    e, w, i = (report.count(s) for s in (Severity.ERROR, Severity.WARNING, Severity.INFO))
    lines = [
        f"omedicom check: {len(report.files)} file(s); {e} error(s), {w} warning(s), {i} note(s)"
        + (f"; compared with {report.against}" if report.against else ""),
        "",
    ]
    clean = [f for f in report.files if f not in by_file]
    lines += [f"{_heading(name, None, report)}: no findings" for name in clean]
    if clean:
        lines.append("")
    notes: dict[tuple[str, str], int] = {}
    for key in sorted(by_file, key=lambda k: (k is None, k or "")):
        items = by_file[key]
        lines.append(_heading(key, items[0].location.level, report))
        seen: dict[tuple, int] = defaultdict(int)
        folded: dict[tuple, int] = defaultdict(int)
        for f in items:
            fp = f.known_false_positive
            kind = (f.id, f.severity, fp.reason if fp else None)
            seen[kind] += 1
            if seen[kind] > FOLD:
                folded[kind] += 1
                continue
            note = None
            if fp is not None:
                note = notes.setdefault((fp.reason, fp.source), len(notes) + 1)
            lines.extend(_line(f, note))
        for (check_id, severity, _reason), n in folded.items():
            lines.append(f"  {_LABEL[severity]:<8} {check_id:<22} ... and {n} more like this")
        lines.append("")
    verdict = {0: "PASS", 1: "FAIL (errors found)", 2: "FAIL (input could not be read)"}
    if notes:
        lines.append("Known false positives (kept visible, not counted as errors):")
        for (reason, source), n in notes.items():
            lines.append(f"  [{n}] {reason}")
            lines.append(f"      source: {source}")
        lines.append("")
    lines.append(f"verdict: {verdict[report.exit_code]} - exit code {report.exit_code}")
    return "\n".join(lines)


def catalog_table() -> str:
    """The check catalogue as a Markdown table (for the README)."""
    rows = ["| id | what it checks | reference |", "|---|---|---|"]
    for c in CHECKS.values():
        rows.append(f"| `{c.id}` | {c.summary} | {c.reference} |")
    return "\n".join(rows)
