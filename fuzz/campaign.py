"""The fuzz campaign: mutate the seeds, run the installed ``omedicom`` on each mutant, classify.

    python fuzz/campaign.py --mutants 2000 --seed 1 --jobs 2 --out report.json

For each mutant it runs ``omedicom info``, ``omedicom check --json`` and ``omedicom convert``
(to a fresh output location) as real subprocesses, each with a timeout (a "hang") and an
address-space cap (RLIMIT_AS; "MemoryError" or death under the cap is a "memory" failure), then
classifies every run: exit code, "internal error" (exit 1), a printed "Traceback", leftovers
(any new file but the announced output), checks of ``omedicom check`` that crashed
(SUITE-check-failed), and for exit-0 conversions whether ``omedicom check OUT`` accepts the
output and whether tifffile/pydicom open it. Internal errors are run again with ``--debug`` and
grouped by (exception type, innermost frame in bridge/ or conformance/). ``/etc/passwd`` must
never show up in any output (XXE).

``--replay SEED MUTATOR RNG_SEED --keep DIR`` re-makes one mutant and runs it again.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mutators
from seeds import Seed, make_seeds, omedicom_exe

TIMEOUT_S = 60.0
MEM_BYTES = 3 * 2**30
PASSWD = b"root:x:0:0"
FAILURES = ("internal", "traceback", "hang", "memory", "crash", "bad-exit")


@dataclass
class Run:
    cmd: str  # info, check, convert, check-output
    argv: list[str]
    rc: int | None
    seconds: float
    category: str
    stderr_tail: str = ""
    error_lines: int = 0
    leftovers: list[str] = field(default_factory=list)
    suite_crashes: list[str] = field(default_factory=list)
    klass: str | None = None
    traceback_tail: str = ""


def _limits(mem: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _exec(
    argv: list[bytes], cwd: Path, timeout: float, mem: int
) -> tuple[int | None, bytes, bytes, float]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        preexec_fn=lambda: _limits(mem),
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        rc: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    return rc, out, err, time.monotonic() - start


def _tree(root: Path) -> set[bytes]:
    found = set()
    broot = os.fsencode(root)
    for dirpath, dirnames, filenames in os.walk(broot):
        for name in dirnames + filenames:
            found.add(os.path.relpath(os.path.join(dirpath, name), broot))
    return found


def _categorise(cmd: str, rc: int | None, err: str) -> str:
    if rc is None:
        return "hang"
    if "MemoryError" in err or "Cannot allocate memory" in err or "bad_alloc" in err:
        return "memory"
    if rc < 0:
        return "crash"
    if "internal error" in err:
        return "internal"
    if "Traceback" in err:
        return "traceback"
    if rc == 0:
        return "ok"
    if rc in (2, 3, 4):
        return f"refused-{rc}"
    if rc == 1 and cmd in ("check", "check-output"):
        return "check-findings"
    return "bad-exit"


FRAME = re.compile(r'File "([^"]*)", line (\d+), in (\S+)')


def classify_traceback(text: str) -> tuple[str, str]:
    """(class key, traceback tail): exception type + innermost frame in bridge/ or
    conformance/ (file:function), from a ``--debug`` traceback."""
    lines = text.splitlines()
    exc = "?"
    for line in lines:
        m = re.match(r"omedicom: internal error: ([\w.]+)", line)
        if m:
            exc = m.group(1)
    if exc == "?":
        for line in reversed(lines):
            m = re.match(r"([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Warning))\b", line)
            if m:
                exc = m.group(1)
                break
    where = "?"
    for m in FRAME.finditer(text):
        path = m.group(1)
        k = max(path.rfind("/bridge/"), path.rfind("/conformance/"))
        if k >= 0:
            where = f"{path[k + 1 :]}:{m.group(3)}"
    tail = "\n".join(lines[-14:])
    return f"{exc} @ {where}", tail


def _suite_crashes(stdout: bytes) -> list[str]:
    try:
        report = json.loads(stdout)
    except ValueError:
        return []
    return [f["message"] for f in report.get("findings", []) if f.get("id") == "SUITE-check-failed"]


def _error_lines(err: str) -> int:
    return sum(1 for line in err.splitlines() if line.startswith("omedicom: error"))


def _opens(path: Path, kind: str) -> str | None:
    """None when tifffile / pydicom open the output, else why not."""
    try:
        if kind == "ome-tiff":
            import tifffile

            with tifffile.TiffFile(path) as tf:
                series = tf.series[0]
                page = series.levels[-1].keyframe
                if page.size < 2**26:
                    page.asarray()
        else:
            import pydicom

            files = sorted(path.rglob("*.dcm")) if path.is_dir() else [path]
            if not files:
                return "no .dcm file"
            for f in files:
                ds = pydicom.dcmread(f)
                _ = ds.PixelData if "PixelData" in ds else None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"[:300]
    return None


@dataclass
class Context:
    seeds: list[Seed]
    exe: str
    timeout: float
    mem: int
    root: Path
    keep: bool = False
    only: tuple[str, ...] = ()  # restrict the campaign to these mutators


def _pick(ctx: Context, index: int, seed: int) -> tuple[Seed, str, int]:
    rng = random.Random(f"{seed}:{index}")
    usable = [
        s for s in ctx.seeds if not ctx.only or set(ctx.only) & set(mutators.mutators_for(s.kind))
    ]
    own = [s for s in usable if not s.corpus]
    corpus = [s for s in usable if s.corpus]
    pool = corpus if corpus and rng.random() < 0.35 else own
    chosen = rng.choice(pool)
    names = [m for m in mutators.mutators_for(chosen.kind) if not ctx.only or m in ctx.only]
    mutator = rng.choice(names)
    return chosen, mutator, rng.randrange(2**32)


def run_mutant(ctx: Context, seed: Seed, mutator: str, rng_seed: int, work: Path) -> dict[str, Any]:
    """Make one mutant in ``work``, run the commands on it and classify each run."""
    if work.exists():
        shutil.rmtree(work)
    t0 = time.monotonic()
    mutant = mutators.make(seed, mutator, rng_seed, work / "m")
    record: dict[str, Any] = {
        "seed": seed.name,
        "mutator": mutator,
        "rng_seed": rng_seed,
        "params": mutant.params,
        "runs": [],
    }
    src = os.fsencode(mutant.src)
    exe = os.fsencode(ctx.exe)
    target_kind = "ome-tiff" if seed.kind == "dicom" else "dicom"
    commands: list[tuple[str, list[bytes]]] = []
    if mutator != "output-name":
        commands += [("info", [b"info", src]), ("check", [b"check", b"--json", src])]
    parent = work / "out"
    parent.mkdir()
    if mutant.out_parent_is_file:
        (parent / "afile").write_bytes(b"a file, not a folder\n")
        dst = os.path.join(os.fsencode(parent), b"afile", mutant.out_name or b"out")
    elif mutant.out_name is not None:
        suffix = b".ome.tiff" if target_kind == "ome-tiff" else b""
        dst = os.path.join(os.fsencode(parent), mutant.out_name + suffix)
    else:
        dst = os.path.join(
            os.fsencode(parent), b"out.ome.tiff" if target_kind == "ome-tiff" else b"out"
        )
    commands.append(("convert", [b"convert", src, dst, b"-q"]))
    converted = False
    check_verdict = None
    for cmd, args in commands:
        before = _tree(work)
        rc, out, err_b, secs = _exec([exe, *args], work, ctx.timeout, ctx.mem)
        err = err_b.decode("utf-8", "replace")
        run = Run(
            cmd,
            [a.decode("utf-8", "replace") for a in args],
            rc,
            round(secs, 3),
            _categorise(cmd, rc, err),
            err[-800:],
            _error_lines(err),
        )
        after = _tree(work)
        new = after - before
        rel_dst = os.path.relpath(dst, os.fsencode(work))
        if cmd == "convert" and rc == 0:
            new = {p for p in new if p != rel_dst and not p.startswith(rel_dst + b"/")}
            converted = os.path.exists(dst)
            if not converted:
                run.leftovers.append("the announced output is missing")
        run.leftovers += sorted(p.decode("utf-8", "replace") for p in new)
        if cmd == "check":
            run.suite_crashes = _suite_crashes(out)
            check_verdict = rc
        if PASSWD in out or PASSWD in err_b:
            record["passwd"] = True
        if run.category in ("internal", "traceback", "memory"):
            dbg = work / "debug"
            dbg.mkdir(exist_ok=True)
            dargs = list(args)
            if cmd == "convert":
                dargs[2] = os.path.join(os.fsencode(dbg), os.path.basename(dst))
            _, _, derr, _ = _exec([exe, b"--debug", *dargs], work, ctx.timeout, ctx.mem)
            run.klass, run.traceback_tail = classify_traceback(derr.decode("utf-8", "replace"))
        record["runs"].append(asdict(run))
    record["check_input_rc"] = check_verdict
    if converted:
        path = Path(os.fsdecode(dst))
        rc, out, err_b, secs = _exec([exe, b"check", b"--json", dst], work, ctx.timeout, ctx.mem)
        err = err_b.decode("utf-8", "replace")
        run = Run(
            "check-output",
            ["check", "--json", "OUT"],
            rc,
            round(secs, 3),
            _categorise("check-output", rc, err),
            err[-800:],
            _error_lines(err),
        )
        run.suite_crashes = _suite_crashes(out)
        if rc == 1:
            try:
                report = json.loads(out)
                run.stderr_tail = "; ".join(
                    sorted({f["id"] for f in report["findings"] if f["severity"] == "error"})
                )
            except (ValueError, KeyError):
                pass
        record["runs"].append(asdict(run))
        record["output_accepted"] = rc == 0
        record["output_opens"] = _opens(path, target_kind)
        data = b""
        for f in [path] if path.is_file() else path.rglob("*"):
            if f.is_file() and f.stat().st_size < 2**26:
                data += f.read_bytes()
        if PASSWD in data or PASSWD in out:
            record["passwd"] = True
    record["seconds"] = round(time.monotonic() - t0, 3)
    if not ctx.keep:
        shutil.rmtree(work, ignore_errors=True)
    return record


_CTX: Context | None = None


def _init(ctx: Context) -> None:
    import logging

    global _CTX
    _CTX = ctx
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)  # the output checks say enough
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _task(item: tuple[int, int]) -> dict[str, Any]:
    index, seed = item
    assert _CTX is not None
    chosen, mutator, rng_seed = _pick(_CTX, index, seed)
    try:
        record = run_mutant(_CTX, chosen, mutator, rng_seed, _CTX.root / f"m{index:05d}")
    except Exception as exc:
        record = {
            "seed": chosen.name,
            "mutator": mutator,
            "rng_seed": rng_seed,
            "params": {},
            "runs": [],
            "harness_error": f"{type(exc).__name__}: {exc}",
        }
    record["index"] = index
    return record


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per category and failure classes (count, one example, traceback tail)."""
    counts: Counter[str] = Counter()
    exits: dict[str, Counter[str]] = {}
    seconds: Counter[str] = Counter()
    classes: dict[str, dict[str, Any]] = {}

    def add_class(key: str, category: str, rec: dict, run: dict | None, tail: str = "") -> None:
        c = classes.setdefault(
            key,
            {
                "class": key,
                "category": category,
                "count": 0,
                "mutators": Counter(),
                "example": None,
                "traceback_tail": tail,
            },
        )
        c["count"] += 1
        c["mutators"][rec["mutator"]] += 1
        if c["example"] is None:
            c["example"] = {
                "seed": rec["seed"],
                "mutator": rec["mutator"],
                "rng_seed": rec["rng_seed"],
                "params": rec["params"],
                "command": run["argv"] if run else None,
                "stderr": run["stderr_tail"][-400:] if run else None,
                "replay": f"python fuzz/campaign.py --replay '{rec['seed']}' {rec['mutator']} "
                f"{rec['rng_seed']} --keep /tmp/replay",
            }

    counts["mutants"] = len(records)
    for rec in records:
        if rec.get("harness_error"):
            counts["harness errors"] += 1
            add_class(f"harness: {rec['harness_error'][:120]}", "harness", rec, None)
            continue
        for run in rec["runs"]:
            counts["runs"] += 1
            exits.setdefault(run["cmd"], Counter())[str(run["rc"])] += 1
            seconds[run["cmd"]] += run["seconds"]
            cat = run["category"]
            if cat in FAILURES:
                counts[cat] += 1
                key = run["klass"] or f"{cat} @ {run['cmd']} ({rec['mutator']})"
                if cat == "hang":
                    key = f"hang @ {run['cmd']} ({rec['seed'].split(':')[0]}, {rec['mutator']})"
                add_class(key, cat, rec, run, run["traceback_tail"])
            if run["leftovers"] and cat != "hang":  # SIGKILL at the timeout cleans nothing
                counts["leftovers"] += 1
                pat = re.sub(r"[0-9a-z_]{8}\.partial", "XXXXXXXX.partial", run["leftovers"][0])
                add_class(f"leftover @ {run['cmd']}: {pat[-80:]}", "leftover", rec, run)
            # check reports unreadable input inside its report (INPUT-unreadable), not on stderr
            if (
                cat.startswith("refused")
                and run["cmd"] in ("info", "convert")
                and run["error_lines"] != 1
            ):
                counts["messages without exactly one error line"] += 1
                add_class(
                    f"message: {run['error_lines']} error lines @ {run['cmd']}", "message", rec, run
                )
            for crash in run["suite_crashes"]:
                counts["check suite crashes"] += 1
                what = re.sub(r"\d+", "N", crash.split(":")[0] + ":" + crash.split(":")[1])
                add_class(f"check-crash: {what[:100]}", "check-crash", rec, run)
        if rec.get("passwd"):
            counts["passwd read"] += 1
            add_class("passwd: /etc/passwd content in an output", "passwd", rec, None)
        if "output_accepted" in rec:
            counts["exit-0 conversions"] += 1
            if not rec["output_accepted"]:
                flagged = rec.get("check_input_rc") not in (0, None)
                which = "input flagged by check" if flagged else "input passed check"
                counts[f"outputs check rejects ({which})"] += 1
                run = rec["runs"][-1]
                add_class(
                    f"output-rejected ({which}): {run['stderr_tail'][:100]}",
                    "output-rejected",
                    rec,
                    run,
                )
            if rec["output_opens"]:
                counts["outputs that do not open"] += 1
                add_class(
                    f"output-unopenable: {rec['output_opens'][:80]}",
                    "output-unopenable",
                    rec,
                    rec["runs"][-1],
                )
    for key in ("internal", "hang", "memory", "leftovers"):
        counts.setdefault(key, 0)
    for c in classes.values():
        c["mutators"] = dict(c["mutators"])
    ordered = sorted(classes.values(), key=lambda c: (-c["count"], c["class"]))
    return {
        "counts": dict(counts),
        "exit_codes": {k: dict(v) for k, v in exits.items()},
        "command_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "classes": ordered,
    }


