"""The ``omedicom`` command: convert, info (check, push and pull arrive in later versions)."""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import logging
import os
import select
import sys
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import BridgeError

DESCRIPTION = """\
omedicom moves whole-slide images between research OME-TIFF and clinical DICOM
(VL Whole Slide Microscopy), in both directions. Compressed tiles are copied byte for byte
where the target can hold them (JPEG, JPEG 2000, uncompressed); others (LZW, Deflate, Zstd,
strips, JPEG-LS into TIFF, ...) are re-encoded losslessly, and the conversion says so.

examples:
  omedicom info slide.ome.tiff                      what is in a slide
  omedicom convert slide.ome.tiff slide_dicom/      OME-TIFF -> DICOM (a folder)
  omedicom convert slide_dicom/ slide.ome.tiff      DICOM -> OME-TIFF (a file)
  omedicom convert slide.ome.tiff out/ --slide-id S-2024-001 --metadata patient.json
  omedicom convert gray.ome.tif out/ --pixel-size 0.5   a source without a pixel size
  omedicom check slide_dicom/ --against slide.ome.tiff  is the conversion right?

'omedicom COMMAND --help' explains each command.
"""

CONVERT_HELP = """\
Convert a slide, in either direction:

  OME-TIFF -> DICOM   SRC is an OME-TIFF; DST a directory that receives one DICOM file per
                      pyramid level and per associated image (label, macro, thumbnail).
  DICOM -> OME-TIFF   SRC is a DICOM file or a folder of one slide's instances; DST a file
                      (BigTIFF, pyramid levels in SubIFDs). With several slides in the folder,
                      pick one with --series.

The direction comes from SRC; --to names it explicitly. DST must not exist (a directory may
be empty), or pass --overwrite. Output is written under a hidden temporary name next to DST
and renamed into place when complete, so a failed run leaves nothing behind. Compressed tiles
are copied as they are; what the target cannot hold is re-encoded losslessly, and the
conversion says so.

Patient and study identity: absent values stay empty and UIDs are generated. Give them with
--metadata (a JSON object of DICOM keywords, e.g.
  {"PatientName": "Doe^Jane", "PatientID": "123", "AccessionNumber": "A1",
   "StudyInstanceUID": "1.2.3", "ContainerIdentifier": "S-1"})
or with the options below, which win over the file.

exit codes: 0 done, 1 failure, 2 unreadable or inconsistent input, 3 unsupported input,
4 output cannot be written.
"""


def _pixel_size(text: str) -> tuple[float, float]:
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (µm per pixel)") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise argparse.ArgumentTypeError("give one positive size, or X,Y in µm per pixel")
    return parts[0], parts[1]


