"""Helpers for the conformance tests (no tests here): run the suite, break files on purpose.

Broken files are always made from good ones - our own conversions (the ``cases`` fixture), a
PixelMed series, highdicom annotations, tifffile/libvips OME-TIFFs - by changing one thing with
pydicom or by rewriting the OME-XML, so a finding can be traced to exactly that change.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pydicom
import pytest
import samples
import tifffile
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames

from conformance.findings import Report, Severity
from conformance.runner import check

PIXELMED_JAR = Path("/usr/share/java/pixelmed.jar")
WSI_BASE_CASE = "tifffile-ycbcr420"  # pyramid of 3 levels + label, macro, thumbnail

_TMP = Path(tempfile.mkdtemp(prefix="omedicom-conformance-"))
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def run(*paths: Path | str, tools: bool = False, **kw) -> Report:
    """The suite through its Python entry point (the CLI is tested separately)."""
    return check([str(p) for p in paths], use_dicom3tools=tools, **kw)


def ids(
    report: Report, severity: Severity | None = Severity.ERROR, file: str | None = None
) -> set[str]:
    return {
        f.id
        for f in report.findings
        if (severity is None or f.severity is severity)
        and (file is None or (f.location.file or "").endswith(file))
    }


def copy_series(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit(path: Path, change: Callable[[Dataset], None]) -> Path:
    """Read a DICOM file completely, apply ``change``, write it back."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        change(ds)
        ds.save_as(path, enforce_file_format=True)
    return path


def broken_copy(
    series: Path, tmp: Path, name: str, change: Callable[[Dataset], None], label: str = "broken"
) -> Path:
    """A copy of ``series`` in which file ``name`` was changed."""
    out = copy_series(series, tmp / label)
    edit(out / name, change)
    return out


def frames(ds: Dataset) -> list[bytes]:
    return list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))


def set_frames(ds: Dataset, new: list[bytes]) -> None:
    """Replace the encapsulated frames (Number of Frames is left as it was)."""
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.PixelData = encapsulate(new)


def spacing(ds: Dataset) -> list[float]:
    return [
        float(v) for v in ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    ]


def set_spacing(ds: Dataset, row: float, col: float) -> None:
    ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing = [row, col]


