"""The field table (mappings/fields.toml): every row is proved both ways by a conversion.

For each row a value is changed on one side and looked for on the other:

* OME -> DICOM: a small OME-TIFF whose field holds a distinctive value is converted; the value
  is read back from the DICOM path (a standard attribute), or, for a row with no DICOM home,
  from the OME-XML carried in the DICOM private block;
* DICOM -> OME: the converted DICOM, with the carriers removed so only standard attributes
  are left, gets another distinctive value at the DICOM path and is converted to OME-TIFF; the
  value is read from the OME path, or, for a row with no OME home, from the DICOM JSON
  CommentAnnotation.

A row without an entry in CASES fails: the table cannot list a field no test covers.
"""

from __future__ import annotations

import json
import re
import shutil
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
import tifffile

from bridge import fieldmap
from bridge.convert import convert
from bridge.dicom import carrier

REPO = Path(__file__).resolve().parents[1]
NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def _xml(size_z: int = 1) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<OME xmlns="{NS}">
<Instrument ID="Instrument:0">
 <Microscope Manufacturer="Base" Model="Base" SerialNumber="Base" Type="Upright"/>
 <Laser ID="LightSource:1" Model="Base"/>
 <Arc ID="LightSource:0" Type="Xe"/>
 <Detector ID="Detector:0" Manufacturer="Base" Model="Base" SerialNumber="Base" Type="CCD"/>
 <Objective ID="Objective:0" NominalMagnification="20" LensNA="0.75" Immersion="Air"
  Correction="PlanApo" Manufacturer="Base" Model="Base" SerialNumber="Base"/>
 <Filter ID="Filter:ex" Type="ShortPass"><TransmittanceRange CutIn="400" CutOut="450"/></Filter>
 <Filter ID="Filter:em"><TransmittanceRange CutIn="500" CutOut="550"/></Filter>
</Instrument>
<Image ID="Image:0" Name="base">
 <AcquisitionDate>2019-01-01T00:00:00</AcquisitionDate>
 <Description>base</Description>
 <InstrumentRef ID="Instrument:0"/>
 <ObjectiveSettings ID="Objective:0"/>
 <Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="64" SizeY="48"
  SizeZ="{size_z}" SizeC="1" SizeT="1" PhysicalSizeX="0.5" PhysicalSizeY="0.5"
  PhysicalSizeZ="2" PhysicalSizeZUnit="µm">
  <Channel ID="Channel:0:0" Name="base" SamplesPerPixel="1" ExcitationWavelength="488"
   EmissionWavelength="520" Fluor="base" Color="-16776961" IlluminationType="Transmitted">
   <LightSourceSettings ID="LightSource:0"/>
   <DetectorSettings ID="Detector:0" Binning="1x1"/>
   <LightPath><ExcitationFilterRef ID="Filter:ex"/><EmissionFilterRef ID="Filter:em"/></LightPath>
  </Channel>
  <TiffData IFD="0" PlaneCount="{size_z}"/>
  <Plane TheZ="0" TheC="0" TheT="0" ExposureTime="10"/>
 </Pixels>
 <AnnotationRef ID="Annotation:0"/>
</Image>
<StructuredAnnotations>
 <MapAnnotation ID="Annotation:0" Namespace="urn:omedicom:specimen:1">
  <Value><M K="Stain">hematoxylin</M><M K="SpecimenDescription">base</M></Value>
 </MapAnnotation>
