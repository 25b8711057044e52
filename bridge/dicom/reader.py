"""DICOM VL Whole Slide Microscopy instances (files or folders) -> slide model.

Grouping (PS3.3 A.32.8, C.7.11.1): one slide = one Series; within it, VOLUME instances form a
pyramid per Pyramid UID (or, without one, by optical paths, focal planes, photometric
interpretation and physical extent: grouping.py), levels ordered by Total Pixel Matrix size;
LABEL, OVERVIEW and THUMBNAIL instances are associated images. Frames are addressed by
TILED_FULL order (C.7.6.17.3) or by the Plane Position (Slide) of TILED_SPARSE frames;
concatenations (C.7.6.16.2.2.4) are read as one instance. Nothing is decoded: tiles are the
frames' stored bytes.
"""

from __future__ import annotations

import contextlib
import os
import struct
import warnings as warnings_module
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from .. import fieldmap, specimen, tables
from ..codecs import jpeg, jpeg2000, sniff
from ..errors import InputError, MetadataError, SeveralSlidesError
from ..model import (
    AnnotationGroup,
    Carriers,
    Channel,
    Codec,
    Compression,
    Detector,
    DicomHeader,
    Image,
    ImageKind,
    Level,
    Microscope,
    Objective,
    Patient,
    Photometric,
    Slide,
)
from . import carrier, geometry
from . import grouping as grouping_module
from .frames import HEADER_END, truncated_error, truncation
from .geometry import Geometry
from .sources import FileFrames, RemoteFrames, RemoteSeries
from .tiles import DicomTileSource, Entry

WSM = "1.2.840.10008.5.1.4.1.1.77.1.6"
ANN = "1.2.840.10008.5.1.4.1.1.91.1"
MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"  # a DICOMDIR: its data set has no SOP Class UID

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


def _not_dicom_hint(paths: Sequence[str | os.PathLike[str]]) -> str:
    """What to give instead, when a folder holds no DICOM: it may hold OME-TIFF files or an
    OME companion file (a multi-file OME-TIFF set, which is read one file at a time)."""
    tiffs: list[Path] = []
    companions: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            continue
        for entry in sorted(path.iterdir())[:10_000]:
            name = entry.name.lower()
            if name.endswith(".companion.ome"):
                companions.append(entry)
            elif name.endswith((".tif", ".tiff", ".svs", ".ndpi", ".qptiff")):
                tiffs.append(entry)
    if companions or tiffs:
        what = (
            f"an OME companion file ({companions[0].name}) and {len(tiffs)} TIFF file(s)"
            if companions
            else f"{len(tiffs)} TIFF file(s)"
        )
        return (
            f"the folder holds {what}; omedicom converts one TIFF file at a time: give a "
            f"file, e.g. {(tiffs or companions)[0]}"
            + (
                " (a multi-file OME-TIFF set is read per file; bfconvert can merge it)"
                if companions
                else ""
            )
        )
    return "give a DICOM file or a folder holding one"


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
        raise InputError("no DICOM files found", path=where, hint=_not_dicom_hint(paths))
    headers: list[tuple[Path, Dataset]] = []
    others: list[str] = []
    annotations: list[Path] = []
    noted: list[str] = []
    for f in files:
        try:
            with warnings_module.catch_warnings(record=True) as caught:
                warnings_module.simplefilter("always")
                with open(f, "rb") as fh:
                    ds = pydicom.dcmread(fh, stop_before_pixels=True)
                    # where Pixel Data starts: the frame index reads from there (frames.py)
                    object.__setattr__(ds, HEADER_END, fh.tell())
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
        elif not sop:  # a DICOMDIR, or the file was cut short
            others.append(f"{f.name}: {_sop_name(_meta_class(f, ds))}")
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
    except InputError:
        frames.close()
        _refuse_truncated(chosen)
        raise
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError, IndexError) as exc:
        frames.close()
        _refuse_truncated(chosen)
        raise InputError(
            f"the DICOM header is incomplete or inconsistent ({type(exc).__name__}: {exc})",
            path=where,
            hint="check the files with: omedicom check PATH",
        ) from None
    except BaseException:
        frames.close()
        raise


