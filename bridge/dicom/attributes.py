"""Small helpers for building DICOM attributes correctly (value representations, codes)."""

from __future__ import annotations

import functools
import math
from datetime import datetime

from .header import Dataset


def ds(value: float) -> str:
    """A Decimal String of at most 16 characters (PS3.5 6.2, DS), as precise as fits.

    The rule of pydicom's ``format_number_as_ds`` (a test compares the two): Python's shortest
    repr when it fits; otherwise scientific notation below 1e-4 and from 1e14 (1e13 when
    negative), else fixed notation with as many decimals as 16 characters leave.
    """
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"a Decimal String cannot hold {value}")
    text = str(value)
    if len(text) > 16:
        log = math.log10(abs(value))
        sign = 1 if value < 0 else 0
        if log < -4 or log >= 14 - sign:
            text = f"{value:.{10 - sign}e}"
            if len(text) > 16:  # a three-digit exponent
                text = f"{value:.{9 - sign}e}"
        else:
            decimals = 14 - sign - (math.floor(log) if log >= 1 else 0)
            text = f"{value:.{decimals}f}"
    if len(text) > 16:
        raise ValueError(f"DS {text!r} longer than 16 characters")
    return text


def code_item(code: tuple[str, str, str]) -> Dataset:
    """A Code Sequence item (PS3.3 Table 8.8-1): Code Value, Scheme Designator, Meaning."""
    item = Dataset()
    value, scheme, meaning = code
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def da_tm(moment: datetime) -> tuple[str, str]:
    """DICOM DA and TM strings for a datetime."""
    return moment.strftime("%Y%m%d"), moment.strftime("%H%M%S.%f")


def dt(moment: datetime) -> str:
    """A DICOM DT string, with the UTC offset when the datetime knows its zone."""
    text = moment.strftime("%Y%m%d%H%M%S.%f")
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        text += moment.strftime("%z")
    return text


@functools.cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile, for images whose source has none (``srgb.icc`` beside this module).

    It is LittleCMS's built-in sRGB as Pillow writes it (:func:`make_srgb_profile`; a test
    checks the file is exactly that), stored so that a conversion does not load Pillow.
    """
    from importlib import resources

    return resources.files(__package__).joinpath("srgb.icc").read_bytes()


def make_srgb_profile() -> bytes:
    """LittleCMS's sRGB profile via Pillow, with the header's creation date (ICC.1 7.2.8,
    bytes 24-35) fixed to 2000-01-01 so that the same input always gives the same output."""
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = (2000).to_bytes(2, "big") + bytes([0, 1, 0, 1]) + bytes(6)
    return bytes(data)
