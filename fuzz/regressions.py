"""Regenerate ``tests/fuzz_regressions/``: one small input per failure class the campaign found,
and ``cases.toml`` saying how ``tests/test_fuzz_regressions.py`` runs it.

    python fuzz/regressions.py            # rewrite the manifest, make missing inputs
    python fuzz/regressions.py --remake   # remake every input too
    python fuzz/regressions.py --verify   # run the committed inputs: which show their class today

Each recipe applies the mutation of a campaign example, with its parameters spelled out, to a
*tiny* generated seed (fuzz/seeds.py, ``scale="tiny"``), never to a corpus file. The mutation
is the minimal one: a single entry, attribute or value changed, so the file is a few KB and
the cause is readable from the recipe. DICOM inputs are one instance (.dcm) of a tiny series.
"""

from __future__ import annotations

import argparse
import shutil
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import campaign
import mutators
import tiffstruct
from seeds import make_seeds

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "tests" / "fuzz_regressions"


@dataclass(frozen=True)
class Recipe:
    name: str  # the file stem and case id
    klass: str  # the campaign class it stands for (at the time it was found)
    seed: str  # tiny seed name; DICOM seeds: "dicom-x/level0.dcm"
    mutate: Callable[[bytes], bytes] | None
    args: tuple[str, ...]  # {input}, {out} placeholders
    exit: int
    needle: str
    out_name_hex: str | None = None  # the output name as bytes (may be invalid UTF-8)
    note: str = ""


# -- mutations, spelled out ------------------------------------------------------------------


def _entry(data: bytes, ifd: str, tag: int) -> tuple[tiffstruct.Layout, tiffstruct.Entry]:
    layout = tiffstruct.parse(data)
    for e in layout.entries:
        if e.ifd == ifd and e.tag == tag:
            return layout, e
    raise KeyError((ifd, tag))


def set_count(ifd: str, tag: int, extra: int) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        layout, e = _entry(data, ifd, tag)
        out = bytearray(data)
        struct.pack_into(
            layout.order + ("Q" if layout.big else "I"), out, e.pos + 4, e.count + extra
        )
        return bytes(out)

    return f


def set_value(ifd: str, tag: int, value: int) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        layout, e = _entry(data, ifd, tag)
        out = bytearray(data)
        typ = e.type if e.type in (3, 4) and (e.type == 4 or value < 65536) else 4
        struct.pack_into(layout.order + "H", out, e.pos + 2, typ)
        struct.pack_into(layout.order + ("Q" if layout.big else "I"), out, e.pos + 4, 1)
        out[e.field_pos : e.field_pos + e.field_size] = bytes(e.field_size)
        struct.pack_into(layout.order + {3: "H", 4: "I"}[typ], out, e.field_pos, value)
        return bytes(out)

    return f


def huge_first_bytecount(data: bytes) -> bytes:
    """BigTIFF TileByteCounts (LONG8) whose first value is 2**64-1 (no int64 holds it)."""
    layout, e = _entry(data, "0", 325)
    out = bytearray(data)
    where = (
        e.field_pos if e.inline else struct.unpack_from(layout.order + "Q", data, e.field_pos)[0]
    )
    struct.pack_into(layout.order + "HQ", out, e.pos + 2, 16, e.count)
    struct.pack_into(layout.order + "Q", out, where, 2**64 - 1)
    return bytes(out)


def corrupt_first_tile(data: bytes) -> bytes:
    """The first PackBits tile is all 0x7F: literal runs of 128 bytes, the last one cut short
    (TIFF 6.0 section 9)."""
    layout, e = _entry(data, "0", 324)
    offsets = layout.values(data, e)
    _, ec = _entry(data, "0", 325)
    counts = layout.values(data, ec)
    out = bytearray(data)
    out[offsets[0] : offsets[0] + counts[0]] = b"\x7f" * counts[0]
    return bytes(out)


