"""Issue 16 acceptance on real files: instrument, detector, objective, channel and stains reach
standard DICOM attributes (asserted by keyword) and standard OME fields (asserted by path)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pydicom
import pytest
import tifffile

from bridge import specimen
from bridge.dicom import carrier
from bridge.dicom import reader as dicom_reader
from bridge.model import Codec, Compression, Image, ImageKind, Level, Photometric, Slide
from bridge.ometiff import omexml_writer

from .conftest import run_cli

ZEISS = "ome-tiff/aicsimageio__s_1_t_1_c_1_z_1.ome.tiff"
WSM = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _find(root: ET.Element, path: str) -> list[ET.Element]:
    """Elements at a slash path of local names (namespace-agnostic)."""
    found = [root]
    for name in path.split("/"):
        found = [c for el in found for c in el if _local(c.tag) == name]
    return found


def _attr(xml: str, path: str, attribute: str) -> list[str]:
    return [el.get(attribute, "") for el in _find(ET.fromstring(xml.encode()), path)]


def _map(xml: str, namespace: str) -> list[tuple[str, str]]:
    root = ET.fromstring(xml.encode())
    return [
        (m.get("K", ""), m.text or "")
        for ann in _find(root, "StructuredAnnotations/MapAnnotation")
        if ann.get("Namespace") == namespace
        for m in _find(ann, "Value/M")
    ]


def _strip_carriers(folder: Path) -> None:
    """Remove the private block, so only the standard attributes can carry a value back."""
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        for tag in [e.tag for e in ds if e.tag.group == carrier.GROUP]:
            del ds[tag]
        ds.save_as(f, enforce_file_format=True)


def _ome_xml(path: Path) -> str:
    with tifffile.TiffFile(path) as tf:
        return tf.pages.first.description


def _acquisition_equipment(ds: Any) -> Any:
    return next(
        item
        for item in ds.ContributingEquipmentSequence
        if item.PurposeOfReferenceCodeSequence[0].CodeValue == "109101"
    )


def test_zeiss_instrument_reaches_standard_dicom_and_back(corpus: Path, tmp_path: Path) -> None:
    dcm = tmp_path / "dcm"
    run_cli("convert", corpus / ZEISS, dcm, "-q", check=True)
    ds = pydicom.dcmread(dcm / "level0.dcm")
    path = ds.OpticalPathSequence[0]
    assert float(path.ObjectiveLensPower) == 20.0
    assert float(path.ObjectiveLensNumericalAperture) == 0.8
    assert path.LensesCodeSequence[0].CodeValue == "445621001"  # CID 8121, Immersion Air
    assert path.OpticalPathDescription == "Bright"
    assert path.IlluminationTypeCodeSequence[0].CodeValue == "111741"  # Transmitted
    assert _acquisition_equipment(ds).ManufacturerModelName == "HDCamC11440-22C"
    assert ds.AcquisitionDateTime.startswith("20190627183340.619")
    # the Zeiss Microscope element has Type="Inverted" only: nothing is invented
    assert ds.Manufacturer == "Unknown" and ds.ManufacturerModelName == "Unknown"
    converter = [
        i
        for i in ds.ContributingEquipmentSequence
        if i.PurposeOfReferenceCodeSequence[0].CodeValue == "109103"
    ]
    assert converter and converter[0].Manufacturer == "omedicom"

    _strip_carriers(dcm)
    back = tmp_path / "back.ome.tiff"
    run_cli("convert", dcm, back, "-q", check=True)
    xml = _ome_xml(back)
    assert _attr(xml, "Instrument/Objective", "NominalMagnification") == ["20.0"]
    assert _attr(xml, "Instrument/Objective", "LensNA") == ["0.8"]
    assert _attr(xml, "Instrument/Objective", "Immersion") == ["Air"]
    assert _attr(xml, "Instrument/Detector", "Model") == ["HDCamC11440-22C"]
    assert _attr(xml, "Image/Pixels/Channel", "Name") == ["Bright"]
    dates = [el.text for el in _find(ET.fromstring(xml.encode()), "Image/AcquisitionDate")]
    assert dates and dates[0].startswith("2019-06-27T18:33:40.619")


def test_specimen_he_is_a_staining_step_highdicom_parses(corpus: Path, tmp_path: Path) -> None:
    import highdicom as hd

    stains = tmp_path / "he.json"
    stains.write_text(json.dumps({"stains": ["hematoxylin", "eosin"], "description": "FFPE"}))
    dcm = tmp_path / "dcm"
    run_cli("convert", corpus / ZEISS, dcm, "-q", "--specimen", stains, check=True)
    ds = pydicom.dcmread(dcm / "level0.dcm")
    description = hd.SpecimenDescription.from_dataset(ds.SpecimenDescriptionSequence[0])
    steps = description.specimen_preparation_steps
    assert len(steps) == 1
    assert steps[0].processing_type.value == "127790008"  # Staining
    substances = [(c.value, c.scheme_designator) for c in steps[0].processing_procedure.substances]
    assert substances == [("12710003", "SCT"), ("36879007", "SCT")]
    assert ds.SpecimenDescriptionSequence[0].SpecimenShortDescription == "FFPE"

    for carried in (True, False):  # through the carried OME-XML, and from the attributes alone
        if not carried:
            _strip_carriers(dcm)
        back = tmp_path / f"back{carried}.ome.tiff"
        run_cli("convert", dcm, back, "-q", check=True)
        pairs = _map(_ome_xml(back), specimen.NAMESPACE)
        assert pairs == [
            ("Stain", "hematoxylin stain [SCT:12710003]"),
            ("Stain", "water soluble eosin stain [SCT:36879007]"),
            ("SpecimenDescription", "FFPE"),
        ]


def test_specimen_file_with_an_unknown_stain_is_refused(corpus: Path, tmp_path: Path) -> None:
    stains = tmp_path / "bad.json"
    stains.write_text(json.dumps({"stains": ["unobtainium"]}))
    proc = run_cli("convert", corpus / ZEISS, tmp_path / "dcm", "--specimen", stains)
    assert proc.returncode == 2
    assert "'unobtainium' is not a stain of PS3.16 CID 8112" in proc.stderr
    assert not (tmp_path / "dcm").exists()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "highdicom__sm_image.dcm",
            {
                ("Instrument/Microscope", "Manufacturer"): "Test Manufacturer",
                ("Instrument/Microscope", "Model"): "Test Model",
                ("Instrument/Microscope", "SerialNumber"): "abcd",
            },
        ),
        (
            "highdicom__sm_image_grayscale.dcm",
            {
                ("Instrument/Microscope", "Manufacturer"): "Test Manufacturer",
                ("Image/Pixels/Channel", "Name"): "DAPI",
                ("Image/Pixels/Channel", "ExcitationWavelength"): "355.0",
            },
        ),
        (  # PixelMed's TIFFToDicom
            "openslide-python__boxes_0.dcm",
            {
                ("Instrument/Microscope", "Manufacturer"): "Leica Biosystems",
                ("Instrument/Microscope", "SerialNumber"): "CPAPERIOCS",
                ("Instrument/Objective", "NominalMagnification"): "20.0",
            },
        ),
    ],
)
def test_third_party_dicom_to_standard_ome_fields(
    corpus: Path, tmp_path: Path, name: str, expected: dict
) -> None:
    out = tmp_path / "out.ome.tiff"
    run_cli("convert", corpus / "dicom" / name, out, "-q", check=True)
    xml = _ome_xml(out)
    for (path, attribute), value in expected.items():
        assert value in _attr(xml, path, attribute), (path, attribute, _attr(xml, path, attribute))
    if name == "highdicom__sm_image.dcm":  # highdicom's colour example is stained H&E
        stains = [v for k, v in _map(xml, specimen.NAMESPACE) if k == "Stain"]
        assert stains == [
            "Hematoxylin stain [SCT:12710003]",
            "Water soluble eosin stain [SCT:36879007]",
        ]


def _without_bulk_data(value: Any) -> Any:
    """IDC JSON as the viewer stores it: BulkDataURI entries that are not strings are dropped
    (there are no pixels here, only the header)."""
    if isinstance(value, dict):
        return {
            k: _without_bulk_data(v)
            for k, v in value.items()
            if not (isinstance(v, dict) and not isinstance(v.get("BulkDataURI", ""), str))
        }
    if isinstance(value, list):
        return [_without_bulk_data(v) for v in value]
    return value


@pytest.mark.parametrize(
    ("name", "expected", "stains"),
    [
        (
            "dicom-microscopy-viewer__C3N-01016-22.json",
            {
                ("Instrument/Microscope", "Manufacturer"): "Leica Biosystems",
                ("Instrument/Microscope", "SerialNumber"): "SS1553",
                ("Instrument/Objective", "NominalMagnification"): "20.0",
            },
            ["hematoxylin stain [SCT:12710003]", "water soluble eosin stain [SCT:36879007]"],
        ),
        (
            "dicom-microscopy-viewer__HTA9_1_BA_L.json",
            {
                ("Instrument/Microscope", "Manufacturer"): "Leica Biosystems",
                ("Image/Pixels/Channel", "Name"): "NUCLEI",
            },
            ["NUCLEI"],  # a free-text substance of a fluorescent staining step
        ),
        (
            "dicom-microscopy-viewer__TCGA-LUAD_TCGA-05-4244-01Z-00-DX1.json",
            {("Instrument/Objective", "NominalMagnification"): "20.0"},
            ["hematoxylin stain [SCT:12710003]", "water soluble eosin stain [SCT:36879007]"],
        ),
    ],
)
def test_idc_json_headers_to_standard_ome_fields(
    corpus: Path, name: str, expected: dict, stains: list[str]
) -> None:
    """The IDC headers have no pixels: the DICOM reader's metadata functions and the OME-XML
    writer are applied to the base instance's header, as a conversion applies them."""
    images = json.loads((corpus / "dicom-json" / name).read_text())["images"]
    headers = [pydicom.Dataset.from_json(_without_bulk_data(i), lambda *a: b"") for i in images]
    ds = next(h for h in headers if h.SOPClassUID == WSM and "VOLUME" in h.ImageType)
    where = Path(name)
    item = ds.OpticalPathSequence[0]
    level = Level(
        index=0,
        size=(int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)),
        tile_size=(int(ds.Columns), int(ds.Rows)),
        codec=Codec(Compression.JPEG, Photometric.YCBCR),
        tiles=None,  # type: ignore[arg-type]
    )
    image = Image(
        kind=ImageKind.VOLUME,
        name=None,
        dtype="uint8",
        samples_per_pixel=int(ds.SamplesPerPixel),
        photometric=Photometric.YCBCR,
        levels=(level,),
        channels=(dicom_reader._channel("1", item, where),),
        objective=dicom_reader._objective(item, where),
        microscope=dicom_reader._microscope(ds),
        detector=dicom_reader._detector(ds),
    )
    slide = Slide(slide_id="s", images=(image,), specimen=specimen.from_dicom(ds))
    uuid = "urn:uuid:00000000-0000-0000-0000-000000000000"
    xml = "".join(omexml_writer.build(slide, [image], "s.ome.tiff", uuid))
    for (path, attribute), value in expected.items():
        assert value in _attr(xml, path, attribute), (path, attribute, _attr(xml, path, attribute))
    assert [v for k, v in _map(xml, specimen.NAMESPACE) if k == "Stain"] == stains
