"""Benchmark ``omedicom deidentify`` on a DICOM folder against a plain ``cp -r`` of it.

    python benchmarks/deid.py DICOM_FOLDER [--runs 3]

Make the folder with ``make_pyramid.py`` and ``omedicom convert`` (see README.md). Each run
starts after ``sync``; wall time is the median, peak resident memory the largest ``ru_maxrss``
that ``os.wait4`` gives for the child (KiB on Linux).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _run(cmd: list[str]) -> tuple[float, float]:
    subprocess.run(["sync"], check=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{cmd} failed ({status})")
    return wall, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    beside = Path(sys.executable).with_name("omedicom")  # the one installed with this Python
    omedicom = str(beside) if beside.exists() else "omedicom"
    size = sum(p.stat().st_size for p in args.folder.rglob("*") if p.is_file())
    work = Path(tempfile.mkdtemp(dir=args.folder.parent))
    try:
        for label, make in (
            ("cp -r", lambda d: ["cp", "-r", str(args.folder), str(d)]),
            ("deidentify", lambda d: [omedicom, "deidentify", str(args.folder), str(d), "-q"]),
        ):
            walls, peaks = [], []
            for _ in range(args.runs):
                dst = work / "out"
                wall, peak = _run(make(dst))
                walls.append(wall)
                peaks.append(peak)
                shutil.rmtree(dst)
                (work / "out.audit.json").unlink(missing_ok=True)
            print(
                f"{label:<11} {size / 1e6:8.1f} MB  median {statistics.median(walls):6.2f} s  "
                f"peak RSS {max(peaks):7.1f} MB"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
