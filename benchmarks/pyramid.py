"""Benchmark building a pyramid for a flat (single-level) slide: ``omedicom convert --pyramid
auto`` to DICOM against ``vips tiffsave --tile --pyramid --compression jpeg`` of the same input,
on the same machine, in one run.

The input is a flat 40,000 × 30,000 px 8-bit RGB JPEG OME-TIFF (512 × 512 tiles, quality 90,
4:2:0), a patchwork of pre-encoded noisy tissue-coloured tiles (``make_pyramid.py``'s pool), so
it is written in seconds. Both tools must decode every tile of it. omedicom copies level 0 as it
is and encodes the new levels; libvips re-encodes level 0 too (it cannot copy tiles).

Wall time and the peak RSS of exactly that child (``os.wait4``) are measured as in
``run_convert.py``; the page cache is warmed by reading the input once first.

Usage::

    python benchmarks/pyramid.py [--size 40000x30000] [--runs 1] [--workdir DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_pyramid import PIXEL_SIZE_UM, SEED, SUBSAMPLING, _tiles, encode_pool

TILE = 512


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float  # user + system time of the child and its threads
    maxrss_kib: int


def run_child(argv: list[str], log: Path) -> Run:
    """``argv`` to completion: wall time, CPU time and peak RSS of exactly that child
    (``fork`` + ``exec``, reaped by ``os.wait4``; see run_convert.py for why not spawn)."""
    with log.open("wb") as sink:
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{log.read_text(errors='replace')[-2000:]}")
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def make_flat(path: Path, width: int, height: int, tile: int = TILE) -> Path:
    """A single-level RGB JPEG OME-TIFF of ``width`` × ``height`` px (no SubIFDs)."""
    rng = np.random.default_rng(SEED)
    pool = encode_pool(64, tile, seed=SEED)
    count = math.ceil(width / tile) * math.ceil(height / tile)
    px_per_cm = 1e4 / PIXEL_SIZE_UM
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(
            _tiles(pool, count, rng),
            shape=(height, width, 3),
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="rgb",
            compression="jpeg",
            subsampling=SUBSAMPLING,
            resolution=(px_per_cm, px_per_cm),
            resolutionunit="CENTIMETER",
            metadata={
                "axes": "YXS",
                "PhysicalSizeX": PIXEL_SIZE_UM,
                "PhysicalSizeY": PIXEL_SIZE_UM,
            },
        )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="40000x30000", help="WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep the input here (reused if present)")
    parser.add_argument("--resample", default=None, help="omedicom --resample")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    work = args.workdir or Path(tempfile.mkdtemp(prefix="omedicom-pyramid-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / f"flat-{width}x{height}.ome.tiff"
    if not src.exists():
        print(f"writing {src} ...", file=sys.stderr)
        make_flat(src, width, height)
    with open(src, "rb") as fh:  # warm the page cache
        while fh.read(1 << 24):
            pass
    omedicom = Path(sys.executable).with_name("omedicom")
    ours = [str(omedicom), "convert", str(src), str(work / "out_dicom"), "--pyramid", "auto"]
    if args.resample:
        ours += ["--resample", args.resample]
    ours += ["--quiet", "--overwrite"]
    vips = ["vips", "tiffsave", str(src), str(work / "vips.tif"), "--tile", "--pyramid"]
    vips += ["--compression", "jpeg"]
    results: dict[str, list] = {"omedicom": [], "vips": []}
    for _ in range(args.runs):
        for name, argv in (("omedicom", ours), ("vips", vips)):
            shutil.rmtree(work / "out_dicom", ignore_errors=True)
            (work / "vips.tif").unlink(missing_ok=True)
            results[name].append(run_child(argv, work / f"{name}.log"))
    summary = {
        name: {
            "seconds": statistics.median(r.seconds for r in runs),
            "cpu_seconds": statistics.median(r.cpu_seconds for r in runs),
            "peak_rss_mb": max(r.maxrss_kib for r in runs) / 1024,
        }
        for name, runs in results.items()
    }
    ratio = summary["omedicom"]["seconds"] / summary["vips"]["seconds"]
    print(f"input: {width}×{height} px flat JPEG OME-TIFF, {src.stat().st_size / 1e6:.0f} MB")
    for name, row in summary.items():
        print(
            f"{name:9s} {row['seconds']:7.1f} s wall  {row['cpu_seconds']:7.1f} s CPU  "
            f"peak RSS {row['peak_rss_mb']:6.0f} MB"
        )
    print(f"omedicom / vips wall time: {ratio:.2f}; machine: {os.cpu_count()} cores")
    if args.json:
        args.json.write_text(json.dumps({"size": [width, height], **summary, "ratio": ratio}))


if __name__ == "__main__":
    main()
