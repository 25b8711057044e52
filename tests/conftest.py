"""Shared fixtures: the corpus, generated slides and their conversions (session-scoped)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "plants: replays a planted bug and runs the tests that must catch it (slow)"
    )


def corpus_dir() -> Path:
    return Path(os.environ.get("OMEDICOM_CORPUS", REPO.parent / "shared" / "corpus"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    path = corpus_dir()
    if not path.is_dir():
        pytest.skip(
            f"the shared corpus folder {path} is absent (set OMEDICOM_CORPUS to its location)"
        )
    return path


def run_cli(
    *args: str | Path, check: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``omedicom`` command as a user would (``timeout``: seconds, after
    which the command is killed and subprocess.TimeoutExpired fails the test)."""
    exe = Path(sys.executable).with_name("omedicom")
    cmd = [str(exe) if exe.exists() else "omedicom", *map(str, args)]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, errors="replace", check=False, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


@dataclass(frozen=True)
class Case:
    """A source OME-TIFF, how it was made, and its conversion to DICOM."""

    name: str
    source: Path
    out: Path
    rgb: bool  # OpenSlide reads it (3-sample 8-bit)
    photometric: str  # expected DICOM Photometric Interpretation
    pixel_size: float
    icc: bytes | None = None
    extra_args: tuple[str, ...] = ()


def _distinct_icc() -> bytes:
    """A valid RGB ICC profile that is not the converter's sRGB fallback."""
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = (2011).to_bytes(2, "big") + bytes([0, 3, 0, 11]) + bytes(6)  # creation date
    return bytes(data)


def _make_cases(tmp: Path) -> dict[str, Case]:
    import samples

    cases = {}

    def add(name: str, source: Path, **kw) -> None:
        cases[name] = Case(name, source, tmp / f"{name}.dicom", **kw)

    add(
        "tifffile-ycbcr420",
        samples.write_tifffile(tmp / "ycbcr420.ome.tif", subsampling=(2, 2), label=True),
        rgb=True,
        photometric="YBR_FULL_422",
        pixel_size=0.5,
    )
    add(
        "tifffile-ycbcr444",
        samples.write_tifffile(tmp / "ycbcr444.ome.tif", subsampling=(1, 1), pixel_size=0.25),
        rgb=True,
        photometric="YBR_FULL_422",
        pixel_size=0.25,
    )
    add(
        "tifffile-rgb-app14",
        samples.write_tifffile(tmp / "rgb.ome.tif", rgb_jpeg=True),
        rgb=True,
        photometric="RGB",
        pixel_size=0.5,
    )
    icc = _distinct_icc()
    add(
        "tifffile-icc",
        samples.write_tifffile(tmp / "icc.ome.tif", icc=icc),
        rgb=True,
        photometric="YBR_FULL_422",
        pixel_size=0.5,
        icc=icc,
    )
    add(
        "tifffile-uncompressed",
        samples.write_tifffile(tmp / "raw.ome.tif", compression=None, tile=128),
        rgb=True,
        photometric="RGB",
        pixel_size=0.5,
    )
    add(
        "tifffile-grey-jpeg",
        samples.write_tifffile(tmp / "grey.ome.tif", samples=1),
        rgb=False,
        photometric="MONOCHROME2",
        pixel_size=0.5,
    )
    add(
        "vips-shared-tables",
        samples.write_vips(tmp / "vips.ome.tif"),
        rgb=True,
        photometric="YBR_FULL_422",
        pixel_size=0.5,
    )
    corpus = corpus_dir()
    if corpus.is_dir():
        add(
            "bioformats-corpus",
            corpus / "ome-tiff" / "omero-cli-transfer__test_pyramid.ome.tif",
            rgb=False,
            photometric="MONOCHROME2",
            pixel_size=0.5,
            extra_args=("--pixel-size", "0.5"),
        )
        add(
            "aperio-unsignalled-rgb",
            samples.write_aperio_ome(corpus, tmp / "aperio.ome.tif"),
            rgb=True,
            photometric="RGB",
            pixel_size=0.499,
        )
    return cases


@pytest.fixture(scope="session")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Every source converted once with the installed CLI."""
    tmp = tmp_path_factory.mktemp("cases")
    made = _make_cases(tmp)
    for case in made.values():
        # the cases check what is copied from each source level; new levels: test_pyramid.py
        run_cli(
            "convert", case.source, case.out, "-q", "--pyramid", "keep", *case.extra_args,
            check=True,
        )  # fmt: skip
    return made


CASE_NAMES = [
    "tifffile-ycbcr420",
    "tifffile-ycbcr444",
    "tifffile-rgb-app14",
    "tifffile-icc",
    "tifffile-uncompressed",
    "tifffile-grey-jpeg",
    "vips-shared-tables",
    "bioformats-corpus",
    "aperio-unsignalled-rgb",
]


RGB_CASE_NAMES = [n for n in CASE_NAMES if n not in ("bioformats-corpus", "tifffile-grey-jpeg")]


def _pick(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    if request.param not in cases:
        pytest.skip(
            f"{request.param} comes from the shared corpus, which is absent at {corpus_dir()} "
            "(set OMEDICOM_CORPUS)"
        )
    return cases[request.param]


@pytest.fixture(params=CASE_NAMES)
def case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    return _pick(request, cases)


@pytest.fixture(params=RGB_CASE_NAMES)
def rgb_case(request: pytest.FixtureRequest, cases: dict[str, Case]) -> Case:
    """Cases OpenSlide can read: 3-sample 8-bit."""
    return _pick(request, cases)
