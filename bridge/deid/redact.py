"""``--overview redact``: blank the slide label's region in an OVERVIEW image and keep it.

The only place de-identification touches pixels: the overview is decoded (pydicom), the region
the user gives (``--label-region X,Y,W,H``, in the overview's total pixel matrix) set to black,
and the frames stored uncompressed (Explicit VR Little Endian, RGB), so that no second lossy
generation is added. Lossy Image Compression keeps its history (PS3.3 C.7.6.1.1.5).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ..errors import InputError, UnsupportedError

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

Region = tuple[int, int, int, int]


def parse_region(text: str) -> Region:
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise InputError(
            f"--label-region {text!r} is not X,Y,W,H",
            hint="four whole numbers in overview pixels, e.g. --label-region 0,0,300,480",
        ) from None
    if min(x, y) < 0 or min(w, h) <= 0:
        raise InputError(f"--label-region {text!r}: X,Y must be >= 0 and W,H > 0")
    return x, y, w, h


def redact(ds: Dataset, region: Region) -> None:
    """Blank ``region`` in the overview ``ds`` (in place) and store it uncompressed."""
    import numpy as np
    from pydicom.uid import ExplicitVRLittleEndian

    if "PixelData" not in ds:
        return
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress(as_rgb=True)  # YBR -> RGB; the transfer syntax becomes native
    frames = ds.pixel_array
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if count == 1:
        frames = frames[np.newaxis]
    rows, cols = int(ds.Rows), int(ds.Columns)
    total_cols = int(ds.get("TotalPixelMatrixColumns", cols))
    total_rows = int(ds.get("TotalPixelMatrixRows", rows))
    across = math.ceil(total_cols / cols)
    down = math.ceil(total_rows / rows)
    if count != across * down:
        raise UnsupportedError(
            f"the overview has {count} frames, not one tiled plane of {across}×{down}",
            hint="use --overview drop",
        )
    x, y, w, h = region
    frames = np.array(frames, copy=True)
    for index in range(count):
        top, left = (index // across) * rows, (index % across) * cols
        y0, y1 = max(y - top, 0), min(y + h - top, rows)
        x0, x1 = max(x - left, 0), min(x + w - left, cols)
        if y0 < y1 and x0 < x1:
            frames[index, y0:y1, x0:x1] = 0
    ds.PixelData = frames.tobytes()
    ds["PixelData"].VR = "OB" if ds.BitsAllocated <= 8 else "OW"
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
