"""JPEG byte surgery on real encoder output (libjpeg-turbo via imagecodecs, libtiff via vips)."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import samples

from bridge.codecs import jpeg
from bridge.model import Photometric


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return samples.tissue(64, 64, seed=5)


def test_header_of_ycbcr_420(image: np.ndarray) -> None:
    stream = imagecodecs.jpeg8_encode(image, level=90, subsampling="420")
    h = jpeg.parse_header(stream)
    assert (h.width, h.height, h.precision) == (64, 64, 8)
    assert h.subsampling == (2, 2) and h.jfif and h.adobe_transform is None
    assert not h.lossless and h.sof == 0xFFC0
    assert jpeg.decide_photometric(h, tiff_rgb=True) == (Photometric.YCBCR, None)


def test_header_of_ycbcr_444_and_422(image: np.ndarray) -> None:
    for sub, want in (("444", (1, 1)), ("422", (2, 1))):
        h = jpeg.parse_header(imagecodecs.jpeg8_encode(image, level=90, subsampling=sub))
        assert h.subsampling == want


def test_rgb_stream_signals_itself(image: np.ndarray) -> None:
    stream = imagecodecs.jpeg8_encode(image, level=90, outcolorspace="RGB")
    h = jpeg.parse_header(stream)
    assert h.adobe_transform == 0
    assert jpeg.decide_photometric(h, tiff_rgb=False) == (Photometric.RGB, None)


def _strip_signalling(stream: bytes) -> bytes:
    """An Aperio-like stream: RGB samples, no APP14, no JFIF, component ids 0, 1, 2."""
    h = jpeg.parse_header(stream)
    out = bytearray(stream[:2])
    pos = 2
    while pos < h.scan_offset:
        marker = stream[pos + 1]
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        seg = bytearray(stream[pos : pos + 2 + length])
        if marker in (0xE0, 0xEE):
            pos += 2 + length
            continue
        if marker == 0xC0:
            for i in range(3):
                seg[10 + 3 * i] = i
        out += seg
        pos += 2 + length
    scan = bytearray(stream[h.scan_offset :])
    for i in range(3):
        scan[5 + 2 * i] = i
    return bytes(out + scan)


def test_unsignalled_rgb_gets_app14_and_decodes_as_rgb(image: np.ndarray) -> None:
    stream = _strip_signalling(imagecodecs.jpeg8_encode(image, level=95, outcolorspace="RGB"))
    h = jpeg.parse_header(stream)
    assert h.adobe_transform is None and not h.jfif and not h.rgb_ids
    photometric, insert = jpeg.decide_photometric(h, tiff_rgb=True)
    assert photometric is Photometric.RGB and insert == jpeg.APP14_RGB
    fixed = jpeg.insert_after_soi(stream, insert)
    decoded = imagecodecs.jpeg8_decode(fixed)
    assert np.abs(decoded.astype(int) - image).mean() < 3  # read as RGB, not as YCbCr
    wrong = imagecodecs.jpeg8_decode(stream)
    assert np.abs(wrong.astype(int) - image).mean() > 20  # the reason the marker is needed
    assert jpeg.entropy_coded_data(fixed) == jpeg.entropy_coded_data(stream)
    # a YCbCr TIFF with the same unsignalled stream is YCbCr and left alone
    assert jpeg.decide_photometric(h, tiff_rgb=False) == (Photometric.YCBCR, None)


def test_merge_tables_makes_an_abbreviated_stream_complete(image: np.ndarray) -> None:
    stream = imagecodecs.jpeg8_encode(image, level=90)
    h = jpeg.parse_header(stream)
    # split the tables (DQT/DHT) out as a TIFF JPEGTables value, leave an abbreviated tile
    tables = bytearray(b"\xff\xd8")
    tile = bytearray(b"\xff\xd8")
    pos = 2
    while pos < h.scan_offset:
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        seg = stream[pos : pos + 2 + length]
        (tables if stream[pos + 1] in (0xDB, 0xC4) else tile).extend(seg)
        pos += 2 + length
    tile += stream[h.scan_offset :]
    tables += b"\xff\xd9"
    assert not jpeg.parse_header(bytes(tile)).has_tables
    merged = jpeg.merge_tables(bytes(tile), bytes(tables))
    np.testing.assert_array_equal(
        imagecodecs.jpeg8_decode(merged), imagecodecs.jpeg8_decode(stream)
    )
    assert jpeg.entropy_coded_data(merged + b"\x00") == jpeg.entropy_coded_data(stream)
    assert jpeg.merge_tables(stream, None) == stream


def test_grey_stream_is_monochrome(image: np.ndarray) -> None:
    stream = imagecodecs.jpeg8_encode(np.ascontiguousarray(image[..., 1]), level=90)
    h = jpeg.parse_header(stream)
    assert jpeg.decide_photometric(h, tiff_rgb=False) == (Photometric.MONOCHROME, None)


@pytest.mark.parametrize("bad", [b"", b"GIF89a", b"\xff\xd8\xff\xdb\x00\x43\x00"])
def test_garbage_is_refused(bad: bytes) -> None:
    with pytest.raises(jpeg.JpegError):
        jpeg.parse_header(bad)


def test_entropy_data_differs_for_different_tiles(image: np.ndarray) -> None:
    a = imagecodecs.jpeg8_encode(image, level=90)
    b = imagecodecs.jpeg8_encode(image[::-1], level=90)
    assert jpeg.entropy_coded_data(a) != jpeg.entropy_coded_data(b)
