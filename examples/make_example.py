"""Generate the bundled example slide: a small pyramidal JPEG OME-TIFF.

The image is synthetic but looks vaguely like an H&E-stained tissue section:
smooth pink tissue islands with fibrous texture and purple nuclei on a white
background. Everything is derived from a fixed random seed and the OME UUID is
fixed, so the file is byte-for-byte reproducible for a given size and library
versions (tifffile, libjpeg-turbo via imagecodecs).

Layout of the written file (BigTIFF, OME-XML written by tifffile):

* Image 0 ``example``: RGB, 256x256 JPEG tiles (YCbCr 4:2:0, self-contained
  tiles, no JPEGTables), with the reduced resolutions (2x2 mean, factor 2 each)
  stored as SubIFDs until a level fits in a single tile.
* Image 1 ``label``: a small non-pyramidal RGB label image (one JPEG strip).

Usage::

    python examples/make_example.py [OUT.ome.tiff]
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import numpy as np
import tifffile
from numpy.typing import NDArray

DEFAULT_PATH = Path("examples/example.ome.tiff")
PIXEL_SIZE_UM = 0.25
SEED = 20240521
#: Fixed OME UUID so that the example file is byte-for-byte reproducible.
EXAMPLE_UUID = "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, "omedicom/examples/example"))


def _gaussian_blur(image: NDArray, sigma: float) -> NDArray:
    """Return ``image`` blurred with a Gaussian of standard deviation ``sigma`` (FFT-based)."""
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    kernel = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(image) * kernel, s=image.shape)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> NDArray:
    """Return Gaussian-filtered white noise, normalised to zero mean and unit std."""
    field = _gaussian_blur(rng.standard_normal(shape), sigma)
    field -= field.mean()
    field /= field.std() + 1e-12
    return field


def synthetic_tissue(width: int, height: int, seed: int = SEED) -> NDArray[np.uint8]:
    """Return a deterministic, tissue-looking RGB image of shape (height, width, 3)."""
    rng = np.random.default_rng(seed)
    shape = (height, width)
    scale = min(width, height) / 1536.0

    # Tissue islands: a low-frequency field thresholded with soft edges.
    islands = _smooth_noise(rng, shape, 90.0 * scale)
    tissue = 1.0 / (1.0 + np.exp(-(islands - 0.2) * 6.0))

    # Fibrous stroma texture and local stain density variation.
    fibres = _smooth_noise(rng, shape, 3.0)
    density = _smooth_noise(rng, shape, 25.0)
    eosin = np.clip(0.55 + 0.12 * fibres + 0.15 * density, 0.0, 1.0) * tissue

    # Nuclei: sparse impulses inside the tissue, blurred into small round blobs.
    impulses = np.zeros(shape)
    count = width * height // 500
    ys = rng.integers(0, height, count)
    xs = rng.integers(0, width, count)
    impulses[ys, xs] = rng.uniform(0.5, 1.0, count)
    blobs = _gaussian_blur(impulses, 2.5)
    nuclei = np.clip((blobs / (blobs.max() + 1e-12)) * 6.0 - 0.35, 0.0, 1.0) * tissue

    # Beer-Lambert-like mixing of an eosin (pink) and a haematoxylin (purple) stain.
    eosin_od = np.array([0.05, 0.55, 0.25])
    haem_od = np.array([0.65, 0.85, 0.30])
    od = eosin[..., None] * eosin_od + nuclei[..., None] * haem_od * 1.6
    rgb = 242.0 * np.exp(-od)
    rgb += rng.normal(0.0, 2.0, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def synthetic_label(width: int = 256, height: int = 128) -> NDArray[np.uint8]:
    """Return a simple RGB slide label: white card, coloured header and a barcode-like pattern."""
    label = np.full((height, width, 3), 250, dtype=np.uint8)
    label[: height // 4] = (40, 90, 170)
    rng = np.random.default_rng(SEED + 1)
    x = 16
    top, bottom = height // 2 - 8, height - 16
    while x < width - 16:
        bar = int(rng.integers(1, 5))
        label[top:bottom, x : x + bar] = 0
        x += bar + int(rng.integers(1, 4))
    return label


def downsample2(image: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """Return ``image`` reduced by 2 in Y and X using a 2x2 mean (odd edges are replicated)."""
    height, width = image.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    if height % 2 or width % 2:
        image = np.pad(image, pad, mode="edge")
    h2, w2 = image.shape[0] // 2, image.shape[1] // 2
    blocks = image.reshape(h2, 2, w2, 2, -1).astype(np.uint16)
    return ((blocks.sum(axis=(1, 3)) + 2) // 4).astype(np.uint8)


def make_example(
    path: str | Path = DEFAULT_PATH,
    width: int = 2048,
    height: int = 1536,
    tile: int = 256,
) -> Path:
    """Write the example pyramidal JPEG OME-TIFF to ``path`` and return the path.

    Level 0 is ``width`` x ``height``; each SubIFD level halves both dimensions
    (2x2 mean) until the level fits in one ``tile`` x ``tile`` tile.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    levels = [synthetic_tissue(width, height)]
    while max(levels[-1].shape[:2]) > tile:
        levels.append(downsample2(levels[-1]))

    px_per_cm = 1e4 / PIXEL_SIZE_UM
    options = {
        "tile": (tile, tile),
        "photometric": "rgb",
        "compression": "jpeg",
        "resolutionunit": "CENTIMETER",
    }
    metadata = {
        "axes": "YXS",
        "PhysicalSizeX": PIXEL_SIZE_UM,
        "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": PIXEL_SIZE_UM,
        "PhysicalSizeYUnit": "µm",
        "Name": "example",
        "UUID": EXAMPLE_UUID,
    }
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(
            levels[0],
            subifds=len(levels) - 1,
            resolution=(px_per_cm, px_per_cm),
            metadata=metadata,
            **options,
        )
        for index, level in enumerate(levels[1:], start=1):
            scaled = px_per_cm / 2**index
            tw.write(level, subfiletype=1, resolution=(scaled, scaled), **options)
        label = synthetic_label()
        tw.write(
            label,
            photometric="rgb",
            compression="jpeg",
            rowsperstrip=label.shape[0],
            metadata={"Name": "label"},
        )
    return path


def verify(path: str | Path) -> str:
    """Check the written file's structure and return a one-line description of it."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series
        if len(series) != 2:
            msg = f"expected 2 series, found {len(series)}"
            raise RuntimeError(msg)
        levels = series[0].levels
        if len(levels) < 2:
            msg = f"expected a pyramid in series 0, found {len(levels)} level(s)"
            raise RuntimeError(msg)
        levels[-1].asarray()  # decode the smallest level as a smoke test
        shapes = ", ".join("x".join(map(str, lvl.shape[:2][::-1])) for lvl in levels)
        return (
            f"series: {[s.name for s in series]}; {len(levels)} levels ({shapes}); "
            f"label {series[1].shape}"
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: ``make_example.py [OUT]``."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else DEFAULT_PATH
    start = time.perf_counter()
    out = make_example(target)
    elapsed = time.perf_counter() - start
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) in {elapsed:.2f} s")
    print(verify(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
