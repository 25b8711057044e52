"""OME-XML values that are not what the schema allows (issue 12, found by fuzzing).

Sizes, indices, DimensionOrder and the document's form decide which bytes are read: a bad one
refuses the file with exit 2 and one message naming the attribute. Descriptive values
(physical sizes, wavelengths, colours) that are not numbers are dropped, and the conversion
says so; what it writes then passes ``omedicom check``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli


def _rgb(tmp_path: Path) -> Path:
    return samples.write_tifffile(tmp_path / "rgb.ome.tif", size=(300, 200), levels=2)


def _stack(tmp_path: Path) -> Path:
    src = tmp_path / "stack.ome.tif"
    data = np.arange(3 * 2 * 64 * 96, dtype=np.uint16).reshape(3, 2, 64, 96)
    tifffile.imwrite(
        src,
        data,
        tile=(32, 32),
        compression="zlib",
        metadata={"axes": "ZCYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeZ": 2},
    )
    return src


def _edit(src: Path, attribute: str, value: str) -> Path:
    """Set every ``attribute="..."`` of the file's OME-XML to ``value``."""
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    new, count = re.subn(rf'\b{attribute}="[^"]*"', f'{attribute}="{value}"', xml)
    assert count, f"{attribute} is not in the OME-XML"
    tifffile.tiffcomment(src, new.encode())
    return src


def _refused(src: Path, tmp_path: Path, *needles: str) -> None:
    for command in (("info", src), ("convert", src, tmp_path / "out")):
        proc = run_cli(*command)
        assert proc.returncode == 2, proc.stderr
        assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
        errors = [line for line in proc.stderr.splitlines() if line.startswith("omedicom: error")]
        assert len(errors) == 1, proc.stderr
        for needle in needles:
            assert needle in proc.stderr, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


@pytest.mark.parametrize(
    ("make", "attribute", "value", "needles"),
    [
        (_rgb, "IFD", "abc", ("IFD='abc'", "whole number")),
        (_stack, "IFD", "-1", ("IFD='-1'", "non-negative")),
        (_rgb, "SamplesPerPixel", "-inf", ("SamplesPerPixel='-inf'", "positive")),
        (_rgb, "SamplesPerPixel", "0x10", ("SamplesPerPixel='0x10'",)),
        (_stack, "PlaneCount", "nan", ("PlaneCount='nan'",)),
        (_rgb, "DimensionOrder", "", ("DimensionOrder=''", "XYZCT")),
        (_rgb, "DimensionOrder", "XYZZT", ("DimensionOrder='XYZZT'",)),
        (_rgb, "SizeX", "", ("SizeX=''",)),
        (_stack, "SizeZ", "99999999999", ("SizeZ='99999999999'",)),
        (_stack, "SizeZ", "16777216", ("16777216", "only 6 IFDs")),
        (_stack, "PlaneCount", "4096", ("4096 planes", "only 6 IFDs")),
        (_rgb, "encoding", "abc", ("cannot be decoded",)),
    ],
)
def test_structural_values_are_refused(tmp_path, make, attribute, value, needles) -> None:
    _refused(_edit(make(tmp_path), attribute, value), tmp_path, *needles)


def test_a_doctype_is_refused_and_never_copied(tmp_path: Path) -> None:
    """An external parameter entity would name /etc/passwd; the DTD is refused outright."""
    src = _rgb(tmp_path)
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    dtd = '<!DOCTYPE OME [<!ENTITY % xxe SYSTEM "file:///etc/passwd"> %xxe;]>'
    start = xml.index("<OME")
    tifffile.tiffcomment(src, (xml[:start] + dtd + xml[start:]).encode())
    _refused(src, tmp_path, "DOCTYPE", "remove")


def _converted(src: Path, tmp_path: Path) -> tuple[Path, str]:
    out = tmp_path / "out"
    proc = run_cli("convert", src, out)
    assert proc.returncode == 0, proc.stderr
    check = run_cli("check", out, "--against", src)
    assert check.returncode == 0, check.stdout + check.stderr
    return out, proc.stderr


