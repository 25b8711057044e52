"""One minimised input per failure class the fuzz campaign found (issue 12).

``tests/fuzz_regressions/cases.toml`` lists them (made by ``python fuzz/regressions.py``): each
must be refused with its exit code (2 unreadable input, 3 unsupported, 4 output), exactly one
``omedicom: error`` line naming the problem, no internal error, no traceback, within the time
limit (a hang fails), and nothing left behind. A case with exit 0 is damage the converter
tolerates: a warning names it and ``omedicom check`` accepts the output.
"""

from __future__ import annotations

import os
import shutil
import tomllib
from pathlib import Path

import pytest
from conftest import run_cli

FOLDER = Path(__file__).resolve().parent / "fuzz_regressions"
CASES = tomllib.loads((FOLDER / "cases.toml").read_text())["case"]


def test_every_case_has_its_input_and_a_refusal_code() -> None:
    assert len(CASES) >= 10
    for case in CASES:
        assert (FOLDER / case["file"]).is_file(), case["file"]
        assert case["exit"] in (0, 2, 3, 4), case["id"]
        assert (FOLDER / case["file"]).stat().st_size < 64 * 1024, case["file"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_fuzz_regression(case: dict, tmp_path: Path) -> None:
    src = tmp_path / case["file"]
    shutil.copyfile(FOLDER / case["file"], src)
    name = os.fsdecode(bytes.fromhex(case["out_name_hex"])) if "out_name_hex" in case else "out"
    out = tmp_path / name
    before = sorted(os.listdir(tmp_path))
    args = [str(src) if a == "{input}" else str(out) if a == "{out}" else a for a in case["args"]]
    proc = run_cli(*args, timeout=60)
    err = proc.stderr
    assert "internal error" not in err, f"{case['class']}:\n{err}"
    assert "Traceback" not in err, err
    assert proc.returncode == case["exit"], err
    errors = [line for line in err.splitlines() if line.startswith("omedicom: error")]
    if case["exit"] == 0:  # tolerated damage: said in a warning, and the output is right
        assert not errors, err
        warnings = [line for line in err.splitlines() if line.startswith("omedicom: warning")]
        assert any(case["needle"].lower() in w.lower() for w in warnings), err
        checked = run_cli("check", "--no-dicom3tools", out, timeout=60)
        assert checked.returncode == 0, checked.stdout
        assert sorted(os.listdir(tmp_path)) == sorted([*before, name])
        return
    assert len(errors) == 1, err
    assert case["needle"].lower() in err.lower(), err
    assert not os.path.lexists(out)
    assert sorted(os.listdir(tmp_path)) == before  # no .partial or other leftover
