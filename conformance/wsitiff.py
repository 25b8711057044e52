"""Scanner TIFF dialects (a TIFF without OME-XML): Aperio SVS, Hamamatsu NDPI, Akoya QPTIFF,
Philips, generic pyramids.

Read with tifffile directly, as the OME-TIFF checks are: the dialect tifffile recognises, the
TIFF structure (the converter's page checks, as ``OME-tiff-structure``), tile sizes
(``OME-tile-size``), each series' levels, and whether the dialect gives a pixel size
(``mappings/wsi_tiff_dialects.md`` lists where each dialect keeps it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import tifffile

from .catalog import finding
from .findings import Finding, Severity

W, INFO = Severity.WARNING, Severity.INFO

_NAMES = {
    "svs": "Aperio SVS",
    "qpi": "Akoya QPTIFF",
    "ndpi": "Hamamatsu NDPI",
    "philips": "Philips TIFF",
}


def dialect(tf: tifffile.TiffFile) -> str:
    for flag, name in _NAMES.items():
        if getattr(tf, f"is_{flag}", False):
            return name
    return "generic pyramidal TIFF"


def check(path: Path, name: str, tf: tifffile.TiffFile) -> Iterator[Finding]:
    """Every check of a TIFF without OME-XML (``tf`` is open; the caller closes it)."""
    from . import ome

    where = {"file": name}
    kind = dialect(tf)
    damaged = list(ome._structure(path, tf, where))
    yield from damaged
    if damaged:
        return
    series = tf.series
    summary = "; ".join(
        f"{s.name or 'series ' + str(i)}: {len(s.levels)} level(s) {s.levels[0].shape}"
        for i, s in enumerate(series)
    )
    yield finding(
        "TIFF-dialect",
        f"no OME-XML: read as {kind} ({summary})",
        severity=INFO,
        attribute="IFD 0 ImageDescription",
        **where,
    )
    if not series:
        yield finding("TIFF-dialect", f"tifffile finds no image series in this {kind}", **where)
        return
    yield from _levels(series[0], where)
    yield from _pixel_size(tf, kind, where)
    yield from ome._tiles(tf, where)


def _levels(base: tifffile.TiffPageSeries, where: dict) -> Iterator[Finding]:
    """Levels strictly shrink; each is about half (or a power of two of) the one above."""
    sizes = [(lv.keyframe.imagewidth, lv.keyframe.imagelength) for lv in base.levels]
    for j in range(1, len(sizes)):
        (w0, h0), (w1, h1) = sizes[j - 1], sizes[j]
        if w1 >= w0 or h1 >= h0:
            yield finding(
                "TIFF-levels",
                f"level {j} ({w1} x {h1}) is not smaller than level {j - 1} ({w0} x {h0})",
                level=j,
                **where,
            )
        elif abs((w0 / w1) / (h0 / h1) - 1) > 0.05:
            yield finding(
                "TIFF-levels",
                f"level {j} shrinks by {w0 / w1:.3g} in x but {h0 / h1:.3g} in y",
                severity=W,
                level=j,
                **where,
            )


def _pixel_size(tf: tifffile.TiffFile, kind: str, where: dict) -> Iterator[Finding]:
    from bridge.wsitiff import generic, svs

    page = tf.pages.first
    notes: list[str] = []
    if kind == "Aperio SVS":
        mpp = svs.properties(page.description).get("MPP")
        found = mpp is not None
        why = "the Aperio description has no MPP"
    else:
        found = generic.pixel_size(page, notes) is not None
        why = notes[0] if notes else "the TIFF has no XResolution/YResolution"
    if not found:
        yield finding(
            "TIFF-pixel-size",
            f"{why}: converting to DICOM needs --pixel-size",
            severity=W,
            attribute="IFD 0",
            **where,
        )
