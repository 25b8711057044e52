"""DICOM VL Whole Slide Microscopy instances (files or folders) -> slide model.

Grouping (PS3.3 A.32.8, C.7.11.1): one slide = one Series; within it, VOLUME instances form a
pyramid per Pyramid UID (or, without one, per Frame of Reference and photometric
interpretation), levels ordered by Total Pixel Matrix size; LABEL, OVERVIEW and THUMBNAIL
instances are associated images. Frames are addressed by TILED_FULL order (C.7.6.17.3) or by
the Plane Position (Slide) of TILED_SPARSE frames; concatenations (C.7.6.16.2.2.4) are read as
one instance. Nothing is decoded: tiles are the frames' stored bytes.
"""

from __future__ import annotations

import contextlib
import os
import warnings as warnings_module
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from ..codecs import jpeg
from ..errors import InputError, MetadataError, SeveralSlidesError
from ..model import (
    AnnotationGroup,
    Carriers,
    Channel,
    Codec,
    Compression,
    DicomHeader,
    Image,
    ImageKind,
    Level,
    Objective,
    Patient,
    Photometric,
    Slide,
)
from . import carrier
from .frames import truncated_error, truncation
from .sources import FileFrames, RemoteFrames, RemoteSeries
from .tiles import DicomTileSource, Entry

WSM = "1.2.840.10008.5.1.4.1.1.77.1.6"
ANN = "1.2.840.10008.5.1.4.1.1.91.1"

_JPEG = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
         "1.2.840.10008.1.2.4.70"}  # fmt: skip
_J2K = {"1.2.840.10008.1.2.4.90": True, "1.2.840.10008.1.2.4.91": False,
        "1.2.840.10008.1.2.4.201": True, "1.2.840.10008.1.2.4.202": True,
        "1.2.840.10008.1.2.4.203": False}  # fmt: skip
_JPEGLS = {"1.2.840.10008.1.2.4.80": True, "1.2.840.10008.1.2.4.81": False}
_NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