</StructuredAnnotations>
</OME>"""


# -- paths ----------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _ome_targets(root: ET.Element, path: str) -> tuple[list[ET.Element], str | None]:
    """The elements an OME path names and the attribute (None: the element text). In
    ``A>B``, A is the path of a reference element and B the path of what its ID names."""
    if ">" in path:
        reference, target = path.split(">", 1)
        refs, _ = _ome_targets(root, reference)
        if not refs:
            return [], None
        parts = target.split("/")
        parts[1] += f"[@ID={refs[0].get('ID')}]"
        path = "/".join(parts)
    parts = path.split("/")
    attribute = parts[-1][1:] if parts[-1].startswith("@") else None
    if attribute is not None:
        parts = parts[:-1]
    found = [root]
    for part in parts:
        name, _, condition = part.partition("[")
        condition = condition.rstrip("]")
        nxt = []
        for el in found:
            for child in el:
                if _local(child.tag) != name:
                    continue
                if condition.startswith("@"):
                    key, _, wanted = condition[1:].partition("=")
                    if child.get(key) != wanted:
                        continue
                elif condition and child.get("Namespace") != condition:
                    continue
                nxt.append(child)
                if name != "M":
                    break
        found = nxt
    return found, attribute


def ome_get(xml: str, path: str) -> list[str]:
    found, attribute = _ome_targets(ET.fromstring(xml.encode()), path)
    return [(el.get(attribute) if attribute else el.text) or "" for el in found]


def ome_set(xml: str, path: str, value: str) -> str:
    ET.register_namespace("", NS)
    root = ET.fromstring(xml.encode())
    found, attribute = _ome_targets(root, path)
    assert found, f"the test's OME-XML has no {path}"
    for el in found:
        if attribute:
            el.set(attribute, value)
        else:
            el.text = value
    return ET.tostring(root, encoding="unicode")


def _dicom_items(ds: Any, path: str) -> tuple[list[Any], str, str]:
    """(containers, keyword, condition) for a DICOM path: the items holding the last keyword."""
    parts = path.split(".")
    items = [ds]
    for part in parts[:-1]:
        name, _, condition = part.partition("[")
        condition = condition.rstrip("]")
        nxt = []
        for item in items:
            for sub in item.get(name, None) or []:
                if condition and not _matches(sub, condition):
                    continue
                nxt.append(sub)
        items = nxt
    keyword, _, condition = parts[-1].partition("[")
    return items, keyword, condition.rstrip("]")


def _matches(item: Any, meaning: str) -> bool:
    codes = list(item.get("PurposeOfReferenceCodeSequence", None) or [])
    codes += list(item.get("ConceptNameCodeSequence", None) or [])
    return any(str(c.CodeMeaning).startswith(meaning) for c in codes)


def dicom_get(ds: Any, path: str) -> list[Any]:
    items, keyword, condition = _dicom_items(ds, path)
    out = []
    for item in items:
        value = item.get(keyword)
        if value is None:
            continue
        if condition:  # a content item sequence: the matching items' values
            out += [_content_value(c) for c in value if _matches(c, condition)]
        else:
            out.append(value)
    return out


def _content_value(content: Any) -> Any:
    if "ConceptCodeSequence" in content:
        return content.ConceptCodeSequence[0].CodeValue
    return content.get("TextValue")


# -- the cases: one per row -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """Values for one row: ``ome`` is set in the OME-XML and ``to_dicom`` checks what the DICOM
    holds; ``dicom`` changes the DICOM (a value, or a function of the dataset) and ``to_ome``
    is the string expected at the OME path."""

    ome: str | None = None
    to_dicom: Callable[[list[Any]], bool] | None = None
    dicom: Any = None
    to_ome: str | None = None
    size_z: int = 1


def _num(expected: float) -> Callable[[list[Any]], bool]:
    return lambda values: (
        bool(values)
        and all(
            abs(float(v if isinstance(v, (str, int, float)) else v[0]) - expected) < 1e-6
            for v in values
        )
    )


def _text(expected: str) -> Callable[[list[Any]], bool]:
    return lambda values: bool(values) and all(str(v) == expected for v in values)


def _code(expected: str) -> Callable[[list[Any]], bool]:
    return lambda values: (
        bool(values)
        and all(
            (v[0].CodeValue if hasattr(v, "__getitem__") and not isinstance(v, str) else v)
            == expected
            for v in values
        )
    )


def _palette_top(values: list[Any]) -> tuple[int, ...] | None:
    """The (r, g, b) of a palette's last entry (8-bit), or None without a palette."""
    if not values:
        return None
    lut = values[0][0]
    return tuple(
        int.from_bytes(bytes(lut[f"{n}PaletteColorLookupTableData"].value)[-2:], "little") >> 8
        for n in ("Red", "Green", "Blue")
    )


