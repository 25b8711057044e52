"""A small DICOM dataset and its Part 10 encoder, for the headers the writer makes.

pydicom takes ~45 ms to import (its pixel backends, its downloader, its dictionaries), about a
quarter of what ``omedicom convert`` spends before it copies the first tile. The writer's own
headers need none of that: a few dozen known attributes in Explicit VR Little Endian. This
module holds them and writes them. A test encodes every header the writer makes with both this
module and pydicom (``dcmwrite(..., enforce_file_format=True)``) and compares the bytes.

Encoding (PS3.5):

* 7.1.2: tag, VR, then a 16-bit length, or two reserved bytes and a 32-bit length for the VRs
  in :data:`LONG_VRS`;
* 6.2: strings padded to even length with a space, UIDs with a NUL; values joined by ``\\``;
* 6.1.2.3 / C.12.1.1.2: text VRs in the dataset's Specific Character Set (only ISO_IR 192 and
  the default repertoire are written here), the other string VRs in the default repertoire;
* 7.5: sequences and items with defined lengths (as pydicom writes new datasets);
* 7.4 / PS3.10 7.1: the 128-byte preamble, ``DICM`` and the File Meta Information group with
  its group length.

Elements are written in ascending tag order (7.1). A UT value longer than :data:`LARGE`
characters at the top level (the OME-XML carrier) is written a slice at a time.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from .uids import IMPLEMENTATION_CLASS_UID

#: Keyword -> (tag, VR) for the attributes the writer sets (PS3.6 Table 6-1). The palette
#: descriptors are "US or SS" in PS3.6; they are US when Pixel Representation is 0 (C.7.6.3.1.5),
#: as in every image the writer makes. A test checks every entry against pydicom's dictionary.
KEYWORDS: dict[str, tuple[int, str]] = {
    "FileMetaInformationVersion": (0x00020001, "OB"),
    "MediaStorageSOPClassUID": (0x00020002, "UI"),
    "MediaStorageSOPInstanceUID": (0x00020003, "UI"),
    "TransferSyntaxUID": (0x00020010, "UI"),
    "ImplementationClassUID": (0x00020012, "UI"),
    "ImplementationVersionName": (0x00020013, "SH"),
    "SpecificCharacterSet": (0x00080005, "CS"),
    "ImageType": (0x00080008, "CS"),
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "PyramidUID": (0x00080019, "UI"),
    "StudyDate": (0x00080020, "DA"),
    "ContentDate": (0x00080023, "DA"),
    "AcquisitionDateTime": (0x0008002A, "DT"),
    "StudyTime": (0x00080030, "TM"),
    "ContentTime": (0x00080033, "TM"),
    "AccessionNumber": (0x00080050, "SH"),
    "Modality": (0x00080060, "CS"),
    "Manufacturer": (0x00080070, "LO"),
    "ReferringPhysicianName": (0x00080090, "PN"),
    "CodeValue": (0x00080100, "SH"),
    "CodingSchemeDesignator": (0x00080102, "SH"),
    "CodeMeaning": (0x00080104, "LO"),
    "StudyDescription": (0x00081030, "LO"),
    "SeriesDescription": (0x0008103E, "LO"),
    "PyramidDescription": (0x00081088, "LO"),
    "ManufacturerModelName": (0x00081090, "LO"),
    "FrameType": (0x00089007, "CS"),
    "VolumetricProperties": (0x00089206, "CS"),
    "PatientName": (0x00100010, "PN"),
    "PatientID": (0x00100020, "LO"),
    "PatientBirthDate": (0x00100030, "DA"),
    "PatientSex": (0x00100040, "CS"),
    "SliceThickness": (0x00180050, "DS"),
    "SpacingBetweenSlices": (0x00180088, "DS"),
    "DeviceSerialNumber": (0x00181000, "LO"),
    "SoftwareVersions": (0x00181020, "LO"),
    "ContributingEquipmentSequence": (0x0018A001, "SQ"),
    "ContributionDateTime": (0x0018A002, "DT"),
    "ContributionDescription": (0x0018A003, "ST"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "StudyID": (0x00200010, "SH"),
    "SeriesNumber": (0x00200011, "IS"),
    "InstanceNumber": (0x00200013, "IS"),
    "PyramidLabel": (0x00200027, "LO"),
    "FrameOfReferenceUID": (0x00200052, "UI"),
    "PositionReferenceIndicator": (0x00201040, "LO"),
    "DimensionOrganizationUID": (0x00209164, "UI"),
    "DimensionOrganizationSequence": (0x00209221, "SQ"),
    "DimensionOrganizationType": (0x00209311, "CS"),
    "LightPathFilterPassThroughWavelength": (0x00220001, "US"),
    "LightPathFilterPassBand": (0x00220002, "US"),
    "ImagePathFilterPassThroughWavelength": (0x00220003, "US"),
    "ImagePathFilterPassBand": (0x00220004, "US"),
    "IlluminationTypeCodeSequence": (0x00220016, "SQ"),
    "LensesCodeSequence": (0x00220019, "SQ"),
    "IlluminationWaveLength": (0x00220055, "FL"),
    "SamplesPerPixel": (0x00280002, "US"),
    "PhotometricInterpretation": (0x00280004, "CS"),
    "PlanarConfiguration": (0x00280006, "US"),
    "NumberOfFrames": (0x00280008, "IS"),
    "Rows": (0x00280010, "US"),
    "Columns": (0x00280011, "US"),
    "PixelSpacing": (0x00280030, "DS"),
    "BitsAllocated": (0x00280100, "US"),
    "BitsStored": (0x00280101, "US"),
    "HighBit": (0x00280102, "US"),
    "PixelRepresentation": (0x00280103, "US"),
    "BurnedInAnnotation": (0x00280301, "CS"),
    "RescaleIntercept": (0x00281052, "DS"),
    "RescaleSlope": (0x00281053, "DS"),
    "RedPaletteColorLookupTableDescriptor": (0x00281101, "US"),
    "GreenPaletteColorLookupTableDescriptor": (0x00281102, "US"),
    "BluePaletteColorLookupTableDescriptor": (0x00281103, "US"),
    "RedPaletteColorLookupTableData": (0x00281201, "OW"),
    "GreenPaletteColorLookupTableData": (0x00281202, "OW"),
    "BluePaletteColorLookupTableData": (0x00281203, "OW"),
    "ICCProfile": (0x00282000, "OB"),
    "LossyImageCompression": (0x00282110, "CS"),
    "LossyImageCompressionRatio": (0x00282112, "DS"),
    "LossyImageCompressionMethod": (0x00282114, "CS"),
    "PixelMeasuresSequence": (0x00289110, "SQ"),
    "ContainerIdentifier": (0x00400512, "LO"),
    "IssuerOfTheContainerIdentifierSequence": (0x00400513, "SQ"),
    "ContainerTypeCodeSequence": (0x00400518, "SQ"),
    "SpecimenIdentifier": (0x00400551, "LO"),
    "SpecimenUID": (0x00400554, "UI"),
    "AcquisitionContextSequence": (0x00400555, "SQ"),
    "SpecimenDescriptionSequence": (0x00400560, "SQ"),
    "IssuerOfTheSpecimenIdentifierSequence": (0x00400562, "SQ"),
    "SpecimenShortDescription": (0x00400600, "LO"),
    "SpecimenPreparationSequence": (0x00400610, "SQ"),
    "SpecimenPreparationStepContentItemSequence": (0x00400612, "SQ"),
    "WholeSlideMicroscopyImageFrameTypeSequence": (0x00400710, "SQ"),
    "XOffsetInSlideCoordinateSystem": (0x0040072A, "DS"),
    "YOffsetInSlideCoordinateSystem": (0x0040073A, "DS"),
    "ZOffsetInSlideCoordinateSystem": (0x0040074A, "DS"),
    "ValueType": (0x0040A040, "CS"),
    "ConceptNameCodeSequence": (0x0040A043, "SQ"),
    "TextValue": (0x0040A160, "UT"),
    "ConceptCodeSequence": (0x0040A168, "SQ"),
    "PurposeOfReferenceCodeSequence": (0x0040A170, "SQ"),
    "ImagedVolumeWidth": (0x00480001, "FL"),
    "ImagedVolumeHeight": (0x00480002, "FL"),
    "ImagedVolumeDepth": (0x00480003, "FL"),
    "TotalPixelMatrixColumns": (0x00480006, "UL"),
    "TotalPixelMatrixRows": (0x00480007, "UL"),
    "TotalPixelMatrixOriginSequence": (0x00480008, "SQ"),
    "SpecimenLabelInImage": (0x00480010, "CS"),
    "FocusMethod": (0x00480011, "CS"),
    "ExtendedDepthOfField": (0x00480012, "CS"),
    "ImageOrientationSlide": (0x00480102, "DS"),
    "OpticalPathSequence": (0x00480105, "SQ"),
    "OpticalPathIdentifier": (0x00480106, "SH"),
    "OpticalPathDescription": (0x00480107, "ST"),
    "IlluminationColorCodeSequence": (0x00480108, "SQ"),
    "ObjectiveLensPower": (0x00480112, "DS"),
    "ObjectiveLensNumericalAperture": (0x00480113, "DS"),
    "IlluminatorTypeCodeSequence": (0x00480100, "SQ"),
    "PaletteColorLookupTableSequence": (0x00480120, "SQ"),
    "NumberOfOpticalPaths": (0x00480302, "UL"),
    "TotalPixelMatrixFocalPlanes": (0x00480303, "UL"),
    "PresentationLUTShape": (0x20500020, "CS"),
    "LabelText": (0x22000002, "UT"),
    "BarcodeValue": (0x22000005, "LT"),
    "SharedFunctionalGroupsSequence": (0x52009229, "SQ"),
}

#: VRs with two reserved bytes and a 32-bit length (PS3.5 Table 7.1-1).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
#: VRs whose values are in the Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
#: Binary numbers: struct format per VR (PS3.5 Table 6.2-1).
NUMBER_VRS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "UV": "Q",
    "SV": "q",
}
BYTES_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
#: String VRs: the text VRs and those in the default repertoire only (PS3.5 6.1.2.3).
STRING_VRS = TEXT_VRS | {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"}

#: Top-level UT values longer than this many characters are encoded a slice at a time.
LARGE = 1 << 20
SLICE = 8 << 20
UTF8 = "ISO_IR 192"


def lookup(keyword: str) -> tuple[int, str]:
    """(tag, VR) of a keyword; from pydicom's dictionary for keywords outside the table."""
    found = KEYWORDS.get(keyword)
    if found is not None:
        return found
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    tag = tag_for_keyword(keyword)
    if tag is None:
        raise AttributeError(f"{keyword!r} is not a DICOM keyword")
    vr = dictionary_VR(tag)
    if len(vr) != 2:
        raise ValueError(f"{keyword} has no single VR ({vr}); set it with add_new")
    return tag, vr