def collect(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """DICOM files among ``paths`` (folders are searched recursively, hidden files skipped)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            for root, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(names):
                    f = Path(root) / name
                    if not name.startswith(".") and _is_dicom(f):
                        files.append(f)
        elif p.is_file():
            files.append(p)
        else:
            raise InputError("no such file or directory", path=p)
    return files


def _is_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _sop_name(uid: str) -> str:
    name = UID(uid).name
    return name if name != uid else f"SOP class {uid}"


def read(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    series: str | None = None,
) -> Slide:
    """Read DICOM WSM instances into a :class:`Slide` (tiles read lazily)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    where = ", ".join(map(str, paths))
    files = collect(paths)
    if not files:
        raise InputError(
            "no DICOM files found", path=where, hint="give a DICOM file or a folder holding one"
        )
    headers: list[tuple[Path, Dataset]] = []
    others: list[str] = []
    annotations: list[Path] = []
    noted: list[str] = []
    for f in files:
        try:
            with warnings_module.catch_warnings(record=True) as caught:
                warnings_module.simplefilter("always")
                ds = pydicom.dcmread(f, stop_before_pixels=True)
                for element in ds.iterall():  # convert every value now, warnings included
                    _ = element.value
        except Exception as exc:
            raise InputError(f"not a readable DICOM file ({exc})", path=f) from None
        for w in caught:  # pydicom's complaints about the file, said once each
            text = f"{f.name}: {str(w.message).split(' Please see')[0]}"
            if text not in noted:
                noted.append(text)
        sop = str(ds.get("SOPClassUID", ""))
        if sop == WSM:
            headers.append((f, ds))
        elif sop == ANN:
            annotations.append(f)
        else:
            others.append(f"{f.name}: {_sop_name(sop)}")
    if not headers:
        found = "; ".join(others) or "only annotations"
        raise InputError(
            f"no DICOM VL Whole Slide Microscopy image found ({found})",
            path=where,
            hint="omedicom converts whole-slide images (SOP class 1.2.840.10008.5.1.4.1.1.77.1.6)",
        )
    by_series: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    for f, ds in headers:
        by_series[str(ds.get("SeriesInstanceUID", ""))].append((f, ds))
    if series is not None:
        if series not in by_series:
            raise InputError(f"series {series} is not among the files", path=where)
        chosen = by_series[series]
    elif len(by_series) > 1:
        listing = "; ".join(
            f"{uid} ({ins[0][1].get('ContainerIdentifier', '?')}, {len(ins)} instances)"
            for uid, ins in by_series.items()
        )
        raise SeveralSlidesError(
            f"{len(by_series)} slides (series) are among the files: {listing}",
            path=where,
            hint="choose one with --series UID",
            series=tuple(by_series),
        )
    else:
        chosen = next(iter(by_series.values()))
    warnings = noted + [f"{name} is not a whole-slide image and was skipped" for name in others]
    frames = FileFrames()
    try:
        return _build(chosen, frames, warnings, where, annotations)
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
        frames.close()
        for f, _ in chosen:  # a header cut short explains a missing attribute best
            if cut := truncation(f):
                raise truncated_error(f, cut) from None
        raise InputError(
            f"the DICOM header is incomplete or inconsistent ({type(exc).__name__}: {exc})",
            path=where,
            hint="check the files with: omedicom check PATH",
        ) from None
    except BaseException:
        frames.close()
        raise


def _kind(ds: Dataset) -> ImageKind:
    image_type = list(ds.get("ImageType", []))
    if len(image_type) >= 3 and image_type[2] == "LOCALIZER":  # retired (PS3.3-2021c)
        return ImageKind.OVERVIEW
    if len(image_type) >= 3 and image_type[2] in ImageKind.__members__:
        return ImageKind[image_type[2]]
    return ImageKind.VOLUME


def _build(
    chosen: list[tuple[Path, Dataset]],
    frames: FileFrames | RemoteFrames,
    warnings: list[str],
    where: str,
    annotation_files: Sequence[Path] = (),
) -> Slide:
    pyramids: dict[str, list[tuple[Path, Dataset]]] = defaultdict(list)
    associated: list[list[tuple[Path, Dataset]]] = []
    for f, ds in chosen:
        kind = _kind(ds)
        if "ImageType" not in ds:
            warnings.append(f"{f.name}: no Image Type; read as a VOLUME image")
        if kind is ImageKind.VOLUME:
            key = str(ds.get("PyramidUID", "")) or "|".join(
                str(ds.get(k, "")) for k in ("FrameOfReferenceUID", "PhotometricInterpretation")
            )
            pyramids[key].append((f, ds))
        else:
            associated.append([(f, ds)])
    groups = list(pyramids.values()) + associated
    # Instances written from an OME-TIFF by the bridge say which OME Image (and level) they
    # were: keep that order and numbering, so the way back restores the original layout.
    infos = {str(ds.SOPInstanceUID): carrier.read_tiff_info(ds) for _, ds in chosen}
    carried = all(info is not None for info in infos.values())
    if carried:
        groups.sort(key=lambda g: infos[str(g[0][1].SOPInstanceUID)].image_index)  # type: ignore[union-attr]
    images = []
    headers: list[DicomHeader] = []
    ome_xml = None
    for position, group in enumerate(groups):
        first_info = infos[str(group[0][1].SOPInstanceUID)]
        index = first_info.image_index if carried and first_info else position
        image, image_headers = _image(group, index, frames, warnings)
        images.append(image)
        headers.extend(image_headers)
        for _, ds in group:
            ome_xml = ome_xml or carrier.read_ome_xml(ds)
    tiff_info = tuple(info for info in infos.values() if info is not None)
    groups_found: list[AnnotationGroup] = []
    if annotation_files:
        from ..annotations import read_dicom_annotations

        for image, group in zip(images, groups, strict=True):
            if image.kind is not ImageKind.VOLUME:
                continue
            found, notes = read_dicom_annotations(
                annotation_files, [ds for _, ds in group], image_index=image.source_index
            )
            groups_found.extend(found)
            warnings.extend(n for n in notes if n not in warnings)
    first = chosen[0][1]
    slide_id = str(first.get("ContainerIdentifier", "")) or chosen[0][0].stem
    return Slide(
        slide_id=slide_id,
        images=tuple(images),
        annotations=tuple(groups_found),
        patient=_patient(first),
        carriers=Carriers(ome_xml=ome_xml, dicom=tuple(headers), tiff=tiff_info),
        source=where,
        warnings=tuple(warnings),
        close=frames.close,
    )


def _text(ds: Dataset, key: str) -> str | None:
    value = ds.get(key)
    return str(value) if value not in (None, "") else None


def _patient(ds: Dataset) -> Patient:
    number = ds.get("SeriesNumber")
    return Patient(
        name=_text(ds, "PatientName"),
        id=_text(ds, "PatientID"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        study_uid=_text(ds, "StudyInstanceUID"),
        study_id=_text(ds, "StudyID"),
        study_date=_text(ds, "StudyDate"),
        study_time=_text(ds, "StudyTime"),
        study_description=_text(ds, "StudyDescription"),
        accession_number=_text(ds, "AccessionNumber"),
        referring_physician=_text(ds, "ReferringPhysicianName"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        series_number=int(number) if number not in (None, "") else None,
        series_description=_text(ds, "SeriesDescription"),
    )


def _size(ds: Dataset) -> tuple[int, int]:
    cols = ds.get("TotalPixelMatrixColumns") or ds.Columns
    rows = ds.get("TotalPixelMatrixRows") or ds.Rows
    return int(cols), int(rows)


def _paths_of(ds: Dataset) -> list[str]:
    return [
        str(item.get("OpticalPathIdentifier", "")) for item in ds.get("OpticalPathSequence", [])
    ]


def _image(
    group: list[tuple[Path, Dataset]],
    index: int,
    frames: FileFrames | RemoteFrames,
    warnings: list[str],
) -> tuple[Image, list[DicomHeader]]:
    by_size: dict[tuple[int, int], list[tuple[Path, Dataset]]] = defaultdict(list)
    # instance order decides channel order: Instance Number, not file names (c10 < c2)
    group = sorted(group, key=lambda fd: (int(fd[1].get("InstanceNumber", 0) or 0), str(fd[0])))
    for f, ds in group:
        by_size[_size(ds)].append((f, ds))
    sizes = sorted(by_size, key=lambda s: (-s[0] * s[1], -s[0]))
    base = by_size[sizes[0]][0][1]
    kind = _kind(base)
    # channels: optical paths in order of first appearance across the base level's instances
    channel_ids: list[str] = []
    path_items: dict[str, Dataset] = {}
    for _, ds in by_size[sizes[0]]:
        for item in ds.get("OpticalPathSequence", []):
            pid = str(item.get("OpticalPathIdentifier", ""))
            if pid not in path_items:
                channel_ids.append(pid)
                path_items[pid] = item
    if not channel_ids:
        channel_ids = ["1"]
    z_values = sorted({z for _, ds in by_size[sizes[0]] for z in _planes_um(ds)})
    levels = []
    headers = []
    where = f"image {index}"
    for li, size in enumerate(sizes):
        instances = by_size[size]
        level, level_headers = _level(
            instances, li, size, sizes[0], channel_ids, z_values, index, frames, warnings, where
        )
        levels.append(level)
        headers.extend(level_headers)
    spacing = _spacing(base)
    samples = int(base.SamplesPerPixel)
    channels = tuple(_channel(pid, path_items.get(pid)) for pid in channel_ids)
    if samples == 3:
        channels = (Channel(id=channels[0].id, name=channels[0].name, samples_per_pixel=3),)
    item0 = path_items.get(channel_ids[0])
    icc = bytes(item0.ICCProfile) if item0 is not None and "ICCProfile" in item0 else None
    return (
        Image(
            kind=kind,
            name=_text(base, "PyramidLabel") or _text(base, "SeriesDescription"),
            dtype="uint16" if int(base.BitsAllocated) == 16 else "uint8",
            samples_per_pixel=samples,
            photometric=levels[0].codec.photometric,
            levels=tuple(levels),
            channels=channels,
            focal_planes_um=tuple(z_values),
            pixel_size_um=spacing,
            origin_mm=_origin(base),
            orientation=_orientation(base),
            acquired=_datetime(base.get("AcquisitionDateTime")),
            description=_text(base, "PyramidDescription"),
            objective=_objective(item0),
            icc_profile=icc,
            source_index=index,
        ),
        headers,
    )


def _channel(pid: str, item: Dataset | None) -> Channel:
    if item is None:
        return Channel(id=pid)
    wavelength = item.get("IlluminationWaveLength")
    emission = item.get("ImagePathFilterPassThroughWavelength")
    color = None
    if "PaletteColorLookupTableSequence" in item:  # the LUT's last entry is the channel colour
        lut = item.PaletteColorLookupTableSequence[0]
        try:
            last = [
                int.from_bytes(bytes(lut[f"{k}PaletteColorLookupTableData"].value)[-2:], "little")
                for k in ("Red", "Green", "Blue")
            ]
            color = (last[0] >> 8, last[1] >> 8, last[2] >> 8, 255)
        except (KeyError, TypeError):
            color = None
    return Channel(
        id=pid,
        name=_text(item, "OpticalPathDescription"),
        excitation_nm=float(wavelength) if wavelength not in (None, "") else None,
        emission_nm=float(emission) if emission not in (None, "") else None,
        color=color,  # type: ignore[arg-type]
    )


def _objective(item: Dataset | None) -> Objective | None:
    if item is None:
        return None
    power = item.get("ObjectiveLensPower")
    na = item.get("ObjectiveLensNumericalAperture")
    if power in (None, "") and na in (None, ""):
        return None
    return Objective(
        magnification=float(power) if power not in (None, "") else None,
        numerical_aperture=float(na) if na not in (None, "") else None,
    )


def _spacing(ds: Dataset) -> tuple[float, float] | None:
    """(x, y) µm from Pixel Spacing [row (Y), column (X)] mm (PS3.3 C.7.6.16.2.1)."""
    try:
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        row, col = (float(v) for v in measures.PixelSpacing)
    except (AttributeError, IndexError, KeyError, ValueError, TypeError):
        spacing = ds.get("PixelSpacing")
        if not spacing:
            return None
        row, col = (float(v) for v in spacing)
    return (col * 1000.0, row * 1000.0)


def _origin(ds: Dataset) -> tuple[float, float] | None:
    try:
        item = ds.TotalPixelMatrixOriginSequence[0]
        return (
            float(item.XOffsetInSlideCoordinateSystem),
            float(item.YOffsetInSlideCoordinateSystem),
        )
    except (AttributeError, IndexError, ValueError, TypeError):
        return None


def _orientation(ds: Dataset) -> tuple[float, float, float, float, float, float] | None:
    value = ds.get("ImageOrientationSlide")
    if not value or len(value) != 6:
        return None
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        from pydicom.valuerep import DT

        return DT(str(value))
    except ValueError:
        return None


def _codec(ds: Dataset, first_frame: bytes | None) -> tuple[Codec, bytes | None, str | None]:
    """Codec of an instance's frames, the marker to insert (if any), and an issue (if any)."""
    ts = str(ds.file_meta.TransferSyntaxUID)
    pi = str(ds.PhotometricInterpretation)
    history = str(ds.get("LossyImageCompression", "")) == "01"  # once lossy, always lossy
    spp = int(ds.SamplesPerPixel)
    bits = int(ds.BitsAllocated)
    mono = pi.startswith("MONOCHROME")
    if ts in _NATIVE:
        photometric = Photometric.MONOCHROME if mono else Photometric.RGB
        issue = None
        if pi not in ("MONOCHROME2", "RGB"):
            issue = f"native {pi} pixels are not supported"
        elif spp == 3 and int(ds.get("PlanarConfiguration", 0)) != 0:
            issue = "colour-by-plane native pixels (Planar Configuration 1) are not supported yet"
        elif bits not in (8, 16):
            issue = f"{bits}-bit pixels are not supported"
        codec = Codec(
            Compression.NONE, photometric, bits, spp, lossless=True, lossy_history=history
        )
        return codec, None, issue
    if ts in _JPEG:
        assert first_frame is not None
        header = jpeg.parse_header(first_frame)
        photometric, insert = jpeg.decide_photometric(header, tiff_rgb=pi == "RGB")
        codec = Codec(
            Compression.JPEG,
            photometric,
            header.precision if header.precision > 8 else 8,
            spp,
            subsampling=header.subsampling,
            lossless=header.lossless,
            process=header.sof & 0xFF,
            inserted_marker=insert,
            lossy_history=history,
        )
        issue = None if header.precision == 8 else f"{header.precision}-bit JPEG"
        if (header.width, header.height) != (int(ds.Columns), int(ds.Rows)):
            raise MetadataError(
                f"the JPEG frames are {header.width}×{header.height}, the header says "
                f"{ds.Columns}×{ds.Rows} (Columns × Rows)"
            )
        return codec, insert, issue
    if ts in _J2K:
        photometric = {
            "YBR_RCT": Photometric.YBR_RCT,
            "YBR_ICT": Photometric.YBR_ICT,
        }.get(pi, Photometric.MONOCHROME if mono else Photometric.RGB)
        codec = Codec(
            Compression.JPEG2000, photometric, bits, spp, lossless=_J2K[ts], lossy_history=history
        )
        return codec, None, None
    if ts in _JPEGLS:
        photometric = Photometric.MONOCHROME if mono else Photometric.RGB
        codec = Codec(
            Compression.JPEGLS, photometric, bits, spp, lossless=_JPEGLS[ts], lossy_history=history
        )
        return codec, None, None
    codec = Codec(Compression.OTHER, Photometric.RGB, bits, spp)
    return codec, None, f"transfer syntax {UID(ts).name} is not supported"


def _planes_um(ds: Dataset) -> list[float]:
    """Z of each focal plane of an instance, µm: the origin's Z Offset (C.8.12.2) plus
    Spacing Between Slices (mm, C.7.6.16.2.1) per plane, glass to coverslip."""
    n = int(ds.get("TotalPixelMatrixFocalPlanes", 1) or 1)
    z0 = 0.0
    with contextlib.suppress(AttributeError, IndexError, TypeError, ValueError):
        z0 = float(ds.TotalPixelMatrixOriginSequence[0].get("ZOffsetInSlideCoordinateSystem", 0))
    step = 1.0
    try:
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        step = float(measures.get("SpacingBetweenSlices", 0.001)) * 1000.0
    except (AttributeError, IndexError, TypeError, ValueError):
        pass
    return [round(z0 + k * step, 6) for k in range(n)]


def _level(
    instances: list[tuple[Path, Dataset]],
    li: int,
    size: tuple[int, int],
    size0: tuple[int, int],
    channel_ids: list[str],
    image_z: list[float],
    image_index: int,
    frames: FileFrames | RemoteFrames,
    warnings: list[str],
    where: str,
) -> tuple[Level, list[DicomHeader]]:
    first_ds = instances[0][1]
    rows, cols = int(first_ds.Rows), int(first_ds.Columns)
    spp = int(first_ds.SamplesPerPixel)
    nx, ny = -(-size[0] // cols), -(-size[1] // rows)
    n_c = len(channel_ids)
    n_z = len(image_z)
    entries: list[Entry] = [None] * (nx * ny * n_z * n_c)
    headers = []
    compressed = 0
    codec = insert = issue = None
    # concatenation members are read in order, as one instance
    ordered = sorted(
        instances,
        key=lambda fd: (
            str(fd[1].get("ConcatenationUID", fd[1].SOPInstanceUID)),
            int(fd[1].get("InConcatenationNumber", 0) or 0),
        ),
    )
    frame_offsets: dict[str, int] = defaultdict(int)
    for path, ds in ordered:
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise MetadataError(f"{where} level {li}: instances differ in tile size", path=path)
        n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        bits = int(ds.BitsAllocated)
        found, encapsulated, stored = frames.entries(
            path, ds, n_frames, rows * cols * spp * (bits // 8)
        )
        if codec is None:
            first = frames.first(found[0]) if encapsulated else None
            try:
                codec, insert, issue = _codec(ds, first)
            except jpeg.JpegError as exc:
                raise InputError(
                    f"the first frame is not a JPEG stream ({exc})", path=path
                ) from None
        compressed += stored
        group = str(ds.get("ConcatenationUID", ds.SOPInstanceUID))
        base = frame_offsets[group]
        frame_offsets[group] += n_frames
        local_paths = _paths_of(ds) or channel_ids[:1]
        local_planes = _planes_um(ds)
        local_z = len(local_planes)
        z_index = [min(range(n_z), key=lambda k, v=v: abs(image_z[k] - v)) for v in local_planes]
        organisation = str(ds.get("DimensionOrganizationType", ""))
        per_frame = ds.get("PerFrameFunctionalGroupsSequence")
        if organisation == "TILED_FULL" or (not per_frame and organisation != "TILED_SPARSE"):
            if not organisation:
                warnings.append(
                    f"{path.name}: no Dimension Organization Type; frames read as TILED_FULL"
                )
            for i, entry in enumerate(found):
                f = base + i
                x, y = f % nx, (f // nx) % ny
                z, c_local = z_index[(f // (nx * ny)) % local_z], f // (nx * ny * local_z)
                if c_local >= len(local_paths):
                    raise MetadataError(
                        f"{where} level {li}: more frames than the tile grid holds", path=path
                    )
                c = (
                    channel_ids.index(local_paths[c_local])
                    if local_paths[c_local] in channel_ids
                    else 0
                )
                entries[((c * n_z + z) * ny + y) * nx + x] = entry
        else:
            if per_frame is None or len(per_frame) != n_frames:
                raise MetadataError(
                    f"{where} level {li}: TILED_SPARSE without a Per-frame Functional Group "
                    "for each frame",
                    path=path,
                )
            for i, (fg, entry) in enumerate(zip(per_frame, found, strict=True)):
                pos = fg.PlanePositionSlideSequence[0]
                col = int(pos.ColumnPositionInTotalImagePixelMatrix)
                row = int(pos.RowPositionInTotalImagePixelMatrix)
                if (col - 1) % cols or (row - 1) % rows:
                    raise MetadataError(
                        f"{where} level {li}: frame {i + 1} at column {col}, row {row} is not on "
                        f"the {cols}×{rows} tile grid",
                        path=path,
                    )
                x, y = (col - 1) // cols, (row - 1) // rows
                if not (0 <= x < nx and 0 <= y < ny):
                    raise MetadataError(
                        f"{where} level {li}: frame {i + 1} lies outside the image", path=path
                    )
                zv = float(getattr(pos, "ZOffsetInSlideCoordinateSystem", 0) or 0)
                z = min(range(n_z), key=lambda k, v=zv: abs(image_z[k] - v))
                pid = local_paths[0]
                if "OpticalPathIdentificationSequence" in fg:
                    pid = str(fg.OpticalPathIdentificationSequence[0].OpticalPathIdentifier)
                c = channel_ids.index(pid) if pid in channel_ids else 0
                entries[((c * n_z + z) * ny + y) * nx + x] = entry
        headers.append(
            DicomHeader(
                image_index=image_index,
                level=li,
                sop_instance_uid=str(ds.SOPInstanceUID),
                transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
                json=carrier.header_json(ds),
            )
        )
    assert codec is not None
    missing = sum(1 for e in entries if e is None)
    blank = None
    if missing:
        blank = _blank_tile(codec, (rows, cols, spp), first_ds)
        warnings.append(
            f"{where} level {li}: {missing} absent tile(s) filled with one blank tile "
            "(Recommended Absent Pixel CIELab Value, or white)"
        )
    source = DicomTileSource(
        entries,
        (nx, ny),
        (n_z, n_c),
        compression=codec.compression,
        tile_shape=(rows, cols, spp),
        dtype="uint16" if codec.bits == 16 else "uint8",
        blank=blank,
        insert=insert,
        label=f"{where} level {li} frame",
    )
    downsample = (size0[0] / size[0], size0[1] / size[1])
    level = Level(li, size, (cols, rows), codec, source, downsample, None, compressed, issue)
    return level, headers


def _blank_tile(codec: Codec, shape: tuple[int, int, int], ds: Dataset) -> bytes:
    """One tile in the recommended absent-pixel colour (or white), encoded like the others."""
    import numpy as np

    rows, cols, samples = shape
    value = 255 if codec.bits == 8 else 65535
    lab = ds.get("RecommendedAbsentPixelCIELabValue")
    fill = [value] * samples
    if lab is not None and samples == 3:
        from highdicom.color import CIELabColor

        try:
            fill = list(CIELabColor.from_dicom_value([int(v) for v in lab]).to_rgb())
        except (ValueError, TypeError):
            fill = [value] * samples
    array = np.empty((rows, cols, samples), np.uint16 if codec.bits == 16 else np.uint8)
    array[...] = fill
    import imagecodecs

    if codec.compression is Compression.NONE:
        return array.astype(array.dtype.newbyteorder("<")).tobytes()
    if codec.compression is Compression.JPEG:
        out = "RGB" if codec.photometric is Photometric.RGB else None
        sub = {(1, 1): "444", (2, 1): "422", (2, 2): "420"}.get(codec.subsampling, "444")
        return imagecodecs.jpeg8_encode(
            array if samples == 3 else array[..., 0], level=95, outcolorspace=out, subsampling=sub
        )
    if codec.compression is Compression.JPEG2000:
        return imagecodecs.jpeg2k_encode(
            array if samples == 3 else array[..., 0], level=0, codecformat="J2K"
        )
    return imagecodecs.jpegls_encode(array if samples == 3 else array[..., 0], level=0)


def read_remote(series: RemoteSeries, datasets: Sequence[Dataset], where: str) -> Slide:
    """A slide from a DICOMweb series: ``datasets`` are the instances' WADO-RS metadata
    (no Pixel Data); frames are fetched lazily in their stored transfer syntax."""
    from pydicom.dataset import FileMetaDataset

    chosen = []
    skipped = []
    for ds in datasets:
        if str(ds.get("SOPClassUID", "")) != WSM:
            skipped.append(
                f"{ds.get('SOPInstanceUID', '?')}: {_sop_name(str(ds.get('SOPClassUID', '')))}"
            )
            continue
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = series.transfer_syntax(str(ds.SOPInstanceUID))
        chosen.append((Path(str(ds.SOPInstanceUID)), ds))
    if not chosen:
        raise InputError("no DICOM VL Whole Slide Microscopy image in the series", path=where)
    warnings = [f"{name} is not a whole-slide image and was skipped" for name in skipped]
    frames = RemoteFrames(series)
    return _build(chosen, frames, warnings, where)
