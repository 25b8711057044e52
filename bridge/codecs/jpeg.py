"""JPEG byte surgery: header parsing, table merging, colour signalling. No decoding.

References:

* ITU-T T.81 (ISO/IEC 10918-1) Annex B: marker segments (SOI, APPn, DQT, DHT, SOFn, SOS, EOI).
* Adobe Technical Note 5116: the APP14 "Adobe" segment; transform 0 = no colour transform (RGB),
  1 = YCbCr.
* TIFF Technical Note 2 / TIFF 6.0 section 22: abbreviated tile streams plus the shared
  JPEGTables (347) tag.
* DICOM PS3.5 A.4: an encapsulated JPEG frame is a complete interchange stream (tables inside);
  PS3.3 C.7.6.3.1.2: YCbCr JPEG is labelled YBR_FULL_422 whatever its chroma subsampling.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import Photometric

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"

#: Adobe APP14 segment with transform 0 ("the samples are RGB, do not convert").
APP14_RGB = b"\xff\xee\x00\x0eAdobe\x00\x64\x80\x00\x00\x00\x00"

_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_LOSSLESS_SOF = {0xC3, 0xC7, 0xCB, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: no length field


class JpegError(ValueError):
    """The bytes are not a JPEG stream this module can parse."""


@dataclass(frozen=True)
class Component:
    id: int
    h: int
    v: int


@dataclass(frozen=True)
class JpegHeader:
    """What the markers before the first scan say (T.81 B.2)."""

    sof: int
    width: int
    height: int
    precision: int
    components: tuple[Component, ...]
    adobe_transform: int | None
    jfif: bool
    has_tables: bool
    scan_offset: int  # offset of the first SOS marker

    @property
    def lossless(self) -> bool:
        return self.sof in _LOSSLESS_SOF

    @property
    def subsampling(self) -> tuple[int, int]:
        """Luma (H, V) sampling factors: (2, 2) for 4:2:0, (2, 1) for 4:2:2, (1, 1) for 4:4:4."""
        if len(self.components) < 3:
            return (1, 1)
        c = self.components[0]
        return (c.h, c.v)

    @property
    def rgb_ids(self) -> bool:
        return tuple(c.id for c in self.components) == (ord("R"), ord("G"), ord("B"))


def parse_header(data: bytes) -> JpegHeader:
    """Parse the marker segments from SOI up to the first SOS.

    Works on complete streams and on TIFF abbreviated streams (tables elsewhere), and on a
    JPEGTables value (then ``sof`` is 0 and ``scan_offset`` is -1).
    """
    if not data.startswith(SOI):
        raise JpegError("stream does not start with the SOI marker FFD8")
    pos = 2
    n = len(data)
    sof = width = height = precision = 0
    comps: tuple[Component, ...] = ()
    adobe: int | None = None
    jfif = False
    tables = False
    while pos < n:
        if data[pos] != 0xFF:
            raise JpegError(f"expected a marker at byte {pos}, found {data[pos]:#04x}")
        while pos < n and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= n:
            break
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            continue
        if marker == 0xD9:  # EOI (a tables-only stream ends here)
            break
        if pos + 2 > n:
            raise JpegError("stream ends inside a marker segment")
        length = int.from_bytes(data[pos : pos + 2], "big")
        seg = data[pos + 2 : pos + length]
        if len(seg) != length - 2:
            raise JpegError(f"marker FF{marker:02X} segment is truncated")
        if marker == 0xDA:  # SOS
            return JpegHeader(sof, width, height, precision, comps, adobe, jfif, tables, pos - 2)
        if marker in _SOF_MARKERS:
            sof = 0xFF00 | marker
            precision = seg[0]
            height = int.from_bytes(seg[1:3], "big")
            width = int.from_bytes(seg[3:5], "big")
            comps = tuple(
                Component(seg[6 + 3 * i], seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15)
                for i in range(seg[5])
            )
        elif marker == 0xEE and seg[:5] == b"Adobe" and len(seg) >= 12:
            adobe = seg[11]
        elif marker == 0xE0 and seg[:5] == b"JFIF\x00":
            jfif = True
        elif marker in (0xDB, 0xC4):
            tables = True
        pos += length
    return JpegHeader(sof, width, height, precision, comps, adobe, jfif, tables, -1)


def merge_tables(tile: bytes, tables: bytes | None) -> bytes:
    """Make an abbreviated TIFF tile a complete interchange stream.

    The JPEGTables value is itself a stream ``SOI tables EOI``; its tables go right after the
    tile's SOI: ``tile[:2] + tables[2:-2] + tile[2:]``.
    """
    if not tables or len(tables) <= 4:
        return tile
    return tile[:2] + tables[2:-2] + tile[2:]


def insert_after_soi(stream: bytes, segment: bytes) -> bytes:
    """Insert a marker segment (such as :data:`APP14_RGB`) right after SOI."""
    return stream[:2] + segment + stream[2:]


def decide_photometric(header: JpegHeader, tiff_rgb: bool) -> tuple[Photometric, bytes | None]:
    """Colour space of a JPEG stream, from the stream itself (MAPPING.md section 0 item 7).

    Returns the photometric interpretation and a segment to insert (APP14 transform 0) when the
    stream is RGB by its container's word but does not say so itself (e.g. Aperio SVS).

    * one component: MONOCHROME;
    * Adobe APP14 present: transform 0 is RGB, otherwise YCbCr;
    * component ids 'R', 'G', 'B': RGB (libjpeg's convention);
    * JFIF APP0: YCbCr;
    * nothing said: the TIFF Photometric decides; RGB needs the APP14 inserted, since decoders
      would otherwise assume YCbCr.
    """
    if len(header.components) == 1:
        return Photometric.MONOCHROME, None
    if len(header.components) != 3:
        raise JpegError(f"JPEG with {len(header.components)} components is not supported")
    if header.adobe_transform is not None:
        if header.adobe_transform == 0:
            return Photometric.RGB, None
        return Photometric.YCBCR, None
    if header.rgb_ids:
        return Photometric.RGB, None
    if header.jfif:
        return Photometric.YCBCR, None
    if tiff_rgb:
        return Photometric.RGB, APP14_RGB
    return Photometric.YCBCR, None


def entropy_coded_data(stream: bytes) -> bytes:
    """The scan data of a stream: from the first SOS segment to EOI, pad bytes removed.

    Two streams that differ only by merged tables, APP markers or a DICOM pad byte give equal
    results; this is what "the same tile" means for verbatim-copy checks (MAPPING.md G12).
    """
    header = parse_header(stream)
    if header.scan_offset < 0:
        raise JpegError("stream has no scan (SOS)")
    end = len(stream)
    while end > 0 and stream[end - 1] == 0x00:
        end -= 1
    return stream[header.scan_offset : end]