class Dataset:
    """Attributes by keyword (``ds.Rows = 256``) or by tag (:meth:`add_new`), like pydicom's
    Dataset as far as the writer uses it. Values are kept as given and checked when encoded:
    strings (or lists of them) for string VRs, ints or floats for binary numbers, bytes for
    OB/OW, lists of Datasets for SQ."""

    __slots__ = ("_elements", "file_meta")

    def __init__(self) -> None:
        object.__setattr__(self, "_elements", {})
        object.__setattr__(self, "file_meta", None)

    def __setattr__(self, keyword: str, value: Any) -> None:
        if keyword == "file_meta":
            object.__setattr__(self, keyword, value)
            return
        tag, vr = lookup(keyword)
        self._elements[tag] = (vr, value)

    def __getattr__(self, keyword: str) -> Any:
        if keyword.startswith("_"):
            raise AttributeError(keyword)
        tag, _ = lookup(keyword)
        try:
            return self._elements[tag][1]
        except KeyError:
            raise AttributeError(f"the dataset has no {keyword}") from None

    def __delattr__(self, keyword: str) -> None:
        self._elements.pop(lookup(keyword)[0], None)

    def __contains__(self, keyword: str) -> bool:
        return lookup(keyword)[0] in self._elements

    def get(self, keyword: str, default: Any = None) -> Any:
        element = self._elements.get(lookup(keyword)[0])
        return default if element is None else element[1]

    def add_new(self, tag: int, vr: str, value: Any) -> None:
        """Set an element by tag and VR (private elements, PS3.5 7.8)."""
        self._elements[tag] = (vr, value)

    def elements(self) -> Iterator[tuple[int, str, Any]]:
        """(tag, VR, value) in ascending tag order."""
        for tag in sorted(self._elements):
            vr, value = self._elements[tag]
            yield tag, vr, value


