"""SVS -> DICOM: omedicom against wsidicomizer on the same file, in one run.

    python benchmarks/svs_vs_wsidicomizer.py [--size 16384] [--workdir DIR] [--json OUT]
    python benchmarks/svs_vs_wsidicomizer.py --svs path/to/slide.svs

Writes (unless --svs is given) an Aperio SVS in the scanner's layout: a tiled baseline of
240 × 240 JPEG tiles (abbreviated streams, the quantisation and Huffman tables in the shared
JPEGTables tag, RGB without colour signalling, as Aperio writes them), the strip thumbnail, a
4× and a 16× reduced level, and the label and macro. Tiles come from a pool of 32 encoded once,
so writing a 16k slide takes seconds. Then it converts the file with ``omedicom convert`` and
with ``wsidicomizer`` (``WsiDicomizer.convert``, its default 512-pixel re-tiling turned off
with ``tile_size=None`` so both copy the scanner's 240 × 240 tiles), each in its own process
under ``/usr/bin/time``, and prints wall time, CPU time and peak resident memory.

wsidicomizer is not a dependency of omedicom: install it into a throwaway venv to run this.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

TILE = 240
DESCRIPTION = (
    "Aperio Image Library v12.0.15 \r\n{w}x{h} [0,0 {w}x{h}] ({t}x{t}) JPEG/RGB Q=70"
    "|AppMag = 20|StripeWidth = 2040|ScanScope ID = BENCH|Filename = bench|Date = 01/02/24"
    "|Time = 10:11:12|MPP = 0.4990"
)


def _segments(stream: bytes) -> list[bytes]:
    """The marker segments of a JPEG stream up to SOS (T.81 B.1), then the rest as one."""
    out, pos = [], 2
    while stream[pos + 1] != 0xDA:
        length = int.from_bytes(stream[pos + 2 : pos + 4], "big")
        out.append(stream[pos : pos + 2 + length])
        pos += 2 + length
    return [*out, stream[pos:]]


def _pool(count: int = 32) -> tuple[list[bytes], bytes]:
    """Abbreviated RGB JPEG tiles (no tables, no APP markers) and the JPEGTables they share,
    as Aperio writes them: libjpeg's standard Huffman tables, one quality, so every tile's
    tables are the same."""
    import imagecodecs

    rng = np.random.default_rng(0)
    base = np.array([220, 160, 200], np.int16)
    tiles, tables = [], b""
    for _ in range(count):
        pixels = np.clip(base + rng.integers(-40, 40, (TILE, TILE, 3)), 0, 255).astype(np.uint8)
        stream = imagecodecs.jpeg8_encode(
            pixels, level=70, colorspace="RGB", outcolorspace="RGB", optimize=False
        )
        parts = _segments(stream)
        shared = [p for p in parts[:-1] if p[1] in (0xDB, 0xC4)]  # DQT, DHT
        own = [p for p in parts[:-1] if p[1] in (0xC0, 0xC1)]  # SOF
        tables = b"\xff\xd8" + b"".join(shared) + b"\xff\xd9"
        tiles.append(b"\xff\xd8" + b"".join(own) + parts[-1])
    return tiles, tables


def write_svs(path: Path, size: int) -> Path:
    tiles, tables = _pool()
    rng = np.random.default_rng(1)

    def pyramid_level(n: int) -> dict:
        grid = -(-n // TILE)
        picks = rng.integers(len(tiles), size=grid * grid)
        return {
            "data": iter([tiles[i] for i in picks]),
            "shape": (n, n, 3),
            "dtype": "uint8",
            "tile": (TILE, TILE),
            "compression": "jpeg",
            "photometric": "rgb",
            "jpegtables": tables,
            "compressionargs": {"outcolorspace": "RGB"},
            "metadata": None,
        }

    def strip_image(h: int, w: int, **kw) -> None:
        pixels = np.clip(
            np.array([220, 160, 200]) + rng.integers(-30, 30, (h, w, 3)), 0, 255
        ).astype(np.uint8)
        tw.write(pixels, rowsperstrip=16, photometric="rgb", metadata=None, **kw)

    desc = DESCRIPTION.format(w=size, h=size, t=TILE)
    with tifffile.TiffWriter(path, bigtiff=size > 30000) as tw:
        level0 = pyramid_level(size)
        tw.write(level0.pop("data"), description=desc, **level0)
        strip_image(size // 32, size // 32, compression="jpeg", description="Aperio\r\nthumb")
        for factor in (4, 16):
            level = pyramid_level(size // factor)
            tw.write(level.pop("data"), description=desc, **level)
        strip_image(400, 400, compression="lzw", subfiletype=1, description="Aperio\r\nlabel")
        strip_image(300, 800, compression="jpeg", subfiletype=9, description="Aperio\r\nmacro")
    with tifffile.TiffFile(path) as tf:
        assert tf.is_svs and len(tf.series[0].levels) == 3, tf.series
        assert tf.pages[0].jpegtables is not None
    return path


def timed(cmd: list[str]) -> dict[str, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one command (GNU time)."""
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%e %U %S %M", *cmd], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[:3]} failed:\n{proc.stderr[-2000:]}")
    wall, user, system, rss_kb = proc.stderr.strip().splitlines()[-1].split()
    return {
        "wall_s": float(wall),
        "cpu_s": float(user) + float(system),
        "peak_rss_mb": int(rss_kb) / 1024,
    }


WSIDICOMIZER = """
import sys
from wsidicomizer import WsiDicomizer
WsiDicomizer.convert(sys.argv[1], sys.argv[2], tile_size=None, workers=1)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=16384)
    parser.add_argument("--svs", type=Path)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="svsbench"))
    work.mkdir(parents=True, exist_ok=True)
    src = args.svs or write_svs(work / f"bench_{args.size}.svs", args.size)
    beside = Path(sys.executable).with_name("omedicom")  # this environment's, else PATH's
    omedicom = str(beside) if beside.exists() else shutil.which("omedicom") or "omedicom"
    results = {"source": str(src), "source_mb": src.stat().st_size / 2**20}
    for name, cmd in (
        ("omedicom", [omedicom, "convert", str(src), str(work / "omedicom_out"), "-q"]),
        ("wsidicomizer", [sys.executable, "-c", WSIDICOMIZER, str(src), str(work / "wsz_out")]),
    ):
        for out in (work / "omedicom_out", work / "wsz_out"):
            shutil.rmtree(out, ignore_errors=True)
        (work / "wsz_out").mkdir()
        subprocess.run(["sync"], check=False)  # neither pays for the other's dirty pages
        results[name] = timed(cmd)
        out = work / ("omedicom_out" if name == "omedicom" else "wsz_out")
        written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        results[name]["output_mb"] = written / 2**20
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
