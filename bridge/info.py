"""``omedicom info``: what a slide holds, as text or as a JSON-ready dict."""

from __future__ import annotations

from typing import Any

from .model import Image, Slide


def describe(slide: Slide) -> dict[str, Any]:
    """A plain-data description of a slide: images, levels, tile grids, codecs, channels."""
    return {
        "source": slide.source,
        "slide_id": slide.slide_id,
        "format": f"TIFF ({slide.dialect})" if slide.dialect else None,
        "images": [_image(i) for i in slide.images],
        "annotations": [
            {
                "label": g.label,
                "graphic_type": g.graphic_type.value,
                "count": len(g.offsets),
                "image": g.image_index,
            }
            for g in slide.annotations
        ],
        "warnings": list(slide.warnings),
    }


def _image(image: Image) -> dict[str, Any]:
    return {
        "index": image.source_index,
        "name": image.name,
        "kind": image.kind.value,
        "dtype": image.dtype,
        "samples_per_pixel": image.samples_per_pixel,
        "photometric": image.photometric.value,
        "pixel_size_um": list(image.pixel_size_um) if image.pixel_size_um else None,
        "focal_planes_um": list(image.focal_planes_um),
        "icc_profile_bytes": len(image.icc_profile) if image.icc_profile else 0,
        "channels": [
            {
                "id": c.id,
                "name": c.name,
                "samples_per_pixel": c.samples_per_pixel,
                "excitation_nm": c.excitation_nm,
                "emission_nm": c.emission_nm,
                "color": list(c.color) if c.color else None,
            }
            for c in image.channels
        ],
        "levels": [
            {
                "index": lv.index,
                "size": list(lv.size),
                "layout": "strips" if lv.rows_per_strip else "tiles",
                "rows_per_strip": lv.rows_per_strip,
                "strips": -(-lv.size[1] // lv.rows_per_strip) if lv.rows_per_strip else None,
                "tile_size": list(lv.tile_size),
                "grid": list(lv.grid),
                "downsample": [round(d, 4) for d in lv.downsample],
                "codec": lv.codec.compression.value,
                "photometric": lv.codec.photometric.value,
                "subsampling": list(lv.codec.subsampling),
                "shared_jpeg_tables": lv.jpeg_tables is not None,
                "issue": lv.issue,
                "pixel_size_um": (
                    [round(image.pixel_size_um[k] * lv.downsample[k], 6) for k in (0, 1)]
                    if image.pixel_size_um
                    else None
                ),
            }
            for lv in image.levels
        ],
    }


def render_all(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe`, or of several slides (``{"slides": [...]}``,
    one per DICOM series found)."""
    if "slides" not in info:
        return render(info)
    slides = info["slides"]
    parts = [f"{info['source']}: {len(slides)} slides (DICOM series); --series UID describes one"]
    for n, one in enumerate(slides, 1):
        parts.append(f"\nslide {n} of {len(slides)}: series {one['series_uid']}\n{render(one)}")
    return "\n".join(parts)


def render(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe`."""
    out = [f"{info['source']}  (slide id {info['slide_id']})"]
    if info.get("format"):
        out.append(f"format: {info['format']}")
    for im in info["images"]:
        px = im["pixel_size_um"]
        size = f"{px[0]:g} × {px[1]:g} µm/px" if px else "no pixel size"
        out.append(
            f"image {im['index']} {im['name'] or '(unnamed)'!s}: {im['kind']}, {im['dtype']}, "
            f"{im['samples_per_pixel']} sample(s), {im['photometric']}, {size}, "
            f"{len(im['focal_planes_um'])} focal plane(s)"
        )
        for ch in im["channels"]:
            extra = ""
            if ch["excitation_nm"] or ch["emission_nm"]:
                extra = f" ex {ch['excitation_nm']} nm em {ch['emission_nm']} nm"
            out.append(f"  channel {ch['id']} {ch['name'] or ''}{extra}".rstrip())
        for lv in im["levels"]:
            sub = "" if lv["codec"] != "jpeg" else f" {lv['subsampling'][0]}x{lv['subsampling'][1]}"
            tables = " shared tables" if lv["shared_jpeg_tables"] else ""
            if lv.get("layout") == "strips":
                n = lv["strips"]
                rps = lv["rows_per_strip"]
                layout = f"strips of {rps} row{'s' * (rps != 1)} ({n} strip{'s' * (n != 1)})"
            else:
                layout = (
                    f"tiles {lv['tile_size'][0]}×{lv['tile_size'][1]} "
                    f"({lv['grid'][0]}×{lv['grid'][1]})"
                )
            out.append(
                f"  level {lv['index']}: {lv['size'][0]}×{lv['size'][1]} px, {layout}, "
                f"{lv['codec']} {lv['photometric']}{sub}{tables}, downsample "
                f"{lv['downsample'][0]:g}"
            )
            if lv["issue"]:
                out.append(f"    cannot be converted yet: {lv['issue']}")
    groups = info.get("annotations", [])
    if groups:
        out.append(f"annotations: {len(groups)} group(s)")
        for g in groups:
            kind = g["graphic_type"].lower()
            out.append(
                f"  {g['label'] or '(no label)'}: {g['count']} {kind}(s), image {g['image']}"
            )
    for w in info["warnings"]:
        out.append(f"warning: {w}")
    return "\n".join(out)
