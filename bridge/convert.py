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
from typing import Any

from .errors import InputError, OutputError, UnsupportedError
from .model import Patient, Slide, Specimen

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
    if path.name.lower().endswith(".companion.ome") or head.lstrip().startswith(b"<?xml"):
        raise UnsupportedError(
            "an OME-XML file (a companion file of a multi-file OME-TIFF set, or bare "
            "metadata), not an image",
            path=path,
            hint="give one of the OME-TIFF files it names, or merge the set into one file "
            "with bfconvert",
        )
    raise InputError(
        "not a TIFF or DICOM file (unrecognised first bytes)",
        path=path,
        hint="omedicom reads OME-TIFF files and DICOM whole-slide images",
    )


def open_slide(
    path: str | os.PathLike[str], *, series: str | None = None, timepoint: int | None = None
) -> Slide:
    """Read any supported source (OME-TIFF file, DICOM file or folder) into the slide model."""
    path = Path(path)
    kind = sniff(path)
    if kind == "ome-tiff":
        from .ometiff import reader

        if not _has_ome_xml(path):  # a scanner's TIFF dialect (OME-TIFF stays first choice)
            from .wsitiff import reader as wsi_reader

            return wsi_reader.read(path)
        return reader.read(path, timepoint=timepoint)
    from .dicom import reader as dicom_reader

    return dicom_reader.read(path, series=series)


def _has_ome_xml(path: Path) -> bool:
    """Whether the first IFD's ImageDescription holds OME-XML (OME-TIFF specification). A file
    tifffile cannot open goes to the OME-TIFF reader, which says what is wrong with it."""
    import tifffile

    from .ometiff.reader import _TiffLog

    with _TiffLog() as log:  # what tifffile logs is the OME-TIFF reader's to report
        try:
            with tifffile.TiffFile(path) as tf:
                if not len(tf.pages):
                    return True
                text = tf.pages.first.description[:4096]
        except Exception:
            return True
    return bool(log.messages) or "<OME" in text or ":OME" in text


@dataclass(frozen=True)
class Result:
    target: Path
    files: tuple[Path, ...]
    frames: int
    warnings: tuple[str, ...]
    #: the format actually written: ``"dicom"`` or ``"ome-tiff"``
    format: str = "dicom"

    def summary(self) -> str:
        """What was written, in words, decided by the format written (not the name)."""
        if self.format == "ome-tiff":
            return f"wrote an OME-TIFF with {self.frames} tiles, to {self.target}"
        return (
            f"wrote {len(self.files)} DICOM instance(s), {self.frames} frames, "
            f"into the folder {self.target}"
        )


#: The suffix :func:`tempfile.mkstemp` adds to a staging prefix: 8 random characters, then ours.
_STAGE_SUFFIX = ".partial"
_STAGE_EXTRA = 1 + 8 + len(_STAGE_SUFFIX)  # the prefix's own dot and name come on top


def _name_max(folder: Path) -> int:
    """The longest file name, in bytes, the file system under ``folder`` takes (POSIX
    ``NAME_MAX``, 255 on every common Linux and macOS file system)."""
    for candidate in (folder, *folder.parents):
        try:
            return int(os.pathconf(candidate, "PC_NAME_MAX"))
        except (OSError, ValueError):
            continue
    return 255


def _parent(dst: Path) -> Path:
    return dst.parent if str(dst.parent) else Path(".")


def check_output_path(dst: Path) -> None:
    """Refuse an output path the file system cannot hold before anything is written: a name
    longer than ``NAME_MAX`` bytes (POSIX, 255), or a parent that is a regular file."""
    limit = _name_max(_parent(dst))
    for part in dst.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise OutputError(
                f"the name {_short(part)!r} is {size} bytes long; file names on this file "
                f"system can be at most {limit} bytes",
                path=_short(str(dst)),
                hint="choose a shorter output name",
            )
    for ancestor in reversed(dst.parents):
        try:
            if ancestor.exists() and not ancestor.is_dir():
                raise OutputError(
                    f"{ancestor} is a file, not a folder",
                    path=dst,
                    hint="choose an output inside a folder, or move that file away",
                )
        except OSError as exc:
            raise OutputError(f"cannot reach the output ({exc.strerror})", path=dst) from None