def _set_palette_green(ds: Any) -> None:
    lut = ds.OpticalPathSequence[0].PaletteColorLookupTableSequence[0]
    for name, top in (("Red", 0), ("Green", 0xFFFF), ("Blue", 0)):
        data = bytearray(lut[f"{name}PaletteColorLookupTableData"].value)
        data[-2:] = top.to_bytes(2, "little")
        lut[f"{name}PaletteColorLookupTableData"].value = bytes(data)


def _set_stain(ds: Any) -> None:
    step = ds.SpecimenDescriptionSequence[0].SpecimenPreparationSequence[0]
    for content in step.SpecimenPreparationStepContentItemSequence:
        if _matches(content, "Using substance"):
            code = content.ConceptCodeSequence[0]
            code.CodeValue, code.CodeMeaning = "36879007", "water soluble eosin stain"


CASES: dict[str, Case] = {
    "objective.magnification": Case("63", _num(63), "10", "10.0"),
    "objective.numerical_aperture": Case("1.4", _num(1.4), "0.3", "0.3"),
    "objective.immersion": Case("Oil", _code("445622008"), "oil", "Oil"),
    "objective.correction": Case("PlanFluor"),
    "objective.manufacturer": Case("Nikon"),
    "objective.model": Case("CFI Plan Apo 60x"),
    "objective.serial": Case("OBJ-42"),
    "microscope.manufacturer": Case("Carl Zeiss", _text("Carl Zeiss"), "Leica", "Leica"),
    "microscope.model": Case("Axio Scan.Z1", _text("Axio Scan.Z1"), "GT450", "GT450"),
    "microscope.serial": Case("SN-1234", _text("SN-1234"), "SN-99", "SN-99"),
    "microscope.software": Case(None, None, "ZEN 3.1", "ZEN 3.1"),
    "microscope.type": Case("Inverted"),
    "detector.manufacturer": Case("Hamamatsu", _text("Hamamatsu"), "Andor", "Andor"),
    "detector.model": Case("C11440-22C", _text("C11440-22C"), "Zyla", "Zyla"),
    "detector.serial": Case("D-7", _text("D-7"), "D-8", "D-8"),
    "detector.type": Case("CMOS", _text("Detector type CMOS"), "Detector type EMCCD", "EMCCD"),
    "channel.name": Case("DAPI", _text("DAPI"), "Cy5", "Cy5"),
    "channel.excitation_nm:IlluminationWaveLength": Case("405", _num(405), 640.0, "640.0"),
    "channel.excitation_nm:LightPathFilterPassThroughWavelength": Case("561", _num(561)),
    "channel.emission_nm": Case("461", _num(461), 700, "700.0"),
    "channel.fluor": Case("Hoechst 33342"),
    "channel.illuminator": Case("Hg", _code("445685008"), "arc/hg", "Hg"),
    "channel.excitation_band_nm": Case(
        "405", lambda v: [int(x) for x in v[0]] == [405, 450], [380, 420], "380.0"
    ),
    "channel.emission_band_nm": Case(
        "505", lambda v: [int(x) for x in v[0]] == [505, 550], [600, 650], "600.0"
    ),
    "channel.color": Case(
        "65535", lambda v: _palette_top(v) == (0, 0, 255), _set_palette_green, "16711935"
    ),
    "channel.illumination": Case("Epifluorescence", _code("111743")),
    "image.name": Case("slide-A", _text("slide-A"), "slide-B", "slide-B"),
    "image.description": Case("left lobe", _text("left lobe"), "right lobe", "right lobe"),
    "image.acquired": Case(
        "2021-03-04T05:06:07",
        lambda v: bool(v) and str(v[0]).startswith("20210304050607"),
        "20200102030405",
        "2020-01-02T03:04:05",
    ),
    "image.pixel_size_um": Case(
        "0.25", lambda v: bool(v) and abs(float(v[0][1]) - 0.00025) < 1e-9, [0.002, 0.002], "2.0"
    ),
    "image.focal_planes_um": Case("7.5", _num(0.0075), 0.004, "4.0", 2),
    "specimen.stains": Case(
        "eosin", _code("36879007"), _set_stain, "water soluble eosin stain [SCT:36879007]"
    ),
    "Image/Pixels/Plane/@ExposureTime": Case("25.5"),
    "Instrument/Filter/@Type": Case("BandPass"),
    "Instrument/Laser/@Model": Case("Coherent OBIS 405"),
    "Image/Pixels/Channel/DetectorSettings/@Binning": Case("2x2"),
    "specimen.description": Case("FFPE, 4 µm", _text("FFPE, 4 µm"), "frozen", "frozen"),
}


