"""A progress bar on a terminal, silence otherwise (no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts work units; draws ``label [#####.....] 52% 1234/2345`` on stderr when it is a TTY.

    Redraws at most ten times a second, so the per-tile cost is one addition and one clock read.
    """

    def __init__(
        self, total: int, label: str, *, enabled: bool | None = None, stream: TextIO | None = None
    ):
        self.total = max(total, 1)
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self._last = 0.0
        self._start = time.monotonic()

    def __call__(self, n: int = 1) -> None:
        self.done += n
        if self.enabled:
            now = time.monotonic()
            if now - self._last >= 0.1 or self.done >= self.total:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        fraction = min(self.done / self.total, 1.0)
        width = 30
        filled = int(fraction * width)
        bar = "#" * filled + "." * (width - filled)
        elapsed = now - self._start
        self.stream.write(
            f"\r{self.label} [{bar}] {fraction:4.0%} {self.done}/{self.total} {elapsed:5.1f}s"
        )
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
