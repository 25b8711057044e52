"""Slide model -> DICOM VL Whole Slide Microscopy Image instances (PS3.3 A.32.8).

One instance per pyramid level and per associated image, all in one series, sharing Study,
Series and Frame of Reference UIDs; the levels of a pyramid share a Pyramid UID (C.7.11.1).
Frames are TILED_FULL (C.7.6.17.3) in the model's tile order, streamed from the tile source to
disk (see ``encaps.py``); compressed tiles are copied, never decoded.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__, fieldmap, specimen, tables
from ..codecs import jpeg, transcode
from ..errors import InputError, MetadataError, UnsupportedError
from ..model import (
    DEFAULT_ORIENTATION,
    SLIDE_SIZE_MM,
    Compression,
    Image,
    ImageKind,
    Level,
    Photometric,
    Slide,
)
from ..retile import retiled
from . import carrier, encaps, header
from .attributes import code_item, da_tm, ds, dt, srgb_profile
from .header import Dataset
from .uids import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    HTJ2K,
    HTJ2K_LOSSLESS,
    IMPLEMENTATION_CLASS_UID,
    JPEG2000,
    JPEG2000_LOSSLESS,
    JPEG_BASELINE_8BIT,
    JPEG_EXTENDED_12BIT,
    JPEG_LOSSLESS,
    JPEG_LOSSLESS_SV1,
    JPEGLS_LOSSLESS,
    JPEGLS_NEAR_LOSSLESS,
    VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE,
    generate_uid,
    is_encapsulated,
)

if TYPE_CHECKING:
    import pydicom

#: Depth of field assumed when the source does not say (Slice Thickness, Imaged Volume Depth).
DEFAULT_DEPTH_UM = 1.0


@dataclass(frozen=True)
class Identity:
    """UIDs and identifiers shared by every instance written for one slide."""

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    container_id: str
    specimen_uid: str
    now: datetime


@dataclass(frozen=True)
class WrittenInstance:
    path: Path
    sop_instance_uid: str
    image_index: int
    level: int
    kind: ImageKind
    frames: int


def _disagreement(dataset: pydicom.Dataset, level: Level) -> str | None:
    """How a carried header disagrees with the pixels it would be written with, or None:
    Samples per Pixel, Bits Allocated, Photometric Interpretation (PS3.3 C.7.6.3) and the
    Total Pixel Matrix (C.8.12.4) must be the level's; the tile size and frame count are
    matched by the caller."""
    codec = level.codec
    want = {
        "SamplesPerPixel": codec.samples_per_pixel,
        "BitsAllocated": 16 if codec.bits > 8 else 8,
        "PhotometricInterpretation": _photometric_name(level),
        "TotalPixelMatrixColumns": level.size[0],
        "TotalPixelMatrixRows": level.size[1],
    }
    for keyword, value in want.items():
        have = dataset.get(keyword)
        if have is None and keyword.startswith("TotalPixelMatrix"):  # one frame: Rows x Columns
            have = dataset.get("Columns" if keyword.endswith("Columns") else "Rows")
        try:
            same = have is not None and type(value)(have) == value
        except (TypeError, ValueError):
            same = False
        if not same:
            return f"{keyword} is {have!r}, the pixels need {value!r}"
    try:
        columns, rows = int(dataset.get("Columns", 0)), int(dataset.get("Rows", 0))
        frames = int(dataset.get("NumberOfFrames", 1))
    except (TypeError, ValueError):
        return "Rows, Columns or Number of Frames is not a number"
    if columns < 1 or rows < 1 or frames < 1:
        return "Rows, Columns or Number of Frames is not positive"
    return None


def _lo(text: str | None) -> str:
    """A Long String value (PS3.5 6.2, LO): one value (no backslash), no control characters
    (a multi-line description becomes one line), at most 64 characters."""
    one_line = " ".join("".join(c if c.isprintable() else " " for c in text or "").split())
    return one_line.replace("\\", "/")[:64].strip()


def _photometric_name(level: Level) -> str:
    """DICOM Photometric Interpretation for the level's encoded samples (C.8.12.4.1.5).

    YCbCr JPEG is labelled YBR_FULL_422 whatever its chroma subsampling (C.7.6.3.1.2 note).
    """
    photometric = level.codec.photometric
    if photometric is Photometric.MONOCHROME:
        return "MONOCHROME2"
    if photometric is Photometric.RGB:
        return "RGB"
    if photometric is Photometric.YCBCR and level.codec.compression is Compression.JPEG:
        return "YBR_FULL_422"
    if photometric in (Photometric.YBR_RCT, Photometric.YBR_ICT):
        return photometric.value
    raise UnsupportedError(f"photometric {photometric.value} cannot be written to DICOM WSI")


def _transfer_syntax(level: Level) -> str:
    """Transfer syntax for copying the level's tiles as they are (PS3.5 8.2, A.4)."""
    codec = level.codec
    if codec.compression is Compression.NONE:
        return EXPLICIT_VR_LITTLE_ENDIAN
    if codec.compression is Compression.JPEG:
        if codec.process == 0xC0:
            return JPEG_BASELINE_8BIT
        if codec.process == 0xC1:
            return JPEG_EXTENDED_12BIT
        if codec.process == 0xC3:
            first = level.tiles.encoded(0, 0)
            parsed = jpeg.parse_header(first)
            return JPEG_LOSSLESS_SV1 if _predictor(first, parsed) == 1 else JPEG_LOSSLESS
        raise UnsupportedError(
            f"JPEG process SOF{(codec.process or 0) - 0xC0} (e.g. progressive) has no DICOM "
            "transfer syntax"
        )
    if codec.compression is Compression.JPEG2000:
        if codec.transcoded == "htj2k":
            return HTJ2K_LOSSLESS if codec.lossless else HTJ2K
        return JPEG2000_LOSSLESS if codec.lossless else JPEG2000
    if codec.compression is Compression.JPEGLS:
        return JPEGLS_LOSSLESS if codec.lossless else JPEGLS_NEAR_LOSSLESS
    raise UnsupportedError(f"{codec.compression.value} tiles cannot be copied into DICOM yet")


