"""Huge UT values (the OME-XML carrier of a slide with a million ROIs) are streamed out, and
the file is byte for byte what pydicom writes."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bridge.dicom import bigtext, carrier

UID = generate_uid()


def _dataset(text: str, charset: str = "ISO_IR 192") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    ds.file_meta.MediaStorageSOPInstanceUID = uid = UID
    ds.SpecificCharacterSet = charset
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    ds.SOPInstanceUID = uid
    ds.PatientName = "Müller^Jürgen"
    ds.ContainerIdentifier = "slide 1"
    carrier.write(ds, text, None)
    ds.PresentationLUTShape = "IDENTITY"  # an element after the private block
    seq = Dataset()
    seq.ContainerIdentifier = "größer"
    ds.SharedFunctionalGroupsSequence = [seq]
    return ds


@pytest.mark.parametrize("length", [2_000, 2_001])  # even and odd UTF-8 lengths
def test_streamed_writing_gives_pydicom_s_bytes(monkeypatch, length: int) -> None:
    monkeypatch.setattr(bigtext, "LARGE", 100)
    monkeypatch.setattr(bigtext, "SLICE", 37)  # many slices, cut between characters
    text = ("<ROI Name='µ'/>" * 200)[:length]
    ds = _dataset(text)
    expected = io.BytesIO()
    pydicom.dcmwrite(expected, _dataset(text), enforce_file_format=True)
    got = io.BytesIO()
    bigtext.dcmwrite_streaming(got, ds)
    assert got.getvalue() == expected.getvalue()
    again = pydicom.dcmread(io.BytesIO(got.getvalue()))
    assert carrier.read_ome_xml(again) == text.rstrip(" ")


def test_the_carrier_is_really_streamed(monkeypatch, tmp_path: Path) -> None:
    """The long value is written by _write_ut in slices and never handed to pydicom."""
    monkeypatch.setattr(bigtext, "LARGE", 100)
    monkeypatch.setattr(bigtext, "SLICE", 1000)
    streamed: list[int] = []
    given_to_pydicom: list[int] = []
    write_ut, write_dataset, dcmwrite = bigtext._write_ut, bigtext.write_dataset, bigtext.dcmwrite

    def spy_ut(fh, tag, text):
        streamed.append(len(text))
        return write_ut(fh, tag, text)

    def spy_dataset(fp, dataset, parent_encoding="iso8859"):
        given_to_pydicom.extend(len(str(e.value)) for e in dataset)
        return write_dataset(fp, dataset, parent_encoding)

    def spy_dcmwrite(fh, dataset, **kwargs):
        given_to_pydicom.extend(len(str(e.value)) for e in dataset)
        return dcmwrite(fh, dataset, **kwargs)

    monkeypatch.setattr(bigtext, "_write_ut", spy_ut)
    monkeypatch.setattr(bigtext, "write_dataset", spy_dataset)
    monkeypatch.setattr(bigtext, "dcmwrite", spy_dcmwrite)
    with open(tmp_path / "x.dcm", "wb") as fh:
        bigtext.dcmwrite_streaming(fh, _dataset("x" * 5000))
    assert streamed == [5000]
    assert given_to_pydicom and 5000 not in given_to_pydicom  # pydicom wrote all the rest
    assert carrier.read_ome_xml(pydicom.dcmread(tmp_path / "x.dcm")) == "x" * 5000


def test_other_character_sets_are_left_to_pydicom(monkeypatch) -> None:
    monkeypatch.setattr(bigtext, "LARGE", 10)
    ds = _dataset("y" * 500, charset="ISO_IR 100")
    got, expected = io.BytesIO(), io.BytesIO()
    bigtext.dcmwrite_streaming(got, ds)
    pydicom.dcmwrite(expected, _dataset("y" * 500, charset="ISO_IR 100"), enforce_file_format=True)
    assert got.getvalue() == expected.getvalue()
