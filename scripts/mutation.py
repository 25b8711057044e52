"""Mutation testing of bridge/dicom, bridge/ometiff and conformance/ with cosmic-ray.

One command (from the repository root, with the package installed, e.g. by scripts/test.sh):

    python scripts/mutation.py                      # 15 sampled mutants per package
    python scripts/mutation.py --sample 0           # every mutant (hours)
    python scripts/mutation.py --only dicom --sample 100 --seed 7

cosmic-ray (``pip install cosmic-ray``) changes one source file at a time and runs a test
command; a mutant is *killed* when the tests fail. The tests here run the *installed* package
(and the ``omedicom`` command beside the interpreter), so the mutants are made in a copy of
the installed ``bridge`` and ``conformance`` put first on ``PYTHONPATH`` (the same mechanism as
tests/test_plants.py), with ``PYTHONDONTWRITEBYTECODE`` so that no stale bytecode of an earlier
mutant is ever loaded.

Each package has a fast, targeted test selection (``TARGETS``), run with ``-x``. Survivors of
that selection are then run again against a broader selection (``BROAD``): a mutant that
survives both is listed in the report with its diff, for a person to kill with a new test or
to explain (e.g. an equivalent mutant). Sampling is seeded, so a run can be repeated.

Writes OUT/report.json and prints a Markdown summary (what README.md quotes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _pytest(*tests: str) -> str:
    return " ".join(
        [
            sys.executable,
            "-P -m pytest -x -q -p no:cacheprovider -o addopts=--import-mode=importlib",
            f"--rootdir {REPO}",
            *(str(REPO / t) for t in tests),
        ]
    )


#: package -> (module path in the installed layout, fast tests, broader tests for survivors)
TARGETS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    "dicom": (
        "bridge/dicom",
        ("tests/test_encaps.py", "tests/test_anisotropic.py"),
        ("tests/test_header.py", "tests/test_failed_writes.py", "tests/test_round_trips.py"),
    ),
    "ometiff": (
        "bridge/ometiff",
        ("tests/test_description.py", "tests/test_anisotropic.py", "tests/test_omexml.py"),
        ("tests/test_positions.py", "tests/test_dicom_to_ometiff.py"),
    ),
    "conformance": (
        "conformance",
        ("tests/test_conformance_support.py", "tests/test_anisotropic.py"),
        ("tests/test_conformance_ome.py", "tests/test_conformance_roundtrip.py"),
    ),
}


def installed_copy(site: Path) -> None:
    import bridge
    import conformance

    if site.exists():
        shutil.rmtree(site)
    for package in (bridge, conformance):
        src = Path(package.__file__).parent
        shutil.copytree(src, site / src.name, ignore=shutil.ignore_patterns("__pycache__"))


def write_config(path: Path, module: str, test_command: str, timeout: float) -> None:
    path.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{module}"\n'
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command)}\n"
        "\n[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )


def cosmic_ray(*args: str | Path, cwd: Path, env: dict[str, str]) -> None:
    exe = Path(sys.executable).with_name("cosmic-ray")
    subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env, check=True)


def sample(session: Path, count: int, seed: int) -> int:
    """Mark all but ``count`` randomly chosen pending mutants as skipped (not sampled)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        pending = sorted(item.job_id for item in db.pending_work_items)
        if count <= 0 or count >= len(pending):
            return len(pending)
        keep = set(random.Random(seed).sample(pending, count))
        skipped = [job for job in pending if job not in keep]
        db.set_multiple_results(
            skipped, WorkResult(output="not sampled", worker_outcome=WorkerOutcome.SKIPPED)
        )
        return len(pending)


def results(session: Path) -> list[dict]:
    con = sqlite3.connect(session)
    rows = con.execute(
        "SELECT r.job_id, r.worker_outcome, r.test_outcome, r.diff, r.output, m.module_path, "
        "m.operator_name, m.start_pos_row FROM work_results r JOIN mutation_specs m "
        "ON m.job_id = r.job_id"
    ).fetchall()
    con.close()
    keys = ("job", "worker", "test", "diff", "output", "module", "operator", "line")
    found = [dict(zip(keys, row, strict=True)) for row in rows]
    for r in found:  # stored as enum names (SKIPPED, KILLED, ...)
        r["worker"] = (r["worker"] or "").lower()
        r["test"] = (r["test"] or "").lower()
    return found


def reopen(session: Path, jobs: list[str]) -> None:
    """Forget the results of ``jobs`` so that ``cosmic-ray exec`` runs them again."""
    con = sqlite3.connect(session)
    con.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in jobs])
    con.commit()
    con.close()


