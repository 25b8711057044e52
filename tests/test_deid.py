"""Issue 14: ``omedicom deidentify`` on a slide with PHI planted everywhere (tests/deid_fixture.py).

Real components only: dciodvfy, wsidicom, pydicom, the installed ``omedicom`` command.
"""

from __future__ import annotations

import json
from pathlib import Path

import deid_fixture
import pydicom
import pytest
from conftest import run_cli
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory
    Orthanc,
    orthanc_factory_fixture,
    orthanc_fixture,
    orthancs_fixture,
    server_args,
)

from bridge.deid.audit import reidentify
from conformance import dicom3tools

WSI = "1.2.840.10008.5.1.4.1.1.77.1.6"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("deid")
    src = deid_fixture.build(tmp)
    key1, key2 = tmp / "one.key", tmp / "two.key"
    key1.write_bytes(b"the first secret key, 32 bytes!!")
    key2.write_bytes(b"another secret key, not the same")
    out = {"src": src, "tmp": tmp}
    for name, key in (("a", key1), ("b", key1), ("c", key2)):
        run_cli("deidentify", src, tmp / name, "--key-file", key, check=True)
        out[name] = tmp / name
    return out


def _datasets(folder: Path) -> dict[str, pydicom.Dataset]:
    return {p.name: pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))}


def _planted() -> list[str]:
    values = [*list(deid_fixture.PHI.values()), deid_fixture.LABEL_TEXT]
    # names travel as PN components too
    values += [part for v in values if "^" in v for part in v.split("^")]
    return values


def test_no_planted_string_in_any_output_byte(runs: dict) -> None:
    files = [p for p in runs["a"].rglob("*") if p.is_file()]
    assert files
    for path in files:
        data = path.read_bytes()
        for value in _planted():
            for encoding in ("ascii", "utf-8", "utf-16-le", "utf-16-be"):
                needle = value.encode(encoding)
                assert needle not in data, f"{value!r} ({encoding}) in {path.name}"
                assert needle.lower() not in data.lower(), f"{value!r} ({encoding}) in {path.name}"


def test_the_source_did_hold_every_planted_string(runs: dict) -> None:
    blob = b"".join(p.read_bytes() for p in runs["src"].glob("*.dcm"))
    for value in deid_fixture.PHI.values():
        assert value.encode() in blob, value


def test_no_label_or_overview_image_and_burned_in_annotation(runs: dict) -> None:
    kinds = []
    for ds in _datasets(runs["a"]).values():
        if ds.SOPClassUID == WSI:
            kinds.append(ds.ImageType[2])
            assert ds.BurnedInAnnotation == "NO"
    assert sorted(kinds) == ["VOLUME", "VOLUME"]
    source_kinds = sorted(
        d.ImageType[2] for d in _datasets(runs["src"]).values() if "ImageType" in d
    )
    assert "LABEL" in source_kinds and "OVERVIEW" in source_kinds


def test_tiles_are_byte_identical_to_the_source(runs: dict) -> None:
    record = json.loads((runs["tmp"] / "a.audit.json").read_text())
    compared = 0
    for source_name, out_name in record["files"].items():
        source = pydicom.dcmread(runs["src"] / source_name)
        out = pydicom.dcmread(runs["a"] / out_name)
        if "PixelData" in source:
            assert out.PixelData == source.PixelData
            assert out.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
            compared += 1
    assert compared == 2


def test_identity_removed_and_said(runs: dict) -> None:
    for ds in _datasets(runs["a"]).values():
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.DeidentificationMethod
        codes = [
            (c.CodeValue, c.CodingSchemeDesignator) for c in ds.DeidentificationMethodCodeSequence
        ]
        assert codes == [("113100", "DCM")]
        assert ds.LongitudinalTemporalInformationModified == "REMOVED"
        assert not [e for e in ds if e.tag.is_private and e.tag.group != 0x0077]


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_dciodvfy_reports_no_errors(runs: dict) -> None:
    for path in sorted(runs["a"].glob("*.dcm")):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        found = dicom3tools.errors(dicom3tools.dciodvfy(path))
        real = [f for f in found if dicom3tools.known_false_positive(f, ds) is None]
        assert real == [], (path.name, real)


