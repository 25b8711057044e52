"""What an encoded frame is, told from its first bytes (no decoding).

* JPEG (ITU-T T.81 B.2): SOI ``FFD8``, then marker segments up to the frame header SOFn
  (``FFC0``-``FFCF`` less ``FFC4``, ``FFC8``, ``FFCC``);
* JPEG-LS (ITU-T T.87 C.2): SOI ``FFD8`` too, but its frame header is SOF55 ``FFF7``;
* JPEG 2000 codestream (ITU-T T.800 A.4): SOC ``FF4F`` then SIZ ``FF51``; HTJ2K (T.814) uses
  the same main header, so the two are one family here;
* JP2 file (T.800 I.5): a signature box ``0000000C 6A502020 0D0A870A``; DICOM allows only bare
  codestreams in JPEG 2000 transfer syntaxes (PS3.5 A.4.4), so a JP2 box is a kind of its own.

Used to check that frames are what the DICOM transfer syntax (PS3.5 A.4) says they are.
"""

from __future__ import annotations

import enum

_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}


class Kind(enum.Enum):
    """What the bytes are; ``value`` is how a message names it."""

    JPEG = "JPEG (SOI FFD8 and a JPEG frame header)"
    JPEGLS = "JPEG-LS (SOI FFD8 and the JPEG-LS frame header SOF55 FFF7)"
    J2K = "a JPEG 2000 codestream (SOC FF4F, SIZ FF51)"
    JP2 = "a JP2 file (signature box), not a bare JPEG 2000 codestream"
    UNKNOWN = "none of JPEG, JPEG-LS or JPEG 2000"


def kind(data: bytes) -> Kind:
    """The kind of an encoded frame, from its first bytes."""
    if data[:4] == b"\xff\x4f\xff\x51":
        return Kind.J2K
    if data[:12] == _JP2_SIGNATURE:
        return Kind.JP2
    if data[:2] == b"\xff\xd8":
        return _jpeg_family(data)
    return Kind.UNKNOWN


def _jpeg_family(data: bytes) -> Kind:
    """JPEG or JPEG-LS: the first frame header (SOFn) after SOI decides."""
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return Kind.UNKNOWN
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xF7:
            return Kind.JPEGLS
        if marker in _JPEG_SOF:
            return Kind.JPEG
        if marker in (0xDA, 0xD9):  # a scan or the end before any frame header
            return Kind.UNKNOWN
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return Kind.UNKNOWN


def jpegls_header(data: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, components, precision) from a JPEG-LS frame header SOF55 (T.87 C.2.2:
    Lf, P, Y, X, Nf), or None when the stream has none before its first scan."""
    pos, n = 2, len(data)
    if data[:2] != b"\xff\xd8":
        return None
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker == 0xF7:
            seg = data[pos + 4 : pos + 2 + length]
            if len(seg) < 6:
                return None
            precision, height, width, components = (
                seg[0],
                int.from_bytes(seg[1:3], "big"),
                int.from_bytes(seg[3:5], "big"),
                seg[5],
            )
            return width, height, components, precision
        if marker in (0xDA, 0xD9):
            return None
        pos += 2 + length
    return None
