"""Aperio SVS: the ImageDescription of the first page (``Aperio Image Library ...|key = value``).

Layout (OpenSlide ``openslide-vendor-aperio.c``, tifffile ``TiffFile._series_svs``): page 0 is
the baseline, the following tiled pages are the reduced levels; the first strip page after
page 0 is the thumbnail; the label (NewSubfileType 1) and macro (NewSubfileType 9) come last.
The description is parsed as OpenSlide does: split at ``|``; the first part is the header,
the others ``key = value`` (a key seen twice keeps its first value, as in OpenSlide).
"""

from __future__ import annotations

import re
from datetime import datetime

import tifffile

from ..errors import InputError
from ..model import Equipment, ImageKind, Objective
from .plan import DialectPlan, ImagePlan

#: tifffile series name -> image kind of an SVS file
_KINDS = {
    "baseline": ImageKind.VOLUME,
    "thumbnail": ImageKind.THUMBNAIL,
    "label": ImageKind.LABEL,
    "macro": ImageKind.OVERVIEW,
}


def _one_line(description: str) -> str:
    """The description with its line breaks (Aperio writes CR LF after the header) made
    spaces: it becomes the Pyramid Description, a Long String, where control characters are
    not allowed (PS3.5 6.2, LO)."""
    return re.sub(r"\s*[\r\n]+\s*", " ", description).strip()


def properties(description: str) -> dict[str, str]:
    """The ``key = value`` pairs of an Aperio ImageDescription (OpenSlide's parse)."""
    parts = description.split("|")
    out: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def _float(props: dict[str, str], key: str, warnings: list[str]) -> float | None:
    text = props.get(key)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        warnings.append(f"the Aperio {key} {text!r} is not a number; it is ignored")
        return None
    if not value > 0 or value == float("inf"):
        warnings.append(f"the Aperio {key} {text!r} is not a positive number; it is ignored")
        return None
    return value


def acquired(props: dict[str, str], warnings: list[str]) -> datetime | None:
    """``Date = MM/DD/YY`` and ``Time = HH:MM:SS`` (Aperio writes US dates, two-digit years;
    OpenSlide and wsidicomizer's ``svs`` metadata read them so)."""
    date, time = props.get("Date"), props.get("Time")
    if not date:
        return None
    text = f"{date} {time or '00:00:00'}"
    for form in ("%m/%d/%y %H:%M:%S", "%m/%d/%Y %H:%M:%S"):
        try:
            return datetime.strptime(text, form)
        except ValueError:
            continue
    warnings.append(f"the Aperio Date/Time {text!r} is not MM/DD/YY HH:MM:SS; it is ignored")
    return None


def plan(tf: tifffile.TiffFile, path: object) -> DialectPlan:
    """The images of an SVS file with the metadata of its description."""
    warnings: list[str] = []
    props = properties(tf.pages.first.description)
    mpp = _float(props, "MPP", warnings)
    mag = _float(props, "AppMag", warnings)
    when = acquired(props, warnings)
    images = []
    for series in tf.series:
        kind = _KINDS.get((series.name or "").lower())
        if kind is None:
            warnings.append(f"the SVS series {series.name!r} is not a known kind; it is skipped")
            continue
        levels = tuple({(0, 0): level.keyframe.aspage()} for level in series.levels)
        if kind is not ImageKind.VOLUME:
            levels = levels[:1]
        volume = kind is ImageKind.VOLUME
        images.append(
            ImagePlan(
                kind=kind,
                name=series.name.lower() if not volume else _name(props, path),
                levels=levels,
                pixel_size_um=(mpp, mpp) if mpp and volume else None,
                objective=Objective(magnification=mag) if mag and volume else None,
                acquired=when,
                description=_one_line(tf.pages.first.description) if volume else None,
            )
        )
    if not any(i.kind is ImageKind.VOLUME for i in images):
        raise InputError("the SVS file has no baseline image", path=path)
    if mpp is None:
        warnings.append("the Aperio description has no MPP: the pixel size is unknown")
    # "Aperio Image Library" writes every SVS; the ScanScope ID names the scanner
    equipment = Equipment(manufacturer="Aperio", serial_number=props.get("ScanScope ID"))
    return DialectPlan("Aperio SVS", tuple(images), tuple(warnings), equipment)


def _name(props: dict[str, str], path: object) -> str:
    return props.get("Filename") or getattr(path, "stem", "") or "Baseline"