def test_wsidicom_opens_one_slide_and_annotations_reference_new_uids(runs: dict) -> None:
    import wsidicom

    with wsidicom.WsiDicom.open(runs["a"]) as slide:
        assert len(slide.levels) == 2
        assert not slide.labels and not slide.overviews
        assert len(slide.annotations) == 1
    out = _datasets(runs["a"])
    src = _datasets(runs["src"])
    out_uids = {d.SOPInstanceUID for d in out.values()}
    src_uids = {d.SOPInstanceUID for d in src.values()}
    assert not out_uids & src_uids
    ann = next(d for d in out.values() if d.Modality == "ANN")
    ref = ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID
    assert ref in out_uids
    studies = {d.StudyInstanceUID for d in out.values()}
    assert len(studies) == 1 and not studies & {d.StudyInstanceUID for d in src.values()}


def test_same_key_same_bytes_other_key_other_uids(runs: dict) -> None:
    a = {p.name: p.read_bytes() for p in runs["a"].glob("*")}
    b = {p.name: p.read_bytes() for p in runs["b"].glob("*")}
    c = {p.name for p in runs["c"].glob("*")}
    assert a == b
    assert len(c) == len(a) and not c & set(a)  # names are the new SOP Instance UIDs


def test_audit_is_beside_and_re_identifies(runs: dict) -> None:
    audit_file = runs["tmp"] / "a.audit.json"
    assert audit_file.exists() and not list(runs["a"].glob("*.json"))
    record = json.loads(audit_file.read_text())
    src = _datasets(runs["src"])
    for source_name, out_name in record["files"].items():
        out = pydicom.dcmread(runs["a"] / out_name, stop_before_pixels=True)
        source = src[source_name]
        assert reidentify(record, out.SOPInstanceUID) == source.SOPInstanceUID
        assert reidentify(record, out.SeriesInstanceUID) == source.SeriesInstanceUID
        assert reidentify(record, out.PatientID) == deid_fixture.PHI["PatientID"]
        if out.SOPClassUID == WSI:
            assert reidentify(record, out.ContainerIdentifier) == source.ContainerIdentifier
            assert reidentify(record, out.BarcodeValue) == deid_fixture.PHI["BarcodeValue"]
            assert reidentify(record, out.PyramidUID) == source.PyramidUID
            assert reidentify(record, out.FrameOfReferenceUID) == source.FrameOfReferenceUID


def test_check_phi_finds_every_planted_string_before_and_none_after(runs: dict) -> None:
    before = run_cli("check", "--phi", runs["src"])
    assert before.returncode == 1
    for value in deid_fixture.PHI.values():
        assert value in before.stdout, value
    assert "LABEL" in before.stdout  # the label image, whose pixels show the name
    after = run_cli("check", "--phi", runs["a"])
    assert after.returncode == 0, after.stdout
    for value in _planted():
        assert value not in after.stdout


def test_options_retain_uids_and_modified_dates(runs: dict) -> None:
    tmp = runs["tmp"]
    dst = tmp / "opts"
    run_cli(
        "deidentify",
        runs["src"],
        dst,
        "--option",
        "retain-uids",
        "--option",
        "retain-modified-dates",
        "--key-file",
        tmp / "one.key",
        check=True,
    )
    src = {d.SOPInstanceUID: d for d in _datasets(runs["src"]).values()}
    for ds in _datasets(dst).values():
        assert ds.SOPInstanceUID in src  # Retain UIDs (E.3.9)
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        codes = {c.CodeValue for c in ds.DeidentificationMethodCodeSequence}
        assert codes == {"113100", "113107", "113110"}
        source = src[ds.SOPInstanceUID]
        if source.get("ContentDate"):
            assert ds.ContentDate != source.ContentDate and ds.ContentDate < source.ContentDate