def corrupt_first_deflate_tile(data: bytes) -> bytes:
    """The first Deflate tile's bytes after the zlib header all 0xFF (RFC 1951: no valid
    block type), its length kept."""
    layout, e = _entry(data, "0", 324)
    offsets = layout.values(data, e)
    _, ec = _entry(data, "0", 325)
    counts = layout.values(data, ec)
    out = bytearray(data)
    out[offsets[0] + 2 : offsets[0] + counts[0]] = b"\xff" * (counts[0] - 2)
    return bytes(out)


def set_type(ifd: str, tag: int, typ: int) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        layout, e = _entry(data, ifd, tag)
        out = bytearray(data)
        struct.pack_into(layout.order + "H", out, e.pos + 2, typ)
        return bytes(out)

    return f


def set_entry_count(ifd: str, count: int) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        layout = tiffstruct.parse(data)
        where = next(i for i in layout.ifds if i.name == ifd)
        out = bytearray(data)
        struct.pack_into(layout.order + layout.count_fmt, out, where.pos, count)
        return bytes(out)

    return f


def xml_bytes_replace(old: bytes, new: bytes) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        layout = tiffstruct.parse(data)
        _, xml = tiffstruct.description(data, layout)
        assert old in xml, old
        return tiffstruct.replace_description(data, xml.replace(old, new, 1))

    return f


def transfer_syntax(uid: str) -> Callable[[bytes], bytes]:
    """The File Meta Information says ``uid``; the data set and frames are left as they are."""

    def f(data: bytes) -> bytes:
        meta = mutators._read(data).file_meta
        end = 144 + struct.unpack_from("<I", data, 140)[0]
        return mutators.relabel(data, meta, uid, end)

    return f


def xml_replace(old: str, new: str) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        layout = tiffstruct.parse(data)
        _, xml = tiffstruct.description(data, layout)
        text = xml.decode("utf-8")
        assert old in text, old
        return tiffstruct.replace_description(data, text.replace(old, new, 1).encode("utf-8"))

    return f


def dicom_set(**values) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        ds = mutators._read(data)
        for key, value in values.items():
            setattr(ds, key, value)
        return mutators._write(ds)

    return f


def without_carriers_with(**values) -> Callable[[bytes], bytes]:
    """The instance as a third party writes it (no OMEDICOM private block), with ``values``."""

    def f(data: bytes) -> bytes:
        ds = mutators._read(data)
        for tag in [e.tag for e in ds if e.tag.group == 0x0077]:
            del ds[tag]
        for key, value in values.items():
            setattr(ds, key, value)
        return mutators._write(ds)

    return f


def carrier_xml(transform: Callable[[str], str | bytes]) -> Callable[[bytes], bytes]:
    def f(data: bytes) -> bytes:
        ds = mutators._read(data)
        creator = next(e for e in ds if e.tag.group == 0x0077 and e.tag.element < 0x100)
        tag = (0x0077 << 16) | (creator.tag.element << 8) | 0x10
        ds[tag].value = transform(str(ds[tag].value))
        return mutators._write(ds)

    return f


def _xxe(xml: str) -> str:
    """An external entity (file:///etc/passwd) declared and used in the carried OME-XML."""
    at = xml.index("<OME")
    return xml[:at] + mutators.XXE_GENERAL + xml[at:].replace('Name="', 'Name="&xxe;', 1)