def _string(vr: str, value: Any, utf8: bool) -> bytes:
    if isinstance(value, list | tuple):
        text = "\\".join(_one_string(vr, v) for v in value)
    else:
        text = _one_string(vr, value)
    data = text.encode("utf-8" if utf8 and vr in TEXT_VRS else "latin-1")
    if len(data) % 2:
        data += b"\x00" if vr == "UI" else b" "
    return data


def _one_string(vr: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    if vr == "IS" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"a {vr} value must be a string, not {type(value).__name__} ({value!r})")


def _value(vr: str, value: Any, utf8: bool) -> bytes:
    if value is None:
        return b""
    if vr in NUMBER_VRS:
        values = value if isinstance(value, list | tuple) else [value]
        return struct.pack(f"<{len(values)}{NUMBER_VRS[vr]}", *values)
    if vr in BYTES_VRS:
        if not isinstance(value, bytes | bytearray):
            raise TypeError(f"a {vr} value must be bytes, not {type(value).__name__}")
        return bytes(value) + (b"\x00" if len(value) % 2 else b"")
    if vr in STRING_VRS:
        return _string(vr, value, utf8)
    raise TypeError(f"VR {vr} is not written by this encoder")


def _encode(out: bytearray, dataset: Dataset, utf8: bool) -> None:
    """Append the dataset's elements to ``out`` (Explicit VR Little Endian, PS3.5 7.1.2)."""
    charset = dataset.get("SpecificCharacterSet")
    if charset is not None:
        utf8 = _is_utf8(charset)
    for tag, vr, value in dataset.elements():
        _element(out, tag, vr, value, utf8)


