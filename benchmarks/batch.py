"""Benchmark ``omedicom batch``: slides per minute for 1, 2 and N workers, and its overhead
per slide against a shell loop of plain ``omedicom convert``.

K synthetic JPEG pyramids are made with ``make_pyramid.py`` (one slide, copied K times with a
few distinct bytes appended after the TIFF data, so every copy has its own SHA-256 and so its
own UIDs). Then, each on a fresh output folder:

* ``for s in slides: omedicom convert -q s out/s`` (one process per slide, one after another);
* ``omedicom batch SRC OUT --workers 1 --no-check``: the same conversions, plus what batch
  adds to each (source SHA-256, ledger, manifest of every frame, verify of the output);
* ``omedicom batch SRC OUT --workers W`` for each W (with ``omedicom check`` of every slide);
* with ``--dask``, the same on a ``dask.distributed.LocalCluster`` of 2 worker processes.

Usage::

    python benchmarks/batch.py [--slides 12] [--size 4096] [--workers 1 2 4] [--dask]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAKE_PYRAMID = Path(__file__).resolve().with_name("make_pyramid.py")


def omedicom() -> str:
    exe = Path(sys.executable).with_name("omedicom")
    return str(exe) if exe.exists() else "omedicom"


def make_slides(folder: Path, count: int, size: int) -> list[Path]:
    first = folder / "slide000.ome.tiff"
    subprocess.run(
        [sys.executable, MAKE_PYRAMID, first, "--size", str(size), "--no-verify"],
        check=True,
        capture_output=True,
    )
    slides = [first]
    for i in range(1, count):
        copy = folder / f"slide{i:03d}.ome.tiff"
        shutil.copyfile(first, copy)
        with open(copy, "ab") as fh:
            fh.write(f"copy {i:08d}".encode())  # after the TIFF data: another SHA-256
        slides.append(copy)
    for s in slides:
        s.read_bytes()  # into the page cache
    return slides


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{cmd} failed:\n{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slides", type=int, default=12)
    parser.add_argument("--size", type=int, default=4096, help="level-0 width = height (px)")
    cores = os.cpu_count() or 1
    parser.add_argument("--workers", type=int, nargs="+", default=sorted({1, 2, cores}))
    parser.add_argument("--dask", action="store_true", help="also on a 2-worker LocalCluster")
    parser.add_argument("--json", type=Path, help="write the numbers here too")
    args = parser.parse_args()

    results: dict[str, object] = {"slides": args.slides, "size": args.size, "cores": cores}
    with tempfile.TemporaryDirectory(prefix="omedicom-batch-bench-") as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        slides = make_slides(src, args.slides, args.size)
        results["slide_mb"] = round(slides[0].stat().st_size / 1e6, 1)

        def fresh(name: str) -> Path:
            out = root / name
            shutil.rmtree(out, ignore_errors=True)
            return out

        out = fresh("convert")
        out.mkdir()
        start = time.perf_counter()
        for s in slides:
            timed([omedicom(), "convert", "-q", str(s), str(out / s.name.split(".")[0])])
        convert_s = time.perf_counter() - start
        results["convert_loop_s"] = round(convert_s, 2)

        plain = timed(
            [
                omedicom(),
                "batch",
                str(src),
                str(fresh("b1nc")),
                "-q",
                "--workers",
                "1",
                "--no-check",
            ]
        )
        results["batch_1_no_check_s"] = round(plain, 2)
        results["overhead_per_slide_s"] = round((plain - convert_s) / args.slides, 3)

        runs = {}
        for w in args.workers:
            runs[str(w)] = round(
                timed(
                    [omedicom(), "batch", str(src), str(fresh(f"b{w}")), "-q", "--workers", str(w)]
                ),
                2,
            )
        results["batch_s"] = runs
        if args.dask:
            from distributed import LocalCluster

            with LocalCluster(
                n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                results["dask_2_s"] = round(
                    timed(
                        [
                            omedicom(),
                            "batch",
                            str(src),
                            str(fresh("dask")),
                            "-q",
                            "--scheduler",
                            cluster.scheduler_address,
                        ]
                    ),
                    2,
                )

    def per_minute(seconds: float) -> float:
        return round(args.slides / seconds * 60, 1)

    print(f"{args.slides} slides of {args.size}² ({results['slide_mb']} MB each), {cores} cores")
    print(f"convert loop           {convert_s:7.2f} s  {per_minute(convert_s):6.1f} slides/min")
    print(f"batch 1 w, no check    {plain:7.2f} s  {per_minute(plain):6.1f} slides/min")
    print(f"  overhead per slide   {results['overhead_per_slide_s']:7.3f} s")
    for w, seconds in runs.items():
        print(f"batch {w} w, checked    {seconds:7.2f} s  {per_minute(seconds):6.1f} slides/min")
    if "dask_2_s" in results:
        seconds = float(results["dask_2_s"])  # type: ignore[arg-type]
        print(f"dask 2 w, checked      {seconds:7.2f} s  {per_minute(seconds):6.1f} slides/min")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
