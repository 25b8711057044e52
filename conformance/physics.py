"""Physics checks: does the pixel size fit the optics that are said to have made it?

An image's pixel size at the specimen is the detector's pixel divided by the effective
magnification, s = p_sensor × binning / M_eff, where M_eff is the objective's magnification
times any tube-lens or camera-adapter factor recorded (OME ``Objective/@CalibratedMagnification``
is the calibrated M_eff when present). Neither OME nor DICOM WSM has a standard field for the
sensor's pixel pitch, so the files give ``p_sensor`` rarely; :func:`judge` then uses the
scanners' typical 0.25 µm at 40× (p_sensor = 10 µm) with a wide plausibility band.

Severities (issue 16): a 10× (or larger) mismatch is an error — a value in the wrong unit (nm
written as µm is 1000×); with a known sensor, more than 15 % off is a warning; with the sensor
unknown, an implied sensor pixel outside :data:`BAND` × 10 µm is a warning (a 40× objective
whose spacing says 10× is 4×).

The ratio of level sizes against the ratio of spacings in a DICOM pyramid is ``WSI-spacing``
(``wsi.py``); OME sub-resolutions have no spacing of their own to compare.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

from bridge import tables

from .catalog import finding
from .findings import Finding, Severity

#: The scanners' typical pixel: 0.25 µm at 40×, i.e. a 10 µm sensor pixel behind the objective.
TYPICAL_SENSOR_UM = 10.0
#: With the sensor unknown, implied sensor pixels from 2.5 to 30 µm are plausible (cameras of
#: 2.4-16 µm pitch, binning, 0.5×-2× adapters); outside it is a warning.
BAND = (0.25, 3.0)
#: With the sensor known, a relative difference above this is a warning.
TOLERANCE = 0.15
#: A mismatch of this factor or more is an error: a value in the wrong unit.
WRONG_UNIT = 10.0


@dataclass(frozen=True)
class Verdict:
    severity: Severity
    expected_um: float
    ratio: float
    basis: str


def judge(
    spacing_um: float,
    magnification: float,
    *,
    sensor_um: float | None = None,
    factor: float = 1.0,
    binning: float = 1.0,
) -> Verdict | None:
    """The verdict on a pixel size ``spacing_um`` for an objective of ``magnification`` (times
    ``factor``), or None when it fits. ``sensor_um`` is the detector's pixel pitch if known."""
    m_eff = magnification * factor
    if not (spacing_um > 0 and m_eff > 0 and binning > 0):
        return None
    known = sensor_um is not None and sensor_um > 0
    pitch = sensor_um if known else TYPICAL_SENSOR_UM
    assert pitch is not None
    expected = pitch * binning / m_eff
    ratio = spacing_um / expected
    basis = f"sensor pixel {pitch:g} µm" if known else "the typical 0.25 µm at 40× (sensor unknown)"
    if binning != 1:
        basis += f", binning {binning:g}"
    if ratio >= WRONG_UNIT or ratio <= 1 / WRONG_UNIT:
        return Verdict(Severity.ERROR, expected, ratio, basis)
    if known and abs(ratio - 1) > TOLERANCE:
        return Verdict(Severity.WARNING, expected, ratio, basis)
    if not known and not BAND[0] <= ratio <= BAND[1]:
        return Verdict(Severity.WARNING, expected, ratio, basis)
    return None


def _message(what: str, spacing_um: float, m_eff: float, verdict: Verdict) -> str:
    cause = " (a value in the wrong unit?)" if verdict.severity is Severity.ERROR else ""
    return (
        f"{what} {spacing_um:g} µm does not fit the objective: s = p_sensor / M_eff expects "
        f"{verdict.expected_um:g} µm at {m_eff:g}× from {verdict.basis}; off by a factor "
        f"{verdict.ratio:.3g}{cause}"
    )


# -- OME -----------------------------------------------------------------------------------------


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(el: object, name: str) -> list:
    return [c for c in el if _local(c.tag) == name]  # type: ignore[attr-defined]