def _meta_class(path: Path, ds: Dataset) -> str:
    """A DICOM file without a SOP Class UID (0008,0016) in its data set: a DICOMDIR (its
    class is in the File Meta Information, PS3.10 7.1) is skipped as not an image; anything
    else is no complete instance, most often a file cut short in its header."""
    meta_class = str(getattr(ds, "file_meta", {}).get("MediaStorageSOPClassUID", ""))
    if meta_class == MEDIA_DIRECTORY:
        return meta_class
    if cut := truncation(path):
        raise truncated_error(path, cut)
    raise InputError(
        f"the file has no SOP Class UID (0008,0016) in its header ({path.stat().st_size} "
        "bytes): it is not a complete DICOM instance",
        path=path,
        hint="the file was probably cut short; fetch it again",
    )


def _refuse_truncated(chosen: Sequence[tuple[Path, Dataset]]) -> None:
    """A file cut short explains a missing or inconsistent attribute best: say that instead.
    Looked for only once something failed (it reads each header again)."""
    for f, _ in chosen:
        if cut := truncation(f):
            raise truncated_error(f, cut) from None


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
    # every instance's sizes are checked before anything is sized by them (geometry.py)
    shapes = {id(ds): geometry.of(f, ds) for f, ds in chosen}
    geometry.check_concatenations(chosen, shapes)
    volumes: list[tuple[Path, Dataset]] = []
    associated: list[list[tuple[Path, Dataset]]] = []
    for f, ds in chosen:
        kind = _kind(ds)
        if "ImageType" not in ds:
            warnings.append(f"{f.name}: no Image Type; read as a VOLUME image")
        if kind is ImageKind.VOLUME:
            volumes.append((f, ds))
        else:
            associated.append([(f, ds)])
    grouping = grouping_module.group(volumes, shapes)
    warnings.extend(grouping.notes)
    groups = [list(p) for p in grouping.pyramids] + associated
    # Instances written from an OME-TIFF by the bridge say which OME Image (and level) they
    # were: keep that order and numbering, so the way back restores the original layout.
    infos = _tiff_infos(chosen, groups, warnings)
    carried = all(info is not None for info in infos.values())
    if carried:
        groups.sort(key=lambda g: infos[str(g[0][1].SOPInstanceUID)].image_index)  # type: ignore[union-attr]
    images = []
    headers: list[DicomHeader] = []
    ome_xml = None
    for position, group in enumerate(groups):
        first_info = infos[str(group[0][1].SOPInstanceUID)]
        index = first_info.image_index if carried and first_info else position
        image, image_headers = _image(group, index, frames, warnings, shapes)
        images.append(image)
        headers.extend(image_headers)
        for _, ds in group:
            ome_xml = ome_xml or carrier.read_ome_xml(ds)
    if ome_xml is not None:
        damage = _ome_xml_damage(ome_xml, images)
        if damage:
            warnings.append(f"the carried OME-XML is damaged ({damage}); {_INSTEAD}")
            ome_xml = None
    tiff_info = _tiff_infos_that_fit(infos, images, warnings)
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
        specimen=specimen.from_dicom(first),
        carriers=Carriers(ome_xml=ome_xml, dicom=tuple(headers), tiff=tiff_info),
        source=where,
        warnings=tuple(warnings),
        close=frames.close,
    )


_INSTEAD = "the standard attributes are used instead"


def _tiff_infos(
    chosen: list[tuple[Path, Dataset]],
    groups: list[list[tuple[Path, Dataset]]],
    warnings: list[str],
) -> dict[str, Any]:
    """The (0077,xx11) carriers by SOP Instance UID (carrier.py), all None when any is damaged
    or they do not give each image (pyramid or associated image) one index of its own."""
    infos: dict[str, Any] = {}
    for f, ds in chosen:
        try:
            infos[str(ds.SOPInstanceUID)] = carrier.read_tiff_info(ds)
        except carrier.Damaged as exc:
            warnings.append(f"{f.name}: the carried TIFF layout is damaged ({exc}); {_INSTEAD}")
            return dict.fromkeys(infos.keys() | {str(d.SOPInstanceUID) for _, d in chosen})
    if all(info is not None for info in infos.values()):
        per_group = [{infos[str(ds.SOPInstanceUID)].image_index for _, ds in g} for g in groups]
        indices = [next(iter(ids)) for ids in per_group if len(ids) == 1]
        if len(indices) != len(groups) or len(set(indices)) != len(indices):
            warnings.append(
                "the carried TIFF layout is damaged (its image numbers do not give each image "
                f"one number of its own); {_INSTEAD}"
            )
            return dict.fromkeys(infos)
    return infos


