"""Planted bugs are caught: each ``tests/plants/*.patch`` is applied to a copy of the installed
package, and the tests it names (``Killed-by:`` lines) must then fail.

A plant is a small, plausible mistake that once left the whole suite green (issue 20): X/Y
swapped in one place, a check that skips an axis, a cleanup left out. Each patch is a zero-
context diff (``git diff -U0``), so it still applies when the code around it moves; when the
line it changes is rewritten, ``git apply`` fails and so does this test: make the plant again
on the new code.

The copy goes first on ``PYTHONPATH`` of a pytest subprocess that runs only the named tests;
the ``omedicom`` command they start inherits it. Marked ``plants`` (``-m "not plants"`` leaves
them out; they take about a minute together).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import corpus_dir

TESTS = Path(__file__).resolve().parent
PLANTS = sorted((TESTS / "plants").glob("*.patch"))
NEEDS_CORPUS = {"07-carried-ome-xml-drops-instrument", "10-info-size-height-first"}


def _installed_copy(folder: Path) -> Path:
    """The installed ``bridge`` and ``conformance`` packages (what the tests run), copied."""
    import bridge
    import conformance

    site = folder / "site"
    for package in (bridge, conformance):
        src = Path(package.__file__).parent
        shutil.copytree(src, site / src.name, ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _killers(patch: Path) -> list[str]:
    return re.findall(r"^Killed-by: (\S+)$", patch.read_text(), re.MULTILINE)


def test_every_plant_names_its_killing_tests() -> None:
    assert len(PLANTS) == 13  # the nine of issue 20, and one per weak assert it lists
    for patch in PLANTS:
        killers = _killers(patch)
        assert killers, patch.name
        for test_id in killers:
            assert (TESTS.parent / test_id.split("::")[0]).is_file(), test_id


@pytest.mark.plants
@pytest.mark.parametrize("patch", PLANTS, ids=[p.stem for p in PLANTS])
def test_plant_is_killed(patch: Path, tmp_path: Path) -> None:
    if patch.stem in NEEDS_CORPUS and not corpus_dir().is_dir():
        pytest.skip(f"its killing test reads the shared corpus, absent at {corpus_dir()}")
    site = _installed_copy(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(site), GIT_CEILING_DIRECTORIES=str(tmp_path))
    applied = subprocess.run(
        ["git", "apply", "--unidiff-zero", "--whitespace=nowarn", str(patch)],
        cwd=site,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert applied.returncode == 0, f"{patch.name} no longer applies:\n{applied.stderr}"
    where = subprocess.run(
        [sys.executable, "-P", "-c", "import bridge, conformance; print(bridge.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert where.stdout.startswith(str(site)), where.stdout  # the planted copy is what runs
    killers = _killers(patch)
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
         "-o", "addopts=--import-mode=importlib", *killers],
        cwd=TESTS.parent,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )  # fmt: skip
    report = proc.stdout + proc.stderr
    assert proc.returncode == 1, f"{patch.name} survived (exit {proc.returncode}):\n{report}"
    for test_id in killers:
        assert re.search(rf"^(FAILED|ERROR) {re.escape(test_id)}( |$)", report, re.MULTILINE), (
            f"{patch.name}: {test_id} did not fail:\n{report}"
        )
