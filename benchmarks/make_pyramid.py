"""Generate a large synthetic pyramidal JPEG OME-TIFF for benchmarks, quickly.

Instead of encoding every tile, a small pool of distinct tiles is JPEG-encoded
once (YCbCr, 4:2:0 chroma subsampling, quality 90, each a self-contained JPEG
stream) and the encoded bytes are written verbatim, tile after tile, by
tifffile. With ``--jpegtables`` the tiles are abbreviated streams instead: their
quantization and Huffman tables (the same in every pool tile) are moved into one
JPEGTables tag, as Aperio and many scanners write them; a converter must merge
the tables back into every frame. The result is a valid tiled BigTIFF with
OME-XML metadata and SubIFD pyramid levels; the pixel content is a deterministic
patchwork of the pool tiles (lower levels are not true downsamples of level 0,
which does not matter for a copy benchmark).

Usage::

    python benchmarks/make_pyramid.py OUT.ome.tiff [--size 32768] [--tile 256] [--jpegtables]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from numpy.typing import NDArray

PIXEL_SIZE_UM = 0.25
SEED = 12345

#: Chroma subsampling of the pre-encoded tiles; must match the YCbCrSubSampling tag.
SUBSAMPLING = (2, 2)


def _tile_image(rng: np.random.Generator, tile: int) -> NDArray[np.uint8]:
    """Return one noisy, tissue-coloured RGB tile of shape (tile, tile, 3)."""
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32) / tile
    # Low-frequency colour variation: a few random sinusoids.
    field = np.zeros((tile, tile), np.float32)
    for _ in range(4):
        fy, fx = rng.uniform(0.5, 4.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.sin(2 * np.pi * (fy * yy + fx * xx) + phase).astype(np.float32)
    field /= 4.0
    base = np.array(rng.uniform([200, 110, 160], [235, 160, 205]), np.float32)
    purple = np.array([110, 70, 160], np.float32)
    mix = np.clip(0.5 + 0.5 * field, 0, 1)[..., None]
    rgb = base * (1 - 0.4 * mix) + purple * 0.4 * mix
    # High-frequency noise drives the compressed size (~25-35 KB per 256x256 tile).
    rgb += rng.normal(0.0, rng.uniform(11.0, 15.0), (tile, tile, 1)).astype(np.float32)
    rgb += rng.normal(0.0, 4.0, (tile, tile, 3)).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def encode_pool(count: int = 64, tile: int = 256, level: int = 90, seed: int = SEED) -> list[bytes]:
    """Return ``count`` distinct, self-contained baseline JPEG tiles (YCbCr 4:2:0)."""
    rng = np.random.default_rng(seed)
    return [
        imagecodecs.jpeg8_encode(
            _tile_image(rng, tile),
            level=level,
            colorspace="RGB",
            outcolorspace="YCBCR",
            subsampling=SUBSAMPLING,
        )
        for _ in range(count)
    ]


#: JPEG markers of the table segments moved into JPEGTables (T.81 B.1.1.3: DQT, DHT).
_TABLE_MARKERS = (0xDB, 0xC4)


def _segments(stream: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The marker segments between SOI and SOS, and the rest (SOS to EOI), of a JPEG stream."""
    segments = []
    pos = 2
    while stream[pos + 1] != 0xDA:  # SOS
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        segments.append((stream[pos + 1], stream[pos : pos + 2 + length]))
        pos += 2 + length
    return segments, stream[pos:]


def abbreviate(pool: Sequence[bytes]) -> tuple[list[bytes], bytes]:
    """Split self-contained JPEG tiles into abbreviated streams and one JPEGTables stream
    (SOI, the tables, EOI; TIFF Technical Note 2). The tables must be the same in every tile."""
    tables = None
    tiles = []
    for stream in pool:
        segments, scan = _segments(stream)
        own = b"".join(seg for marker, seg in segments if marker in _TABLE_MARKERS)
        if tables is not None and own != tables:
            raise ValueError("the pool tiles do not share their JPEG tables")
        tables = own
        rest = b"".join(seg for marker, seg in segments if marker not in _TABLE_MARKERS)
        tiles.append(b"\xff\xd8" + rest + scan)
    return tiles, b"\xff\xd8" + (tables or b"") + b"\xff\xd9"


def level_shapes(size: int, tile: int, max_sublevels: int = 4) -> list[tuple[int, int]]:
    """Return (height, width) of level 0 and its SubIFD levels (factor 2, until <= tile)."""
    shapes = [(size, size)]
    while len(shapes) <= max_sublevels and max(shapes[-1]) > tile:
        height, width = shapes[-1]
        shapes.append((math.ceil(height / 2), math.ceil(width / 2)))
    return shapes


