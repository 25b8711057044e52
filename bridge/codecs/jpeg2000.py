"""JPEG 2000 codestream headers (ITU-T T.800 | ISO/IEC 15444-1 Annex A): SIZ and COD only.

DICOM holds raw codestreams, not JP2 files (PS3.5 A.4.4). What the bridge needs from a
codestream: its size and components, and whether it is reversible (5-3 wavelet: DICOM
"JPEG 2000 Lossless", 1.2.840.10008.1.2.4.90) and uses the multiple component transform
(DICOM photometric YBR_RCT for reversible, YBR_ICT for irreversible; PS3.3 C.7.6.3.1.2).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SOC = b"\xff\x4f"


class J2kError(ValueError):
    """Not a JPEG 2000 codestream this module can read."""


@dataclass(frozen=True)
class J2kHeader:
    width: int
    height: int
    components: int
    bits: int
    signed: bool
    reversible: bool
    mct: bool


def parse_header(data: bytes) -> J2kHeader:
    if not data.startswith(SOC):
        raise J2kError("codestream does not start with SOC (FF4F); a JP2 file is not allowed")
    pos = 2
    siz = cod = None
    while pos + 4 <= len(data) and (siz is None or cod is None):
        marker, length = struct.unpack(">HH", data[pos : pos + 4])
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xFF51:
            siz = body
        elif marker == 0xFF52:
            cod = body
        elif marker == 0xFF90:  # SOT: the main header is over
            break
        pos += 2 + length
    if siz is None or cod is None or len(siz) < 38 or len(cod) < 10:
        raise J2kError("codestream main header has no SIZ or COD segment")
    xsiz, ysiz, xo, yo = struct.unpack(">IIII", siz[2:18])
    components = struct.unpack(">H", siz[34:36])[0]
    ssiz = siz[36]
    return J2kHeader(
        width=xsiz - xo,
        height=ysiz - yo,
        components=components,
        bits=(ssiz & 0x7F) + 1,
        signed=bool(ssiz & 0x80),
        reversible=cod[9] == 1,
        mct=cod[4] == 1,
    )


def _cod_positions(data: bytes) -> list[int]:
    """Offsets of every COD marker segment, in the main header and in each tile-part header
    (T.800 A.4.2 SOT: Psot is the tile-part's length; a tile-part header ends at SOD)."""
    found: list[int] = []
    pos = 2
    end = len(data)
    while pos + 4 <= end:
        marker, length = struct.unpack(">HH", data[pos : pos + 4])
        if marker == 0xFF90:  # SOT: walk the tile-parts
            break
        if marker == 0xFF52:
            found.append(pos)
        if length < 2:
            raise J2kError(f"marker segment {marker:04X} has length {length}")
        pos += 2 + length
    while pos + 12 <= end and data[pos : pos + 2] == b"\xff\x90":
        psot = struct.unpack(">I", data[pos + 6 : pos + 10])[0]
        part_end = pos + psot if psot else end
        seg = pos
        while seg + 4 <= part_end:
            marker, length = struct.unpack(">HH", data[seg : seg + 4])
            if marker == 0xFF93:  # SOD: the tile-part's data follows
                break
            if marker == 0xFF52:
                found.append(seg)
            if length < 2:
                raise J2kError(f"marker segment {marker:04X} has length {length}")
            seg += 2 + length
        if not psot or psot < 12:
            break
        pos = part_end
    return found


def with_ict(data: bytes) -> bytes:
    """The codestream with the multiple component transform switched on (T.800 A.6.1, SGcod
    byte 4 of every COD) where its first three components are full-range YCbCr (Y, Cb, Cr
    with the chroma centred on 2**(bits-1), as Aperio's compression 33003 stores them).

    With the 9-7 wavelet the transform is the irreversible one (ICT, T.800 G.3), whose inverse,
    after the DC level shift, is exactly the JFIF YCbCr -> RGB conversion: a decoder then
    returns RGB and the stream is DICOM YBR_ICT (PS3.5 8.2.4) without re-encoding a sample.
    The 5-3 wavelet would give the reversible transform (RCT), which is not YCbCr: refused.
    """
    header = parse_header(data)
    if header.components < 3:
        raise J2kError(f"{header.components} components; the transform needs three")
    if data[2:4] != b"\xff\x51":  # T.800 A.5.1: SIZ comes right after SOC
        raise J2kError("SIZ does not follow SOC")
    comps = data[42 : 42 + 9]  # Ssiz, XRsiz, YRsiz of components 0-2 (after SOC, SIZ, Lsiz)
    first = [tuple(comps[3 * i : 3 * i + 3]) for i in range(3)]
    if len(set(first)) != 1 or first[0][1:] != (1, 1):
        raise J2kError("the first three components differ in depth or are subsampled")
    out = bytearray(data)
    positions = _cod_positions(data)
    if not positions:
        raise J2kError("codestream has no COD segment")
    for pos in positions:
        if out[pos + 13] != 0:  # SPcod wavelet: 0 = 9-7 irreversible
            raise J2kError("reversible (5-3) wavelet: the transform would be RCT, not YCbCr")
        out[pos + 8] = 1
    return bytes(out)