def test_a_physical_size_that_is_not_a_number_is_dropped_and_said(tmp_path: Path) -> None:
    src = _edit(_rgb(tmp_path), "PhysicalSizeY", "NaN")
    out, stderr = _converted(src, tmp_path)
    assert "PhysicalSizeY='NaN' is not a positive number; it is ignored" in stderr
    ds = pydicom.dcmread(out / "level0.dcm", stop_before_pixels=True)
    spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == [0.0005, 0.0005]  # Y taken from X, as when absent


def test_an_infinite_z_spacing_is_dropped_and_the_stack_still_has_a_depth(tmp_path) -> None:
    src = _edit(_stack(tmp_path), "PhysicalSizeZ", "-inf")
    out, stderr = _converted(src, tmp_path)
    assert "PhysicalSizeZ='-inf' is not a positive number; it is ignored" in stderr
    for path in out.glob("level0-*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        assert float(ds.ImagedVolumeDepth) > 0
        assert int(ds.TotalPixelMatrixFocalPlanes) == 3


def test_a_colour_and_a_wavelength_that_are_not_numbers_are_dropped(tmp_path: Path) -> None:
    src = _stack(tmp_path)
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata
    xml = xml.replace(
        'SamplesPerPixel="1"',
        'SamplesPerPixel="1" Color="0x10" ExcitationWavelength="inf" EmissionWavelength="520"',
        1,
    )
    tifffile.tiffcomment(src, xml.encode())
    out, stderr = _converted(src, tmp_path)
    assert "Color='0x10' is not an RGBA integer" in stderr
    assert "ExcitationWavelength='inf' is not a positive number" in stderr
    ds = pydicom.dcmread(out / "level0-c1.dcm", stop_before_pixels=True)
    path = ds.OpticalPathSequence[0]
    assert "PaletteColorLookupTableSequence" not in path
    assert float(path.ImagePathFilterPassThroughWavelength) == 520


def test_ome_xml_that_is_not_utf8_is_repaired_and_said(tmp_path: Path) -> None:
    """tifffile reads such a description as another code page ("µm" became "Âµm", refused as
    no length unit, and names changed silently); the stored bytes are decoded as UTF-8, the
    bad ones replaced, and the conversion says so."""
    src = _rgb(tmp_path)
    with tifffile.TiffFile(src) as tf:
        xml = tf.ome_metadata.encode()
    assert "µm".encode() in xml
    tifffile.tiffcomment(src, xml.replace(b'Name="rgb.ome"', b'Name="rg\xff\xfeb"'))
    out, stderr = _converted(src, tmp_path)
    assert "not valid UTF-8" in stderr and "replaced by U+FFFD" in stderr
    ds = pydicom.dcmread(out / "level0.dcm", stop_before_pixels=True)
    spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == [0.0005, 0.0005]
    assert str(ds.PhotometricInterpretation) == "YBR_FULL_422"


def test_an_icc_tag_that_holds_no_profile_is_dropped_and_said(tmp_path: Path) -> None:
    """Tag 34675 of another type (found by fuzzing: a TypeError in the writer and in info)."""
    src = samples.write_tifffile(
        tmp_path / "icc.ome.tif", size=(300, 200), levels=1, icc=b"\x00" * 200
    )
    with tifffile.TiffFile(src, mode="r+b") as tf:
        tf.pages[0].tags[34675].overwrite(1, dtype=4)
    assert run_cli("info", src).returncode == 0
    out = tmp_path / "out"
    proc = run_cli("convert", src, out)
    assert proc.returncode == 0, proc.stderr
    assert "the ICC profile tag (34675) holds no ICC profile; it is ignored" in proc.stderr
    check = run_cli("check", out)  # the output's own profile (sRGB) is a valid one
    assert check.returncode == 0, check.stdout