def _tiff_infos_that_fit(
    infos: dict[str, Any], images: list[Image], warnings: list[str]
) -> tuple[Any, ...]:
    """Carried TIFF layouts whose JPEG tables and marker are really in the level's frames
    (the OME-TIFF writer takes them out of each frame again)."""
    levels = {
        (image.source_index, level.index): level for image in images for level in image.levels
    }
    kept = []
    for info in dict.fromkeys(i for i in infos.values() if i is not None):
        level = levels.get((info.image_index, info.level))
        strip = (info.inserted_marker or b"") + (info.jpeg_tables or b"\xff\xd8\xff\xd9")[2:-2]
        if strip and (level is None or level.codec.compression is not Compression.JPEG):
            fits = False
        elif strip and level is not None:
            fits = _first_tile(level)[2 : 2 + len(strip)] == strip
        else:
            fits = True
        if not fits:
            warnings.append(
                f"the carried TIFF layout of image {info.image_index} level {info.level} is "
                f"damaged (its JPEG tables are not in the frames); {_INSTEAD}"
            )
            continue
        kept.append(info)
    return tuple(kept)


def _first_tile(level: Level) -> bytes:
    nx, ny = level.grid
    for y in range(ny):
        for x in range(nx):
            if level.tiles.encoded_size(x, y) is not None:
                return level.tiles.encoded(x, y)
    return b""


def _ome_xml_damage(xml: str, images: list[Image]) -> str | None:
    """Why the carried OME-XML cannot describe these pixels, or None: it must parse (any OME
    schema, ``ometiff.omexml``) and, where it has an Image for each image, agree with it on
    Pixels SizeX, SizeY, SizeZ, SizeC and Type (OME schema, Pixels)."""
    from ..ometiff import omexml

    try:
        ome = omexml.parse(xml)
    except Exception as exc:  # any failure to parse means the carrier cannot be used
        return f"{type(exc).__name__}: {exc}"[:200]
    if len(ome.images) != len(images):
        return None  # the writer then writes its own OME-XML (omexml_writer.build)
    for image in images:
        if image.source_index >= len(ome.images):
            return f"no OME Image {image.source_index}"
        pixels = ome.images[image.source_index].pixels
        want = (image.size[0], image.size[1], image.size_z, image.size_c * image.samples_per_pixel)
        have = (pixels.size_x, pixels.size_y, pixels.size_z, pixels.size_c)
        if have != want or pixels.type != image.dtype:
            return (
                f"Image {image.source_index} says {have[0]}×{have[1]} px, {have[2]} plane(s), "
                f"{have[3]} channel(s) of {pixels.type}; the pixels are {want[0]}×{want[1]}, "
                f"{want[2]}, {want[3]} of {image.dtype}"
            )
    return None


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


def _paths_of(ds: Dataset) -> list[str]:
    return [
        str(item.get("OpticalPathIdentifier", "")) for item in ds.get("OpticalPathSequence", [])
    ]


