"""A preview picture of a slide: the whole pyramid, a scale bar, the annotations, the label.

Layout (white page): the slide at the top left, its label to the right (unless asked not to),
and under the slide the scale bar, then a legend of channels and of annotation groups.

Geometry. The slide is drawn ``w × h`` px for a level-0 matrix of ``W × H`` px, so one preview
pixel is ``W / w`` level-0 pixels (``pixel_size_um × W / w`` µm). Annotation coordinates are
level-0 pixels with the corner origin of the model (a point at (x, y) lies at preview position
``(x · w / W, y · h / H)`` from the slide's top-left corner). The scale bar is a round length
(1, 2 or 5 × 10^n µm) no longer than a quarter of the slide's width, drawn
``round(length / preview pixel size)`` px long.

The PNG says what it shows in text chunks (``omedicom:*``): the slide's box in the picture, the
preview pixel size, the scale bar's length, position and text, the level drawn, the channels
with their colour and window, and the annotation groups with their counts.
"""

from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from ..errors import InputError
from ..model import AnnotationGroup, GraphicType, Image, ImageKind, Slide
from .pixels import WINDOW, ChannelShown, decode_level, pick_level, reduction, render_rgb

#: Colours of annotation groups that have none (distinct from the channel palette).
GROUP_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 200, 0),
    (0, 200, 255),
    (255, 80, 160),
    (120, 255, 80),
    (255, 120, 0),
    (180, 120, 255),
)
MARGIN = 12
#: Annotation groups named in the legend; more are counted in one line.
LEGEND_GROUPS = 24
BAR_HEIGHT = 6
BAR_COLOR = (0, 0, 0)
PAGE = (255, 255, 255)
INK = (20, 20, 20)


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar: ``length_um`` µm drawn ``pixels`` px long, left end at ``(x, y)``."""

    length_um: float
    pixels: int
    x: int
    y: int

    @property
    def text(self) -> str:
        if self.length_um >= 1000:
            return f"{self.length_um / 1000:g} mm"
        return f"{self.length_um:g} µm"


@dataclass
class Preview:
    """A rendered preview and the facts it states (also written into the PNG)."""

    picture: PILImage.Image
    slide_box: tuple[int, int, int, int]  # x, y, width, height of the slide in the picture
    level: int
    pixel_size_um: tuple[float, float] | None  # one preview pixel, µm (x, y)
    scale_bar: ScaleBar | None
    channels: list[ChannelShown] = field(default_factory=list)
    groups: list[tuple[str, str, int, tuple[int, int, int]]] = field(default_factory=list)
    label_box: tuple[int, int, int, int] | None = None
    drawn_annotations: int = 0
    reduction: int = 1  # level pixels per side averaged into one while decoding

    def facts(self) -> dict[str, str]:
        """The PNG text chunks."""
        out = {
            "omedicom:slide_box": ",".join(map(str, self.slide_box)),
            "omedicom:level": str(self.level),
            "omedicom:reduction": str(self.reduction),
            "omedicom:channels": json.dumps(
                [
                    {"name": c.name, "color": list(c.color), "window": c.window}
                    for c in self.channels
                ]
            ),
            "omedicom:annotations": json.dumps(
                [
                    {"label": g[0], "graphic_type": g[1], "count": g[2], "color": list(g[3])}
                    for g in self.groups
                ]
            ),
        }
        if self.pixel_size_um:
            out["omedicom:pixel_size_um"] = "{:.9g},{:.9g}".format(*self.pixel_size_um)
        if self.scale_bar:
            b = self.scale_bar
            out["omedicom:scale_bar"] = json.dumps(
                {"length_um": b.length_um, "pixels": b.pixels, "x": b.x, "y": b.y, "text": b.text}
            )
        if self.label_box:
            out["omedicom:label_box"] = ",".join(map(str, self.label_box))
        return out

    def png(self) -> bytes:
        info = PngInfo()
        for key, value in self.facts().items():
            info.add_itxt(key, value)
        buf = io.BytesIO()
        self.picture.save(buf, format="PNG", pnginfo=info, optimize=False, compress_level=3)
        return buf.getvalue()


#: Fonts tried in turn (found by Pillow in the system's font folders); they have "µ".
FONTS = ("DejaVuSans.ttf", "LiberationSans-Regular.ttf", "FreeSans.ttf")


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for name in FONTS:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:  # Pillow's own font has no "µ": :func:`micro` writes "um" with it
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def micro(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> str:
    """``text`` with "µ" spelled "u" when ``font`` cannot draw it."""
    path = getattr(font, "path", None)
    if isinstance(path, str) and os.path.basename(path) in FONTS:
        return text
    return text.replace("µ", "u")


def round_length(max_um: float) -> float:
    """The largest 1, 2 or 5 × 10^n µm not above ``max_um``."""
    if max_um <= 0 or not math.isfinite(max_um):
        raise ValueError("a scale bar needs a positive length")
    exp = math.floor(math.log10(max_um))
    for step in (5, 2, 1):
        value = step * 10.0**exp
        if value <= max_um * (1 + 1e-9):
            return float(f"{value:.12g}")
    return float(f"{10.0 ** (exp - 1) * 5:.12g}")


def choose_image(slide: Slide, index: int | None = None) -> Image:
    """The pyramid to draw: the one with source index ``index``, else the first."""
    volumes = list(slide.volumes())
    if index is None and not volumes:  # a thumbnail or overview alone: draw that
        found = next((i for i in slide.images if i.kind is not ImageKind.LABEL), None)
        if found is None:
            raise InputError("the slide holds no image to draw but a label", path=slide.source)
        return found
    if index is None:
        return volumes[0]
    for image in volumes:
        if image.source_index == index:
            return image
    raise InputError(
        f"the slide has no pyramid number {index}",
        path=slide.source,
        hint="pyramids: " + ", ".join(str(i.source_index) for i in volumes),
    )


def render(
    slide: Slide,
    *,
    image: Image | None = None,
    size: int = 1024,
    annotations: tuple[AnnotationGroup, ...] | None = None,
    label: bool = True,
    z: int | None = None,
    window: tuple[float, float] = WINDOW,
) -> Preview:
    """Draw ``image`` (default: the slide's first pyramid) with its longer side ``size`` px.

    ``annotations`` default to the slide's groups that belong to this image."""
    if size < 16:
        raise InputError(f"a preview of {size} px is too small", hint="give --size 16 or more")
    image = image or choose_image(slide)
    if annotations is None:
        annotations = tuple(g for g in slide.annotations if g.image_index == image.source_index)
    level = pick_level(image, size)
    step = reduction(level, size)
    rgb, channels = render_rgb(image, level, z=z, window=window, step=step)
    full_w, full_h = image.size
    scale = size / max(full_w, full_h)
    w, h = max(1, round(full_w * scale)), max(1, round(full_h * scale))
    picture = PILImage.fromarray(rgb, "RGB")
    if picture.size != (w, h):
        smaller = w < picture.width
        resample = PILImage.Resampling.BOX if smaller else PILImage.Resampling.NEAREST
        picture = picture.resize((w, h), resample)

    label_img = _label(slide, h, w) if label else None
    font = _font(14)
    groups = [
        (g.label or "(no label)", g.graphic_type.value, g.count, _group_color(g, n))
        for n, g in enumerate(annotations)
    ]
    legend = _legend(channels, groups)
    page_w = MARGIN + w + (MARGIN + label_img.width if label_img else 0) + MARGIN
    text_w = max((font.getlength(micro(t, font)) for _, t in legend), default=0)
    page_w = max(page_w, 320, MARGIN + 22 + int(text_w) + 1 + MARGIN)
    footer = 28 + 20 + 20 * len(legend)
    page_h = MARGIN + h + footer + MARGIN
    page = PILImage.new("RGB", (page_w, page_h), PAGE)
    page.paste(picture, (MARGIN, MARGIN))
    draw = ImageDraw.Draw(page)
    label_box = None
    if label_img is not None:
        lx = MARGIN + w + MARGIN
        page.paste(label_img, (lx, MARGIN))
        label_box = (lx, MARGIN, label_img.width, label_img.height)
        draw.text((lx, MARGIN + label_img.height + 4), "label", fill=INK, font=_font(12))

    drawn = _draw_annotations(draw, annotations, groups, (MARGIN, MARGIN), (w / full_w, h / full_h))

    y = MARGIN + h + 14
    pixel_size = None
    bar = None
    if image.pixel_size_um:
        pixel_size = (image.pixel_size_um[0] * full_w / w, image.pixel_size_um[1] * full_h / h)
        length = round_length(pixel_size[0] * w / 4)
        pixels = round(length / pixel_size[0])
        if pixels >= 1:
            bar = ScaleBar(length, pixels, MARGIN, y)
            draw.rectangle((bar.x, y, bar.x + pixels - 1, y + BAR_HEIGHT - 1), fill=BAR_COLOR)
            draw.text((bar.x + pixels + 8, y - 5), micro(bar.text, font), fill=INK, font=font)
    else:
        draw.text((MARGIN, y - 5), "no pixel size: no scale bar", fill=INK, font=font)
    row = y + 22
    for color, text in legend:
        if color is not None:
            _swatch(draw, (MARGIN, row), color)
        draw.text((MARGIN + 22, row), micro(text, font), fill=INK, font=font)
        row += 20
    return Preview(
        page,
        (MARGIN, MARGIN, w, h),
        level.index,
        pixel_size,
        bar,
        channels,
        groups,
        label_box,
        drawn,
        step,
    )


def _legend(
    channels: list[ChannelShown], groups: list[tuple[str, str, int, tuple[int, int, int]]]
) -> list[tuple[tuple[int, int, int] | None, str]]:
    """The legend's lines: each channel with its window, each annotation group with its count
    (the first :data:`LEGEND_GROUPS`; the others counted in one line)."""
    lines: list[tuple[tuple[int, int, int] | None, str]] = []
    for ch in channels:
        lo, hi = ch.window
        lines.append((ch.color, f"{ch.name}  window {lo:.6g} to {hi:.6g}"))
    for text, kind, count, color in groups[:LEGEND_GROUPS]:
        noun = kind.lower() + ("s" if count != 1 else "")
        lines.append((color, f"{text}: {count:,} {noun}"))
    rest = groups[LEGEND_GROUPS:]
    if rest:
        total = sum(g[2] for g in rest)
        lines.append((None, f"... and {len(rest):,} more groups, {total:,} annotations"))
    return lines


def _swatch(draw: ImageDraw.ImageDraw, at: tuple[int, int], color: tuple[int, int, int]) -> None:
    x, y = at
    draw.rectangle((x, y + 2, x + 14, y + 14), fill=color, outline=(90, 90, 90))


def _group_color(group: AnnotationGroup, n: int) -> tuple[int, int, int]:
    if group.color:
        return tuple(int(v) for v in group.color[:3])  # type: ignore[return-value]
    return GROUP_COLORS[n % len(GROUP_COLORS)]


def _label(slide: Slide, height: int, width: int) -> PILImage.Image | None:
    """The slide's label image, scaled to fit beside the slide: at most as tall as the slide
    and half as wide."""
    found = next((i for i in slide.images if i.kind is ImageKind.LABEL), None)
    if found is None:
        return None
    level = min(found.levels, key=lambda lv: lv.size[0] * lv.size[1])
    data = decode_level(level)
    if data.dtype != np.uint8:
        top = float(data.max()) or 1.0
        data = (data.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    picture = PILImage.fromarray(data[..., :3] if data.shape[2] >= 3 else data[..., 0])
    picture = picture.convert("RGB")
    scale = min(height / picture.height, max(width / 2, 64) / picture.width)
    target = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(target, PILImage.Resampling.BILINEAR)


def _ellipse_outline(pts: np.ndarray, steps: int = 32) -> np.ndarray:
    """(N, 4, 2) major- then minor-axis endpoints -> (N, steps, 2) outline points."""
    centre = (pts[:, 0] + pts[:, 1]) / 2
    a = (pts[:, 1] - pts[:, 0]) / 2
    b = (pts[:, 3] - pts[:, 2]) / 2
    t = np.linspace(0, 2 * np.pi, steps, endpoint=False)
    return (
        centre[:, None, :]
        + np.cos(t)[None, :, None] * a[:, None, :]
        + np.sin(t)[None, :, None] * b[:, None, :]
    )


def _draw_shapes(
    draw: ImageDraw.ImageDraw,
    pts: np.ndarray,
    starts: np.ndarray,
    color: tuple[int, int, int],
    closed: bool,
) -> int:
    """Outline each shape ``pts[starts[i]:starts[i+1]]``; one smaller than 1.5 preview pixels
    is drawn as a 3 px dot (100,000 cells on a 1024 px preview are mostly dots)."""
    if len(starts) == 0:
        return 0
    lo = np.minimum.reduceat(pts, starts, axis=0)
    hi = np.maximum.reduceat(pts, starts, axis=0)
    tiny = (hi - lo).max(axis=1) < 1.5
    centres = ((lo + hi) / 2)[tiny]
    for x, y in np.rint(centres).astype(np.int64).tolist():
        draw.rectangle((x - 1, y - 1, x + 1, y + 1), fill=color)
    flat = pts.ravel().tolist()
    ends = np.append(starts[1:], len(pts))
    for start, end in zip(starts[~tiny].tolist(), ends[~tiny].tolist(), strict=True):
        coords = flat[2 * start : 2 * end]
        if closed:
            draw.polygon(coords, outline=color, width=2)
        else:
            draw.line(coords, fill=color, width=2)
    return len(starts)


def _draw_annotations(
    draw: ImageDraw.ImageDraw,
    annotations: tuple[AnnotationGroup, ...],
    groups: list[tuple[str, str, int, tuple[int, int, int]]],
    origin: tuple[int, int],
    scale: tuple[float, float],
) -> int:
    """Draw every annotation; a shape smaller than a preview pixel is drawn as a dot.
    Returns the number of annotations drawn."""
    drawn = 0
    mul = np.asarray(scale, np.float64)
    # Pillow's coordinate i is the centre of pixel i; the model's x is a corner-origin
    # position, whose pixel centre is x - 0.5
    off = np.asarray(origin, np.float64) - 0.5
    for group, (_, _, _, color) in zip(annotations, groups, strict=True):
        if group.count == 0:
            continue
        pts = np.asarray(group.coordinates, np.float64) * mul + off
        kind = group.graphic_type
        if kind is GraphicType.POINT:
            for x, y in pts.tolist():  # a 5 px disc centred on the point
                draw.ellipse((x - 2.5, y - 2.5, x + 2.5, y + 2.5), fill=color)
            drawn += len(pts)
            continue
        if kind in (GraphicType.RECTANGLE, GraphicType.ELLIPSE):
            quads = pts[: group.count * 4].reshape(-1, 4, 2)
            if kind is GraphicType.ELLIPSE:
                quads = _ellipse_outline(quads)
            pts = quads.reshape(-1, 2)
            starts = np.arange(0, len(pts), quads.shape[1], dtype=np.int64)
            closed = True
        else:
            starts = np.asarray(group.offsets, np.int64)
            closed = kind is GraphicType.POLYGON
        drawn += _draw_shapes(draw, pts, starts, color, closed)
    return drawn
