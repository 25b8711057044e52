"""The neutral slide model both sides of the bridge meet in.

Readers (``bridge.ometiff.reader``, later ``bridge.dicom.reader``) produce a :class:`Slide`;
writers consume one. Neither side imports the other.

Conventions (see MAPPING.md section 0):

* lengths are micrometres (µm) unless a name says otherwise (``_mm``);
* sizes are ``(width, height)`` = (columns, rows); pixel sizes are ``(x, y)``;
* indices (``z``, ``c``, tile ``x``/``y``) are 0-based;
* tile order is DICOM TILED_FULL order = TIFF tile order inside one IFD: left to right, top to
  bottom, then focal planes (glass to coverslip), then channels/optical paths;
* annotation coordinates are level-0 pixels, x = column, y = row, corner origin (the top-left
  corner of the top-left pixel is (0, 0)), no half-pixel shift.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


#: The slide an image without slide coordinates (OME) is placed on: 25 × 75 mm (wsidicom's
#: slide, MAPPING.md 2.4). X runs along the 25 mm side, Y along the 75 mm side.
SLIDE_SIZE_MM = (25.0, 75.0)
#: DICOM Image Orientation (Slide) (PS3.3 C.8.12.4.1.5) given to such images: rows (image x)
#: along slide +Y, columns (image y) along slide +X, wsidicom's unrotated default.
DEFAULT_ORIENTATION = (0.0, 1.0, 0.0, 1.0, 0.0, 0.0)


class ImageKind(enum.Enum):
    """Flavour of an image: DICOM Image Type value 3 (PS3.3 C.8.12.4.1.1)."""

    VOLUME = "VOLUME"
    LABEL = "LABEL"
    OVERVIEW = "OVERVIEW"
    THUMBNAIL = "THUMBNAIL"


class Photometric(enum.Enum):
    """Colour space of the *encoded* samples, decided from the bitstream where there is one."""

    MONOCHROME = "MONOCHROME"  # one sample, 0 = black (TIFF 1, DICOM MONOCHROME2)
    RGB = "RGB"  # three samples, no colour transform (TIFF 2, DICOM RGB)
    YCBCR = "YCBCR"  # three samples, JPEG YCbCr (TIFF 6, DICOM YBR_FULL_422 for JPEG)
    YBR_RCT = "YBR_RCT"  # JPEG 2000 reversible colour transform
    YBR_ICT = "YBR_ICT"  # JPEG 2000 irreversible colour transform
    PALETTE = "PALETTE"  # TIFF 3; needs expansion before DICOM


class Compression(enum.Enum):
    """Tile codec, independent of container (TIFF Compression tag / DICOM Transfer Syntax)."""

    NONE = "none"
    JPEG = "jpeg"
    JPEG2000 = "jpeg2000"
    JPEGLS = "jpegls"
    JPEGXL = "jpegxl"
    DEFLATE = "deflate"
    LZW = "lzw"
    ZSTD = "zstd"
    PACKBITS = "packbits"
    LZMA = "lzma"
    WEBP = "webp"
    OTHER = "other"


@dataclass(frozen=True)
class Codec:
    """How the tiles of one level are encoded, with the parameters that decide the target tags.

    ``subsampling`` is the JPEG luma (H, V) sampling factor pair from the SOF (TIFF
    YCbCrSubSampling); ``(1, 1)`` when no chroma subsampling or not applicable.
    ``lossless`` is ``None`` when the codestream does not say.
    """

    compression: Compression
    photometric: Photometric
    bits: int = 8
    samples_per_pixel: int = 3
    subsampling: tuple[int, int] = (1, 1)
    lossless: bool | None = None
    signed: bool = False
    floating: bool = False
    little_endian: bool = True
    # JPEG process: the SOF marker's low byte (0xC0 baseline, 0xC1 extended, 0xC3 lossless).
    process: int | None = None
    # Set when the tiles were decoded and re-encoded on the way: the target codec's name.
    transcoded: str | None = None
    # The pixels went through lossy compression before (DICOM Lossy Image Compression 01),
    # even if they are stored losslessly now.
    lossy_history: bool = False
    # Bytes inserted into each stream to make it say what it is (e.g. an Adobe APP14 marker for
    # unsignalled RGB JPEG). Recorded so a round trip can take them out again.
    inserted_marker: bytes | None = None


@dataclass(frozen=True, slots=True)
class FileRange:
    """``count`` bytes at ``offset`` of the open file ``fd``. Writers read such a range straight
    into an output buffer (``preadv``) or copy it file to file in the kernel
    (``copy_file_range``), so the bytes never become a Python object."""

    fd: int
    offset: int
    count: int

    def __len__(self) -> int:
        return self.count


Frame = Sequence[bytes | memoryview | FileRange]
"""One encoded frame as consecutive parts (e.g. a tile's SOI, merged tables, the rest)."""


class TileSource(Protocol):
    """Access to the tiles of one level, in the level's own codec.

    ``encoded`` returns one complete, self-contained stream (JPEG tables merged, colour signalled)
    or, for ``Compression.NONE``, the raw little-endian samples of a full tile (edge tiles padded
    to the full tile size). ``decoded`` returns an ndarray (rows, columns, samples) for the
    transcoding path. Both take 0-based tile column ``x``, tile row ``y``, focal plane ``z`` and
    channel ``c``.
    """

    def encoded(self, x: int, y: int, z: int = 0, c: int = 0) -> bytes: ...

    def decoded(self, x: int, y: int, z: int = 0, c: int = 0) -> np.ndarray: ...

    def encoded_size(self, x: int, y: int, z: int = 0, c: int = 0) -> int | None:
        """Length of ``encoded(...)`` without reading the tile, or None when unknown."""
        ...

    # Optional: ``frame_parts(keys) -> Iterator[Frame]`` hands out many ``encoded`` streams at
    # once as parts (file ranges where possible); writers use it when a source has it.


@dataclass(frozen=True)
class Level:
    """One resolution of an image: its size, tiling, codec and a tile source.

    ``downsample`` is (level-0 width / width, level-0 height / height); 1.0 for level 0.
    """

    index: int
    size: tuple[int, int]
    tile_size: tuple[int, int]
    codec: Codec
    tiles: TileSource = field(compare=False, repr=False)
    downsample: tuple[float, float] = (1.0, 1.0)
    jpeg_tables: bytes | None = field(default=None, repr=False)
    compressed_bytes: int | None = None  # stored size of all tiles, for compression ratios
    issue: str | None = None  # why this level cannot be copied as it is, or None
    # TIFF RowsPerStrip (tag 278) when the source stores this level in strips (then
    # ``tile_size`` is the tiling the targets get); None when the source stores tiles
    rows_per_strip: int | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """Tile columns and rows: (ceil(width / tile width), ceil(height / tile height))."""
        return (-(-self.size[0] // self.tile_size[0]), -(-self.size[1] // self.tile_size[1]))

    @property
    def tile_count(self) -> int:
        nx, ny = self.grid
        return nx * ny


@dataclass(frozen=True)
class Channel:
    """One channel / optical path (OME Channel, DICOM Optical Path Sequence item).

    ``color`` is (r, g, b, a) 0-255. Wavelengths in nm. ``illumination`` and ``contrast`` hold the
    OME enumeration values (IlluminationType, ContrastMethod).
    """

    id: str
    name: str | None = None
    samples_per_pixel: int = 1
    color: tuple[int, int, int, int] | None = None
    excitation_nm: float | None = None
    emission_nm: float | None = None
    illumination: str | None = None
    contrast: str | None = None
    fluor: str | None = None
    # (cut-in, cut-out) nm of the excitation / emission filter (OME Filter TransmittanceRange,
    # DICOM Light / Image Path Filter Pass Band)
    excitation_band_nm: tuple[float, float] | None = None
    emission_band_nm: tuple[float, float] | None = None
    # the light source: a key of mappings/codes.toml [illuminator_type] (OME element/Type)
    illuminator: str | None = None


@dataclass(frozen=True)
class Objective:
    """OME Objective / DICOM Objective Lens Power, Numerical Aperture, Lenses Code Sequence.

    ``immersion`` and ``correction`` hold the OME enumeration values (Immersion, Correction).
    Which field goes where is ``mappings/fields.toml``.
    """

    magnification: float | None = None
    numerical_aperture: float | None = None
    immersion: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    correction: str | None = None
    serial: str | None = None


@dataclass(frozen=True)
class Microscope:
    """The acquisition device: OME Instrument/Microscope, DICOM General/Enhanced General
    Equipment (Manufacturer, Manufacturer's Model Name, Device Serial Number, Software Versions,
    PS3.3 C.7.5.1, C.7.5.2). ``software`` is the scanner's, never the converter's."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    software: str | None = None
    type: str | None = None  # OME Microscope/@Type (Upright, Inverted, ...)


@dataclass(frozen=True)
class Detector:
    """OME Instrument/Detector; DICOM: a Contributing Equipment Sequence item (PS3.3 C.7.5.1)
    whose purpose is Acquisition Equipment. ``type`` is the OME DetectorType value (CCD, ...)."""

    manufacturer: str | None = None
    model: str | None = None
    serial: str | None = None
    type: str | None = None


@dataclass(frozen=True)
class Specimen:
    """The specimen on the slide and how it was stained: DICOM Specimen Description Sequence
    item with a staining Specimen Preparation Step (PS3.3 C.8.12.2.1, TID 8001/8003); OME has no
    stain element, so OME keeps it in a MapAnnotation (``bridge.specimen``).

    ``stains`` are CID 8112 codes ``(value, scheme, meaning)``; ``description`` free text."""

    identifier: str | None = None
    uid: str | None = None
    stains: tuple[tuple[str, str, str], ...] = ()
    description: str | None = None


@dataclass(frozen=True)
class Image:
    """One OME Image / one DICOM pyramid (or associated image).

    ``pixel_size_um`` is the level-0 (x, y) pixel size; ``None`` when the source has none.
    ``focal_planes_um`` lists the z position of each plane (glass to coverslip). ``origin_mm`` is
    the slide position of the top-left corner of pixel (0, 0) of level 0 (DICOM Total Pixel
    Matrix Origin, X/Y Offset in Slide Coordinate System, mm, PS3.3 C.8.12.2.1) and
    ``orientation`` the DICOM Image Orientation (Slide) row and column cosines. A DICOM source
    gives both; an OME source gives them when its Images have stage positions to place them by
    (``bridge.ometiff.positions``), else both are ``None`` and the DICOM writer centres the
    image on a default slide.
    """

    kind: ImageKind
    name: str | None
    dtype: str
    samples_per_pixel: int
    photometric: Photometric
    levels: tuple[Level, ...]
    channels: tuple[Channel, ...] = ()
    focal_planes_um: tuple[float, ...] = (0.0,)
    pixel_size_um: tuple[float, float] | None = None
    origin_mm: tuple[float, float] | None = None
    orientation: tuple[float, float, float, float, float, float] | None = None
    acquired: datetime | None = None
    description: str | None = None
    objective: Objective | None = None
    microscope: Microscope | None = None
    detector: Detector | None = None
    icc_profile: bytes | None = field(default=None, repr=False)
    source_index: int = 0
    time_points: int = 1  # OME SizeT; DICOM WSI has no time axis
    time_point: int | None = None  # the one converted, when chosen

    @property
    def size(self) -> tuple[int, int]:
        return self.levels[0].size

    @property
    def size_z(self) -> int:
        return len(self.focal_planes_um)

    @property
    def size_c(self) -> int:
        """Number of separately stored channels (planes), not samples."""
        return max(1, len(self.channels))


class GraphicType(enum.Enum):
    """DICOM Graphic Type of a Bulk Simple Annotation group (PS3.3 C.37.1.2)."""

    POINT = "POINT"
    POLYLINE = "POLYLINE"
    POLYGON = "POLYGON"
    RECTANGLE = "RECTANGLE"
    ELLIPSE = "ELLIPSE"


@dataclass(frozen=True)
class AnnotationGroup:
    """A group of annotations of one graphic type, stored as arrays (millions of points scale).

    One DICOM Annotation Group Sequence item (PS3.3 C.37.1.2) / the OME ROIs that share a name,
    shape kind, colour, TheZ and TheC (MAPPING.md 3.5).

    ``coordinates`` is a (P, 2) float64 array of level-0 pixel coordinates (x = column,
    y = row, corner origin: (0, 0) is the top-left corner of the top-left pixel, no half-pixel
    shift); ``offsets`` the start index (in points) of each annotation, so annotation i is
    ``coordinates[offsets[i]:offsets[i+1]]`` (the last one runs to the end). RECTANGLE and
    ELLIPSE annotations have 4 points each (corners clockwise from top-left; major-axis then
    minor-axis endpoints), POINT 1, POLYLINE >= 2, POLYGON >= 3 (not closed by repeating its
    first point).

    ``z`` is the 0-based focal plane (OME TheZ) and ``channel`` the 0-based channel / optical
    path (OME TheC); ``None`` means all planes / all channels. Codes are
    ``(value, scheme, meaning)``. ``uid`` is the Annotation Group UID (``None``: make one).
    ``generation`` is MANUAL, SEMIAUTOMATIC or AUTOMATIC; ``algorithm`` identifies the
    algorithm for the last two. ``objects`` gives for each annotation the source object it is a
    part of (an OME ROI with several shapes, a GeoJSON Multi* geometry); ``None`` when each
    annotation is an object of its own. ``provenance`` holds small key/value facts a round trip
    needs that have no standard home (e.g. ``("ome:shape", "Line")``).
    """

    @dataclass(frozen=True)
    class Measurement:
        """One measurement per annotation: a coded name, a UCUM unit and an (N,) float array
        (NaN where an annotation has no value). PS3.3 C.37.1.2 Measurements Sequence."""

        name: tuple[str, str, str]
        unit: tuple[str, str, str]
        values: np.ndarray = field(repr=False, compare=False)

    @dataclass(frozen=True)
    class Algorithm:
        """Annotation Group Algorithm Identification Sequence (PS3.3 C.37.1.2, CID 7162)."""

        name: str
        version: str
        family: tuple[str, str, str] = ("123109", "DCM", "Manual Processing")

    label: str
    graphic_type: GraphicType
    coordinates: np.ndarray = field(repr=False, compare=False)
    offsets: np.ndarray = field(repr=False, compare=False)
    description: str | None = None
    color: tuple[int, int, int] | None = None
    z: int | None = None
    channel: int | None = None
    property_category: tuple[str, str, str] | None = None  # (value, scheme, meaning)
    property_type: tuple[str, str, str] | None = None
    measurements: tuple[AnnotationGroup.Measurement, ...] = ()
    image_index: int = 0
    uid: str | None = None
    generation: str = "MANUAL"
    algorithm: AnnotationGroup.Algorithm | None = None
    objects: np.ndarray | None = field(default=None, repr=False, compare=False)
    provenance: tuple[tuple[str, str], ...] = ()

    @property
    def count(self) -> int:
        """Number of annotations."""
        return len(self.offsets)

    def ends(self) -> np.ndarray:
        """End index (exclusive, in points) of each annotation."""
        import numpy as np

        return np.append(self.offsets[1:], len(self.coordinates)).astype(np.int64)

    def annotation(self, i: int) -> np.ndarray:
        """The (n, 2) points of annotation ``i`` (a view)."""
        end = self.offsets[i + 1] if i + 1 < len(self.offsets) else len(self.coordinates)
        return self.coordinates[self.offsets[i] : end]

    def fact(self, key: str) -> str | None:
        """The provenance value for ``key``, or None."""
        return next((v for k, v in self.provenance if k == key), None)


@dataclass(frozen=True)
class Patient:
    """Patient and study identity; ``None`` fields stay empty (DICOM Type 2), never invented."""

    name: str | None = None
    id: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    study_uid: str | None = None
    study_id: str | None = None
    study_date: str | None = None
    study_time: str | None = None
    study_description: str | None = None
    accession_number: str | None = None
    referring_physician: str | None = None
    series_uid: str | None = None
    series_number: int | None = None
    series_description: str | None = None


@dataclass(frozen=True)
class Equipment:
    """The scanner, where the source names it (DICOM General Equipment, PS3.3 C.7.5.1:
    Manufacturer, Manufacturer's Model Name, Device Serial Number); ``None`` stays "Unknown"."""

    manufacturer: str | None = None
    model: str | None = None
    serial_number: str | None = None


@dataclass(frozen=True)
class DicomHeader:
    """The header of one source DICOM instance (Pixel Data and offset tables left out) as
    DICOM JSON (PS3.18 F.2), with the image and level it belongs to."""

    image_index: int
    level: int
    sop_instance_uid: str
    transfer_syntax: str
    json: str = field(repr=False)


@dataclass(frozen=True)
class TiffLevelInfo:
    """How a source OME-TIFF stored one level's tiles, so the way back can restore them:
    shared JPEGTables (to take out of each frame again) and a marker the bridge inserted."""

    image_index: int
    level: int
    jpeg_tables: bytes | None = field(default=None, repr=False)
    inserted_marker: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Carriers:
    """Original metadata carried along so a round trip loses nothing (MAPPING.md 4.3)."""

    ome_xml: str | None = field(default=None, repr=False)
    dicom: tuple[DicomHeader, ...] = field(default=(), repr=False)
    tiff: tuple[TiffLevelInfo, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Slide:
    """A whole slide: its images (pyramids and associated images), annotations and identity."""

    slide_id: str
    images: tuple[Image, ...]
    annotations: tuple[AnnotationGroup, ...] = ()
    patient: Patient = Patient()
    carriers: Carriers = Carriers()
    specimen: Specimen | None = None
    source: str | None = None
    warnings: tuple[str, ...] = ()
    close: Callable[[], None] | None = field(default=None, compare=False, repr=False)
    #: the source's TIFF dialect when it is not OME-TIFF ("Aperio SVS", "Hamamatsu NDPI", ...)
    dialect: str | None = None
    equipment: Equipment = Equipment()

    def volumes(self) -> Iterator[Image]:
        return (i for i in self.images if i.kind is ImageKind.VOLUME)

    def associated(self) -> Iterator[Image]:
        return (i for i in self.images if i.kind is not ImageKind.VOLUME)
