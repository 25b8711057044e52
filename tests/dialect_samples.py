"""Test files in scanner TIFF dialects, written with tifffile in each dialect's published
layout (only what the readers rely on): Hamamatsu NDPI and Akoya/PerkinElmer QPTIFF.

Run as a script to write them into a folder: ``python tests/dialect_samples.py OUT``.
"""

from __future__ import annotations

import io
import struct
import sys
from pathlib import Path

import numpy as np
import samples
import tifffile


def restart_jpeg(image: np.ndarray, interval: int, quality: int = 85) -> bytes:
    """A baseline YCbCr 4:2:0 JPEG (libjpeg through Pillow) with a restart marker every
    ``interval`` MCUs, as NDPI scanners write their strips."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(
        out, "JPEG", quality=quality, subsampling=2, restart_marker_blocks=interval
    )
    return out.getvalue()


def mcu_starts(stream: bytes) -> list[int]:
    """Offsets of the first entropy-coded byte of each restart interval (NDPI tag 65426):
    after the SOS segment, then after each RSTn marker (T.81 B.1.1.2: 0xFF followed by
    0xD0-0xD7 is always a marker inside entropy-coded data)."""
    sos = stream.index(b"\xff\xda")
    start = sos + 2 + struct.unpack(">H", stream[sos + 2 : sos + 4])[0]
    starts = [start]
    pos = start
    while True:
        pos = stream.find(b"\xff", pos)
        if pos < 0 or pos + 1 >= len(stream):
            break
        if 0xD0 <= stream[pos + 1] <= 0xD7:
            starts.append(pos + 2)
        pos += 2 if stream[pos + 1] != 0xFF else 1
    return starts


def _to_ndpi_offsets(path: Path) -> None:
    """Rewrite a little-endian classic TIFF into NDPI's IFD layout: each IFD is followed by an
    8-byte next-IFD offset and the 4 high bytes of every entry's value (tifffile
    ``TIFF.NDPI_LE``, ``TiffPage.__init__``); the header's first-IFD offset is 8 bytes. The new
    IFDs go at the end of the file; the tag values they point to stay where they are."""
    data = bytearray(path.read_bytes())
    assert data[:4] == b"II*\x00"
    offsets = []
    pos = struct.unpack("<I", data[4:8])[0]
    while pos:
        offsets.append(pos)
        n = struct.unpack("<H", data[pos : pos + 2])[0]
        pos = struct.unpack("<I", data[pos + 2 + 12 * n : pos + 6 + 12 * n])[0]
    if len(data) % 2:
        data += b"\0"
    new = []
    blocks = bytearray()
    base = len(data)
    for pos in offsets:
        n = struct.unpack("<H", data[pos : pos + 2])[0]
        new.append(base + len(blocks))
        blocks += data[pos : pos + 2 + 12 * n] + bytes(8) + bytes(4 * n)
    for i, start in enumerate(new):  # link the chain
        n = struct.unpack("<H", blocks[start - base : start - base + 2])[0]
        nxt = new[i + 1] if i + 1 < len(new) else 0
        at = start - base + 2 + 12 * n
        blocks[at : at + 8] = struct.pack("<Q", nxt)
    data += blocks
    data[4:12] = struct.pack("<Q", new[0])
    path.write_bytes(bytes(data))


def write_ndpi(path: Path, size: tuple[int, int] = (1024, 768)) -> Path:
    """An NDPI file (``path`` must end in .ndpi): a 2-level pyramid of JPEG strips with
    restart markers every 8 MCUs (stripes of 128×16) and McuStarts (65426), 20x
    Magnification (65421), 0.46 µm pixels (XResolution in centimetres), offsets from the
    slide centre (65422, 65423, nm), and a macro (Magnification -1)."""
    width, height = size
    base = samples.tissue(height, width, seed=3)
    levels = [base, base[::2, ::2].copy()]
    macro = samples.tissue(160, 480, seed=4)
    px_cm = 1e4 / 0.46
    with tifffile.TiffWriter(path.with_suffix(".tif")) as tw:
        for i, image in enumerate([*levels, macro]):
            stream = restart_jpeg(image, 8)
            is_macro = i == len(levels)
            tags = [
                (271, "s", 0, "Hamamatsu", True),  # Make
                (272, "s", 0, "C13210", True),  # Model
                (65420, "I", 1, 1, True),  # FileFormat
                (65442, "s", 0, "SN-0042", True),  # ScannerSerialNumber
                (65421, "f", 1, -1.0 if is_macro else 20.0 / 2**i, True),  # Magnification
                (65422, "i", 1, 1_250_000, True),  # XOffsetFromSlideCenter, nm
                (65423, "i", 1, -500_000, True),  # YOffsetFromSlideCenter, nm
            ]
            if not is_macro:
                starts = mcu_starts(stream)
                tags.append((65426, "I", len(starts), starts, True))  # McuStarts
            tw.write(
                iter([stream]),
                shape=image.shape,
                dtype="uint8",
                compression="jpeg",
                photometric="ycbcr",
                subsampling=(2, 2),
                rowsperstrip=image.shape[0],
                resolution=(px_cm / 2**i, px_cm / 2**i),
                resolutionunit="CENTIMETER",
                extratags=tags,
                metadata=None,
                software="NDP.scan",
            )
    _to_ndpi_offsets(path.with_suffix(".tif"))
    path.with_suffix(".tif").rename(path)
    return path


#: (Name, Biomarker, colour, excitation band, emission band) of the QPTIFF fixture's channels
QPTIFF_CHANNELS = (
    ("DAPI", "Nuclei", "0,0,255", (340, 380), (430, 470)),
    ("Opal 520", "CD8", "0,255,0", (480, 500), (515, 535)),
    ("Opal 690", "PD-L1", "255,0,0", (630, 650), (680, 720)),
)


def _qpi_xml(image_type: str, channel: tuple | None = None) -> str:
    """One page's ``<PerkinElmer-QPI-ImageDescription>`` (QPTIFF specification, version 2)."""
    parts = [
        '<?xml version="1.0" encoding="utf-16"?>',
        "<PerkinElmer-QPI-ImageDescription>",
        "<DescriptionVersion>2</DescriptionVersion>",
        f"<ImageType>{image_type}</ImageType>",
        "<SlideID>QP-1</SlideID>",
        "<Objective>20x</Objective>",
    ]
    if channel is not None:
        name, marker, color, ex, em = channel
        parts += [
            f"<Name>{name}</Name>",
            f"<Biomarker>{marker}</Biomarker>",
            f"<Color>{color}</Color>",
            "<ExposureTime>1000</ExposureTime>",
            f"<ExcitationFilter><Name>{name} ex</Name><Bands><Band><Cuton>{ex[0]}</Cuton>"
            f"<Cutoff>{ex[1]}</Cutoff></Band></Bands></ExcitationFilter>",
            f"<EmissionFilter><Name>{name} em</Name><Bands><Band><Cuton>{em[0]}</Cuton>"
            f"<Cutoff>{em[1]}</Cutoff></Band></Bands></EmissionFilter>",
        ]
    parts.append("</PerkinElmer-QPI-ImageDescription>")
    return "\r\n".join(parts)


