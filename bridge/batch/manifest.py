"""``<DST>.sha256.json``: the SHA-256 of every frame's encoded bytes, of every output file and
of the source, written beside each conversion's output.

A frame is what DICOM stores for it: the bytes of its fragment(s) of encapsulated Pixel Data
(PS3.5 A.4, the trailing pad byte included, as WADO-RS returns them, PS3.18 8.7.3.3.2), or its
slice of native Pixel Data. In an OME-TIFF output a frame is one tile (or strip) as stored.

``verbatim`` says that an output file's frames are the source's tiles, in order, unchanged.
For uncompressed and JPEG 2000 data the frame hashes then equal the source tiles' hashes. A
JPEG tile in a TIFF file leaves its tables in the JPEGTables tag (TIFF Technical Note 2), while
a DICOM frame must be a whole JPEG stream (PS3.5 8.2.1), so the converter puts the tables back;
for JPEG the manifest therefore also lists ``scans``, the hashes of each frame's entropy-coded
data (the compressed pixels), which equal those of the source tiles.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

FORMAT = "omedicom-sha256-manifest/1"
SUFFIX = ".sha256.json"
_CHUNK = 1 << 20


def manifest_path(dst: Path) -> Path:
    """Where the manifest of ``dst`` (a folder or a file) goes: ``<DST>.sha256.json``."""
    dst = Path(os.path.normpath(dst))
    return dst.with_name(dst.name + SUFFIX)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def source_sha256(path: Path) -> str:
    """The SHA-256 of a source file; of a folder (a DICOM series), the SHA-256 of its sorted
    ``relative-name  file-sha256`` lines (hidden files left out)."""
    if not path.is_dir():
        return sha256_file(path)
    lines = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if any(part.startswith(".") for part in rel.parts):
            continue
        lines.append(f"{rel.as_posix()}  {sha256_file(file)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _scan(data: bytes) -> str | None:
    """The hash of a JPEG stream's entropy-coded data, ``None`` for other codestreams."""
    if not data.startswith(b"\xff\xd8"):
        return None
    from ..codecs.jpeg import entropy_coded_data

    try:
        return _sha(entropy_coded_data(data))
    except Exception:
        return None


# -- reading frames ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DicomFile:
    """One DICOM instance's identity and its frames as stored."""

    transfer_syntax: str
    sop_class_uid: str
    sop_instance_uid: str
    series_uid: str
    study_uid: str
    frames: list[bytes]


def read_dicom(path: Path) -> DicomFile:
    """The frames of a DICOM file as stored (encapsulated fragments with their pad byte, or
    slices of native Pixel Data, PS3.5 A.4 and 8.1.1)."""
    from pydicom import dcmread
    from pydicom.encaps import generate_frames

    try:
        ds = dcmread(path)
    except Exception as exc:
        raise InputError(f"not a readable DICOM file ({exc})", path=path) from None
    syntax = ds.file_meta.TransferSyntaxUID
    frames: list[bytes] = []
    if "PixelData" in ds:
        count = int(ds.get("NumberOfFrames", 1) or 1)
        if syntax.is_encapsulated:
            frames = list(generate_frames(ds.PixelData, number_of_frames=count))
        else:
            size = len(ds.PixelData) // count if count else 0
            frames = [ds.PixelData[i * size : (i + 1) * size] for i in range(count)]
    return DicomFile(
        str(syntax),
        str(ds.get("SOPClassUID", "")),
        str(ds.get("SOPInstanceUID", "")),
        str(ds.get("SeriesInstanceUID", "")),
        str(ds.get("StudyInstanceUID", "")),
        frames,
    )


def dicom_frames(path: Path) -> tuple[dict[str, str], Iterator[bytes]]:
    """A DICOM file's identity and its frames as stored, read one at a time from the file
    (the item headers are indexed first, PS3.5 A.4), so a slide of any size is hashed in
    little memory. Bit-packed (1-bit) or damaged Pixel Data falls back to pydicom."""
    from conformance import dicomfiles, frames

    try:
        inst = dicomfiles.read(path, path.name)
    except dicomfiles.ReadError as exc:
        raise InputError(f"not a readable DICOM file ({exc})", path=path) from None
    ds = inst.ds
    ident = {
        "transfer_syntax": str(inst.transfer_syntax),
        "sop_class_uid": str(ds.get("SOPClassUID", "")),
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
    }
    if inst.pixel_data is None:
        return ident, iter(())
    found = frames.index(inst)
    if found.problems or inst.problems or int(ds.get("BitsAllocated", 8) or 8) == 1:
        return ident, iter(read_dicom(path).frames)

    def read() -> Iterator[bytes]:
        with open(path, "rb") as fh:
            for parts in found.frames:
                chunks = []
                for offset, length in parts:
                    fh.seek(offset)
                    chunks.append(fh.read(length))
                yield b"".join(chunks)

    return ident, read()


