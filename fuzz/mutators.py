"""Mutators: each turns a seed into a hostile input, deterministically from an rng seed.

``make(seed, mutator, rng_seed, workdir)`` returns a :class:`Mutant`; the same three values
always give the same bytes (for the same seed files), so any failure can be re-made with
``python fuzz/campaign.py --replay SEED MUTATOR RNG_SEED``.

TIFF mutators rewrite IFD entries in place (TIFF 6.0 section 2; BigTIFF); OME-XML mutators
rewrite the ImageDescription (tag 270) of the first IFD (OME-TIFF specification: the OME-XML
block); DICOM mutators edit the data set with pydicom (PS3.3 A.32.8 VL Whole Slide Microscopy
Image IOD) or the File Meta Information byte for byte (PS3.10 7.1).
"""

from __future__ import annotations

import io
import random
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tiffstruct
from seeds import Seed

HOSTILE_INTS = [0, 1, 65535, 2**31, 2**32 - 1]
HOSTILE_TEXT = [
    "",
    "abc",
    "-inf",
    "inf",
    "nan",
    "NaN",
    "0x10",
    "-1",
    "1e309",
    "99999999999999999999999999",
    "2147483648",
    "4294967296",
    "0",
    "-0",
    " 1 ",
]
#: tags worth aiming at: size, layout, compression and data location (TIFF 6.0, TN1, OME-TIFF)
INTERESTING_TAGS = [
    254,
    256,
    257,
    258,
    259,
    262,
    270,
    273,
    277,
    278,
    279,
    284,
    317,
    320,
    322,
    323,
    324,
    325,
    330,
    338,
    339,
    347,
    530,
    532,
    34675,
]

TIFF_MUTATORS = ["bitflip", "truncate", "tiff-tag", "tiff-ifd", "ome-xml", "output-name"]
DICOM_MUTATORS = ["bitflip", "truncate", "dicom-attr", "dicom-ts", "dicom-carrier", "output-name"]


@dataclass
class Mutant:
    seed: str
    mutator: str
    rng_seed: int
    src: Path  # the mutated input (file or folder)
    params: dict[str, Any] = field(default_factory=dict)
    out_name: bytes | None = None  # a hostile output name (output-name mutator)
    out_parent_is_file: bool = False


def mutators_for(kind: str) -> list[str]:
    return TIFF_MUTATORS if kind == "ome-tiff" else DICOM_MUTATORS


def make(seed: Seed, mutator: str, rng_seed: int, workdir: Path) -> Mutant:
    """Copy ``seed`` into ``workdir`` and apply ``mutator`` with ``Random(rng_seed)``."""
    rng = random.Random(rng_seed)
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / ("in" if seed.path.is_dir() else "in" + "".join(seed.path.suffixes[-2:]))
    m = Mutant(seed.name, mutator, rng_seed, src)
    if mutator == "output-name":
        m.src = seed.path  # read in place, never written
        _output_name(m, rng)
        return m
    if seed.path.is_dir():
        shutil.copytree(seed.path, src)
        files = sorted(p for p in src.iterdir() if p.is_file())
        target = rng.choice(files)
        m.params["file"] = target.name
    else:
        shutil.copyfile(seed.path, src)
        target = src
    data = target.read_bytes()
    new = MUTATORS[mutator](data, rng, m.params)
    target.write_bytes(new)
    return m


# -- generic ---------------------------------------------------------------------------------


def bitflip(data: bytes, rng: random.Random, params: dict) -> bytes:
    """Flip 1-32 bits; half the time inside the first 4 KiB (headers, IFDs, DICOM meta).
    (Also the fallback of the structured mutators when the seed cannot be parsed.)"""
    out = bytearray(data)
    n = rng.choice([1, 1, 2, 4, 8, 32])
    head = rng.random() < 0.5
    flips = []
    for _ in range(n):
        limit = min(len(out), 4096) if head else len(out)
        pos = rng.randrange(limit)
        bit = rng.randrange(8)
        out[pos] ^= 1 << bit
        flips.append((pos, bit))
    params["flips"] = flips
    return bytes(out)


