"""The HTML report of ``omedicom check --html`` and ``omedicom convert --report``.

One self-contained file: inline CSS, previews as ``data:`` URIs, no JavaScript. It shows the
verdict, every finding of the check with its id, severity, location and the rule it comes from
(PS3.x section, OME schema element), each pyramid level's tile grid, size and pixel spacing,
and a preview of each pyramid with its annotations (:mod:`bridge.preview`). The report of a
conversion puts source and output side by side and says, level by level, what was copied
verbatim and what was re-encoded, and why.

The findings are the ones ``check --json`` lists, in the same order and with the same ids:
each is a table row with ``data-id`` set to its check id.
"""

from __future__ import annotations

import base64
import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .findings import Finding, Report
from .report import as_json

#: Longer side of the previews in a report, px.
PREVIEW_SIZE = 480

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d1d1f;
max-width:1400px}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid
#ddd;padding-bottom:.2em}h3{font-size:1.05em;margin:1em 0 .4em}
.verdict{display:inline-block;padding:.4em .9em;border-radius:6px;font-weight:700;
font-size:1.2em;color:#fff}.pass{background:#1e7d32}.fail{background:#b3261e}
.summary{margin:.6em 0 1em;color:#444}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
th,td{border:1px solid #d5d5d5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.where{min-width:14em}td code{overflow-wrap:anywhere}
td.id{white-space:nowrap}
tr.error td.sev{color:#b3261e;font-weight:700}tr.warning td.sev{color:#a35d00;font-weight:700}
tr.info td.sev{color:#555}code{font-size:.95em}
.fp{color:#666;font-style:italic}
.side{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}.side>section{flex:1 1 560px}
figure{margin:.4em 0 1em}figure img{max-width:100%;border:1px solid #ccc}
figcaption{color:#555;font-size:.9em}
.copied{color:#1e7d32;font-weight:600}.reencoded{color:#a35d00;font-weight:600}
.note{color:#555}
"""


@dataclass
class SlideView:
    """What a report shows of one slide: ``omedicom info``'s description and a preview PNG
    of each pyramid (or why there is none)."""

    title: str
    path: str
    info: dict[str, Any] | None = None
    previews: list[tuple[str, bytes]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def view_slides(paths: Sequence[str | os.PathLike[str]], title: str) -> list[SlideView]:
    """The slides ``check`` was given: DICOM files named one by one (``check level0.dcm
    level1.dcm ann.dcm``) are one slide, read together; each other path is one slide."""
    from bridge.convert import sniff
    from bridge.errors import BridgeError

    files, others = [], []
    for path in paths:
        try:
            kind = sniff(Path(path))
        except BridgeError:
            kind = None
        (files if kind == "dicom" and Path(path).is_file() else others).append(path)
    views = [view_slide(p, title) for p in others]
    if len(files) == 1:
        views.insert(0, view_slide(files[0], title))
    elif files:
        views.insert(0, view_slide(files, title))
    return views


def view_slide(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    title: str,
    *,
    size: int = PREVIEW_SIZE,
) -> SlideView:
    """Open ``path`` (or several DICOM files of one slide) and describe and draw it; what
    cannot be read becomes a problem line (the check's findings say why in detail)."""
    from bridge.convert import open_slide
    from bridge.dicom.reader import read
    from bridge.errors import BridgeError
    from bridge.info import describe
    from bridge.preview import render

    several = not isinstance(path, (str, os.PathLike))
    shown = ", ".join(Path(p).as_posix() for p in path) if several else Path(path).as_posix()
    view = SlideView(title, shown)
    try:
        slide = read(list(path)) if several else open_slide(path)
    except BridgeError as exc:
        view.problems.append(f"cannot be opened for a preview: {exc}")
        return view
    try:
        view.info = describe(slide)
        _stored_spacing(slide, view.info)
        for image in slide.volumes():
            name = f"pyramid {image.source_index}" + (f" ({image.name})" if image.name else "")
            try:
                view.previews.append((name, render(slide, image=image, size=size).png()))
            except BridgeError as exc:
                view.problems.append(f"{name}: no preview: {exc}")
    finally:
        if slide.close:
            slide.close()
    return view


def _stored_spacing(slide: Any, info: dict[str, Any]) -> None:
    """Add each DICOM level's own Pixel Spacing (0028,0030) in µm, as its file states it
    (Shared Functional Groups > Pixel Measures, PS3.3 C.7.6.16.2.1), next to the spacing the
    level-0 pixel size and the level's size imply: a report of a check shows what is stored."""
    import json

    images = {im["index"]: im for im in info["images"]}
    for header in slide.carriers.dicom:
        try:
            data = json.loads(header.json)
            shared = data["52009229"]["Value"][0]
            value = shared["00289110"]["Value"][0]["00280030"]["Value"]
            row_mm, col_mm = float(value[0]), float(value[1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        image = images.get(header.image_index)
        if image is None or header.level >= len(image["levels"]):
            continue
        # Pixel Spacing is (row spacing = y, column spacing = x) in mm
        image["levels"][header.level]["stored_spacing_um"] = [col_mm * 1000, row_mm * 1000]


def _spacing(level: dict[str, Any]) -> str:
    implied = level["pixel_size_um"]
    stored = level.get("stored_spacing_um")
    shown = stored or implied
    if not shown:
        return "—"
    text = f"{shown[0]:.6g} × {shown[1]:.6g}"
    differs = (
        stored
        and implied
        and any(abs(a - b) > 1e-6 * max(a, b) for a, b in zip(stored, implied, strict=True))
    )
    if differs:
        text += f" <span class='fp'>(level 0 and the size imply {implied[0]:.6g} × "
        text += f"{implied[1]:.6g})</span>"
    return text


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def _page(title: str, body: list[str]) -> str:
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _verdict(report: Report) -> list[str]:
    data = as_json(report)
    s = data["summary"]
    word = "PASS" if data["verdict"] == "pass" else "FAIL"
    return [
        f"<p><span class='verdict {data['verdict']}' id='verdict'>{word}</span> "
        f"exit code {data['exit_code']}</p>",
        f"<p class='summary'>{s['files']} file(s): {s['errors']} error(s), "
        f"{s['warnings']} warning(s), {s['infos']} note(s)"
        + (f"; compared with <code>{_e(report.against)}</code>" if report.against else "")
        + "</p>",
    ]


def _location(f: Finding) -> str:
    loc = f.location
    parts = [
        f"<code title='{_e(loc.file)}'>{_e(Path(loc.file).name)}</code>" if loc.file else "",
        f"level {loc.level}" if loc.level is not None else "",
        f"image {_e(loc.image)}" if loc.image else "",
        f"annotation group {loc.group}" if loc.group is not None else "",
        f"frame {loc.frame}" if loc.frame is not None else "",
        f"<code>{_e(loc.attribute)}</code>" if loc.attribute else "",
    ]
    return "<br>".join(p for p in parts if p)


def findings_table(report: Report) -> list[str]:
    """Every finding, in ``check --json`` order, one row each (``data-id`` = check id)."""
    findings = report.sorted()
    if not findings:
        return ["<p id='no-findings'>No findings.</p>"]
    rows = [
        "<table id='findings'><thead><tr><th>#</th><th>severity</th><th>check id</th>"
        "<th>finding</th><th>where</th><th>rule (DICOM section / OME element)</th></tr>"
        "</thead><tbody>"
    ]
    for n, f in enumerate(findings, 1):
        fp = f.known_false_positive
        tool = f" <span class='note'>({_e(f.tool)} says {_e(f.tool_severity)})</span>"
        extra = (
            f"<div class='fp'>known false positive: {_e(fp.reason)} (source: {_e(fp.source)})</div>"
            if fp
            else ""
        )
        rows.append(
            f"<tr class='finding {f.severity.value}' data-id='{_e(f.id)}' id='finding-{n}'>"
            f"<td>{n}</td><td class='sev'>{f.severity.value}</td>"
            f"<td class='id'><code>{_e(f.id)}</code></td>"
            f"<td>{_e(f.message)}{tool if f.tool else ''}{extra}</td>"
            f"<td class='where'>{_location(f)}</td>"
            f"<td>{_e(f.reference)}</td></tr>"
        )
    rows.append("</tbody></table>")
    return rows


def _levels(info: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for im in info["images"]:
        px = im["pixel_size_um"]
        out.append(
            f"<h3>image {im['index']} {_e(im['name'] or '')} — {im['kind']}, {im['dtype']}, "
            f"{im['samples_per_pixel']} sample(s), {im['photometric']}, "
            f"{len(im['channels']) or 1} channel(s), {len(im['focal_planes_um'])} focal "
            f"plane(s)</h3>"
        )
        if px is None:
            out.append("<p class='note'>no pixel size</p>")
        out.append(
            "<table class='levels'><thead><tr><th>level</th><th>size (px)</th><th>tile</th>"
            "<th>grid</th><th>spacing (µm/px)</th><th>codec</th><th>downsample</th></tr>"
            "</thead><tbody>"
        )
        for lv in im["levels"]:
            out.append(
                f"<tr><td>{lv['index']}</td><td>{lv['size'][0]} × {lv['size'][1]}</td>"
                f"<td>{lv['tile_size'][0]} × {lv['tile_size'][1]}</td>"
                f"<td>{lv['grid'][0]} × {lv['grid'][1]}</td>"
                f"<td>{_spacing(lv)}</td>"
                f"<td>{_e(lv['codec'])} {_e(lv['photometric'])}</td>"
                f"<td>{lv['downsample'][0]:g}</td></tr>"
            )
        out.append("</tbody></table>")
    groups = info.get("annotations") or []
    if groups:
        out.append("<table class='groups'><thead><tr><th>annotation group</th><th>type</th>"
                   "<th>count</th><th>image</th></tr></thead><tbody>")  # fmt: skip
        for g in groups:
            out.append(
                f"<tr><td>{_e(g['label'])}</td><td>{_e(g['graphic_type'])}</td>"
                f"<td>{g['count']:,}</td><td>{g['image']}</td></tr>"
            )
        out.append("</tbody></table>")
    return out


def slide_section(view: SlideView) -> list[str]:
    out = [f"<section class='slide'><h2>{_e(view.title)}: <code>{_e(view.path)}</code></h2>"]
    for problem in view.problems:
        out.append(f"<p class='note'>{_e(problem)}</p>")
    for name, png in view.previews:
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        out.append(
            f"<figure><img src='{uri}' alt='preview of {_e(name)}'>"
            f"<figcaption>{_e(name)}: whole slide with scale bar and annotations</figcaption>"
            "</figure>"
        )
    if view.info is not None:
        out.extend(_levels(view.info))
    out.append("</section>")
    return out


def check_report(report: Report, views: Sequence[SlideView]) -> str:
    """The page of ``omedicom check --html``."""
    body = ["<h1>omedicom check</h1>", *_verdict(report), "<div class='side'>"]
    for view in views:
        body += slide_section(view)
    body += ["</div>", "<h2>Findings</h2>", *findings_table(report)]
    return _page("omedicom check report", body)


_LEVEL_NOTE = re.compile(r"^image (\d+)(?: \([^)]*\))? level (\d+): (.*)$", re.S)


def _notes_by_level(notes: Sequence[str]) -> tuple[dict[tuple[int, int], list[str]], list[str]]:
    by_level: dict[tuple[int, int], list[str]] = {}
    other: list[str] = []
    for note in notes:
        m = _LEVEL_NOTE.match(note)
        if m:
            by_level.setdefault((int(m.group(1)), int(m.group(2))), []).append(m.group(3))
        else:
            other.append(note)
    return by_level, other


def _output_level(output: dict[str, Any] | None, kind: str, size: list[int]) -> dict | None:
    for im in (output or {}).get("images", []):
        if im["kind"] != kind:
            continue
        for lv in im["levels"]:
            if lv["size"] == size:
                return lv
    return None


def copy_table(source: SlideView, output: SlideView, notes: Sequence[str]) -> list[str]:
    """Level by level: copied verbatim or re-encoded, and why (the converter's own notes)."""
    by_level, other = _notes_by_level(notes)
    rows = [
        "<table id='copies'><thead><tr><th>image</th><th>level</th><th>size (px)</th>"
        "<th>source codec</th><th>output codec</th><th>tiles</th><th>why</th></tr>"
        "</thead><tbody>"
    ]
    for im in (source.info or {}).get("images", []):
        for lv in im["levels"]:
            out = _output_level(output.info, im["kind"], lv["size"])
            why = by_level.get((im["index"], lv["index"]), [])
            codec_in = f"{lv['codec']} {lv['photometric']}"
            codec_out = f"{out['codec']} {out['photometric']}" if out else "—"
            changed = bool(why) or (out is not None and out["codec"] != lv["codec"])
            verdict = (
                "<span class='reencoded'>re-encoded</span>"
                if changed
                else "<span class='copied'>copied verbatim</span>"
            )
            if out is None:
                verdict = "<span class='note'>not found in the output</span>"
            reason = "; ".join(why) or (
                "" if not changed else f"{lv['codec']} became {out['codec'] if out else '?'}"
            )
            rows.append(
                f"<tr data-image='{im['index']}' data-level='{lv['index']}'>"
                f"<td>{im['index']} {im['kind'].lower()}</td><td>{lv['index']}</td>"
                f"<td>{lv['size'][0]} × {lv['size'][1]}</td><td>{_e(codec_in)}</td>"
                f"<td>{_e(codec_out)}</td><td>{verdict}</td><td>{_e(reason)}</td></tr>"
            )
    rows.append("</tbody></table>")
    if other:
        rows.append("<ul class='notes'>" + "".join(f"<li>{_e(n)}</li>" for n in other) + "</ul>")
    return rows


def convert_report(
    source: SlideView,
    output: SlideView,
    notes: Sequence[str],
    report: Report,
    summary: str,
) -> str:
    """The page of ``omedicom convert --report``: the check of the output against its source,
    both slides side by side, and what happened to each level's tiles."""
    body = [
        "<h1>omedicom convert</h1>",
        f"<p>{_e(summary)}</p>",
        *_verdict(report),
        "<h2>Tiles: copied or re-encoded</h2>",
        *copy_table(source, output, notes),
        "<div class='side'>",
        *slide_section(source),
        *slide_section(output),
        "</div>",
        "<h2>Findings of the check of the output against its source</h2>",
        *findings_table(report),
    ]
    return _page("omedicom convert report", body)


def write(path: str | os.PathLike[str], text: str, *, overwrite: bool = True) -> None:
    """Write the page (staged: complete or not at all)."""
    from bridge.convert import staged_file

    with staged_file(Path(path), overwrite=overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_convert_report(
    src: str | os.PathLike[str], result: Any, path: str | os.PathLike[str]
) -> None:
    """Check a finished conversion (``result``, a :class:`bridge.convert.Result`) against its
    source and write the page of ``omedicom convert --report``."""
    from .runner import check

    report = check([result.target], against=src)
    source = view_slide(src, "source")
    output = view_slide(result.target, "output")
    write(path, convert_report(source, output, result.warnings, report, result.summary()))
