"""Pull: list what a PACS holds, and retrieve a study or series into a DICOM folder.

Instances arrive in their stored transfer syntax (WADO-RS with ``transfer-syntax=*``, C-GET
with one presentation context per syntax) and stream into files; nothing is decoded. The
folder is staged under a temporary name and renamed into place only when every instance has
arrived (ARCHITECTURE.md principle 4).

An OME-TIFF target is, for now, pulled into a temporary DICOM folder and converted.
:class:`bridge.pacs.dicomweb.RemoteSeries` (instance metadata plus a lazy frame fetcher) is
the interface for streaming frames straight into the OME-TIFF writer instead.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from pydicom import dcmread

from ..convert import staged_directory
from ..errors import InputError, OutputError
from .dicomweb import DicomWeb, RemoteSeries
from .errors import PacsError, ServerError, ServerUnreachable
from .records import PullReport, RemoteInstance, SeriesSummary
from .retry import RetryPolicy, TransientError

ProgressFactory = Callable[[int, str], Callable[[int], None]]

OME_TIFF_SUFFIXES = (".tif", ".tiff", ".btf")


class Source(Protocol):
    name: str
    retry: RetryPolicy

    def series(
        self, study_uid: str | None = None, modality: str | None = "SM"
    ) -> list[SeriesSummary]: ...

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[RemoteInstance]: ...

    def retrieve(
        self,
        refs: Sequence[RemoteInstance],
        folder: Path,
        on_file: Callable[[RemoteInstance, Path, str], None],
    ) -> None: ...


def format_series(s: SeriesSummary) -> str:
    """One line per slide: the UIDs to pull it by, then what identifies it to a person."""
    fields = [
        f"study={s.study_uid}",
        f"series={s.series_uid}",
        f"instances={s.instances if s.instances is not None else '?'}",
    ]
    for label, value in (
        ("slide", s.container_id),
        ("patient", s.patient_id),
        ("date", s.study_date),
        ("description", s.description),
    ):
        if value:
            fields.append(f"{label}={value!r}" if " " in value else f"{label}={value}")
    return "  ".join(fields)


def pull(
    source: Source,
    study_uid: str,
    dst: Path,
    *,
    series_uid: str | None = None,
    overwrite: bool = False,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
) -> PullReport:
    """Retrieve a study (or one series of it) into ``dst``: a folder of DICOM files, or an
    OME-TIFF when ``dst`` ends in .tif/.tiff (then the study must hold one slide series)."""
    dst = Path(dst)
    refs = source.instances(study_uid, series_uid)
    if not refs:
        where = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        raise ServerError(
            f"{source.name} holds no instances of {where}",
            hint="see what it holds with: omedicom pull --list ...",
        )
    if dst.suffix.lower() in OME_TIFF_SUFFIXES:
        return _pull_ome_tiff(source, refs, dst, overwrite=overwrite, progress=progress, log=log)
    return pull_instances(source, refs, dst, overwrite=overwrite, progress=progress, log=log)


def _pull_ome_tiff(
    source: Source,
    refs: Sequence[RemoteInstance],
    dst: Path,
    *,
    overwrite: bool,
    progress: ProgressFactory | None,
    log: Callable[[str], None] | None,
) -> PullReport:
    """Over DICOMweb, frames stream from the server straight into the OME-TIFF writer
    (:class:`bridge.pacs.dicomweb.RemoteSeries` read by ``bridge.dicom.reader.read_remote``):
    no local copy of the slide. DIMSE C-GET moves whole instances, so over DIMSE the series
    goes to a temporary DICOM folder next to ``dst``, is converted, and is removed."""
    from ..convert import convert

    series = sorted({r.series_uid for r in refs})
    if len(series) > 1:
        raise InputError(
            f"the study holds {len(series)} series and an OME-TIFF takes one slide",
            hint="choose one with --series: " + ", ".join(series),
        )
    if dst.exists() and not overwrite:
        raise OutputError("exists already", path=dst, hint="pass --overwrite to replace it")
    if isinstance(source, DicomWeb):
        return _stream_ome_tiff(source, refs, dst, overwrite=overwrite, progress=progress)
    parent = dst.parent if str(dst.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".pull", dir=parent))
    except OSError as exc:
        raise OutputError(f"cannot create the output ({exc.strerror})", path=dst) from None
    try:
        report = pull_instances(source, refs, work / "dicom", progress=progress, log=log)
        convert(work / "dicom", dst, to="ome-tiff", overwrite=overwrite, progress=progress)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.files = [dst]
    return report


def _stream_ome_tiff(
    source: DicomWeb,
    refs: Sequence[RemoteInstance],
    dst: Path,
    *,
    overwrite: bool,
    progress: ProgressFactory | None,
) -> PullReport:
    from ..convert import write_ome_tiff
    from ..dicom.reader import read_remote

    remote = RemoteSeries(source, refs[0].study_uid, refs[0].series_uid)
    datasets = remote.datasets()
    slide = read_remote(remote, datasets, f"{source.name} series {refs[0].series_uid}")
    try:
        result = write_ome_tiff(
            slide, dst, label=f"series {refs[0].series_uid}", overwrite=overwrite,
            progress=progress,
        )  # fmt: skip
    finally:
        if slide.close:
            slide.close()
    report = PullReport(source=source.name, total=len(refs), received=len(datasets))
    report.files = [dst]
    report.frames = result.frames
    report.transfer_syntaxes = {remote.transfer_syntax(str(d.SOPInstanceUID)) for d in datasets}
    return report


def pull_instances(
    source: Source,
    refs: Sequence[RemoteInstance],
    dst: Path,
    *,
    overwrite: bool = False,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
) -> PullReport:
    """Retrieve ``refs`` into the folder ``dst`` (staged; renamed into place when complete)."""
    report = PullReport(source.name, total=len(refs))
    tick: Callable[[int], None] = lambda n: None  # noqa: E731
    if progress is not None:
        tick = progress(len(refs), f"pull ← {source.name}")
    received: dict[str, Path] = {}

    def on_file(ref: RemoteInstance, path: Path, syntax: str) -> None:
        ds = dcmread(
            path, stop_before_pixels=True, specific_tags=["SOPInstanceUID", "NumberOfFrames"]
        )
        if str(ds.get("SOPInstanceUID", "")) != ref.sop_instance_uid:
            path.unlink(missing_ok=True)
            raise ServerError(
                f"asked {source.name} for {ref.sop_instance_uid}, received "
                f"{ds.get('SOPInstanceUID', 'something else')}"
            )
        frames = ds.get("NumberOfFrames", 1)
        report.frames += int(frames) if frames not in (None, "") else 1
        report.transfer_syntaxes.add(str(ds.file_meta.TransferSyntaxUID))
        received[ref.sop_instance_uid] = path
        report.received = len(received)
        tick(1)

    try:
        with staged_directory(dst, overwrite=overwrite) as tmp:
            _retrieve_all(source, refs, tmp, on_file, received, log)
    except PacsError as exc:
        exc.attach(
            report,
            f"received {len(received)} of {len(refs)} instance(s) before the failure; "
            f"nothing was kept at {dst}",
        )
        raise
    finally:
        close = getattr(tick, "close", None)
        if close is not None:
            close()
    report.files = sorted(dst / p.name for p in received.values())
    return report


def _retrieve_all(
    source: Source,
    refs: Sequence[RemoteInstance],
    folder: Path,
    on_file: Callable[[RemoteInstance, Path, str], None],
    received: dict[str, Path],
    log: Callable[[str], None] | None,
) -> None:
    failures = 0
    remaining = list(refs)
    while remaining:
        try:
            source.retrieve(remaining, folder, on_file)
        except TransientError as exc:
            failures += 1
            if failures >= source.retry.attempts:
                raise ServerUnreachable(
                    f"{exc}; gave up after {failures} attempts",
                    hint="the server stopped answering; run the same command again later",
                ) from None
            pause = source.retry.wait(failures)
            if log is not None:
                log(f"{exc}; retrying in {pause:.1f} s (attempt {failures + 1})")
            time.sleep(pause)
            remaining = [r for r in refs if r.sop_instance_uid not in received]
            continue
        remaining = [r for r in refs if r.sop_instance_uid not in received]
        if remaining:
            uids = ", ".join(r.sop_instance_uid for r in remaining[:5])
            raise ServerError(
                f"{source.name} finished without sending {len(remaining)} instance(s): {uids}"
                + (" ..." if len(remaining) > 5 else ""),
                hint="the server may refuse to send them in any syntax we offered",
            )
