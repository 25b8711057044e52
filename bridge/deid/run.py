"""De-identify a slide: DICOM files or a folder (instance by instance, Pixel Data copied as it
is), or an OME-TIFF (through DICOM and back, tiles copied by the converter)."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..convert import sniff, staged_directory
from ..errors import InputError, OutputError
from . import audit
from .dataset import Cleaner
from .profile import OPTION_NAMES, Options, source
from .remap import Remapper

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


@dataclass(frozen=True)
class Outcome:
    target: Path
    files: tuple[Path, ...]
    dropped: tuple[str, ...]  # source file names left out (labels, overviews)
    audit: Path

    def summary(self) -> str:
        dropped = (
            f", left out {len(self.dropped)} ({', '.join(self.dropped)})" if self.dropped else ""
        )
        return (
            f"wrote {len(self.files)} de-identified file(s) to {self.target}{dropped}; "
            f"audit record: {self.audit}"
        )


def read_key(path: str | Path | None) -> bytes | None:
    """The secret key: the bytes of ``path`` (at least 16)."""
    if path is None:
        return None
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the key file ({exc.strerror})", path=path) from None
    if len(key.strip()) < 16:
        raise InputError(
            "the key file holds fewer than 16 bytes",
            path=path,
            hint="make one with: head -c 32 /dev/urandom > secret.key (keep it apart)",
        )
    return key.strip()


def deidentify(
    src: str | Path,
    dst: str | Path,
    *,
    options: Options | None = None,
    key: bytes | None = None,
    overwrite: bool = False,
    to: str | None = None,
    convert_options: dict[str, Any] | None = None,
) -> Outcome:
    """De-identify ``src`` into ``dst`` (same format as ``src`` unless ``to``) and write the
    audit record beside ``dst``. ``convert_options`` go to the conversion on the way (the
    ``convert`` options of ``convert --deidentify``)."""
    src, dst = Path(src), Path(dst)
    options = options or Options()
    if options.has("clean-pixel-data") and "keep" in (options.labels, options.overview):
        raise InputError(
            "Clean Pixel Data cannot be claimed while label or overview images are kept",
            hint="drop them (the default), or leave out --option clean-pixel-data",
        )
    remap = Remapper(key) if key else Remapper()
    cleaner = Cleaner(options, remap)
    kind = sniff(src)
    target = to or kind
    audit_file = audit.audit_path(dst)
    if audit_file.exists() and not overwrite:
        raise OutputError("the audit record exists", path=audit_file, hint="pass --overwrite")
    if kind == "dicom" and target == "dicom":
        files, dropped, sources = _dicom(src, dst, cleaner, overwrite)
    else:
        files, dropped, sources = _through_dicom(
            src, dst, kind, target, cleaner, overwrite, convert_options or {}
        )
    record = {
        "tool": f"omedicom {__version__}",
        "profile": source(),
        "options": sorted(options.selected),
        "labels": options.labels,
        "overview": options.overview,
        "key": "given" if key else "random (not kept)",
        "date_shift_days": remap.shift_days if options.dates == "modified" else None,
        "uids": dict(sorted(remap.uids.items())),
        "identifiers": dict(sorted(remap.identifiers.items())),
        "files": sources,
        "dropped": list(dropped),
    }
    audit.write(audit_file, record)
    return Outcome(dst, files, dropped, audit_file)


def _dicom_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    found = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        with open(path, "rb") as fh:
            if fh.read(132)[128:132] == b"DICM":
                found.append(path)
    if not found:
        raise InputError("no DICOM files in the folder", path=src)
    return found


def _kind(ds) -> str:
    image_type = list(ds.get("ImageType", []) or [])
    return str(image_type[2]).upper() if len(image_type) > 2 else ""


def _dicom(
    src: Path, dst: Path, cleaner: Cleaner, overwrite: bool
) -> tuple[tuple[Path, ...], tuple[str, ...], dict[str, str]]:
    import pydicom

    files = _dicom_files(src)
    keep: list[Path] = []
    dropped: list[str] = []
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many kinds on damaged files
            raise InputError(f"not a readable DICOM file ({exc})", path=path) from None
        if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
            raise InputError(
                "not a complete DICOM instance (no SOP Class or SOP Instance UID)",
                path=path,
                hint="de-identify the readable instances only: move this file out of the folder",
            )
        kind = _kind(ds)
        if (kind == "LABEL" and cleaner.options.labels == "drop") or (
            kind == "OVERVIEW" and cleaner.options.overview == "drop"
        ):
            dropped.append(path.name)
            continue
        cleaner.collect(ds)
        keep.append(path)
    written: list[Path] = []
    sources: dict[str, str] = {}
    with staged_directory(dst, overwrite=overwrite) as tmp:
        for path in keep:
            ds, pixels_at = _header(path)
            kind = _kind(ds)
            redacted = kind == "OVERVIEW" and cleaner.options.overview == "redact"
            if redacted or pixels_at is None:  # the pixels are needed, or cannot be streamed
                ds, pixels_at = pydicom.dcmread(path), None
            cleaner.clean(ds)
            if redacted and cleaner.options.label_region is not None:
                from .redact import redact

                redact(ds, cleaner.options.label_region)
            _declare(ds, cleaner, kind, redacted)
            name = f"{ds.SOPInstanceUID}.dcm"
            with open(tmp / name, "wb") as fh:
                ds.save_as(fh, enforce_file_format=True)
                if pixels_at is not None:  # Pixel Data, byte for byte, in pieces
                    _copy_tail(path, pixels_at, fh)
            written.append(dst / name)
            sources[str(path.relative_to(src) if src.is_dir() else path.name)] = name
    return tuple(written), tuple(dropped), sources


def _copy_tail(path: Path, offset: int, out) -> None:
    """Append ``path`` from ``offset`` to its end to the open file ``out``: in the kernel
    (``copy_file_range``, Linux) where it can, else in 1 MiB pieces."""
    out.flush()
    with open(path, "rb") as source:
        remaining = os.fstat(source.fileno()).st_size - offset
        copy = getattr(os, "copy_file_range", None)
        if copy is not None:
            try:
                position = offset
                while remaining > 0:
                    done = copy(source.fileno(), out.fileno(), remaining, position)
                    if done == 0:
                        break
                    position += done
                    remaining -= done
                out.seek(0, os.SEEK_END)
                if remaining == 0:
                    return
                offset = position
            except OSError:  # another file system, an old kernel: copy through Python
                out.seek(0, os.SEEK_END)
                offset = position
        source.seek(offset)
        shutil.copyfileobj(source, out, 1 << 20)


def _header(path: Path):
    """The dataset up to Pixel Data, and where the Pixel Data element starts in the file when
    it can be copied as it is: the last element (then the encapsulated fragments, or the native
    bytes, run to the end of the file), in Explicit VR Little Endian. Else ``(dataset, None)``.
    So a level of any size goes through in constant memory."""
    import pydicom

    with open(path, "rb") as fh:
        ds = pydicom.dcmread(fh, stop_before_pixels=True)
        start = fh.tell()
        head = fh.read(12)
        size = os.fstat(fh.fileno()).st_size
        fh.seek(max(size - 8, 0))
        last = fh.read(8)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is None or syntax.is_implicit_VR or not syntax.is_little_endian or syntax.is_deflated:
        return ds, None
    if head[:4] != b"\xe0\x7f\x10\x00" or head[4:6] not in (b"OB", b"OW"):
        return ds, None
    length = int.from_bytes(head[8:12], "little")
    if length == 0xFFFFFFFF:
        ends = last == b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    else:
        ends = start + 12 + length == size
    return ds, (start if ends else None)


def _declare(ds, cleaner: Cleaner, kind: str, redacted: bool = False) -> None:
    """PS3.15 E.1.1 / PS3.3 C.7.1.1: Patient Identity Removed, De-identification Method (Code
    Sequence, CID 7050), Longitudinal Temporal Information Modified; Burned In Annotation from
    what remains; the file meta's instance UID follows the new SOP Instance UID."""
    from pydicom.dataset import Dataset

    options = cleaner.options
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = ["omedicom PS3.15 E.1 Basic Profile"] + [
        OPTION_NAMES[n][1].removesuffix("Option")[:64] for n in sorted(options.selected)
    ]
    items = []
    for value, scheme, meaning in options.codes():
        item = Dataset()
        item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = {
        "full": "UNMODIFIED",
        "modified": "MODIFIED",
        "removed": "REMOVED",
    }[options.dates]
    if ds.get("SOPClassUID") == WSI:
        burned = kind == "LABEL" or (kind == "OVERVIEW" and not redacted)
        ds.BurnedInAnnotation = "YES" if burned else "NO"
    if "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID


