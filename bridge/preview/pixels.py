"""The pixels of a preview: one pyramid level decoded through its tile source, made RGB.

The level drawn is the smallest one that is at least the asked size on its longer side (the
largest level when none is), so a preview decodes as few tiles as a good picture needs. Tiles
are decoded with the level's own :class:`~bridge.model.TileSource` (imagecodecs underneath), so
whatever ``convert`` reads, ``preview`` shows.

Colour (3-sample, 8-bit) images are shown as they decode. Everything else is a fluorescence
style composite: each channel (OME Channel, DICOM optical path) is windowed between two
percentiles of its own values and added in the channel's colour (OME ``Channel/@Color``; a
channel without one gets a colour from a fixed palette by emission wavelength, bluest first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError, UnsupportedError
from ..model import Image, Level

#: Colours given to channels that have none, in order of emission wavelength (bluest first):
#: blue, green, red, magenta, cyan, yellow, white (the usual DAPI/FITC/Cy3/Cy5 display).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 255),
    (0, 255, 0),
    (255, 0, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 255, 0),
    (255, 255, 255),
)

#: Default contrast window of each channel: these percentiles of its values become 0 and 1.
WINDOW = (0.5, 99.5)


@dataclass(frozen=True)
class ChannelShown:
    """How one channel is drawn: its name, RGB colour and contrast window (sample values)."""

    name: str
    color: tuple[int, int, int]
    window: tuple[float, float]


def pick_level(image: Image, size: int) -> Level:
    """The smallest level whose longer side is at least ``size`` px, else level 0."""
    fitting = [lv for lv in image.levels if max(lv.size) >= size]
    return min(fitting, key=lambda lv: lv.size[0] * lv.size[1]) if fitting else image.levels[0]


def reduction(level: Level, size: int) -> int:
    """How many level pixels (per side) one decoded pixel averages: the largest power of two
    that keeps the level's longer side at least ``size`` and divides the tile size. A level
    larger than twice the preview (a slide without a pyramid) is then reduced tile by tile as
    it is decoded, never held whole."""
    step = 1
    while (
        max(level.size) // (step * 2) >= size
        and level.tile_size[0] % (step * 2) == 0
        and level.tile_size[1] % (step * 2) == 0
    ):
        step *= 2
    return step


def decode_level(level: Level, z: int = 0, c: int = 0, step: int = 1) -> np.ndarray:
    """The whole level at focal plane ``z`` and channel ``c`` as (rows, columns, samples),
    each ``step`` × ``step`` block of pixels averaged into one (``step`` divides the tile
    size; see :func:`reduction`)."""
    width, height = level.size
    tw, th = level.tile_size
    nx, ny = level.grid
    out: np.ndarray | None = None
    for ty in range(ny):
        for tx in range(nx):
            tile = _decoded(level, tx, ty, z, c)
            if tile.ndim == 2:
                tile = tile[..., None]
            if out is None:
                shape = (-(-height // step), -(-width // step), tile.shape[2])
                out = np.zeros(shape, tile.dtype)
            x0, y0 = tx * tw, ty * th
            h, w = min(th, height - y0), min(tw, width - x0)
            part = tile[:h, :w]
            if step > 1:
                part = _block_mean(part, step)
            out[
                y0 // step : y0 // step + part.shape[0], x0 // step : x0 // step + part.shape[1]
            ] = part
    if out is None:
        raise InputError(f"level {level.index} has no tiles to draw")
    return out


def _block_mean(part: np.ndarray, step: int) -> np.ndarray:
    """Mean of each ``step`` × ``step`` block; a partial block at the edge is padded with
    its edge pixels."""
    h, w = part.shape[:2]
    pad = ((0, -h % step), (0, -w % step), (0, 0))
    if any(p[1] for p in pad):
        part = np.pad(part, pad, mode="edge")
    rows, cols = part.shape[0] // step, part.shape[1] // step
    blocks = part.reshape(rows, step, cols, step, part.shape[2]).astype(np.float32)
    mean = blocks.mean(axis=(1, 3))
    if np.issubdtype(part.dtype, np.integer):
        mean = np.rint(mean)
    return mean.astype(part.dtype)


def _decoded(level: Level, x: int, y: int, z: int, c: int) -> np.ndarray:
    """One tile's pixels; a level the reader already flagged (``issue``) and whose tiles do
    not decode is refused with the reader's reason, not a decoder's message."""
    try:
        return level.tiles.decoded(x, y, z, c)
    except Exception as exc:
        if level.issue is None:
            raise
        raise UnsupportedError(
            f"level {level.index} cannot be drawn: {level.issue}",
            hint="convert and preview read the same tiles; this kind is not supported yet",
        ) from exc


def channel_colors(image: Image) -> list[tuple[int, int, int]]:
    """Each channel's display colour: its own (OME Color; not black, not transparent, not one
    an earlier channel has), else from :data:`PALETTE` in order of emission (or excitation)
    wavelength, channels without one last, in their order."""
    channels = image.channels or ()
    count = max(1, len(channels))
    if count == 1 and not (channels and channels[0].color):
        return [(255, 255, 255)]

    def wavelength(k: int) -> float:
        if k >= len(channels):
            return float("inf")
        ch = channels[k]
        return ch.emission_nm or ch.excitation_nm or float("inf")

    # a channel keeps its own colour unless an earlier channel has it already (several
    # channels all "red" would make one red blur); the others take the palette's free colours
    own: dict[int, tuple[int, int, int]] = {}
    for k, ch in enumerate(channels):
        # alpha 0 (fully transparent) says nothing about a display colour: old OME files
        # write Color="-2147483648" (128, 0, 0, 0) on every channel
        rgb = tuple(int(v) for v in ch.color[:3]) if ch.color and ch.color[3:4] != (0,) else None
        if rgb is not None and rgb != (0, 0, 0) and rgb not in own.values():
            own[k] = rgb  # type: ignore[assignment]
    free = iter([p for p in PALETTE if p not in own.values()] + list(PALETTE))
    colors = dict(own)
    for k in sorted(range(count), key=lambda k: (wavelength(k), k)):
        if k not in colors:
            colors[k] = next(free)
    return [colors[k] for k in range(count)]


def _window(values: np.ndarray, percentiles: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(values, percentiles))
    if hi <= lo:  # a flat channel: show it at its level, not as noise
        hi = lo + 1.0
    return lo, hi


def render_rgb(
    image: Image,
    level: Level,
    *,
    z: int | None = None,
    window: tuple[float, float] = WINDOW,
    step: int = 1,
) -> tuple[np.ndarray, list[ChannelShown]]:
    """The level (reduced ``step`` times per side) as an (rows, columns, 3) uint8 RGB array,
    and the channels as drawn (empty for a colour image shown as it is)."""
    plane = image.size_z // 2 if z is None else z
    if not 0 <= plane < image.size_z:
        raise InputError(
            f"focal plane {plane} does not exist; the image has {image.size_z}",
            hint=f"give --z between 0 and {image.size_z - 1}",
        )
    first = decode_level(level, plane, 0, step)
    if first.shape[2] == 3 and first.dtype == np.uint8:
        return first, []
    if first.shape[2] >= 3:  # colour samples deeper than 8 bits: window each sample
        rgb = np.empty((*first.shape[:2], 3), np.uint8)
        for s in range(3):
            lo, hi = _window(first[..., s], window)
            rgb[..., s] = _scaled(first[..., s], lo, hi)
        return rgb, []
    colors = channel_colors(image)
    acc = np.zeros((*first.shape[:2], 3), np.float32)
    shown = []
    for k, color in enumerate(colors):
        data = first[..., 0] if k == 0 else decode_level(level, plane, k, step)[..., 0]
        lo, hi = _window(data, window)
        weight = np.clip((data.astype(np.float32) - lo) / (hi - lo), 0, 1)
        acc += weight[..., None] * (np.asarray(color, np.float32) / 255.0)
        ch = image.channels[k] if k < len(image.channels) else None
        shown.append(ChannelShown((ch.name if ch else None) or f"channel {k}", color, (lo, hi)))
    return (np.clip(acc, 0, 1) * 255 + 0.5).astype(np.uint8), shown


def _scaled(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip((values.astype(np.float32) - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(
        np.uint8
    )