def _short(text: str, keep: int = 40) -> str:
    """A long name cut for a message (its length is given separately)."""
    return text if len(text) <= 2 * keep else f"{text[:keep]}…{text[-keep:]}"


def _stage_prefix(dst: Path) -> str:
    """The hidden staging name's prefix, ``.NAME.``, with NAME cut (by bytes) so that the
    staging name fits in ``NAME_MAX`` whenever ``dst``'s own name does."""
    room = _name_max(_parent(dst)) - _STAGE_EXTRA - 2
    name = os.fsencode(dst.name)[: max(room, 1)]
    return f".{os.fsdecode(name)}."


@contextmanager
def staged_directory(dst: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temporary directory next to ``dst`` that becomes ``dst`` only on success."""
    check_output_path(dst)
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
        tmp = Path(tempfile.mkdtemp(prefix=_stage_prefix(dst), suffix=_STAGE_SUFFIX, dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot create the output ({exc.strerror})", path=dst) from None
    try:
        yield tmp
        _usual_mode(tmp, 0o777)
        if dst.exists():
            shutil.rmtree(dst)
        os.rename(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def staged_file(dst: Path, *, overwrite: bool) -> Iterator[Path]:
    """A temporary file next to ``dst`` that becomes ``dst`` only on success."""
    check_output_path(dst)
    if dst.exists() and not overwrite:
        raise OutputError(
            "the output file exists", path=dst, hint="choose a new name, or pass --overwrite"
        )
    if dst.is_dir():
        raise OutputError(
            "the output is a directory; give a file name such as out.ome.tiff", path=dst
        )
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=_stage_prefix(dst), suffix=_STAGE_SUFFIX, dir=parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError(f"cannot create the output ({exc.strerror})", path=dst) from None
    tmp = Path(name)
    try:
        yield tmp
        _usual_mode(tmp, 0o666)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _check_text_name(dst: Path) -> None:
    """An OME-TIFF names itself in its OME-XML (``TiffData/UUID/@FileName``), and XML holds
    only Unicode text: a file name whose bytes are not UTF-8 (decoded by Python into lone
    surrogates) cannot be recorded, so it is refused before anything is written."""
    try:
        dst.name.encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(dst).decode("utf-8", "backslashreplace")
        raise OutputError(
            "the file name is not valid UTF-8 text, and an OME-TIFF records its own name in its "
            "OME-XML (TiffData UUID FileName), which holds only text",
            path=shown,
            hint="choose a name made of letters, digits and punctuation (UTF-8)",
        ) from None


def _usual_mode(path: Path, mode: int) -> None:
    """Give a staged output the permissions a plain ``open``/``mkdir`` would have (mkstemp and
    mkdtemp make them private)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


#: File name suffixes that say "a TIFF file".
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")


def target_of(source_kind: str, dst: Path, to: str | None) -> str:
    """The target format: ``--to``, else the other format than the source's.

    Without ``--to``, an OME-TIFF source with a target named like a TIFF file is refused: the
    user expects an OME-TIFF, and omedicom would write a DICOM folder under that name."""
    if to:
        return to
    if source_kind == "ome-tiff" and dst.suffix.lower() in TIFF_SUFFIXES:
        raise InputError(
            f"the source is an OME-TIFF, so the target is DICOM (a folder), but the target "
            f"name ends in {dst.suffix}",
            path=dst,
            hint="OME-TIFF to OME-TIFF is not a conversion omedicom does; to get DICOM give "
            "a folder name (e.g. out_dicom/) or pass --to dicom",
        )
    return "dicom" if source_kind == "ome-tiff" else "ome-tiff"


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    to: str | None = None,
    series: str | None = None,
    slide_id: str | None = None,
    pixel_size_um: tuple[float, float] | None = None,
    patient: Patient | None = None,
    overwrite: bool = False,
    progress: Callable[[int, str], Callable[[int], None]] | None = None,
    timepoint: int | None = None,
    all_timepoints: bool = False,
    codec: str | None = None,
    lossy: int | None = None,
    annotations: str | os.PathLike[str] | None = None,
    specimen: str | os.PathLike[str] | None = None,
    pyramid: str = "auto",
    resample: str | None = None,
) -> Result:
    """Convert ``src`` to ``dst``. The direction comes from the source unless ``to`` says.

    ``progress(total, label)`` returns a callable that is called with each unit of work done.
    ``codec``/``lossy`` choose how tiles the target cannot hold are re-encoded (DICOM).
    ``pyramid`` (auto, keep, none) and ``resample`` say how missing levels are made
    (``bridge.pyramid``).
    """
    src, dst = Path(src), Path(dst)
    source_kind = sniff(src)
    named_tiff = source_kind == "ome-tiff" and dst.suffix.lower() in TIFF_SUFFIXES
    if to is None and named_tiff and not _has_ome_xml(src):
        to = "ome-tiff"  # a scanner's TIFF (SVS, NDPI ...) named to become an OME-TIFF
    target = target_of(source_kind, dst, to)
    if target not in ("dicom", "ome-tiff"):
        raise UnsupportedError(f"unknown target format {target!r}", hint="use dicom or ome-tiff")
    if codec == "jpeg" and lossy is None:
        raise InputError(
            "JPEG is lossy: --codec jpeg needs --lossy QUALITY",
            hint="for exact pixels use --codec jpegls, jpeg2000, htj2k or native",
        )
    options = _Options(
        slide_id, pixel_size_um, patient, codec, lossy, Path(annotations) if annotations else None
    )
    if specimen is not None:  # read before anything is opened or written
        from .specimen import load

        options = dataclasses.replace(options, specimen=load(specimen))
    options = dataclasses.replace(options, pyramid=(pyramid, resample, target))
    if all_timepoints:
        if target != "dicom":
            raise UnsupportedError("--all-timepoints writes DICOM series; use --to dicom")
        return _all_timepoints(src, dst, options, overwrite, progress)
    slide = _open(src, series, timepoint, options)
    try:
        if target == "dicom":
            with staged_directory(dst, overwrite=overwrite) as tmp:
                written, notes = _write_dicom(slide, src, tmp, options, progress)
            files = tuple(dst / name for name in written[0])
            return Result(dst, files, written[1], slide.warnings + notes)
        return _to_ome_tiff(slide, src, dst, overwrite, progress)
    finally:
        if slide.close:
            slide.close()