def _image(
    group: list[tuple[Path, Dataset]],
    index: int,
    frames: FileFrames | RemoteFrames,
    warnings: list[str],
    shapes: dict[int, Geometry],
) -> tuple[Image, list[DicomHeader]]:
    by_size: dict[tuple[int, int], list[tuple[Path, Dataset]]] = defaultdict(list)
    # instance order decides channel order: Instance Number, not file names (c10 < c2)
    group = sorted(group, key=lambda fd: (int(fd[1].get("InstanceNumber", 0) or 0), str(fd[0])))
    for f, ds in group:
        by_size[shapes[id(ds)].size].append((f, ds))
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
    z_values = sorted({z for f, ds in by_size[sizes[0]] for z in _planes_um(f, ds, shapes[id(ds)])})
    levels = []
    headers = []
    where = f"image {index}"
    for li, size in enumerate(sizes):
        instances = by_size[size]
        level, level_headers = _level(
            instances, li, size, sizes[0], channel_ids, z_values, index, frames, warnings, where,
            shapes,
        )  # fmt: skip
        levels.append(level)
        headers.extend(level_headers)
    base_path = by_size[sizes[0]][0][0]
    spacing = _spacing(base_path, base)
    samples = shapes[id(base)].samples
    channels = tuple(_channel(pid, path_items.get(pid), base_path) for pid in channel_ids)
    if samples == 3:
        channels = (Channel(id=channels[0].id, name=channels[0].name, samples_per_pixel=3),)
    item0 = path_items.get(channel_ids[0])
    icc = bytes(item0.ICCProfile) if item0 is not None and "ICCProfile" in item0 else None
    return (
        Image(
            kind=kind,
            name=_text(base, "PyramidLabel") or _text(base, "SeriesDescription"),
            dtype="uint16" if shapes[id(base)].bits == 16 else "uint8",
            samples_per_pixel=samples,
            photometric=levels[0].codec.photometric,
            levels=tuple(levels),
            channels=channels,
            focal_planes_um=tuple(z_values),
            pixel_size_um=spacing,
            origin_mm=_origin(base_path, base),
            orientation=_orientation(base_path, base),
            acquired=_datetime(base.get("AcquisitionDateTime")),
            description=_text(base, "PyramidDescription"),
            objective=_objective(item0, base_path),
            microscope=_microscope(base),
            detector=_detector(base),
            icc_profile=icc,
            source_index=index,
        ),
        headers,
    )


def _optional(item: Dataset, keyword: str, name: str, path: Path) -> float | None:
    """An optional positive decimal of an Optical Path item (wavelength, lens power)."""
    value = item.get(keyword)
    if value in (None, ""):
        return None
    return geometry.finite(value, name, path, positive=True)


def _channel(pid: str, item: Dataset | None, path: Path) -> Channel:
    """A Channel from an Optical Path item: the fields of ``mappings/fields.toml`` through
    ``bridge.fieldmap``, the colour from the palette (its handler, below)."""
    if item is None:
        return Channel(id=pid)
    _check_positive(item, "channel", path)
    return Channel(
        id=pid,
        color=_channel_color(item),
        excitation_band_nm=_band(item, "LightPathFilterPassBand"),
        emission_band_nm=_band(item, "ImagePathFilterPassBand"),
        illuminator=fieldmap.reverse_code(
            "illuminator_type", item.get("IlluminatorTypeCodeSequence")
        ),
        **fieldmap.from_dicom("channel", item),
    )


def _band(item: Dataset, keyword: str) -> tuple[float, float] | None:
    """A filter's pass band (PS3.3 C.8.12.5.1.1, US x 2, nm): two numbers, low < high."""
    values = _values(item.get(keyword))
    try:
        low, high = (float(v) for v in values)
    except (TypeError, ValueError):
        return None
    return (low, high) if 0 < low < high else None


def _channel_color(item: Dataset) -> tuple[int, int, int, int] | None:
    """The last entry of a Palette Color Lookup Table: the channel's colour (r, g, b, 255)."""
    if "PaletteColorLookupTableSequence" not in item:
        return None
    lut = item.PaletteColorLookupTableSequence[0]
    try:
        last = [
            int.from_bytes(bytes(lut[f"{k}PaletteColorLookupTableData"].value)[-2:], "little")
            for k in ("Red", "Green", "Blue")
        ]
    except (KeyError, TypeError):
        return None
    return (last[0] >> 8, last[1] >> 8, last[2] >> 8, 255)


def _check_positive(item: Dataset, scope: str, path: Path) -> None:
    """A numeric mapped attribute that is present must be a finite positive number (the
    reader refuses a damaged one, as it did before the table: ``geometry.finite``)."""
    for row in fieldmap.scope_rows(scope):
        if row.type == "float" and row.keyword and not row.codes and row.direction == "both":
            _optional(item, row.keyword, row.keyword, path)


