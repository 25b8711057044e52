"""The checked geometry of one VL Whole Slide Microscopy instance, read from its header once.

Every number the reader sizes something by enters here and is checked before anything is
allocated from it (issue 12: hostile headers must not reach the writers or exhaust memory):

* Rows, Columns (PS3.3 C.7.6.3): the frame size, 1 to 65535;
* Samples per Pixel: 1 or 3, Bits Allocated: 8 or 16 (the WSM Image Module, PS3.3 C.8.12.4);
* Total Pixel Matrix Columns/Rows (C.8.12.4, UL) and Total Pixel Matrix Focal Planes;
* Number of Frames (C.7.6.6) and the Optical Path Sequence (C.8.12.5);
* Dimension Organization Type (C.7.6.17.3): TILED_FULL frames fill the tile grid x focal
  planes x optical paths exactly, so their count must be that product; TILED_SPARSE frames
  each have a Per-frame Functional Groups item, so their count is that sequence's length.

The sizes are bounded by the file's own bytes, not by fixed caps: a TILED_FULL instance needs
as many frames as its grid has tiles, and the frames must be in the Pixel Data (checked when
the frames are indexed, ``frames.index_frames``); a TILED_SPARSE instance cannot have more
focal planes than frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MetadataError

#: Largest UL value (PS3.5 6.2): Total Pixel Matrix Columns/Rows.
_UL_MAX = 2**32 - 1


@dataclass(frozen=True)
class Geometry:
    """Checked sizes of one instance; ``size`` is the Total Pixel Matrix (columns, rows)."""

    rows: int
    columns: int
    samples: int
    bits: int
    size: tuple[int, int]
    focal_planes: int
    optical_paths: int
    frames: int
    tiled_full: bool
    concatenated: bool

    @property
    def grid(self) -> tuple[int, int]:
        """Tile columns and rows of the Total Pixel Matrix."""
        return -(-self.size[0] // self.columns), -(-self.size[1] // self.rows)

    @property
    def frame_bytes(self) -> int:
        """Bytes of one native frame: Rows x Columns x Samples per Pixel x bytes per sample."""
        return self.rows * self.columns * self.samples * (self.bits // 8)

    @property
    def full_frames(self) -> int:
        """Frames a TILED_FULL instance (or concatenation) holds: tiles x planes x paths."""
        nx, ny = self.grid
        return nx * ny * self.focal_planes * self.optical_paths


def _value(ds: Any, keyword: str) -> Any:
    value = ds.get(keyword)
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) == 1 else value
    return value


def integer(
    ds: Any,
    keyword: str,
    name: str,
    path: Path | str,
    *,
    low: int,
    high: int,
    default: int | None = None,
) -> int:
    """An integer attribute in ``[low, high]``; ``default`` when absent or empty (else an
    error). ``name`` is how a person reads the attribute ("Total Pixel Matrix Columns")."""
    value = _value(ds, keyword)
    if value is None or value == "":
        if default is not None:
            return default
        raise MetadataError(f"{name} is missing", path=path)
    try:
        number = int(value)
        if number != float(value):
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise MetadataError(f"{name} is {value!r}, not a whole number", path=path) from None
    if not low <= number <= high:
        span = f"{low} to {high}" if high < _UL_MAX else f"at least {low}"
        raise MetadataError(f"{name} is {number}; it must be {span}", path=path)
    return number


def finite(value: Any, name: str, path: Path | str, *, positive: bool = False) -> float:
    """A decimal value that is a finite number (and > 0 with ``positive``)."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise MetadataError(f"{name} is {str(value)!r}, not a number", path=path) from None
    if not math.isfinite(number) or (positive and number <= 0):
        want = "a positive number" if positive else "a finite number"
        raise MetadataError(f"{name} is {str(value)!r}; it must be {want}", path=path)
    return number


