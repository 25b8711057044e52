"""``omedicom check``: the conformance suite on the command line (registered in bridge.cli)."""

from __future__ import annotations

import argparse
import sys

CHECK_HELP = """\
Check whole-slide images for conformance beyond what a per-file validator sees: pyramid
geometry (pixel spacing against level size, imaged volume, origin, Frame of Reference), tile
grid and frame counts, frames that decode, DICOM Bulk Simple Annotations and OME ROIs against
the image they annotate, the OME-XML against its schema and the TIFF structure it describes.
dciodvfy and dcentvfy (dicom3tools) run too when installed; their messages are findings, and
the ones known to be wrong are marked as such, not hidden.

PATH is a DICOM file, a folder holding a series (images and annotations; searched
recursively), or an OME-TIFF. Several PATHs are checked together as one set.

--against SOURCE compares PATH (a converted slide) with its source tile by tile (SHA-256 of the
JPEG entropy-coded data, or of the samples) and field by field (levels, pixel size, channel
names, ICC profile, label/macro/thumbnail), for example our DICOM output against the OME-TIFF
it came from.

Every finding has a stable check id (e.g. WSI-spacing), a severity (error, warning, info), a
location (file, pyramid level, frame, attribute path) and the rule it comes from (PS3.3
section, OME schema element). Check ids and what they test: conformance/README.md.

examples:
  omedicom check slide_dicom/
  omedicom check slide_dicom/ --json > report.json
  omedicom check slide_dicom/ --html report.html
  omedicom check slide.ome.tiff
  omedicom check slide_dicom/ --against slide.ome.tiff
  omedicom check level0.dcm annotations.dcm --deep

exit codes: 0 no errors (warnings allowed), 1 errors found, 2 an input could not be read.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check DICOM WSI / annotations / OME-TIFF for conformance; one report",
        description=CHECK_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "paths", metavar="PATH", nargs="+", help="DICOM file, series folder or OME-TIFF"
    )
    parser.add_argument("--json", action="store_true", help="print the machine-readable report")
    parser.add_argument(
        "--html",
        metavar="REPORT.html",
        help="also write the report as one self-contained HTML page: verdict, findings, "
        "levels and a preview of each pyramid with its annotations",
    )
    parser.add_argument(
        "--against",
        metavar="SOURCE",
        help="the source PATH was converted from (OME-TIFF or DICOM): compare them",
    )
    parser.add_argument(
        "--deep",
        action="store_true",
        help="decode every frame (default: the first, middle and last frame of each instance)",
    )
    parser.add_argument(
        "--no-dicom3tools",
        action="store_true",
        help="do not run dciodvfy/dcentvfy even when they are installed",
    )
    parser.add_argument(
        "--phi",
        action="store_true",
        help="instead: list every name, date of birth, identifier, private block, carrier and "
        "label image that may identify the patient; exit 1 on anything found",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.phi:
        from pathlib import Path

        from bridge.deid.phi import scan

        found = scan([Path(p) for p in args.paths])
        for finding in found:
            sys.stdout.write(f"PHI {finding}\n")
        sys.stdout.write(f"{len(found)} possible PHI finding(s)\n")
        return 1 if found else 0
    from .report import as_text, dumps
    from .runner import check

    report = check(
        args.paths,
        deep=args.deep,
        against=args.against,
        use_dicom3tools=not args.no_dicom3tools,
    )
    if args.html:
        from . import htmlreport as html

        views = html.view_slides(args.paths, "checked")
        if args.against:
            views.append(html.view_slide(args.against, "source (--against)"))
        html.write(args.html, html.check_report(report, views))
    sys.stdout.write((dumps(report) if args.json else as_text(report)) + "\n")
    return report.exit_code
