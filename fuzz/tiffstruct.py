"""Where the IFDs and their entries sit in a TIFF file, so mutators can rewrite them in place.

TIFF 6.0 section 2 (Image File Directory: a 2-byte entry count, 12-byte entries of tag, type,
count and value/offset, a 4-byte next-IFD offset) and BigTIFF (8-byte count, 20-byte entries,
8-byte offsets). SubIFDs (tag 330, TIFF Technical Note 1) are followed as well.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

#: TIFF field type -> size of one value in bytes (TIFF 6.0 section 2, BigTIFF 16-18).
TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


@dataclass(frozen=True)
class Entry:
    ifd: str  # "0", "1", "0/sub0", ...
    pos: int  # file offset of the 12/20-byte entry
    tag: int
    type: int
    count: int
    field_pos: int  # file offset of the value/offset field
    field_size: int  # 4 (classic) or 8 (BigTIFF)

    @property
    def inline(self) -> bool:
        return TYPE_SIZES.get(self.type, 1) * self.count <= self.field_size


@dataclass(frozen=True)
class Ifd:
    name: str
    pos: int  # offset of the entry count
    count: int
    next_pos: int  # offset of the next-IFD pointer


@dataclass
class Layout:
    order: str  # "<" or ">"
    big: bool
    ifds: list[Ifd]
    entries: list[Entry]

    @property
    def count_fmt(self) -> str:
        return "Q" if self.big else "H"

    @property
    def off_fmt(self) -> str:
        return "Q" if self.big else "I"

    def pack(self, fmt: str, value: int) -> bytes:
        return struct.pack(self.order + fmt, value)

    def values(self, data: bytes, entry: Entry) -> list[int]:
        """The integer values of an entry (SHORT/LONG/LONG8/IFD types), [] when unreadable."""
        fmt = {3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q"}.get(entry.type)
        if fmt is None or entry.count > 1_000_000:
            return []
        size = struct.calcsize(fmt) * entry.count
        if entry.inline:
            where = entry.field_pos
        else:
            where = struct.unpack_from(self.order + self.off_fmt, data, entry.field_pos)[0]
        if where + size > len(data):
            return []
        return list(struct.unpack_from(f"{self.order}{entry.count}{fmt}", data, where))


def parse(data: bytes, *, max_ifds: int = 256) -> Layout:
    """The IFD chain and SubIFD trees of ``data``; raises ValueError when it is not a TIFF."""
    if data[:2] not in (b"II", b"MM"):
        raise ValueError("not a TIFF")
    order = "<" if data[:2] == b"II" else ">"
    magic = struct.unpack_from(order + "H", data, 2)[0]
    big = magic == 43
    if magic not in (42, 43):
        raise ValueError("not a TIFF")
    layout = Layout(order, big, [], [])
    first = struct.unpack_from(order + ("Q" if big else "I"), data, 8 if big else 4)[0]
    seen: set[int] = set()
    todo: list[tuple[str, int]] = []
    index = 0
    offset = first
    while offset and offset not in seen and len(layout.ifds) < max_ifds:
        seen.add(offset)
        nxt = _read_ifd(data, layout, str(index), offset, todo)
        if nxt is None:
            break
        index += 1
        offset = nxt
    while todo and len(layout.ifds) < max_ifds:
        name, offset = todo.pop(0)
        if offset in seen:
            continue
        seen.add(offset)
        _read_ifd(data, layout, name, offset, todo)
    return layout


def _read_ifd(
    data: bytes, layout: Layout, name: str, offset: int, todo: list[tuple[str, int]]
) -> int | None:
    o = layout.order
    head, esize, fsize = (8, 20, 8) if layout.big else (2, 12, 4)
    if offset + head > len(data):
        return None
    count = struct.unpack_from(o + layout.count_fmt, data, offset)[0]
    end = offset + head + count * esize
    if count > 4096 or end + fsize > len(data):
        return None
    layout.ifds.append(Ifd(name, offset, count, end))
    for i in range(count):
        pos = offset + head + i * esize
        if layout.big:
            tag, typ, n = struct.unpack_from(o + "HHQ", data, pos)
        else:
            tag, typ, n = struct.unpack_from(o + "HHI", data, pos)
        entry = Entry(name, pos, tag, typ, n, pos + 4 + (8 if layout.big else 4), fsize)
        layout.entries.append(entry)
        if tag == 330:
            for k, sub in enumerate(layout.values(data, entry)):
                todo.append((f"{name}/sub{k}", sub))
    return struct.unpack_from(o + layout.off_fmt, data, end)[0]


def description(data: bytes, layout: Layout, ifd: str = "0") -> tuple[Entry, bytes] | None:
    """The ImageDescription (tag 270) entry of ``ifd`` and its bytes (NUL stripped)."""
    for e in layout.entries:
        if e.ifd == ifd and e.tag == 270:
            if e.inline:
                raw = data[e.field_pos : e.field_pos + e.count]
            else:
                where = struct.unpack_from(layout.order + layout.off_fmt, data, e.field_pos)[0]
                raw = data[where : where + e.count]
            return e, raw.rstrip(b"\0")
    return None


def replace_description(data: bytes, text: bytes, ifd: str = "0") -> bytes:
    """``data`` with the ImageDescription of ``ifd`` replaced by ``text``: the new bytes are
    appended at the end of the file and the entry's count and offset point at them."""
    layout = parse(data)
    found = description(data, layout, ifd)
    if found is None:
        raise ValueError("no ImageDescription")
    entry = found[0]
    out = bytearray(data)
    if len(out) % 2:
        out += b"\0"
    where = len(out)
    out += text + b"\0"
    cfmt = "Q" if layout.big else "I"
    struct.pack_into(layout.order + "H", out, entry.pos + 2, 2)  # ASCII
    struct.pack_into(layout.order + cfmt, out, entry.pos + 4, len(text) + 1)
    struct.pack_into(layout.order + layout.off_fmt, out, entry.field_pos, where)
    return bytes(out)
