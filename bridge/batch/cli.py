"""``omedicom batch`` and ``omedicom verify``."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import Any

from ..errors import InputError

BATCH_HELP = """\
Convert many slides: each one is converted, checked (omedicom check --against its source),
given a <DST>.sha256.json manifest, optionally pushed to a PACS, and verified (the output
folder, and after a DICOMweb push what the server returns, against the manifest).

  omedicom batch LIST.csv           a CSV file with a header row: source,destination and
                                    optionally slide_id,metadata_json (paths relative to it)
  omedicom batch SRC_DIR DST_DIR    every OME-TIFF (*.ome.tif[f]) under SRC_DIR becomes a DICOM
                                    folder, every folder of DICOM files an OME-TIFF, at the
                                    same place under DST_DIR

Resumable: a SQLite ledger (default: omedicom-batch.sqlite in DST_DIR, or LIST.sqlite beside
the CSV) records each slide as pending, running, done or failed with its reason. Running the
same command again skips what is done (same source checksum, same options, output present),
retries what failed and redoes what a crash interrupted. UIDs are derived from the source's
SHA-256 and the options, so a redone slide has the same UIDs and a PACS sees the same
instances. Outputs appear only when complete; leftovers of a killed run are removed.

Slides run on a local process pool (--workers, default the number of cores) or on an existing
Dask distributed cluster (--scheduler tcp://HOST:8786; every worker needs omedicom installed
and the same paths; DICOMweb secrets are read from each worker's environment).

A report (CSV and JSON: outcome, timings, bytes, check and verify verdicts per slide) is
written beside the ledger, or to --report.

exit codes: 0 every slide done; 1 some slides failed (see the report); 2 bad task list.
"""

VERIFY_HELP = """\
Compare a <DST>.sha256.json manifest with what is stored, frame by frame (SHA-256 of each
frame's encoded bytes). Without DIR it checks the DST the manifest is named after; with DIR,
that folder (or file); with --dicomweb URL, what the server returns over WADO-RS, asked in the
exact transfer syntax the manifest records, so no transcoding can hide a change.

exit codes: 0 all equal; 1 differences (each names the file and the frame); 2 bad manifest.
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_parser(subparsers: Any) -> None:
    from ..cli import _pixel_size

    batch = subparsers.add_parser(
        "batch",
        help="convert, check, push and verify many slides; resumable (local pool or Dask)",
        description=BATCH_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("source", metavar="LIST.csv|SRC_DIR", help="a task list, or a folder")
    batch.add_argument("dst", metavar="DST_DIR", nargs="?", help="with SRC_DIR: where to write")
    pool = batch.add_mutually_exclusive_group()
    pool.add_argument(
        "--workers", type=_positive_int, metavar="N", help="local worker processes (default: cores)"
    )
    pool.add_argument(
        "--scheduler", metavar="tcp://HOST:PORT", help="run on this Dask distributed scheduler"
    )
    batch.add_argument("--ledger", metavar="FILE.sqlite", help="where the ledger is kept")
    batch.add_argument("--report", metavar="FILE.csv", help="the report (a .json beside it too)")
    batch.add_argument("--to", choices=["dicom", "ome-tiff"], help="target format")
    batch.add_argument(
        "--codec", choices=["jpegls", "jpeg2000", "htj2k", "native", "jpeg"], help="see convert"
    )
    batch.add_argument("--lossy", metavar="QUALITY", type=int, help="see convert")
    batch.add_argument(
        "--pixel-size", metavar="UM[,UM]", type=_pixel_size, help="see convert (every slide)"
    )
    batch.add_argument("--no-check", action="store_true", help="do not run omedicom check")
    batch.add_argument(
        "--no-dicom3tools", action="store_true", help="check without dciodvfy/dcentvfy"
    )
    push = batch.add_mutually_exclusive_group()
    push.add_argument("--push-dicomweb", metavar="URL", help="push each slide (STOW-RS)")
    push.add_argument("--push-dimse", metavar="HOST:PORT", help="push each slide (C-STORE)")
    batch.add_argument("--aet", metavar="ME", help="with --push-dimse: our AE title")
    batch.add_argument("--called-aet", metavar="THEM", help="with --push-dimse: the server's")
    _auth_options(batch)
    verbosity = batch.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    verbosity.add_argument(
        "--progress", action="store_true", help="draw the progress bar even when not a terminal"
    )
    batch.set_defaults(func=run_batch_command)

    verify = subparsers.add_parser(
        "verify",
        help="compare a <DST>.sha256.json manifest with a folder or a PACS, frame by frame",
        description=VERIFY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("manifest", metavar="DST.sha256.json")
    verify.add_argument("dir", metavar="DIR", nargs="?", help="the folder (or file) to check")
    verify.add_argument("--dicomweb", metavar="URL", help="check what this server returns")
    verify.add_argument("--study", metavar="UID", help="the Study Instance UID (with --dicomweb)")
    _auth_options(verify)
    verify.add_argument("-q", "--quiet", action="store_true", help="only the differences")
    verify.set_defaults(func=run_verify_command)


def _auth_options(parser: argparse.ArgumentParser) -> None:
    web = parser.add_argument_group("DICOMweb authentication (as for push)")
    web.add_argument("--user", metavar="NAME", help="HTTP Basic user; password from env")
    web.add_argument(
        "--password-env", metavar="VAR", help="variable holding the password (OMEDICOM_PASSWORD)"
    )
    web.add_argument("--token-env", metavar="VAR", help="variable holding a bearer token")
    web.add_argument("--ca-bundle", metavar="FILE.pem", help="CA certificates to trust")


def _credentials(args: argparse.Namespace) -> Any:
    """The DICOMweb credentials the options name (checked here, before any work)."""
    from ..pacs.http import Credentials

    return Credentials.from_environment(
        user=args.user, password_env=args.password_env, token_env=args.token_env
    )


def _tasks(source: str, dst: str | None) -> tuple[list[Any], Path]:
    """The tasks and the default ledger path."""
    from .tasks import read_csv, walk

    path = Path(source)
    if dst is not None:
        return walk(path, Path(dst)), Path(dst) / "omedicom-batch.sqlite"
    if path.is_dir():
        raise InputError(
            "a folder alone is not a task list", path=path, hint="give SRC_DIR DST_DIR"
        )
    return read_csv(path), path.with_suffix(".sqlite")


def run_batch_command(args: argparse.Namespace) -> int:
    from .progress import BatchProgress
    from .report import write
    from .runner import run_batch
    from .work import Options

    if (args.aet or args.called_aet) and not args.push_dimse:
        raise InputError("--aet and --called-aet apply to --push-dimse only")
    if (args.user or args.password_env or args.token_env or args.ca_bundle) and not (
        args.push_dicomweb
    ):
        raise InputError("--user, --password-env, --token-env, --ca-bundle need --push-dicomweb")
    if args.push_dicomweb:
        _credentials(args)  # a missing secret stops the batch before the first slide
    tasks, ledger = _tasks(args.source, args.dst)
    ledger = Path(args.ledger) if args.ledger else ledger
    ledger = ledger.absolute()
    options = Options(
        lock_dir=str(ledger.with_name(ledger.name + ".locks")),
        to=args.to,
        codec=args.codec,
        lossy=args.lossy,
        pixel_size_um=args.pixel_size,
        check=not args.no_check,
        dicom3tools=not args.no_dicom3tools,
        push_dicomweb=args.push_dicomweb,
        push_dimse=args.push_dimse,
        aet=args.aet,
        called_aet=args.called_aet,
        user=args.user,
        password_env=args.password_env,
        token_env=args.token_env,
        ca_bundle=args.ca_bundle,
    )
    enabled = False if args.quiet else (True if args.progress else None)
    progress = BatchProgress(len(tasks), enabled=enabled)

    def log(message: str) -> None:
        if not args.quiet:
            print(f"omedicom: {message}", file=sys.stderr)

    # a job scheduler's SIGTERM stops the batch as Ctrl-C does (staged outputs removed)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_batch(
            tasks,
            options,
            ledger,
            workers=args.workers,
            scheduler=args.scheduler,
            progress=progress,
            log=log,
        )
    except KeyboardInterrupt:
        print(
            "\nomedicom: interrupted; finished slides are kept, the ones in progress were "
            "removed; run the same command again to finish",
            file=sys.stderr,
        )
        return 130
    report = Path(args.report) if args.report else ledger.with_name(ledger.stem + "-report.csv")
    csv_path, _ = write(report, summary.rows, summary.as_dict())
    if not args.quiet:
        for r in summary.rows:
            if r["state"] != "done":
                print(f"omedicom: failed: {r['destination']}: {r['reason']}", file=sys.stderr)
        print(
            f"{summary.done} of {summary.total} slide(s) done ({summary.skipped} skipped as "
            f"done before), {summary.failed} failed; report: {csv_path}",
            file=sys.stderr,
        )
    return 1 if summary.failed else 0


def _interrupt(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


def run_verify_command(args: argparse.Namespace) -> int:
    from .verify import verify

    web = None
    if args.dicomweb:
        if args.dir:
            raise InputError("give DIR or --dicomweb URL, not both")
        from ..pacs.dicomweb import DicomWeb
        from ..pacs.http import Http

        http = Http(args.dicomweb, credentials=_credentials(args), ca_bundle=args.ca_bundle)
        web = DicomWeb(http)
    elif args.study or args.user or args.token_env or args.password_env or args.ca_bundle:
        raise InputError("--study and the authentication options apply to --dicomweb only")
    verdict = verify(
        Path(args.manifest),
        Path(args.dir) if args.dir else None,
        web=web,
        study_uid=args.study,
    )
    for line in verdict.differences:
        print(f"omedicom: difference: {line}", file=sys.stderr)
    if not args.quiet or not verdict.ok:
        print(verdict.summary(), file=sys.stderr)
    return 0 if verdict.ok else 1
