"""A slide with PHI planted in every place it can hide (issue 14), built from a test slide.

OME-TIFF (tifffile) with an Experimenter, an Image Name, a ROI text, a MapAnnotation and a label
image whose pixels show the patient's name -> DICOM (``convert --metadata``) -> OME-TIFF (the
DICOM header travels as JSON in the OME-XML) -> DICOM again (the OME-XML, with that JSON inside,
travels in the private block), then attributes and a foreign private block added with pydicom.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import samples
import tifffile
from conftest import run_cli
from PIL import Image, ImageDraw

#: every planted string; each must be gone after ``deidentify``
PHI = {
    "PatientName": "Smithwick^Eleanor",
    "PatientID": "MRN7731904",
    "PatientBirthDate": "19470312",
    "AccessionNumber": "ACC55120871",
    "InstitutionName": "Saint Brennan Hospital",
    "ReferringPhysicianName": "Okonkwo^Adaeze",
    "StudyDescription": "Biopsy of Eleanor Smithwick",
    "ContainerIdentifier": "SLIDE-KX-90211",
    "BarcodeValue": "BC-4471-ZQ",
    "LabelText": "Lab Gorvanth 12",
    "Private": "PrivateSecret Harrowgate",
    "Experimenter": "Quimbyfield",
    "ImageName": "Smithwick left breast",
    "RoiText": "tumour Okonkwo marked",
    "MapValue": "Ward 7 Harrowgate",
}
#: the text drawn into the label image's pixels
LABEL_TEXT = "SMITHWICK MRN7731904"


def _label() -> np.ndarray:
    image = Image.new("RGB", (320, 128), "white")
    draw = ImageDraw.Draw(image)
    draw.text((10, 50), LABEL_TEXT, fill="black")
    return np.asarray(image).copy()


def _ome(path: Path) -> Path:
    """A pyramidal JPEG OME-TIFF with label, macro and the OME-side PHI."""
    image = samples.tissue(1000, 1200, seed=5)
    levels = samples.pyramid(image, 2)
    opts = {"tile": (256, 256), "photometric": "rgb", "compression": "jpeg"}
    meta = {"axes": "YXS", "Name": "x", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tw:
        tw.write(levels[0], subifds=1, metadata=meta, **opts)
        tw.write(levels[1], subfiletype=1, metadata=None, **opts)
        tw.write(_label(), photometric="rgb", metadata={"Name": "label"})
        tw.write(samples.tissue(160, 480, seed=8), photometric="rgb", metadata={"Name": "macro"})
    xml = tifffile.tiffcomment(path)
    xml = xml.replace('Name="x"', f'Name="{PHI["ImageName"]}"', 1)
    rois = (
        '<ROI ID="ROI:0"><Union><Polygon ID="Shape:0:0" Points="100,120 300,120 300,270 100,270" '
        f'Text="{PHI["RoiText"]}"/></Union></ROI>'
    )
    xml = xml.replace("</OME>", rois + "</OME>")
    # the first Image references the ROI (the bridge converts the ROIs of its pyramid)
    xml = xml.replace("</Pixels>", '</Pixels><ROIRef ID="ROI:0"/>', 1)
    tifffile.tiffcomment(path, xml.encode("utf-8"))
    return path


def _metadata(path: Path) -> Path:
    keys = (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "AccessionNumber",
        "ReferringPhysicianName",
        "StudyDescription",
        "ContainerIdentifier",
    )
    path.write_text(json.dumps({k: PHI[k] for k in keys}), encoding="utf-8")
    return path


def _plant(folder: Path, ome_xml: str) -> None:
    """What ``--metadata`` cannot give: institution, barcode, a foreign private block, and the
    OME-XML carrier (PS3.5 7.8 block ``OMEDICOM 1``, mappings/README.md) holding ``ome_xml``,
    which itself carries the DICOM header JSON and the Experimenter."""
    for file in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(file)
        if ds.SOPClassUID != "1.2.840.10008.5.1.4.1.1.77.1.6":
            continue
        ds.InstitutionName = PHI["InstitutionName"]
        ds.BarcodeValue = PHI["BarcodeValue"]
        ds.LabelText = PHI["LabelText"]
        block = ds.private_block(0x0099, "HOSPITAL X", create=True)
        block.add_new(0x01, "LO", PHI["Private"])
        carrier = ds.private_block(0x0077, "OMEDICOM 1", create=True)
        if carrier.get_tag(0x10) not in ds:
            carrier.add_new(0x10, "UT", ome_xml)
        ds.save_as(file, enforce_file_format=True)


def _strip_carrier(folder: Path) -> None:
    """Take the OME-XML carrier out of a conversion so that the way back writes a new OME-XML,
    with the DICOM header JSON carrier in it."""
    for file in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(file)
        for element in list(ds):
            if element.tag.group == 0x0077:
                del ds[element.tag]
        ds.save_as(file, enforce_file_format=True)


def _add_experimenter(path: Path) -> None:
    """An Experimenter and a MapAnnotation in an OME-TIFF's OME-XML."""
    xml = tifffile.tiffcomment(path)
    head, sep, rest = xml.partition("<Image ")
    experimenter = (
        f'<Experimenter ID="Experimenter:0" FirstName="Gwen" LastName="{PHI["Experimenter"]}"/>'
    )
    xml = head + experimenter + sep + rest
    mapping = (
        f'<MapAnnotation ID="Annotation:PHI"><Value><M K="ward">{PHI["MapValue"]}</M></Value>'
        "</MapAnnotation>"
    )
    if "<StructuredAnnotations>" in xml:
        xml = xml.replace("<StructuredAnnotations>", "<StructuredAnnotations>" + mapping, 1)
    else:
        xml = xml.replace(
            "</OME>", f"<StructuredAnnotations>{mapping}</StructuredAnnotations></OME>"
        )
    tifffile.tiffcomment(path, xml.encode("utf-8"))


def build(tmp: Path) -> Path:
    """The planted DICOM folder (a pyramid, label, overview, annotations, both carriers)."""
    ome = _ome(tmp / "phi.ome.tiff")
    meta = _metadata(tmp / "phi.json")
    first = tmp / "first_dicom"
    run_cli("convert", "--pyramid", "keep", ome, first, "--metadata", meta, check=True)
    _strip_carrier(first)
    back = tmp / "carried.ome.tiff"
    run_cli("convert", "--pyramid", "keep", first, back, check=True)
    _add_experimenter(back)
    out = tmp / "phi_dicom"
    run_cli("convert", "--pyramid", "keep", back, out, check=True)
    _plant(out, tifffile.tiffcomment(back))
    return out
