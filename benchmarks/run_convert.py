"""Benchmark ``omedicom convert`` against a plain ``cp`` of the same slide.

For each requested slide size a synthetic JPEG pyramid is generated with
``make_pyramid.py`` (or reused if it already exists in the working directory),
read once so that it sits in the page cache, and then:

* ``cp SRC DST`` is run N times (``sync`` before each run, DST removed between runs);
* ``CMD SRC OUTDIR`` (default ``omedicom convert``) is run N times (``sync`` before
  each run, OUTDIR removed between runs).

Wall-clock times are medians over the N runs. Peak resident memory of each child
is taken from the ``rusage`` that ``os.wait4`` returns for exactly that child
(``ru_maxrss``, KiB on Linux); the maximum over the N runs is reported, together
with the floor of that measurement (what ``true`` reports when started the same way).

Usage::

    python benchmarks/run_convert.py [--sizes 16384 32768] [--runs 5] [--json out.json]

``--reverse`` also times the way back in the same run: the DICOM folder the last
conversion wrote is copied with ``cp -r`` and converted back to an OME-TIFF
(``omedicom convert OUTDIR BACK.ome.tiff``), N times each.

``--jpegtables`` measures the other JPEG layout: abbreviated tiles with shared JPEGTables,
which the converter merges into every frame (``make_pyramid.py --jpegtables``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

MAKE_PYRAMID = Path(__file__).resolve().with_name("make_pyramid.py")
READ_CHUNK = 1024 * 1024


@dataclass
class RunResult:
    """Wall time and peak RSS of one child process run."""

    seconds: float
    maxrss_kib: int
    cpu_seconds: float = 0.0  # user + system time of the child (rusage)


@dataclass
class SizeResult:
    """All measurements for one slide size."""

    size: int
    file_bytes: int
    cp_runs: list[RunResult] = field(default_factory=list)
    convert_runs: list[RunResult] = field(default_factory=list)
    output_bytes: int = 0
    back_cp_runs: list[RunResult] = field(default_factory=list)  # cp -r of the DICOM folder
    back_runs: list[RunResult] = field(default_factory=list)  # DICOM -> OME-TIFF

    @property
    def cp_median(self) -> float:
        """Median wall time of ``cp`` in seconds."""
        return statistics.median(r.seconds for r in self.cp_runs)

    @property
    def convert_median(self) -> float:
        """Median wall time of the convert command in seconds."""
        return statistics.median(r.seconds for r in self.convert_runs)

    @property
    def convert_peak_rss_mb(self) -> float:
        """Largest peak RSS of the convert command over all runs, in MB (10^6 bytes)."""
        return max(r.maxrss_kib for r in self.convert_runs) * 1024 / 1e6

    def summary(self) -> dict[str, float | int]:
        """Return the headline numbers as a flat dict."""
        back = {}
        if self.back_runs:
            back_cp = statistics.median(r.seconds for r in self.back_cp_runs)
            back_s = statistics.median(r.seconds for r in self.back_runs)
            back = {
                "back_cp_median_s": back_cp,
                "back_median_s": back_s,
                "back_ratio": back_s / back_cp,
                "back_cpu_median_s": statistics.median(r.cpu_seconds for r in self.back_runs),
                "back_peak_rss_mb": max(r.maxrss_kib for r in self.back_runs) * 1024 / 1e6,
            }
        return {
            **back,
            "size": self.size,
            "file_mb": self.file_bytes / 1e6,
            "cp_median_s": self.cp_median,
            "convert_median_s": self.convert_median,
            "ratio": self.convert_median / self.cp_median,
            "convert_peak_rss_mb": self.convert_peak_rss_mb,
            "cp_peak_rss_mb": max(r.maxrss_kib for r in self.cp_runs) * 1024 / 1e6,
            "output_mb": self.output_bytes / 1e6,
        }


def run_child(argv: Sequence[str], log: Path) -> RunResult:
    """Run ``argv`` to completion and return its wall time and its own peak RSS.

    The child is started with ``fork`` + ``exec`` and reaped with ``os.wait4``, whose
    rusage covers exactly that child. (``posix_spawn`` is avoided on purpose: it
    shares the parent's address space until ``exec``, and Linux then carries the
    *parent's* peak RSS over into the child's ``ru_maxrss``. After ``fork`` the
    floor is only the parent's current RSS, see ``rss_floor``.)

    stdout and stderr of the child go to ``log``; a non-zero exit raises
    ``RuntimeError`` with the tail of the log.
    """
    with log.open("wb") as sink:
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.dup2(sink.fileno(), 1)
                os.dup2(sink.fileno(), 2)
                os.execvp(argv[0], list(argv))
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text(errors="replace")[-2000:]
        msg = f"{shlex.join(argv)} exited with {code}:\n{tail}"
        raise RuntimeError(msg)
    return RunResult(
        seconds=seconds,
        maxrss_kib=usage.ru_maxrss,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
    )


def rss_floor(log: Path) -> int:
    """Return the ``ru_maxrss`` (KiB) reported for ``true``: the measurement floor.

    Linux keeps the peak RSS of the forked copy of this script in the child's
    ``ru_maxrss`` across ``exec``, so no child can report less than this value.
    """
    return run_child(["true"], log).maxrss_kib


def remove(path: Path) -> None:
    """Remove a file or directory tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def tree_size(path: Path) -> int:
    """Return the total size in bytes of a file or of all files below a directory."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def warm_cache(path: Path) -> None:
    """Read ``path`` once so that the timed runs start with a warm page cache.

    A small reused buffer keeps this script's own RSS (the measurement floor) low.
    """
    buffer = bytearray(READ_CHUNK)
    with path.open("rb", buffering=0) as fh:
        while fh.readinto(buffer):
            pass


def slide_path(workdir: Path, size: int, tile: int, jpegtables: bool = False) -> Path:
    """Where the benchmark slide for ``size`` is kept."""
    return workdir / f"slide_{size}_t{tile}{'_tables' if jpegtables else ''}.ome.tiff"


def ensure_slide(workdir: Path, size: int, tile: int, jpegtables: bool = False) -> Path:
    """Return the benchmark slide for ``size``, generating it with make_pyramid.py if missing."""
    path = slide_path(workdir, size, tile, jpegtables)
    if not path.exists():
        print(f"generating {path} ...", file=sys.stderr)
        partial = path.with_name(path.name + ".partial")
        subprocess.run(
            [
                sys.executable,
                str(MAKE_PYRAMID),
                str(partial),
                "--size",
                str(size),
                "--tile",
                str(tile),
                *(["--jpegtables"] if jpegtables else []),
            ],
            check=True,
            stdout=sys.stderr,
        )
        partial.rename(path)
    return path


def bench_size(
    src: Path, size: int, cmd: Sequence[str], runs: int, workdir: Path, reverse: bool = False
) -> SizeResult:
    """Time ``cp`` and the convert command on ``src``, ``runs`` times each; with ``reverse``,
    also ``cp -r`` of the DICOM output and its conversion back to OME-TIFF."""
    result = SizeResult(size=size, file_bytes=src.stat().st_size)
    dst = workdir / f"cp_{size}.ome.tiff"
    outdir = workdir / f"out_{size}"
    log = workdir / f"log_{size}.txt"
    warm_cache(src)
    try:
        for _ in range(runs):
            remove(dst)
            os.sync()
            result.cp_runs.append(run_child(["cp", str(src), str(dst)], log))
        remove(dst)
        for _ in range(runs):
            remove(outdir)
            os.sync()
            result.convert_runs.append(run_child([*cmd, str(src), str(outdir)], log))
        result.output_bytes = tree_size(outdir)
        if reverse:
            back = workdir / f"back_{size}.ome.tiff"
            copy = workdir / f"cp_{size}_dicom"
            for f in sorted(outdir.iterdir()):
                warm_cache(f)
            for _ in range(runs):
                remove(copy)
                os.sync()
                result.back_cp_runs.append(run_child(["cp", "-r", str(outdir), str(copy)], log))
            remove(copy)
            for _ in range(runs):
                remove(back)
                os.sync()
                result.back_runs.append(run_child([*cmd, str(outdir), str(back)], log))
            remove(back)
    finally:
        remove(dst)
        remove(outdir)
        log.unlink(missing_ok=True)
    return result


def markdown_table(results: Sequence[SizeResult]) -> str:
    """Return the results as a Markdown table."""
    lines = [
        "| size (px) | file MB | cp median s | convert median s | convert/cp | peak RSS MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        s = r.summary()
        lines.append(
            f"| {r.size}x{r.size} | {s['file_mb']:.1f} | {s['cp_median_s']:.3f} "
            f"| {s['convert_median_s']:.3f} | {s['ratio']:.2f} "
            f"| {s['convert_peak_rss_mb']:.1f} |"
        )
    if any(r.back_runs for r in results):
        lines += [
            "",
            "| size (px) | DICOM MB | cp -r median s | back median s | back/cp | back CPU s "
            "| back peak RSS MB |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in results:
            s = r.summary()
            lines.append(
                f"| {r.size}x{r.size} | {r.output_bytes / 1e6:.1f} | {s['back_cp_median_s']:.3f} "
                f"| {s['back_median_s']:.3f} | {s['back_ratio']:.2f} "
                f"| {s['back_cpu_median_s']:.3f} | {s['back_peak_rss_mb']:.1f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[16384, 32768],
        help="slide widths (= heights) in px to benchmark (default: 16384 32768)",
    )
    parser.add_argument("--tile", type=int, default=256, help="tile size of generated slides")
    parser.add_argument(
        "--jpegtables",
        action="store_true",
        help="slides with abbreviated JPEG tiles and shared JPEGTables (merged into each frame)",
    )
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="also time DICOM -> OME-TIFF on the DICOM output, against cp -r of that folder",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per command (default 5)")
    parser.add_argument(
        "--cmd",
        default="omedicom convert",
        help="convert command; SRC and OUTDIR are appended (default: 'omedicom convert')",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "omedicom-bench",
        help="slides are generated/reused and outputs written here (default: TMP/omedicom-bench)",
    )
    parser.add_argument("--json", type=Path, help="also write results as JSON to this path")
    parser.add_argument("--clean", action="store_true", help="delete generated slides when done")
    args = parser.parse_args(argv)

    cmd = shlex.split(args.cmd)
    beside = Path(sys.executable).with_name(cmd[0])
    if cmd[0] == "omedicom" and beside.exists():
        # the console script itself, not a wrapper such as a pyenv shim (a bash script that
        # adds ~0.1 s of process start-up to every run)
        cmd[0] = str(beside)
    if shutil.which(cmd[0]) is None:
        parser.error(f"command not found: {cmd[0]!r}")
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    args.workdir.mkdir(parents=True, exist_ok=True)

    floor_kib = rss_floor(args.workdir / "log_floor.txt")
    (args.workdir / "log_floor.txt").unlink()

    results: list[SizeResult] = []
    generated: list[Path] = []
    for size in args.sizes:
        existed = slide_path(args.workdir, size, args.tile, args.jpegtables).exists()
        src = ensure_slide(args.workdir, size, args.tile, args.jpegtables)
        if not existed:
            generated.append(src)
        print(f"benchmarking {src.name} ({args.runs} runs each) ...", file=sys.stderr)
        try:
            results.append(
                bench_size(src, size, cmd, args.runs, args.workdir, reverse=args.reverse)
            )
        except RuntimeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1

    floor_mb = floor_kib * 1024 / 1e6
    print(markdown_table(results))
    print(
        f"\nMedians over {args.runs} runs, warm page cache; peak RSS = max ru_maxrss "
        f"from os.wait4 (measurement floor: {floor_mb:.1f} MB); command: `{args.cmd}`."
    )
    if args.json:
        payload = {
            "cmd": args.cmd,
            "runs": args.runs,
            "tile": args.tile,
            "jpegtables": args.jpegtables,
            "rss_floor_mb": floor_mb,
            "results": [{**r.summary(), **asdict(r)} for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    if args.clean:
        for path in generated:
            remove(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
