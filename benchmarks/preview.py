"""Benchmark: ``omedicom preview`` of a slide with 100,000 annotations (target: under 5 s).

    python benchmarks/preview.py [--annotations 100000] [--size 16384] [--runs 3] [--keep DIR]

Makes a 16384 px JPEG pyramid (``make_pyramid.py``) and a QuPath-style GeoJSON of N cell
outlines (8-vertex polygons, 4 classes, spread over the slide), then times the whole command
(wall time from process start to exit, median of ``--runs``) in three ways:

  geojson   ``omedicom preview slide.ome.tiff out.png --annotations cells.geojson``
  dicom     the same slide converted to DICOM with the annotations (Bulk Simple Annotations),
            ``omedicom preview slide_dicom/ out.png``
  points    N points (one POINT group) from a GeoJSON file

Needs the installed ``omedicom``. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CLASSES = (("Tumor", [200, 0, 0]), ("Stroma", [150, 200, 150]), ("Immune", [160, 90, 255]),
           ("Necrosis", [50, 50, 50]))  # fmt: skip


def cells_geojson(path: Path, count: int, size: int, *, points: bool = False) -> None:
    """``count`` cell outlines (or points) placed at random over a ``size`` px slide."""
    rng = np.random.default_rng(7)
    centres = rng.uniform(20, size - 20, (count, 2))
    radius = rng.uniform(4, 12, count)
    angles = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    features = []
    for n in range(count):
        name, color = CLASSES[n % len(CLASSES)]
        if points:
            geometry = {"type": "Point", "coordinates": centres[n].round(2).tolist()}
        else:
            ring = centres[n] + radius[n] * np.c_[np.cos(angles), np.sin(angles)]
            ring = np.vstack([ring, ring[:1]]).round(2).tolist()
            geometry = {"type": "Polygon", "coordinates": [ring]}
        features.append(
            {
                "type": "Feature",
                "geometry": geometry,
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": name, "color": color},
                },
            }
        )
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def _time(cmd: list[str], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system, from wait4) of ``cmd``: on a
    shared machine the wall time counts the other processes' turns, the CPU time does not."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=16384, help="slide width = height (px)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("omedicom")  # the venv's, before PATH's
    exe = str(beside) if beside.exists() else shutil.which("omedicom") or "omedicom"
    work = args.keep or Path(tempfile.mkdtemp(prefix="omedicom-preview-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        slide = work / f"slide_{args.size}.ome.tiff"
        if not slide.exists():
            subprocess.run(
                [sys.executable, HERE / "make_pyramid.py", slide, "--size", str(args.size)],
                check=True,
                capture_output=True,
            )
        cells = work / "cells.geojson"
        dots = work / "points.geojson"
        cells_geojson(cells, args.annotations, args.size)
        cells_geojson(dots, args.annotations, args.size, points=True)
        dicom = work / "slide_dicom"
        if not dicom.exists():
            subprocess.run([exe, "convert", slide, dicom, "--annotations", cells, "-q"], check=True)
        out = work / "out.png"
        rows = [
            ("geojson", [exe, "preview", slide, out, "--annotations", cells, "--overwrite"]),
            ("dicom", [exe, "preview", dicom, out, "--overwrite"]),
            ("points", [exe, "preview", slide, out, "--annotations", dots, "--overwrite"]),
            ("no annotations", [exe, "preview", slide, out, "--overwrite"]),
        ]
        load = os.getloadavg()[0]
        print(f"{args.annotations:,} annotations, {args.size} px slide, median of {args.runs}, "
              f"load average {load:.1f} on {os.cpu_count()} cores\n")  # fmt: skip
        print("| preview | wall | CPU (user + sys) |\n|---|---:|---:|")
        for name, cmd in rows:
            wall, cpu = _time([str(c) for c in cmd], args.runs)
            print(f"| {name} | {wall:.2f} s | {cpu:.2f} s |", flush=True)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
