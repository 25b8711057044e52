"""The batch driver: decide what to run from the ledger, run it on a pool, record outcomes.

Pools: a local process pool (:mod:`concurrent.futures`, ``--workers N``) or an existing Dask
distributed cluster (``--scheduler tcp://HOST:PORT``), whose futures reschedule the task of a
worker that dies. A slide is one task. At most as many tasks as there are workers are handed
out at a time, so a ``running`` row in the ledger is a slide being converted.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from . import manifest as mf
from .ledger import Ledger
from .progress import BatchProgress
from .report import row as report_row
from .tasks import Task
from .work import Options, run_task, source_stat, task_options


@dataclass
class Summary:
    total: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "total": self.total,
            "done": self.done,
            "failed": self.failed,
            "skipped": self.skipped,
        }


def ledger_options(task: Task, options: Options) -> str:
    """What a ``done`` row must match to be skipped: conversion options and push target."""
    return json.dumps({**task_options(task, options), "push": options.pushing()}, sort_keys=True)


def _is_done(ledger: Ledger, task: Task, options: Options) -> bool:
    """Done before, with the same options, the same source bytes, and the output present."""
    row = ledger.get(task.key)
    if row is None or row.state != "done" or row.options != ledger_options(task, options):
        return False
    if not task.destination.exists() or not mf.manifest_path(task.destination).exists():
        return False
    try:
        if row.source_stat == source_stat(task.source):
            return True  # unchanged size and time: the recorded checksum stands
        return row.source_sha256 == mf.source_sha256(task.source)
    except OSError:
        return False


def _occupied(path: Path) -> bool:
    """Whether something is at ``path`` already (an empty folder is not something)."""
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


#: What every task imports: loaded once in the batch, so forked workers start warm.
_PRELOAD = (
    "bridge.convert",
    "bridge.dicom.writer",
    "bridge.ometiff.reader",
    "bridge.dicom.reader",
    "bridge.batch.manifest",
    "bridge.batch.verify",
    "conformance.runner",
    "pydicom.encaps",
    "ome_types",  # the check reads the source's OME-XML with it (1.5 s of import)
)


def _preload() -> None:
    import importlib

    for name in _PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _worker_init() -> None:
    """A local worker dies with the batch (Linux ``PR_SET_PDEATHSIG``), so a killed batch
    leaves no orphan writing an output that a re-run writes too. It ignores the terminal's
    Ctrl-C: the batch stops it with SIGTERM, which interrupts the slide once (its staged
    output is removed), so that a second signal cannot cut the clean-up short."""
    with contextlib.suppress(Exception):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt_once)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _interrupt_once(signum: int, frame: Any) -> None:
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt


class _LocalPool:
    """``concurrent.futures`` processes; a pool broken by a dead worker is replaced."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool = self._make()

    def _make(self) -> Any:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork: a worker starts in milliseconds with what the batch imported (the batch holds
        # no threads when the pool starts); spawn where fork is not available
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        if method == "fork":
            _preload()
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(method),
            initializer=_worker_init,
        )

    def submit(self, task: Task, options: Options, overwrite: bool) -> Any:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._pool.submit(run_task, task, options, overwrite)
        except BrokenProcessPool:  # broken by a worker whose futures are not collected yet
            self._renew()
            return self._pool.submit(run_task, task, options, overwrite)

    def _renew(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._make()

    def wait_one(self, futures: set[Any]) -> Iterator[Any]:
        from concurrent.futures import FIRST_COMPLETED, wait

        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return iter(done)

    def result(self, future: Any) -> dict[str, Any]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return future.result()
        except BrokenProcessPool:
            if getattr(self._pool, "_broken", True):  # once per broken pool, not per future
                self._renew()
            reason = "the worker process died (killed, or out of memory)"
            return {"state": "failed", "reason": reason, "lost": True}

    def close(self, *, cancel: bool = False) -> None:
        if cancel:  # interrupt the slides in progress; wait while they remove their output
            processes = list((getattr(self._pool, "_processes", None) or {}).values())
            # first the queued slides are cancelled and each idle worker told to end; a worker
            # whose slide caught the interruption and returned would otherwise wait for work
            self._pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                with contextlib.suppress(OSError):
                    os.kill(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 60
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
            for process in processes:  # a worker idle in the task queue's lock may not wake
                if process.is_alive():
                    with contextlib.suppress(OSError):
                        os.kill(process.pid, signal.SIGKILL)
                    process.join(10)
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class _InlinePool:
    """One worker: the tasks run in the batch process itself (no start-up, no pickling)."""

    workers = 1

    def submit(self, task: Task, options: Options, overwrite: bool) -> Any:
        from concurrent.futures import Future

        future: Future[dict[str, Any]] = Future()
        future.set_result(run_task(task, options, overwrite))
        return future

    def wait_one(self, futures: set[Any]) -> Iterator[Any]:
        return iter(futures)

    def result(self, future: Any) -> dict[str, Any]:
        return future.result()

    def close(self, *, cancel: bool = False) -> None:
        pass


class _DaskPool:
    """An existing Dask distributed cluster: its futures, retries and worker-loss handling."""

    def __init__(self, address: str):
        try:
            from distributed import Client
        except ImportError:
            raise InputError(
                "--scheduler needs the Python package distributed (Dask), which is not installed",
                hint="pip install 'dask[distributed]'",
            ) from None
        try:
            self.client = Client(address, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"cannot reach the Dask scheduler at {address} ({exc})",
                hint="start one with: dask scheduler; dask worker tcp://HOST:8786",
            ) from None
        info = self.client.scheduler_info()
        threads = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
        self.workers = max(threads, 1)

    def submit(self, task: Task, options: Options, overwrite: bool) -> Any:
        key = f"omedicom-batch-{uuid.uuid4().hex}"
        # a slide's own failure comes back as an outcome; retries cover what Dask raises
        # (a lost worker is rescheduled by the scheduler itself, up to allowed-failures)
        return self.client.submit(
            run_task, task, options, overwrite, key=key, pure=False, retries=1
        )

    def wait_one(self, futures: set[Any]) -> Iterator[Any]:
        from distributed import wait

        done, _ = wait(list(futures), return_when="FIRST_COMPLETED")
        return iter(done)

    def result(self, future: Any) -> dict[str, Any]:
        try:
            return future.result()
        except Exception as exc:  # KilledWorker after too many losses, a cancelled future
            return {"state": "failed", "reason": f"Dask: {type(exc).__name__}: {exc}"}

    def close(self, *, cancel: bool = False) -> None:
        self.client.close()


def run_batch(
    tasks: list[Task],
    options: Options,
    ledger_path: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    progress: BatchProgress | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> Summary:
    """Run every task that is not done; record each outcome in the ledger."""
    ledger = Ledger(ledger_path)
    summary = Summary(total=len(tasks))
    try:
        recovered = ledger.recover()
        if recovered:
            log(f"{recovered} slide(s) were interrupted by an earlier run; redoing them")
        todo: list[Task] = []
        for task in tasks:
            ledger.upsert(task.key, str(task.source), exists=_occupied(task.destination))
            if _is_done(ledger, task, options):
                row = ledger.get(task.key)
                outcome = (row.result if row else None) or {}
                outcome.update(destination=task.key, source=str(task.source), state="done")
                summary.rows.append(
                    report_row(outcome, attempts=row.attempts if row else 0, skipped=True)
                )
                summary.done += 1
                summary.skipped += 1
            else:
                todo.append(task)
        if progress is not None:
            progress.total = len(tasks)
            progress.done = summary.done
            progress.draw()
        if todo:
            _run(todo, options, ledger, summary, workers, scheduler, progress)
    finally:
        if progress is not None:
            progress.close()
        ledger.close()
    return summary


def _run(
    todo: list[Task],
    options: Options,
    ledger: Ledger,
    summary: Summary,
    workers: int | None,
    scheduler: str | None,
    progress: BatchProgress | None,
) -> None:
    count = workers or os.cpu_count() or 1
    pool: Any = _DaskPool(scheduler) if scheduler else _LocalPool(count) if count > 1 else None
    pool = pool or _InlinePool()
    queue = list(reversed(todo))
    running: dict[Any, Task] = {}
    cancel = False

    def record(task: Task, outcome: dict[str, Any]) -> None:
        outcome.setdefault("destination", task.key)
        outcome.setdefault("source", str(task.source))
        ok = outcome.get("state") == "done"
        ledger.finish(
            task.key,
            state="done" if ok else "failed",
            reason=outcome.get("reason"),
            source_sha256=outcome.get("source_sha256"),
            source_stat=outcome.get("source_stat"),
            options=ledger_options(task, options) if ok else None,
            result=outcome,
        )
        row = ledger.get(task.key)
        summary.rows.append(report_row(outcome, attempts=row.attempts if row else 1, skipped=False))
        if ok:
            summary.done += 1
        else:
            summary.failed += 1
        if progress is not None:
            progress.finished(ok)

    starting: Task | None = None  # marked running, not yet in ``running``
    lost: set[str] = set()  # tasks whose worker died once
    try:
        while queue or running:
            while queue and len(running) < pool.workers:
                starting = queue.pop()
                # replace only what this ledger's batches made (a crash may have left it)
                overwrite = ledger.ours(starting.key)
                ledger.start(starting.key)
                running[pool.submit(starting, options, overwrite)] = starting
                starting = None
            for future in pool.wait_one(set(running)):
                task, outcome = running[future], pool.result(future)
                if outcome.get("lost") and task.key not in lost:
                    lost.add(task.key)  # its worker died: run it once more, as Dask would
                    queue.append(task)
                    ledger.finish(task.key, state="pending", reason=outcome["reason"])
                else:
                    record(task, outcome)
                del running[future]  # after the record: an interruption between finds it
    except BaseException:  # Ctrl-C: the workers' staged outputs are removed as they stop
        cancel = True
        if starting is not None:
            ledger.finish(starting.key, state="pending", reason="interrupted")
        for future, task in running.items():
            finished = _finished(future)
            if finished is not None and finished.get("state") == "done":
                record(task, finished)  # it ended before the interruption reached it
            else:
                ledger.finish(task.key, state="pending", reason="interrupted")
        raise
    finally:
        pool.close(cancel=cancel)


def _finished(future: Any) -> dict[str, Any] | None:
    """The outcome of a future that has one already, without waiting."""
    try:
        if future.done() and not future.cancelled():
            result = future.result()
            return result if isinstance(result, dict) else None
    except BaseException:
        return None
    return None
