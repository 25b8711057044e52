"""Load the declarative tables in ``mappings/`` (installed as the package ``bridge.mappings``)."""

from __future__ import annotations

import functools
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import MetadataError


def _read(name: str) -> bytes:
    try:
        return resources.files("bridge.mappings").joinpath(name).read_bytes()
    except ModuleNotFoundError:  # running from a source tree that was never installed
        return (Path(__file__).resolve().parents[1] / "mappings" / name).read_bytes()


@functools.cache
def table(name: str) -> dict[str, Any]:
    """The parsed TOML table ``mappings/<name>.toml``."""
    return tomllib.loads(_read(f"{name}.toml").decode("utf-8"))


def length_to_um(value: float, unit: str | None, *, what: str = "length") -> float:
    """Convert an OME length (UnitsLength symbol, default µm) to micrometres."""
    symbol = unit or "µm"
    factors = table("units")["length"]
    if symbol not in factors:
        raise MetadataError(
            f"{what} is given in {symbol!r}, which is not a physical length",
            hint="give PhysicalSize in a length unit such as µm, or pass --pixel-size",
        )
    return float(value) * factors[symbol] * 1e6


def code(group: str, key: str) -> tuple[str, str, str] | None:
    """A coded concept ``(value, scheme, meaning)`` from ``mappings/codes.toml``."""
    entry = table("codes").get(group, {}).get(key)
    return tuple(entry) if entry else None  # type: ignore[return-value]


def associated_kind(name: str | None) -> str | None:
    """DICOM Image Type value 3 for an OME Image name, or None when it is a pyramid."""
    if not name:
        return None
    key = name.strip().rstrip("\x00").strip().lower()
    return table("associated_images")["name_to_kind"].get(key)