def _through_dicom(
    src: Path,
    dst: Path,
    kind: str,
    target: str,
    cleaner: Cleaner,
    overwrite: bool,
    convert_options: dict[str, Any],
) -> tuple[tuple[Path, ...], tuple[str, ...], dict[str, str]]:
    """An OME-TIFF source (or an OME-TIFF target): convert to DICOM in a private temporary
    folder, de-identify that, convert to the target. Tiles are copied by the converter."""
    from ..convert import convert

    parent = dst.parent if str(dst.parent) else Path(".")
    work = Path(tempfile.mkdtemp(prefix=".deid.", dir=parent))
    try:
        first = work / "src_dicom"
        if kind == "ome-tiff":  # the user's conversion, when there is one, is this one
            convert(src, first, to="dicom", **convert_options)
            convert_options = {}
        else:
            first = src
        clean = work / "clean_dicom"
        files, dropped, sources = _dicom(first, clean, cleaner, False)
        if target == "dicom":
            if dst.exists() and overwrite:
                shutil.rmtree(dst)
            elif dst.exists() and any(dst.iterdir()):
                raise OutputError("the output directory exists and is not empty", path=dst)
            shutil.move(str(clean), str(dst))
            return tuple(dst / f.name for f in files), dropped, sources
        options = {k: v for k, v in convert_options.items() if k != "series"}
        result = convert(clean, dst, to="ome-tiff", overwrite=overwrite, **options)
        return result.files, dropped, {src.name: dst.name}
    finally:
        shutil.rmtree(work, ignore_errors=True)
