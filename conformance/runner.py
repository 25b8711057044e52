"""Run the suite on paths: collect files, read them, run every applicable check, one report.

A PATH is a DICOM file, a folder (searched recursively; DICOM and TIFF files are checked, hidden
files ignored, other files noted), or an OME-TIFF. All DICOM files given are checked together:
pyramids and annotation references span them, and dcentvfy sees them as one set.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from . import ann, dicom3tools, ome, physics, roundtrip, vrlength, wsi
from .catalog import CHECKS, finding
from .dicomfiles import Instance, ReadError, integer, read, sniff, uid
from .findings import Finding, KnownFalsePositive, Report, Severity
from .pyramid import group


def _guard(what: str, file: str | None, run: Callable[[], Iterable[Finding]]) -> Iterator[Finding]:
    """Run one check; if it crashes on a damaged file, say so instead of stopping the report."""
    iterator = iter(run())
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except ome.Unreadable:
            raise
        except Exception as exc:
            yield finding(
                "SUITE-check-failed",
                f"{what} could not finish: {type(exc).__name__}: {exc}",
                file=file,
            )
            return


def collect(
    paths: Iterable[str | os.PathLike[str]],
) -> tuple[list[tuple[Path, str]], list[Finding]]:
    """(path, shown name) of every DICOM/TIFF file, and findings for what cannot be used."""
    files: list[tuple[Path, str]] = []
    out: list[Finding] = []
    for given in paths:
        path = Path(given)
        name = path.as_posix()
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            kept = 0
            for p in found:
                kind = sniff(p)
                if kind == "other" and ome.is_ome_xml(p):
                    files.append((p, p.as_posix()))
                    kept += 1
                    continue
                if kind == "other":
                    out.append(
                        finding(
                            "INPUT-skipped",
                            "neither DICOM (Part 10) nor TIFF: not checked",
                            severity=Severity.INFO,
                            file=p.as_posix(),
                        )
                    )
                    continue
                files.append((p, p.as_posix()))
                kept += 1
            if not kept:
                out.append(
                    finding("INPUT-unreadable", "the folder holds no DICOM or TIFF file", file=name)
                )
        elif path.is_file():
            if sniff(path) == "other" and not ome.is_ome_xml(path):
                out.append(
                    finding(
                        "INPUT-unreadable",
                        "not a DICOM (Part 10, 'DICM' at byte 128) or TIFF file",
                        file=name,
                    )
                )
            else:
                files.append((path, name))
        else:
            out.append(finding("INPUT-unreadable", "no such file or folder", file=name))
    return files, out


def check(
    paths: Iterable[str | os.PathLike[str]],
    *,
    deep: bool = False,
    against: str | os.PathLike[str] | None = None,
    use_dicom3tools: bool = True,
) -> Report:
    """Check everything under ``paths``; compare with ``against`` (the source) if given."""
    paths = list(paths)
    report = Report(
        [Path(p).as_posix() for p in paths], Path(against).as_posix() if against else None
    )
    files, found = collect(paths)
    report.add(found)
    instances: list[Instance] = []
    tiffs: list[tuple[Path, str]] = []
    companions: list[tuple[Path, str]] = []
    for path, name in files:
        report.files.append(name)
        kind = sniff(path)
        if kind == "tiff":
            tiffs.append((path, name))
            continue
        if kind == "other":
            companions.append((path, name))
            continue
        try:
            instances.append(read(path, name))
        except ReadError as exc:
            report.add([finding("INPUT-unreadable", f"cannot be read as DICOM ({exc})", file=name)])
    if instances:
        report.add(_dicom(instances, report, deep=deep))
        report.add(_tools(instances, report, enabled=use_dicom3tools))
    for path, name in tiffs:
        report.checks_run |= {c.id for c in CHECKS.values() if c.area in ("ome", "tiff")}
        try:
            report.add(
                list(_guard("the OME-TIFF checks", name, lambda p=path, n=name: ome.check(p, n)))
            )
        except ome.Unreadable as exc:
            report.add([finding("INPUT-unreadable", str(exc), file=name)])
    for path, name in companions:
        report.checks_run |= {c.id for c in CHECKS.values() if c.area == "ome"}
        report.add(
            list(
                _guard("the OME-XML checks", name, lambda p=path, n=name: ome.check_companion(p, n))
            )
        )
    if against is not None:
        report.checks_run |= {c.id for c in CHECKS.values() if c.area == "roundtrip"}
        report.add(_roundtrip(instances, tiffs, Path(against), report))
    return report


def _dicom(instances: list[Instance], report: Report, *, deep: bool) -> Iterator[Finding]:
    pyramids = group(instances)
    level_of: dict[str, int] = {}
    for p in pyramids:
        for inst, level in p.members():
            if level is not None:
                level_of[inst.name] = level
    report.levels.update(level_of)
    concatenations: dict[str, int] = defaultdict(int)
    for inst in instances:
        key = uid(inst.ds, "ConcatenationUID")
        if key:
            concatenations[key] += integer(inst.ds, "NumberOfFrames") or 1
    images = [i for i in instances if not i.is_ann]
    report.checks_run |= {c.id for c in CHECKS.values() if c.area == "dicom"}
    for inst in instances:
        report.checks_run.add("DICOM-sop-class")
        for problem in inst.problems:
            yield finding("DICOM-pixel-data", f"the file is damaged: {problem}", file=inst.name)
        yield from _guard(
            "the value length checks", inst.name, lambda i=inst: vrlength.check(i.ds, i.name)
        )
        if inst.is_wsi:
            report.checks_run |= {c.id for c in CHECKS.values() if c.area == "wsi"}
            key = uid(inst.ds, "ConcatenationUID")
            yield from _guard(
                "the WSI instance checks",
                inst.name,
                lambda i=inst, k=key: wsi.check_instance(
                    i,
                    level_of.get(i.name),
                    deep=deep,
                    concatenated_frames=concatenations.get(k) if k else None,
                ),
            )
        elif inst.is_ann:
            report.checks_run |= {c.id for c in CHECKS.values() if c.area == "ann"}
            yield from _guard(
                "the annotation checks", inst.name, lambda i=inst: ann.check(i, images)
            )
        else:
            yield finding(
                "DICOM-sop-class",
                f"SOP Class {inst.sop_class} is not a whole slide image or bulk annotation: only "
                "the generic checks and dicom3tools apply",
                severity=Severity.INFO,
                file=inst.name,
            )
    for p in pyramids:
        yield from _guard("the pyramid checks", p.base.name, lambda p=p: wsi.check_pyramid(p))
        yield from _guard("the physics checks", p.base.name, lambda p=p: physics.check_pyramid(p))
    yield from _guard(
        "the Pyramid UID check", None, lambda: wsi.check_pyramid_uids(instances, pyramids)
    )


def _tools(instances: list[Instance], report: Report, *, enabled: bool) -> Iterator[Finding]:
    """dciodvfy per file and dcentvfy over all files, as findings (PS3.3 IOD rules)."""
    if not enabled:
        return
    if not dicom3tools.available():
        report.checks_run.add("TOOL-missing")
        yield finding(
            "TOOL-missing",
            "dciodvfy/dcentvfy are not installed (Debian package dicom3tools): their IOD and "
            "entity checks did not run",
            severity=Severity.INFO,
        )
        return
    report.checks_run |= {"TOOL-dciodvfy", "TOOL-dcentvfy"}
    for inst in instances:
        for f in dicom3tools.dciodvfy(inst.path):
            yield _tool_finding(
                "TOOL-dciodvfy", f, inst.name, inst.ds, report.levels.get(inst.name)
            )
    by_path = {str(i.path): i.name for i in instances}
    for f in dicom3tools.dcentvfy([i.path for i in instances]):
        about = _FOR_FILE.search(f.message)
        name = by_path.get(about.group(1)) if about else None
        yield _tool_finding("TOOL-dcentvfy", f, name, None, report.levels.get(name or ""))


#: dcentvfy names the file a message is about: "... for file <path> versus ...".
_FOR_FILE = re.compile(r"for file <([^>]+)>")


def _tool_finding(
    check_id: str,
    f: dicom3tools.Finding,
    file: str | None,
    dataset: object | None,
    level: int | None,
) -> Finding:
    severity = Severity.ERROR if f.severity == "Error" else Severity.WARNING
    known = dicom3tools.known_false_positive(f, dataset) if dataset is not None else None
    note = None
    if known is not None:
        severity = Severity.WARNING if severity is Severity.ERROR else Severity.INFO
        note = KnownFalsePositive(known.reason, known.source)
    return finding(
        check_id,
        f.message,
        severity=severity,
        file=file,
        level=level,
        attribute=dicom3tools.attribute_path(f.message),
        tool=f.tool,
        tool_severity=f.severity.lower(),
        known_false_positive=note,
    )


def _unreadable_for_comparison(exc: Exception, file: str) -> Finding:
    """The finding for a file the round-trip comparison cannot read (damaged or cut short)."""
    if isinstance(exc, ome.Unreadable):
        return finding("INPUT-unreadable", str(exc), file=file)
    return finding(
        "INPUT-unreadable",
        f"cannot be read for the round-trip comparison ({type(exc).__name__}: {exc}); the file "
        "is damaged or cut short",
        file=file,
    )


def _roundtrip(
    instances: list[Instance], tiffs: list[tuple[Path, str]], source: Path, report: Report
) -> Iterator[Finding]:
    """Digest the checked slide and the source, then compare them."""
    shown = source.as_posix()
    try:
        if instances:
            converted = roundtrip.digest_dicom(instances, report.inputs[0])
        elif tiffs:
            converted = roundtrip.digest_ometiff(tiffs[0][0], tiffs[0][1])
        else:
            return
    except Exception as exc:  # a damaged file is a finding about it, never a crash
        yield _unreadable_for_comparison(exc, report.inputs[0])
        return
    kind = "dicom" if source.is_dir() else sniff(source) if source.is_file() else "missing"
    try:
        if kind == "tiff":
            original = roundtrip.digest_ometiff(source, shown)
        elif kind == "dicom":
            src_files, problems = collect([source])
            yield from problems
            src_instances = []
            for path, name in src_files:
                if sniff(path) == "dicom":
                    try:
                        src_instances.append(read(path, name))
                    except ReadError as exc:
                        yield finding(
                            "INPUT-unreadable", f"cannot be read as DICOM ({exc})", file=name
                        )
            original = roundtrip.digest_dicom(src_instances, shown)
        else:
            yield finding(
                "INPUT-unreadable",
                "the --against source is not a DICOM folder/file or a TIFF",
                file=shown,
            )
            return
    except Exception as exc:
        if converted.close:
            converted.close()
        yield _unreadable_for_comparison(exc, shown)
        return
    try:
        yield from _guard(
            "the round-trip comparison",
            report.inputs[0],
            lambda: roundtrip.compare(converted, original, report.inputs[0]),
        )
    except ome.Unreadable as exc:  # a tile or IFD met while comparing: _guard passes it on
        yield finding("INPUT-unreadable", str(exc), file=report.inputs[0])
    finally:
        for digest in (converted, original):
            if digest.close:
                digest.close()
