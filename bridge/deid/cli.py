"""``omedicom deidentify SRC DST``: the PS3.15 Annex E Basic Application Level Confidentiality
Profile, with its options by name, for DICOM WSI (files, folders) and OME-TIFF."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .names import OPTION_NAMES

HELP = (
    """\
De-identify a slide for research: the PS3.15 Annex E Basic Application Level Confidentiality
Profile, driven by Table E.1-1 (mappings/deid_profile.toml), on every instance, on the
annotations and on both carriers (the OME-XML in the private block, the DICOM header JSON
inside the OME-XML). Pixel data are copied as they are, never re-encoded.

  LABEL images are dropped (--labels keep keeps them), and so are OVERVIEW images
  (--overview keep; --overview redact --label-region X,Y,W,H blanks the label's region and
  keeps the overview, stored uncompressed); Burned In Annotation says what remains.
  UIDs (Study, Series, SOP Instance, Frame of Reference, Pyramid, Dimension Organization,
  Specimen, Concatenation and every reference to them) are replaced; identifiers (Container
  Identifier, Barcode Value, Label Text, Specimen Identifier, Patient ID, Accession Number)
  get pseudonyms. With --key-file the replacements are an HMAC of the source under that key:
  the same source and key give the same output. Without it they are random.
  An audit record DST.audit.json, written beside DST (never inside), maps every source UID
  and identifier to its replacement: keep it apart from the data; it re-identifies.

options (--option NAME, repeatable; PS3.15 E.3, coded with CID 7050):
  """
    + ", ".join(OPTION_NAMES)
    + """

exit codes: 0 done, 2 unreadable input, 3 unsupported, 4 output cannot be written.
"""
)


def add_arguments(parser: argparse.ArgumentParser, *, prefix: str = "") -> None:
    """The de-identification options (shared with ``convert --deidentify``)."""
    parser.add_argument(
        f"--{prefix}option",
        dest="deid_options",
        action="append",
        choices=sorted(OPTION_NAMES),
        default=[],
        metavar="NAME",
        help="a PS3.15 E.3 option: " + ", ".join(OPTION_NAMES),
    )
    parser.add_argument(
        "--labels", choices=["drop", "keep"], default="drop", help="LABEL images (default drop)"
    )
    parser.add_argument(
        "--overview",
        choices=["drop", "keep", "redact"],
        default="drop",
        help="OVERVIEW (macro) images (default drop); redact blanks --label-region and keeps it",
    )
    parser.add_argument(
        "--label-region",
        metavar="X,Y,W,H",
        help="with --overview redact: where the slide label is in the overview, in its pixels",
    )
    parser.add_argument(
        "--key-file",
        metavar="FILE",
        help="secret key (16+ bytes) for deterministic UIDs and pseudonyms; keep it apart",
    )


def add_deidentify(parser: argparse.ArgumentParser) -> None:
    """``--deidentify`` and the de-identification options, on another command's parser."""
    group = parser.add_argument_group("de-identification (see 'omedicom deidentify --help')")
    group.add_argument(
        "--deidentify",
        action="store_true",
        help="write DST de-identified (PS3.15 Basic Profile), audit record beside DST",
    )
    add_arguments(group)  # type: ignore[arg-type]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    cmd = subparsers.add_parser(
        "deidentify",
        help="de-identify a slide (PS3.15 Basic Profile, labels, carriers, audit record)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmd.add_argument("src", metavar="SRC", help="DICOM file or folder, or an OME-TIFF")
    cmd.add_argument("dst", metavar="DST", help="output: a folder (DICOM) or a file (OME-TIFF)")
    cmd.add_argument("--to", choices=["dicom", "ome-tiff"], help="output format (default: SRC's)")
    add_arguments(cmd)
    cmd.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    cmd.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    cmd.set_defaults(func=run)


def options_from(args: argparse.Namespace):
    from ..errors import InputError
    from .profile import Options
    from .redact import parse_region

    region = parse_region(args.label_region) if args.label_region else None
    if args.overview == "redact" and region is None:
        raise InputError(
            "--overview redact needs the label's place: --label-region X,Y,W,H",
            hint="give it in overview pixels, or use --overview drop (the default)",
        )
    return Options(
        frozenset(args.deid_options),
        labels=args.labels,
        overview=args.overview,
        label_region=region,
    )


def run(args: argparse.Namespace) -> int:
    from .run import deidentify, read_key

    outcome = deidentify(
        Path(args.src),
        Path(args.dst),
        options=options_from(args),
        key=read_key(args.key_file),
        overwrite=args.overwrite,
        to=args.to,
    )
    if not args.quiet:
        print(outcome.summary(), file=sys.stderr)
    return 0
