"""Retry with exponential backoff on transient failures.

Transient: the connection was refused, reset or timed out after the server had answered once
(it is restarting), HTTP 5xx, 429 and 408, a DIMSE association aborted mid-transfer. Never
retried: 4xx client errors, authentication refusals, TLS verification failures, rejected
instances, and a server that has not answered even once (a wrong address does not heal).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class TransientError(Exception):
    """A failure that may pass: the caller waits and tries again."""


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the n-th wait is ``delay * factor**(n-1)`` seconds, capped at
    ``max_delay``, with ±20 % jitter so that many clients do not retry in step."""

    attempts: int = 5
    delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    def wait(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.delay * self.factor ** (attempt - 1), self.max_delay)
        return base * random.uniform(0.8, 1.2)


def retrying(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, float, TransientError], None] | None = None,
) -> T:
    """Run ``action``; on :class:`TransientError` wait and try again, up to ``policy.attempts``
    times in all. The last error propagates."""
    attempt = 1
    while True:
        try:
            return action()
        except TransientError as exc:
            if attempt >= policy.attempts:
                raise
            pause = policy.wait(attempt)
            if on_retry is not None:
                on_retry(attempt, pause, exc)
            time.sleep(pause)
            attempt += 1