def build_parser(*, extensions: bool = True) -> argparse.ArgumentParser:
    """The ``omedicom`` parser; ``extensions=False`` leaves out the commands of
    :data:`EXTENSIONS` (their modules are not imported: ``convert`` and ``info`` start faster)."""
    parser = argparse.ArgumentParser(
        prog="omedicom",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"omedicom {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of unexpected errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    conv = sub.add_parser(
        "convert",
        help="convert a slide, OME-TIFF -> DICOM WSI or DICOM WSI -> OME-TIFF",
        description=CONVERT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    conv.add_argument("src", metavar="SRC", help="source slide: OME-TIFF, DICOM file or folder")
    conv.add_argument(
        "dst", metavar="DST", help="target: a directory (DICOM) or a file name (OME-TIFF)"
    )
    conv.add_argument(
        "--to",
        choices=["dicom", "ome-tiff"],
        help="target format (default: the other format than SRC's)",
    )
    conv.add_argument("--series", metavar="UID", help="the DICOM series to convert")
    conv.add_argument(
        "--annotations",
        metavar="FILE.geojson",
        help="add the annotations of a QuPath GeoJSON export to the output",
    )
    conv.add_argument(
        "--codec",
        choices=["jpegls", "jpeg2000", "htj2k", "native", "jpeg"],
        help="how tiles DICOM cannot hold as they are (Deflate, LZW, Zstd, planar, palette) "
        "are re-encoded; default: lossless JPEG-LS for 16-bit, lossless JPEG 2000 for 8-bit "
        "(OpenSlide reads it). Given explicitly, every level is re-encoded",
    )
    conv.add_argument(
        "--lossy",
        metavar="QUALITY",
        type=int,
        help="re-encode lossily at this quality (JPEG 1-100; JPEG 2000/HTJ2K: compression "
        "ratio); never the default",
    )
    conv.add_argument(
        "--pyramid",
        choices=["auto", "keep", "none"],
        default="auto",
        help="auto (default): add the missing lower levels until the smallest fits in one tile; "
        "keep: the source's levels only; none: level 0 only",
    )
    conv.add_argument(
        "--resample",
        choices=["box", "binomial", "lanczos"],
        help="the low-pass filter of new levels: box (2×2 mean), binomial (1,3,3,1; default) "
        "or lanczos (Lanczos-3)",
    )
    time = conv.add_mutually_exclusive_group()
    time.add_argument(
        "--timepoint",
        metavar="N",
        type=int,
        help="convert time point N (0-based) of a time series; DICOM WSI has no time axis",
    )
    time.add_argument(
        "--all-timepoints",
        action="store_true",
        help="write one DICOM series per time point, into DST/t0, DST/t1, ...",
    )
    conv.add_argument(
        "--slide-id",
        metavar="ID",
        help="slide (container) identifier; default: ContainerIdentifier from --metadata, "
        "else the file name without extension",
    )
    conv.add_argument(
        "--pixel-size",
        metavar="UM[,UM]",
        type=_pixel_size,
        help="level-0 pixel size in µm (x[,y]); overrides the source, required when the "
        "source has none",
    )
    conv.add_argument(
        "--metadata", metavar="FILE.json", help="patient/study identity as DICOM keywords"
    )
    conv.add_argument(
        "--specimen",
        metavar="FILE.json",
        help='stains and specimen description, e.g. {"stains": ["hematoxylin", "eosin"]}',
    )
    conv.add_argument("--patient-name", metavar="NAME", help="DICOM PN, e.g. Doe^Jane")
    conv.add_argument("--patient-id", metavar="ID")
    conv.add_argument("--study-uid", metavar="UID", help="Study Instance UID to join")
    conv.add_argument("--accession-number", metavar="NUMBER")
    conv.add_argument(
        "--overwrite", action="store_true", help="replace DST if it exists and is not empty"
    )
    conv.add_argument(
        "--report",
        metavar="REPORT.html",
        help="write an HTML page: source and output side by side with previews, what was "
        "copied verbatim and what re-encoded and why, and the check of the output",
    )
    verbosity = conv.add_mutually_exclusive_group()
    verbosity.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    verbosity.add_argument(
        "--progress",
        action="store_true",
        help="draw the progress bar even when stderr is not a terminal",
    )
    from .deid.cli import add_deidentify  # issue 14 (imports only the option names)

    add_deidentify(conv)

    info = sub.add_parser(
        "info",
        help="describe a slide: images, levels, tile grid, codec, pixel size, channels",
        description="Describe a slide without converting it.",
    )
    info.add_argument("path", metavar="PATH", help="an OME-TIFF, a DICOM file or folder")
    info.add_argument("--series", metavar="UID", help="the DICOM series to describe")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    conv.set_defaults(func=_convert)
    info.set_defaults(func=_info)
    if extensions:
        for name in EXTENSIONS:
            importlib.import_module(name).add_parser(sub)
    return parser


#: Modules that add subcommands: each has ``add_parser(subparsers)``, which creates its parser
#: and sets ``func`` (called with the parsed arguments, returns the exit code).
EXTENSIONS: list[str] = [
    "bridge.pacs.cli",
    "conformance.cli",
    "bridge.annotations.cli",
    "bridge.deid.cli",
    "bridge.preview.cli",
    "bridge.batch.cli",
]

#: Commands defined in this module: naming one does not import the :data:`EXTENSIONS`.
BUILTIN_COMMANDS = ("convert", "info")


def _needs_extensions(argv: Sequence[str]) -> bool:
    """Whether the command line may name an extension's command, or lists all commands
    (``--help``, no command, a mistyped one): the first argument that is not an option is the
    command (the top-level options take no values)."""
    for arg in argv:
        if not arg.startswith("-"):
            return arg not in BUILTIN_COMMANDS
    return True


def _convert(args: argparse.Namespace) -> int:
    from .convert import convert
    from .metadata import load
    from .progress import Progress

    patient, meta_slide_id = load(
        args.metadata,
        {
            "PatientName": args.patient_name,
            "PatientID": args.patient_id,
            "StudyInstanceUID": args.study_uid,
            "AccessionNumber": args.accession_number,
        },
    )

    def progress(total: int, label: str) -> Progress:
        enabled = False if args.quiet else (True if args.progress else None)
        return Progress(total, label, enabled=enabled)

    deidentify = getattr(args, "deidentify", False)
    if args.report:
        from .convert import check_output_path
        from .errors import InputError, OutputError

        if deidentify:
            raise InputError(
                "--report is not available with --deidentify",
                hint="de-identify first, then run 'omedicom check OUT --html REPORT.html'",
            )
        check_output_path(Path(args.report))
        if Path(args.report).exists() and not args.overwrite:
            raise OutputError("the report exists", path=args.report, hint="pass --overwrite")
    kwargs = dict(
        series=args.series,
        slide_id=args.slide_id or meta_slide_id,
        pixel_size_um=args.pixel_size,
        patient=patient,
        progress=progress,
        timepoint=args.timepoint,
        all_timepoints=args.all_timepoints,
        codec=args.codec,
        lossy=args.lossy,
        annotations=args.annotations,
        specimen=args.specimen,
        pyramid=args.pyramid,
        resample=args.resample,
    )
    if deidentify:  # issue 14 (bridge/deid/hooks.py)
        from .deid.hooks import convert_deidentified

        outcome = convert_deidentified(args, kwargs)
        if not args.quiet:
            print(outcome.summary(), file=sys.stderr)
        return 0
    result = convert(args.src, args.dst, to=args.to, overwrite=args.overwrite, **kwargs)
    if not args.quiet:
        for warning in result.warnings:
            print(f"omedicom: warning: {warning}", file=sys.stderr)
        print(result.summary(), file=sys.stderr)
    if args.report:
        from conformance.htmlreport import write_convert_report

        write_convert_report(args.src, result, args.report)
    return 0


def _info(args: argparse.Namespace) -> int:
    from .errors import SeveralSlidesError
    from .info import render_all

    try:
        data = _describe(args.path, args.series)
    except SeveralSlidesError as several:  # a folder of several slides: describe each
        slides = [{"series_uid": uid, **_describe(args.path, uid)} for uid in several.series]
        data = {"source": str(args.path), "slides": slides}
    print(json.dumps(data, indent=2) if args.json else render_all(data))
    return 0


def _describe(path: str, series: str | None) -> dict:
    from .convert import open_slide
    from .info import describe

    slide = open_slide(path, series=series)
    try:
        return describe(slide)
    finally:
        if slide.close:
            slide.close()


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line, parsed (``--help`` and usage errors exit here)."""
    return build_parser(extensions=_needs_extensions(argv)).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    return run(parse(argv))


#: The exit status of a command whose reader went away, as a shell reports one killed by
#: SIGPIPE (128 + 13): what ``cat`` gives in ``cat big | head -1``.
EXIT_BROKEN_PIPE = 141


def _stdout_closed() -> bool:
    """Whether nobody reads stdout any more: a pipe whose reading end is closed reports
    POLLERR to its writer (poll(2)). A BrokenPipeError from elsewhere (a socket) is not this."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the text still buffered for a reader that went away
    is dropped quietly instead of failing again when the interpreter flushes it."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def flush_stdout() -> bool:
    """Flush stdout; ``False`` (and stdout silenced) when its reader has gone away."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return False
    except (OSError, ValueError):
        return True  # stdout closed by the command itself, or not a stream: nothing to report
    return True


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """A library's warning (pydicom, tifffile, ...) as one of ours: its text only, once, with
    no source path or code line (:func:`warnings.showwarning`'s signature)."""
    text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
    if text in _shown:
        return
    _shown.add(text)
    with contextlib.suppress(OSError, ValueError):
        print(f"omedicom: warning: {text}", file=sys.stderr)


_shown: set[str] = set()


def run(args: argparse.Namespace) -> int:
    """Run a parsed command: errors become one message and an exit code; warnings from the
    libraries become ``omedicom: warning:`` lines; a reader of stdout that went away (``|
    head``) stops the command quietly with :data:`EXIT_BROKEN_PIPE`, as ``cat`` does (output
    that was all produced and only fails to flush at exit keeps the command's code)."""
    # numpy's OpenBLAS starts a thread per core at import and nothing here does linear
    # algebra: one thread saves ~45 ms of CPU on start-up and leaves the cores to the copy
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    _shown.clear()
    # a library's log records with no handler of their own (tifffile's "<TiffTag.fromfile>
    # raised ...") would reach stderr raw through logging's last resort: they become ours too
    last_resort = logging.lastResort
    logging.lastResort = _LogAsWarning(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _run(args)
    finally:
        logging.lastResort = last_resort


class _LogAsWarning(logging.Handler):
    """A log record as an ``omedicom: warning:`` line (see :func:`_show_warning`)."""

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            _show_warning(record.getMessage(), UserWarning, record.pathname, record.lineno)


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.func(args))
    except BrokenPipeError:
        if not _stdout_closed():
            return _internal_error(args)
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except BridgeError as exc:
        print(f"omedicom: error: {exc.describe()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("omedicom: interrupted; nothing was kept", file=sys.stderr)
        return 130
    except Exception:  # a bug: say so plainly, keep the traceback for --debug
        return _internal_error(args)


def _internal_error(args: argparse.Namespace) -> int:
    """Report the exception being handled as a bug (exit 1)."""
    exc = sys.exc_info()[1]
    if args.debug:
        traceback.print_exc()
    print(
        f"omedicom: internal error: {type(exc).__name__}: {exc}\n"
        "  hint: this is a bug; please report it with the output of --debug",
        file=sys.stderr,
    )
    return 1


#: Optional imports of pydicom that ``convert`` and ``info`` never use.
_UNUSED_BY_PYDICOM = ("requests", "PIL", "jpeg_ls")


def _import_pydicom_lean() -> None:
    """Import pydicom while ``requests`` and Pillow look absent.

    pydicom imports ``requests`` (and with it urllib3, charset_normalizer, idna) only for its
    test-data downloader, which falls back to urllib without it (pydicom/data/download.py,
    ``HAVE_REQUESTS``), Pillow only for its Pillow pixel decoders and ICC colour management
    (``HAVE_PIL``), and pyjpegls (``jpeg_ls``) only for its JPEG-LS plugin. ``convert`` and
    ``info`` never download and never decode through pydicom (imagecodecs does): this saves
    ~60 ms of every run. All stay importable for whoever asks for them later; only pydicom,
    in this process, goes without.
    """
    if "pydicom" in sys.modules or any(m in sys.modules for m in _UNUSED_BY_PYDICOM):
        return
    for name in _UNUSED_BY_PYDICOM:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import pydicom  # noqa: F401
    finally:
        for name in _UNUSED_BY_PYDICOM:
            del sys.modules[name]


def _reads_tiff(args: argparse.Namespace) -> bool:
    """Whether the command's input is a TIFF file (a DICOM input is a folder or a DICOM file)."""
    from .convert import TIFF_MAGIC

    source = getattr(args, "src", None) or getattr(args, "path", None)
    try:
        with open(source, "rb") as fh:
            return fh.read(4) in TIFF_MAGIC
    except (OSError, TypeError):
        return False  # a folder, or nothing there: the command says what is wrong


def console() -> None:
    """The ``omedicom`` command.

    ``convert`` and ``info`` (the commands of this module) start without what they do not use:
    from a TIFF, without pydicom at all (the writer encodes its headers itself, see
    ``dicom/header.py``); from DICOM, with pydicom but without its optional imports. They end
    without the interpreter's teardown: once the output is flushed, freeing every module's
    objects one by one (~50 ms, numpy and pydicom) serves no one. They leave no threads or
    temporary files behind (the staging folder is renamed or removed before ``run`` returns),
    so nothing is skipped but the freeing. Other commands (network, threads of their own) end
    normally.
    """
    argv = sys.argv[1:]
    try:
        args = parse(argv)
    except SystemExit as done:  # --help, --version, a usage error: printed already
        if not flush_stdout():
            os._exit(EXIT_BROKEN_PIPE)
        raise done from None
    lean = not _needs_extensions(argv)
    if lean:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads (see run)
        if not _reads_tiff(args):
            _import_pydicom_lean()
        gc.freeze()  # the modules' objects are never garbage: keep collections off them
    code = run(args)
    if lean:
        for stream in (sys.stdout, sys.stderr):
            # a reader that went away (a closed pipe) has nothing more to be told
            with contextlib.suppress(OSError):
                stream.flush()
        os._exit(code)
    # flushed before the interpreter's own flush, which would complain of a reader that went
    # away; the command finished, so its exit code stands (as in the lean exit above)
    flush_stdout()
    sys.exit(code)


if __name__ == "__main__":
    console()