RECIPES = [
    Recipe(
        "tilebytecounts-longer",
        "ValueError @ bridge/ometiff/reader.py:_check_counts",
        "jpeg-pyramid",
        set_count("0", 325, 2),
        ("info", "{input}"),
        2,
        "tile",
    ),
    Recipe(
        "tilebytecounts-huge",
        "OverflowError @ bridge/ometiff/reader.py:_check_counts",
        "jpeg-pyramid",
        huge_first_bytecount,
        ("info", "{input}"),
        2,
        "tile",
    ),
    Recipe(
        "tilelength-zero",
        "ZeroDivisionError @ bridge/ometiff/reader.py:_read_level",
        "rois",
        set_value("0", 323, 0),
        ("info", "{input}"),
        2,
        "tile",
    ),
    Recipe(
        "dimensionorder-xyz",
        "KeyError @ bridge/ometiff/reader.py:_plane_coords",
        "rois",
        xml_replace('DimensionOrder="XYCZT"', 'DimensionOrder="XYZ"'),
        ("info", "{input}"),
        2,
        "DimensionOrder",
    ),
    Recipe(
        "packbits-corrupt",
        "ImcdError @ bridge/ometiff/tiles.py:_segment",
        "planar-rgb",
        corrupt_first_tile,
        ("convert", "{input}", "{out}", "-q"),
        2,
        "tile",
    ),
    Recipe(
        "output-name-too-long",
        "OSError @ bridge/convert.py:staged_directory",
        "striped-grey",
        None,
        ("convert", "{input}", "{out}", "-q"),
        4,
        "255 bytes",
        out_name_hex=(b"x" * 300).hex(),
    ),
    Recipe(
        "output-name-not-utf8",
        "UnicodeEncodeError @ bridge/ometiff/omexml_writer.py:_update_carried",
        "dicom-grey/level0.dcm",
        None,
        ("convert", "{input}", "{out}", "-q"),
        4,
        "UTF-8",
        out_name_hex=b"out-\xff\xfe.ome.tiff".hex(),
        note="or succeed with the name kept out of the OME-XML; then change this case",
    ),
    Recipe(
        "dicom-matrix-rows-huge",
        "MemoryError @ bridge/dicom/reader.py:_level",
        "dicom-jpeg/level0.dcm",
        dicom_set(TotalPixelMatrixRows=2**32 - 1, TotalPixelMatrixColumns=2**32 - 1),
        ("info", "{input}"),
        2,
        "Rows",
    ),
    Recipe(
        "dicom-focal-planes-huge",
        "hang (info/convert, TotalPixelMatrixFocalPlanes)",
        "dicom-grey/level0.dcm",
        dicom_set(TotalPixelMatrixFocalPlanes=16777216),
        ("info", "{input}"),
        2,
        "focal",
    ),
    Recipe(
        "dicom-samples-zero",
        "ValueError @ bridge/ometiff/writer.py:_write_level",
        "dicom-grey/level0.dcm",
        dicom_set(SamplesPerPixel=0),
        ("convert", "{input}", "{out}", "-q"),
        2,
        "Samples",
    ),
    Recipe(
        "carrier-xml-cut",
        "ValueError @ bridge/ometiff/omexml_writer.py:build",
        "dicom-grey/level0.dcm",
        carrier_xml(lambda x: "<OME"),
        ("convert", "{input}", "{out}"),
        0,
        "carried OME-XML",
        note="the carried OME-XML is optional: warn, fall back to the standard attributes",
    ),
    Recipe(
        "carrier-xml-entity",
        "ValueError @ bridge/ometiff/omexml_writer.py:build (XML entity)",
        "dicom-grey/level0.dcm",
        carrier_xml(_xxe),
        ("convert", "{input}", "{out}"),
        0,
        "carried OME-XML",
        note="the carried OME-XML is optional: warn, fall back to the standard attributes",
    ),
    Recipe(
        "deflate-corrupt",
        "DeflateError @ bridge/ometiff/tiles.py:_segment",
        "deflate-zstack",
        corrupt_first_deflate_tile,
        ("convert", "{input}", "{out}", "-q"),
        2,
        "tile",
    ),
    Recipe(
        "dimensionorder-tzcyx",
        "KeyError @ bridge/ometiff/reader.py:_plane_index",
        "striped-grey",
        xml_replace('DimensionOrder="XYCZT"', 'DimensionOrder="TZCYX"'),
        ("info", "{input}"),
        2,
        "DimensionOrder",
    ),
    Recipe(
        "omexml-tiffdata-not-utf8",
        "ValueError @ bridge/ometiff/omexml.py:_int",
        "jpeg-pyramid",
        xml_bytes_replace(b'TiffData IFD="', b'TiffData IFD="\xff\xfe'),
        ("info", "{input}"),
        2,
        "TiffData",
    ),
    Recipe(
        "bitspersample-ascii",
        "TypeError @ bridge/ometiff/reader.py:read",
        "planar-rgb",
        set_type("0", 258, 2),
        ("info", "{input}"),
        2,
        "BitsPerSample",
    ),
    Recipe(
        "subifd-entry-count-huge",
        "TiffFileError @ bridge/ometiff/reader.py:_sub_pages",
        "jpeg-pyramid",
        set_entry_count("0/sub0", 65535),
        ("info", "{input}"),
        2,
        "IFD",
    ),
    Recipe(
        "tilelength-huge",
        "struct.error @ bridge/dicom/header.py:_value",
        "planar-rgb",
        set_value("0", 323, 2**31),
        ("convert", "{input}", "{out}", "-q"),
        2,
        "tile",
    ),
    Recipe(
        "output-name-too-long-tiff",
        "OSError @ bridge/convert.py:staged_file",
        "dicom-grey/level0.dcm",
        None,
        ("convert", "{input}", "{out}", "-q"),
        4,
        "255 bytes",
        out_name_hex=(b"x" * 300 + b".ome.tiff").hex(),
    ),
    Recipe(
        "ts-native-labelled-j2k",
        "ValueError @ bridge/dicom/tiles.py:decoded",
        "dicom-grey/level0.dcm",
        transfer_syntax("1.2.840.10008.1.2.4.90"),
        ("convert", "{input}", "{out}", "-q"),
        2,
        "transfer syntax",
    ),
    Recipe(
        "ts-native-labelled-jpeg",
        "AssertionError @ bridge/dicom/reader.py:_codec",
        "dicom-grey/level0.dcm",
        transfer_syntax("1.2.840.10008.1.2.4.50"),
        ("info", "{input}"),
        2,
        "transfer syntax",
    ),
    Recipe(
        "ts-jpeg-labelled-htj2k",
        "exit 0, output unopenable (JPEG tiles stored as JPEG 2000)",
        "dicom-jpeg/level0.dcm",
        transfer_syntax("1.2.840.10008.1.2.4.201"),
        ("convert", "{input}", "{out}", "-q"),
        2,
        "transfer syntax",
    ),
    Recipe(
        "ts-jpegls-labelled-native",
        "ValueError @ bridge/ometiff/writer.py:_write_level (in a series: exit 0, unopenable)",
        "dicom-zstack/level0-c1.dcm",
        transfer_syntax("1.2.840.10008.1.2.1"),
        ("convert", "{input}", "{out}", "-q"),
        2,
        "transfer syntax",
    ),
    Recipe(
        "stripbytecounts-undefined",
        "ValueError @ bridge/ometiff/reader.py:_check_counts",
        "striped-grey",
        set_type("0", 279, 7),
        ("info", "{input}"),
        2,
        "strip",
    ),
    Recipe(
        "stripoffsets-float",
        "TypeError @ bridge/ometiff/tiles.py:read",
        "striped-grey",
        set_type("0", 273, 11),
        ("convert", "{input}", "{out}", "-q"),
        2,
        "offsets",
    ),
    Recipe(
        "colormap-count",
        "IndexError @ bridge/ometiff/reader.py:_read_image",
        "palette",
        set_count("0", 320, -1),
        ("info", "{input}"),
        2,
        "colormap",
    ),
    Recipe(
        "uid-control-character",
        "ValueError @ bridge/ometiff/omexml_writer.py:build",
        "dicom-grey/level0.dcm",
        without_carriers_with(SeriesInstanceUID="1.2.826.0.1.3680043.10.511\x19.4"),
        ("convert", "{input}", "{out}"),
        0,
        "XML cannot hold",
        note="a control character in a DICOM string: replaced by U+FFFD in the OME-XML, said",
    ),
]


