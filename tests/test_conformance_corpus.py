"""Every file of the shared corpus (``dicom/`` and ``ome-tiff/``) checked, with its verdict
recorded: the set of check ids that report errors. A change in any verdict fails here - fix the
check or update the table on purpose, saying why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_conformance_support import ids, run

from conformance import dicom3tools
from conformance.findings import Severity

#: file -> check ids with errors (dciodvfy findings: "TOOL-dciodvfy"). Why each fails:
EXPECTED: dict[str, set[str]] = {
    # dciodvfy: LABELMAP SegmentNumber 0 (its "Information Object Not found" is a marked false
    # positive: the 2024 SOP Class is newer than the tool)
    "dicom/highdicom__seg_image_sm_control_labelmap_palette_color.dcm": {"TOOL-dciodvfy"},
    # dciodvfy: Patient Orientation (Type 2C) missing
    "dicom/highdicom__seg_image_sm_dots.dcm": {"TOOL-dciodvfy"},
    # written by an older highdicom: Annotation Applies To All Z Planes in a 2D group (highdicom
    # 0.28 no longer writes it); the Common Z message of dciodvfy is a marked false positive
    "dicom/highdicom__sm_annotations.dcm": {"ANN-common-z", "TOOL-dciodvfy"},
    "dicom/highdicom__sm_image.dcm": set(),
    # dciodvfy: 16-bit Pixel Data as OB, Planar Configuration with one sample, no Presentation
    # LUT Shape / Rescale, MediaStorageSOPInstanceUID != SOPInstanceUID (our checks find nothing)
    "dicom/highdicom__sm_image_grayscale.dcm": {"TOOL-dciodvfy"},
    "dicom/highdicom__sm_image_jpegls.dcm": set(),
    # PixelMed without THICKNESSMM: Imaged Volume Depth 0 (and Slice Thickness 0 for dciodvfy)
    "dicom/openslide-python__boxes_0.dcm": {"TOOL-dciodvfy", "WSI-imaged-volume"},
    "dicom/openslide-python__boxes_1.dcm": {"TOOL-dciodvfy", "WSI-imaged-volume"},
    # non-conformant: no Image Type, Pixel Spacing, Frame of Reference or frame positions;
    # over-long UI/LO/PN, DA with dashes
    "dicom/pathml__small_dicom.dcm": {
        "DICOM-value-length",
        "TOOL-dciodvfy",
        "WSI-frame-of-reference",
        "WSI-image-type",
        "WSI-spacing",
        "WSI-tile-grid",
    },
    # minimal metadata: TILED_FULL without Focal Planes / Optical Paths, no Imaged Volume Depth,
    # no origin
    "dicom/wsi-to-dicom-converter__jpeg.dicom": {
        "TOOL-dciodvfy",
        "WSI-frame-count",
        "WSI-imaged-volume",
        "WSI-origin",
    },
    "dicom/wsi-to-dicom-converter__jpeg2000.dicom": {
        "TOOL-dciodvfy",
        "WSI-frame-count",
        "WSI-imaged-volume",
        "WSI-origin",
    },
    "ome-tiff/aicsimageio__s_1_t_1_c_1_z_1.ome.tiff": set(),
    "ome-tiff/bioformats2raw__mini-flim-moduloC.ome.tiff": set(),
    "ome-tiff/libvips__multi-channel-z-series.ome.tif": set(),
    "ome-tiff/ome-model__2010-06_6x4y1z1t1c8b-swatch-1s1p4w2ws.ome.tiff": set(),
    "ome-tiff/ome-model__2010-06_6x4y1z1t3c8b-swatch-ROI.ome.tiff": set(),
    "ome-tiff/omero-cli-transfer__test_pyramid.ome.tif": set(),
    "ome-tiff/qupath__cells-2c.ome.tif": set(),
    "ome-tiff/qupath__cells.ome.tif": set(),
    "ome-tiff/viv__companion-multifile/multifile-Z1.ome.tiff": set(),
    "ome-tiff/viv__companion-multifile/multifile-Z2.ome.tiff": set(),
    "ome-tiff/viv__companion-multifile/multifile-Z3.ome.tiff": set(),
    "ome-tiff/viv__companion-multifile/multifile-Z4.ome.tiff": set(),
    "ome-tiff/viv__companion-multifile/multifile-Z5.ome.tiff": set(),
    "ome-tiff/viv__companion-multifile/multifile.companion.ome": set(),
    "ome-tiff/viv__multi-channel.ome.tif": set(),
}


def _corpus_files(corpus: Path) -> list[str]:
    found = []
    for folder in ("dicom", "ome-tiff"):
        found += [
            p.relative_to(corpus).as_posix() for p in (corpus / folder).rglob("*") if p.is_file()
        ]
    return sorted(found)


def test_the_table_covers_every_corpus_file(corpus: Path) -> None:
    assert _corpus_files(corpus) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_verdict(corpus: Path, name: str) -> None:
    report = run(corpus / name, tools=True)
    expected = set(EXPECTED[name])
    if not dicom3tools.available():
        expected.discard("TOOL-dciodvfy")
    assert ids(report) == expected, [f for f in report.findings if f.severity is Severity.ERROR]
    assert report.exit_code == (1 if expected else 0)
    assert "SUITE-check-failed" not in ids(report, None)


@pytest.mark.skipif(not dicom3tools.available(), reason="dicom3tools is not installed")
def test_known_false_positives_in_the_corpus_are_marked(corpus: Path) -> None:
    labelmap = run(
        corpus / "dicom" / "highdicom__seg_image_sm_control_labelmap_palette_color.dcm", tools=True
    )
    (not_found,) = [f for f in labelmap.findings if f.message == "Information Object Not found"]
    assert (
        not_found.severity is Severity.WARNING
        and "Supplement 243" in not_found.known_false_positive.source
    )
    ann = run(corpus / "dicom" / "highdicom__sm_annotations.dcm", tools=True)
    marked = [f for f in ann.findings if f.known_false_positive]
    assert any("CommonZCoordinateValue" in f.message for f in marked)
    specimen = [f for f in marked if f.message.startswith("</SpecimenDescriptionSequence")]
    assert specimen and all(f.severity is Severity.INFO for f in specimen)  # were warnings
    real = [f for f in ann.findings if "AnnotationAppliesToAllZPlanes" in f.message and f.tool]
    assert real and real[0].severity is Severity.ERROR and real[0].known_false_positive is None


def test_multi_file_set_with_a_file_missing(corpus: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(corpus / "ome-tiff" / "viv__companion-multifile", tmp_path / "set")
    (folder / "multifile-Z3.ome.tiff").unlink()
    report = run(folder / "multifile.companion.ome")
    assert ids(report) == {"OME-tiffdata", "OME-ifd-count"}
    assert any("multifile-Z3.ome.tiff" in f.message for f in report.findings)


def test_annotations_checked_with_their_image(corpus: Path) -> None:
    """Checked as one set, the highdicom annotation resolves its referenced image: the warning
    about an unverifiable reference goes away, and the coordinates are checked."""
    dicom = corpus / "dicom"
    alone = run(dicom / "highdicom__sm_annotations.dcm")
    assert "ANN-referenced-image" in ids(alone, Severity.WARNING)
    together = run(dicom / "highdicom__sm_annotations.dcm", dicom / "highdicom__sm_image.dcm")
    assert "ANN-referenced-image" not in ids(together, None)
    assert ids(together) == {"ANN-common-z"}