def test_an_ome_tiff_is_de_identified_too(runs: dict) -> None:
    tmp = runs["tmp"]
    dst = tmp / "clean.ome.tiff"
    run_cli("deidentify", tmp / "carried.ome.tiff", dst, "--key-file", tmp / "one.key", check=True)
    data = dst.read_bytes()
    for value in deid_fixture.PHI.values():
        if value not in (deid_fixture.PHI["Private"], deid_fixture.PHI["InstitutionName"]):
            assert value.encode() not in data, value
    assert run_cli("check", "--phi", dst).returncode == 0
    assert run_cli("check", "--phi", tmp / "carried.ome.tiff").returncode == 1


def _pixel_data_by_level(folder: Path) -> dict[tuple, bytes]:
    out = {}
    for ds in _datasets(folder).values():
        if ds.SOPClassUID == WSI and ds.ImageType[2] == "VOLUME":
            out[(ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows)] = ds.PixelData
    return out


def test_convert_deidentify_writes_no_phi_and_the_same_tiles(runs: dict) -> None:
    tmp = runs["tmp"]
    dst = tmp / "converted_clean"
    proc = run_cli(
        "convert",
        "--pyramid",
        "keep",
        tmp / "phi.ome.tiff",
        dst,
        "--metadata",
        tmp / "phi.json",
        "--deidentify",
        "--key-file",
        tmp / "one.key",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp / "converted_clean.audit.json").exists()
    assert not [p for p in tmp.iterdir() if p.name.startswith(".deid.")]  # scratch removed
    blob = b"".join(p.read_bytes() for p in dst.iterdir())
    for value in ("PatientName", "PatientID", "AccessionNumber", "ImageName", "RoiText"):
        assert deid_fixture.PHI[value].encode() not in blob, value
    assert run_cli("check", "--phi", dst).returncode == 0
    plain = _pixel_data_by_level(tmp / "first_dicom")  # the same source converted plainly
    assert plain and _pixel_data_by_level(dst) == plain


def test_no_key_means_new_uids_each_run(runs: dict) -> None:
    tmp = runs["tmp"]
    run_cli("deidentify", runs["src"], tmp / "r1", check=True)
    run_cli("deidentify", runs["src"], tmp / "r2", check=True)
    assert not {p.name for p in (tmp / "r1").iterdir()} & {p.name for p in (tmp / "r2").iterdir()}
    assert json.loads((tmp / "r1.audit.json").read_text())["key"].startswith("random")


def test_clean_pixel_data_refuses_kept_labels(runs: dict) -> None:
    tmp = runs["tmp"]
    proc = run_cli(
        "deidentify", runs["src"], tmp / "k", "--option", "clean-pixel-data", "--labels", "keep"
    )
    assert proc.returncode == 2 and "Clean Pixel Data" in proc.stderr
    assert not (tmp / "k").exists() and not (tmp / "k.audit.json").exists()


def test_kept_labels_say_burned_in_annotation(runs: dict) -> None:
    tmp = runs["tmp"]
    run_cli("deidentify", runs["src"], tmp / "kl", "--labels", "keep", check=True)
    labels = [
        d for d in _datasets(tmp / "kl").values() if d.get("ImageType", [""] * 3)[2] == "LABEL"
    ]
    assert len(labels) == 1 and labels[0].BurnedInAnnotation == "YES"


def _norm(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum())


def test_the_profile_table_is_the_standard_s() -> None:
    """mappings/deid_profile.toml, regenerated from PS3.15 Table E.1-1: its rows name the
    attributes pydicom's PS3.6 dictionary names, and its source says the edition."""
    from pydicom.datadict import dictionary_description

    from bridge.tables import table

    data = table("deid_profile")
    assert data["source"]["edition"] and "E.1-1" in data["source"]["basic"]
    rows = data["attributes"]
    assert len(rows) > 600
    checked = 0
    for key, row in rows.items():
        if all(c in "0123456789abcdef" for c in key) and int(key, 16) >> 16 != 0:
            try:
                name = dictionary_description(int(key, 16))
            except KeyError:
                continue
            if row.get("removed_since"):
                continue
            assert _norm(row["name"]).startswith(_norm(name)[:8]), (key, row["name"], name)
            checked += 1
    assert checked > 500
    assert rows["00100010"]["basic"] == "Z" and rows["0020000d"]["basic"] == "U"
    for key, name in table("deid_uids")["uids"].items():  # the supplement: UIDs, not listed
        assert key not in rows and dictionary_description(int(key, 16)) == name