def truncate(data: bytes, rng: random.Random, params: dict) -> bytes:
    """Cut the file at a random point (anywhere, or just before the end)."""
    how = rng.choice(["anywhere", "anywhere", "head", "tail"])
    if how == "head":
        at = rng.randrange(min(len(data), 1024))
    elif how == "tail":
        at = max(0, len(data) - rng.randrange(1, 512))
    else:
        at = rng.randrange(len(data))
    params["at"] = at
    return data[:at]


# -- TIFF ------------------------------------------------------------------------------------


def _entry(layout: tiffstruct.Layout, rng: random.Random) -> tiffstruct.Entry:
    aimed = [e for e in layout.entries if e.tag in INTERESTING_TAGS]
    return rng.choice(aimed if aimed and rng.random() < 0.7 else layout.entries)


def tiff_tag(data: bytes, rng: random.Random, params: dict) -> bytes:
    """One hostile value, count, type or offset in one entry of one IFD or SubIFD."""
    try:
        layout = tiffstruct.parse(data)
    except (ValueError, struct.error):
        return bitflip(data, rng, params)
    if not layout.entries:
        return bitflip(data, rng, params)
    out = bytearray(data)
    o = layout.order
    cfmt = "Q" if layout.big else "I"
    op = rng.choice(["value", "value", "count", "type", "past-eof", "dims", "bytecounts"])
    if op == "dims":
        dims = [e for e in layout.entries if e.tag in (256, 257, 322, 323)]
        if dims:
            e = rng.choice(dims)
        else:
            e, op = _entry(layout, rng), "value"
    elif op == "bytecounts":
        counts = [e for e in layout.entries if e.tag in (279, 325, 273, 324)]
        e = rng.choice(counts) if counts else _entry(layout, rng)
    else:
        e = _entry(layout, rng)
    params.update(ifd=e.ifd, tag=e.tag, op=op)
    if op in ("value", "dims"):
        value = rng.choice(HOSTILE_INTS if op == "value" else [0, 65535, 2**31])
        typ = e.type
        if typ not in (3, 4, 16) or (typ == 3 and value > 65535):
            typ = 4
        struct.pack_into(o + "H", out, e.pos + 2, typ)
        struct.pack_into(o + cfmt, out, e.pos + 4, 1)
        field = bytes(e.field_size)
        out[e.field_pos : e.field_pos + e.field_size] = field
        struct.pack_into(o + {3: "H", 4: "I", 16: "Q"}[typ], out, e.field_pos, value)
        params["value"] = value
    elif op == "count":
        count = rng.choice([0, 1, 2, e.count + 1, e.count * 2, 65535, 2**31, 2**32 - 1])
        struct.pack_into(o + cfmt, out, e.pos + 4, count)
        params["count"] = count
    elif op == "type":
        typ = rng.choice([0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 16, 17, 18, 99, 65535])
        struct.pack_into(o + "H", out, e.pos + 2, typ)
        params["type"] = typ
    elif op == "past-eof":
        if e.inline:  # make it out of line first
            size = tiffstruct.TYPE_SIZES.get(e.type, 1)
            struct.pack_into(o + cfmt, out, e.pos + 4, e.field_size // size + 1)
        where = len(data) + rng.choice([0, 1, 4096, 2**20])
        where = min(where, 2**32 - 1)
        struct.pack_into(o + layout.off_fmt, out, e.field_pos, where)
        params["offset"] = where
    else:  # bytecounts / offsets: more values than tiles, read from wherever the field points
        extra = rng.choice([1, 2, 100])
        struct.pack_into(o + cfmt, out, e.pos + 4, e.count + extra)
        params["count"] = e.count + extra
    return bytes(out)


def tiff_ifd(data: bytes, rng: random.Random, params: dict) -> bytes:
    """Damage the IFD chain or tag list: loops, pointers past EOF, wrong entry counts,
    unsorted or duplicated entries, SubIFDs pointing back at their parent."""
    try:
        layout = tiffstruct.parse(data)
    except (ValueError, struct.error):
        return bitflip(data, rng, params)
    if not layout.ifds:
        return truncate(data, rng, params)
    out = bytearray(data)
    o = layout.order
    ifd = rng.choice(layout.ifds)
    op = rng.choice(
        [
            "next-self",
            "next-first",
            "next-past-eof",
            "next-odd",
            "entry-count",
            "swap",
            "duplicate",
            "subifd-loop",
            "first-past-eof",
        ]
    )
    params.update(ifd=ifd.name, op=op)
    first = layout.ifds[0].pos
    if op.startswith("next"):
        target = {
            "next-self": ifd.pos,
            "next-first": first,
            "next-past-eof": len(data) + 16,
            "next-odd": rng.randrange(8, len(data)),
        }[op]
        struct.pack_into(o + layout.off_fmt, out, ifd.next_pos, min(target, 2**32 - 1))
    elif op == "first-past-eof":
        struct.pack_into(o + layout.off_fmt, out, 8 if layout.big else 4, len(data) + 8)
    elif op == "entry-count":
        n = rng.choice([0, 1, ifd.count - 1, ifd.count + 1, 4095, 65535])
        n = max(0, n)
        struct.pack_into(o + layout.count_fmt, out, ifd.pos, n)
        params["count"] = n
    else:
        entries = [e for e in layout.entries if e.ifd == ifd.name]
        size = 20 if layout.big else 12
        if op == "subifd-loop":
            sub = [e for e in layout.entries if e.tag == 330]
            if sub:
                e = sub[0]
                if e.inline:
                    struct.pack_into(o + layout.off_fmt, out, e.field_pos, first)
                else:
                    where = struct.unpack_from(o + layout.off_fmt, data, e.field_pos)[0]
                    struct.pack_into(o + layout.off_fmt, out, where, first)
                params["ifd"] = e.ifd
                return bytes(out)
            op = params["op"] = "swap"
        if len(entries) >= 2:
            i = rng.randrange(len(entries) - 1)
            a, b = entries[i], entries[i + 1]
            ea, eb = data[a.pos : a.pos + size], data[b.pos : b.pos + size]
            out[a.pos : a.pos + size] = eb
            if op == "swap":
                out[b.pos : b.pos + size] = ea
            params["tags"] = [a.tag, b.tag]
    return bytes(out)


# -- OME-XML ---------------------------------------------------------------------------------

XXE = '<!DOCTYPE OME [<!ENTITY % xxe SYSTEM "file:///etc/passwd"> %xxe;]>'
XXE_GENERAL = '<!DOCTYPE OME [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS = (
    '<!DOCTYPE OME [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>"
)