def _key(row: fieldmap.Row) -> str:
    if not row.model:  # a carried-only row: its OME path names it
        return row.ome
    same = [r for r in fieldmap.rows() if (r.scope, r.model) == (row.scope, row.model)]
    return f"{row.scope}.{row.model}" + (f":{row.keyword}" if len(same) > 1 else "")


ROWS = {_key(row): row for row in fieldmap.rows()}


def test_every_row_has_a_case_and_every_case_a_row() -> None:
    assert set(ROWS) == set(CASES), "fields.toml and this test's CASES must list the same fields"


@pytest.mark.parametrize("size_z", [1, 2])
def test_the_base_document_is_valid_ome(size_z: int) -> None:
    import ome_types

    ome_types.validate_xml(_xml(size_z))


def test_readme_is_generated_from_the_table() -> None:
    readme = (REPO / "mappings" / "README.md").read_text(encoding="utf-8")
    assert fieldmap.readme_with_table(readme) == readme, (
        "mappings/README.md disagrees with mappings/fields.toml: run scripts/mapping_readme.py"
    )
    for row in fieldmap.rows():
        assert f"`{row.ome or row.dicom}`" in readme


def test_engine_rows_name_ome_types_fields_and_known_keywords() -> None:
    """The engine's derived names exist: ome-types fields and DICOM keywords."""
    import ome_types.model as m
    from pydicom.datadict import tag_for_keyword

    classes = {
        "objective": m.Objective,
        "microscope": m.Microscope,
        "detector": m.Detector,
        "channel": m.Channel,
    }
    for row in fieldmap.rows():
        if row.keyword:
            assert tag_for_keyword(row.keyword) is not None, row.keyword
        if row.engine and row.ome_field:
            assert row.ome_field in classes[row.scope].model_fields, row.ome_field


# -- conversions ----------------------------------------------------------------------------------


def _ome_tiff(path: Path, xml: str, size_z: int) -> Path:
    data = (np.arange(64 * 48 * size_z) % 251).astype(np.uint8).reshape(size_z, 48, 64)
    tifffile.imwrite(
        path, data, description=xml.encode("utf-8"), metadata=None, photometric="minisblack"
    )
    return path


def _to_dicom(tmp: Path, xml: str, size_z: int) -> list[pydicom.Dataset]:
    src = _ome_tiff(tmp / "in.ome.tiff", xml, size_z)
    out = tmp / "dcm"
    convert(src, out, to="dicom")
    return [pydicom.dcmread(f) for f in sorted(out.glob("*.dcm"))]


