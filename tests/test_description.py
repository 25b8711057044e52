"""Long ImageDescriptions are decoded without an extra copy, and to exactly what tifffile gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from bridge.ometiff import description

ORIGINAL = tifffile.TiffTag._process_value

VALUES = [
    b"<OME>plain</OME>\0",
    b"<OME>several NULs</OME>\0\0\0",
    b"  \n<OME>spaces around</OME>\r\n\0",
    b"<OME>a NUL before the space</OME>\0 ",
    b"\0<OME>a leading NUL</OME>\0",
    "<OME>µ and ü</OME>\u00a0\n\0".encode(),  # non-ASCII whitespace at the end
    "\u3000<OME>ideographic space first</OME>\0".encode(),
    b"\x1c\x1f<OME>ASCII separators</OME>\x0b\x0c\0",
    "<OME>cp1252 ä</OME>\0".encode("cp1252"),  # not UTF-8: tifffile's fallback
    b"\xff\xfe\x81\x8d\x8f\x90\x9d\0",  # neither: tifffile keeps bytes
    b"",
    b"\0\0",
    b"   \0",
]


@pytest.mark.parametrize("value", VALUES)
def test_decoding_equals_tifffile_s(value: bytes) -> None:
    assert description.decode(value, ORIGINAL) == ORIGINAL(value, 270, 2, 0)


def test_long_descriptions_take_the_lean_way_and_the_patch_is_undone(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setattr(description, "LONG", 64)
    calls: list[int] = []
    real = description.decode

    def spy(value, original):
        calls.append(len(value))
        return real(value, original)

    monkeypatch.setattr(description, "decode", spy)
    text = "<OME>" + "x" * 200 + "ü</OME>\n"
    path = tmp_path / "d.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint8), description=text.encode(), metadata=None)
    with description.lean_descriptions(), tifffile.TiffFile(path) as tif:
        lean = tif.pages.first.description
    assert calls, "the long description was not decoded the lean way"
    assert tifffile.TiffTag._process_value is ORIGINAL  # undone
    with tifffile.TiffFile(path) as tif:
        assert lean == tif.pages.first.description == text.strip()
