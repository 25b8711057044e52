"""Generic pyramidal TIFF (libvips ``tiffsave --pyramid``, large_image, Bio-Formats' plain
TIFF): the first tifffile series, whose levels are pages or SubIFDs of halving sizes.

The pixel size comes from XResolution / YResolution (TIFF 6.0 tags 282, 283; pixels per
ResolutionUnit, tag 296: 2 inch, 3 centimetre). Writers leave 72, 96 or 300 pixels per inch
(or per centimetre) behind when nobody measured anything (libtiff, libvips, Pillow and
Photoshop defaults), so those values are treated as absent and the user is asked for
``--pixel-size``.
"""

from __future__ import annotations

import tifffile

from ..errors import InputError
from ..model import ImageKind
from .plan import DialectPlan, ImagePlan

#: pixels per inch or per centimetre that writers store as a default, not a measurement
PLACEHOLDER_DENSITIES = (72.0, 96.0, 300.0)
_UM_PER_UNIT = {2: 25400.0, 3: 10000.0}  # ResolutionUnit inch, centimetre


def _density(page: tifffile.TiffPage, code: int) -> float | None:
    tag = page.tags.get(code)
    if tag is None:
        return None
    value = tag.value
    try:
        number = value[0] / value[1] if isinstance(value, tuple) else float(value)
    except (TypeError, ZeroDivisionError, IndexError):
        return None
    return number if number > 0 else None


def is_placeholder(density: float, unit: int) -> bool:
    """Whether ``density`` pixels per ``unit`` is one of the writers' defaults (per inch or,
    written as such, per centimetre)."""
    per_inch = density * 2.54 if unit == 3 else density
    return any(abs(per_inch - p) < 0.01 or abs(density - p) < 0.001 for p in PLACEHOLDER_DENSITIES)


def pixel_size(page: tifffile.TiffPage, warnings: list[str]) -> tuple[float, float] | None:
    """Level-0 pixel size in µm from the resolution tags, or None when absent or a default."""
    unit = int(page.tags.valueof(296, 2))
    x, y = _density(page, 282), _density(page, 283)
    if x is None and y is None:
        return None
    x, y = x or y, y or x
    assert x is not None and y is not None
    if unit not in _UM_PER_UNIT:
        warnings.append(
            "the TIFF resolution tags have no physical unit (ResolutionUnit 1): the pixel "
            "size is unknown"
        )
        return None
    if is_placeholder(x, unit) and is_placeholder(y, unit):
        name = "inch" if unit == 2 else "centimetre"
        warnings.append(
            f"the TIFF resolution ({x:g} × {y:g} pixels per {name}) is a writer's default, "
            "not a measurement: the pixel size is treated as unknown"
        )
        return None
    return (_UM_PER_UNIT[unit] / x, _UM_PER_UNIT[unit] / y)


def plan(tf: tifffile.TiffFile, path: object) -> DialectPlan:
    """The first series as one pyramid (its levels halve in size)."""
    warnings: list[str] = []
    if not tf.series:
        raise InputError("the TIFF holds no image", path=path)
    series = tf.series[0]
    if len(series.pages) > 1:
        warnings.append(
            f"the TIFF's first series holds {len(series.pages)} pages of one size (shape "
            f"{series.shape}); only the first is converted"
        )
    levels = tuple({(0, 0): level.keyframe.aspage()} for level in series.levels)
    first = levels[0][(0, 0)]
    if len(tf.series) > 1:
        warnings.append(
            f"the TIFF holds {len(tf.series) - 1} more image series; only the first is converted"
        )
    image = ImagePlan(
        kind=ImageKind.VOLUME,
        name=getattr(path, "stem", None) or "image",
        levels=levels,
        pixel_size_um=pixel_size(first, warnings),
        description=first.description or None,
    )
    return DialectPlan("generic pyramidal TIFF", (image,), tuple(warnings))
