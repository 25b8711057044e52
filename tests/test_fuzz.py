"""Issue 12 in CI: the readers survive hostile input (fuzz/README.md).

(a) a Hypothesis property over the readers in process: ``open_slide`` on mutated bytes of the
    fuzz seeds gives a Slide that ``describe`` can describe, or a BridgeError;
(b) a bounded campaign of the repo's own harness (fuzz/campaign.py) through the installed CLI:
    0 internal errors, 0 hangs, 0 MemoryErrors and 0 leftovers.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.convert import open_slide
from bridge.errors import BridgeError
from bridge.info import describe

FUZZ = Path(__file__).resolve().parents[1] / "fuzz"


def _load(name: str):
    if str(FUZZ) not in sys.path:
        sys.path.insert(0, str(FUZZ))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, FUZZ / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def seed_bytes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, bytes]]:
    """The tiny fuzz seeds as (file suffix, bytes): each OME-TIFF, and one file of each DICOM
    series (its base level)."""
    seeds = _load("seeds")
    folder = tmp_path_factory.mktemp("fuzz-seeds")
    out = []
    for seed in seeds.make_seeds(folder, scale="tiny", corpus=False):
        if seed.path.is_dir():
            base = sorted(seed.path.glob("level0*.dcm"))[0]  # level0.dcm or level0-c0.dcm
            out.append((".dcm", base.read_bytes()))
        else:
            out.append((".ome.tif", seed.path.read_bytes()))
    return out


STRUCTURED = {".ome.tif": ["tiff-tag", "tiff-ifd", "ome-xml"], ".dcm": ["dicom-attr", "dicom-ts"]}


@st.composite
def mutation(draw: st.DrawFn, seeds: list[tuple[str, bytes]]) -> tuple[int, str, object]:
    """A mutant recipe: raw byte writes (header-heavy) and a cut, or one of the campaign's
    structured mutators (fuzz/mutators.py) with a drawn rng seed."""
    index = draw(st.integers(0, len(seeds) - 1))
    suffix = seeds[index][0]
    if draw(st.booleans()):
        name = draw(st.sampled_from(STRUCTURED[suffix]))
        return index, name, draw(st.integers(0, 2**32 - 1))
    writes = draw(
        st.lists(
            st.tuples(st.one_of(st.integers(0, 4095), st.integers(0, 2**22)), st.integers(0, 255)),
            max_size=8,
        )
    )
    return index, "bytes", (writes, draw(st.one_of(st.none(), st.floats(0.0, 1.0))))


def _mutate(data: bytes, how: str, arg: object) -> bytes:
    if how != "bytes":
        import random

        mutators = _load("mutators")
        return mutators.MUTATORS[how](data, random.Random(arg), {})
    writes, cut = arg
    out = bytearray(data)
    for pos, value in writes:
        out[pos % len(out)] = value
    if cut is not None:
        out = out[: int(len(out) * cut)]
    return bytes(out)


def test_mutated_seeds_are_described_or_refused(
    seed_bytes: list[tuple[str, bytes]], tmp_path: Path
) -> None:
    @settings(
        max_examples=120,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(mutation(seed_bytes))
    def prop(m) -> None:
        index, how, arg = m
        suffix, data = seed_bytes[index]
        path = tmp_path / f"mutant{suffix}"
        path.write_bytes(_mutate(data, how, arg))
        try:
            slide = open_slide(path)
        except BridgeError:
            return
        try:
            assert isinstance(describe(slide), dict)
        finally:
            if slide.close:
                slide.close()

    prop()


def test_bounded_campaign_finds_no_failures(tmp_path: Path) -> None:
    """About 60 mutants of the generated seeds (corpus left out: the same run everywhere)."""
    campaign = _load("campaign")
    if shutil.which(campaign.omedicom_exe()) is None:
        raise AssertionError(f"the installed omedicom is missing: {campaign.omedicom_exe()}")
    _records, summary, _elapsed = campaign.campaign(
        60, 12, 2, seeds_dir=tmp_path / "seeds", corpus=False, timeout=60
    )
    counts = summary["counts"]
    assert counts["mutants"] == 60
    assert counts["runs"] >= 60
    failing = [
        f"{c['count']} x {c['class']}: {c['example']['replay']}"
        for c in summary["classes"]
        if c["category"] in ("internal", "traceback", "hang", "memory", "crash", "leftover")
    ]
    assert not failing, "\n".join(failing)
    for key in ("internal", "hang", "memory", "leftovers"):
        assert counts[key] == 0, key


def test_generated_seeds_pass_check(tmp_path: Path) -> None:
    """The seeds are valid, so whatever check finds in a conversion of a mutant comes from the
    mutation or the converter, not from the seed."""
    from conftest import run_cli

    seeds = _load("seeds")
    made = seeds.make_seeds(tmp_path / "seeds", scale="tiny", corpus=False)
    assert len(made) == 11
    for seed in made:
        proc = run_cli("check", "--no-dicom3tools", seed.path)
        assert proc.returncode == 0, f"{seed.name}:\n{proc.stdout}"
