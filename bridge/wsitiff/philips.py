"""Philips TIFF (IntelliSite ``Philips DP`` software): a tiled JPEG pyramid whose first
ImageDescription is an XML ``DataObject`` of DICOM-named attributes.

Read (tifffile ``TiffFile._series_philips``, ``philips_metadata``; OpenSlide
``openslide-vendor-philips.c``; opentile ``PhilipsTiffTiler``):

* ``DICOM_PIXEL_SPACING`` of each ``PixelDataRepresentation`` ("row" "column" in mm, DICOM
  Pixel Spacing order) gives the level-0 pixel size (the first, largest level);
* ``DICOM_ACQUISITION_DATETIME`` (DICOM DT) the acquisition time;
* pages whose ImageDescription starts with ``Label`` / ``Macro`` are the label and overview.

Sub-levels are stored padded to whole tiles; tifffile gives their real size from the pixel
spacings, which the level takes (the stored tile grid stays the one tiles are indexed by).
"""

from __future__ import annotations

from datetime import datetime
from xml.etree import ElementTree

import tifffile

from ..errors import InputError
from ..model import Equipment, ImageKind
from .plan import DialectPlan, ImagePlan


def attributes(root: ElementTree.Element) -> dict[str, str]:
    """The root DataObject's own ``Attribute`` elements, by Name (quotes kept as written)."""
    return {a.get("Name", ""): (a.text or "").strip() for a in root.findall("Attribute")}


def pixel_spacings(root: ElementTree.Element) -> list[tuple[float, float]]:
    """(row, column) spacing in mm of each PixelDataRepresentation, largest level first."""
    out = []
    for elem in root.iter("Attribute"):
        if elem.get("Name") == "DICOM_PIXEL_SPACING" and elem.text:
            try:
                row, col = (float(v) for v in elem.text.replace('"', " ").split())
            except ValueError:
                continue
            out.append((row, col))
    return out


def _acquired(text: str | None, warnings: list[str]) -> datetime | None:
    if not text:
        return None
    value = text.strip('"').strip()
    for form in ("%Y%m%d%H%M%S.%f", "%Y%m%d%H%M%S", "%Y%m%d"):
        try:
            return datetime.strptime(value, form)
        except ValueError:
            continue
    warnings.append(f"the Philips DICOM_ACQUISITION_DATETIME {value!r} is not a DICOM DT")
    return None


def plan(tf: tifffile.TiffFile, path: object) -> DialectPlan:
    warnings: list[str] = []
    try:
        root = ElementTree.fromstring((tf.philips_metadata or "").encode("utf-8"))
    except ElementTree.ParseError as exc:
        raise InputError(f"the Philips XML cannot be read ({exc})", path=path) from None
    attrs = attributes(root)
    spacings = pixel_spacings(root)
    size = None
    if spacings and spacings[0][0] > 0 and spacings[0][1] > 0:
        row, col = spacings[0]
        size = (col * 1000.0, row * 1000.0)
    else:
        warnings.append("the Philips XML has no DICOM_PIXEL_SPACING: the pixel size is unknown")
    images = []
    for series in tf.series:
        name = (series.name or "").lower()
        if name in ("label", "macro"):
            kind = ImageKind.LABEL if name == "label" else ImageKind.OVERVIEW
            images.append(
                ImagePlan(kind=kind, name=name, levels=({(0, 0): series.keyframe.aspage()},))
            )
        elif series.is_pyramidal or not images:
            levels = tuple({(0, 0): level.keyframe.aspage()} for level in series.levels)
            images.append(
                ImagePlan(
                    kind=ImageKind.VOLUME,
                    name=getattr(path, "stem", None) or "philips",
                    levels=levels,
                    pixel_size_um=size,
                    acquired=_acquired(attrs.get("DICOM_ACQUISITION_DATETIME"), warnings),
                )
            )
        else:
            warnings.append(f"the Philips series {series.name!r} is not converted")
    if not images or images[0].kind is not ImageKind.VOLUME:
        raise InputError("the Philips TIFF has no pyramid", path=path)
    equipment = Equipment(
        manufacturer=_unquoted(attrs.get("DICOM_MANUFACTURER")),
        model=_unquoted(attrs.get("DICOM_MANUFACTURERS_MODEL_NAME")),
        serial_number=_unquoted(attrs.get("DICOM_DEVICE_SERIAL_NUMBER")),
    )
    return DialectPlan("Philips TIFF", tuple(images), tuple(warnings), equipment)


def _unquoted(text: str | None) -> str | None:
    return (text or "").strip().strip('"').strip() or None
