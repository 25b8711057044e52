"""The writer's own DICOM header encoder (bridge/dicom/header.py) writes what pydicom writes.

Every header the writer makes for a set of real conversions is encoded by both and compared
byte for byte; the keyword table, the DS formatter and the UID rules are compared with pydicom's;
a huge UT carrier is streamed; and a conversion from OME-TIFF does not import pydicom at all.
"""

from __future__ import annotations

import io
import math
import random
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from conftest import corpus_dir
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset as PydicomDataset
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence as PydicomSequence
from pydicom.uid import UID
from pydicom.valuerep import format_number_as_ds

from bridge import convert
from bridge.dicom import carrier, header, uids
from bridge.dicom.attributes import ds
from bridge.model import Patient


def to_pydicom(dataset: header.Dataset, meta: bool = False) -> PydicomDataset:
    """The same elements as a pydicom dataset, value for value."""
    out = FileMetaDataset() if meta else PydicomDataset()
    for tag, vr, value in dataset.elements():
        if vr == "SQ":
            out.add_new(tag, vr, PydicomSequence([to_pydicom(item) for item in value]))
        else:
            out.add_new(tag, vr, value)
    return out


def pydicom_bytes(dataset: header.Dataset) -> bytes:
    ours = to_pydicom(dataset)
    ours.file_meta = to_pydicom(dataset.file_meta, meta=True)
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ours, enforce_file_format=True)
    return buffer.getvalue()


def write_palette_source(path: Path) -> Path:
    """Two 8-bit channels with OME Colors (a palette each) and an objective with immersion."""
    data = np.random.default_rng(3).integers(0, 255, (2, 300, 400), dtype=np.uint8)
    xml = """<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">
<Instrument ID="Instrument:0"><Objective ID="Objective:0" NominalMagnification="40"
 LensNA="0.95" Immersion="Oil"/></Instrument>
<Image ID="Image:0" Name="palettes"><InstrumentRef ID="Instrument:0"/>
<ObjectiveSettings ID="Objective:0"/>
<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="uint8" SizeX="400" SizeY="300" SizeC="2"
 SizeZ="1" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeY="0.5">
<Channel ID="Channel:0:0" Name="Grün" Color="16711935" SamplesPerPixel="1"/>
<Channel ID="Channel:0:1" Name="Rot" Color="-16776961" SamplesPerPixel="1"/>
<TiffData IFD="0" PlaneCount="2"/></Pixels></Image></OME>"""
    tifffile.imwrite(path, data, tile=(128, 128), description=xml.encode(), metadata=None)
    return path


def sources(cases, tmp: Path) -> list[tuple[Path, dict]]:
    made = [(case.source, {"pixel_size_um": (0.5, 0.5)}) for case in cases.values()]
    made.append((write_palette_source(tmp / "palettes.ome.tif"), {}))
    corpus = corpus_dir()
    if corpus.is_dir():
        made.append((corpus / "ome-tiff" / "aicsimageio__s_1_t_1_c_1_z_1.ome.tiff", {}))
        made.append((corpus / "ome-tiff" / "qupath__cells-2c.ome.tif", {}))
    return made