def print_summary(summary: dict[str, Any], elapsed: float, file=sys.stdout) -> None:
    c = summary["counts"]
    print(f"\n{'category':<52} {'count':>7}", file=file)
    print("-" * 60, file=file)
    for key, value in c.items():
        print(f"{key:<52} {value:>7}", file=file)
    print(f"{'wall time (s)':<52} {elapsed:>7.0f}", file=file)
    print(
        "\nexit codes: "
        + "; ".join(f"{k} {dict(sorted(v.items()))}" for k, v in summary["exit_codes"].items()),
        file=file,
    )
    if "command_seconds" in summary:
        print(
            "seconds spent per command: "
            + "; ".join(f"{k} {v:.0f}" for k, v in summary["command_seconds"].items()),
            file=file,
        )
    print(f"\n{len(summary['classes'])} classes:", file=file)
    for cl in summary["classes"]:
        print(f"{cl['count']:>5}  [{cl['category']}] {cl['class']}", file=file)


def prepare(seeds_dir: Path | None, corpus: bool) -> tuple[list[Seed], Path]:
    folder = seeds_dir or Path(tempfile.mkdtemp(prefix="omedicom-fuzz-seeds-"))
    return make_seeds(folder, corpus=corpus), folder


def campaign(
    mutants: int,
    seed: int,
    jobs: int,
    *,
    seeds_dir: Path | None = None,
    corpus: bool = True,
    timeout: float = TIMEOUT_S,
    mem: int = MEM_BYTES,
    progress: bool = False,
    only: tuple[str, ...] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """Run ``mutants`` mutants; returns (records, summary, wall seconds)."""
    start = time.monotonic()
    seeds, _ = prepare(seeds_dir, corpus)
    root = Path(tempfile.mkdtemp(prefix="omedicom-fuzz-"))
    ctx = Context(seeds, omedicom_exe(), timeout, mem, root, only=only)
    records: list[dict[str, Any]] = []
    try:
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init, initargs=(ctx,)) as pool:
            for n, rec in enumerate(pool.map(_task, [(i, seed) for i in range(mutants)]), 1):
                records.append(rec)
                if progress and (n % 50 == 0 or n == mutants):
                    bad = sum(1 for r in records for x in r["runs"] if x["category"] in FAILURES)
                    print(
                        f"  {n}/{mutants} mutants, {bad} failing runs, "
                        f"{time.monotonic() - start:.0f} s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return records, summarise(records), time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mutants", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="campaign seed (mutant i is made from it)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", type=Path, help="write the JSON report here")
    ap.add_argument("--seeds-dir", type=Path, help="make (or reuse) the seeds in this folder")
    ap.add_argument("--no-corpus", action="store_true", help="leave the shared corpus out")
    ap.add_argument(
        "--mutators",
        nargs="+",
        choices=sorted({*mutators.TIFF_MUTATORS, *mutators.DICOM_MUTATORS}),
        help="only these mutators (and the seeds they apply to)",
    )
    ap.add_argument("--timeout", type=float, default=TIMEOUT_S, help="seconds per command")
    ap.add_argument("--mem-gib", type=float, default=MEM_BYTES / 2**30, help="RLIMIT_AS cap")
    ap.add_argument("--replay", nargs=3, metavar=("SEED", "MUTATOR", "RNG_SEED"))
    ap.add_argument("--keep", type=Path, help="with --replay: keep the mutant in this folder")
    ap.add_argument(
        "--summarise",
        type=Path,
        metavar="REPORT",
        help="print (and with --out rewrite) the "
        "summary of an earlier JSON report, e.g. after the classification changed",
    )
    args = ap.parse_args(argv)
    mem = int(args.mem_gib * 2**30)
    if args.summarise:
        report = json.loads(args.summarise.read_text())
        report.update(summarise(report["mutants"]))
        if args.out:
            args.out.write_text(json.dumps(report, indent=2, default=str))
        print_summary(report, report["elapsed_s"])
        return 0
    if args.replay:
        seeds, _ = prepare(args.seeds_dir, not args.no_corpus)
        by_name = {s.name: s for s in seeds}
        name, mutator, rng_seed = args.replay
        work = args.keep or Path(tempfile.mkdtemp(prefix="omedicom-replay-"))
        ctx = Context(seeds, omedicom_exe(), args.timeout, mem, work, keep=True)
        record = run_mutant(ctx, by_name[name], mutator, int(rng_seed), work)
        print(json.dumps(record, indent=2, default=str))
        print(f"mutant kept in {work}/m", file=sys.stderr)
        return 0
    records, summary, elapsed = campaign(
        args.mutants,
        args.seed,
        args.jobs,
        seeds_dir=args.seeds_dir,
        corpus=not args.no_corpus,
        timeout=args.timeout,
        mem=mem,
        progress=True,
        only=tuple(args.mutators or ()),
    )
    report = {
        "config": {
            "mutants": args.mutants,
            "seed": args.seed,
            "jobs": args.jobs,
            "timeout_s": args.timeout,
            "mem_gib": args.mem_gib,
            "corpus": not args.no_corpus,
        },
        "elapsed_s": round(elapsed, 1),
        **summary,
        "mutants": records,
    }
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    print_summary(summary, elapsed)
    c = summary["counts"]
    return 1 if any(c.get(k) for k in ("internal", "hang", "memory", "leftovers")) else 0


if __name__ == "__main__":
    sys.exit(main())
