"""Test slides written by other people's tools (tifffile, libvips) with known content.

Each writer returns the path of a pyramidal OME-TIFF. Content is smooth, tissue-like and
deterministic, so JPEG behaves as on real slides and failures reproduce.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import tifffile


def tissue(height: int, width: int, seed: int = 0, samples: int = 3) -> np.ndarray:
    """Pink blobs on white with some texture: (height, width, samples) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    density = np.zeros((height, width), np.float32)
    for _ in range(12):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        r = rng.uniform(0.05, 0.25) * min(height, width)
        density += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    density = np.clip(density, 0, 1)
    texture = rng.normal(0, 12, (height, width)).astype(np.float32)
    base = np.array([255, 255, 255], np.float32)
    stain = np.array([200, 90, 160], np.float32)
    rgb = base * (1 - density[..., None]) + stain * density[..., None] + texture[..., None]
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    if samples == 1:
        return out[..., 1:2].copy()
    return out


def pyramid(image: np.ndarray, levels: int) -> list[np.ndarray]:
    """Level 0 and ``levels - 1`` 2×2-mean downsamplings."""
    out = [image]
    for _ in range(levels - 1):
        prev = out[-1]
        h, w = prev.shape[0] // 2 * 2, prev.shape[1] // 2 * 2
        p = prev[:h, :w].astype(np.uint16)
        out.append(
            ((p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) // 4).astype(np.uint8)
        )
    return out


def write_tifffile(
    path: Path,
    *,
    size: tuple[int, int] = (1200, 1000),
    tile: int = 256,
    levels: int = 3,
    compression: str | None = "jpeg",
    subsampling: tuple[int, int] = (2, 2),
    rgb_jpeg: bool = False,
    icc: bytes | None = None,
    pixel_size: float | tuple[float, float] | None = 0.5,
    samples: int = 3,
    label: bool = False,
) -> Path:
    """A pyramidal OME-TIFF written by tifffile (SubIFDs, NewSubfileType 1).

    ``rgb_jpeg`` makes non-transformed RGB JPEG tiles (Adobe APP14 transform 0, Photometric RGB).
    ``pixel_size`` is µm, one number for square pixels or (PhysicalSizeX, PhysicalSizeY).
    Each level is the previous one's 2×2 mean, odd rows and columns dropped (so an odd size
    gives a pyramid whose two axes do not shrink by the same factor).
    """
    image = tissue(size[1], size[0], seed=hash(path.name) & 0xFFFF, samples=samples)
    if samples == 1:
        image = image[..., 0]
    photometric = "rgb" if samples == 3 else "minisblack"
    options: dict = {"tile": (tile, tile), "photometric": photometric}
    if compression == "jpeg":
        options["compression"] = "jpeg"
        args: dict = {"level": 85}
        if rgb_jpeg:
            args["outcolorspace"] = "RGB"
        elif samples == 3:
            options["subsampling"] = subsampling
        options["compressionargs"] = args
    elif compression:
        options["compression"] = compression
    metadata: dict = {"axes": "YXS" if samples == 3 else "YX", "Name": path.stem}
    if pixel_size is not None:
        px, py = pixel_size if isinstance(pixel_size, tuple) else (pixel_size, pixel_size)
        metadata.update(
            PhysicalSizeX=px,
            PhysicalSizeY=py,
            PhysicalSizeXUnit="µm",
            PhysicalSizeYUnit="µm",
        )
    levels_data = pyramid(image, levels)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(levels_data[0], subifds=levels - 1, metadata=metadata, iccprofile=icc, **options)
        for data in levels_data[1:]:
            tw.write(data, subfiletype=1, metadata=None, iccprofile=icc, **options)
        if label:  # associated images, named as QuPath/opentile/tifffile expect
            tw.write(tissue(128, 256, seed=7), photometric="rgb", metadata={"Name": "label"})
            tw.write(
                tissue(160, 480, seed=8),
                photometric="rgb",
                compression="jpeg",
                metadata={"Name": "macro"},
            )
            tw.write(
                levels_data[-1][::2, ::2].copy() if samples == 3 else levels_data[-1][::2, ::2],
                photometric=photometric,
                metadata={"Name": "thumbnail"},
            )
    return path


def write_vips(
    path: Path, *, size: tuple[int, int] = (1200, 1000), pixel_size: float = 0.5
) -> Path:
    """libvips ``tiffsave --tile --pyramid --subifd --compression jpeg`` (abbreviated tiles with
    shared JPEGTables), then the OME-XML added afterwards with tifffile.tiffcomment."""
    vips = shutil.which("vips")
    if vips is None:
        raise RuntimeError("vips (Debian libvips-tools) is not installed")
    image = tissue(size[1], size[0], seed=3)
    plain = path.with_suffix(".plain.tif")
    tifffile.imwrite(plain, image, photometric="rgb")
    subprocess.run(
        [
            vips,
            "tiffsave",
            str(plain),
            str(path),
            "--tile",
            "--tile-width",
            "256",
            "--tile-height",
            "256",
            "--pyramid",
            "--subifd",
            "--compression",
            "jpeg",
            "--Q",
            "85",
            "--bigtiff",
        ],
        check=True,
        capture_output=True,
    )
    plain.unlink()
    ome = tifffile.OmeXml()
    ome.addimage(
        "uint8",
        image.shape,
        (1, 1, 1, *image.shape),
        axes="YXS",
        Name="vips slide",
        PhysicalSizeX=pixel_size,
        PhysicalSizeY=pixel_size,
    )
    tifffile.tiffcomment(path, ome.tostring().encode("utf-8"))
    return path


def write_aperio_ome(corpus: Path, path: Path) -> Path:
    """Real Aperio tiles (CMU-1-Small-Region.svs: abbreviated RGB JPEG with shared JPEGTables and
    no colour signalling) copied byte for byte into an OME-TIFF written by tifffile."""
    svs = corpus / "wsi-tiff" / "CMU-1-Small-Region.svs"
    with tifffile.TiffFile(svs) as tf:
        page = tf.pages[0]
        fh = tf.filehandle
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            fh.seek(offset)
            tiles.append(fh.read(count))
        shape = page.shape
        tables = page.jpegtables
        tile = (page.tilelength, page.tilewidth)
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(
            iter(tiles),
            shape=shape,
            dtype="uint8",
            tile=tile,
            compression="jpeg",
            photometric="rgb",
            compressionargs={"outcolorspace": "RGB"},  # keep TIFF Photometric RGB, as Aperio
            jpegtables=tables,
            metadata={
                "axes": "YXS",
                "Name": "CMU-1-Small-Region",
                "PhysicalSizeX": 0.499,
                "PhysicalSizeY": 0.499,
            },
        )
    return path


#: The fluorescence sample's channels: name, emission (nm), OME Color (None: the default).
FLUORESCENCE_CHANNELS = (
    ("DAPI", 461.0, None),
    ("FITC", 519.0, None),
    ("Cy3", 570.0, (255, 128, 0)),
    ("Cy5", 670.0, None),
)
#: Where each channel's bright spots are: level-0 (x, y) centres, three per channel.
FLUORESCENCE_SPOTS = (
    ((100, 100), (400, 300), (560, 120)),
    ((250, 100), (100, 400), (560, 420)),
    ((400, 100), (250, 400), (320, 250)),
    ((100, 250), (560, 270), (420, 440)),
)


def write_fluorescence(path: Path, *, size: tuple[int, int] = (640, 512), planes: int = 3) -> Path:
    """A 4-channel × ``planes`` z-stack, uint16 12-bit, Deflate tiles, 2 SubIFD levels: each
    channel dark (~100) but for Gaussian spots of its own (:data:`FLUORESCENCE_SPOTS`), the
    spots brightest in the middle plane. Cy3 has an OME Color, the others none."""
    width, height = size
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    stack = np.empty((len(FLUORESCENCE_CHANNELS), planes, height, width), np.uint16)
    for k, spots in enumerate(FLUORESCENCE_SPOTS):
        signal = np.zeros((height, width), np.float32)
        for cx, cy in spots:
            signal += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 18.0**2))
        for z in range(planes):
            focus = 1.0 - 0.3 * abs(z - planes // 2)
            plane = 100 + 3000 * focus * signal + rng.normal(0, 8, (height, width))
            stack[k, z] = np.clip(plane, 0, 4095).astype(np.uint16)
    colors = []
    for _, _, rgb in FLUORESCENCE_CHANNELS:  # OME Color: signed 32-bit RGBA
        value = (rgb[0] << 24 | rgb[1] << 16 | rgb[2] << 8 | 255) if rgb else None
        colors.append(value - (1 << 32) if value and value >= 1 << 31 else value)
    channel: dict = {
        "Name": [c[0] for c in FLUORESCENCE_CHANNELS],
        "EmissionWavelength": [c[1] for c in FLUORESCENCE_CHANNELS],
    }
    meta = {
        "axes": "CZYX",
        "PhysicalSizeX": 0.325,
        "PhysicalSizeY": 0.325,
        "PhysicalSizeZ": 1.0,
        "Name": "fluorescence",
        "Channel": channel,
    }
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(stack, tile=(256, 256), compression="zlib", metadata=meta, subifds=1)
        tw.write(stack[..., ::2, ::2], tile=(256, 256), compression="zlib", subfiletype=1)
    if any(c is not None for c in colors):  # tifffile writes a Color for every channel or none
        tiff_colored(path, colors)
    return path


def tiff_colored(path: Path, colors: list[int | None]) -> None:
    """Give the OME-XML's Channels these Color attributes (None: leave the channel without)."""
    import re

    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    n = iter(colors)

    def add(match: re.Match) -> str:
        value = next(n)
        return match.group(0) if value is None else match.group(0)[:-1] + f' Color="{value}">'

    xml = re.sub(r"<Channel [^>]*>", add, xml)
    tifffile.tiffcomment(path, xml.encode())
