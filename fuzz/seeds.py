"""Seed slides for the fuzz campaign, made at run time (nothing binary is kept in the repo).

Each seed is small (a few KB to ~200 KB) and exercises a different path of the readers:

* OME-TIFF written with tifffile: a tiled JPEG RGB pyramid (SubIFDs, NewSubfileType 1) with
  label/macro/thumbnail images; a 16-bit 3-channel deflate z-stack; striped uncompressed
  greyscale; a palette (Photometric 3, ColorMap 320) image; planar-separate RGB
  (PlanarConfiguration 2); one whose OME-XML carries ROIs (OME ``ROI``/``ROIRef``);
* DICOM VL Whole Slide Microscopy folders made by the installed ``omedicom convert`` from
  those (they carry the OME-XML in the private block 0077);
* an OME-TIFF converted back from DICOM (its OME-XML carries DICOM JSON annotations);
* the files of the shared corpus (``OMEDICOM_CORPUS``, default ``../shared/corpus``), read in
  place and never copied into the repo.

``scale="tiny"`` makes the same seeds a few KB each, for the regression inputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]


def omedicom_exe() -> str:
    """The installed ``omedicom`` next to the running interpreter, else the one on PATH."""
    exe = Path(sys.executable).with_name("omedicom")
    return str(exe) if exe.exists() else "omedicom"


def corpus_dir() -> Path:
    return Path(os.environ.get("OMEDICOM_CORPUS", REPO.parent / "shared" / "corpus"))


@dataclass(frozen=True)
class Seed:
    """One seed: ``path`` is a file (OME-TIFF, DICOM) or a folder (a DICOM series)."""

    name: str
    path: Path
    kind: str  # "ome-tiff" or "dicom"
    corpus: bool = False


def _tissue(h: int, w: int, seed: int, samples: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.zeros((h, w), np.float32)
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * min(h, w)
        d += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    d = np.clip(d, 0, 1)[..., None]
    rgb = 255 * (1 - d) + np.array([200, 90, 160], np.float32) * d
    rgb += rng.normal(0, 8, (h, w, 1))
    out = np.clip(rgb, 0, 255).astype(np.uint8)
    return out if samples == 3 else out[..., 1]


def _half(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    p = a[:h, :w].astype(np.uint32)
    return ((p[0::2, 0::2] + p[1::2, 0::2] + p[0::2, 1::2] + p[1::2, 1::2]) // 4).astype(a.dtype)


_SIZE = {"normal": 1.0, "tiny": 0.25}
_PX = {
    "PhysicalSizeX": 0.5,
    "PhysicalSizeY": 0.5,
    "PhysicalSizeXUnit": "µm",
    "PhysicalSizeYUnit": "µm",
}


def jpeg_pyramid(path: Path, scale: str = "normal") -> Path:
    """Tiled YCbCr JPEG RGB, 3 levels in SubIFDs, plus label, macro and thumbnail images."""
    s = _SIZE[scale]
    w, h = int(512 * s) // 16 * 16, int(384 * s) // 16 * 16
    image = _tissue(h, w, 1)
    levels = [image, _half(image), _half(_half(image))]
    opts = dict(tile=(64, 64), photometric="rgb", compression="jpeg", compressionargs={"level": 80})
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(levels[0], subifds=2, metadata={"axes": "YXS", "Name": "slide", **_PX}, **opts)
        for data in levels[1:]:
            tw.write(data, subfiletype=1, metadata=None, **opts)
        if scale != "tiny":
            tw.write(_tissue(32, 64, 7), photometric="rgb", metadata={"Name": "label"})
            tw.write(
                _tissue(48, 96, 8),
                photometric="rgb",
                compression="jpeg",
                metadata={"Name": "macro"},
            )
        tw.write(levels[-1][::2, ::2].copy(), photometric="rgb", metadata={"Name": "thumbnail"})
    return path


def deflate_zstack(path: Path, scale: str = "normal") -> Path:
    """16-bit, 3 channels, 3 focal planes, tiled Deflate (ZCYX), with a 2-level pyramid."""
    s = _SIZE[scale]
    w, h = max(32, int(160 * s)) // 16 * 16, max(32, int(128 * s)) // 16 * 16
    grey = (_tissue(h, w, 2, samples=1) // 32).astype(np.uint16) * 512
    data = np.stack(
        [np.stack([np.roll(grey, 7 * z + 3 * c, axis=1) for c in range(3)]) for z in range(3)]
    )
    meta = {
        "axes": "ZCYX",
        "Name": "zstack",
        "Channel": {"Name": ["DAPI", "FITC", "TRITC"]},
        "PhysicalSizeZ": 2.0,
        **_PX,
    }
    opts = dict(tile=(32, 32), photometric="minisblack", compression="zlib")
    with tifffile.TiffWriter(path, bigtiff=False, ome=True) as tw:
        tw.write(data, subifds=1, metadata=meta, **opts)
        tw.write(data[:, :, ::2, ::2].copy(), subfiletype=1, metadata=None, **opts)
    return path


def striped_grey(path: Path, scale: str = "normal") -> Path:
    """Uncompressed 8-bit greyscale in strips of 16 rows, classic TIFF, big-endian."""
    s = _SIZE[scale]
    image = _tissue(int(200 * s), int(240 * s), 3, samples=1)
    tifffile.imwrite(
        path,
        image,
        byteorder=">",
        rowsperstrip=16,
        photometric="minisblack",
        metadata={"axes": "YX", "Name": "grey", **_PX},
    )
    return path


def palette(path: Path, scale: str = "normal") -> Path:
    """Photometric palette (3) with a ColorMap, LZW strips."""
    s = _SIZE[scale]
    image = _tissue(int(160 * s), int(200 * s), 4, samples=1)
    cmap = np.zeros((3, 256), np.uint16)
    cmap[0] = np.arange(256) * 257
    cmap[1] = (255 - np.arange(256)) * 257
    tifffile.imwrite(
        path,
        image,
        photometric="palette",
        colormap=cmap,
        compression="lzw",
        metadata={"axes": "YX", "Name": "palette", **_PX},
    )
    return path


def planar_rgb(path: Path, scale: str = "normal") -> Path:
    """RGB with PlanarConfiguration 2 (separate planes), tiled, PackBits."""
    s = _SIZE[scale]
    image = np.moveaxis(_tissue(int(192 * s) // 16 * 16, int(256 * s) // 16 * 16, 5), -1, 0)
    tifffile.imwrite(
        path,
        image,
        photometric="rgb",
        planarconfig="separate",
        tile=(32, 32),
        compression="packbits",
        metadata={"axes": "SYX", "Name": "planar", **_PX},
    )
    return path


def with_rois(path: Path, scale: str = "normal") -> Path:
    """A small JPEG pyramid whose OME-XML carries one ROI of each common shape kind."""
    s = _SIZE[scale]
    w, h = int(256 * s) // 16 * 16, int(192 * s) // 16 * 16
    image = _tissue(h, w, 6)
    opts = dict(tile=(32, 32), photometric="rgb", compression="jpeg")
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(image, subifds=1, metadata={"axes": "YXS", "Name": "rois", **_PX}, **opts)
        tw.write(_half(image), subfiletype=1, metadata=None, **opts)
    with tifffile.TiffFile(path) as tf:
        xml = tf.ome_metadata
    rois = (
        '<ROI ID="ROI:0" Name="cells"><Union>'
        '<Rectangle ID="Shape:0" X="4" Y="5" Width="20.5" Height="10" Text="box"/>'
        '<Ellipse ID="Shape:1" X="30" Y="30" RadiusX="6" RadiusY="3"/>'
        '<Point ID="Shape:2" X="1.5" Y="2.5"/>'
        '<Line ID="Shape:3" X1="0" Y1="0" X2="10" Y2="12"/>'
        '<Polygon ID="Shape:4" Points="1,1 20,3 15,18"/>'
        '<Polyline ID="Shape:5" Points="2,2 8,9 12,3">'
        '<Transform A00="1" A01="0" A02="3" A10="0" A11="1" A12="4"/></Polyline>'
        "</Union></ROI>"
    )
    xml = xml.replace("</Pixels>", '</Pixels><ROIRef ID="ROI:0"/>', 1)
    xml = xml.replace("</OME>", rois + "</OME>")
    tifffile.tiffcomment(path, xml.encode("utf-8"))
    return path


#: name -> (file name, builder)
OME_TIFF_SEEDS: dict[str, tuple[str, Callable[[Path, str], Path]]] = {
    "jpeg-pyramid": ("jpeg-pyramid.ome.tif", jpeg_pyramid),
    "deflate-zstack": ("deflate-zstack.ome.tif", deflate_zstack),
    "striped-grey": ("striped-grey.ome.tif", striped_grey),
    "palette": ("palette.ome.tif", palette),
    "planar-rgb": ("planar-rgb.ome.tif", planar_rgb),
    "rois": ("rois.ome.tif", with_rois),
}

#: DICOM seeds: name -> (the OME-TIFF seed they are converted from, extra convert arguments)
DICOM_SEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dicom-jpeg": ("jpeg-pyramid", ()),
    "dicom-zstack": ("deflate-zstack", ()),
    "dicom-grey": ("striped-grey", ()),
    "dicom-rois": ("rois", ()),
}


def _convert(src: Path, dst: Path, *args: str) -> None:
    proc = subprocess.run(
        [omedicom_exe(), "convert", str(src), str(dst), "-q", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"seed conversion {src.name} -> {dst.name} failed:\n{proc.stderr}")


def make_seeds(folder: Path, *, scale: str = "normal", corpus: bool = True) -> list[Seed]:
    """Write every generated seed into ``folder`` (reused when already there) and list them,
    followed by the corpus files when the corpus folder exists and ``corpus`` is set."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds: list[Seed] = []
    for name, (file_name, build) in OME_TIFF_SEEDS.items():
        path = folder / file_name
        if not path.exists():
            build(path, scale)
        seeds.append(Seed(name, path, "ome-tiff"))
    by_name = {s.name: s for s in seeds}
    for name, (source, args) in DICOM_SEEDS.items():
        path = folder / name
        if not path.exists():
            _convert(by_name[source].path, path, *args)
        seeds.append(Seed(name, path, "dicom"))
    back = folder / "roundtrip-from-dicom.ome.tif"
    if not back.exists():
        _convert(folder / "dicom-jpeg", back)
    seeds.append(Seed("ome-from-dicom", back, "ome-tiff"))
    if corpus:
        seeds.extend(corpus_seeds())
    return seeds


