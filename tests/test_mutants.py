"""Tests written for survivors of the mutation run (scripts/mutation.py; README "Mutation
testing"): what the check report says, besides its findings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import samples
from conftest import run_cli


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("mutants")
    src = samples.write_tifffile(tmp / "small.ome.tif", size=(300, 200), levels=1)
    out = tmp / "dicom"
    run_cli("convert", src, out, "-q", check=True)
    return {"src": src, "out": out}


def test_text_report_names_what_it_compared_with(small: dict[str, Path]) -> None:
    """conformance/report.py: the headline of the text report says ``--against``'s source."""
    proc = run_cli("check", small["out"], "--against", small["src"], "--no-dicom3tools")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    headline = proc.stdout.splitlines()[0]
    assert headline.startswith("omedicom check: 1 file(s); 0 error(s)"), headline
    assert headline.endswith(f"; compared with {small['src']}"), headline
    alone = run_cli("check", small["out"], "--no-dicom3tools")
    assert "compared with" not in alone.stdout.splitlines()[0]


def test_checks_run_are_those_of_the_inputs(small: dict[str, Path]) -> None:
    """conformance/runner.py: a DICOM image series runs the DICOM and WSI checks, and the
    report lists those, not the OME-TIFF, annotation or round-trip ones."""
    proc = run_cli("check", small["out"], "--json", "--no-dicom3tools")
    ran = json.loads(proc.stdout)["checks_run"]
    assert "WSI-spacing" in ran and "DICOM-sop-class" in ran
    assert [c for c in ran if not c.startswith(("DICOM-", "WSI-"))] == []
    against = run_cli("check", small["out"], "--against", small["src"], "--json")
    assert any(c.startswith("RT-") for c in json.loads(against.stdout)["checks_run"])
