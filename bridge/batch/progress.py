"""One overall progress line for a batch: done / failed / remaining, slides per minute, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class BatchProgress:
    """``batch [#####.....] 5 done, 1 failed, 6 left  2.4 slides/min  ETA 2m30s`` on stderr,
    redrawn when a slide ends (and only on a terminal unless ``enabled``)."""

    def __init__(
        self,
        total: int,
        *,
        done: int = 0,
        failed: int = 0,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ):
        self.total = total
        self.done = done
        self.failed = failed
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self._start = time.monotonic()
        self._finished_here = 0
        self._width = 0

    @property
    def remaining(self) -> int:
        return max(self.total - self.done - self.failed, 0)

    def rate(self) -> float:
        """Slides finished (done or failed) per minute in this run."""
        minutes = (time.monotonic() - self._start) / 60
        return self._finished_here / minutes if minutes > 0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        return self.remaining / rate * 60 if rate > 0 else None

    def line(self) -> str:
        width = 30
        fraction = (self.done + self.failed) / self.total if self.total else 1.0
        filled = int(fraction * width)
        bar = "#" * filled + "." * (width - filled)
        eta = self.eta()
        eta_text = "--" if eta is None else _duration(eta)
        return (
            f"batch [{bar}] {self.done} done, {self.failed} failed, {self.remaining} left"
            f"  {self.rate():.1f} slides/min  ETA {eta_text}"
        )

    def finished(self, ok: bool) -> None:
        self._finished_here += 1
        if ok:
            self.done += 1
        else:
            self.failed += 1
        self.draw()

    def draw(self, end: str = "") -> None:
        if self.enabled:
            line = self.line()
            # spaces over what a longer previous line left behind
            self.stream.write("\r" + line.ljust(self._width) + end)
            self.stream.flush()
            self._width = len(line)

    def close(self) -> None:
        self.draw("\n")


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
