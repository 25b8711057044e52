"""Where each OME Image lies on the slide: Plane PositionX/Y ⇄ DICOM Total Pixel Matrix Origin.

OME has no slide frame (MAPPING.md 2.4); what it has is the stage position at which each plane
was acquired, ``Pixels/Plane/@PositionX`` and ``@PositionY`` with ``PositionXUnit`` /
``PositionYUnit`` (ome-2016-06.xsd Plane: "The X position of the stage", unit default
"reference frame"). A multi-position acquisition stores one OME Image per stage position, and
those positions say how the Images lie relative to each other on the glass. DICOM says where
an image lies with the Total Pixel Matrix Origin Sequence (X/Y Offset in Slide Coordinate
System, mm, the top-left corner of pixel 1\\1 here, MAPPING.md 0.6; PS3.3 C.8.12.2.1) and Image
Orientation (Slide) (PS3.3 C.8.12.4.1.5).

The decisions, and why:

* **Which point of the image the stage position is.** The schema does not say. The stage
  position of a plane is where the stage stood when the plane was acquired, that is the point
  of the specimen on the optical axis, the centre of the field of view (ZEISS libCZI
  "Stage coordinates": a sub-block's stage coordinate is that of its centre pixel; OME
  ome-model "Tiled images": the Position values record "the exact location of the plane").
  So PositionX/Y is read as the slide position of the **centre** of the image. For images of
  one size the choice does not change their offsets; for images of different sizes the centre
  is the physical reading.
* **Stage axes.** Stage X runs along image x (columns, left to right) and stage Y along image
  y (rows, top to bottom), as in Micro-Manager's stage convention (origin top-left, X to the
  right and Y down as seen in the image) and libCZI's unrotated case. The writer's Image
  Orientation (Slide) ``0\\1\\0\\1\\0\\0`` (:data:`bridge.model.DEFAULT_ORIENTATION`) puts
  image x (along a row) on slide +Y and image y (down a column) on slide +X, so
  **slide X = stage Y and slide Y = stage X**, no sign change.
* **Absolute values.** Stage coordinates have their own zero (often tens of mm away, or
  negative), so only the offsets between Images are kept as they are. When the whole set lies
  within the 25 × 75 mm slide (:data:`bridge.model.SLIDE_SIZE_MM`) the positions are used as
  slide positions; otherwise the set is shifted so that its bounding box is centred on the
  slide, as a single image without a position is.
* **A deviation from MAPPING.md 4.1**, which says not to read stage X/Y as the slide origin
  without explicit configuration: a multi-position file otherwise puts Images acquired
  millimetres apart at one origin (issue 12). Only the offsets between Images are trusted;
  absolute stage values count only when the whole set lies on the slide.
* **What cannot be placed.** Positions in "reference frame" (no physical length), in "pixel",
  or missing for some Images, and Images without PhysicalSizeX/Y (their extent is unknown),
  keep the default placement (each image centred); a warning says so when the Images differ in
  position, since only then is something lost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from .. import tables
from ..model import DEFAULT_ORIENTATION, SLIDE_SIZE_MM, Image, ImageKind
from . import omexml

#: What a stage position is, in words, for warnings.
_WHAT = "Plane PositionX/PositionY"


def stage_position(pixels: omexml.Pixels, t: int) -> tuple[tuple[float, str], ...] | None:
    """PositionX and PositionY of the first plane of time point ``t`` (TheZ 0, TheC 0) as
    ((x, unit), (y, unit)), or None when that plane lacks either (a point needs both)."""
    for plane in pixels.planes:
        if (plane.the_z, plane.the_c, plane.the_t) == (0, 0, t):
            if plane.position_x is None or plane.position_y is None:
                return None
            return (plane.position_x, plane.position_y)
    return None


def _mm(position: tuple[tuple[float, str], ...], where: str) -> tuple[float, float] | str:
    """A stage position in mm, or what is wrong with it: a unit that is not a physical length
    (UnitsLength "reference frame", "pixel"), or a value too large to stay finite in mm."""
    lengths = tables.table("units")["length"]
    units = sorted({unit for _value, unit in position if unit not in lengths})
    if units:
        return f"the {_WHAT} of {where} are in {' and '.join(map(repr, units))}, no physical length"
    x, y = (tables.length_to_um(value, unit) / 1000.0 for value, unit in position)
    if not (math.isfinite(x) and math.isfinite(y)):
        return f"the {_WHAT} of {where} are too large to be lengths on a slide"
    return (x, y)


def place(
    images: Sequence[Image],
    ome_images: Sequence[omexml.Image],
    t: int,
    warnings: list[str],
) -> tuple[Image, ...]:
    """The images with ``origin_mm`` and ``orientation`` set from the stage positions of their
    OME Images (time point ``t``), keeping their offsets; unchanged when they cannot be placed
    (see the module docstring). Labels, overviews and thumbnails are never placed by stage."""
    volumes = [i for i, image in enumerate(images) if image.kind is ImageKind.VOLUME]
    raw = {i: stage_position(ome_images[images[i].source_index].pixels, t) for i in volumes}
    if not volumes or all(position is None for position in raw.values()):
        return tuple(images)
    differ = len({raw[i] for i in volumes}) > 1
    problem = None
    centres: dict[int, tuple[float, float]] = {}
    for i in volumes:
        position = raw[i]
        image = images[i]
        where = f"image {image.source_index} ({image.name or 'unnamed'})"
        if position is None:
            problem = f"{where} has no {_WHAT}"
            break
        mm = _mm(position, where)
        if isinstance(mm, str):
            problem = mm
            break
        if image.pixel_size_um is None:
            problem = (
                f"{where} has no PhysicalSizeX/PhysicalSizeY in its OME-XML, so its extent "
                "is unknown"
            )
            break
        centres[i] = mm
    if problem is not None:
        if differ:
            warnings.append(
                f"the OME Images were acquired at different stage positions, but {problem}: "
                "they cannot be placed on the slide relative to each other, so each is "
                "centred on it (Total Pixel Matrix Origin) as if it had no position"
            )
        return tuple(images)
    extents = {i: _extent_mm(images[i]) for i in volumes}
    corners = {i: _corner(centres[i], extents[i]) for i in volumes}
    origins = _on_slide(corners, extents)  # finite: every stage position is finite in µm
    placed = list(images)
    for i in volumes:
        placed[i] = dataclasses.replace(
            images[i], origin_mm=origins[i], orientation=DEFAULT_ORIENTATION
        )
    return tuple(placed)


def _extent_mm(image: Image) -> tuple[float, float]:
    """(width, height) of level 0 in mm: image x and image y."""
    assert image.pixel_size_um is not None
    return (
        image.size[0] * image.pixel_size_um[0] / 1000.0,
        image.size[1] * image.pixel_size_um[1] / 1000.0,
    )


def _corner(stage_mm: tuple[float, float], extent: tuple[float, float]) -> tuple[float, float]:
    """Slide (X, Y) of the top-left corner of an image whose centre is at stage (x, y) mm,
    under :data:`DEFAULT_ORIENTATION`: slide X = stage y, slide Y = stage x, and the image's
    height runs along slide X, its width along slide Y."""
    return (stage_mm[1] - extent[1] / 2, stage_mm[0] - extent[0] / 2)


def _on_slide(
    corners: dict[int, tuple[float, float]], extents: dict[int, tuple[float, float]]
) -> dict[int, tuple[float, float]]:
    """The corners as they are when the set lies on the slide, else moved together so that the
    set's bounding box is centred on the slide (offsets taken from the box's corner first, so
    that large stage coordinates lose no precision)."""
    low_x = min(x for x, _ in corners.values())
    low_y = min(y for _, y in corners.values())
    high_x = max(corners[i][0] + extents[i][1] for i in corners)
    high_y = max(corners[i][1] + extents[i][0] for i in corners)
    if low_x >= 0 and low_y >= 0 and high_x <= SLIDE_SIZE_MM[0] and high_y <= SLIDE_SIZE_MM[1]:
        return corners
    start_x = SLIDE_SIZE_MM[0] / 2 - (high_x - low_x) / 2
    start_y = SLIDE_SIZE_MM[1] / 2 - (high_y - low_y) / 2
    return {i: (start_x + (x - low_x), start_y + (y - low_y)) for i, (x, y) in corners.items()}


def stage_from_origin(
    origin_mm: tuple[float, float],
    orientation: Sequence[float],
    extent_mm: tuple[float, float],
) -> tuple[float, float]:
    """The inverse, for DICOM → OME-TIFF: the stage (PositionX, PositionY) in mm of the centre
    of an image with this Total Pixel Matrix Origin, Image Orientation (Slide) and (width,
    height). The centre is ``origin + row cosines · width / 2 + column cosines · height / 2``
    (PS3.3 C.8.12.4.1.5) whatever the orientation; stage x = slide Y, stage y = slide X."""
    rx, ry = orientation[0], orientation[1]
    cx, cy = orientation[3], orientation[4]
    w, h = extent_mm
    centre_x = origin_mm[0] + rx * w / 2 + cx * h / 2
    centre_y = origin_mm[1] + ry * w / 2 + cy * h / 2
    return (centre_y, centre_x)
