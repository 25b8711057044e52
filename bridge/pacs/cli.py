"""``omedicom push`` and ``omedicom pull``: the PACS subcommands.

Imports of requests and pynetdicom wait until a command runs, so ``omedicom --help`` and the
other subcommands start fast.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..errors import InputError, UnsupportedError

EXIT_CODES = """\
exit codes: 0 done; 1 failure; 2 bad input or options; 3 unsupported; 4 output cannot be
written; 5 server unreachable, stopped answering, or answered wrongly; 6 access denied
(HTTP 401/403, association rejected); 7 the server rejected instances (each is listed).
"""

SERVER_NOTES = """\
servers:
  --dicomweb URL     the DICOMweb root, e.g. https://pacs.example.org/dicom-web
                     (Orthanc: http://HOST:8042/dicom-web)
  --dimse HOST:PORT  classic DICOM networking; --aet is our AE title (default OMEDICOM),
                     --called-aet the server's (default ANY-SCP; Orthanc: ORTHANC)

authentication (DICOMweb): --user NAME takes the password from $OMEDICOM_PASSWORD (or the
variable --password-env names); --token-env VAR sends the token in $VAR as a bearer token.
Secrets are never taken from the command line and never printed. https:// certificates are
verified; --ca-bundle FILE.pem adds a private certificate authority.

failures: connection losses, HTTP 5xx/429 and aborted associations are retried with
exponential backoff (--retries, --retry-delay); 4xx answers and refused logins are not.
"""

PUSH_HELP = f"""\
Send a slide to a PACS. SRC is a folder of DICOM files (sent as they are, each in its own
transfer syntax, JPEG frames never decompressed) or an OME-TIFF (converted to DICOM WSI in a
temporary folder first).

The server is asked first which instances it already holds (QIDO-RS or C-FIND); those are
skipped, so running the same push again after a failure completes it without duplicates.
The rest goes in batches (--batch-size instances, at most --batch-mb per STOW-RS request or
DIMSE association). At the end the server is asked again: an instance counts as sent only
if the server acknowledged it and then holds it.

examples:
  omedicom push slide_dicom/ --dicomweb http://localhost:8042/dicom-web
  omedicom push slide.ome.tiff --dicomweb https://pacs.example.org/dicom-web \\
      --user alice --ca-bundle hospital-ca.pem        # password in $OMEDICOM_PASSWORD
  omedicom push slide_dicom/ --dimse pacs.example.org:104 --aet LAB --called-aet PACS

{SERVER_NOTES}
{EXIT_CODES}"""

PULL_HELP = f"""\
Retrieve a slide from a PACS into DST. A DST ending in .ome.tiff/.tif becomes an OME-TIFF
(the study, or --series, must be one slide); any other DST is a folder that receives one
DICOM file per instance (<SOP Instance UID>.dcm). Instances come in the transfer syntax the
server stores them in: WADO-RS asks with transfer-syntax=* (a bare media type makes servers
such as Orthanc decompress or transcode), C-GET offers one presentation context per transfer
syntax. DST is written under a temporary name and appears only when complete. (For an
OME-TIFF the instances pass through a temporary DICOM folder next to DST, removed after.)

--list shows what the server holds instead: one line per slide (series of modality SM) with
the study and series UIDs to pull it by.

examples:
  omedicom pull --dicomweb http://localhost:8042/dicom-web --list
  omedicom pull --dicomweb http://localhost:8042/dicom-web --study 1.2.3 slide_dicom/
  omedicom pull --dicomweb http://localhost:8042/dicom-web --study 1.2.3 slide.ome.tiff
  omedicom pull --dimse localhost:4242 --called-aet ORTHANC --study 1.2.3 \\
      --series 1.2.3.4 slide_dicom/

{SERVER_NOTES}
{EXIT_CODES}"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _server_options(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--dicomweb", metavar="URL", help="DICOMweb root URL")
    where.add_argument("--dimse", metavar="HOST:PORT", help="DICOM (DIMSE) server address")
    dimse = parser.add_argument_group("DIMSE")
    dimse.add_argument("--aet", metavar="ME", help="our AE title (default OMEDICOM)")
    dimse.add_argument("--called-aet", metavar="THEM", help="the server's AE title")
    web = parser.add_argument_group("DICOMweb")
    web.add_argument("--user", metavar="NAME", help="HTTP Basic user; password from env")
    web.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding the password (default OMEDICOM_PASSWORD)",
    )
    web.add_argument("--token-env", metavar="VAR", help="environment variable holding a token")
    web.add_argument("--ca-bundle", metavar="FILE.pem", help="CA certificates to trust")
    net = parser.add_argument_group("network")
    net.add_argument(
        "--retries",
        type=_non_negative_int,
        default=4,
        help="retries after a transient failure (default 4)",
    )
    net.add_argument(
        "--retry-delay",
        type=_positive_float,
        default=1.0,
        metavar="SECONDS",
        help="first wait before a retry; doubles each time (default 1)",
    )
    net.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        metavar="SECONDS",
        help="longest wait for an answer (default 120)",
    )
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    verbosity.add_argument(
        "--progress",
        action="store_true",
        help="draw the progress bar even when stderr is not a terminal",
    )


