"""The batch ledger: one SQLite row per task, beside the output.

A row is ``pending``, ``running``, ``done`` or ``failed`` (with its reason). Only the batch
process writes it, in one transaction per change, so a killed batch leaves every row as it
last was; ``running`` rows found at start belong to a batch that died and are reset to
``pending`` (their output, if any, is redone with the same UIDs).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputError

STATES = ("pending", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    destination   TEXT PRIMARY KEY,
    source        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    reason        TEXT,
    source_sha256 TEXT,
    source_stat   TEXT,
    options       TEXT,
    attempts      INTEGER NOT NULL DEFAULT 0,
    foreign_output INTEGER NOT NULL DEFAULT 0,
    updated       REAL NOT NULL,
    result        TEXT
)
"""


@dataclass(frozen=True)
class Row:
    destination: str
    source: str
    state: str
    reason: str | None
    source_sha256: str | None
    source_stat: str | None
    options: str | None
    attempts: int
    result: dict[str, Any] | None


class Ledger:
    """The ledger at ``path`` (created if absent)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot open the batch ledger ({exc})", path=path) from None

    def close(self) -> None:
        self.db.close()

    def get(self, destination: str) -> Row | None:
        cur = self.db.execute(
            "SELECT destination, source, state, reason, source_sha256, source_stat, options, "
            "attempts, result FROM tasks WHERE destination = ?",
            (destination,),
        )
        found = cur.fetchone()
        if found is None:
            return None
        *head, result = found
        return Row(*head, json.loads(result) if result else None)

    def rows(self) -> list[Row]:
        cur = self.db.execute("SELECT destination FROM tasks ORDER BY destination")
        return [r for (d,) in cur.fetchall() if (r := self.get(d)) is not None]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self.db.execute("SELECT state, COUNT(*) FROM tasks GROUP BY state"):
            out[state] = n
        return out

    def recover(self) -> int:
        """Reset the ``running`` rows a dead batch left to ``pending``; how many there were."""
        cur = self.db.execute(
            "UPDATE tasks SET state = 'pending', reason = 'interrupted (the batch stopped)', "
            "updated = ? WHERE state = 'running'",
            (time.time(),),
        )
        return cur.rowcount

    def upsert(self, destination: str, source: str, *, exists: bool) -> None:
        """Add the task as ``pending`` unless it is known; ``exists``: its destination is
        there already, made by something else than this ledger's batches (never replaced)."""
        self.db.execute(
            "INSERT OR IGNORE INTO tasks (destination, source, state, updated, foreign_output) "
            "VALUES (?, ?, 'pending', ?, ?)",
            (destination, source, time.time(), int(exists)),
        )

    def ours(self, destination: str) -> bool:
        """Whether the destination is this ledger's to replace (it did not exist when the
        task was first recorded)."""
        cur = self.db.execute(
            "SELECT foreign_output FROM tasks WHERE destination = ?", (destination,)
        )
        found = cur.fetchone()
        return found is not None and not found[0]

    def start(self, destination: str) -> None:
        self.db.execute(
            "UPDATE tasks SET state = 'running', reason = NULL, attempts = attempts + 1, "
            "updated = ? WHERE destination = ?",
            (time.time(), destination),
        )

    def finish(
        self,
        destination: str,
        *,
        state: str,
        reason: str | None = None,
        source_sha256: str | None = None,
        source_stat: str | None = None,
        options: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        assert state in ("done", "failed", "pending")
        self.db.execute(
            "UPDATE tasks SET state = ?, reason = ?, source_sha256 = COALESCE(?, source_sha256), "
            "source_stat = COALESCE(?, source_stat), options = COALESCE(?, options), "
            "result = ?, updated = ? WHERE destination = ?",
            (
                state,
                reason,
                source_sha256,
                source_stat,
                options,
                json.dumps(result) if result is not None else None,
                time.time(),
                destination,
            ),
        )
