"""Re-tiling: a level's pixels handed out in another tile size (for targets that need one)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .model import Level


def retiled(
    level: Level, tile: tuple[int, int], z: int, c: int, dtype: np.dtype
) -> Iterator[np.ndarray]:
    """Decoded tiles of size ``tile`` (rows, columns) in row-major order, assembled from the
    level's own tiles; only the source tiles of the current row of output tiles are kept.
    Edge tiles are zero-padded. Arrays are (rows, columns[, samples])."""
    tile_rows, tile_cols = tile
    src_cols, src_rows = level.tile_size
    width, height = level.size
    samples = level.codec.samples_per_pixel
    cache: dict[tuple[int, int], np.ndarray] = {}
    for oy in range(-(-height // tile_rows)):
        y0, y1 = oy * tile_rows, min(height, (oy + 1) * tile_rows)
        needed_rows = range(y0 // src_rows, (y1 - 1) // src_rows + 1)
        for key in [k for k in cache if k[1] not in needed_rows]:
            del cache[key]
        for ox in range(-(-width // tile_cols)):
            x0, x1 = ox * tile_cols, min(width, (ox + 1) * tile_cols)
            out = np.zeros((tile_rows, tile_cols, samples), dtype)
            for sy in needed_rows:
                for sx in range(x0 // src_cols, (x1 - 1) // src_cols + 1):
                    if (sx, sy) not in cache:
                        tile = level.tiles.decoded(sx, sy, z, c)
                        cache[(sx, sy)] = tile.reshape(tile.shape[0], tile.shape[1], -1)
                    tile = cache[(sx, sy)]
                    ax0, ay0 = max(x0, sx * src_cols), max(y0, sy * src_rows)
                    ax1 = min(x1, (sx + 1) * src_cols)
                    ay1 = min(y1, (sy + 1) * src_rows)
                    out[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0] = tile[
                        ay0 - sy * src_rows : ay1 - sy * src_rows,
                        ax0 - sx * src_cols : ax1 - sx * src_cols,
                    ]
            yield out if samples > 1 else out[..., 0]