def test_every_header_the_writer_makes_is_what_pydicom_writes(
    cases, tmp_path: Path, monkeypatch
) -> None:
    """Real conversions (JPEG, native, 4:2:0, ICC, shared tables, labels, palettes, an
    objective, a Z-stack, OME-XML carriers, a UTF-8 patient name): each header written by the
    writer equals pydicom's encoding of the same elements."""
    seen: list[str] = []
    tags: set[int] = set()
    real_write = header.write

    def collect(dataset: header.Dataset) -> None:
        for tag, vr, value in dataset.elements():
            tags.add(tag)
            for item in value if vr == "SQ" else ():
                collect(item)

    def both(fh, dataset):
        start = fh.tell()
        real_write(fh, dataset)
        end = fh.tell()
        fh.flush()
        ours = Path(fh.name).read_bytes()[start:end]
        assert ours == pydicom_bytes(dataset), dataset.get("SOPInstanceUID")
        seen.append(dataset.SOPInstanceUID)
        collect(dataset)

    monkeypatch.setattr(header, "write", both)
    patient = Patient(name="Müller^Jürgen", id="P-ä1", study_description="Färbung")
    for number, (source, options) in enumerate(sources(cases, tmp_path)):
        convert.convert(source, tmp_path / f"out{number}", patient=patient, **options)
    from test_fluorescence import write_zstack

    zstack = write_zstack(tmp_path / "zstack.ome.tif")
    convert.convert(zstack, tmp_path / "zstack", patient=patient)
    assert len(seen) >= 30
    wanted = {
        header.KEYWORDS[k][0]
        for k in (
            "LabelText",
            "ZOffsetInSlideCoordinateSystem",
            "SpacingBetweenSlices",
            "RedPaletteColorLookupTableData",
            "LossyImageCompressionRatio",
            "ICCProfile",
            "ObjectiveLensPower",
            "IlluminationWaveLength",
            "PatientName",
        )
    }
    wanted |= {0x00771010, 0x00771011}  # the carriers
    assert not wanted - tags, [f"{t:08X}" for t in wanted - tags]


def test_the_keyword_table_is_pydicom_s_dictionary() -> None:
    for keyword, (tag, vr) in header.KEYWORDS.items():
        assert tag_for_keyword(keyword) == tag, keyword
        expected = dictionary_VR(tag)
        # "US or SS": US, as pydicom resolves it for Pixel Representation 0
        assert vr == ("US" if expected == "US or SS" else expected), keyword


def test_keywords_outside_the_table_come_from_pydicom() -> None:
    d = header.Dataset()
    d.PatientComments = "outside the table"
    assert list(d.elements()) == [(0x00104000, "LT", "outside the table")]
    with pytest.raises(AttributeError, match="not a DICOM keyword"):
        d.NoSuchKeyword = 1
    with pytest.raises(AttributeError, match="has no Rows"):
        _ = d.Rows
    assert d.get("Rows") is None and "Rows" not in d


@pytest.mark.parametrize(
    ("keyword", "value"),
    [("PixelSpacing", [0.5, 0.5]), ("Rows", "256"), ("ICCProfile", "text"), ("SeriesNumber", 1.5)],
)
def test_values_of_the_wrong_type_are_refused(keyword: str, value) -> None:
    d = header.Dataset()
    setattr(d, keyword, value)
    with pytest.raises((TypeError, struct.error)):
        header.encode(d)