def write_qptiff(path: Path, size: tuple[int, int] = (512, 512)) -> Path:
    """A fluorescence QPTIFF: 3 channels (uint8, 256×256 tiles, LZW) at full and half
    resolution, the RGB thumbnail between them, then the overview and label, 0.5 µm pixels."""
    width, height = size
    rng = np.random.default_rng(5)
    planes = [rng.integers(0, 255, (height, width), np.uint8) for _ in QPTIFF_CHANNELS]
    px_cm = 1e4 / 0.5
    common = {"software": "PerkinElmer-QPI", "metadata": None, "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tw:
        for factor in (1, 2):
            for plane, channel in zip(planes, QPTIFF_CHANNELS, strict=True):
                kind = "FullResolution" if factor == 1 else "ReducedResolution"
                tw.write(
                    plane[::factor, ::factor],
                    tile=(256, 256),
                    compression="lzw",
                    description=_qpi_xml(kind, channel),
                    resolution=(px_cm / factor, px_cm / factor),
                    subfiletype=1 if factor > 1 else 0,
                    **common,
                )
            if factor == 1:
                tw.write(
                    samples.tissue(128, 128, seed=6),
                    photometric="rgb",
                    compression="jpeg",
                    description=_qpi_xml("Thumbnail"),
                    resolution=(px_cm / 4, px_cm / 4),
                    **common,
                )
        for kind, shape in (("Overview", (120, 360)), ("Label", (100, 100))):
            tw.write(
                samples.tissue(*shape, seed=7),
                photometric="rgb",
                compression="lzw",
                description=_qpi_xml(kind),
                subfiletype=1,
                resolution=(1, 1),
                **common,
            )
    return path


def _philips_xml(spacings_mm: list[float]) -> str:
    """The first page's ``DataObject`` XML as Philips DP writes it (the attributes read)."""
    levels = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        '<Attribute Name="DICOM_PIXEL_SPACING" Group="0x0028" Element="0x0030" '
        f'PMSVR="IDoubleArray">"{s:g}" "{s:g}"</Attribute></DataObject>'
        for s in spacings_mm
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" ?>\n<DataObject ObjectType="DPUfsImport">'
        '<Attribute Name="DICOM_MANUFACTURER" Group="0x0008" Element="0x0070" '
        'PMSVR="IString">PHILIPS</Attribute>'
        '<Attribute Name="DICOM_MANUFACTURERS_MODEL_NAME" Group="0x0008" Element="0x1090" '
        'PMSVR="IString">UFS Scanner</Attribute>'
        '<Attribute Name="DICOM_DEVICE_SERIAL_NUMBER" Group="0x0018" Element="0x1000" '
        'PMSVR="IString">FMT0123</Attribute>'
        '<Attribute Name="DICOM_ACQUISITION_DATETIME" Group="0x0008" Element="0x002A" '
        'PMSVR="IString">20190304101112.000000</Attribute>'
        '<Attribute Name="PIM_DP_SCANNED_IMAGES" Group="0x301D" Element="0x1003" '
        'PMSVR="IDataObjectArray"><Array><DataObject ObjectType="DPScannedImage">'
        '<Attribute Name="PIM_DP_IMAGE_TYPE" Group="0x301D" Element="0x1004" '
        'PMSVR="IString">WSI</Attribute>'
        '<Attribute Name="PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE" Group="0x1001" '
        f'Element="0x8B01" PMSVR="IDataObjectArray"><Array>{levels}</Array></Attribute>'
        "</DataObject></Array></Attribute></DataObject>"
    )