def _tags(xml: str) -> list[re.Match[str]]:
    return list(re.finditer(r"<([A-Za-z_][\w:.-]*)(\s[^<>]*?)?(/?)>", xml))


def _element_span(xml: str, m: re.Match[str]) -> tuple[int, int]:
    """Start and end of the element whose start tag is ``m`` (same-name nesting counted)."""
    if m.group(3) == "/":
        return m.start(), m.end()
    name = re.escape(m.group(1))
    depth = 1
    for t in re.finditer(rf"<(/?){name}(\s[^<>]*?)?(/?)>", xml[m.end() :]):
        if t.group(3) == "/":
            continue
        depth += -1 if t.group(1) else 1
        if depth == 0:
            return m.start(), m.end() + t.end()
    return m.start(), m.end()


def mutate_xml(xml: bytes, rng: random.Random, params: dict) -> bytes:
    """One hostile change to an OME-XML document (text level, so it stays close to valid)."""
    text = xml.decode("utf-8", "replace")
    op = rng.choice(
        [
            "attr",
            "attr",
            "attr",
            "dimension-order",
            "remove",
            "duplicate",
            "invalid-utf8",
            "xxe",
            "xxe-general",
            "laughs",
            "cut",
            "namespace",
        ]
    )
    params["xml_op"] = op
    body = re.search(r"<OME[\s>]", text)
    head_end = body.start() if body else 0
    if op == "attr":
        attrs = list(re.finditer(r'\s([A-Za-z_][\w:.-]*)="([^"]*)"', text))
        attrs = [a for a in attrs if not a.group(1).startswith(("xmlns", "xsi"))] or attrs
        if attrs:
            a = rng.choice(attrs)
            value = rng.choice(HOSTILE_TEXT)
            params.update(attribute=a.group(1), old=a.group(2)[:40], value=value)
            text = text[: a.start(2)] + value + text[a.end(2) :]
    elif op == "dimension-order":
        value = rng.choice(["", "XYZZT", "XYZ", "TZCYX"])
        params["value"] = value
        text = re.sub(r'DimensionOrder="[^"]*"', f'DimensionOrder="{value}"', text)
    elif op in ("remove", "duplicate"):
        tags = [t for t in _tags(text) if t.start() > head_end and t.group(1) != "OME"]
        if tags:
            t = rng.choice(tags)
            s, e = _element_span(text, t)
            params["element"] = t.group(1)
            text = text[:s] + (text[s:e] * 2 if op == "duplicate" else "") + text[e:]
    elif op == "invalid-utf8":
        attrs = list(re.finditer(r'="([^"]*)"', text))
        a = rng.choice(attrs) if attrs else None
        at = a.start(1) if a else len(text) // 2
        raw = text.encode("utf-8")
        at = len(text[:at].encode("utf-8"))
        params["at"] = at
        return raw[:at] + rng.choice([b"\xff\xfe", b"\xc3\x28", b"\xe2\x82", b"\x00"]) + raw[at:]
    elif op in ("xxe", "xxe-general", "laughs"):
        doctype = {"xxe": XXE, "xxe-general": XXE_GENERAL, "laughs": LAUGHS}[op]
        text = text[:head_end] + doctype + text[head_end:]
        ref = {"xxe": None, "xxe-general": "&xxe;", "laughs": "&lol9;"}[op]
        if ref:  # use the entity where a reader shows text: the first Image's Description
            if "<Description>" in text:
                text = text.replace("<Description>", "<Description>" + ref, 1)
            else:
                text = re.sub(
                    r"(<Image\b[^>]*?)>", rf"\1><Description>{ref}</Description>", text, count=1
                )
    elif op == "cut":
        at = rng.randrange(head_end, max(head_end + 1, len(text)))
        params["at"] = at
        text = text[:at]
    else:
        ns = rng.choice(
            [
                "http://www.openmicroscopy.org/Schemas/OME/2010-06",
                "http://example.com/not-ome",
                "",
                "urn:x",
            ]
        )
        params["namespace"] = ns
        text = re.sub(r'(<OME\b[^>]*?\sxmlns=")[^"]*"', rf'\g<1>{ns}"', text, count=1)
    return text.encode("utf-8")


