"""UIDs the writer needs: the ones it names (PS3.6 Annex A) and the ones it makes (PS3.5 B.2).

Kept apart from pydicom so that writing a DICOM instance does not import it (see ``header.py``).
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

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


#: Name-based UIDs while :func:`deterministic_uids` is active: the seed and a counter.
_seeded: list[tuple[uuid.UUID, int]] = []
_seed_lock = threading.Lock()

#: The UUID namespace of omedicom's name-based UIDs (itself a random UUID, made once).
_NAMESPACE = uuid.UUID("5b0c7a7e-3f4f-4f63-9b57-1d1c8f0a2e41")


def generate_uid() -> str:
    """A new UID under the ``2.25`` arc: a UUID as one decimal integer (PS3.5 B.2).

    Random (version 4) by default; inside :func:`deterministic_uids`, name-based (version 5,
    RFC 4122 4.3) from the seed and the number of UIDs made so far, so that converting the
    same source with the same options again gives the same UIDs."""
    with _seed_lock:
        if _seeded:
            space, count = _seeded[-1]
            _seeded[-1] = (space, count + 1)
            return f"2.25.{uuid.uuid5(space, str(count)).int}"
    return f"2.25.{uuid.uuid4().int}"


@contextmanager
def deterministic_uids(seed: str) -> Iterator[None]:
    """Make :func:`generate_uid` name-based from ``seed`` (e.g. a hash of the source's bytes
    and the conversion options) while the block runs: a batch re-run after a crash writes the
    same Study, Series and SOP Instance UIDs, and a PACS sees the same instances again."""
    with _seed_lock:
        _seeded.append((uuid.uuid5(_NAMESPACE, seed), 0))
    try:
        yield
    finally:
        with _seed_lock:
            _seeded.pop()


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