def test_pull_deidentify_gives_what_deidentify_gives(runs: dict, orthanc: Orthanc) -> None:
    """The PACS direction out: a study pulled with --deidentify is byte for byte the local
    de-identification of the same instances with the same key."""
    tmp = runs["tmp"]
    for path in sorted(runs["src"].glob("*.dcm")):
        orthanc.upload(path)
    study = pydicom.dcmread(runs["src"] / "level0.dcm", stop_before_pixels=True).StudyInstanceUID
    dst = tmp / "pulled_clean"
    proc = run_cli(
        *("pull", *server_args(orthanc, "dicomweb"), "--study", study, dst),
        *("--deidentify", "--key-file", tmp / "one.key"),
    )
    assert proc.returncode == 0, proc.stderr
    local = {p.name: p.read_bytes() for p in runs["a"].iterdir()}
    assert {p.name: p.read_bytes() for p in dst.iterdir()} == local
    assert (tmp / "pulled_clean.audit.json").exists()


def test_overview_redact_blanks_the_region_only(runs: dict) -> None:
    tmp = runs["tmp"]
    missing = run_cli("deidentify", runs["src"], tmp / "rx", "--overview", "redact")
    assert missing.returncode == 2 and "--label-region" in missing.stderr
    dst = tmp / "redacted"
    region = ("--label-region", "0,0,200,160")
    run_cli("deidentify", runs["src"], dst, "--overview", "redact", *region, check=True)
    overview = next(
        d for d in _datasets(dst).values() if d.get("ImageType", [""] * 3)[2] == "OVERVIEW"
    )
    source = pydicom.dcmread(runs["src"] / "macro.dcm").pixel_array
    pixels = overview.pixel_array
    assert pixels[:160, :200].max() == 0 and source[:160, :200].max() > 0
    assert (pixels[:, 200:] == source[:, 200:]).all() and (pixels[160:] == source[160:]).all()
    assert overview.BurnedInAnnotation == "NO"
    assert run_cli("check", "--phi", dst).returncode == 0


CORPUS_DICOM = [
    "highdicom__sm_image.dcm",
    "highdicom__sm_image_jpegls.dcm",
    "highdicom__sm_annotations.dcm",
    "pathml__small_dicom.dcm",
    "wsi-to-dicom-converter__jpeg2000.dicom",
    "openslide-python__boxes_0.dcm",
]


@pytest.mark.parametrize("name", CORPUS_DICOM)
def test_corpus_files_from_other_tools(corpus: Path, tmp_path: Path, name: str) -> None:
    """Files other tools wrote: no dciodvfy error that the source did not have, the same
    Pixel Data, nothing for ``check --phi``."""
    src = corpus / "dicom" / name
    dst = tmp_path / "out"
    run_cli("deidentify", src, dst, check=True)
    (out,) = list(dst.glob("*.dcm"))
    source, clean = pydicom.dcmread(src), pydicom.dcmread(out)
    assert clean.get("PixelData") == source.get("PixelData")
    assert clean.SOPInstanceUID != source.SOPInstanceUID and clean.PatientIdentityRemoved == "YES"
    if dicom3tools.available():
        before = {f.message for f in dicom3tools.errors(dicom3tools.dciodvfy(src))}
        after = {f.message for f in dicom3tools.errors(dicom3tools.dciodvfy(out))}
        assert after <= before, after - before
    assert run_cli("check", "--phi", dst).returncode == 0