def _input_suffix(recipe: Recipe) -> str:
    return ".dcm" if "/" in recipe.seed else ".ome.tif"


def build(recipe: Recipe, seeds_dir: Path) -> bytes:
    name, _, member = recipe.seed.partition("/")
    seeds = {s.name: s for s in make_seeds(seeds_dir, scale="tiny", corpus=False)}
    path = seeds[name].path / member if member else seeds[name].path
    data = path.read_bytes()
    return recipe.mutate(data) if recipe.mutate else data


def toml_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write(recipes: list[Recipe], seeds_dir: Path, *, remake: bool = False) -> None:
    """Write the manifest, and each input that is missing (all of them with ``remake``: the
    DICOM ones then get new UIDs)."""
    FOLDER.mkdir(parents=True, exist_ok=True)
    lines = [
        "# One case per failure class found by fuzz/campaign.py (issue 12); made by",
        "# `python fuzz/regressions.py` from tiny generated seeds, never from corpus files.",
        "# args: {input} is the file below, {out} the output path (out_name_hex, when given,",
        "# is its name as bytes). The run must exit with `exit`, print exactly one",
        "# 'omedicom: error' line containing `needle` (case-insensitive), no internal error,",
        "# no traceback, and leave nothing behind. exit = 0 means the damage is tolerated:",
        "# a warning contains `needle`, and `omedicom check` accepts the output.",
        "",
    ]
    for r in recipes:
        file = f"{r.name}{_input_suffix(r)}"
        if remake or not (FOLDER / file).exists():
            (FOLDER / file).write_bytes(build(r, seeds_dir))
        lines += [
            "[[case]]",
            f"id = {toml_string(r.name)}",
            f"file = {toml_string(file)}",
            f"args = [{', '.join(toml_string(a) for a in r.args)}]",
            f"exit = {r.exit}",
            f"needle = {toml_string(r.needle)}",
            f"class = {toml_string(r.klass)}",
        ]
        if r.out_name_hex:
            lines.append(f"out_name_hex = {toml_string(r.out_name_hex)}")
        if r.note:
            lines.append(f"note = {toml_string(r.note)}")
        lines.append("")
    (FOLDER / "cases.toml").write_text("\n".join(lines))


