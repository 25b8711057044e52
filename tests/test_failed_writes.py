"""A write that fails after the output exists, in each direction: nothing is kept.

The failure is real, not simulated: the command runs with RLIMIT_FSIZE (setrlimit(2)) set, so
the kernel refuses, with EFBIG, any write that takes a file past the limit. The staged output
(``NAME.xxxxxxxx.partial``, a file or a folder) has been created and written up to the limit
when that happens, so the cleanup of a half-written output is what is tested. SIGXFSZ is
ignored so that the write returns the error instead of killing the process.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import samples
from conftest import run_cli

LIMIT = 64 * 1024  # bytes: below every level-0 file here, above nothing the slide needs


def _limited() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def run_limited(*args: str | Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("omedicom")
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        preexec_fn=_limited,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("failed-writes")
    (tmp / "src").mkdir()
    src = samples.write_tifffile(tmp / "src" / "slide.ome.tif", size=(1200, 1000), levels=2)
    dicom = tmp / "src" / "dicom"
    run_cli("convert", src, dicom, "-q", check=True)
    # the limit is below what each direction writes, so the failure comes mid-write
    assert src.stat().st_size > 2 * LIMIT
    assert (dicom / "level0.dcm").stat().st_size > 2 * LIMIT
    return {"ome": src, "dicom": dicom}


def _assert_nothing_kept(proc: subprocess.CompletedProcess[str], folder: Path) -> None:
    assert proc.returncode == 4, proc.stderr
    assert "nothing was kept" in proc.stderr, proc.stderr
    assert "File too large" in proc.stderr, proc.stderr  # EFBIG: the limit did it
    assert "Traceback" not in proc.stderr
    assert list(folder.iterdir()) == [], sorted(p.name for p in folder.iterdir())


def test_ome_tiff_to_dicom_fails_mid_write_and_keeps_nothing(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = run_limited("convert", sources["ome"], out / "dicom")
    _assert_nothing_kept(proc, out)


def test_dicom_to_ome_tiff_fails_mid_write_and_keeps_nothing(
    sources: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    proc = run_limited("convert", sources["dicom"], out / "slide.ome.tiff")
    _assert_nothing_kept(proc, out)


def test_the_limit_lets_a_small_conversion_through(tmp_path: Path) -> None:
    """The same limit, a slide small enough to fit: the failures above are the limit's."""
    src = samples.write_tifffile(tmp_path / "small.ome.tif", size=(256, 256), levels=1)
    assert run_limited("convert", src, tmp_path / "dicom", "-q").returncode == 0
    back = tmp_path / "back.ome.tiff"
    assert run_limited("convert", tmp_path / "dicom", back, "-q").returncode == 0
    assert back.stat().st_size < LIMIT
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert os.path.getsize(tmp_path / "dicom" / "level0.dcm") < LIMIT
