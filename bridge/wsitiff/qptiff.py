"""Akoya / PerkinElmer QPTIFF (Vectra, Polaris, PhenoCycler): one page per channel per level,
each with its own XML ImageDescription (``<PerkinElmer-QPI-ImageDescription>``).

IFD order (Bio-Formats ``VectraReader.getIFDIndex``, tifffile ``TiffFile._series_qpi``): the
full-resolution channels, the RGB thumbnail, each reduced level's channels, then the optional
overview ("macro") and label. Each page's ``ImageType`` (FullResolution, Thumbnail,
ReducedResolution, Overview, Label) says which it is. Per channel: ``Name`` (Bio-Formats:
channel name), ``Biomarker`` (the stain's target, used as the name when present), ``Color``
("r,g,b"), ``ExcitationFilter`` / ``EmissionFilter`` with ``Bands/Band/Cuton`` and ``Cutoff``
in nm (the wavelength is the first band's centre); ``Objective`` ("20x", Bio-Formats:
objective model and nominal magnification). Pixel size: XResolution/YResolution in cm.
"""

from __future__ import annotations

from xml.etree import ElementTree

import tifffile

from ..errors import InputError
from ..model import Channel, ImageKind, Objective
from . import generic
from .plan import DialectPlan, ImagePlan

_KINDS = {
    "thumbnail": ImageKind.THUMBNAIL,
    "overview": ImageKind.OVERVIEW,
    "macro": ImageKind.OVERVIEW,
    "label": ImageKind.LABEL,
}


def _xml(page: tifffile.TiffPage) -> ElementTree.Element | None:
    text = (page.description or "").strip().replace("utf-16", "utf-8")  # as Bio-Formats does
    try:
        return ElementTree.fromstring(text.encode("utf-8"))
    except ElementTree.ParseError:
        return None


def _text(root: ElementTree.Element | None, tag: str) -> str | None:
    if root is None:
        return None
    found = root.find(tag)
    value = found.text.strip() if found is not None and found.text else None
    return value or None


def _band_centre(root: ElementTree.Element | None, tag: str) -> float | None:
    """Centre (nm) of the first band of an ExcitationFilter / EmissionFilter."""
    if root is None:
        return None
    band = root.find(f"{tag}/Bands/Band")
    if band is None:
        return None
    try:
        cuton, cutoff = float(band.findtext("Cuton", "")), float(band.findtext("Cutoff", ""))
    except ValueError:
        return None
    return (cuton + cutoff) / 2 if cuton > 0 and cutoff > 0 else None


def _color(text: str | None) -> tuple[int, int, int, int] | None:
    try:
        r, g, b = (int(v) for v in (text or "").split(","))
    except ValueError:
        return None
    return (r, g, b, 255) if all(0 <= v <= 255 for v in (r, g, b)) else None


def _channel(index: int, page: tifffile.TiffPage) -> Channel:
    root = _xml(page)
    name, biomarker = _text(root, "Name"), _text(root, "Biomarker")
    return Channel(
        id=f"Channel:0:{index}",
        name=biomarker or name,
        color=_color(_text(root, "Color")),
        excitation_nm=_band_centre(root, "ExcitationFilter"),
        emission_nm=_band_centre(root, "EmissionFilter"),
        illumination="Epifluorescence" if page.samplesperpixel == 1 else None,
        fluor=name if biomarker and name != biomarker else None,
    )


def _objective(root: ElementTree.Element | None) -> Objective | None:
    text = _text(root, "Objective")
    if not text:
        return None
    try:
        mag = float(text.lower().replace("x", ""))
    except ValueError:
        mag = None
    return Objective(magnification=mag, model=text)


def plan(tf: tifffile.TiffFile, path: object) -> DialectPlan:
    """The channel pyramid with named channels, and the thumbnail, overview and label."""
    warnings: list[str] = []
    if not tf.series:
        raise InputError("the QPTIFF file holds no image", path=path)
    base = tf.series[0]
    levels = tuple(
        {(0, c): page.aspage() for c, page in enumerate(level.pages)} for level in base.levels
    )
    first = levels[0][(0, 0)]
    if first.samplesperpixel == 1:
        channels = tuple(_channel(c, levels[0][(0, c)]) for c in range(len(levels[0])))
    else:  # brightfield: one RGB page per level
        channels = ()
        levels = tuple({(0, 0): lv[(0, 0)]} for lv in levels)
    root = _xml(first)
    images = [
        ImagePlan(
            kind=ImageKind.VOLUME,
            name=_text(root, "SlideID") or getattr(path, "stem", None) or "qptiff",
            levels=levels,
            pixel_size_um=generic.pixel_size(first, warnings),
            channels=channels,
            objective=_objective(root),
        )
    ]
    for series in tf.series[1:]:
        page = series.keyframe.aspage()
        kind_name = (_text(_xml(page), "ImageType") or series.name or "").lower()
        kind = _KINDS.get(kind_name)
        if kind is None:
            warnings.append(f"the QPTIFF page of type {kind_name!r} is not converted")
            continue
        images.append(ImagePlan(kind=kind, name=series.name.lower(), levels=({(0, 0): page},)))
    return DialectPlan("Akoya QPTIFF", tuple(images), tuple(warnings))