def write_philips(path: Path) -> Path:
    """A Philips TIFF: a 768×512 JPEG pyramid in 256-pixel tiles whose sub-levels are stored
    padded to whole tiles (384×256 in 512×256, 192×128 in 256×256), 0.25 µm pixels, then the
    macro and label pages."""
    base = samples.tissue(512, 768, seed=8)
    common = {"software": "Philips DP v1.0", "metadata": None, "photometric": "rgb"}
    with tifffile.TiffWriter(path) as tw:
        for factor, stored in ((1, (512, 768)), (2, (256, 512)), (4, (256, 256))):
            level = base[::factor, ::factor]
            padded = np.zeros((*stored, 3), np.uint8)
            padded[: level.shape[0], : level.shape[1]] = level
            tw.write(
                padded,
                tile=(256, 256),
                compression="jpeg",
                description=_philips_xml([0.00025, 0.0005, 0.001]) if factor == 1 else "",
                **common,
            )
        tw.write(samples.tissue(100, 300, seed=9), compression="jpeg", description="Macro",
                 **common)  # fmt: skip
        tw.write(samples.tissue(100, 100, seed=10), compression="jpeg", description="Label",
                 **common)  # fmt: skip
    return path


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    print(write_ndpi(out / "sample.ndpi"))
    print(write_qptiff(out / "sample.qptiff"))
    print(write_philips(out / "sample-philips.tiff"))