def ome_xml(data: bytes, rng: random.Random, params: dict) -> bytes:
    """Rewrite the first IFD's ImageDescription with a hostile OME-XML."""
    try:
        layout = tiffstruct.parse(data)
        found = tiffstruct.description(data, layout)
    except (ValueError, struct.error):
        found = None
    if found is None:
        return tiff_tag(data, rng, params)
    new = mutate_xml(found[1], rng, params)
    return tiffstruct.replace_description(data, new)


# -- DICOM -----------------------------------------------------------------------------------


def _pydicom():
    import pydicom
    from pydicom import config

    config.settings.reading_validation_mode = config.IGNORE
    config.settings.writing_validation_mode = config.IGNORE
    return pydicom


def _read(data: bytes):
    pydicom = _pydicom()
    return pydicom.dcmread(io.BytesIO(data), force=True)


def _write(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _seq_item(ds, *path: str):
    cur = ds
    for name in path:
        seq = getattr(cur, name, None)
        if not seq:
            return None
        cur = seq[0]
    return cur


def dicom_attr(data: bytes, rng: random.Random, params: dict) -> bytes:
    """A hostile value in a WSI attribute, or a sequence removed (PS3.3 C.8.12.4, C.7.6.3)."""
    try:
        ds = _read(data)
    except Exception:
        return bitflip(data, rng, params)
    op = rng.choice(
        [
            "rows-cols",
            "matrix",
            "focal-planes",
            "frames",
            "spacing",
            "remove-seq",
            "empty-seq",
            "bits",
            "photometric",
            "random-number",
        ]
    )
    params["op"] = op
    if op == "rows-cols":
        name = rng.choice(["Rows", "Columns", "SamplesPerPixel"])
        value = rng.choice([0, 65535])
        setattr(ds, name, value)
        params.update(attribute=name, value=value)
    elif op == "matrix":
        name = rng.choice(["TotalPixelMatrixColumns", "TotalPixelMatrixRows"])
        value = rng.choice([2**31, 0, 1, 2**32 - 1])
        setattr(ds, name, value)
        params.update(attribute=name, value=value)
    elif op == "focal-planes":
        value = rng.choice([16777216, 0, 2])
        ds.TotalPixelMatrixFocalPlanes = value
        params["value"] = value
    elif op == "frames":
        n = int(getattr(ds, "NumberOfFrames", 1) or 1)
        value = rng.choice([0, 1, n + 1, max(n - 1, 0), 2**31 - 1, n * 1000])
        ds.NumberOfFrames = value
        params["value"] = value
    elif op == "spacing":
        value = rng.choice(
            [
                ["-0.5", "0.5"],
                ["nan", "nan"],
                ["0", "0"],
                ["inf", "1"],
                ["", "1"],
                ["0.5"],
                ["1e309", "1e309"],
            ]
        )
        item = _seq_item(ds, "SharedFunctionalGroupsSequence", "PixelMeasuresSequence")
        where = item if item is not None else ds
        from pydicom.dataelem import DataElement

        where[0x00280030] = DataElement(0x00280030, "DS", "\\".join(value))
        params["value"] = value
    elif op in ("remove-seq", "empty-seq"):
        seqs = [e.keyword for e in ds if e.VR == "SQ" and e.keyword]
        for e in ds:
            if e.VR == "SQ":
                for item in e.value[:1]:
                    seqs += [f"{e.keyword}/{s.keyword}" for s in item if s.VR == "SQ"]
        if seqs:
            name = rng.choice(sorted(seqs))
            params["sequence"] = name
            parts = name.split("/")
            holder = ds if len(parts) == 1 else _seq_item(ds, parts[0])
            if holder is not None:
                if op == "remove-seq":
                    delattr(holder, parts[-1])
                else:
                    setattr(holder, parts[-1], [])
    elif op == "bits":
        name = rng.choice(["BitsAllocated", "BitsStored", "HighBit"])
        value = rng.choice([0, 1, 7, 12, 17, 32, 64, 65535])
        setattr(ds, name, value)
        params.update(attribute=name, value=value)
    elif op == "photometric":
        value = rng.choice(["", "FOO", "YBR_ICT", "PALETTE COLOR", "MONOCHROME1", "RGB"])
        ds.PhotometricInterpretation = value
        params["value"] = value
    else:
        numbers = [
            e
            for e in ds
            if e.VR in ("US", "UL", "IS", "DS", "FD", "FL", "SS", "SL")
            and e.tag.group != 0x0002
            and e.keyword
        ]
        if numbers:
            e = rng.choice(numbers)
            from pydicom.dataelem import DataElement

            if e.VR in ("IS", "DS"):  # values pydicom can still encode in these VRs
                value = rng.choice(
                    ["", "-1", "0", "2147483648", "99999999999"]
                    + (["nan", "-inf", "1e309", "-0"] if e.VR == "DS" else [])
                )
                ds[e.tag] = DataElement(e.tag, e.VR, value)
            else:
                limit = {"US": 65535, "SS": 32767}.get(e.VR, 2**31 - 1)
                value = rng.choice([0, 1, limit])
                if e.VR in ("FD", "FL"):
                    value = rng.choice([0.0, float("nan"), float("inf"), -1.0])
                ds[e.tag] = DataElement(e.tag, e.VR, value)
            params.update(attribute=e.keyword, value=repr(value))
    return _write(ds)


TRANSFER_SYNTAXES = [
    "1.2.840.10008.1.2.4.201",  # HTJ2K lossless
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian (native)
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired)
    "1.2.840.10008.1.2.4.50",  # JPEG baseline
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.3.4.5",  # unknown
    "",
]


