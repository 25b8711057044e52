"""One task, as a worker runs it: convert, check, manifest, push, verify.

Runs in a worker process (a local pool's, or a Dask worker's) and returns a plain dict, so it
travels through any pool. It never raises for a slide's own failure (a bad source, a check that
finds errors, a PACS that refuses): it returns ``state: failed`` with the reason, and the batch
records it. A worker that dies is the pool's business (Dask reschedules its task).

A lock file per destination (``flock(2)``, released by the kernel when the holder dies) keeps
two workers off the same output: a task still running on a cluster after its batch was killed
finishes before the re-run's copy of it starts.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BridgeError, InputError
from .tasks import Task


@dataclass(frozen=True)
class Options:
    """What every task of a batch shares (command-line options)."""

    lock_dir: str
    to: str | None = None
    codec: str | None = None
    lossy: int | None = None
    pixel_size_um: tuple[float, float] | None = None
    check: bool = True
    dicom3tools: bool = True
    push_dicomweb: str | None = None
    push_dimse: str | None = None
    aet: str | None = None
    called_aet: str | None = None
    #: DICOMweb authentication: names only; the secrets stay in each worker's environment
    user: str | None = None
    password_env: str | None = None
    token_env: str | None = None
    ca_bundle: str | None = None

    def conversion(self) -> dict[str, Any]:
        """The options that change the output (and so the UIDs)."""
        return {
            "to": self.to,
            "codec": self.codec,
            "lossy": self.lossy,
            "pixel_size_um": list(self.pixel_size_um) if self.pixel_size_um else None,
        }

    def pushing(self) -> dict[str, Any]:
        return {"dicomweb": self.push_dicomweb, "dimse": self.push_dimse}


def task_options(task: Task, options: Options) -> dict[str, Any]:
    """Everything that makes a task's output what it is, but the source's bytes: the
    conversion options, the slide id and the metadata and specimen files' content."""
    meta = None
    if task.metadata_json is not None:
        with contextlib.suppress(OSError):
            meta = hashlib.sha256(task.metadata_json.read_bytes()).hexdigest()
    opts = {**options.conversion(), "slide_id": task.slide_id, "metadata_sha256": meta}
    if task.specimen_json is not None:  # only when given: earlier ledgers keep their keys
        with contextlib.suppress(OSError):
            opts["specimen_sha256"] = hashlib.sha256(task.specimen_json.read_bytes()).hexdigest()
    return opts


