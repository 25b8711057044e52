"""``omedicom annotations export``: a slide's annotations as QuPath GeoJSON or OME-XML ROIs.

Reads the annotations directly, whichever format the slide is in: the OME-XML ROIs of an
OME-TIFF (read with tifffile), or the Microscopy Bulk Simple Annotations instances of a DICOM
folder (read with highdicom, related to the folder's whole-slide images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError, OutputError
from ..model import AnnotationGroup

EXPORT_HELP = """\
Write the annotations of a slide out as QuPath GeoJSON or as OME-XML ROIs.

SLIDE is an OME-TIFF (its OME-XML ROIs are read) or a DICOM folder or file (its Microscopy
Bulk Simple Annotations instances are read and related to the slide's images; 3D coordinates
in mm are mapped back to pixels). Coordinates are level-0 pixels, x = column, y = row, with
(0, 0) the top-left corner of the top-left pixel.

--format geojson    a FeatureCollection as QuPath exports it (File > Import objects reads it):
                    Point, LineString, Polygon, Multi* geometries, classification name and
                    colour, measurements. Rectangles and ellipses are closed Polygons; their
                    exact corners and axes travel in "omedicom:" properties QuPath ignores.
--format ome-xml    an OME 2016-06 document with one ROI per annotation (Point, Line,
                    Polyline, Polygon, Rectangle, Ellipse), group codes and measurements in
                    MapAnnotations.

OME Mask and Label shapes have no counterpart in either output and are named in a warning.

examples:
  omedicom annotations export slide.ome.tiff --format geojson -o slide.geojson
  omedicom annotations export slide_dicom/ --format ome-xml -o rois.ome.xml
  omedicom annotations export slide_dicom/ | jq '.features | length'

exit codes: 0 done (also when the slide has no annotations: the output is then empty);
2 the slide cannot be read; 4 the output cannot be written.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    top = subparsers.add_parser(
        "annotations",
        help="export a slide's annotations (QuPath GeoJSON, OME-XML ROIs)",
        description="Work with the annotations of a slide (OME ROIs, DICOM Bulk Annotations).",
    )
    sub = top.add_subparsers(dest="annotations_command", metavar="ACTION", required=True)
    export = sub.add_parser(
        "export",
        help="write the annotations out as GeoJSON or OME-XML",
        description=EXPORT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("slide", metavar="SLIDE", help="an OME-TIFF, or a DICOM folder or file")
    export.add_argument(
        "--format", choices=["geojson", "ome-xml"], default="geojson", help="default: geojson"
    )
    export.add_argument(
        "-o", "--output", metavar="OUT", help="output file (default: standard output)"
    )
    export.add_argument("--overwrite", action="store_true", help="replace OUT if it exists already")
    export.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .. import __version__
    from . import geojson, ome_rois

    slide = Path(args.slide)
    groups, warnings = read_slide_annotations(slide)
    for warning in warnings:
        print(f"omedicom: warning: {warning}", file=sys.stderr)
    out = Path(args.output) if args.output and args.output != "-" else None
    if out is not None and out.exists() and not args.overwrite:
        raise OutputError("exists already", path=out, hint="pass --overwrite to replace it")
    if args.format == "geojson":
        if out is None:
            geojson.write_geojson(groups, sys.stdout)
        else:
            geojson.write_geojson(groups, out)
    else:
        text = ome_rois.ome_document(groups, f"omedicom {__version__}")
        if out is None:
            sys.stdout.write(text)
        else:
            _write_text(out, text)
    count = sum(g.count for g in groups)
    if out is not None:
        print(f"wrote {count} annotation(s) in {len(groups)} group(s) to {out}", file=sys.stderr)
    return 0


def _write_text(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write ({exc.strerror})", path=path) from None


def read_slide_annotations(
    slide: Path,
) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    """Annotation groups of an OME-TIFF or a DICOM folder/file, without converting it."""
    if not slide.exists():
        raise InputError("no such file or folder", path=slide)
    if slide.is_file():
        with open(slide, "rb") as fh:
            head = fh.read(132)
        if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            return _from_ome_tiff(slide)
        if head[128:132] != b"DICM":
            raise InputError(
                "neither a TIFF nor a DICOM file",
                hint="give an OME-TIFF, a DICOM folder or one of its files",
            )
    return _from_dicom(slide)


def _pyramid_index(xml: str) -> int:
    """Index of the first OME Image that is not a label, macro or thumbnail."""
    from .. import tables
    from ..ometiff import omexml

    try:
        images = omexml.parse(xml).images
    except Exception:
        return 0
    for index, image in enumerate(images):
        if tables.associated_kind(image.name) is None:
            return index
    return 0


def _from_ome_tiff(path: Path) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    import tifffile

    from . import ome_rois

    try:
        with tifffile.TiffFile(path) as tif:
            xml = tif.pages.first.description if tif.pages else ""
    except (tifffile.TiffFileError, OSError, ValueError) as exc:
        raise InputError(f"cannot read the TIFF ({exc})", path=path) from None
    if "<OME" not in (xml or "")[:4096] and "<ome:OME" not in (xml or "")[:4096]:
        raise InputError(
            "the TIFF has no OME-XML, so it has no OME ROIs",
            path=path,
            hint="give an OME-TIFF or a DICOM folder",
        )
    return ome_rois.rois_from_ome_xml(xml, _pyramid_index(xml))


def _from_dicom(slide: Path) -> tuple[tuple[AnnotationGroup, ...], tuple[str, ...]]:
    from pydicom import dcmread
    from pydicom.errors import InvalidDicomError

    from . import dicom_ann

    folder = slide if slide.is_dir() else slide.parent
    anns: list[Path] = []
    images = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError, EOFError):
            continue
        sop_class = str(ds.get("SOPClassUID", ""))
        if sop_class == dicom_ann.ANN_SOP_CLASS:
            if slide.is_dir() or path == slide:
                anns.append(path)
        elif "TotalPixelMatrixColumns" in ds and "VOLUME" in list(ds.get("ImageType", []))[2:3]:
            images.append(ds)
    if not anns:
        return (), (f"{slide}: no Microscopy Bulk Simple Annotations instance found",)
    if not images:
        raise InputError(
            "the annotations refer to whole-slide images that are not in the folder",
            path=folder,
            hint="put the annotation instances and the slide's images in one folder",
        )
    groups: list[AnnotationGroup] = []
    warnings: list[str] = []
    by_uid = {str(d.SOPInstanceUID): d for d in images}
    for path in anns:
        ann = dcmread(
            path,
            stop_before_pixels=True,
            specific_tags=[
                "ReferencedImageSequence",
                "FrameOfReferenceUID",
                "AnnotationCoordinateType",
            ],
        )
        refs = ann.get("ReferencedImageSequence") or []
        ref = by_uid.get(str(refs[0].ReferencedSOPInstanceUID)) if refs else None
        frame = (
            str(ref.get("FrameOfReferenceUID", ""))
            if ref is not None
            else str(ann.get("FrameOfReferenceUID", ""))
        )
        pyramid = [d for d in images if str(d.get("FrameOfReferenceUID", "")) == frame] or images
        found, warned = dicom_ann.read_dicom_annotations([path], pyramid)
        groups.extend(found)
        warnings.extend(warned)
    return tuple(groups), tuple(warnings)
