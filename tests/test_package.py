"""The tests exercise the installed package, its data and its command line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import samples
from conftest import REPO, run_cli


def test_bridge_is_imported_from_the_installed_package() -> None:
    import bridge

    if os.environ.get("OMEDICOM_ALLOW_SOURCE_TREE"):
        pytest.skip("OMEDICOM_ALLOW_SOURCE_TREE is set (editable development install)")
    assert REPO not in Path(bridge.__file__).resolve().parents, bridge.__file__


def test_mappings_are_package_data() -> None:
    from importlib import resources

    from bridge import tables

    names = {p.name for p in resources.files("bridge.mappings").iterdir()}
    assert {"units.toml", "codes.toml", "associated_images.toml"} <= names
    assert tables.length_to_um(1, "mm") == pytest.approx(1000)
    assert tables.length_to_um(250, "nm") == pytest.approx(0.25)
    assert tables.length_to_um(1, "in") == pytest.approx(25400)
    assert tables.associated_kind(" Label Image\x00") == "LABEL"
    assert tables.associated_kind("macro") == "OVERVIEW"
    assert tables.associated_kind("slide") is None


def test_help_teaches() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "omedicom convert" in proc.stdout and "examples" in proc.stdout
    proc = run_cli("convert", "--help")
    for needle in ("--pixel-size", "--metadata", "--slide-id", "exit codes", "temporary"):
        assert needle in proc.stdout


def test_info_describes_levels_tiles_codec_and_pixel_size(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "i.ome.tif", size=(700, 500), levels=3, label=True)
    proc = run_cli("info", src)
    assert proc.returncode == 0, proc.stderr
    assert "level 0: 700×500 px, tiles 256×256 (3×2), jpeg YCBCR 2x2" in proc.stdout
    assert "level 2: 175×125 px" in proc.stdout
    assert "0.5 × 0.5 µm/px" in proc.stdout
    assert "label: LABEL" in proc.stdout
    data = json.loads(run_cli("info", src, "--json").stdout)
    assert [lv["size"] for lv in data["images"][0]["levels"]] == [
        [700, 500],
        [350, 250],
        [175, 125],
    ]
    assert data["images"][0]["levels"][1]["pixel_size_um"] == [1.0, 1.0]
    assert data["images"][1]["kind"] == "LABEL"


def test_units_other_than_micrometres(tmp_path: Path) -> None:
    import tifffile

    src = samples.write_tifffile(tmp_path / "nm.ome.tif", size=(300, 200), levels=1)
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    xml = xml.replace('PhysicalSizeX="0.5"', 'PhysicalSizeX="500"').replace(
        'PhysicalSizeXUnit="µm"', 'PhysicalSizeXUnit="nm"'
    )
    assert 'PhysicalSizeXUnit="nm"' in xml
    tifffile.tiffcomment(src, xml.encode())
    data = json.loads(run_cli("info", src, "--json").stdout)
    assert data["images"][0]["pixel_size_um"] == pytest.approx([0.5, 0.5])


def test_old_schema_and_prefixed_namespace(corpus: Path) -> None:
    from bridge.ometiff.reader import parse_ome_xml

    old = parse_ome_xml(
        (corpus / "ome-xml" / "ome-model__2016-06_ROI.ome.xml").read_text(encoding="utf-8")
    )
    assert old.images
    prefixed = parse_ome_xml(
        (corpus / "ome-xml" / "ome-types__ome_ns.ome.xml").read_text(encoding="utf-8")
    )
    assert len(prefixed.images) == 3
    proc = run_cli(
        "info", corpus / "ome-tiff" / "ome-model__2010-06_6x4y1z1t3c8b-swatch-ROI.ome.tiff"
    )
    assert proc.returncode == 0, proc.stderr
    # 6 columns × 4 rows (its TIFF page is 4 × 6 samples, OME SizeX 6, SizeY 4): width first
    assert "level 0: 6×4 px" in proc.stdout, proc.stdout
    assert "4×6" not in proc.stdout


def test_progress_bar_on_request_and_silence_otherwise(tmp_path: Path) -> None:
    src = samples.write_tifffile(tmp_path / "p.ome.tif", size=(600, 500), levels=2)
    keep = ("--pyramid", "keep")  # the source's 2 levels, 8 frames
    quiet = run_cli("convert", src, tmp_path / "a", *keep)  # stderr is a pipe: no bar
    assert quiet.returncode == 0
    assert "[" not in quiet.stderr and "wrote 2 DICOM instance(s), 8 frames" in quiet.stderr
    shown = run_cli("convert", src, tmp_path / "b", "--progress", *keep)
    assert shown.returncode == 0
    assert "p.ome.tif → DICOM [" in shown.stderr and "100% 8/8" in shown.stderr
    silent = run_cli("convert", src, tmp_path / "c", "-q")
    assert silent.returncode == 0 and silent.stderr == ""


def test_the_stored_srgb_profile_is_littlecms_s_srgb() -> None:
    """``srgb.icc`` ships in the wheel and is exactly Pillow's sRGB (date fixed), so writing it
    without loading Pillow changes nothing."""
    from PIL import ImageCms

    from bridge.dicom.attributes import make_srgb_profile, srgb_profile

    stored = srgb_profile()
    assert stored == make_srgb_profile()
    assert ImageCms.ImageCmsProfile(io.BytesIO(stored)).profile.profile_description.startswith(
        "sRGB"
    )


def test_convert_and_info_start_without_requests_and_pillow(tmp_path) -> None:
    """The lean start of ``omedicom convert``/``info`` (bridge.cli.console): pydicom is loaded
    without requests and Pillow, which stay importable afterwards."""
    code = (
        "import sys; from bridge import cli; cli._import_pydicom_lean(); "
        "assert not {'requests', 'PIL', 'jpeg_ls'} & set(sys.modules); "
        "import pydicom.data.download as d, pydicom.pixels.processing as p; "
        "assert not d.HAVE_REQUESTS and not p.HAVE_PIL; "
        "import requests, PIL, jpeg_ls; print('ok')"
    )
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    """``omedicom info SLIDE | head -c0``: the lean exit flushes into a closed pipe quietly and
    keeps the command's exit code."""
    src = samples.write_tifffile(tmp_path / "p.ome.tif", size=(300, 200), levels=1)
    exe = Path(sys.executable).with_name("omedicom")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # output held to exit
    proc = subprocess.Popen(
        [str(exe) if exe.exists() else "omedicom", "info", str(src)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    proc.stdout.close()  # before the command has written anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err, err