@pytest.fixture(scope="module")
def base_dicom(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The base OME-XML converted to DICOM (1 and 2 focal planes), carriers removed."""
    out = {}
    for size_z in (1, 2):
        tmp = tmp_path_factory.mktemp(f"base{size_z}")
        folder = tmp / "clean"
        folder.mkdir()
        for n, ds in enumerate(_to_dicom(tmp, _xml(size_z), size_z)):
            for tag in [e.tag for e in ds if e.tag.group == carrier.GROUP]:
                del ds[tag]
            ds.save_as(folder / f"{n}.dcm", enforce_file_format=True)
        out[size_z] = folder
    return out


# a DICOM-only row has nothing to change on the OME side; its test is test_dicom_to_ome
OME_ROWS = sorted(k for k, r in ROWS.items() if r.ome)
# an OME-only or written-only row has no DICOM value to read; its test is test_ome_to_dicom
DICOM_ROWS = sorted(k for k, r in ROWS.items() if r.dicom and r.direction != "to_dicom")


def test_every_row_is_tested_in_at_least_one_direction() -> None:
    assert set(OME_ROWS) | set(DICOM_ROWS) == set(ROWS)


@pytest.mark.parametrize("key", OME_ROWS)
def test_ome_to_dicom(key: str, tmp_path: Path) -> None:
    row, case = ROWS[key], CASES[key]
    assert case.ome is not None
    xml = ome_set(_xml(case.size_z), row.ome, case.ome)
    datasets = _to_dicom(tmp_path, xml, case.size_z)
    if row.dicom:
        assert case.to_dicom is not None
        values = [v for ds in datasets for v in dicom_get(ds, row.dicom)]
        assert case.to_dicom(values), f"{row.dicom} holds {values!r} for OME {case.ome!r}"
    else:  # no DICOM home: it travels in the OME-XML carrier
        carried = carrier.read_ome_xml(datasets[0])
        assert carried is not None
        assert ome_get(carried, row.ome) == [case.ome]


@pytest.mark.parametrize("key", DICOM_ROWS)
def test_dicom_to_ome(key: str, tmp_path: Path, base_dicom: dict[int, Path]) -> None:
    row, case = ROWS[key], CASES[key]
    folder = tmp_path / "dcm"
    shutil.copytree(base_dicom[case.size_z], folder)
    for f in folder.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        if callable(case.dicom):
            case.dicom(ds)
        else:
            items, keyword, _ = _dicom_items(ds, row.dicom)
            assert items, f"the base DICOM has no {row.dicom}"
            for item in items:
                if keyword.endswith("CodeSequence"):  # a code from the row's table
                    from bridge import tables

                    code = tables.code(row.codes, case.dicom.title())
                    item[keyword].value[0].CodeValue = code[0]
                else:
                    setattr(item, keyword, case.dicom)
        ds.save_as(f, enforce_file_format=True)
    out = tmp_path / "back.ome.tiff"
    convert(folder, out, to="ome-tiff")
    xml = tifffile.TiffFile(out).pages[0].description
    if row.ome:
        found = ome_get(xml, row.ome)
        assert case.to_ome in found, f"{row.ome} holds {found!r}, not {case.to_ome!r}"
    else:  # no OME home: the DICOM JSON CommentAnnotation carries it
        keyword = row.keyword
        headers = [
            json.loads(el.text or "{}")
            for el in ET.fromstring(xml.encode()).iter()
            if _local(el.tag) == "Value" and el.text and el.text.lstrip().startswith("{")
        ]
        from pydicom.datadict import tag_for_keyword

        tag = f"{tag_for_keyword(keyword):08X}"
        assert any(h.get(tag, {}).get("Value") == [case.to_ome] for h in headers)


def test_specimen_json_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"stains": ["kryptonite"]}))
    from bridge.errors import InputError
    from bridge.specimen import load

    with pytest.raises(InputError, match=re.escape("'kryptonite' is not a stain")):
        load(bad)
