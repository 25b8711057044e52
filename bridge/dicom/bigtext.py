"""Write a dataset whose UT values are huge without holding them several times.

The private carrier (``carrier.py``) puts the source's whole OME-XML in one UT element; with a
million ROIs that is a 240 MB string. pydicom encodes a value into bytes, writes those into a
buffer and copies the buffer out, so the string is in memory four times at once. Here the
dataset is written by pydicom in runs of ordinary elements, and each long UT value in between
is encoded and written a slice at a time, its length patched afterwards. The bytes are the
same as pydicom's (explicit VR little endian, PS3.5 7.1.2: tag, VR, two reserved bytes, a
32-bit length; UT values padded to even length with a space, PS3.5 6.2).
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import dcmwrite, write_dataset

#: UT values longer than this many characters are written a slice at a time.
LARGE = 1 << 20
SLICE = 8 << 20


def _utf8(dataset: Dataset) -> bool:
    charset = dataset.get("SpecificCharacterSet", "")
    return (charset if isinstance(charset, str) else "\\".join(charset)) == "ISO_IR 192"


def dcmwrite_streaming(fh: BinaryIO, dataset: Dataset) -> None:
    """``dcmwrite(fh, dataset, enforce_file_format=True)`` with long UT values streamed.

    Only for explicit VR little endian datasets in UTF-8 (what the writer makes); anything else
    is handed to pydicom whole.
    """
    large = [
        e.tag for e in dataset if e.VR == "UT" and isinstance(e.value, str) and len(e.value) > LARGE
    ]
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if not large or not _utf8(dataset) or syntax is None or syntax.is_implicit_VR:
        dcmwrite(fh, dataset, enforce_file_format=True)
        return
    runs: list[Dataset] = [Dataset()]
    texts: list[tuple[int, str]] = []
    for element in dataset:
        if element.tag in large:
            texts.append((int(element.tag), element.value))
            runs.append(Dataset())
        else:
            runs[-1].add(element)
    runs[0].file_meta = dataset.file_meta
    dcmwrite(fh, runs[0], enforce_file_format=True)
    fp = DicomFileLike(fh)
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    for (tag, text), run in zip(texts, runs[1:], strict=True):
        _write_ut(fh, tag, text)
        write_dataset(fp, run, parent_encoding="ISO_IR 192")


def _write_ut(fh: BinaryIO, tag: int, text: str) -> None:
    fh.write(struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"UT\x00\x00")
    length_at = fh.tell()
    fh.write(b"\x00\x00\x00\x00")
    length = 0
    for start in range(0, len(text), SLICE):
        data = text[start : start + SLICE].encode("utf-8")
        fh.write(data)
        length += len(data)
    if length % 2:
        fh.write(b" ")
        length += 1
    end = fh.tell()
    fh.seek(length_at)
    fh.write(struct.pack("<I", length))
    fh.seek(end)
