"""What to do with DICOM frames TIFF cannot hold as tiles (a size not a multiple of 16).

TIFF 6.0 (section 15, Tiled Images) requires TileWidth and TileLength to be multiples of 16, so
a 500×500 JPEG frame (pathml's TCGA-derived file, among others) cannot be a TIFF tile as it is.
This measures, on such a file, the alternatives for the level:

- ``verbatim``: the frames' own bytes (what a nonstandard 500×500 tile size would hold);
- ``deflate``: decoded and written as Deflate 256×256 tiles (the converter's choice);
- ``jpeg-lossless``: lossless JPEG (process 14, SOF3) 256×256 tiles;
- ``jpeg2000``: reversible JPEG 2000 256×256 tiles (TIFF compression 33005).

Each reports total bytes, × verbatim, and encode time (one thread, decode excluded).

    python benchmarks/odd_tiles.py FILE.dcm [--tile 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
from pydicom.encaps import generate_frames


def _level(path: Path) -> tuple[np.ndarray, list[bytes]]:
    ds = pydicom.dcmread(path)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    rows, cols = int(ds.Rows), int(ds.Columns)
    width, height = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
    nx = -(-width // cols)
    image = np.zeros((-(-height // rows) * rows, nx * cols, 3), np.uint8)
    for k, frame in enumerate(frames):
        y, x = divmod(k, nx)
        image[y * rows : (y + 1) * rows, x * cols : (x + 1) * cols] = imagecodecs.jpeg8_decode(
            frame
        )
    return image[:height, :width], frames


def _tiles(image: np.ndarray, tile: int):
    height, width = image.shape[:2]
    for y in range(0, height, tile):
        for x in range(0, width, tile):
            block = np.zeros((tile, tile, 3), np.uint8)
            part = image[y : y + tile, x : x + tile]
            block[: part.shape[0], : part.shape[1]] = part
            yield block


ENCODERS = {
    "deflate": lambda t: imagecodecs.zlib_encode(t.tobytes(), level=6),
    "jpeg-lossless": lambda t: imagecodecs.jpeg8_encode(t, lossless=True, predictor=1),
    "jpeg2000": lambda t: imagecodecs.jpeg2k_encode(t, level=0, codecformat="J2K"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args()
    image, frames = _level(args.file)
    verbatim = sum(len(f) for f in frames)
    print(f"{args.file.name}: {image.shape[1]}×{image.shape[0]} px, {len(frames)} frames")
    print("| layout | bytes | × verbatim | encode s |")
    print("|---|---:|---:|---:|")
    print(f"| verbatim frames | {verbatim:,} | 1.00 | 0 |")
    for name, encode in ENCODERS.items():
        start = time.perf_counter()
        total = sum(len(encode(t)) for t in _tiles(image, args.tile))
        seconds = time.perf_counter() - start
        print(f"| {name} {args.tile}² | {total:,} | {total / verbatim:.2f} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