def _objective(item: Dataset | None, path: Path) -> Objective | None:
    if item is None:
        return None
    _check_positive(item, "objective", path)
    mapped = fieldmap.from_dicom("objective", item)
    return Objective(**mapped) if mapped else None


def _microscope(ds: Dataset) -> Microscope | None:
    """Enhanced General Equipment (PS3.3 C.7.5.2) -> the microscope ("Unknown" is none)."""
    mapped = fieldmap.from_dicom("microscope", ds)
    return Microscope(**mapped) if mapped else None


def _detector(ds: Dataset) -> Detector | None:
    """The Contributing Equipment item whose purpose is Acquisition Equipment (CID 7005)."""
    wanted = tables.code("equipment_purpose", "acquisition")
    for item in ds.get("ContributingEquipmentSequence", None) or ():
        codes = item.get("PurposeOfReferenceCodeSequence", None) or ()
        if any(str(c.get("CodeValue", "")) == wanted[0] for c in codes):
            mapped = fieldmap.from_dicom("detector", item)
            return Detector(**mapped) if mapped else None
    return None


def _values(value: Any) -> list[Any]:
    """A multi-valued attribute's values as a list (one value is a list of one)."""
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return list(value)
    return [value]


def _spacing(path: Path, ds: Dataset) -> tuple[float, float] | None:
    """(x, y) µm from Pixel Spacing [row (Y), column (X)] mm (PS3.3 C.7.6.16.2.1): two
    positive finite numbers, or absent."""
    value = None
    with contextlib.suppress(AttributeError, IndexError, KeyError, TypeError):
        value = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].get("PixelSpacing")
    values = _values(value) or _values(ds.get("PixelSpacing"))
    if not values:
        return None
    if len(values) != 2:
        raise MetadataError(
            f"Pixel Spacing has {len(values)} value(s); it must have 2 (row and column "
            "spacing, mm)",
            path=path,
        )
    row, col = (geometry.finite(v, "Pixel Spacing", path, positive=True) for v in values)
    return (col * 1000.0, row * 1000.0)


def _origin(path: Path, ds: Dataset) -> tuple[float, float] | None:
    """X and Y Offset in Slide Coordinate System, mm (PS3.3 C.8.12.2); finite or absent."""
    try:
        item = ds.TotalPixelMatrixOriginSequence[0]
        x, y = item.XOffsetInSlideCoordinateSystem, item.YOffsetInSlideCoordinateSystem
    except (AttributeError, IndexError, TypeError):
        return None
    if x in (None, "") or y in (None, ""):
        return None
    return (
        geometry.finite(x, "X Offset in Slide Coordinate System", path),
        geometry.finite(y, "Y Offset in Slide Coordinate System", path),
    )


def _orientation(path: Path, ds: Dataset) -> tuple[float, float, float, float, float, float] | None:
    """Image Orientation (Slide) (PS3.3 C.8.12.4.1.5): six finite direction cosines."""
    values = _values(ds.get("ImageOrientationSlide"))
    if len(values) != 6:
        return None
    return tuple(geometry.finite(v, "Image Orientation (Slide)", path) for v in values)  # type: ignore[return-value]


