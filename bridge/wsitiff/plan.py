"""What a dialect module hands the common reader: the images of a file as TIFF pages plus the
metadata it read, before any tile source is made."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import tifffile

from ..model import Channel, Equipment, ImageKind, Objective

#: One level: its TIFF page per (focal plane z, channel c).
LevelPages = dict[tuple[int, int], tifffile.TiffPage]


@dataclass(frozen=True)
class ImagePlan:
    """One image of the slide (a pyramid or an associated image) as the dialect sees it."""

    kind: ImageKind
    name: str
    levels: tuple[LevelPages, ...] = field(repr=False)
    pixel_size_um: tuple[float, float] | None = None
    channels: tuple[Channel, ...] = ()
    objective: Objective | None = None
    acquired: datetime | None = None
    description: str | None = None
    #: slide position (mm) of the top-left corner of pixel (0, 0), when the dialect gives one
    origin_mm: tuple[float, float] | None = None
    #: DICOM Image Orientation (Slide) that goes with ``origin_mm``
    orientation: tuple[float, float, float, float, float, float] | None = None


@dataclass(frozen=True)
class DialectPlan:
    """A dialect's reading of one file: its name (``omedicom info``), the images, notes."""

    dialect: str
    images: tuple[ImagePlan, ...]
    warnings: tuple[str, ...] = ()
    equipment: Equipment = field(default_factory=Equipment)