def dicom_ts(data: bytes, rng: random.Random, params: dict) -> bytes:
    """Swap the Transfer Syntax UID in the File Meta Information (PS3.10 7.1), leaving the
    data set bytes as they are: the label then disagrees with the frames or the encoding."""
    if len(data) < 144 or data[128:132] != b"DICM":
        return bitflip(data, rng, params)
    pydicom = _pydicom()

    try:
        meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
        length = struct.unpack_from("<I", data, 140)[0]
    except Exception:
        return bitflip(data, rng, params)
    end = 144 + length
    params["from"] = str(meta.get("TransferSyntaxUID", ""))
    uid = rng.choice([u for u in TRANSFER_SYNTAXES if u != params["from"]])
    params["to"] = uid
    return relabel(data, meta, uid, end)


def relabel(data: bytes, meta, uid: str, end: int) -> bytes:
    """``data`` with File Meta Information ``meta`` (ending at ``end``) saying ``uid``."""
    pydicom = _pydicom()
    from pydicom.filewriter import write_file_meta_info

    meta.TransferSyntaxUID = uid
    buf = io.BytesIO()
    buf.write(data[:132])
    write_file_meta_info(pydicom.filebase.DicomFileLike(buf), meta, enforce_standard=False)
    return buf.getvalue() + data[end:]