def test_options_resolve_by_the_table_s_columns() -> None:
    """PS3.15 E.3 options change exactly what their Table E.1-1 column says."""
    from bridge.deid.profile import Options, action

    none = Options()

    def with_(*names: str) -> Options:
        return Options(frozenset(names))

    sex, serial, study_date, study_uid = 0x00100040, 0x00181000, 0x00080020, 0x0020000D
    assert action(sex, none) == "Z"
    assert action(sex, with_("retain-patient-characteristics")) == "K"
    assert action(serial, none) == "X/Z/D"
    assert action(serial, with_("retain-device-identity")) == "K"
    assert action(study_date, with_("retain-full-dates")) == "K"
    assert action(study_date, with_("retain-modified-dates")) == "C"
    assert action(study_uid, none) == "U"
    assert action(study_uid, with_("retain-uids")) == "K"
    assert action(0x00081030, with_("clean-descriptors")) == "C"  # Study Description
    assert action(0x00280010, none) is None  # Rows: not in the table, kept
    assert action(0x60024000, none) == "X"  # Overlay Comments, group 60xx
    concatenation_source = 0x00200242  # not in Table E.1-1: mappings/deid_uids.toml
    assert action(concatenation_source, none) == "U"
    assert action(concatenation_source, with_("retain-uids")) == "K"
    with pytest.raises(ValueError):
        Options(frozenset({"retain-everything"}))