def _datetime(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        from pydicom.valuerep import DT

        return DT(str(value))
    except ValueError:
        return None


#: What each family of transfer syntaxes holds (PS3.5 A.4), as the frames' bytes say it.
_KIND = {
    **{ts: sniff.Kind.JPEG for ts in _JPEG},
    **{ts: sniff.Kind.J2K for ts in _J2K},
    **{ts: sniff.Kind.JPEGLS for ts in _JPEGLS},
}


def _check_frames(path: Path, ds: Dataset, first: bytes | None, encapsulated: bool) -> None:
    """The frames must be what the Transfer Syntax UID (0002,0010) says (PS3.5 A.4): native
    pixels in a native syntax, and encapsulated frames of the named codec, told from the first
    frame's bytes (SOI FFD8 and SOFn for JPEG, SOF55 FFF7 for JPEG-LS, SOC FF4F SIZ FF51 for
    JPEG 2000 and HTJ2K)."""
    ts = str(ds.file_meta.TransferSyntaxUID)
    name = f"{ts} ({UID(ts).name})" if UID(ts).name != ts else ts
    hint = "the file is mislabelled; re-export it from its source"
    if ts in _NATIVE and encapsulated:
        raise InputError(
            f"the Transfer Syntax UID {name} says native pixels, but the Pixel Data holds "
            "encapsulated (compressed) frames",
            path=path,
            hint=hint,
        )
    expected = _KIND.get(ts)
    if expected is None:
        return
    if not encapsulated:
        raise InputError(
            f"the Transfer Syntax UID {name} says compressed frames, but the Pixel Data is "
            "native (not encapsulated)",
            path=path,
            hint=hint,
        )
    found = sniff.kind(first or b"")
    if found is not expected:
        raise InputError(
            f"the first frame is {found.value}, but the Transfer Syntax UID {name} says "
            f"{expected.value}",
            path=path,
            hint=hint,
        )


def _frames_disagree(path: Path, what: str, found: tuple, header: tuple) -> MetadataError:
    return MetadataError(
        f"the {what} frames are {found[0]}×{found[1]} with {found[2]} component(s), the header "
        f"says {header[0]}×{header[1]} (Columns × Rows) with {header[2]} (Samples per Pixel)",
        path=path,
        hint="the header disagrees with the frames; re-export the slide from its source",
    )


def _codec(
    path: Path, ds: Dataset, shape: Geometry, first_frame: bytes | None
) -> tuple[Codec, bytes | None, str | None]:
    """Codec of an instance's frames, the marker to insert (if any), and an issue (if any).
    Frames whose own header disagrees with Columns, Rows or Samples per Pixel are refused."""
    ts = str(ds.file_meta.TransferSyntaxUID)
    pi = str(ds.get("PhotometricInterpretation", "") or "")
    if not pi:
        raise MetadataError("Photometric Interpretation is missing", path=path)
    history = str(ds.get("LossyImageCompression", "")) == "01"  # once lossy, always lossy
    spp, bits = shape.samples, shape.bits
    expected = (shape.columns, shape.rows, spp)
    mono = pi.startswith("MONOCHROME")
    if ts in _NATIVE:
        photometric = Photometric.MONOCHROME if mono else Photometric.RGB
        issue = None
        if pi not in ("MONOCHROME2", "RGB"):
            issue = f"native {pi} pixels are not supported"
        elif spp == 3 and str(ds.get("PlanarConfiguration", 0)) not in ("0", ""):
            issue = "colour-by-plane native pixels (Planar Configuration 1) are not supported yet"
        codec = Codec(
            Compression.NONE, photometric, bits, spp, lossless=True, lossy_history=history
        )
        return codec, None, issue
    data = first_frame or b""
    if ts in _JPEG:
        try:
            header = jpeg.parse_header(data)
            if header.sof == 0:
                raise jpeg.JpegError("no frame header (SOFn) before the first scan")
        except (jpeg.JpegError, IndexError) as exc:
            raise InputError(
                f"the first frame is not a readable JPEG stream ({exc}): the file is damaged",
                path=path,
            ) from None
        found = (header.width, header.height, len(header.components))
        if found != expected:
            raise _frames_disagree(path, "JPEG", found, expected)
        if header.precision > bits:
            raise MetadataError(
                f"the JPEG frames have {header.precision}-bit samples, more than Bits "
                f"Allocated ({bits})",
                path=path,
            )
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
        return codec, insert, issue
    if ts in _J2K:
        try:
            j2k = jpeg2000.parse_header(data)
        except (jpeg2000.J2kError, IndexError, struct.error) as exc:
            raise InputError(
                f"the first frame is not a readable JPEG 2000 codestream ({exc}): the file is "
                "damaged",
                path=path,
            ) from None
        found = (j2k.width, j2k.height, j2k.components)
        if found != expected:
            raise _frames_disagree(path, "JPEG 2000", found, expected)
        if j2k.bits > bits:
            raise MetadataError(
                f"the JPEG 2000 frames have {j2k.bits}-bit samples, more than Bits Allocated "
                f"({bits})",
                path=path,
            )
        photometric = {
            "YBR_RCT": Photometric.YBR_RCT,
            "YBR_ICT": Photometric.YBR_ICT,
        }.get(pi, Photometric.MONOCHROME if mono else Photometric.RGB)
        codec = Codec(
            Compression.JPEG2000, photometric, bits, spp, lossless=_J2K[ts], lossy_history=history
        )
        return codec, None, None
    if ts in _JPEGLS:
        ls = sniff.jpegls_header(data)
        if ls is None:
            raise InputError(
                "the first frame is not a readable JPEG-LS stream (no SOF55 frame header): "
                "the file is damaged",
                path=path,
            )
        if ls[:3] != expected:
            raise _frames_disagree(path, "JPEG-LS", ls[:3], expected)
        if ls[3] > bits:
            raise MetadataError(
                f"the JPEG-LS frames have {ls[3]}-bit samples, more than Bits Allocated ({bits})",
                path=path,
            )
        photometric = Photometric.MONOCHROME if mono else Photometric.RGB
        codec = Codec(
            Compression.JPEGLS, photometric, bits, spp, lossless=_JPEGLS[ts], lossy_history=history
        )
        return codec, None, None
    codec = Codec(Compression.OTHER, Photometric.RGB, bits, spp)
    return codec, None, f"transfer syntax {UID(ts).name} is not supported"


def _planes_um(path: Path, ds: Dataset, shape: Geometry) -> list[float]:
    """Z of each focal plane of an instance, µm: the origin's Z Offset (C.8.12.2) plus
    Spacing Between Slices (mm, C.7.6.16.2.1) per plane, glass to coverslip. The plane count
    is the checked Total Pixel Matrix Focal Planes (bounded by the frames, geometry.py)."""
    n = shape.focal_planes
    z0 = 0.0
    with contextlib.suppress(AttributeError, IndexError, TypeError):
        value = ds.TotalPixelMatrixOriginSequence[0].get("ZOffsetInSlideCoordinateSystem")
        if value not in (None, ""):
            z0 = geometry.finite(value, "Z Offset in Slide Coordinate System", path)
    step = 1.0
    with contextlib.suppress(AttributeError, IndexError, TypeError):
        measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
        value = measures.get("SpacingBetweenSlices")
        if value not in (None, ""):
            step = geometry.finite(value, "Spacing Between Slices", path, positive=n > 1) * 1000
    planes = [round(z0 + k * step, 6) for k in range(n)]
    if len(set(planes)) != n:
        raise MetadataError(
            f"the {n} focal planes do not have distinct Z positions (Spacing Between Slices "
            f"{step / 1000:g} mm)",
            path=path,
        )
    return planes


#: At most this many absent tiles per stored frame in a level: the writers fill every absent
#: tile with a blank one, so a Total Pixel Matrix far larger than the frames present could
#: (a hostile header) make an output of any size from a small file.
MAX_ABSENT_PER_FRAME = 255


def _check_level(
    ordered: list[tuple[Path, Dataset]],
    shapes: dict[int, Geometry],
    grid_tiles: int,
    where: str,
) -> None:
    """The instances of one level agree on frame size and sample format, and the level's grid
    x planes x paths is not out of all proportion to its frames (concatenations were checked
    by ``geometry.check_concatenations``). Runs before anything per tile is allocated."""
    path0, ds0 = ordered[0]
    first = shapes[id(ds0)]
    for path, ds in ordered:
        shape = shapes[id(ds)]
        if (shape.rows, shape.columns) != (first.rows, first.columns):
            raise MetadataError(
                f"{where}: instances differ in tile size (Rows, Columns)", path=path
            )
        if (shape.samples, shape.bits) != (first.samples, first.bits):
            raise MetadataError(
                f"{where}: instances differ in Samples per Pixel or Bits Allocated", path=path
            )
    frames = sum(shapes[id(ds)].frames for _, ds in ordered)
    if grid_tiles > frames * (MAX_ABSENT_PER_FRAME + 1):
        raise MetadataError(
            f"{where}: the tile grid has {grid_tiles} tiles (Total Pixel Matrix Columns × Rows "
            f"× focal planes × optical paths) but the instances hold only {frames} frame(s)",
            path=path0,
            hint="the Total Pixel Matrix is far larger than the frames present; the header is "
            "damaged",
        )


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
    shapes: dict[int, Geometry],
) -> tuple[Level, list[DicomHeader]]:
    first_ds = instances[0][1]
    shape0 = shapes[id(first_ds)]
    rows, cols, spp = shape0.rows, shape0.columns, shape0.samples
    nx, ny = -(-size[0] // cols), -(-size[1] // rows)
    n_c = len(channel_ids)
    n_z = len(image_z)
    # concatenation members are read in order, as one instance
    ordered = sorted(
        instances,
        key=lambda fd: (
            str(fd[1].get("ConcatenationUID", fd[1].SOPInstanceUID)),
            int(fd[1].get("InConcatenationNumber", 0) or 0),
        ),
    )
    _check_level(ordered, shapes, nx * ny * n_z * n_c, f"{where} level {li}")
    entries: dict[int, Entry] = {}  # grid index -> frame; absent tiles have none
    origins: dict[int, tuple[str, int]] = {}  # grid index -> (file, frame number)
    headers = []
    compressed = 0
    codec = insert = issue = None
    frame_offsets: dict[str, int] = defaultdict(int)
    for path, ds in ordered:
        shape = shapes[id(ds)]
        n_frames = shape.frames
        found, encapsulated, stored = frames.entries(path, ds, n_frames, shape.frame_bytes)
        if codec is None:
            first = frames.first(found[0]) if encapsulated else None
            _check_frames(path, ds, first, encapsulated)
            codec, insert, issue = _codec(path, ds, shape, first)
        compressed += stored
        group = str(ds.get("ConcatenationUID", ds.SOPInstanceUID))
        base = frame_offsets[group]
        frame_offsets[group] += n_frames
        local_paths = _paths_of(ds) or channel_ids[:1]
        local_planes = _planes_um(path, ds, shape)
        local_z = len(local_planes)
        z_index = [min(range(n_z), key=lambda k, v=v: abs(image_z[k] - v)) for v in local_planes]
        if shape.tiled_full:
            if not str(ds.get("DimensionOrganizationType", "")):
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
                key = ((c * n_z + z) * ny + y) * nx + x
                entries[key] = entry
                origins[key] = (str(path), i + 1)
        else:
            per_frame = ds.get("PerFrameFunctionalGroupsSequence")
            if per_frame is None or len(per_frame) != n_frames:
                raise MetadataError(
                    f"{where} level {li}: TILED_SPARSE without a Per-frame Functional Group "
                    "for each frame",
                    path=path,
                )
            for i, (fg, entry) in enumerate(zip(per_frame, found, strict=True)):
                try:
                    pos = fg.PlanePositionSlideSequence[0]
                    col = int(pos.ColumnPositionInTotalImagePixelMatrix)
                    row = int(pos.RowPositionInTotalImagePixelMatrix)
                    zv = geometry.finite(
                        getattr(pos, "ZOffsetInSlideCoordinateSystem", 0) or 0,
                        "Z Offset in Slide Coordinate System",
                        path,
                    )
                except (AttributeError, IndexError, TypeError, ValueError):
                    raise MetadataError(
                        f"{where} level {li}: frame {i + 1} has no readable Plane Position "
                        "(Slide) (Column/Row Position In Total Image Pixel Matrix)",
                        path=path,
                    ) from None
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
                z = min(range(n_z), key=lambda k, v=zv: abs(image_z[k] - v))
                pid = local_paths[0]
                if "OpticalPathIdentificationSequence" in fg:
                    pid = str(fg.OpticalPathIdentificationSequence[0].OpticalPathIdentifier)
                c = channel_ids.index(pid) if pid in channel_ids else 0
                key = ((c * n_z + z) * ny + y) * nx + x
                entries[key] = entry
                origins[key] = (str(path), i + 1)
        headers.append(
            DicomHeader(
                image_index=image_index,
                level=li,
                sop_instance_uid=str(ds.SOPInstanceUID),
                transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
                json=carrier.header_json(ds),
            )
        )
    if codec is None:
        raise MetadataError(f"{where} level {li}: no frames", path=instances[0][0])
    missing = nx * ny * n_z * n_c - len(entries)
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
        origins=origins,
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