def corpus_seeds(limit_bytes: int = 4_000_000) -> list[Seed]:
    """The corpus's OME-TIFF and DICOM image files (read only), smallest first."""
    root = corpus_dir()
    if not root.is_dir():
        return []
    out: list[Seed] = []
    for sub, kind, patterns in (
        ("ome-tiff", "ome-tiff", ("*.tif", "*.tiff")),
        ("wsi-tiff", "ome-tiff", ("*.svs", "*.tiff")),
        ("dicom", "dicom", ("*.dcm", "*.dicom")),
    ):
        for pattern in patterns:
            for path in sorted((root / sub).glob(pattern)):
                if path.is_file() and path.stat().st_size <= limit_bytes:
                    out.append(Seed(f"corpus:{sub}/{path.name}", path, kind, corpus=True))
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="write the fuzz seeds into a folder")
    ap.add_argument("folder", type=Path)
    ap.add_argument("--scale", choices=sorted(_SIZE), default="normal")
    a = ap.parse_args()
    for seed in make_seeds(a.folder, scale=a.scale):
        size = (
            sum(p.stat().st_size for p in seed.path.rglob("*"))
            if seed.path.is_dir()
            else seed.path.stat().st_size
        )
        print(f"{seed.name:50s} {seed.kind:9s} {size:>9,d} B")
