"""Annotations both ways: OME ROIs, DICOM Microscopy Bulk Simple Annotations, QuPath GeoJSON.

The neutral form is :class:`bridge.model.AnnotationGroup` (flat numpy arrays, level-0 pixels,
x = column, y = row, corner origin). Integration points for the readers and writers:

* :func:`rois_from_ome_xml` — OME-TIFF reader: the ROIs of one OME Image, plus warnings for
  shapes with no DICOM counterpart (Mask, Label);
* :func:`write_dicom_annotations` — DICOM writer, after ``level0.dcm``: one ANN instance;
* :func:`read_dicom_annotations` — DICOM reader: the ANN instances of a slide's folder;
* :func:`insert_rois` (or :func:`add_rois_to_ome` for an ``ome_types.OME``) — OME-TIFF writer;
* :func:`read_geojson` / :func:`write_geojson` — QuPath GeoJSON files.
"""

from .dicom_ann import (
    ANN_SOP_CLASS,
    WrittenAnnotations,
    read_dicom_annotations,
    write_dicom_annotations,
)
from .geojson import read_geojson, write_geojson
from .ome_rois import add_rois_to_ome, has_rois, insert_rois, ome_document, rois_from_ome_xml

__all__ = [
    "ANN_SOP_CLASS",
    "WrittenAnnotations",
    "add_rois_to_ome",
    "has_rois",
    "insert_rois",
    "ome_document",
    "read_dicom_annotations",
    "read_geojson",
    "rois_from_ome_xml",
    "write_dicom_annotations",
    "write_geojson",
]