def _tiles(pool: Sequence[bytes], count: int, rng: np.random.Generator) -> Iterator[bytes]:
    """Yield ``count`` pre-encoded tiles picked pseudo-randomly from ``pool``."""
    for index in rng.integers(0, len(pool), count):
        yield pool[index]


def make_pyramid(
    path: str | Path,
    size: int = 32768,
    tile: int = 256,
    *,
    pool_size: int = 64,
    max_sublevels: int = 4,
    seed: int = SEED,
    jpegtables: bool = False,
) -> Path:
    """Write a ``size`` x ``size`` RGB JPEG pyramid OME-TIFF to ``path`` and return the path.

    ``tile`` must be a multiple of 16 (JPEG 4:2:0 MCU size). ``jpegtables``: abbreviated tiles
    with shared tables (see :func:`abbreviate`).
    """
    if tile % 16:
        msg = f"tile size must be a multiple of 16, got {tile}"
        raise ValueError(msg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = encode_pool(pool_size, tile, seed=seed)
    tables = None
    if jpegtables:
        pool, tables = abbreviate(pool)
    shapes = level_shapes(size, tile, max_sublevels)

    px_per_cm = 1e4 / PIXEL_SIZE_UM
    # Pre-compressed tiles: tifffile writes the bytes as-is. photometric='rgb' together
    # with compression='jpeg' makes tifffile write PhotometricInterpretation=YCbCr,
    # YCbCrSubSampling=SUBSAMPLING and ReferenceBlackWhite, matching the JPEG streams.
    options = {
        "dtype": np.uint8,
        "tile": (tile, tile),
        "photometric": "rgb",
        "compression": "jpeg",
        "subsampling": SUBSAMPLING,
        "resolutionunit": "CENTIMETER",
        "jpegtables": tables,
    }
    metadata = {
        "axes": "YXS",
        "PhysicalSizeX": PIXEL_SIZE_UM,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": PIXEL_SIZE_UM,
        "PhysicalSizeYUnit": "µm",
        "Name": "benchmark",
    }
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        for index, (height, width) in enumerate(shapes):
            ntiles = math.ceil(height / tile) * math.ceil(width / tile)
            scaled = px_per_cm / 2**index
            extra = (
                {"subifds": len(shapes) - 1, "metadata": metadata}
                if index == 0
                else {"subfiletype": 1}
            )
            tw.write(
                _tiles(pool, ntiles, rng),
                shape=(height, width, 3),
                resolution=(scaled, scaled),
                **options,
                **extra,
            )
    return path


def verify(path: str | Path) -> str:
    """Check structure and decodability of the file; return a one-line description."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        page = series.pages[0]
        if page.photometric != tifffile.PHOTOMETRIC.YCBCR:
            msg = f"unexpected photometric {page.photometric!r}"
            raise RuntimeError(msg)
        # Decode one raw tile directly and through tifffile, plus the smallest level.
        tif.filehandle.seek(page.dataoffsets[0])
        raw = tif.filehandle.read(page.databytecounts[0])
        direct = imagecodecs.jpeg8_decode(raw, tables=page.jpegtables)
        via_tifffile = page.decode(raw, 0, jpegtables=page.jpegtables)[0]
        if via_tifffile is None or direct.shape != via_tifffile.shape[-3:]:
            msg = "tile decode mismatch"
            raise RuntimeError(msg)
        series.levels[-1].asarray()
        shapes = ", ".join(f"{lvl.shape[1]}x{lvl.shape[0]}" for lvl in series.levels)
        tables = f", JPEGTables of {len(page.jpegtables)} bytes" if page.jpegtables else ""
        return (
            f"{len(series.levels)} levels ({shapes}), {len(page.dataoffsets)} tiles at level 0"
            + tables
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="output .ome.tiff path")
    parser.add_argument("--size", type=int, default=32768, help="level-0 width = height (px)")
    parser.add_argument("--tile", type=int, default=256, help="tile size (px)")
    parser.add_argument("--pool", type=int, default=64, help="number of distinct JPEG tiles")
    parser.add_argument(
        "--jpegtables",
        action="store_true",
        help="abbreviated tiles with shared JPEGTables (the tables must be merged into frames)",
    )
    parser.add_argument("--no-verify", action="store_true", help="skip the read-back check")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    out = make_pyramid(
        args.output,
        size=args.size,
        tile=args.tile,
        pool_size=args.pool,
        jpegtables=args.jpegtables,
    )
    elapsed = time.perf_counter() - start
    if not args.no_verify:
        print(verify(out))
    size = out.stat().st_size
    print(f"wrote {out}: {size} bytes ({size / 1e6:.1f} MB) in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