def add_parser(subparsers: Any) -> None:
    push = subparsers.add_parser(
        "push",
        help="send a slide (DICOM folder or OME-TIFF) to a PACS (DICOMweb or DIMSE)",
        description=PUSH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    push.add_argument("src", metavar="SRC", help="a folder of DICOM files, or an OME-TIFF")
    _server_options(push)
    push.add_argument(
        "--batch-size",
        type=_positive_int,
        default=20,
        metavar="N",
        help="instances per STOW-RS request or association (default 20)",
    )
    push.add_argument(
        "--batch-mb",
        type=_positive_float,
        default=256.0,
        metavar="MB",
        help="most megabytes per batch; a larger instance goes alone (default 256)",
    )
    push.set_defaults(func=run_push)

    pull = subparsers.add_parser(
        "pull",
        help="retrieve a slide from a PACS (DICOM folder or OME-TIFF), or list the slides",
        description=PULL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pull.add_argument(
        "dst", metavar="DST", nargs="?", help="the folder, or the .ome.tiff, to create"
    )
    _server_options(pull)
    pull.add_argument("--study", metavar="UID", help="Study Instance UID to pull (or list)")
    pull.add_argument("--series", metavar="UID", help="only this Series Instance UID")
    pull.add_argument("--list", action="store_true", help="list the slides the server holds")
    pull.add_argument("--json", action="store_true", help="with --list: one JSON object a line")
    pull.add_argument(
        "--overwrite", action="store_true", help="replace DST if it exists and is not empty"
    )
    from ..deid.cli import add_deidentify  # issue 14

    add_deidentify(pull)
    pull.set_defaults(func=run_pull)


# -- running --------------------------------------------------------------------------------


def _require(package: str) -> None:
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise UnsupportedError(
            f"this command needs the Python package {package}, which is not installed",
            hint=f"pip install {package}",
        )


def _connect(args: argparse.Namespace) -> Any:
    """The DicomWeb or Dimse endpoint the options describe."""
    from .retry import RetryPolicy

    _require("requests" if args.dicomweb else "pynetdicom")

    retry = RetryPolicy(attempts=args.retries + 1, delay=args.retry_delay)
    if args.dicomweb:
        if args.aet or args.called_aet:
            raise InputError("--aet and --called-aet apply to --dimse only")
        from .dicomweb import DicomWeb
        from .http import Credentials, Http

        credentials = Credentials.from_environment(
            user=args.user, password_env=args.password_env, token_env=args.token_env
        )
        http = Http(
            args.dicomweb,
            credentials=credentials,
            ca_bundle=args.ca_bundle,
            timeout=args.timeout,
            retry=retry,
        )
        return DicomWeb(http)
    if args.user or args.token_env or args.password_env or args.ca_bundle:
        raise InputError(
            "--user, --password-env, --token-env and --ca-bundle apply to --dicomweb only"
        )
    from .dimse import Dimse, DimsePeer

    peer = DimsePeer.parse(
        args.dimse, called_aet=args.called_aet, calling_aet=args.aet, timeout=args.timeout
    )
    return Dimse(peer, retry=retry)


def _progress(args: argparse.Namespace) -> Callable[[int, str], Any]:
    from ..progress import Progress

    def factory(total: int, label: str) -> Progress:
        enabled = False if args.quiet else (True if args.progress else None)
        return Progress(total, label, enabled=enabled)

    return factory


def _log(args: argparse.Namespace) -> Callable[[str], None]:
    def log(message: str) -> None:
        if not args.quiet:
            print(f"\nomedicom: {message}", file=sys.stderr)

    return log


def run_push(args: argparse.Namespace) -> int:
    from .push import push

    destination = _connect(args)
    report = push(
        Path(args.src),
        destination,
        batch_size=args.batch_size,
        batch_bytes=int(args.batch_mb * (1 << 20)),
        progress=_progress(args),
        log=_log(args),
    )
    if not args.quiet:
        for warning in report.warnings:
            print(f"omedicom: warning: {warning}", file=sys.stderr)
        print(report.summary(), file=sys.stderr)
    return 0


def run_pull(args: argparse.Namespace) -> int:
    source = _connect(args)
    if args.list:
        if args.dst or args.series:
            raise InputError("--list takes no DST and no --series (only --study)")
        from .pull import format_series

        found = source.series(args.study)
        for s in found:
            print(json.dumps(asdict(s)) if args.json else format_series(s))
        if not found and not args.quiet:
            print(f"omedicom: {source.name} holds no slides (modality SM)", file=sys.stderr)
        return 0
    if args.json:
        raise InputError("--json applies to --list only")
    if not args.study or not args.dst:
        raise InputError(
            "pull needs --study UID and DST (or --list)",
            hint="find the UIDs with: omedicom pull --dicomweb URL --list",
        )
    from .pull import pull

    if getattr(args, "deidentify", False):  # issue 14: retrieve into scratch, write DST clean
        from ..deid.hooks import pull_deidentified

        def fetch(folder: Path) -> None:
            pull(source, args.study, folder, series_uid=args.series, log=_log(args))

        outcome = pull_deidentified(args, fetch)
        if not args.quiet:
            print(outcome.summary(), file=sys.stderr)
        return 0
    report = pull(
        source,
        args.study,
        Path(args.dst),
        series_uid=args.series,
        overwrite=args.overwrite,
        progress=_progress(args),
        log=_log(args),
    )
    if not args.quiet:
        print(report.summary(Path(args.dst)), file=sys.stderr)
    return 0
