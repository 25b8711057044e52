"""Open a TIFF without holding a huge ImageDescription three times.

tifffile turns a TIFF ASCII value into text as ``value.rstrip(b"\\0")``, then ``.decode()``,
then ``.strip()`` (``TiffTag._process_value``): while the first page is read, its
ImageDescription is in memory as bytes, as stripped bytes and as a str at once. An OME-XML
carrying a million ROIs is 240 MB, so opening such a file costs 720 MB.

:func:`lean_descriptions` (a context manager around ``TiffFile(...)``) has long ImageDescriptions
decoded straight from a view of the bytes read, with the trailing NULs and the ASCII whitespace
at the ends left out of the view: the same str, with one copy fewer alive at a time. Everything
else, and every value that is not plain UTF-8, goes to tifffile's own function, so the result is
always tifffile's. If a tifffile release no longer has that function, nothing is changed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import tifffile

#: Descriptions at least this long are decoded from a view (shorter ones cost nothing).
LONG = 1 << 20
_SPACE = b" \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.isspace() says of ASCII
_LOCK = threading.Lock()
_DESCRIPTION = 270
_ASCII = 2


def decode(value: bytes, original: Any) -> Any:
    """``original(value, 270, 2, 0)`` (tifffile's decoding of an ASCII ImageDescription),
    computed without copying ``value`` first."""
    start, end = 0, len(value)
    while end > start and value[end - 1] == 0:  # rstrip(b"\0")
        end -= 1
    while end > start and value[end - 1] in _SPACE:  # the ASCII part of str.strip()
        end -= 1
    while start < end and value[start] in _SPACE:
        start += 1
    try:
        text = str(memoryview(value)[start:end], "utf-8")
    except UnicodeDecodeError:
        return original(value, _DESCRIPTION, _ASCII, 0)
    return text.strip()


@contextmanager
def lean_descriptions() -> Iterator[None]:
    """While active, tifffile decodes ImageDescriptions of :data:`LONG` bytes or more with
    :func:`decode`."""
    tag = getattr(tifffile, "TiffTag", None)
    original = getattr(tag, "_process_value", None) if tag is not None else None
    if original is None:
        yield
        return

    def process(value: Any, code: int, dtype: int, offset: int, /) -> Any:
        if code == _DESCRIPTION and dtype == _ASCII and type(value) is bytes and len(value) >= LONG:
            return decode(value, original)
        return original(value, code, dtype, offset)

    with _LOCK:
        tag._process_value = staticmethod(process)  # type: ignore[union-attr]
        try:
            yield
        finally:
            tag._process_value = staticmethod(original)  # type: ignore[union-attr]
