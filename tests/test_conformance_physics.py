"""The physics checks (conformance/physics.py): pixel size against the objective, Z spacing
against the focal planes. Each check fires on a broken file and stays silent on consistent
ones, the corpus files among them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile

from bridge.convert import convert
from bridge.dicom.uids import generate_uid
from conformance.findings import Severity
from conformance.physics import judge
from conformance.runner import check

NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def _ome_tiff(
    path: Path,
    *,
    size: str = "0.25",
    unit: str = "µm",
    power: str = "40",
    size_z: int = 1,
    dz: str | None = None,
    positions: tuple[float, ...] = (),
) -> Path:
    z_attr = f' PhysicalSizeZ="{dz}"' if dz else ""
    planes = "".join(
        f'<Plane TheZ="{k}" TheC="0" TheT="0" PositionZ="{z}" PositionZUnit="µm"/>'
        for k, z in enumerate(positions)
    )
    xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="{NS}"><Instrument ID="Instrument:0">
<Objective ID="Objective:0" NominalMagnification="{power}"/></Instrument>
<Image ID="Image:0" Name="physics"><ObjectiveSettings ID="Objective:0"/>
<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="64" SizeY="48"
 SizeZ="{size_z}" SizeC="1" SizeT="1" PhysicalSizeX="{size}" PhysicalSizeY="{size}"
 PhysicalSizeXUnit="{unit}" PhysicalSizeYUnit="{unit}"{z_attr}>
<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData IFD="0" PlaneCount="{size_z}"/>
{planes}</Pixels></Image></OME>"""
    data = (np.arange(64 * 48 * size_z) % 251).astype(np.uint8).reshape(size_z, 48, 64)
    tifffile.imwrite(path, data, description=xml.encode(), metadata=None, photometric="minisblack")
    return path


def _physics(path: Path) -> list[tuple[str, Severity, str]]:
    report = check([path], use_dicom3tools=False)
    return [(f.id, f.severity, f.message) for f in report.findings if "physics" in f.id]


# -- the rule ---------------------------------------------------------------------------------


def test_judge_rule() -> None:
    assert judge(0.25, 40) is None  # the typical scanner
    assert judge(0.5, 20) is None
    assert judge(1.0, 40).severity is Severity.WARNING  # spacing says 10x
    assert judge(250.0, 40).severity is Severity.ERROR  # nm written as um
    assert judge(0.00025, 40).severity is Severity.ERROR  # mm written as um
    # a known sensor pixel: 6.5 um behind 20x gives 0.325 um; 15% is the warning line
    assert judge(0.325, 20, sensor_um=6.5) is None
    assert judge(0.36, 20, sensor_um=6.5) is None  # 10.8% off
    assert judge(0.38, 20, sensor_um=6.5).severity is Severity.WARNING  # 16.9% off
    # binning and an adapter factor enter M_eff and the pixel
    assert judge(1.3, 20, sensor_um=6.5, binning=4) is None
    assert judge(0.65, 20, sensor_um=6.5, factor=0.5) is None


# -- OME-TIFF -----------------------------------------------------------------------------------


def test_ome_nm_labelled_um_is_an_error(tmp_path: Path) -> None:
    found = _physics(_ome_tiff(tmp_path / "nm.ome.tiff", size="250"))
    assert [(i, s) for i, s, _ in found] == [("OME-physics-magnification", Severity.ERROR)]
    message = found[0][2]
    assert "PhysicalSizeX 250 µm" in message and "40×" in message and "1e+03" in message


def test_ome_objective_40x_with_10x_spacing_is_a_warning(tmp_path: Path) -> None:
    found = _physics(_ome_tiff(tmp_path / "10x.ome.tiff", size="1.0"))
    assert [(i, s) for i, s, _ in found] == [("OME-physics-magnification", Severity.WARNING)]
    assert "expects 0.25 µm at 40×" in found[0][2]


def test_ome_consistent_is_silent(tmp_path: Path) -> None:
    assert _physics(_ome_tiff(tmp_path / "ok.ome.tiff", size="250", unit="nm")) == []


def test_ome_physical_size_z_against_plane_positions(tmp_path: Path) -> None:
    ok = _ome_tiff(tmp_path / "z.ome.tiff", size_z=3, dz="2", positions=(0.0, 2.0, 4.0))
    assert _physics(ok) == []
    off = _ome_tiff(tmp_path / "zw.ome.tiff", size_z=3, dz="2", positions=(0.0, 0.5, 1.0))
    assert [(i, s) for i, s, _ in _physics(off)] == [("OME-physics-z", Severity.WARNING)]
    unit = _ome_tiff(tmp_path / "ze.ome.tiff", size_z=3, dz="500", positions=(0.0, 0.5, 1.0))
    found = _physics(unit)
    assert [(i, s) for i, s, _ in found] == [("OME-physics-z", Severity.ERROR)]
    assert "PhysicalSizeZ 500 µm" in found[0][2] and "0.5 µm" in found[0][2]


# -- DICOM --------------------------------------------------------------------------------------


def _dicom(tmp_path: Path, **kw: object) -> Path:
    out = tmp_path / "dcm"
    convert(_ome_tiff(tmp_path / "src.ome.tiff", **kw), out, to="dicom")  # type: ignore[arg-type]
    return out


def test_dicom_objective_40x_with_10x_spacing(tmp_path: Path) -> None:
    found = _physics(_dicom(tmp_path, size="1.0"))
    assert [(i, s) for i, s, _ in found] == [("WSI-physics-magnification", Severity.WARNING)]
    assert "Pixel Spacing (column) 1 µm" in found[0][2]


def test_dicom_wrong_unit_and_consistent(tmp_path: Path) -> None:
    folder = _dicom(tmp_path)
    assert _physics(folder) == []
    ds = pydicom.dcmread(folder / "level0.dcm")
    ds.OpticalPathSequence[0].ObjectiveLensPower = "4000"
    ds.save_as(folder / "level0.dcm", enforce_file_format=True)
    found = _physics(folder)
    assert [(i, s) for i, s, _ in found] == [("WSI-physics-magnification", Severity.ERROR)]


def test_dicom_spacing_between_slices_against_z_offsets(tmp_path: Path) -> None:
    folder = _dicom(tmp_path)
    first = pydicom.dcmread(folder / "level0.dcm")
    for name, z, step in (("level0.dcm", 0.0, "0.002"), ("level0b.dcm", 0.5, "0.002")):
        ds = first.copy()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.TotalPixelMatrixOriginSequence[0].ZOffsetInSlideCoordinateSystem = z
        ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SpacingBetweenSlices = step
        ds.save_as(folder / name, enforce_file_format=True)
    found = _physics(folder)
    assert [(i, s) for i, s, _ in found] == [("WSI-physics-z", Severity.WARNING)]
    assert "2 µm" in found[0][2] and "0.5 µm apart" in found[0][2]


@pytest.mark.parametrize(
    "name",
    [
        "ome-tiff/aicsimageio__s_1_t_1_c_1_z_1.ome.tiff",  # 1.083 µm at 20×, binning 4x4
        "dicom/openslide-python__boxes_0.dcm",  # 0.499 µm at 20×
        "dicom/highdicom__sm_image.dcm",
    ],
)
def test_corpus_consistent_files_are_silent(corpus: Path, name: str) -> None:
    report = check([corpus / name], use_dicom3tools=False)
    assert {"OME-physics-magnification", "WSI-physics-magnification"} & report.checks_run
    assert [f for f in report.findings if "physics" in f.id] == []