def run_package(name: str, out: Path, count: int, seed: int, timeout: float) -> dict:
    module, fast, broad = TARGETS[name]
    work = out / name
    site = work / "site"
    installed_copy(site)
    env = dict(
        os.environ,
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        GIT_CEILING_DIRECTORIES=str(out),
    )
    config = work / "fast.toml"
    session = work / "session.sqlite"
    write_config(config, module, _pytest(*fast), timeout)
    session.unlink(missing_ok=True)
    start = time.monotonic()
    cosmic_ray("init", config, session, cwd=site, env=env)
    total = sample(session, count, seed)
    cosmic_ray("exec", config, session, cwd=site, env=env)
    ran = [r for r in results(session) if r["worker"] != "skipped"]
    survivors = [r for r in ran if r["test"] == "survived"]
    broad_config = work / "broad.toml"
    write_config(broad_config, module, _pytest(*fast, *broad), timeout * 4)
    if survivors:
        reopen(session, [r["job"] for r in survivors])
        cosmic_ray("exec", broad_config, session, cwd=site, env=env)
    final = [r for r in results(session) if r["worker"] != "skipped"]
    killed_fast = len(ran) - len(survivors)
    killed = sum(1 for r in final if r["test"] == "killed")
    left = [r for r in final if r["test"] == "survived"]
    other = [r for r in final if r["test"] not in ("killed", "survived")]
    return {
        "package": name,
        "module_path": module,
        "mutants_total": total,
        "mutants_run": len(final),
        "killed_by_fast_selection": killed_fast,
        "killed": killed,
        "survived": len(left),
        "incompetent_or_error": len(other),
        "score": round(killed / max(1, killed + len(left)), 3),
        "minutes": round((time.monotonic() - start) / 60, 1),
        "fast_tests": list(fast),
        "broad_tests": list(broad),
        "survivors": [
            {k: r[k] for k in ("module", "line", "operator", "diff")}
            for r in sorted(left, key=lambda r: (r["module"], r["line"]))
        ],
        "errors": [
            {k: r[k] for k in ("module", "line", "operator", "worker", "test")} for r in other
        ],
    }


def summarise(name: str, session: Path) -> dict:
    """What a (possibly interrupted) session holds: mutants not yet run are counted apart."""
    con = sqlite3.connect(session)
    total = con.execute("SELECT COUNT(*) FROM work_items").fetchone()[0]
    con.close()
    found = [r for r in results(session) if r["worker"] != "skipped"]
    skipped = len(results(session)) - len(found)
    left = [r for r in found if r["test"] == "survived"]
    killed = sum(1 for r in found if r["test"] == "killed")
    other = [r for r in found if r["test"] not in ("killed", "survived")]
    return {
        "package": name,
        "module_path": TARGETS[name][0],
        "mutants_total": total,
        "mutants_run": len(found),
        "not_run": total - skipped - len(found),
        "killed": killed,
        "survived": len(left),
        "incompetent_or_error": len(other),
        "score": round(killed / max(1, killed + len(left)), 3),
        "survivors": [
            {k: r[k] for k in ("module", "line", "operator", "diff")}
            for r in sorted(left, key=lambda r: (r["module"], r["line"]))
        ],
    }


def markdown(reports: list[dict], seed: int) -> str:
    lines = [
        f"| package | mutants | sampled (seed {seed}) | killed | survived | other | score |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r['module_path']} | {r['mutants_total']} | {r['mutants_run']} | {r['killed']} "
            f"| {r['survived']} | {r['incompetent_or_error']} | {r['score']:.0%} |"
        )
    for r in reports:
        for s in r["survivors"]:
            change = [
                line[1:].strip()
                for line in (s["diff"] or "").splitlines()
                if line.startswith("+") and not line.startswith("+++")
            ]
            lines.append(f"- `{s['module']}:{s['line']}` {s['operator']}: `{' '.join(change)}`")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(TARGETS), action="append")
    parser.add_argument("--sample", type=int, default=15, help="mutants per package; 0: all")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per mutant")
    parser.add_argument("--out", type=Path, default=Path("mutation-run"))
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="+",
        metavar="DIR",
        help="only summarise the sessions found in these --out folders (also interrupted ones)",
    )
    args = parser.parse_args(argv)
    if args.report_from:
        found = [
            summarise(name, folder / name / "session.sqlite")
            for folder in args.report_from
            for name in TARGETS
            if (folder / name / "session.sqlite").is_file()
        ]
        print(markdown(found, args.seed))
        print(json.dumps([{k: v for k, v in r.items() if k != "survivors"} for r in found]))
        return 0
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    reports = []
    for name in args.only or list(TARGETS):
        reports.append(run_package(name, out, args.sample, args.seed, args.timeout))
        (out / "report.json").write_text(json.dumps(reports, indent=2))
    print(markdown(reports, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