def test_ds_is_pydicom_s_format_number_as_ds() -> None:
    rng = random.Random(7)
    values = [0.0, -0.0, 1.0, 0.1, 1e-5, -1e-5, 1e14, -1e13, 1e300, -1e-300, 123456789.123456]
    values += [math.pi * 10**k for k in range(-20, 20)] + [-math.e * 10**k for k in range(-20, 20)]
    values += [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    values += [10 ** rng.uniform(-30, 30) * rng.choice((1, -1)) for _ in range(2000)]
    for value in values:
        assert ds(value) == format_number_as_ds(value), value
        assert len(ds(value)) <= 16
    with pytest.raises(ValueError, match="cannot hold"):
        ds(math.nan)


@pytest.mark.filterwarnings("ignore:Invalid value for VR UI")
@pytest.mark.filterwarnings("ignore:The value length")
def test_uids_are_valid_unique_and_judged_like_pydicom() -> None:
    made = {uids.generate_uid() for _ in range(1000)}
    assert len(made) == 1000
    assert all(UID(u).is_valid and uids.is_valid(u) for u in made)
    for text in ["1.2.3", "1.02.3", "1..2", "1.2.", "", "a.1", "0.0", "1." + "9" * 63, "2.25.0"]:
        assert uids.is_valid(text) == UID(text).is_valid, text
    assert uids.is_valid(uids.IMPLEMENTATION_CLASS_UID)
    for name in dir(uids):
        if name.isupper() and not name.startswith("_") and name != "IMPLEMENTATION_CLASS_UID":
            value = getattr(uids, name)
            assert UID(value).is_valid and UID(value).name != value, name  # a known UID


def _carrier_dataset(text: str) -> header.Dataset:
    d = header.Dataset()
    d.file_meta = header.Dataset()
    d.file_meta.TransferSyntaxUID = uids.EXPLICIT_VR_LITTLE_ENDIAN
    d.file_meta.MediaStorageSOPClassUID = uids.VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE
    d.file_meta.MediaStorageSOPInstanceUID = uid = "1.2.3.4"
    d.file_meta.ImplementationVersionName = "OMEDICOM_TEST"
    d.SpecificCharacterSet = "ISO_IR 192"
    d.SOPClassUID = uids.VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE
    d.SOPInstanceUID = uid
    d.PatientName = "Müller^Jürgen"
    d.ContainerIdentifier = "slide 1"
    carrier.write(d, text, None)
    d.PresentationLUTShape = "IDENTITY"  # an element after the private block
    item = header.Dataset()
    item.ContainerIdentifier = "größer"
    d.SharedFunctionalGroupsSequence = [item]
    return d


@pytest.mark.parametrize("length", [2_000, 2_001])  # even and odd UTF-8 lengths
def test_a_streamed_carrier_gives_pydicom_s_bytes(monkeypatch, length: int) -> None:
    monkeypatch.setattr(header, "LARGE", 100)
    monkeypatch.setattr(header, "SLICE", 37)  # many slices, cut between characters
    text = ("<ROI Name='µ'/>" * 200)[:length]
    got, dataset = io.BytesIO(), _carrier_dataset(text)
    header.write(got, dataset)  # completes the File Meta (version, class UID), as pydicom does
    assert got.getvalue() == pydicom_bytes(dataset)
    again = pydicom.dcmread(io.BytesIO(got.getvalue()))
    assert carrier.read_ome_xml(again) == text.rstrip(" ")


def test_the_carrier_is_really_streamed(monkeypatch) -> None:
    """The long value goes through write_long_text in slices, never through _element."""
    monkeypatch.setattr(header, "LARGE", 100)
    monkeypatch.setattr(header, "SLICE", 1000)
    streamed: list[int] = []
    encoded: list[int] = []
    write_long_text, element = header.write_long_text, header._element

    def spy_long(fh, tag, text, utf8):
        streamed.append(len(text))
        return write_long_text(fh, tag, text, utf8)

    def spy_element(out, tag, vr, value, utf8):
        encoded.append(len(str(value)))
        return element(out, tag, vr, value, utf8)

    monkeypatch.setattr(header, "write_long_text", spy_long)
    monkeypatch.setattr(header, "_element", spy_element)
    got = io.BytesIO()
    header.write(got, _carrier_dataset("x" * 5000))
    assert streamed == [5000]
    assert encoded and 5000 not in encoded  # the other elements were encoded as usual
    assert carrier.read_ome_xml(pydicom.dcmread(io.BytesIO(got.getvalue()))) == "x" * 5000


def test_other_character_sets_are_refused() -> None:
    d = _carrier_dataset("y")
    d.SpecificCharacterSet = "ISO_IR 100"
    with pytest.raises(ValueError, match="ISO_IR 100"):
        header.write(io.BytesIO(), d)


def test_converting_an_ome_tiff_does_not_import_pydicom(cases, tmp_path: Path) -> None:
    """What makes the start-up fast (README, Speed and memory): the console converts an
    OME-TIFF to DICOM without loading pydicom, and the files are still valid DICOM."""
    case = cases["tifffile-ycbcr444"]
    out = tmp_path / "out"
    script = Path(sys.executable).with_name("omedicom")
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", script, "convert", case.source, out, "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert "bridge.dicom.writer" in imported  # the log is the conversion's
    assert not {m for m in imported if m.split(".")[0] == "pydicom"}
    level0 = pydicom.dcmread(out / "level0.dcm")
    assert level0.file_meta.ImplementationClassUID == uids.IMPLEMENTATION_CLASS_UID
    frames = pydicom.encaps.generate_frames(
        level0.PixelData, number_of_frames=level0.NumberOfFrames
    )
    assert sum(1 for _ in frames) == level0.NumberOfFrames > 1