def of(path: Path | str, ds: Any) -> Geometry:
    """Check and return the geometry of one instance (header only, nothing allocated)."""
    rows = integer(ds, "Rows", "Rows", path, low=1, high=65535)
    columns = integer(ds, "Columns", "Columns", path, low=1, high=65535)
    samples = integer(ds, "SamplesPerPixel", "Samples per Pixel", path, low=0, high=65535)
    if samples not in (1, 3):
        raise MetadataError(
            f"Samples per Pixel is {samples}; a whole-slide image has 1 (greyscale) or 3 "
            "(colour) samples (PS3.3 C.8.12.4)",
            path=path,
        )
    bits = integer(ds, "BitsAllocated", "Bits Allocated", path, low=0, high=65535)
    if bits not in (8, 16):
        raise MetadataError(
            f"Bits Allocated is {bits}; a whole-slide image stores 8 or 16 bits per sample "
            "(PS3.3 C.8.12.4)",
            path=path,
        )
    cols_total = integer(
        ds, "TotalPixelMatrixColumns", "Total Pixel Matrix Columns", path, low=1, high=_UL_MAX,
        default=columns,
    )  # fmt: skip
    rows_total = integer(
        ds, "TotalPixelMatrixRows", "Total Pixel Matrix Rows", path, low=1, high=_UL_MAX,
        default=rows,
    )  # fmt: skip
    planes = integer(
        ds, "TotalPixelMatrixFocalPlanes", "Total Pixel Matrix Focal Planes", path, low=1,
        high=_UL_MAX, default=1,
    )  # fmt: skip
    frames = integer(ds, "NumberOfFrames", "Number of Frames", path, low=1, high=_UL_MAX, default=1)
    paths = max(1, len(ds.get("OpticalPathSequence", None) or ()))
    organisation = str(ds.get("DimensionOrganizationType", "") or "")
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    tiled_full = organisation == "TILED_FULL" or (not per_frame and organisation != "TILED_SPARSE")
    concatenated = "ConcatenationUID" in ds
    geometry = Geometry(
        rows, columns, samples, bits, (cols_total, rows_total), planes, paths, frames,
        tiled_full, concatenated,
    )  # fmt: skip
    if tiled_full and not concatenated and frames != geometry.full_frames:
        nx, ny = geometry.grid
        raise MetadataError(
            f"Number of Frames is {frames}, but the TILED_FULL tile grid needs "
            f"{geometry.full_frames}: {nx}×{ny} tiles of {columns}×{rows} for the "
            f"{cols_total}×{rows_total} Total Pixel Matrix × {planes} focal plane(s) × "
            f"{paths} optical path(s) (PS3.3 C.7.6.17.3)",
            path=path,
            hint="the header disagrees with itself; re-export the slide from its source",
        )
    if tiled_full and concatenated and frames > geometry.full_frames:
        raise MetadataError(
            f"Number of Frames is {frames}, more than the {geometry.full_frames} tiles of the "
            "whole concatenation's TILED_FULL grid (PS3.3 C.7.6.17.3)",
            path=path,
        )
    if not tiled_full and len(per_frame or ()) != frames:
        raise MetadataError(
            f"Number of Frames is {frames}, but the TILED_SPARSE Per-frame Functional Groups "
            f"Sequence has {len(per_frame or ())} item(s); each frame needs one (PS3.3 C.7.6.16)",
            path=path,
        )
    if not tiled_full and planes > frames:
        raise MetadataError(
            f"Total Pixel Matrix Focal Planes is {planes}, more than the {frames} frame(s) "
            "the instance holds",
            path=path,
        )
    return geometry


def check_concatenations(instances: list[tuple[Path, Any]], shapes: dict[int, Geometry]) -> None:
    """The members of each TILED_FULL concatenation (PS3.3 C.7.6.16.2.2.4) hold together
    exactly the frames of its grid x planes x paths (C.7.6.17.3). ``shapes`` maps ``id(ds)``
    to :func:`of`'s geometry. Run before anything is sized by focal planes or frames."""
    totals: dict[str, int] = {}
    for _, ds in instances:
        shape = shapes[id(ds)]
        if shape.concatenated and shape.tiled_full:
            key = str(ds.ConcatenationUID)
            totals[key] = totals.get(key, 0) + shape.frames
    for path, ds in instances:
        shape = shapes[id(ds)]
        if shape.concatenated and shape.tiled_full:
            total = totals[str(ds.ConcatenationUID)]
            if total != shape.full_frames:
                raise MetadataError(
                    f"the concatenation's instances hold {total} frames in all, but its "
                    f"TILED_FULL tile grid needs {shape.full_frames} (Total Pixel Matrix "
                    f"{shape.size[0]}×{shape.size[1]}, {shape.focal_planes} focal plane(s), "
                    f"{shape.optical_paths} optical path(s); PS3.3 C.7.6.17.3)",
                    path=path,
                )