@dataclass(frozen=True)
class _Options:
    slide_id: str | None
    pixel_size_um: tuple[float, float] | None
    patient: Patient | None
    codec: str | None
    lossy: int | None
    annotations: Path | None = None
    specimen: Specimen | None = None  # --specimen: stains and description
    pyramid: tuple[str, str | None, str] = ("keep", None, "dicom")  # mode, resample, target


def _open(src: Path, series: str | None, timepoint: int | None, options: _Options) -> Slide:
    slide = open_slide(src, series=series, timepoint=timepoint)
    if options.slide_id:
        slide = dataclasses.replace(slide, slide_id=options.slide_id)
    if options.patient is not None and options.patient != Patient():
        slide = dataclasses.replace(slide, patient=options.patient)
    if options.annotations is not None:
        slide = _add_geojson(slide, options.annotations)
    if options.specimen is not None:
        given = options.specimen  # its stains and description replace the source's
        base = slide.specimen or Specimen()
        merged = dataclasses.replace(
            base,
            stains=given.stains or base.stains,
            description=given.description or base.description,
        )
        slide = dataclasses.replace(slide, specimen=merged)
    return _pyramid(slide, options)


def _pyramid(slide: Slide, options: _Options) -> Slide:
    """Complete (or cut) the pyramids as ``--pyramid`` says (``bridge.pyramid``)."""
    from . import pyramid

    mode, resample, target = options.pyramid
    try:
        return pyramid.apply(
            slide,
            pyramid.Mode(mode),
            resample=pyramid.Resample(resample) if resample else pyramid.DEFAULT_RESAMPLE,
            quality=options.lossy,
            # the DICOM writer re-encodes every level for --codec/--lossy: store raw samples
            raw=target == "dicom" and (options.codec is not None or options.lossy is not None),
        )
    except BaseException:
        if slide.close:
            slide.close()
        raise


