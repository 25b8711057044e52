"""The one pipeline: open any source -> slide model -> write any target.

Outputs are written under a temporary name next to the destination and renamed into place
only when complete (ARCHITECTURE.md principle 4): a failed or interrupted conversion leaves
nothing behind.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, OutputError, UnsupportedError
from .model import Patient, Slide

TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def sniff(path: Path) -> str:
    """The format of ``path``: ``"ome-tiff"``, ``"dicom"`` (a file or folder)."""
    if path.is_dir():
        return "dicom"
    if not path.exists():
        raise InputError("no such file or directory", path=path)
    with open(path, "rb") as fh:
        head = fh.read(132)
    if head[:4] in TIFF_MAGIC:
        return "ome-tiff"
    if head[128:132] == b"DICM":
        return "dicom"
    if not head:
        raise InputError("the file is empty", path=path)
    raise InputError(
        "not a TIFF or DICOM file (unrecognised first bytes)",
        path=path,
        hint="omedicom reads OME-TIFF files and DICOM whole-slide images",
    )


def open_slide(path: str | os.PathLike[str]) -> Slide:
    """Read any supported source into the slide model."""
    path = Path(path)
    kind = sniff(path)
    if kind == "ome-tiff":
        from .ometiff import reader

        return reader.read(path)
    raise UnsupportedError(
        "reading DICOM whole-slide images is not supported yet",
        path=path,
        hint="this version converts OME-TIFF to DICOM",
    )


@dataclass(frozen=True)
class Result:
    target: Path
    files: tuple[Path, ...]
    frames: int
    warnings: tuple[str, ...]


@contextmanager
def staged_directory(dst: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temporary directory next to ``dst`` that becomes ``dst`` only on success."""
    if dst.exists():
        if not dst.is_dir():
            raise OutputError("exists and is not a directory", path=dst)
        if any(dst.iterdir()) and not overwrite:
            raise OutputError(
                "the output directory exists and is not empty",
                path=dst,
                hint="choose a new directory, or pass --overwrite to replace it",
            )
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot create the output ({exc.strerror})", path=dst) from None
    try:
        yield tmp
        if dst.exists():
            shutil.rmtree(dst)
        os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    to: str | None = None,
    slide_id: str | None = None,
    pixel_size_um: tuple[float, float] | None = None,
    patient: Patient | None = None,
    overwrite: bool = False,
    progress: Callable[[int, str], Callable[[int], None]] | None = None,
) -> Result:
    """Convert ``src`` to ``dst``. The direction comes from the source unless ``to`` says.

    ``progress(total, label)`` returns a callable that is called with each unit of work done.
    """
    src, dst = Path(src), Path(dst)
    source_kind = sniff(src)
    target = to or ("dicom" if source_kind == "ome-tiff" else "ome-tiff")
    if target != "dicom":
        raise UnsupportedError(
            f"conversion to {target} is not supported yet", hint="use --to dicom"
        )
    slide = open_slide(src)
    try:
        if slide_id:
            slide = dataclasses.replace(slide, slide_id=slide_id)
        if patient is not None:
            slide = dataclasses.replace(slide, patient=patient)
        from .dicom.writer import SlideWriter

        writer = SlideWriter(slide, pixel_size_um=pixel_size_um)
        writer.check()
        total = writer.frame_count()
        tick = progress(total, f"{src.name} → DICOM") if progress else None
        writer.progress = tick
        with staged_directory(dst, overwrite=overwrite) as tmp:
            try:
                written = writer.write(tmp)
            except OSError as exc:
                raise OutputError(
                    f"writing failed ({exc.strerror or exc}); nothing was kept", path=dst
                ) from None
        if tick is not None and hasattr(tick, "close"):
            tick.close()
    finally:
        if slide.close:
            slide.close()
    files = tuple(dst / w.path.name for w in written)
    return Result(dst, files, sum(w.frames for w in written), slide.warnings)