def _float(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else math.nan
    except ValueError:
        return None
    return number if math.isfinite(number) and number > 0 else None


def _um(el: object, key: str) -> float | None:
    value = _float(el.get(key))  # type: ignore[attr-defined]
    if value is None:
        return None
    unit = el.get(key + "Unit") or "µm"  # type: ignore[attr-defined]
    if unit not in tables.table("units")["length"]:
        return None
    return tables.length_to_um(value, unit)


def _binning(text: str | None) -> float:
    """DetectorSettings/@Binning ("2x2", ome-2016-06.xsd Binning) as the linear factor."""
    match = re.fullmatch(r"(\d+)x(\d+)", text or "")
    return float(match.group(1)) if match else 1.0


def check_ome(root: object, where: dict) -> Iterator[Finding]:
    """OME-physics-* on every Image of an OME-XML document (an lxml or ElementTree root)."""
    objectives = {
        o.get("ID"): o
        for instrument in _children(root, "Instrument")
        for o in _children(instrument, "Objective")
    }
    for image in _children(root, "Image"):
        w = {**where, "image": image.get("ID")}
        pixels = next(iter(_children(image, "Pixels")), None)
        if pixels is None:
            continue
        yield from _ome_magnification(image, pixels, objectives, w)
        yield from _ome_z(image, pixels, w)


def _ome_magnification(
    image: object, pixels: object, objectives: dict, w: dict
) -> Iterator[Finding]:
    settings = next(iter(_children(image, "ObjectiveSettings")), None)
    objective = objectives.get(settings.get("ID")) if settings is not None else None
    if objective is None:
        return
    nominal = _float(objective.get("NominalMagnification"))
    calibrated = _float(objective.get("CalibratedMagnification"))
    m_eff = calibrated or nominal
    spacing = _um(pixels, "PhysicalSizeX")
    if m_eff is None or spacing is None:
        return
    channel = next(iter(_children(pixels, "Channel")), None)
    detector = (
        next(iter(_children(channel, "DetectorSettings")), None) if channel is not None else None
    )
    binning = _binning(detector.get("Binning")) if detector is not None else 1.0
    verdict = judge(spacing, m_eff, binning=binning)
    if verdict is None:
        return
    which = "CalibratedMagnification" if calibrated else "NominalMagnification"
    yield finding(
        "OME-physics-magnification",
        _message("PhysicalSizeX", spacing, m_eff, verdict)
        + f" (Objective {objective.get('ID')} @{which})",
        severity=verdict.severity,
        attribute=f"Image[@ID='{image.get('ID')}']/Pixels/@PhysicalSizeX",  # type: ignore[attr-defined]
        **w,
    )


def _ome_z(image: object, pixels: object, w: dict) -> Iterator[Finding]:
    """PhysicalSizeZ against the spacing of the Planes' PositionZ (first channel and time)."""
    dz = _um(pixels, "PhysicalSizeZ")
    if dz is None:
        return
    z = {}
    for plane in _children(pixels, "Plane"):
        if plane.get("TheC", "0") == "0" and plane.get("TheT", "0") == "0":
            value = plane.get("PositionZ")
            unit = plane.get("PositionZUnit") or "reference frame"
            if value is not None and unit in tables.table("units")["length"]:
                try:
                    z[int(plane.get("TheZ", "0"))] = tables.length_to_um(float(value), unit)
                except ValueError:
                    continue
    if len(z) < 2:
        return
    ordered = [z[k] for k in sorted(z)]
    steps = [abs(b - a) for a, b in itertools.pairwise(ordered)]
    step = sorted(steps)[len(steps) // 2]
    if step <= 0:
        return
    ratio = dz / step
    severity = _z_severity(ratio)
    if severity is None:
        return
    yield finding(
        "OME-physics-z",
        f"PhysicalSizeZ {dz:g} µm disagrees with the focal-plane spacing of Plane/@PositionZ "
        f"({step:g} µm, the median step): off by a factor {ratio:.3g}",
        severity=severity,
        attribute=f"Image[@ID='{image.get('ID')}']/Pixels/@PhysicalSizeZ",  # type: ignore[attr-defined]
        **w,
    )


def _z_severity(ratio: float) -> Severity | None:
    if ratio >= WRONG_UNIT or ratio <= 1 / WRONG_UNIT:
        return Severity.ERROR
    if abs(ratio - 1) > TOLERANCE:
        return Severity.WARNING
    return None


# -- DICOM ---------------------------------------------------------------------------------------


def check_pyramid(pyramid: object) -> Iterator[Finding]:
    """WSI-physics-* on the base level of a DICOM pyramid (``pyramid.Pyramid``)."""
    from .dicomfiles import number, pixel_spacing

    base = pyramid.base  # type: ignore[attr-defined]
    found = pixel_spacing(base.ds)
    if found is None:
        return
    (_row_mm, col_mm), _ = found
    spacing = col_mm * 1000.0
    for index, path in enumerate(base.ds.get("OpticalPathSequence", None) or []):
        power = number(path, "ObjectiveLensPower")
        if power is None or power <= 0:
            continue
        verdict = judge(spacing, power)
        if verdict is not None:
            yield finding(
                "WSI-physics-magnification",
                _message("Pixel Spacing (column)", spacing, power, verdict),
                severity=verdict.severity,
                file=base.name,
                level=0,
                attribute=f"OpticalPathSequence[{index}].ObjectiveLensPower",
            )
        break  # one objective per acquisition: the first path that says
    yield from _dicom_z(pyramid)


def _dicom_z(pyramid: object) -> Iterator[Finding]:
    """Spacing Between Slices against the Z Offsets of the base level's instances, when its
    focal planes are in separate instances."""
    from .dicomfiles import item, number

    level = pyramid.levels[0]  # type: ignore[attr-defined]
    z = set()
    spacing_mm = None
    for inst in level.instances:
        origin = item(inst.ds, "TotalPixelMatrixOriginSequence")
        value = number(origin, "ZOffsetInSlideCoordinateSystem")
        if value is not None:
            z.add(round(value, 6))
        measures = item(item(inst.ds, "SharedFunctionalGroupsSequence"), "PixelMeasuresSequence")
        spacing_mm = spacing_mm or number(measures, "SpacingBetweenSlices")
    if len(z) < 2 or not spacing_mm:
        return
    ordered = sorted(z)
    steps = [b - a for a, b in itertools.pairwise(ordered)]
    step = sorted(steps)[len(steps) // 2]
    ratio = spacing_mm * 1000.0 / step
    severity = _z_severity(ratio)
    if severity is not None:
        yield finding(
            "WSI-physics-z",
            f"Spacing Between Slices {spacing_mm * 1000:g} µm disagrees with the Z Offsets of "
            f"the focal planes ({step:g} µm apart, the median step): off by a factor "
            f"{ratio:.3g}",
            severity=severity,
            file=level.instances[0].name,
            level=0,
            attribute="SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]."
            "SpacingBetweenSlices",
        )