def _add_geojson(slide: Slide, path: Path) -> Slide:
    """Add a QuPath GeoJSON file's annotations to the slide's first pyramid."""
    from .annotations import read_geojson

    try:
        groups, notes = read_geojson(path)
        image = next(slide.volumes(), None)
        if image is None:
            raise InputError("the slide has no pyramid to add annotations to", path=path)
    except BaseException:
        if slide.close:
            slide.close()
        raise
    groups = tuple(dataclasses.replace(g, image_index=image.source_index) for g in groups)
    return dataclasses.replace(
        slide,
        annotations=slide.annotations + groups,
        warnings=slide.warnings + tuple(notes),
    )


def _write_dicom(
    slide: Slide, src: Path, out: Path, options: _Options, progress: Any
) -> tuple[tuple[tuple[str, ...], int], tuple[str, ...]]:
    from .codecs.transcode import Target
    from .dicom.writer import SlideWriter

    writer = SlideWriter(
        slide,
        pixel_size_um=options.pixel_size_um,
        target=Target(options.codec) if options.codec else None,
        quality=options.lossy,
    )
    writer.check()
    tick = progress(writer.frame_count(), f"{src.name} → DICOM") if progress else None
    writer.progress = tick
    try:
        written = writer.write(out)
    except OSError as exc:
        raise OutputError(f"writing failed ({exc.strerror or exc}); nothing was kept") from None
    if tick is not None and hasattr(tick, "close"):
        tick.close()
    names = tuple(w.path.name for w in written)
    return (names, sum(w.frames for w in written)), tuple(writer.notes)


def _all_timepoints(
    src: Path, dst: Path, options: _Options, overwrite: bool, progress: Any
) -> Result:
    """One DICOM series per time point, in DST/t0, DST/t1, ... (new Series UIDs each)."""
    probe = _open(src, None, None, options)
    try:
        count = max((i.time_points for i in probe.images), default=1)
    finally:
        if probe.close:
            probe.close()
    files: list[Path] = []
    frames = 0
    notes: tuple[str, ...] = ()
    with staged_directory(dst, overwrite=overwrite) as tmp:
        for t in range(count):
            slide = _open(src, None, t, options)
            try:
                (tmp / f"t{t}").mkdir()
                (names, n), notes = _write_dicom(slide, src, tmp / f"t{t}", options, progress)
            finally:
                if slide.close:
                    slide.close()
            files.extend(dst / f"t{t}" / name for name in names)
            frames += n
    return Result(dst, tuple(files), frames, notes)


def write_ome_tiff(
    slide: Slide, dst: Path, *, label: str, overwrite: bool = False, progress: Any = None
) -> Result:
    """Write a slide model (from any reader, e.g. a DICOMweb series) as one OME-TIFF."""
    return _to_ome_tiff(slide, Path(label), Path(dst), overwrite, progress)


def _to_ome_tiff(slide, src, dst, overwrite, progress) -> Result:
    from .ometiff.writer import OmeTiffWriter

    _check_text_name(dst)
    writer = OmeTiffWriter(slide)
    total = writer.frame_count()
    tick = progress(total, f"{src.name} → OME-TIFF") if progress else None
    writer.progress = tick
    with staged_file(dst, overwrite=overwrite) as tmp:
        try:
            writer.write(tmp, name=dst.name)
        except OSError as exc:
            raise OutputError(
                f"writing failed ({exc.strerror or exc}); nothing was kept", path=dst
            ) from None
    if tick is not None and hasattr(tick, "close"):
        tick.close()
    return Result(dst, (dst,), total, slide.warnings + tuple(writer.notes), "ome-tiff")