def tiff_levels(path: Path) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Each level of each series of a TIFF file: ``(label, its tiles as stored)``, read one
    at a time (consume each level's tiles before asking for the next level)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        fh = tif.filehandle
        for s, series in enumerate(tif.series):
            for lv, level in enumerate(series.levels):

                def tiles(level: Any = level) -> Iterator[bytes]:
                    for page in level.pages:
                        if page is None:
                            continue
                        pairs = zip(page.dataoffsets, page.databytecounts, strict=True)
                        for offset, count in pairs:
                            fh.seek(offset)
                            yield fh.read(count)

                yield f"series {s} level {lv}", tiles()


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def output_files(dst: Path) -> list[Path]:
    """The files of an output: the file itself, or every file in the folder (sorted,
    hidden ones left out)."""
    if not dst.is_dir():
        return [dst]
    return sorted(
        p
        for p in dst.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(dst).parts)
    )


def iter_frames(path: Path) -> Iterator[bytes]:
    """The frames of an output file, DICOM (each frame) or TIFF (each tile of each level)."""
    if _is_tiff(path):
        for _, tiles in tiff_levels(path):
            yield from tiles
        return
    yield from dicom_frames(path)[1]


@dataclass(frozen=True)
class Digest:
    """A frame's hashes: of its bytes, of what identifies it across containers, of its JPEG
    entropy-coded data (``None`` if it is not JPEG)."""

    sha256: str
    payload: str
    scan: str | None


def _digest(data: bytes) -> Digest:
    scan = _scan(data)
    padded = data + b"\x00" if len(data) % 2 else data
    return Digest(_sha(data), scan if scan is not None else _sha(padded), scan)


def digests(path: Path) -> tuple[dict[str, str], list[tuple[str, list[Digest]]]]:
    """A file's identity and its frames' digests, per unit: one for a DICOM instance, one per
    level for a TIFF file."""
    if _is_tiff(path):
        return {}, [(label, [_digest(t) for t in tiles]) for label, tiles in tiff_levels(path)]
    ident, frames = dicom_frames(path)
    return ident, [(path.name, [_digest(f) for f in frames])]


def _source_units(src: Path) -> dict[tuple[str, ...], str]:
    """Each of the source's tile sequences (a TIFF level, or a DICOM instance's frames) by the
    tuple of its tiles' payload hashes."""
    units: dict[tuple[str, ...], str] = {}
    for path in output_files(src):
        try:
            _, found = digests(path)
        except (InputError, OSError, ValueError):
            continue  # not an image file: no tiles to compare with
        for label, unit in found:
            if not _is_tiff(path) and src.is_dir():
                label = path.relative_to(src).as_posix()
            units.setdefault(tuple(d.payload for d in unit), label)
    return units


# -- writing ----------------------------------------------------------------------------------


def build(dst: Path, src: Path, *, source_hash: str, options: dict[str, Any]) -> dict[str, Any]:
    """The manifest of the output ``dst`` converted from ``src``."""
    units = _source_units(src)
    entries = []
    for path in output_files(dst):
        ident, found = digests(path)
        frames = [d for _, unit in found for d in unit]
        entry: dict[str, Any] = {
            "name": path.relative_to(dst).as_posix() if dst.is_dir() else path.name,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            **ident,
            "frames": [d.sha256 for d in frames],
        }
        if frames and all(d.scan is not None for d in frames):
            entry["scans"] = [d.scan for d in frames]
        # a DICOM instance is one unit; an OME-TIFF one per level (a source instance each)
        origins = [units.get(tuple(d.payload for d in unit)) for _, unit in found if unit]
        if origins and all(o is not None for o in origins):
            entry["verbatim"] = True
            entry["verbatim_source"] = origins if _is_tiff(path) else origins[0]
        else:
            entry["verbatim"] = False
        entries.append(entry)
    return {
        "format": FORMAT,
        "destination": dst.name,
        "source": {"path": str(src), "sha256": source_hash},
        "options": options,
        "files": entries,
    }


def write(dst: Path, manifest: dict[str, Any]) -> Path:
    """Write ``<DST>.sha256.json`` atomically (staged, then renamed into place)."""
    from ..convert import staged_file

    path = manifest_path(dst)
    with staged_file(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"cannot read the manifest ({exc.strerror})", path=path) from None
    except ValueError as exc:
        raise InputError(f"the manifest is not JSON ({exc})", path=path) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(
            f'not an omedicom manifest (no "format": "{FORMAT}")',
            path=path,
            hint="give the <DST>.sha256.json file a batch or a conversion wrote",
        )
    return data
