"""Which VL Whole Slide Microscopy instances form one pyramid, and its levels.

A pyramid is the VOLUME images sharing a Pyramid UID (PS3.3 C.7.11.1) or, when the instances
carry none, a Series Instance UID. Its levels are the distinct Total Pixel Matrix sizes, largest
first (level 0 = base); several instances of one size are the optical paths, focal planes or
concatenation parts of that level. THUMBNAIL images join the pyramid of their Pyramid UID, or the
only pyramid of their series; they are checked against the base but get no level number.
LABEL and OVERVIEW images have their own geometry and belong to no pyramid.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from .dicomfiles import Instance, uid


@dataclass
class Level:
    index: int
    size: tuple[int, int]
    instances: list[Instance]


@dataclass
class Pyramid:
    key: str
    series_uid: str | None
    pyramid_uid: str | None
    levels: list[Level] = field(default_factory=list)
    thumbnails: list[Instance] = field(default_factory=list)

    @property
    def base(self) -> Instance:
        return self.levels[0].instances[0]

    def members(self) -> list[tuple[Instance, int | None]]:
        """Every instance with its level index (None for thumbnails)."""
        out: list[tuple[Instance, int | None]] = [
            (inst, level.index) for level in self.levels for inst in level.instances
        ]
        out += [(inst, None) for inst in self.thumbnails]
        return out

    @property
    def sizes(self) -> set[tuple[int, int]]:
        return {level.size for level in self.levels}

    def describe(self) -> str:
        return (
            f"Pyramid UID {self.pyramid_uid}" if self.pyramid_uid else f"series {self.series_uid}"
        )


def is_pyramid_member(inst: Instance) -> bool:
    """VOLUME (or no Image Type at all: treated as VOLUME) with a total pixel matrix."""
    return inst.is_wsi and inst.flavour in (None, "VOLUME") and inst.matrix is not None


def group(instances: list[Instance]) -> list[Pyramid]:
    """Group WSI instances into pyramids (see the module docstring)."""
    by_key: dict[str, list[Instance]] = defaultdict(list)
    meta: dict[str, tuple[str | None, str | None]] = {}
    for inst in instances:
        if not is_pyramid_member(inst):
            continue
        series = uid(inst.ds, "SeriesInstanceUID")
        pyramid = uid(inst.ds, "PyramidUID")
        key = f"pyramid:{pyramid}" if pyramid else f"series:{series or inst.name}"
        by_key[key].append(inst)
        meta[key] = (series, pyramid)
    pyramids: dict[str, Pyramid] = {}
    for key, members in by_key.items():
        series, pyramid = meta[key]
        p = Pyramid(key, series, pyramid)
        sizes = sorted(
            {inst.matrix for inst in members if inst.matrix},
            key=lambda s: (-(s[0] * s[1]), -s[0]),
        )
        for i, size in enumerate(sizes):
            p.levels.append(Level(i, size, [m for m in members if m.matrix == size]))
        pyramids[key] = p
    for inst in instances:
        if not (inst.is_wsi and inst.flavour == "THUMBNAIL" and inst.matrix):
            continue
        pyramid = uid(inst.ds, "PyramidUID")
        series = uid(inst.ds, "SeriesInstanceUID")
        target = pyramids.get(f"pyramid:{pyramid}") if pyramid else None
        if target is None:
            same_series = [p for p in pyramids.values() if p.series_uid == series]
            if len(same_series) == 1:
                target = same_series[0]
        if target is not None:
            target.thumbnails.append(inst)
    return sorted(pyramids.values(), key=lambda p: p.base.name)