def _element(out: bytearray, tag: int, vr: str, value: Any, utf8: bool) -> None:
    """Append one element; a sequence with its items, lengths defined (PS3.5 7.5)."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + vr.encode("ascii")
    if vr == "SQ":
        out += head + b"\x00\x00"
        at = len(out)
        out += b"\x00\x00\x00\x00"
        for item in value or ():
            out += b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # Item (FFFE,E000), length patched
            item_at = len(out) - 4
            _encode(out, item, utf8)
            struct.pack_into("<I", out, item_at, len(out) - item_at - 4)
        struct.pack_into("<I", out, at, len(out) - at - 4)
        return
    data = _value(vr, value, utf8)
    if vr in LONG_VRS:
        out += head + b"\x00\x00" + struct.pack("<I", len(data))
    else:
        if len(data) > 0xFFFF:
            raise ValueError(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr} is too long")
        out += head + struct.pack("<H", len(data))
    out += data


def _is_utf8(charset: Any) -> bool:
    text = charset if isinstance(charset, str) else "\\".join(charset)
    if text not in ("", UTF8):
        raise ValueError(f"Specific Character Set {text!r} is not written by this encoder")
    return text == UTF8


def encode(dataset: Dataset) -> bytes:
    """The dataset's elements, Explicit VR Little Endian (no preamble, no File Meta)."""
    out = bytearray()
    _encode(out, dataset, False)
    return bytes(out)


def file_meta_bytes(meta: Dataset) -> bytes:
    """Preamble, ``DICM`` and the File Meta Information group (PS3.10 7.1), completed as
    pydicom completes it: version 00\\01 and this implementation's class UID when absent."""
    if "FileMetaInformationVersion" not in meta:
        meta.FileMetaInformationVersion = b"\x00\x01"
    if "ImplementationClassUID" not in meta:
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    for keyword in ("MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID", "TransferSyntaxUID"):
        if not meta.get(keyword):
            raise ValueError(f"File Meta Information lacks {keyword}")
    body = encode(meta)
    group_length = struct.pack("<HH", 2, 0) + b"UL" + struct.pack("<HI", 4, len(body))
    return bytes(128) + b"DICM" + group_length + body


def write(fh: BinaryIO, dataset: Dataset) -> None:
    """Write the dataset as a DICOM file (PS3.10 7): preamble, File Meta, then the elements;
    the caller appends Pixel Data. Top-level UT values longer than :data:`LARGE` are encoded
    a slice at a time, so a huge carrier is never held as bytes whole."""
    if dataset.file_meta is None:
        raise ValueError("the dataset has no file_meta")
    fh.write(file_meta_bytes(dataset.file_meta))
    charset = dataset.get("SpecificCharacterSet")
    utf8 = charset is not None and _is_utf8(charset)
    out = bytearray()
    for tag, vr, value in dataset.elements():
        if vr == "UT" and isinstance(value, str) and len(value) > LARGE:
            fh.write(out)
            out.clear()
            write_long_text(fh, tag, value, utf8)
        else:
            _element(out, tag, vr, value, utf8)
    fh.write(out)


def write_long_text(fh: BinaryIO, tag: int, text: str, utf8: bool) -> None:
    """One UT element (PS3.5 7.1.2) encoded a slice at a time; its length is patched after
    (``fh`` must be seekable). Padded to even length with a space (PS3.5 6.2)."""
    encoding = "utf-8" if utf8 else "latin-1"
    fh.write(struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"UT\x00\x00")
    length_at = fh.tell()
    fh.write(b"\x00\x00\x00\x00")
    length = 0
    for start in range(0, len(text), SLICE):
        data = text[start : start + SLICE].encode(encoding)
        fh.write(data)
        length += len(data)
    if length % 2:
        fh.write(b" ")
        length += 1
    end = fh.tell()
    fh.seek(length_at)
    fh.write(struct.pack("<I", length))
    fh.seek(end)
