"""Keyed replacements: UIDs (PS3.15 E.1.1 action U), identifiers (D) and date shifts (the
Retain Longitudinal Temporal Information with Modified Dates Option, E.3.6).

Every replacement is an HMAC-SHA256 of the original under the user's secret key, so the same
source and key give the same output, and nobody without the key can recompute it. No key: a
random one, used once and never written. Every replacement is remembered for the audit record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

#: the form of every identifier pseudonym; ``check --phi`` accepts it in de-identified data
PSEUDONYM_PREFIX = "DEID-"
DUMMY_DATE = "19000101"


@dataclass
class Remapper:
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    uids: dict[str, str] = field(default_factory=dict)
    identifiers: dict[str, str] = field(default_factory=dict)

    def _digest(self, kind: str, value: str) -> bytes:
        return hmac.new(self.key, f"{kind}:{value}".encode(), hashlib.sha256).digest()

    def uid(self, old: str) -> str:
        """A new UID under 2.25 (PS3.5 B.2) for ``old``; the same ``old`` always gets the same."""
        old = str(old).strip().rstrip("\x00")
        if not old:
            return old
        if old not in self.uids:
            self.uids[old] = f"2.25.{int.from_bytes(self._digest('uid', old)[:16], 'big')}"
        return self.uids[old]

    def identifier(self, old: str) -> str:
        """A pseudonym (16 characters, fits SH) for an identifier; consistent across files."""
        old = str(old).strip()
        if not old:
            return old
        if old not in self.identifiers:
            self.identifiers[old] = PSEUDONYM_PREFIX + self._digest("id", old).hex()[:11].upper()
        return self.identifiers[old]

    @property
    def shift_days(self) -> int:
        """How many days every date moves back (1 to 10 years), from the key."""
        return 365 + int.from_bytes(self._digest("dates", "shift")[:4], "big") % 3288

    def shift_date(self, value: str) -> str:
        """A DA (YYYYMMDD) or the date part of a DT moved back by :attr:`shift_days`; what is
        not a date becomes the dummy date."""
        text = str(value).strip()
        try:
            day = dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))
        except (ValueError, IndexError):
            return DUMMY_DATE + text[8:] if len(text) > 8 else DUMMY_DATE
        moved = day - dt.timedelta(days=self.shift_days)
        return moved.strftime("%Y%m%d") + text[8:]