def _predictor(stream: bytes, header: jpeg.JpegHeader) -> int:
    """The selection value (predictor) of a lossless JPEG scan (T.81 H.1.2.1: SOS Ss)."""
    pos = header.scan_offset
    n_comp = stream[pos + 4]
    return stream[pos + 5 + 2 * n_comp]


def _image_type(image: Image, level: Level) -> list[str]:
    """Image Type / Frame Type values 1-4 (C.8.12.4.1.1)."""
    if image.kind is ImageKind.VOLUME:
        if level.index == 0:
            return ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        return ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
    if image.kind is ImageKind.THUMBNAIL:
        return ["DERIVED", "PRIMARY", "THUMBNAIL", "RESAMPLED"]
    return ["ORIGINAL", "PRIMARY", image.kind.value, "NONE"]


def _palette(item: Dataset, rgb: tuple[int, int, int], bits: int) -> None:
    """Palette Color Lookup Table Sequence (C.8.12.5.1.4): black to the channel colour.

    Entries: 256 for 8-bit data, 65536 (descriptor value 0) for 16-bit; 16-bit LUT values,
    entry i of component k = round(i * k / (n - 1)) * 257.
    """
    n = 256 if bits == 8 else 65536
    ramp = np.arange(n, dtype=np.float64) / (n - 1)
    lut = Dataset()
    descriptor = [n if n < 65536 else 0, 0, 16]
    lut.RedPaletteColorLookupTableDescriptor = descriptor
    lut.GreenPaletteColorLookupTableDescriptor = descriptor
    lut.BluePaletteColorLookupTableDescriptor = descriptor
    data = [(np.round(ramp * k) * 257).astype("<u2").tobytes() for k in rgb]
    lut.RedPaletteColorLookupTableData = data[0]
    lut.GreenPaletteColorLookupTableData = data[1]
    lut.BluePaletteColorLookupTableData = data[2]
    item.PaletteColorLookupTableSequence = [lut]


def _keys(
    level: Level, planes: Sequence[int], channels: Sequence[int]
) -> Iterator[tuple[int, int, int, int]]:
    """Tile keys (x, y, z, c) in TILED_FULL order: x, then y, then focal plane, then optical
    path (PS3.3 C.7.6.17.3)."""
    nx, ny = level.grid
    for c in channels:
        for z in planes:
            for y in range(ny):
                for x in range(nx):
                    yield (x, y, z, c)


def _frames(level: Level, planes: Sequence[int], channels: Sequence[int]) -> Iterator[encaps.Frame]:
    """Each frame as parts, from the tile source's bulk reader when it has one."""
    bulk = getattr(level.tiles, "frame_parts", None)
    if bulk is not None:
        yield from bulk(_keys(level, planes, channels))
        return
    encoded = level.tiles.encoded
    for key in _keys(level, planes, channels):
        yield (encoded(*key),)


def _frame_sizes(
    level: Level, planes: Sequence[int], channels: Sequence[int]
) -> Iterator[int | None]:
    size = level.tiles.encoded_size
    bound = level.tile_size[0] * level.tile_size[1] * level.codec.samples_per_pixel * 2
    for key in _keys(level, planes, channels):
        # unknown (re-encoded) sizes: lossless codecs stay well below twice the raw size
        yield size(*key) or bound + 4096


def _evenly_spaced(z: Sequence[float]) -> bool:
    """Whether planes can share one TILED_FULL instance: strictly increasing Z (glass to
    coverslip, C.7.6.17.3) in equal steps (one Spacing Between Slices)."""
    if len(z) < 2:
        return True
    steps = [b - a for a, b in itertools.pairwise(z)]
    return max(steps) - min(steps) <= 1e-3 and min(steps) > 0


@dataclass(frozen=True)
class InstancePlan:
    """One DICOM instance to write: a level (possibly re-encoded) and the focal planes and
    optical paths (indices into the image's) its frames hold."""

    name: str
    image: Image
    level: Level
    planes: tuple[int, ...]
    channels: tuple[int, ...]

    @property
    def frames(self) -> int:
        return self.level.tile_count * len(self.planes) * len(self.channels)


