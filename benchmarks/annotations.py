"""Benchmark: one annotation group of N points (default 1,000,000) through every path.

    python benchmarks/annotations.py [--points 1000000] [--kind POINT|POLYGON] [--keep DIR]

Steps, each in its own process; its input is made or loaded first, then the peak resident
memory is reset (Linux ``/proc/self/clear_refs``) so that the peak shown is the step's own,
with its input in memory:

  ome-write    groups -> OME-XML ROIs (insert_parts into a slide's OME-XML, written piece by
               piece as the OME-TIFF writer does)
  ome-read     OME-XML -> groups (rois_from_ome_xml: the column scanner)
  dicom-write  groups -> DICOM Bulk Annotations (write_dicom_annotations, highdicom)
  dicom-read   DICOM -> groups (read_dicom_annotations)
  geojson-write / geojson-read  QuPath GeoJSON both ways

``--kind POLYGON`` makes N/10 polygons of 10 vertices (N points in one group). Needs the
installed ``omedicom`` (a small slide is converted to get a real level0.dcm). Prints one line
per step: seconds, peak RSS, the RSS after the imports and the RSS with the input loaded.
Last, ``omedicom convert`` runs both ways on a slide whose OME-XML holds the ROIs (wall time
and peak RSS of the whole command, from wait4).
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

HERE = Path(__file__).resolve().parent


def _status_mb(key: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: now; VmHWM: peak)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def _current_mb() -> float:
    return _status_mb("VmRSS")


def _reset_peak() -> None:
    """Start the peak (VmHWM) again from the current RSS (Linux: clear_refs 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _group(n: int, kind: str):
    import numpy as np

    from bridge.model import AnnotationGroup, GraphicType

    rng = np.random.default_rng(1)
    coords = rng.uniform(0, 50000, (n, 2))
    if kind == "POINT":
        return AnnotationGroup("cells", GraphicType.POINT, coords, np.arange(n, dtype=np.int64))
    per = 10
    n -= n % per
    angles = np.linspace(0, 2 * np.pi, per, endpoint=False)
    centres = rng.uniform(100, 49900, (n // per, 2))
    ring = np.column_stack((np.cos(angles), np.sin(angles))) * 8
    coords = (centres[:, None, :] + ring[None, :, :]).reshape(-1, 2)
    offsets = np.arange(0, n, per, dtype=np.int64)
    return AnnotationGroup("nuclei", GraphicType.POLYGON, coords, offsets)


def step(name: str, work: Path, n: int, kind: str) -> dict:
    import pydicom

    from bridge.annotations import (
        read_dicom_annotations,
        read_geojson,
        rois_from_ome_xml,
        write_dicom_annotations,
        write_geojson,
    )
    from bridge.annotations.ome_rois import insert_parts

    baseline = _current_mb()
    level0 = work / "slide" / "level0.dcm"
    # inputs are made or loaded first; the step's peak is measured from there (VmHWM reset)
    if name in ("ome-write", "dicom-write", "geojson-write"):
        group = _group(n, kind)
    elif name == "ome-read":
        text = (work / "rois.ome.xml").read_text(encoding="utf-8")  # tifffile hands out a str
    elif name == "dicom-read":
        ds = pydicom.dcmread(level0, stop_before_pixels=True)
    elif name != "geojson-read":
        raise SystemExit(f"unknown step {name}")
    loaded = _current_mb()
    _reset_peak()
    t0 = time.perf_counter()
    if name == "ome-write":
        # as the OME-TIFF writer does: the document in pieces, each written as it comes
        with open(work / "rois.ome.xml", "wb") as f:
            for piece in insert_parts((work / "slide.xml").read_text(), {0: [group]}):
                f.write(piece.encode("utf-8"))
        count = group.count
    elif name == "ome-read":
        groups, _ = rois_from_ome_xml(text)
        count = sum(g.count for g in groups)
    elif name == "dicom-write":
        written = write_dicom_annotations([group], level0, work / "annotations.dcm")
        count = written.annotations
    elif name == "dicom-read":
        groups, _ = read_dicom_annotations([work / "annotations.dcm"], ds)
        count = sum(g.count for g in groups)
    elif name == "geojson-write":
        count = write_geojson([group], work / "cells.geojson")
    else:
        groups, _ = read_geojson(work / "cells.geojson")
        count = sum(g.count for g in groups)
    seconds = time.perf_counter() - t0
    return {
        "step": name,
        "seconds": seconds,
        "peak_mb": _status_mb("VmHWM"),
        "baseline_mb": baseline,
        "loaded_mb": loaded,
        "annotations": count,
    }


def _prepare(work: Path) -> None:
    sys.path.insert(0, str(HERE.parent / "tests"))
    import samples
    import tifffile

    src = work / "slide.ome.tif"
    samples.write_tifffile(src, size=(1024, 768), levels=1)
    with tifffile.TiffFile(src) as tif:
        (work / "slide.xml").write_text(tif.pages.first.description)
    command = [_omedicom(), "convert", str(src), str(work / "slide"), "-q", "--overwrite"]
    subprocess.run(command, check=True)


STEPS = ["ome-write", "ome-read", "dicom-write", "dicom-read", "geojson-write", "geojson-read"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=["POINT", "POLYGON"], default="POINT")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep the files")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.step, Path(args.work), args.points, args.kind)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        _prepare(work)
        print(f"{args.points:,} points, one {args.kind} group")
        for name in STEPS:
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--step",
                    name,
                    "--work",
                    str(work),
                    "--points",
                    str(args.points),
                    "--kind",
                    args.kind,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            size = {
                "ome-write": work / "rois.ome.xml",
                "dicom-write": work / "annotations.dcm",
                "geojson-write": work / "cells.geojson",
            }.get(name)
            extra = f", file {size.stat().st_size / 1e6:.0f} MB" if size else ""

            print(
                f"  {name:14s} {r['seconds']:6.2f} s  peak RSS {r['peak_mb']:6.0f} MB "
                f"(imports {r['baseline_mb']:.0f} MB, with the input "
                f"{r['loaded_mb']:.0f} MB){extra}"
            )
        _whole_conversions(work)
    return 0


def _omedicom() -> str:
    """The console script beside this Python (not a shim on PATH, which adds its own time)."""
    beside = Path(sys.executable).with_name("omedicom")
    return str(beside) if beside.exists() else "omedicom"


def _timed(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB, from wait4) of one child process."""
    t0 = time.perf_counter()
    child = subprocess.Popen(command)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command} failed")
    return seconds, usage.ru_maxrss / 1024


def _whole_conversions(work: Path) -> None:
    """``omedicom convert`` both ways on a slide whose OME-XML carries the ROIs, as a user runs
    it: reading the OME-TIFF (tifffile), the DICOM carrier of the OME-XML, the annotation
    instance, and the OME-TIFF written back, all included."""
    slide = work / "rois-slide.ome.tif"
    shutil.copyfile(work / "slide.ome.tif", slide)
    # in a child: a forked child's ru_maxrss starts at its parent's RSS, so this process must
    # never hold the 240 MB document itself
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, tifffile; "
            "tifffile.tiffcomment(sys.argv[1], open(sys.argv[2], 'rb').read())",
            str(slide),
            str(work / "rois.ome.xml"),
        ],
        check=True,
    )
    dicom, back = work / "rois-dicom", work / "rois-back.ome.tif"
    _, floor = _timed(["true"])
    print(
        f"  omedicom convert, the slide with these ROIs in its OME-XML (RSS floor {floor:.0f} MB):"
    )
    for label, command in (
        ("OME-TIFF -> DICOM", [_omedicom(), "convert", str(slide), str(dicom), "-q"]),
        ("DICOM -> OME-TIFF", [_omedicom(), "convert", str(dicom), str(back), "-q"]),
    ):
        seconds, peak = _timed([*command, "--overwrite"])
        print(f"    {label:18s} {seconds:6.2f} s  peak RSS {peak:6.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
