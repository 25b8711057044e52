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
