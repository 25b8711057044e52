"""Choose the default lossless codec by measurement (issue: codecs DICOM lacks).

Makes a 16-bit multichannel fluorescence OME-TIFF (Deflate tiles, as microscopes and
Bio-Formats write them; ≥ 1 GB of pixels by default) and an 8-bit RGB one, then converts each
with ``omedicom convert --codec C`` for every candidate, in the same run, reporting wall time,
throughput (MB of pixels per second), output size and the child's peak RSS (``wait4``).

    python benchmarks/codecs.py [--channels 8] [--size 8192] [--workdir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

CANDIDATES = ["native", "jpegls", "htj2k", "jpeg2000"]


def make_fluorescence(path: Path, channels: int, size: int, tile: int = 512) -> int:
    """uint16, 12 significant bits: smooth structures plus shot noise, per channel."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:tile, 0:tile].astype(np.float32)

    def tiles():
        for c in range(channels):
            for ty in range(size // tile):
                for tx in range(size // tile):
                    base = 600 + 400 * c + 900 * np.sin((xx + tx * tile) / (40 + 7 * c)) ** 2
                    base *= np.cos((yy + ty * tile) / (55 + 3 * c)) ** 2
                    noisy = rng.poisson(np.maximum(base, 1)).astype(np.uint16)
                    yield np.minimum(noisy, 4095)

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(
            tiles(),
            shape=(channels, size, size),
            dtype="uint16",
            tile=(tile, tile),
            compression="zlib",
            metadata={"axes": "CYX", "PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325},
        )
    return channels * size * size * 2


def make_rgb(path: Path, size: int, tile: int = 512) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import samples

    image = samples.tissue(size, size, seed=1)
    tifffile.imwrite(
        path,
        image,
        bigtiff=True,
        tile=(tile, tile),
        compression="zlib",
        photometric="rgb",
        metadata={"axes": "YXS", "PhysicalSizeX": 0.25, "PhysicalSizeY": 0.25},
    )
    return image.nbytes


def run(cmd: list[str]) -> tuple[float, int, int]:
    """Wall seconds, peak RSS (KiB) and exit status of one child."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execvp(cmd[0], cmd)
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss, status


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--size", type=int, default=8192, help="width = height of a channel")
    parser.add_argument("--rgb-size", type=int, default=8192)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "omedicom-codecs"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).with_name("omedicom")
    omedicom = str(exe) if exe.exists() else "omedicom"

    slides = []
    fluo = args.workdir / f"fluo_{args.channels}x{args.size}.ome.tif"
    raw = args.channels * args.size * args.size * 2
    if not fluo.exists():
        raw = make_fluorescence(fluo, args.channels, args.size)
    slides.append(("16-bit fluorescence", fluo, raw))
    rgb = args.workdir / f"rgb_{args.rgb_size}.ome.tif"
    raw_rgb = args.rgb_size * args.rgb_size * 3
    if not rgb.exists():
        raw_rgb = make_rgb(rgb, args.rgb_size)
    slides.append(("8-bit RGB", rgb, raw_rgb))

    rows = []
    for label, src, raw_bytes in slides:
        for codec in CANDIDATES:
            out = args.workdir / f"out_{codec}"
            times, peaks = [], []
            for _ in range(args.runs):
                shutil.rmtree(out, ignore_errors=True)
                seconds, peak, status = run(
                    [omedicom, "convert", str(src), str(out), "--codec", codec, "-q"]
                )
                if status:
                    raise SystemExit(f"{codec} on {src.name} failed (status {status})")
                times.append(seconds)
                peaks.append(peak)
            size = tree_size(out)
            shutil.rmtree(out, ignore_errors=True)
            seconds = statistics.median(times)
            rows.append(
                {
                    "slide": label,
                    "pixels_mb": raw_bytes / 1e6,
                    "source_mb": src.stat().st_size / 1e6,
                    "codec": codec,
                    "seconds": seconds,
                    "mb_per_s": raw_bytes / 1e6 / seconds,
                    "output_mb": size / 1e6,
                    "ratio": raw_bytes / size,
                    "peak_rss_mb": max(peaks) / 1024,
                }
            )
            print(rows[-1], file=sys.stderr)
    print("| slide | pixels | codec | wall | throughput | output | ratio | peak RSS |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['slide']} | {r['pixels_mb']:.0f} MB | {r['codec']} | {r['seconds']:.1f} s | "
            f"{r['mb_per_s']:.0f} MB/s | {r['output_mb']:.0f} MB | {r['ratio']:.2f} | "
            f"{r['peak_rss_mb']:.0f} MB |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
