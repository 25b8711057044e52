"""UIDs the writer needs: the ones it names (PS3.6 Annex A) and the ones it makes (PS3.5 B.2).

Kept apart from pydicom so that writing a DICOM instance does not import it (see ``header.py``).
"""

from __future__ import annotations

import re
import uuid

#: PS3.6 Annex A transfer syntaxes the writer can produce.
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG_BASELINE_8BIT = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED_12BIT = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEGLS_LOSSLESS = "1.2.840.10008.1.2.4.80"
JPEGLS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG2000 = "1.2.840.10008.1.2.4.91"
HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
HTJ2K = "1.2.840.10008.1.2.4.203"

#: VL Whole Slide Microscopy Image Storage (PS3.4 B.5).
VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"

#: This implementation (PS3.7 D.3.3.2), a UUID-derived UID (PS3.5 B.2) made once for omedicom.
IMPLEMENTATION_CLASS_UID = "2.25.339261834028792613378837357110863771895"

_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")


def generate_uid() -> str:
    """A new UID under the ``2.25`` arc: a random UUID as one decimal integer (PS3.5 B.2)."""
    return f"2.25.{uuid.uuid4().int}"


def is_valid(uid: str) -> bool:
    """Whether ``uid`` is a UID (PS3.5 9.1): at most 64 characters, dot-separated numbers
    without leading zeros."""
    return len(uid) <= 64 and _UID.fullmatch(uid) is not None


def is_encapsulated(transfer_syntax: str) -> bool:
    """Whether Pixel Data is encapsulated (PS3.5 A.4) in this transfer syntax: all but the
    native ones."""
    return transfer_syntax not in (
        EXPLICIT_VR_LITTLE_ENDIAN,
        "1.2.840.10008.1.2",  # Implicit VR Little Endian
        "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
        "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
    )