class SlideWriter:
    """Writes the instances of one slide into a directory.

    ``pixel_size_um`` overrides the source's level-0 pixel size (x, y). ``progress`` is called
    with the number of frames written since the last call.
    """

    def __init__(
        self,
        slide: Slide,
        *,
        pixel_size_um: tuple[float, float] | None = None,
        progress: Callable[[int], None] | None = None,
        identity: Identity | None = None,
        target: transcode.Target | None = None,
        quality: int | None = None,
    ):
        self.slide = slide
        self.pixel_size_override = pixel_size_um
        self.progress = progress
        patient = slide.patient
        # Headers carried from a DICOM source (through an OME-TIFF) fix the shared identity,
        # so instances written afresh join the same Study, Series and Frame of Reference.
        self.notes: list[str] = []
        self._headers = self._read_headers(slide)
        first = next((h for h in self._headers if h is not None), None) or Dataset()
        specimen = first.get("SpecimenDescriptionSequence") or [Dataset()]
        self.identity = identity or Identity(
            study_uid=patient.study_uid or first.get("StudyInstanceUID") or generate_uid(),
            series_uid=patient.series_uid or first.get("SeriesInstanceUID") or generate_uid(),
            frame_of_reference_uid=first.get("FrameOfReferenceUID") or generate_uid(),
            container_id=slide.slide_id,
            specimen_uid=specimen[0].get("SpecimenUID") or generate_uid(),
            now=datetime.now(UTC).astimezone(),
        )
        self._used_headers: set[int] = set()
        self._instance_number = 0
        self._plans: list[InstancePlan] | None = None
        self.target = target
        self.quality = quality

    def _read_headers(self, slide: Slide) -> list[pydicom.Dataset | None]:
        """The carried headers as datasets; a damaged one is None, with a warning (the
        instance is then written from the standard attributes)."""
        headers: list[pydicom.Dataset | None] = []
        for carried in slide.carriers.dicom:
            try:
                headers.append(carrier.carried_header(carried.json))
            except carrier.Damaged as exc:
                self.notes.append(
                    f"the carried DICOM header of image {carried.image_index} level "
                    f"{carried.level} is damaged ({exc}); the standard attributes are used "
                    "instead"
                )
                headers.append(None)
        return headers

    # -- planning ---------------------------------------------------------------------------

    def frame_count(self) -> int:
        """Number of frames all instances will hold (for progress reporting)."""
        return sum(plan.frames for plan in self.plan())

    @staticmethod
    def _levels(image: Image) -> tuple[Level, ...]:
        return image.levels if image.kind is ImageKind.VOLUME else image.levels[:1]

    def pixel_size(self, image: Image) -> tuple[float, float]:
        """Level-0 pixel size (x, y) in µm, or a clear error saying how to give one."""
        if self.pixel_size_override:
            return self.pixel_size_override
        if image.pixel_size_um:
            return image.pixel_size_um
        why = next((w for w in self.slide.warnings if "pixel size" in w), None)  # the reader's
        raise MetadataError(
            f"image {image.source_index} ({image.name or 'unnamed'}) has no physical pixel size "
            "(OME PhysicalSizeX/PhysicalSizeY); DICOM WSI requires Pixel Spacing"
            + (f" ({why})" if why else ""),
            path=self.slide.source,
            hint="pass it with --pixel-size MICRONS (e.g. --pixel-size 0.25, or "
            "--pixel-size 0.25,0.26 for x,y)",
        )

    def _prepare(self, image: Image, level: Level) -> Level:
        """The level as it will be written: copied, or decoded and re-encoded where DICOM
        cannot hold the tiles as they are (a TIFF-only codec or layout, or --codec/--lossy)."""
        if level.issue:
            raise UnsupportedError(level.issue, path=self.slide.source)
        codec = level.codec
        holdable = (
            not getattr(level.tiles, "decode_only", False)
            and (
                (codec.compression is Compression.JPEG and codec.bits == 8)
                or codec.compression is Compression.JPEG2000
                or (codec.compression is Compression.NONE and codec.bits in (8, 16))
                # complete JPEG-LS streams omedicom encoded itself (new pyramid levels)
                or (codec.compression is Compression.JPEGLS and codec.transcoded == "jpegls")
            )
            and codec.photometric is not Photometric.PALETTE
        )
        if holdable and self.target is None and self.quality is None:
            return level
        target = self.target or transcode.default_target(codec.bits)
        if target is transcode.Target.JPEG and codec.bits != 8:
            raise UnsupportedError(
                f"image {image.source_index}: JPEG holds 8-bit samples only, these are "
                f"{codec.bits}-bit",
                path=self.slide.source,
                hint="use --codec jpegls, jpeg2000, htj2k or native",
            )
        if holdable and target is transcode.Target.NATIVE and codec.compression is Compression.NONE:
            return level
        prepared = transcode.transcoded(level, target, self.quality)
        note = (
            f"image {image.source_index} level {level.index}: {codec.compression.value} tiles "
            f"decoded and re-encoded as {target.value}"
            + (f" (lossy, quality {self.quality})" if self.quality is not None else " (lossless)")
        )
        if note not in self.notes:
            self.notes.append(note)
        return prepared

    def plan(self) -> list[InstancePlan]:
        """Every instance to write, in order (cached)."""
        if self._plans is not None:
            return self._plans
        plans: list[InstancePlan] = []
        volumes = [i for i in self.slide.images if i.kind is ImageKind.VOLUME]
        for image in self.slide.images:
            prefix = f"image{image.source_index}-" if len(volumes) > 1 else ""
            if image.kind is not ImageKind.VOLUME:
                kind_name = tables.table("associated_images")["kind_to_name"]
                prefix += kind_name[image.kind.value]
            even = _evenly_spaced(image.focal_planes_um)
            plane_groups = (
                [tuple(range(image.size_z))] if even else [(z,) for z in range(image.size_z)]
            )
            # IDC layout for multiplexed fluorescence: one instance per channel and level
            separate = image.samples_per_pixel == 1 and image.size_c > 1
            channel_groups = (
                [(c,) for c in range(image.size_c)] if separate else [tuple(range(image.size_c))]
            )
            for level in self._levels(image):
                prepared = self._prepare(image, level)
                for channels in channel_groups:
                    for planes in plane_groups:
                        name = (
                            prefix
                            if image.kind is not ImageKind.VOLUME
                            else f"{prefix}level{level.index}"
                        )
                        if separate:
                            name += f"-c{channels[0] + 1}"
                        if not even:
                            name += f"-z{planes[0] + 1}"
                        plans.append(InstancePlan(f"{name}.dcm", image, prepared, planes, channels))
        self._plans = plans
        return plans

    def check(self) -> None:
        """Fail before anything is written if the slide cannot be converted."""
        for image in self.slide.images:
            if image.time_points > 1 and image.time_point is None:
                raise UnsupportedError(
                    f"image {image.source_index} ({image.name or 'unnamed'}) has "
                    f"{image.time_points} time points, and DICOM whole-slide images have no time "
                    "axis",
                    path=self.slide.source,
                    hint="choose one with --timepoint N (0-based), or write one series per time "
                    "point with --all-timepoints",
                )
            if image.kind is ImageKind.VOLUME:
                self.pixel_size(image)
        for plan in self.plan():
            _photometric_name(plan.level)
            _transfer_syntax(plan.level)

    # -- writing ----------------------------------------------------------------------------

    def write(self, out_dir: Path) -> list[WrittenInstance]:
        self.check()
        written: list[WrittenInstance] = []
        volumes = [i for i in self.slide.images if i.kind is ImageKind.VOLUME]
        reference = volumes[0] if volumes else None
        pyramid_uids = {
            i.source_index: self._carried_value(i, "PyramidUID") or generate_uid()
            for i in self.slide.images
            if i.kind is ImageKind.VOLUME
        }
        for plan in self.plan():
            uid = pyramid_uids.get(plan.image.source_index)
            written.append(self._write_instance(out_dir / plan.name, plan, uid, reference))
        for image in volumes:
            groups = [g for g in self.slide.annotations if g.image_index == image.source_index]
            if groups:
                ann = self._write_annotations(out_dir, image, groups, written)
                if ann is not None:
                    written.append(ann)
        return written

    def _write_annotations(
        self, out_dir: Path, image: Image, groups: list, written: list[WrittenInstance]
    ) -> WrittenInstance | None:
        """One Microscopy Bulk Simple Annotations instance per pyramid (C.37.1.2),
        referencing its base level (the first level-0 instance written); none, with a note,
        when every annotation lies outside that level."""
        from ..annotations import write_dicom_annotations
        from ..annotations.dicom_ann import NothingInside

        base = next(w for w in written if w.image_index == image.source_index and w.level == 0)
        prefix = base.path.name.split("level0")[0]
        try:
            result = write_dicom_annotations(
                groups, base.path, out_dir / f"{prefix}annotations.dcm"
            )
        except NothingInside as exc:
            self.notes.append(str(exc))
            return None
        self.notes.extend(result.warnings)
        return WrittenInstance(
            result.path, result.sop_instance_uid, image.source_index, -1, image.kind, 0
        )

    def _carried_value(self, image: Image, keyword: str) -> object | None:
        """An attribute of the carried source header of this image's base level, if any."""
        for carried, dataset in zip(self.slide.carriers.dicom, self._headers, strict=True):
            if dataset is None:
                continue
            if carried.image_index == image.source_index and carried.level == 0:
                value = dataset.get(keyword)
                if value:
                    return value
        return None

    def _carried(self, plan: InstancePlan, tsuid: str) -> pydicom.Dataset | None:
        """The source instance's own header when this level came from DICOM through an
        OME-TIFF and its frames can be written back as they were: same transfer syntax,
        TILED_FULL (per-frame positions of a sparse source would no longer match), the same
        optical paths and focal plane, and the same tiling (native frames can be re-tiled
        back). Each header is used at most once."""
        image, level = plan.image, plan.level
        for number, carried in enumerate(self.slide.carriers.dicom):
            if number in self._used_headers:
                continue
            if carried.image_index != image.source_index or carried.level != level.index:
                continue
            if carried.transfer_syntax != tsuid:
                continue
            dataset = self._headers[number]
            if dataset is None:
                continue
            disagreement = _disagreement(dataset, level)
            if disagreement:
                self._used_headers.add(number)
                self.notes.append(
                    f"the carried DICOM header of image {image.source_index} level "
                    f"{level.index} is damaged ({disagreement}); the standard attributes are "
                    "used instead"
                )
                continue
            dataset = carrier.dataset_from_json(carried.json)  # a copy of its own to change
            frames = int(dataset.get("NumberOfFrames", 1))
            if frames > 1 and dataset.get("DimensionOrganizationType") != "TILED_FULL":
                continue
            # headers come in channel order (the reader sorts by Instance Number); names, where
            # both sides have them, must agree
            names = [
                i.get("OpticalPathDescription") for i in dataset.get("OpticalPathSequence", [])
            ]
            wanted = [
                image.channels[c].name if c < len(image.channels) else None for c in plan.channels
            ]
            if names and (
                len(names) != len(wanted)
                or any(a and b and a != b for a, b in zip(names, wanted, strict=True))
            ):
                continue
            if image.size_z > 1:
                try:
                    z = float(
                        dataset.TotalPixelMatrixOriginSequence[0].ZOffsetInSlideCoordinateSystem
                    )
                except (AttributeError, IndexError, ValueError):
                    z = 0.0
                if abs(z - image.focal_planes_um[plan.planes[0]]) > 1e-3:
                    continue
            tile = (int(dataset.get("Columns", 0)), int(dataset.get("Rows", 0)))
            if tile != level.tile_size and level.codec.compression is not Compression.NONE:
                continue
            nx = -(-level.size[0] // tile[0])
            ny = -(-level.size[1] // tile[1])
            if frames != nx * ny * len(plan.planes) * len(plan.channels):
                continue
            self._used_headers.add(number)
            return dataset
        return None

    def _write_instance(
        self,
        path: Path,
        plan: InstancePlan,
        pyramid_uid: str | None,
        reference: Image | None,
    ) -> WrittenInstance:
        image, level = plan.image, plan.level
        tsuid = _transfer_syntax(level)
        dataset = self._carried(plan, tsuid)
        tile = level.tile_size
        if dataset is not None:
            tile = (int(dataset.Columns), int(dataset.Rows))
            n_frames = int(dataset.get("NumberOfFrames", 1))
        else:
            n_frames = plan.frames
            dataset = self._dataset(plan, pyramid_uid, reference, n_frames)
            self._lossy(dataset, level)
            info = next(
                (
                    i
                    for i in self.slide.carriers.tiff
                    if i.image_index == image.source_index and i.level == level.index
                ),
                None,
            )
            carrier.write(dataset, self.slide.carriers.ome_xml, info)
        if isinstance(dataset, Dataset):
            dataset.file_meta = Dataset()
        else:  # a carried header, read by pydicom
            from pydicom.dataset import FileMetaDataset

            dataset.file_meta = FileMetaDataset()
        dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
        dataset.file_meta.TransferSyntaxUID = tsuid
        dataset.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        dataset.file_meta.ImplementationVersionName = f"OMEDICOM_{__version__}"[:16]
        try:
            self._write_file(path, dataset, plan, tsuid, tile, n_frames)
        except EOFError as exc:  # a file range ended early: the source shrank or is damaged
            raise InputError(
                f"tile data is truncated ({exc})",
                path=self.slide.source,
                hint="the source file changed or was cut short during conversion",
            ) from None
        return WrittenInstance(
            path, dataset.SOPInstanceUID, image.source_index, level.index, image.kind, n_frames
        )

    def _write_file(
        self,
        path: Path,
        dataset: Dataset | pydicom.Dataset,
        plan: InstancePlan,
        tsuid: str,
        tile: tuple[int, int],
        n_frames: int,
    ) -> None:
        level, planes, channels = plan.level, plan.planes, plan.channels
        with open(path, "xb") as fh:
            if isinstance(dataset, Dataset):
                header.write(fh, dataset)  # a huge OME-XML carrier is written in slices
            else:
                from pydicom import dcmwrite

                dcmwrite(fh, dataset, enforce_file_format=True)
            if is_encapsulated(tsuid):
                frames = _frames(level, planes, channels)
                extended = encaps.needs_extended_offsets(_frame_sizes(level, planes, channels))
                encaps.write_encapsulated(
                    fh, frames, n_frames, extended=extended, progress=self.progress
                )
                return
            if tile == level.tile_size:
                frames = _frames(level, planes, channels)
            else:  # native frames re-tiled to the carried Rows x Columns: bytes moved only
                dtype = np.dtype(plan.image.dtype).newbyteorder("<")
                frames = (
                    (array.astype(dtype, copy=False).tobytes(),)
                    for c in channels
                    for z in planes
                    for array in retiled(level, (tile[1], tile[0]), z, c, dtype)
                )
            codec = level.codec
            frame_size = tile[0] * tile[1] * codec.samples_per_pixel * (codec.bits // 8)
            encaps.write_native(
                fh,
                frames,
                frame_size,
                n_frames,
                vr=b"OB" if codec.bits <= 8 else b"OW",
                progress=self.progress,
            )

    def _lossy(self, dataset: Dataset, level: Level) -> None:
        """Lossy Image Compression (0028,2110) with Ratio and Method (C.7.6.1.1.5)."""
        codec = level.codec
        lossy = (
            codec.lossless is False
            or codec.lossy_history  # once lossy, always lossy (C.7.6.1.1.5)
            or (codec.compression is Compression.JPEG and not codec.lossless)
        )
        dataset.LossyImageCompression = "01" if lossy else "00"
        # a generated level (bridge.pyramid) knows its size once its tiles are made
        stored = level.compressed_bytes or getattr(level.tiles, "stored_bytes", lambda: None)()
        if lossy and stored:
            width, height = level.size
            raw = width * height * codec.samples_per_pixel * (codec.bits // 8)
            dataset.LossyImageCompressionRatio = [ds(raw / stored)]
            method = {
                Compression.JPEG2000: "ISO_15444_1",
                Compression.JPEGLS: "ISO_14495_1",
            }.get(codec.compression, "ISO_10918_1")
            if codec.lossless:  # stored losslessly now: the lossy step was the source's JPEG
                method = "ISO_10918_1"
            dataset.LossyImageCompressionMethod = [method]

    def _dataset(
        self,
        plan: InstancePlan,
        pyramid_uid: str | None,
        reference: Image | None,
        n_frames: int,
    ) -> Dataset:
        image, level = plan.image, plan.level
        ident = self.identity
        patient = self.slide.patient
        self._instance_number += 1
        d = Dataset()
        d.SpecificCharacterSet = "ISO_IR 192"
        image_type = _image_type(image, level)
        d.ImageType = image_type
        d.SOPClassUID = VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE
        d.SOPInstanceUID = generate_uid()
        study_date, study_time = patient.study_date or "", patient.study_time or ""
        d.StudyDate = study_date
        d.StudyTime = study_time
        content_date, content_time = da_tm(ident.now)
        d.ContentDate = content_date
        d.ContentTime = content_time
        acquired = image.acquired or ident.now
        d.AcquisitionDateTime = dt(acquired)
        d.AccessionNumber = patient.accession_number or ""
        d.Modality = "SM"
        d.ReferringPhysicianName = patient.referring_physician or ""
        if patient.study_description:
            d.StudyDescription = patient.study_description
        d.SeriesDescription = patient.series_description or (self.slide.slide_id or "")[:64]
        d.VolumetricProperties = "VOLUME"
        d.PatientName = patient.name or ""
        d.PatientID = patient.id or ""
        d.PatientBirthDate = patient.birth_date or ""
        d.PatientSex = patient.sex or ""
        self._equipment(d, image)
        d.StudyInstanceUID = ident.study_uid
        d.SeriesInstanceUID = ident.series_uid
        d.StudyID = patient.study_id or ""
        d.SeriesNumber = patient.series_number if patient.series_number is not None else 1
        d.InstanceNumber = self._instance_number
        if image.kind in (ImageKind.VOLUME, ImageKind.THUMBNAIL):
            d.FrameOfReferenceUID = ident.frame_of_reference_uid
            d.PositionReferenceIndicator = "SLIDE_CORNER"
        if pyramid_uid:
            d.PyramidUID = pyramid_uid
            if image.name:
                d.PyramidLabel = _lo(image.name)
            if image.description:
                d.PyramidDescription = _lo(image.description)
        d.DimensionOrganizationType = "TILED_FULL"
        dim = Dataset()
        dim.DimensionOrganizationUID = generate_uid()
        d.DimensionOrganizationSequence = [dim]

        codec = level.codec
        tw, th = level.tile_size
        d.SamplesPerPixel = codec.samples_per_pixel
        d.PhotometricInterpretation = _photometric_name(level)
        if codec.samples_per_pixel > 1:
            d.PlanarConfiguration = 0
        d.NumberOfFrames = n_frames
        d.Rows = th
        d.Columns = tw
        d.BitsAllocated = codec.bits
        d.BitsStored = codec.bits
        d.HighBit = codec.bits - 1
        d.PixelRepresentation = 0
        if d.PhotometricInterpretation == "MONOCHROME2":
            d.PresentationLUTShape = "IDENTITY"
            d.RescaleIntercept = "0"
            d.RescaleSlope = "1"
        burned = "YES" if image.kind in (ImageKind.LABEL, ImageKind.OVERVIEW) else "NO"
        d.BurnedInAnnotation = burned
        d.SpecimenLabelInImage = burned
        d.FocusMethod = "AUTO"
        d.ExtendedDepthOfField = "NO"

        width, height = level.size
        d.TotalPixelMatrixColumns = width
        d.TotalPixelMatrixRows = height
        d.TotalPixelMatrixFocalPlanes = len(plan.planes)
        spacing = self._level_spacing_mm(image, level, reference)
        if spacing is not None:
            _sx, _sy = spacing
            ref = reference if image.kind is not ImageKind.VOLUME and reference else image
            extent = self._extent_mm(ref, reference)
            d.ImagedVolumeWidth = extent[0]
            d.ImagedVolumeHeight = extent[1]
            z = image.focal_planes_um
            d.ImagedVolumeDepth = float(max(z) - min(z) + DEFAULT_DEPTH_UM)
            origin, orientation = self._placement(ref, extent)
        else:
            # Labels and overviews are not in the slide frame of the pyramid; the module still
            # requires an origin and orientation (C.8.12.14): the slide corner, unrotated.
            origin, orientation = (0.0, 0.0), DEFAULT_ORIENTATION
        origin_item = Dataset()
        origin_item.XOffsetInSlideCoordinateSystem = ds(origin[0])
        origin_item.YOffsetInSlideCoordinateSystem = ds(origin[1])
        if image.size_z > 1:  # µm, the first (glass-side) plane of this instance (C.8.12.2)
            origin_item.ZOffsetInSlideCoordinateSystem = ds(image.focal_planes_um[plan.planes[0]])
        d.TotalPixelMatrixOriginSequence = [origin_item]
        d.ImageOrientationSlide = [ds(v) for v in orientation]

        shared = Dataset()
        measures = Dataset()
        if spacing is not None:
            measures.PixelSpacing = [ds(spacing[1]), ds(spacing[0])]  # [row (Y), column (X)]
            measures.SliceThickness = ds(DEFAULT_DEPTH_UM / 1000.0)
            if len(plan.planes) > 1:
                z = image.focal_planes_um
                step = (z[plan.planes[-1]] - z[plan.planes[0]]) / (len(plan.planes) - 1)
                measures.SpacingBetweenSlices = ds(step / 1000.0)  # mm
        shared.PixelMeasuresSequence = [measures]
        frame_type = Dataset()
        frame_type.FrameType = image_type
        shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame_type]
        d.SharedFunctionalGroupsSequence = [shared]

        self._optical_paths(d, image, plan.channels, level)
        self._specimen(d, image)
        d.AcquisitionContextSequence = []
        if image.kind is ImageKind.LABEL:
            d.LabelText = ""
            d.BarcodeValue = ""
        return d

    # -- geometry ---------------------------------------------------------------------------

    def _extent_mm(self, image: Image, reference: Image | None) -> tuple[float, float]:
        """Imaged Volume Width/Height (mm) of the pyramid: level-0 size × level-0 spacing."""
        sx, sy = self.pixel_size(image)
        w, h = image.size
        return (w * sx / 1000.0, h * sy / 1000.0)

    def _level_spacing_mm(
        self, image: Image, level: Level, reference: Image | None
    ) -> tuple[float, float] | None:
        """(x, y) pixel spacing of a level in mm; ``None`` for labels and overviews."""
        if image.kind is ImageKind.VOLUME:
            sx, sy = self.pixel_size(image)
            return (
                sx * level.downsample[0] / 1000.0,
                sy * level.downsample[1] / 1000.0,
            )
        if image.kind is ImageKind.THUMBNAIL and reference is not None:
            ew, eh = self._extent_mm(reference, reference)
            return (ew / level.size[0], eh / level.size[1])
        return None

    def _placement(
        self, image: Image, extent: tuple[float, float]
    ) -> tuple[tuple[float, float], tuple[float, ...]]:
        """Total Pixel Matrix Origin (mm, corner of pixel 1\\1) and Image Orientation (Slide).

        In this order: the DICOM source's own placement, carried in its header through an
        OME-TIFF (exact, whatever its orientation); the model's (a DICOM source, or OME Images
        placed by their stage positions, ``bridge.ometiff.positions``); else the image is
        centred on a 25 × 75 mm slide with :data:`DEFAULT_ORIENTATION`. Every level shares the
        origin.
        """
        placement = self._carried_placement(image)
        if placement is not None:
            return placement
        if image.origin_mm and image.orientation:
            return image.origin_mm, image.orientation
        orientation = DEFAULT_ORIENTATION
        # rows run along +Y (image width), columns along +X (image height)
        x0 = SLIDE_SIZE_MM[0] / 2 - extent[1] / 2
        y0 = SLIDE_SIZE_MM[1] / 2 - extent[0] / 2
        return (x0, y0), orientation

    def _carried_placement(
        self, image: Image
    ) -> tuple[tuple[float, float], tuple[float, ...]] | None:
        """The DICOM source's own origin and orientation from its carried header, or None.
        Values that are not finite numbers (a damaged or edited carrier) are not used, and a
        note says so: the model's placement takes over."""
        origin = self._carried_value(image, "TotalPixelMatrixOriginSequence")
        carried = self._carried_value(image, "ImageOrientationSlide")
        if not (origin and carried):
            return None
        try:
            item = origin[0]  # type: ignore[index]
            x = float(item.XOffsetInSlideCoordinateSystem)
            y = float(item.YOffsetInSlideCoordinateSystem)
            cosines = tuple(float(v) for v in carried)  # type: ignore[attr-defined]
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            x = y = math.nan
            cosines = ()
        if len(cosines) == 6 and all(math.isfinite(v) for v in (x, y, *cosines)):
            return (x, y), cosines
        note = (
            f"the carried DICOM header of image {image.source_index} has a Total Pixel Matrix "
            "Origin or Image Orientation (Slide) that is not finite numbers; the image is "
            "placed as if it had none"
        )
        if note not in self.notes:
            self.notes.append(note)
        return None

    # -- optical path and specimen -------------------------------------------------------------

    def _optical_paths(
        self, d: Dataset, image: Image, indices: Sequence[int], level: Level
    ) -> None:
        """Optical Path module (C.8.12.5): one item per channel this instance holds.

        Identifier: the channel's position in the image (1-based), so paths keep their order
        across the per-channel instances. Illumination from OME IlluminationType and
        ContrastMethod (CID 8123; epifluorescence by default for multi-channel greyscale,
        brightfield otherwise); Illumination Wave Length from the excitation wavelength,
        Light/Image Path Filter Pass-Through from excitation/emission (nm, US). A greyscale
        channel with an OME Color gets a Palette Color Lookup Table, and then an ICC profile
        (required with a palette, MAPPING.md Corrections 1).
        """
        channels = image.channels or ()
        mono = level.codec.samples_per_pixel == 1
        fluorescence = mono and image.size_c > 1
        items = []
        for index in indices:
            channel = channels[index] if index < len(channels) else None
            item = Dataset()
            item.OpticalPathIdentifier = str(index + 1)
            illumination = []
            for key in (channel.illumination, channel.contrast) if channel else ():
                found = tables.code("illumination_type", key) if key else None
                if found and all(found[0] != i.CodeValue for i in illumination):
                    illumination.append(code_item(found))
            if not illumination:
                default = "Epifluorescence" if fluorescence else "Brightfield"
                illumination = [code_item(tables.code("illumination_type", default))]
            item.IlluminationTypeCodeSequence = illumination
            for keyword, value in fieldmap.to_dicom("channel", channel):
                setattr(item, keyword, value)
            bands = {
                "LightPathFilterPassBand": channel.excitation_band_nm if channel else None,
                "ImagePathFilterPassBand": channel.emission_band_nm if channel else None,
            }
            for keyword, band in bands.items():
                if band is not None:  # US, whole nm (C.8.12.5.1.1)
                    setattr(item, keyword, [round(band[0]), round(band[1])])
            source = channel.illuminator if channel else None
            illuminator = tables.code("illuminator_type", source) if source else None
            if illuminator:  # CID 8125
                item.IlluminatorTypeCodeSequence = [code_item(illuminator)]
            if not (channel and channel.excitation_nm):
                item.IlluminationColorCodeSequence = [
                    code_item(tables.code("illumination_color", "full_spectrum"))
                ]
            for keyword, value in fieldmap.to_dicom("objective", image.objective):
                setattr(item, keyword, value)
            palette = mono and channel is not None and channel.color is not None
            if palette and channel.color[:3] != (255, 255, 255):
                _palette(item, channel.color[:3], level.codec.bits)
            else:
                palette = False
            if not mono or palette:
                item.ICCProfile = (
                    image.icc_profile if not mono and image.icc_profile else srgb_profile()
                )
            items.append(item)
        d.NumberOfOpticalPaths = len(items)
        d.OpticalPathSequence = items

    def _specimen(self, d: Dataset, image: Image) -> None:
        """Specimen module (C.7.6.22): the slide as container, one specimen on it, with its
        staining step when the slide has stains (``bridge.specimen``, TID 8001)."""
        ident = self.identity
        d.ContainerIdentifier = ident.container_id[:64]
        d.IssuerOfTheContainerIdentifierSequence = []
        d.ContainerTypeCodeSequence = [code_item(tables.code("container_type", "slide"))]
        d.SpecimenDescriptionSequence = [
            specimen.dicom_item(self.slide.specimen, ident.container_id, ident.specimen_uid)
        ]

    def _equipment(self, d: Dataset, image: Image) -> None:
        """Enhanced General Equipment (C.7.5.2, all Type 1) from the microscope, "Unknown" where
        the source does not say; Contributing Equipment (C.7.5.1): the detector as Acquisition
        Equipment and this converter as Modifying Equipment (CID 7005), never mixed with the
        scanner's own Manufacturer and Software Versions."""
        d.Manufacturer = "Unknown"
        d.ManufacturerModelName = "Unknown"
        d.DeviceSerialNumber = "Unknown"
        d.SoftwareVersions = "Unknown"
        for keyword, value in fieldmap.to_dicom("microscope", image.microscope):
            setattr(d, keyword, value)
        # a scanner TIFF dialect names the scanner for the whole slide (bridge/wsitiff)
        scanner = self.slide.equipment
        for keyword, value in (
            ("Manufacturer", scanner.manufacturer),
            ("ManufacturerModelName", scanner.model),
            ("DeviceSerialNumber", scanner.serial_number),
        ):
            if value and d.get(keyword) == "Unknown":
                setattr(d, keyword, _lo(value))
        equipment = []
        detector = list(fieldmap.to_dicom("detector", image.detector))
        if detector:
            item = Dataset()
            item.Manufacturer = "Unknown"
            for keyword, value in detector:
                setattr(item, keyword, value)
            item.PurposeOfReferenceCodeSequence = [
                code_item(tables.code("equipment_purpose", "acquisition"))
            ]
            equipment.append(item)
        converter = Dataset()
        converter.Manufacturer = "omedicom"
        converter.ManufacturerModelName = "omedicom"
        converter.SoftwareVersions = __version__
        converter.ContributionDateTime = dt(self.identity.now)
        converter.ContributionDescription = "converted to DICOM by omedicom"
        converter.PurposeOfReferenceCodeSequence = [
            code_item(tables.code("equipment_purpose", "converter"))
        ]
        equipment.append(converter)
        d.ContributingEquipmentSequence = equipment