def verify(recipes: list[Recipe]) -> None:
    """Run each case as the campaign would and print its category and class today."""
    exe = campaign.omedicom_exe()
    for r in recipes:
        work = Path(tempfile.mkdtemp(prefix="omedicom-regress-"))
        src = FOLDER / f"{r.name}{_input_suffix(r)}"
        out_name = bytes.fromhex(r.out_name_hex) if r.out_name_hex else b"out"
        out = str(work).encode() + b"/" + out_name
        args = [
            a.encode()
            if a not in ("{input}", "{out}")
            else (str(src).encode() if a == "{input}" else out)
            for a in r.args
        ]
        rc, _, err, _secs = campaign._exec([exe.encode(), *args], work, 30, campaign.MEM_BYTES)
        text = err.decode("utf-8", "replace")
        cat = campaign._categorise(r.args[0], rc, text)
        klass = ""
        if cat in ("internal", "memory", "traceback"):
            _, _, derr, _ = campaign._exec(
                [exe.encode(), b"--debug", *args], work, 30, campaign.MEM_BYTES
            )
            klass = campaign.classify_traceback(derr.decode("utf-8", "replace"))[0]
        size = src.stat().st_size
        print(f"{r.name:28s} {size:>7,d} B  exit {rc!s:>4}  {cat:10s} {klass or text.strip()[:90]}")
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--verify", action="store_true")
    ap.add_argument(
        "--remake", action="store_true", help="remake every input, not just missing ones"
    )
    args = ap.parse_args()
    if args.verify:  # the committed files, as they are
        verify(RECIPES)
        return
    seeds_dir = Path(tempfile.mkdtemp(prefix="omedicom-tiny-seeds-"))
    try:
        write(RECIPES, seeds_dir, remake=args.remake)
    finally:
        shutil.rmtree(seeds_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