def uid_seed(source_hash: str, opts: dict[str, Any]) -> str:
    """The seed of a task's UIDs: a hash of the source's bytes and the options."""
    text = json.dumps({"source": source_hash, "options": opts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def source_stat(path: Path) -> str:
    """A cheap identity of the source (size and modification time of each file), used to
    skip re-hashing an unchanged source on a re-run."""
    files = [path] if not path.is_dir() else sorted(p for p in path.rglob("*") if p.is_file())
    parts = []
    for f in files:
        st = f.stat()
        parts.append(f"{f}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


@contextlib.contextmanager
def destination_lock(lock_dir: Path, destination: Path) -> Iterator[None]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(destination).encode()).hexdigest()[:32] + ".lock"
    with open(lock_dir / name, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def remove_partials(dst: Path) -> list[Path]:
    """Remove the staging leftovers of ``dst`` and of its manifest (``.NAME.XXXXXXXX.partial``,
    see bridge.convert) that a killed process could not clean; what was removed."""
    from ..convert import _stage_prefix
    from .manifest import manifest_path

    removed = []
    for target in (dst, manifest_path(dst)):
        parent = target.parent
        if not parent.is_dir():
            continue
        for leftover in parent.glob(_glob_escape(_stage_prefix(target)) + "*.partial"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed


def _glob_escape(text: str) -> str:
    import glob

    return glob.escape(text)


def run_task(task: Task, options: Options, overwrite: bool) -> dict[str, Any]:
    """Convert, check, write the manifest, push and verify one slide; the outcome as a dict:
    ``state`` (done/failed), ``reason``, ``timings`` (s), ``bytes``, ``files``, ``frames``,
    ``check``, ``verify``, ``source_sha256``, ``worker`` (pid@host)."""
    outcome: dict[str, Any] = {
        "destination": str(task.destination),
        "source": str(task.source),
        "state": "failed",
        "reason": None,
        "timings": {},
        "bytes": 0,
        "files": 0,
        "frames": 0,
        "check": "not run",
        "verify": "not run",
        "verbatim_files": 0,
        "worker": f"{os.getpid()}@{os.uname().nodename}",
    }
    started = time.monotonic()
    try:
        with destination_lock(Path(options.lock_dir), task.destination):
            _run(task, options, overwrite, outcome)
        outcome["state"] = "done" if outcome["reason"] is None else "failed"
    except BridgeError as exc:
        outcome["reason"] = exc.describe()
    except Exception as exc:  # a bug, or a library's failure on this slide: recorded, not fatal
        outcome["reason"] = f"internal error: {type(exc).__name__}: {exc}"
    outcome["timings"]["total"] = round(time.monotonic() - started, 3)
    return outcome


def _timed(outcome: dict[str, Any], name: str) -> Any:
    @contextlib.contextmanager
    def timer() -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            outcome["timings"][name] = round(time.monotonic() - start, 3)

    return timer()


def _run(task: Task, options: Options, overwrite: bool, outcome: dict[str, Any]) -> None:
    from ..convert import convert
    from ..dicom.uids import deterministic_uids
    from ..metadata import load
    from . import manifest as mf

    src, dst = task.source, task.destination
    if not src.exists():
        raise InputError("no such file or directory", path=src)
    remove_partials(dst)
    with _timed(outcome, "hash_source"):
        source_hash = mf.source_sha256(src)
    outcome["source_sha256"] = source_hash
    outcome["source_stat"] = source_stat(src)
    patient, meta_slide_id = load(task.metadata_json, {})
    opts = task_options(task, options)
    with _timed(outcome, "convert"), deterministic_uids(uid_seed(source_hash, opts)):
        result = convert(
            src,
            dst,
            to=options.to,
            slide_id=task.slide_id or meta_slide_id,
            pixel_size_um=options.pixel_size_um,
            patient=patient,
            overwrite=overwrite,
            codec=options.codec,
            lossy=options.lossy,
            specimen=task.specimen_json,  # convert --specimen: stains and a description
        )
    outcome["files"] = len(result.files)
    outcome["frames"] = result.frames
    outcome["bytes"] = sum(f.stat().st_size for f in mf.output_files(dst))
    outcome["warnings"] = list(result.warnings)
    if options.check:
        with _timed(outcome, "check"):
            outcome["check"], problems = _check(dst, src, options.dicom3tools)
        if problems:
            outcome["reason"] = f"check found errors: {problems}"
            return
    with _timed(outcome, "manifest"):
        manifest = mf.build(dst, src, source_hash=source_hash, options=opts)
        mf.write(dst, manifest)
    outcome["verbatim_files"] = sum(1 for f in manifest["files"] if f["verbatim"])
    if options.push_dicomweb or options.push_dimse:
        with _timed(outcome, "push"):
            outcome["push"] = _push(dst, options)
    with _timed(outcome, "verify"):
        outcome["verify"] = _verify(dst, options, outcome)


def _check(dst: Path, src: Path, dicom3tools: bool) -> tuple[str, str | None]:
    """``omedicom check DST --against SRC``: ``(verdict, first errors or None)``."""
    from conformance.findings import Severity
    from conformance.runner import check

    report = check([dst], against=src, use_dicom3tools=dicom3tools)
    if not report.exit_code:
        return "pass", None
    errors = [f for f in report.sorted() if f.severity is Severity.ERROR]
    shown = "; ".join(f"{f.id}: {f.message}" for f in errors[:3])
    return "fail", shown or f"exit code {report.exit_code}"


def connect(options: Options) -> Any:
    """The push destination the options name (DICOMweb or DIMSE)."""
    from ..pacs.retry import RetryPolicy

    retry = RetryPolicy(attempts=5, delay=1.0)
    if options.push_dicomweb:
        from ..pacs.dicomweb import DicomWeb
        from ..pacs.http import Credentials, Http

        credentials = Credentials.from_environment(
            user=options.user, password_env=options.password_env, token_env=options.token_env
        )
        http = Http(
            options.push_dicomweb,
            credentials=credentials,
            ca_bundle=options.ca_bundle,
            retry=retry,
        )
        return DicomWeb(http)
    from ..pacs.dimse import Dimse, DimsePeer

    peer = DimsePeer.parse(
        options.push_dimse, called_aet=options.called_aet, calling_aet=options.aet, timeout=120
    )
    return Dimse(peer, retry=retry)


def _push(dst: Path, options: Options) -> dict[str, Any]:
    from ..pacs.push import push

    report = push(dst, connect(options))
    return {"sent": len(report.sent), "skipped": len(report.skipped)}


def _verify(dst: Path, options: Options, outcome: dict[str, Any]) -> str:
    """Verify the manifest against the output folder and, after a DICOMweb push, against what
    the server returns; ``pass`` or ``fail`` (the differences become the task's reason)."""
    from .manifest import manifest_path
    from .verify import verify

    verdicts = [verify(manifest_path(dst))]
    if options.push_dicomweb:
        verdicts.append(verify(manifest_path(dst), web=connect(options)))
    bad = [d for v in verdicts for d in v.differences]
    if bad:
        outcome["reason"] = "verify found differences: " + "; ".join(bad[:3])
        return "fail"
    return "pass"


def as_dict(task: Task) -> dict[str, Any]:
    return {k: (str(v) if v is not None else None) for k, v in asdict(task).items()}