def plane_positions(ds: Dataset, change: Callable[[list[Dataset]], None] | None = None) -> None:
    """Add a Per-frame Functional Groups item with Plane Position (Slide) for every frame, at the
    TILED_FULL positions; ``change`` may then move some."""
    nx = -(-int(ds.TotalPixelMatrixColumns) // int(ds.Columns))
    items = []
    for f in range(int(ds.NumberOfFrames)):
        pos = Dataset()
        pos.ColumnPositionInTotalImagePixelMatrix = (f % nx) * int(ds.Columns) + 1
        pos.RowPositionInTotalImagePixelMatrix = (f // nx) * int(ds.Rows) + 1
        pos.XOffsetInSlideCoordinateSystem = "0"
        pos.YOffsetInSlideCoordinateSystem = "0"
        pos.ZOffsetInSlideCoordinateSystem = "0"
        item = Dataset()
        item.PlanePositionSlideSequence = [pos]
        items.append(item)
    if change:
        change(items)
    ds.PerFrameFunctionalGroupsSequence = items


# -- PixelMed -----------------------------------------------------------------------------------


@functools.cache
def pixelmed_series() -> Path:
    """A libvips pyramid (main-chain pages, as PixelMed wants) converted by PixelMed TIFFToDicom
    into one file per level. Built once per test run."""
    if not PIXELMED_JAR.is_file() or shutil.which("java") is None or shutil.which("vips") is None:
        pytest.skip("PixelMed (Debian pixelmed-apps), Java or vips is not installed")
    work = _TMP / "pixelmed"
    work.mkdir()
    plain = work / "plain.tif"
    tifffile.imwrite(plain, samples.tissue(1000, 1200, seed=5), photometric="rgb")
    pyramid = work / "vips.tif"
    subprocess.run(
        [
            "vips", "tiffsave", str(plain), str(pyramid), "--tile", "--tile-width", "256",
            "--tile-height", "256", "--pyramid", "--compression", "jpeg", "--Q", "85",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (work / "summary.json").write_text("{}")
    out = work / "series"
    out.mkdir()
    # Usage (from running it without arguments): jsonfile inputFile outputFilePrefix [modality
    # [SOPClass ...]] ... [SPACINGMM spacingmm] [THICKNESSMM thickness]; one file per level.
    proc = subprocess.run(
        [
            "java", "-cp", str(PIXELMED_JAR), "com.pixelmed.convert.TIFFToDicom",
            str(work / "summary.json"), str(pyramid), str(out / "level"), "SM",
            "1.2.840.10008.5.1.4.1.1.77.1.6", "SPACINGMM", "0.0005", "THICKNESSMM", "0.001",
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    files = sorted(out.glob("level*.dcm"))
    if proc.returncode != 0 or len(files) < 3:
        raise AssertionError(
            f"PixelMed TIFFToDicom failed ({proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return out


# -- annotations (highdicom) ----------------------------------------------------------------------


def annotation_group(
    number: int, graphic_type: str, shapes: Iterable, measurements=None, label: str = "nuclei"
):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.ann.AnnotationGroup(
        number=number,
        uid=hd.UID(),
        label=label,
        annotated_property_category=codes.SCT.AnatomicalStructure,
        annotated_property_type=hd.sr.CodedConcept("84640000", "SCT", "Nucleus"),
        algorithm_type=hd.ann.AnnotationGroupGenerationTypeValues.MANUAL,
        graphic_type=getattr(hd.ann.GraphicTypeValues, graphic_type),
        graphic_data=[np.asarray(s, dtype=np.float64) for s in shapes],
        measurements=(
            [
                hd.ann.Measurements(
                    name=codes.SCT.Area,
                    unit=codes.UCUM.SquareMicrometer,
                    values=np.asarray(measurements, float),
                )
            ]
            if measurements is not None
            else None
        ),
    )


def write_annotations(image: Path, out: Path, groups: list, coordinate_type: str = "2D") -> Path:
    """Microscopy Bulk Simple Annotations written by highdicom, referencing ``image``."""
    import highdicom as hd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = pydicom.dcmread(image, stop_before_pixels=True)
        extra = {"pixel_origin_interpretation": "VOLUME"} if coordinate_type == "2D" else {}
        ann = hd.ann.MicroscopyBulkSimpleAnnotations(
            source_images=[source],
            annotation_coordinate_type=coordinate_type,
            annotation_groups=groups,
            series_instance_uid=hd.UID(),
            series_number=20,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="omedicom tests",
            manufacturer_model_name="conformance",
            software_versions="1",
            device_serial_number="1",
            **extra,
        )
        ann.save_as(out)
    return out


def slide_mm(image: Path, points_px: np.ndarray) -> np.ndarray:
    """Level pixel (column, row) -> slide (x, y) mm for ``image`` (PS3.3 C.8.12.14, corner of
    pixel 1\\1 at the origin)."""
    ds = pydicom.dcmread(image, stop_before_pixels=True)
    origin = ds.TotalPixelMatrixOriginSequence[0]
    o = np.array(
        [float(origin.XOffsetInSlideCoordinateSystem), float(origin.YOffsetInSlideCoordinateSystem)]
    )
    r = np.array([float(v) for v in ds.ImageOrientationSlide[:2]])
    c = np.array([float(v) for v in ds.ImageOrientationSlide[3:5]])
    row_sp, col_sp = spacing(ds)
    pts = np.asarray(points_px, float)
    return o + np.outer(pts[:, 0] * col_sp, r) + np.outer(pts[:, 1] * row_sp, c)


# -- OME-TIFF -------------------------------------------------------------------------------------


def ome_xml(path: Path) -> str:
    with tifffile.TiffFile(path) as tf:
        return tf.pages[0].description


def set_ome_xml(path: Path, change: Callable[[str], str]) -> Path:
    """Rewrite the OME-XML of IFD 0 (tifffile.tiffcomment) after ``change``."""
    xml = change(ome_xml(path))
    tifffile.tiffcomment(path, xml.encode("utf-8"))
    return path


def add_rois(xml: str, shapes: str, image_index: int = 0) -> str:
    """Insert ``<ROI ID="ROI:1"><Union>shapes</Union></ROI>`` and its ROIRef in Image
    ``image_index``."""
    roi = f'<ROI ID="ROI:1"><Union>{shapes}</Union></ROI>'
    close_image = xml.index("</Image>")
    for _ in range(image_index):
        close_image = xml.index("</Image>", close_image + 1)
    xml = xml[:close_image] + '<ROIRef ID="ROI:1"/>' + xml[close_image:]
    return xml.replace("</OME>", roi + "</OME>")


def test_known_false_positive_on_a_header_with_an_unknown_vr() -> None:
    """A bit-flipped header (SOP Class UID with VR 'UH', a fuzz finding) cannot confirm a
    known issue: no match, instead of pydicom's NotImplementedError inside `check`."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    from conformance import dicom3tools
    from conformance.findings import Finding

    ds = pydicom.Dataset()
    ds[0x00080016] = RawDataElement(Tag(0x00080016), "UH", 8, b"1.2.3.4\x00", 0, True, True)
    with pytest.raises(NotImplementedError):
        _ = ds.SOPClassUID  # what reading it does
    issue = dicom3tools.KNOWN_FALSE_POSITIVES[0]
    finding = Finding(
        id="TOOL-dciodvfy", severity="Error", message=issue.pattern.pattern, tool=issue.tool
    )
    assert dicom3tools.known_false_positive(finding, ds) is None
