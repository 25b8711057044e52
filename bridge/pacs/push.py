"""Push: send a slide's instances to a PACS, resumably, and account for each one.

1. Ask the server which instances it already holds (QIDO-RS or C-FIND, per series) and skip
   them, so a push that broke off completes on the next run without duplicates.
2. Send the rest in batches (one STOW-RS request, or one association, per batch).
3. On a transient failure wait (exponential backoff), ask again which of the batch arrived,
   and resend only the rest; a batch the server refuses as a whole is resent one by one to
   name the culprit.
4. Ask the server again at the end: an instance counts as sent only if it is there. (Orthanc
   1.10.1 acknowledges an instance that its Lua ``ReceivedInstanceFilter`` discarded, over
   STOW-RS and over C-STORE alike: an acknowledgement alone is not proof.)

Nothing is reported as sent that the server did not acknowledge and, when the final query
runs, hold.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from .errors import PacsError, RejectedInstances, ServerUnreachable
from .local import instances_of
from .records import BatchOutcome, LocalInstance, PushReport, Rejection
from .retry import RetryPolicy, TransientError

ProgressFactory = Callable[[int, str], Callable[[int], None]]

NOT_HELD = (
    "the server acknowledged it but does not hold it (it discarded the instance, e.g. by a filter)"
)


class Destination(Protocol):
    name: str
    retry: RetryPolicy

    def held_instances(
        self, study_uid: str, series_uid: str, *, retry: bool = True
    ) -> set[str]: ...

    def store(self, batch: Sequence[LocalInstance]) -> BatchOutcome: ...


def batches(
    instances: Sequence[LocalInstance], *, size: int, max_bytes: int
) -> Iterator[list[LocalInstance]]:
    """At most ``size`` instances and ``max_bytes`` bytes per batch (one larger instance goes
    alone)."""
    batch: list[LocalInstance] = []
    total = 0
    for inst in instances:
        if batch and (len(batch) >= size or total + inst.size > max_bytes):
            yield batch
            batch, total = [], 0
        batch.append(inst)
        total += inst.size
    if batch:
        yield batch


def _by_series(instances: Sequence[LocalInstance]) -> dict[tuple[str, str], list[LocalInstance]]:
    groups: dict[tuple[str, str], list[LocalInstance]] = {}
    for inst in instances:
        groups.setdefault((inst.study_uid, inst.series_uid), []).append(inst)
    return groups


class Pusher:
    """One push of a list of instances to one destination."""

    def __init__(
        self,
        destination: Destination,
        *,
        batch_size: int = 20,
        batch_bytes: int = 256 << 20,
        progress: ProgressFactory | None = None,
        log: Callable[[str], None] | None = None,
    ):
        self.destination = destination
        self.retry = destination.retry
        self.batch_size = max(1, batch_size)
        self.batch_bytes = max(1, batch_bytes)
        self.progress = progress
        self.log = log or (lambda message: None)
        self.report = PushReport(destination.name)
        self._tick: Callable[[int], None] = lambda n: None

    def run(self, instances: Sequence[LocalInstance]) -> PushReport:
        report = self.report
        report.total = len(instances)
        held: set[str] = set()
        for study, series in _by_series(instances):
            held |= self.destination.held_instances(study, series)
        report.skipped = [i for i in instances if i.sop_instance_uid in held]
        todo = [i for i in instances if i.sop_instance_uid not in held]
        if todo and self.progress is not None:
            self._tick = self.progress(len(todo), f"push → {self.destination.name}")
        try:
            for batch in batches(todo, size=self.batch_size, max_bytes=self.batch_bytes):
                self._send(batch)
        except PacsError as exc:
            exc.attach(report, report.summary())
            raise
        finally:
            close = getattr(self._tick, "close", None)
            if close is not None:
                close()
        self._verify()
        if report.rejected:
            lines = "\n  ".join(r.describe() for r in report.rejected)
            raise RejectedInstances(
                f"the server rejected {len(report.rejected)} instance(s):\n  {lines}\n  "
                f"{report.summary()}",
                report=report,
                hint="these instances are not on the server; the others are",
            )
        return report

    def _record(self, outcome: BatchOutcome) -> None:
        self.report.sent.extend(outcome.stored)
        self.report.rejected.extend(outcome.rejected)
        self.report.warnings.extend(outcome.warnings)
        done = len(outcome.stored) + len(outcome.rejected)
        if done:
            self._tick(done)

    def _send(self, batch: list[LocalInstance]) -> None:
        queue: deque[list[LocalInstance]] = deque([batch])
        failures = 0
        while queue:
            pending = queue.popleft()
            outcome = self.destination.store(pending)
            self._record(outcome)
            queue.extend([inst] for inst in outcome.split)
            if not outcome.retry:
                failures = 0
                continue
            failures += 1
            if failures >= self.retry.attempts:
                raise ServerUnreachable(
                    f"{outcome.reason}; gave up after {failures} attempts",
                    hint="the server stopped answering; run the same command again when it is "
                    "back: instances it already holds are skipped",
                )
            pause = self.retry.wait(failures)
            self.log(
                f"{outcome.reason}; retrying {len(outcome.retry)} instance(s) in {pause:.1f} s "
                f"(attempt {failures + 1} of {self.retry.attempts})"
            )
            time.sleep(pause)
            left = self._not_arrived(outcome.retry)
            if left:
                queue.appendleft(left)

    def _not_arrived(self, instances: list[LocalInstance]) -> list[LocalInstance]:
        """Those of ``instances`` the server does not hold; the others count as sent."""
        held: set[str] = set()
        try:
            for study, series in _by_series(instances):
                held |= self.destination.held_instances(study, series, retry=False)
        except TransientError:
            return instances
        arrived = [i for i in instances if i.sop_instance_uid in held]
        self._record(BatchOutcome(stored=arrived))
        return [i for i in instances if i.sop_instance_uid not in held]

    def _verify(self) -> None:
        report = self.report
        if not report.sent:
            report.verified = True
            return
        held: set[str] = set()
        try:
            for study, series in _by_series(report.sent):
                held |= self.destination.held_instances(study, series)
        except PacsError as exc:
            exc.attach(report, report.summary(), prefix="the final check failed: ")
            raise
        missing = [i for i in report.sent if i.sop_instance_uid not in held]
        report.sent = [i for i in report.sent if i.sop_instance_uid in held]
        report.rejected.extend(Rejection(i, NOT_HELD) for i in missing)
        report.verified = True


def push(
    src: Path,
    destination: Destination,
    *,
    batch_size: int = 20,
    batch_bytes: int = 256 << 20,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
) -> PushReport:
    """Push ``src`` (a DICOM folder or file, or an OME-TIFF converted on the way).

    Returns the report when every instance is on the server; raises
    :class:`~bridge.pacs.errors.PacsError` (with ``.report``) otherwise."""
    pusher = Pusher(
        destination,
        batch_size=batch_size,
        batch_bytes=batch_bytes,
        progress=progress,
        log=log,
    )
    with instances_of(Path(src), progress=progress) as instances:
        return pusher.run(instances)