def test_clean_descriptors_keeps_the_text_without_the_identity(runs: dict) -> None:
    tmp = runs["tmp"]
    dst = tmp / "described"
    key = ("--key-file", tmp / "one.key")
    run_cli("deidentify", runs["src"], dst, "--option", "clean-descriptors", *key, check=True)
    level = next(d for d in _datasets(dst).values() if d.get("ImageType", [""] * 3)[2] == "VOLUME")
    text = level.StudyDescription
    assert text.startswith("Biopsy of ") and "Smithwick" not in text and "Eleanor" not in text
    blob = b"".join(p.read_bytes() for p in dst.iterdir())
    for value in deid_fixture.PHI.values():
        assert value.encode() not in blob, value
    codes = {c.CodeValue for c in level.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105"}


def test_every_uid_role_is_replaced_consistently_across_instances() -> None:
    """Two parts of a concatenation: Study, Series, SOP Instance, Frame of Reference, Pyramid,
    Dimension Organization, Specimen, Concatenation (UID and source) and references all get
    new UIDs, the same in both parts; the SOP Class and coding scheme UIDs stay."""
    from pydicom.dataset import Dataset

    from bridge.deid.dataset import Cleaner
    from bridge.deid.profile import Options
    from bridge.deid.remap import Remapper

    def part(number: int) -> Dataset:
        ds = Dataset()
        ds.SOPClassUID = WSI
        ds.SOPInstanceUID = f"1.2.3.{number}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.100", "1.2.3.200"
        ds.FrameOfReferenceUID, ds.PyramidUID = "1.2.3.300", "1.2.3.400"
        ds.ConcatenationUID, ds.SOPInstanceUIDOfConcatenationSource = "1.2.3.500", "1.2.3.600"
        org = Dataset()
        org.DimensionOrganizationUID = "1.2.3.700"
        ds.DimensionOrganizationSequence = [org]
        specimen = Dataset()
        specimen.SpecimenUID, specimen.SpecimenIdentifier = "1.2.3.800", "S-99"
        ds.SpecimenDescriptionSequence = [specimen]
        ref = Dataset()
        ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = WSI, "1.2.3.1"
        ds.ReferencedImageSequence = [ref]
        return ds

    cleaner = Cleaner(Options(), Remapper(b"k" * 32))
    first, second = part(1), part(2)
    cleaner.clean(first)
    cleaner.clean(second)
    uids = [
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "PyramidUID",
        "ConcatenationUID",
        "SOPInstanceUIDOfConcatenationSource",
    ]
    for keyword in uids:
        assert first[keyword].value == second[keyword].value
        assert not first[keyword].value.startswith("1.2.3.")
    organization = first.DimensionOrganizationSequence[0].DimensionOrganizationUID
    assert organization == cleaner.remap.uid("1.2.3.700")
    specimen = first.SpecimenDescriptionSequence[0]
    assert specimen.SpecimenUID == cleaner.remap.uid("1.2.3.800")
    assert specimen.SpecimenIdentifier == cleaner.remap.identifier("S-99") != "S-99"
    ref = second.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == first.SOPInstanceUID
    assert ref.ReferencedSOPClassUID == WSI and first.SOPClassUID == WSI


def _acquisition_date(path: Path):
    import datetime as dt

    import tifffile

    ome = tifffile.tiffcomment(path)
    text = ome.split("<AcquisitionDate>")[1].split("</AcquisitionDate>")[0]
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_ome_dates_move_by_the_audited_shift(runs: dict) -> None:
    tmp = runs["tmp"]
    src, dst = tmp / "carried.ome.tiff", tmp / "shifted.ome.tiff"
    run_cli(
        *("deidentify", src, dst, "--option", "retain-modified-dates"),
        *("--key-file", tmp / "one.key"),
        check=True,
    )
    days = json.loads((tmp / "shifted.ome.tiff.audit.json").read_text())["date_shift_days"]
    assert days >= 365
    moved = _acquisition_date(src) - _acquisition_date(dst)
    assert abs(moved.total_seconds() - days * 86400) < 1


def test_check_phi_does_not_clear_what_it_cannot_read(tmp_path: Path) -> None:
    tiff = tmp_path / "cut.ome.tiff"
    tiff.write_bytes(b"II*\x00" + b"\xff" * 60)  # a TIFF header pointing nowhere
    dicom = tmp_path / "cut.dcm"
    dicom.write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\x40")
    for damaged in (tiff, dicom):
        proc = run_cli("check", "--phi", damaged)
        assert proc.returncode == 1 and "unreadable" in proc.stdout, proc.stdout
    missing = run_cli("check", "--phi", tmp_path / "absent")
    assert missing.returncode == 2 and "no such file" in missing.stderr


def test_a_damaged_instance_stops_deidentify_before_anything_is_written(
    runs: dict, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(runs["src"], folder)
    (folder / "cut.dcm").write_bytes(bytes(128) + b"DICM" + b"\x02\x00\x10\x00UI\x40")
    proc = run_cli("deidentify", folder, tmp_path / "out")
    assert proc.returncode == 2 and "cut.dcm" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed"]


def test_the_cleaned_ome_xml_keeps_no_dangling_reference() -> None:
    """Removed Experimenters and annotations take their references with them (OME keyrefs)."""
    import warnings

    import ome_types

    from bridge.deid.dataset import Cleaner
    from bridge.deid.omexml import clean_ome_xml
    from bridge.deid.profile import Options
    from bridge.deid.remap import Remapper

    ns = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
    pixels = (
        '<Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint8" SizeX="1" SizeY="1" '
        'SizeZ="1" SizeC="1" SizeT="1"><Channel ID="Channel:0:0"/></Pixels>'
    )
    xml = (
        f'<OME xmlns="{ns}"><Experimenter ID="Experimenter:0" LastName="Quimbyfield"/>'
        f'<Image ID="Image:0" Name="Smithwick"><ExperimenterRef ID="Experimenter:0"/>{pixels}'
        '<AnnotationRef ID="Annotation:T"/></Image><StructuredAnnotations>'
        '<TagAnnotation ID="Annotation:T"><Value>Smithwick</Value></TagAnnotation>'
        "</StructuredAnnotations></OME>"
    )
    clean = clean_ome_xml(xml, Cleaner(Options(), Remapper(b"k" * 32)))
    assert "Smithwick" not in clean and "Quimbyfield" not in clean
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ome = ome_types.from_xml(clean)
    assert not ome.experimenters and ome.images[0].name.startswith("DEID-")
