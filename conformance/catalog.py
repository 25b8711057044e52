"""Every check the suite runs: its stable id, what it verifies and the rule it comes from.

Ids are ``AREA-name``. They are part of the JSON report's contract: never rename one; add a new
id instead. ``G1``... in the descriptions refer to the invariants of MAPPING.md section 5.
"""

from __future__ import annotations

from dataclasses import dataclass

from .findings import Finding, KnownFalsePositive, Location, Severity


@dataclass(frozen=True)
class Check:
    id: str
    area: str
    reference: str
    summary: str


_CHECKS = (
    # -- inputs ---------------------------------------------------------------------------------
    Check(
        "INPUT-unreadable",
        "input",
        "PS3.10 7.1 (DICOM File Format); TIFF 6.0 section 2",
        "A path does not exist, or a file that looks like DICOM or TIFF cannot be parsed "
        "(exit code 2).",
    ),
    Check(
        "INPUT-skipped",
        "input",
        "PS3.10 7.1",
        "A file in a folder is neither DICOM nor TIFF and was not checked (info).",
    ),
    Check(
        "SUITE-check-failed",
        "input",
        "-",
        "A check could not run on this file (the file is too damaged for it); the message "
        "names the check and the cause.",
    ),
    # -- DICOM, any SOP class -----------------------------------------------------------------
    Check(
        "DICOM-ds-length",
        "dicom",
        "PS3.5 6.2 (DS: at most 16 bytes)",
        "Every Decimal String value, in every sequence item, is at most 16 characters (G15).",
    ),
    Check(
        "DICOM-value-length",
        "dicom",
        "PS3.5 6.2 (value length limits per VR)",
        "Values of length-limited VRs (AE, AS, CS, DA, DT, IS, LO, PN, SH, TM, UI) are within "
        "their maximum length (G15).",
    ),
    Check(
        "DICOM-pixel-data",
        "dicom",
        "PS3.5 A.4 (encapsulation), 8.1.1 (native Pixel Data)",
        "Pixel Data holds Number of Frames frames: encapsulated items parse up to the "
        "sequence delimiter, Basic/Extended Offset Tables point at items (G13); native data "
        "is Rows x Columns x Samples x Bits Allocated / 8 bytes per frame.",
    ),
    Check(
        "DICOM-sop-class",
        "dicom",
        "PS3.4 B.5 (Standard SOP Classes)",
        "The SOP Class is neither VL Whole Slide Microscopy Image nor Microscopy Bulk Simple "
        "Annotations: only the generic checks and dicom3tools apply (info).",
    ),
    # -- DICOM VL Whole Slide Microscopy Image --------------------------------------------------
    Check(
        "WSI-frame-count",
        "wsi",
        "PS3.3 C.7.6.17.3 (TILED_FULL)",
        "TILED_FULL: Number of Frames (summed over a concatenation) = tile columns x tile rows "
        "x Total Pixel Matrix Focal Planes x Number of Optical Paths (G4); TILED_SPARSE: one "
        "Per-frame Functional Groups item per frame.",
    ),
    Check(
        "WSI-tile-grid",
        "wsi",
        "PS3.3 C.7.6.17.3, C.8.12.14",
        "Rows, Columns and Total Pixel Matrix Columns/Rows are present and positive, the "
        "frame positions are defined (TILED_FULL, or Plane Position (Slide) per frame) and "
        "any explicit TILED_FULL positions equal the implied tile grid, which covers the total "
        "pixel matrix (G3, G5).",
    ),
    Check(
        "WSI-sparse-positions",
        "wsi",
        "PS3.3 C.7.6.17.3, C.8.12.14 (Plane Position (Slide))",
        "TILED_SPARSE: every frame's Column/Row Position In Total Image Pixel Matrix lies "
        "inside the matrix, and no two frames of one focal plane and optical path overlap (G5).",
    ),
    Check(
        "WSI-spacing",
        "wsi",
        "PS3.3 C.7.6.16.2.1 (Pixel Measures), C.8.12.4.1.3",
        "Each level's Pixel Spacing equals the base level's spacing times the size ratio "
        "(row spacing with rows, column spacing with columns), within the rounding of the level "
        "size and of the stored DS text (G1).",
    ),
    Check(
        "WSI-physics-magnification",
        "wsi",
        "PS3.3 C.8.12.5 (Objective Lens Power), C.7.6.16.2.1 (Pixel Spacing); s = p / M",
        "The base level's column Pixel Spacing fits the first Objective Lens Power: with the "
        "sensor pixel unknown, the typical 0.25 µm at 40× with a plausibility band of 0.25-3× "
        "(warning outside); a 10× mismatch is an error (a value in the wrong unit).",
    ),
    Check(
        "WSI-physics-z",
        "wsi",
        "PS3.3 C.7.6.16.2.1 (Spacing Between Slices), C.8.12.2 (Z Offset)",
        "Spacing Between Slices agrees with the median step of the base level's Z Offsets "
        "(focal planes in separate instances): more than 15% off is a warning, 10× an error.",
    ),
    Check(
        "WSI-imaged-volume",
        "wsi",
        "PS3.3 C.8.12.4.1.2 (Imaged Volume Width, Height, Depth)",
        "Imaged Volume Width, Height and Depth are present, identical on every level of the "
        "pyramid, and Depth is not 0 (G2).",
    ),
    Check(
        "WSI-extent",
        "wsi",
        "PS3.3 C.8.12.4.1.2, C.8.12.4.1.3",
        "Each level's Total Pixel Matrix Columns x column spacing (and Rows x row spacing) "
        "equals Imaged Volume Width (Height) within one pixel of that level (G2).",
    ),
    Check(
        "WSI-origin",
        "wsi",
        "PS3.3 C.8.12.14 (Total Pixel Matrix Origin Sequence)",
        "Every level of a pyramid has the same Total Pixel Matrix Origin, within half a pixel "
        "of the coarser level (G7).",
    ),
    Check(
        "WSI-orientation",
        "wsi",
        "PS3.3 C.8.12.14 (Image Orientation (Slide))",
        "Image Orientation (Slide) has six values, unit row and column vectors that are "
        "orthogonal, and is the same on every level (G7).",
    ),
    Check(
        "WSI-frame-of-reference",
        "wsi",
        "PS3.3 A.32.8.3 (Frame of Reference usage), C.7.4.1",
        "VOLUME and THUMBNAIL images have a Frame of Reference UID, and all images of one "
        "pyramid share one (G10).",
    ),
    Check(
        "WSI-pyramid-uid",
        "wsi",
        "PS3.3 C.7.11.1 (Multi-Resolution Pyramid)",
        "The levels of one pyramid share one Pyramid UID: no VOLUME image of a series that uses "
        "Pyramid UIDs lacks one, and levels that form one pyramid (same Frame of Reference and "
        "extent, distinct sizes) are not split across Pyramid UIDs (G10).",
    ),
    Check(
        "WSI-study-patient",
        "wsi",
        "PS3.3 C.7.1.1 (Patient), C.7.2.1 (General Study), C.7.3.1 (General Series)",
        "All images of a pyramid belong to one Patient (Patient ID, Patient's Name), one Study "
        "and one Series (G10).",
    ),
    Check(
        "WSI-focal-planes",
        "wsi",
        "PS3.3 C.8.12.4 (Total Pixel Matrix Focal Planes), C.7.6.16.2.1 (Spacing Between "
        "Slices), C.7.6.17.3",
        "Where TILED_FULL claims several focal planes, Spacing Between Slices is present and "
        "positive, and explicit Z offsets (if any) are that many distinct planes, increasing and "
        "evenly spaced by it (G8).",
    ),
    Check(
        "WSI-image-type",
        "wsi",
        "PS3.3 C.8.12.4.1.1 (Image Type), A.32.8.3, C.8.12.6.1 (Frame Type)",
        "Image Type has four values ORIGINAL|DERIVED, PRIMARY, a flavour (VOLUME, LABEL, "
        "OVERVIEW, THUMBNAIL) and NONE|RESAMPLED; LABEL and OVERVIEW images carry no Pyramid "
        "UID; the base level is not RESAMPLED and lower levels are; Frame Type repeats Image "
        "Type (G10).",
    ),
    Check(
        "WSI-frame-decode",
        "wsi",
        "PS3.3 C.7.6.3 (Rows, Columns, Samples per Pixel); PS3.5 8.2, A.4",
        "Frames decode (imagecodecs) to Rows x Columns x Samples per Pixel; by default the "
        "first, middle and last frame of each instance, every frame with --deep.",
    ),
    # -- DICOM Microscopy Bulk Simple Annotations ----------------------------------------------
    Check(
        "ANN-structure",
        "ann",
        "PS3.3 C.37.1.2 (Microscopy Bulk Simple Annotations Module)",
        "Annotation Coordinate Type is 2D or 3D; groups are numbered 1..n; each group has a "
        "Graphic Type, a Number of Annotations and exactly one of Point Coordinates Data / "
        "Double Point Coordinates Data, with a whole number of points (G14).",
    ),
    Check(
        "ANN-coordinates",
        "ann",
        "PS3.3 C.37.1.2 (Point Coordinates Data), C.10.4 (Displayed Area)",
        "2D coordinates lie in [0, Total Pixel Matrix Columns] x [0, Rows] of the referenced "
        "image; 3D coordinates (mm, slide frame) lie inside the imaged volume of the images of "
        "the same Frame of Reference (G14).",
    ),
    Check(
        "ANN-point-count",
        "ann",
        "PS3.3 C.37.1.2.1 (Graphic Type)",
        "POINT has 1 point, RECTANGLE and ELLIPSE 4, POLYLINE at least 2, POLYGON at least 3 "
        "and does not repeat its first point; Number of Annotations agrees with the points "
        "(G14).",
    ),
    Check(
        "ANN-point-index",
        "ann",
        "PS3.3 C.37.1.2 (Long Primitive Point Index List)",
        "POLYLINE/POLYGON groups have a Long Primitive Point Index List with one 1-based entry "
        "per annotation, starting at 1, strictly increasing, each at the start of a point, "
        "inside the coordinate data (G14).",
    ),
    Check(
        "ANN-referenced-image",
        "ann",
        "PS3.3 C.37.1.2 (Referenced Image Sequence), C.7.4.1",
        "A 2D annotation references exactly one image, which is among the checked files "
        "(else a warning) and is a VOLUME image of the same Frame of Reference.",
    ),
    Check(
        "ANN-common-z",
        "ann",
        "PS3.3 C.37.1.2 (Common Z Coordinate Value, Annotation Applies To All Z Planes)",
        "Common Z Coordinate Value and Annotation Applies To All Z Planes appear only in 3D "
        "annotations; a 3D group whose points all share one Z factors it into Common Z.",
    ),
    Check(
        "ANN-measurements",
        "ann",
        "PS3.3 C.37.1.2 (Measurements Sequence)",
        "Each measurement has one Floating Point Value per annotation, or one per entry of its "
        "Annotation Index List, whose 1-based indices are increasing and within Number of "
        "Annotations.",
    ),
    # -- OME-TIFF -----------------------------------------------------------------------------
    Check(
        "OME-xml",
        "ome",
        "OME-TIFF specification (ImageDescription of the first IFD; BinaryOnly)",
        "The first IFD's ImageDescription holds a well-formed OME-XML document (or a "
        "BinaryOnly pointer to a readable metadata file).",
    ),
    Check(
        "OME-schema",
        "ome",
        "ome-2016-06.xsd (OME/2016-06 schema)",
        "The OME-XML validates against the 2016-06 XSD (older namespaces are first upgraded "
        "with the OME XSLT transforms, and the upgrade is reported) (G9).",
    ),
    Check(
        "OME-size",
        "ome",
        "OME Pixels/@SizeX, @SizeY; OME-TIFF specification (TIFF structure overrides XML)",
        "Each Image's SizeX/SizeY equal the width/length of the first IFD its TiffData references.",
    ),
    Check(
        "OME-ifd-count",
        "ome",
        "OME Pixels/TiffData; OME-TIFF specification (TiffData)",
        "The planes TiffData maps for an Image number SizeZ x SizeC x SizeT / SamplesPerPixel, "
        "and the file holds no main-chain IFD that no Image references (G9).",
    ),
    Check(
        "OME-tiffdata",
        "ome",
        "OME TiffData/@IFD, @FirstZ, @FirstC, @FirstT, @PlaneCount, UUID/@FileName",
        "TiffData references are in range: IFDs exist in the referenced file (found by UUID or "
        "FileName next to it), First Z/C/T are below SizeZ/C/T, no plane is mapped twice (G9).",
    ),
    Check(
        "OME-subifd-levels",
        "ome",
        "OME-TIFF specification, Sub-resolutions (SubIFDs tag 330, NewSubfileType 1)",
        "SubIFD levels strictly shrink, with the same factor in X and Y and a constant factor "
        "between levels (warnings), every plane has the same levels, and sub-resolutions are "
        "marked NewSubfileType 1 (G9).",
    ),
    Check(
        "OME-physical-size",
        "ome",
        "OME Pixels/@PhysicalSizeX, @PhysicalSizeY (PositiveFloat, UnitsLength)",
        "PhysicalSizeX and PhysicalSizeY are present (warning when absent), positive, and in a "
        "physical length unit.",
    ),
    Check(
        "OME-physics-magnification",
        "ome",
        "OME Objective NominalMagnification/CalibratedMagnification, Pixels PhysicalSizeX, "
        "DetectorSettings Binning; s = p × binning / M_eff",
        "PhysicalSizeX fits the Image's objective (CalibratedMagnification when given): with "
        "the sensor pixel unknown, the typical 0.25 µm at 40× with a plausibility band of "
        "0.25-3× (warning outside); a 10× mismatch is an error (nm written as µm).",
    ),
    Check(
        "OME-physics-z",
        "ome",
        "OME Pixels PhysicalSizeZ, Plane PositionZ",
        "PhysicalSizeZ agrees with the median step of the Planes' PositionZ: more than 15% off "
        "is a warning, 10× an error.",
    ),
    Check(
        "OME-tiff-structure",
        "ome",
        "TIFF 6.0 sections 3, 15 (ImageWidth, TileWidth/Length, RowsPerStrip, "
        "Strip/TileOffsets and ByteCounts)",
        "Every IFD and SubIFD has a size, one integer in each baseline field, tiles no larger "
        "than the image, and one offset and byte count per tile or strip, inside the file "
        "(the reader's own checks, bridge/ometiff/reader.py check_layout).",
    ),
    Check(
        "OME-tile-size",
        "ome",
        "TIFF 6.0 section 15 (TileWidth, TileLength: multiples of 16)",
        "Tiled IFDs, sub-resolutions included, have tile width and length that are multiples "
        "of 16 (G3).",
    ),
    # -- scanner TIFF dialects (no OME-XML) -----------------------------------------------------
    Check(
        "TIFF-dialect",
        "tiff",
        "tifffile dialect recognition (is_svs, is_qpi, is_ndpi, is_philips); "
        "mappings/wsi_tiff_dialects.md",
        "A TIFF without OME-XML is read as the scanner dialect tifffile recognises, or as a "
        "generic pyramid (info naming it); a file in which no image series is found is an error.",
    ),
    Check(
        "TIFF-levels",
        "tiff",
        "TIFF 6.0 NewSubfileType (reduced resolution); the dialect's level layout",
        "The pyramid's levels strictly shrink, by the same factor in x and y (warning).",
    ),
    Check(
        "TIFF-pixel-size",
        "tiff",
        "TIFF 6.0 XResolution, YResolution, ResolutionUnit; Aperio MPP",
        "The dialect gives a physical pixel size; 72, 96 or 300 pixels per inch (or per cm) "
        "are writers' defaults and count as none (warning: DICOM then needs --pixel-size).",
    ),
    Check(
        "OME-roi-coordinates",
        "ome",
        "OME ROI schema (Shape, Transform; coordinates in pixels)",
        "Every shape's points (after its Transform) lie in [0, SizeX] x [0, SizeY] of each Image "
        "that references the ROI (G14).",
    ),
    Check(
        "OME-roi-points",
        "ome",
        "OME ROI schema (Polygon/@Points, Polyline/@Points)",
        "Polygons have at least 3 points, polylines at least 2, and every Points pair parses "
        "as two numbers (G14).",
    ),
    Check(
        "OME-roi-planes",
        "ome",
        "OME ROI schema (Shape/@TheZ, @TheC, @TheT; 0-based)",
        "A shape's TheZ, TheC and TheT are below SizeZ, the Image's channel count and SizeT (G14).",
    ),
    # -- round trip (--against) ---------------------------------------------------------------
    Check(
        "RT-levels",
        "roundtrip",
        "MAPPING.md 4.1 (SubIFD width/length = Total Pixel Matrix Columns/Rows)",
        "The converted slide has the source's pyramid levels, with the same sizes and tile sizes; "
        "an OME-TIFF may re-tile DICOM frames that are not multiples of 16 (TIFF 6.0 section 15), "
        "a note, and RT-tiles then compares the decoded samples on the source's frame grid.",
    ),
    Check(
        "RT-tiles",
        "roundtrip",
        "MAPPING.md 5 G12 (SHA-256 of entropy-coded data; raw samples when uncompressed)",
        "Tile by tile, the converted frames carry the source tiles: equal SHA-256 of the JPEG "
        "entropy-coded data (tables, APP markers and pad bytes ignored), or of the samples "
        "inside the image for uncompressed tiles.",
    ),
    Check(
        "RT-pixel-size",
        "roundtrip",
        "mappings/units.toml; PS3.3 C.7.6.16.2.1; OME Pixels/@PhysicalSizeX",
        "Each level's Pixel Spacing (mm, row then column) equals OME PhysicalSizeY/X converted "
        "with mappings/units.toml, times the level's downsample.",
    ),
    Check(
        "RT-channels",
        "roundtrip",
        "MAPPING.md 4.2 (Channel/@Name = Optical Path Description)",
        "The number of optical paths equals the source's channels and their descriptions are "
        "the channel names; a DICOM source without an Optical Path Sequence counts as one "
        "implied optical path (its absence is the source's error, reported by checking it).",
    ),
    Check(
        "RT-icc",
        "roundtrip",
        "MAPPING.md 4.1 (TIFF InterColorProfile 34675 = Optical Path ICC Profile)",
        "An ICC profile in the source TIFF arrives byte for byte in every optical path.",
    ),
    Check(
        "RT-associated",
        "roundtrip",
        "mappings/associated_images.toml; PS3.3 C.8.12.4.1.1",
        "Each associated source image (label, macro, thumbnail) has a converted counterpart of "
        "the mapped Image Type value 3, with the same size.",
    ),
    # -- dicom3tools ------------------------------------------------------------------------------
    Check(
        "TOOL-dciodvfy",
        "tool",
        "dicom3tools dciodvfy (IOD rules of PS3.3)",
        "dciodvfy's Error and Warning lines for each DICOM file, with their severity; known "
        "false positives stay visible, marked and downgraded to warnings.",
    ),
    Check(
        "TOOL-dcentvfy",
        "tool",
        "dicom3tools dcentvfy (entity consistency across files)",
        "dcentvfy's Error and Warning lines for the DICOM files checked together.",
    ),
    Check(
        "TOOL-missing",
        "tool",
        "-",
        "dciodvfy/dcentvfy are not installed, so their checks did not run (info).",
    ),
)

CHECKS: dict[str, Check] = {c.id: c for c in _CHECKS}


def finding(
    check_id: str,
    message: str,
    *,
    severity: Severity = Severity.ERROR,
    file: str | None = None,
    level: int | None = None,
    frame: int | None = None,
    attribute: str | None = None,
    image: str | None = None,
    group: int | None = None,
    reference: str | None = None,
    tool: str | None = None,
    tool_severity: str | None = None,
    known_false_positive: KnownFalsePositive | None = None,
) -> Finding:
    """A finding of a catalogued check (the id must exist: reports only use documented ids)."""
    check = CHECKS[check_id]
    return Finding(
        id=check_id,
        severity=severity,
        message=message,
        location=Location(file, level, frame, attribute, image, group),
        reference=reference or check.reference,
        tool=tool,
        tool_severity=tool_severity,
        known_false_positive=known_false_positive,
    )
