"""Annotations that reach outside the image they are written against.

PS3.3 C.37.1.2: the 2D coordinates of a Microscopy Bulk Simple Annotations instance are
positions in the Total Pixel Matrix of the referenced image, whose extent is
[0, Total Pixel Matrix Columns] x [0, Total Pixel Matrix Rows] (the corner-origin convention
of MAPPING.md 3.1). ``omedicom check`` refuses points outside it (ANN-coordinates), so the
writer brings them inside and says what it changed:

* an annotation whose bounding box does not meet the image at all is dropped;
* an ELLIPSE with any axis endpoint outside is dropped (moving one endpoint would no longer
  describe the same ellipse, nor keep its axes perpendicular);
* the outside vertices of the other kinds are moved to the nearest image edge (a polygon drawn
  past the edge of the tissue keeps the part that lies on the image).

The source keeps its original shapes where it is carried (the OME-XML in the DICOM's private
block), so nothing is lost for a way back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..model import AnnotationGroup, GraphicType


@dataclasses.dataclass(frozen=True)
class Fitted:
    """The group brought inside the image (``None`` when nothing of it lies there) and what
    was changed, in words (``None`` when nothing was)."""

    group: AnnotationGroup | None
    note: str | None


def fit_to_image(group: AnnotationGroup, columns: int, rows: int, name: str) -> Fitted:
    """``group`` with every point inside [0, columns] x [0, rows]; see the module docstring."""
    xy = np.asarray(group.coordinates, dtype=np.float64)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] <= columns) & (xy[:, 1] >= 0) & (xy[:, 1] <= rows)
    if inside.all():
        return Fitted(group, None)
    offsets = np.asarray(group.offsets, dtype=np.int64)
    count = len(offsets)
    lo = np.minimum.reduceat(xy, offsets, axis=0)
    hi = np.maximum.reduceat(xy, offsets, axis=0)
    meets = (hi[:, 0] >= 0) & (lo[:, 0] <= columns) & (hi[:, 1] >= 0) & (lo[:, 1] <= rows)
    all_inside = np.logical_and.reduceat(inside, offsets)
    keep = all_inside if group.graphic_type is GraphicType.ELLIPSE else meets
    outside_points = int((~inside).sum())
    dropped = int(count - keep.sum())
    moved = int((~inside & np.repeat(keep, np.diff(np.append(offsets, len(xy))))).sum())
    extent = f"(0..{columns} x 0..{rows} pixels)"
    parts = []
    if dropped:
        parts.append(f"{dropped} of {count} annotation(s) lying outside were dropped")
    if moved:
        parts.append(f"{moved} point(s) were moved to the nearest image edge")
    note = f"{name} has {outside_points} point(s) outside the image {extent}: " + "; ".join(parts)
    if not keep.any():
        return Fitted(None, note)
    lengths = np.diff(np.append(offsets, len(xy)))
    point_keep = np.repeat(keep, lengths)
    coords = xy[point_keep].copy()
    np.clip(coords[:, 0], 0, columns, out=coords[:, 0])
    np.clip(coords[:, 1], 0, rows, out=coords[:, 1])
    kept_lengths = lengths[keep]
    new_offsets = np.concatenate(([0], np.cumsum(kept_lengths)[:-1])).astype(offsets.dtype)
    measurements = tuple(
        dataclasses.replace(m, values=np.asarray(m.values)[keep]) for m in group.measurements
    )
    objects = None if group.objects is None else np.asarray(group.objects)[keep]
    fitted = dataclasses.replace(
        group,
        coordinates=coords,
        offsets=new_offsets,
        measurements=measurements,
        objects=objects,
    )
    return Fitted(fitted, note)
