"""``convert --deidentify`` and ``pull --deidentify``: the conversion or the retrieval writes
into a private scratch folder next to DST, :func:`.run.deidentify` writes DST from it, and the
scratch folder is removed whatever happens. Nothing identifying reaches DST; the audit record
goes beside DST."""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..convert import sniff, target_of
from .cli import options_from
from .run import Outcome, deidentify, read_key


@contextmanager
def scratch(dst: Path) -> Iterator[Path]:
    """A hidden folder next to ``dst`` (same file system), removed on exit."""
    parent = dst.parent if str(dst.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".deid.", dir=parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def convert_deidentified(args: argparse.Namespace, convert_kwargs: dict[str, Any]) -> Outcome:
    """``convert SRC DST --deidentify``: convert to DICOM in scratch (OME-TIFF source), or
    de-identify first and convert after (DICOM source, OME-TIFF target)."""
    src, dst = Path(args.src), Path(args.dst)
    target = target_of(sniff(src), dst, args.to)
    options, key = options_from(args), read_key(args.key_file)
    return deidentify(
        src,
        dst,
        options=options,
        key=key,
        overwrite=args.overwrite,
        to=target,
        convert_options=convert_kwargs,
    )


def pull_deidentified(args: argparse.Namespace, pull: Callable[[Path], Any]) -> Outcome:
    """``pull ... DST --deidentify``: retrieve the DICOM instances into scratch, then
    de-identify into DST (an OME-TIFF when DST is named like one)."""
    dst = Path(args.dst)
    to = "ome-tiff" if dst.suffix.lower() in (".tif", ".tiff") else "dicom"
    with scratch(dst) as folder:
        pull(folder / "pulled")
        return deidentify(
            folder / "pulled",
            dst,
            options=options_from(args),
            key=read_key(args.key_file),
            overwrite=args.overwrite,
            to=to,
        )
