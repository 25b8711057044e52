"""PS3.15 Annex E Table E.1-1, kept as data in ``mappings/deid_profile.toml`` (regenerated from
the standard by ``scripts/deid_table.py``), and the options of PS3.15 E.3 a user selects.

The table gives each attribute a Basic Profile action (E.1.1): D (replace with a dummy value),
Z (zero length or dummy), X (remove), K (keep), C (clean), U (replace UID), or a choice
(X/Z, X/D, X/Z/D, Z/D, X/Z/U*); an option column may override it. :func:`action` resolves one
action for an attribute under the selected options.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..tables import table
from .names import OPTION_NAMES


@dataclass(frozen=True)
class Options:
    """The options of PS3.15 E.3 in use (names from :data:`OPTION_NAMES`) and the WSI policy."""

    selected: frozenset[str] = frozenset()
    labels: str = "drop"  # drop | keep
    overview: str = "drop"  # drop | keep | redact
    label_region: tuple[int, int, int, int] | None = None  # with redact: X, Y, W, H

    def __post_init__(self) -> None:
        unknown = self.selected - set(OPTION_NAMES)
        if unknown:
            raise ValueError(f"unknown option(s): {', '.join(sorted(unknown))}")

    def has(self, name: str) -> bool:
        return name in self.selected

    @property
    def dates(self) -> str:
        """``full``, ``modified`` or ``removed`` (Longitudinal Temporal Information Modified)."""
        if self.has("retain-full-dates"):
            return "full"
        if self.has("retain-modified-dates"):
            return "modified"
        return "removed"

    def codes(self) -> list[tuple[str, str, str]]:
        """CID 7050 codes (value, scheme, meaning) of the profile and every option used, read
        from pydicom's copy of PS3.16 (so they cannot drift from the standard)."""
        from pydicom.sr.codedict import codes

        names = ["BasicApplicationConfidentialityProfile"] + [
            OPTION_NAMES[n][1] for n in sorted(self.selected)
        ]
        out = []
        for name in names:
            code = getattr(codes.DCM, name)
            out.append((code.value, code.scheme_designator, code.meaning))
        return out


@dataclass(frozen=True)
class Entry:
    name: str
    basic: str
    options: tuple[tuple[str, str], ...]


@functools.cache
def _entries() -> tuple[dict[int, Entry], list[tuple[str, Entry]]]:
    exact: dict[int, Entry] = {}
    masked: list[tuple[str, Entry]] = []
    for key, row in table("deid_profile")["attributes"].items():
        opts = tuple((k, v) for k, v in row.items() if k not in ("name", "basic", "removed_since"))
        entry = Entry(row["name"], row["basic"], opts)
        if len(key) == 8 and all(c in "0123456789abcdef" for c in key):
            exact[int(key, 16)] = entry
        elif len(key) == 8:
            masked.append((key, entry))
    return exact, masked


@functools.cache
def _extra_uids() -> frozenset[int]:
    return frozenset(int(k, 16) for k in table("deid_uids")["uids"])


def source() -> dict[str, str]:
    """Where the table came from (edition, packages), for the audit record."""
    return dict(table("deid_profile")["source"])


def entry(tag: int) -> Entry | None:
    """The Table E.1-1 row of a (public) tag, or None when the table does not list it."""
    exact, masked = _entries()
    if tag in exact:
        return exact[tag]
    text = f"{tag:08x}"
    for key, found in masked:
        if all(k in ("x", t) for k, t in zip(key, text, strict=True)):
            return found
    return None


def action(tag: int, options: Options) -> str | None:
    """The action for ``tag`` under ``options``: the table's Basic Profile action, unless a
    selected option's column says K (keep) or C (clean); Retain UIDs keeps every U (E.3.9).
    None when the table does not list the attribute (it is kept)."""
    found = entry(tag)
    if found is None:
        if tag in _extra_uids():  # mappings/deid_uids.toml: references the table misses
            return "K" if options.has("retain-uids") else "U"
        return None
    columns = dict(found.options)
    chosen = [
        columns[OPTION_NAMES[n][0]] for n in options.selected if OPTION_NAMES[n][0] in columns
    ]
    if "K" in chosen:
        return "K"
    if "C" in chosen:
        return "C"
    if options.has("retain-uids") and "U" in found.basic:
        return "K"
    return found.basic