def dicom_carrier(data: bytes, rng: random.Random, params: dict) -> bytes:
    """Corrupt the private block 0077 ("OMEDICOM 1"): the carried OME-XML (xx10, UT), the
    per-level JSON (xx11, UT), or the private creator itself."""
    try:
        ds = _read(data)
    except Exception:
        return bitflip(data, rng, params)
    creators = [e for e in ds if e.tag.group == 0x0077 and e.tag.element < 0x100]
    if not creators:
        return dicom_attr(data, rng, params)
    creator = creators[0]
    block = creator.tag.element << 8
    xml_tag = (0x0077 << 16) | block | 0x10
    json_tag = (0x0077 << 16) | block | 0x11
    op = rng.choice(["xml", "xml", "xml", "json", "json", "creator", "remove-xml", "xml-bytes"])
    params["op"] = op
    if op == "xml" and xml_tag in ds:
        value = ds[xml_tag].value
        raw = value if isinstance(value, bytes) else str(value).encode("utf-8")
        ds[xml_tag].value = mutate_xml(raw, rng, params).decode("utf-8", "surrogateescape")
        if params.get("xml_op") == "invalid-utf8":
            ds[xml_tag].value = mutate_xml(raw, random.Random(0), {}).replace(
                b'="', b'="\xff\xfe', 1
            )
    elif op == "xml-bytes" and xml_tag in ds:
        value = rng.choice([b"", b"\xff\xfe\x00<OME", b"<OME", b"not xml at all", b"<a>" * 20])
        ds[xml_tag].value = value
        params["value"] = value.decode("latin-1")
    elif op == "json" and json_tag in ds:
        value = rng.choice(
            [
                "",
                "{",
                "[]",
                "null",
                '{"tables": 5}',
                '{"level": "x"}',
                '{"image": -1, "level": 99}',
                "[" * 5000 + "]" * 5000,
                '{"jpegtables": "@@@not base64"}',
                "1e309",
            ]
        )
        old = str(ds[json_tag].value)
        if rng.random() < 0.3 and old.startswith("{"):
            value = old[: rng.randrange(1, len(old))]  # cut short
        ds[json_tag].value = value
        params["value"] = value[:80]
    elif op == "creator":
        value = rng.choice(["", "SOMEONE ELSE", "OMEDICOM 2"])
        creator.value = value
        params["value"] = value
    elif xml_tag in ds:
        del ds[xml_tag]
    return _write(ds)


def _output_name(m: Mutant, rng: random.Random) -> None:
    op = rng.choice(["long", "invalid-utf8", "parent-is-file"])
    m.params["op"] = op
    if op == "long":
        m.out_name = b"x" * rng.choice([256, 300, 1000])
    elif op == "invalid-utf8":
        m.out_name = b"out-\xff\xfe\xc3\x28"
    else:
        m.out_parent_is_file = True
        m.out_name = b"out"


MUTATORS = {
    "bitflip": bitflip,
    "truncate": truncate,
    "tiff-tag": tiff_tag,
    "tiff-ifd": tiff_ifd,
    "ome-xml": ome_xml,
    "dicom-attr": dicom_attr,
    "dicom-ts": dicom_ts,
    "dicom-carrier": dicom_carrier,
}
