"""How much aliasing each ``--resample`` filter leaves, measured with an FFT of a chirp.

The test image's rows are a chirp whose frequency rises linearly from 0 to 0.5 cycles/px
(level 0's Nyquist frequency) across the width. Where the chirp is above a level's Nyquist
frequency a perfect low-pass leaves a flat grey; whatever energy is there (FFT, Parseval) is
aliasing. Each filter is compared with plain decimation (every 2**k-th pixel, Bio-Formats'
``-pyramid-resolutions``), which keeps all of it. The default filter is chosen from this table
(README.md, "Pyramids"); ``tests/test_pyramid.py`` checks the same through the CLI.

Usage::

    python benchmarks/pyramid_alias.py [--width 4096] [--levels 3]
"""

from __future__ import annotations

import argparse

import numpy as np

from bridge.pyramid import Reducer, Resample


def chirp(width: int, height: int = 32) -> np.ndarray:
    x = np.arange(width)
    row = 128 + 100 * np.cos(2 * np.pi * 0.25 * x**2 / width)
    return np.clip(np.rint(row), 0, 255).astype(np.uint8)[None, :, None].repeat(height, 0)


def alias_energy(level: np.ndarray, k: int, width: int) -> float:
    """FFT energy of level k where the chirp exceeds level k's Nyquist frequency."""
    region = level[:, width // 4**k :, 0].astype(np.float64)
    region -= region.mean(axis=1, keepdims=True)
    return float((np.abs(np.fft.rfft(region, axis=1)) ** 2).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=4096)
    parser.add_argument("--levels", type=int, default=3)
    args = parser.parse_args()
    image = chirp(args.width)
    print("filter     " + "  ".join(f"level {k}" for k in range(1, args.levels + 1)))
    for resample in Resample:
        levels = [image]
        for _ in range(args.levels):
            above = levels[-1]
            size = (above.shape[1], above.shape[0])
            levels.append(Reducer(size, 1, np.uint8, resample, None).push(above, final=True))
        ratios = []
        for k in range(1, args.levels + 1):
            plain = image[:: 2**k, :: 2**k]
            ratios.append(
                alias_energy(levels[k], k, args.width) / alias_energy(plain, k, args.width)
            )
        print(f"{resample.value:9s}  " + "  ".join(f"{r:7.1%}" for r in ratios))


if __name__ == "__main__":
    main()
