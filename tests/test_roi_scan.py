"""The fast ROI path (issue 5, "a million points in a few seconds") against the full reader.

:mod:`bridge.annotations.roi_scan` reads OME ROIs from the text by columns and
:mod:`bridge.annotations.section` cuts the ROI text out of a document and puts it back. They
are only allowed to be faster: on every document here the scanner either gives exactly what
the element-by-element lxml reader gives (groups field by field, arrays value by value,
warnings) or declines. The plain documents our writer and ome-types produce must not be
declined, or the speed would be a fiction.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import ome_types
import pytest
from ome_types.model import (
    OME,
    ROI,
    AffineTransform,
    Color,
    Ellipse,
    Image,
    Line,
    Pixels,
    Point,
    Polygon,
    Rectangle,
    ROIRef,
    TiffData,
)

from bridge.annotations import insert_rois, ome_rois, rois_from_ome_xml, section
from bridge.model import AnnotationGroup, GraphicType

CORPUS = Path(os.environ.get("OMEDICOM_CORPUS", Path(__file__).parents[2] / "shared" / "corpus"))
NS = "http://www.openmicroscopy.org/Schemas/OME/2016-06"


def _image(n: int) -> Image:
    return Image(
        id=f"Image:{n}",
        pixels=Pixels(
            id=f"Pixels:{n}",
            dimension_order="XYZCT",
            type="uint8",
            size_x=640,
            size_y=480,
            size_z=3,
            size_c=2,
            size_t=2,
            tiff_data_blocks=[TiffData()],
        ),
    )


# fmt: off
ELLIPSES = [
    [90, 100], [110, 100], [100, 95], [100, 105],  # horizontal
    [300, 280], [300, 320], [295, 300], [305, 300],  # vertical
    [0, 0], [40, 30], [23, 9], [17, 21],  # rotated
]
# fmt: on


def _groups() -> list[AnnotationGroup]:
    """Groups of every graphic type, with measurements, several objects, z and channel."""
    rng = np.random.default_rng(7)
    n = 40
    cells = AnnotationGroup(
        "cells",
        GraphicType.POINT,
        rng.uniform(0, 600, (n, 2)),
        np.arange(n),
        color=(255, 0, 0),
        measurements=(
            AnnotationGroup.Measurement(
                ("246205007", "SCT", "Quantity"),
                ("1", "UCUM", "no units"),
                np.where(np.arange(n) % 3 == 0, np.nan, rng.uniform(0, 9, n)),
            ),
            AnnotationGroup.Measurement(
                ("99A", "99OMEDICOM", "Area µm^2"), ("um2", "UCUM", "µm2"), rng.uniform(1, 5, n)
            ),
        ),
    )
    ring = np.array([[0, 0], [10, 1], [12, 9], [3, 11.5], [-2, 5]], dtype=float)
    polygons = AnnotationGroup(
        "nuclei",
        GraphicType.POLYGON,
        np.concatenate([ring + k * 13 for k in range(6)]),
        np.arange(0, 30, 5),
        z=1,
        channel=0,
        objects=np.array([100, 100, 101, 102, 102, 102]),  # ROIs of several shapes
    )
    lines = AnnotationGroup(
        "rulers",
        GraphicType.POLYLINE,
        np.array([[1, 2], [30, 40], [5, 5], [6, 60.5]], dtype=float),
        np.array([0, 2]),
        provenance=(("ome:shape", "Line"),),
    )
    square = np.array([[10, 10], [50, 10], [50, 30], [10, 30]], dtype=float)
    theta = math.radians(25)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    boxes = AnnotationGroup(
        "boxes",
        GraphicType.RECTANGLE,
        np.concatenate([square, square @ rot.T + 200]),  # one axis-aligned, one rotated
        np.array([0, 4]),
        color=(0, 0, 255),
        provenance=(("ome:color", "fill"),),
    )
    ellipses = AnnotationGroup(
        "ovals",
        GraphicType.ELLIPSE,
        np.array(ELLIPSES, dtype=float),
        np.array([0, 4, 8]),
    )
    return [cells, polygons, lines, boxes, ellipses]


def _written(images: int = 1, on: int = 0) -> str:
    base = ome_types.to_xml(OME(images=[_image(n) for n in range(images)]))
    return insert_rois(base, _groups(), on)


def _ome_types_doc() -> str:
    """ROIs as ome-types writes them: Transform, TheT, Text, ROIs of two Images, one orphan."""
    t = AffineTransform(a00=0.8, a01=-0.6, a02=10, a10=0.6, a11=0.8, a12=-4)
    red = Color((255, 0, 0))
    rois = [
        ROI(id="ROI:1", name="a & <b>", union=[Point(id="Shape:1", x=1, y=2, stroke_color=red)]),
        ROI(id="ROI:2", union=[Point(id="Shape:2", x=3.5, y=4, text="labelled", the_t=1)]),
        ROI(id="ROI:3", union=[Rectangle(id="Shape:3", x=0, y=0, width=5, height=3, transform=t)]),
        ROI(
            id="ROI:4", union=[Ellipse(id="Shape:4", x=9, y=9, radius_x=4, radius_y=2, transform=t)]
        ),
        ROI(
            id="ROI:5",
            name="pair",
            union=[
                Line(id="Shape:5", x1=0, y1=0, x2=7, y2=7, the_z=2, the_c=1),
                Polygon(id="Shape:6", points="0,0 4,0 4,4 0,0", the_z=2, the_c=1),
            ],
        ),
        ROI(id="ROI:6", name="second image", union=[Point(id="Shape:7", x=5, y=5)]),
        ROI(id="ROI:7", name="orphan", union=[Point(id="Shape:8", x=6, y=6)]),
    ]
    images = [_image(0), _image(1)]
    images[0].roi_refs = [ROIRef(id=f"ROI:{k}") for k in range(1, 6)]
    images[1].roi_refs = [ROIRef(id="ROI:6")]
    return ome_types.to_xml(OME(images=images, rois=rois))


def _corpus(name: str) -> str | None:
    path = CORPUS / "ome-xml" / name
    return path.read_text(encoding="utf-8") if path.exists() else None


def assert_same(fast: tuple, slow: tuple) -> None:
    """Groups equal field by field, their arrays value by value, and the same warnings."""
    groups, warnings = fast
    expected, expected_warnings = slow
    assert warnings == expected_warnings
    assert len(groups) == len(expected)
    for got, want in zip(groups, expected, strict=True):
        assert got == want  # every compared field: label, type, colour, z, codes, ...
        np.testing.assert_array_equal(got.coordinates, want.coordinates)
        np.testing.assert_array_equal(got.offsets, want.offsets)
        if want.objects is None:
            assert got.objects is None
        else:
            np.testing.assert_array_equal(got.objects, want.objects)
        assert [(m.name, m.unit) for m in got.measurements] == [
            (m.name, m.unit) for m in want.measurements
        ]
        for a, b in zip(got.measurements, want.measurements, strict=True):
            np.testing.assert_array_equal(a.values, b.values)


PLAIN = {
    "written by omedicom": lambda: (_written(), 0),
    "written on the second of three Images": lambda: (_written(3, 1), 1),
    "written, read for an Image without ROIs": lambda: (_written(3, 1), 0),
    "written by ome-types, first Image": lambda: (_ome_types_doc(), 0),
    "written by ome-types, second Image": lambda: (_ome_types_doc(), 1),
}


@pytest.mark.parametrize("case", PLAIN)
def test_the_scanner_reads_plain_documents_exactly_as_the_full_reader(case: str) -> None:
    xml, image = PLAIN[case]()
    fast = ome_rois._scanned(xml, image)
    assert fast is not None, "the scanner declined a plain document"
    slow = ome_rois._parsed(xml, image)
    assert_same(fast, slow)
    if image == 0 and "Image without" not in case:
        assert sum(g.count for g in slow[0]) > 0  # the comparison compared something


def test_the_scanner_sees_what_the_cases_contain() -> None:
    """The plain cases do exercise transforms, TheT, entities, orphans and measurements."""
    groups, warnings = ome_rois._scanned(_ome_types_doc(), 0)
    labels = {g.label for g in groups}
    assert "a & <b>" in labels and "labelled" in labels
    assert any("TheT" in w for w in warnings) and any("not referenced" in w for w in warnings)
    groups, _ = ome_rois._scanned(_written(), 0)
    cells = next(g for g in groups if g.label == "cells")
    assert len(cells.measurements) == 2
    assert any(np.isnan(m.values).any() for m in cells.measurements)
    nuclei = next(g for g in groups if g.label == "nuclei")
    assert nuclei.objects is not None and len(set(nuclei.objects.tolist())) == 3


QUOTED = '<Description>say "hi"</Description>'


def _tricky() -> dict[str, str]:
    xml = _written()
    at = xml.index("<ROI ")
    second = xml.index("<ROI ", at + 1)
    return {
        "comment among the ROIs": xml[:second] + "<!-- x -->" + xml[second:],
        "quote in a description": xml.replace("<Union>", QUOTED + "<Union>", 1),
        "single-quoted name": xml.replace('Name="cells"', "Name='ce\"lls'", 1),
        "spaces around =": xml.replace(' X="', ' X = "', 3),
        "a Mask shape": xml.replace(
            "<Union>",
            '<Union><Mask ID="Shape:m" X="0" Y="0" Width="2" Height="2"><BinData '
            'Length="0" BigEndian="false"></BinData></Mask>',
            1,
        ),
        "a value that is not a number": xml.replace(' X="', ' X="1e400', 1),
        "a polygon that is too short": xml.replace(
            xml[xml.index('Points="') : xml.index('"', xml.index('Points="') + 8) + 1],
            'Points="1,1 2,2"',
            1,
        ),
        "an entity in an attribute": xml.replace('Name="nuclei"', 'Name="nu&#x63;lei"'),
        "an entity in a reference": xml.replace(
            'ID="Annotation:omedicom:0.0:1"', 'ID="Annotation:omedicom:0.0:&#x31;"'
        ),
        "a newline in a name": xml.replace('Name="rulers"', 'Name="ru\nlers"'),
        "a prefix": xml.replace("<OME xmlns=", "<ome:OME xmlns:ome=")
        .replace("<", "<ome:")
        .replace("<ome:/", "</ome:")
        .replace("<ome:?", "<?")
        .replace("<ome:ome:", "<ome:"),
    }


@pytest.mark.parametrize("case", list(_tricky()))
def test_the_scanner_declines_or_agrees_on_tricky_documents(case: str) -> None:
    xml = _tricky()[case]
    try:
        slow = ome_rois._parsed(xml, 0)
    except Exception as exc:  # the full reader refuses: so must rois_from_ome_xml
        with pytest.raises(type(exc)):
            rois_from_ome_xml(xml, 0)
        return
    fast = ome_rois._scanned(xml, 0)
    if fast is not None:
        assert_same(fast, slow)
    assert_same(rois_from_ome_xml(xml, 0), slow)


def test_the_scanner_declines_what_it_must_not_guess() -> None:
    tricky = _tricky()
    for case in ("comment among the ROIs", "a Mask shape", "a polygon that is too short"):
        assert ome_rois._scanned(tricky[case], 0) is None, case


@pytest.mark.parametrize(
    ("name", "scanned"),
    [
        ("ome-types__shape-union.ome.xml", True),  # plain: the scanner must read it
        ("ome-model__2016-06_ROI.ome.xml", False),  # Mask and Label: only the full reader
    ],
)
def test_corpus_documents_read_the_same_either_way(name: str, scanned: bool) -> None:
    xml = _corpus(name)
    if xml is None:
        pytest.skip(f"the corpus ({CORPUS}) is absent; set OMEDICOM_CORPUS")
    fast = ome_rois._scanned(xml, 0)
    slow = ome_rois._parsed(xml, 0)
    assert (fast is not None) == scanned
    if fast is not None:
        assert_same(fast, slow)
    else:  # declined: what only the full reader says is said
        assert any("Mask" in w for w in slow[1]) and any("Label" in w for w in slow[1])
    assert sum(g.count for g in slow[0]) > 0


# -- section: cut and put back ----------------------------------------------------------------


def test_split_and_join_give_the_same_document_back() -> None:
    xml = _ome_types_doc()
    split = section.split_rois(xml)
    assert split is not None
    assert "<ROI " not in split.head and "ROIRef" not in split.head
    assert split.ref_ids(0) == [f"ROI:{k}" for k in range(1, 6)]
    assert split.ref_ids(1) == ["ROI:6"]
    rebuilt = "".join(section.join_rois(split.head, split))
    assert ome_types.from_xml(rebuilt) == ome_types.from_xml(xml)


def test_join_puts_the_rois_into_a_rewritten_head() -> None:
    """The carried-document path: ome-types rewrites the head; the ROI text goes back in."""
    xml = _written(2, 0)
    split = section.split_rois(xml)
    head = ome_types.from_xml(split.head)
    head.creator = "rewritten"
    rebuilt = "".join(section.join_rois(ome_types.to_xml(head), split))
    got, want = ome_types.from_xml(rebuilt), ome_types.from_xml(xml)
    assert got.creator == "rewritten"
    assert got.rois == want.rois
    assert got.images[0].roi_refs == want.images[0].roi_refs
    # measurement MapAnnotations go back after the others: same set, not the same order
    by_id = lambda ome: sorted(ome.structured_annotations.map_annotations, key=lambda m: m.id)  # noqa: E731
    assert by_id(got) == by_id(want) and len(by_id(want)) > len(_groups())
    assert_same(rois_from_ome_xml(rebuilt, 0), rois_from_ome_xml(xml, 0))


def test_join_moves_the_rois_to_another_prefix() -> None:
    xml = _ome_types_doc()
    split = section.split_rois(xml)
    head = split.head.replace("<", "<ome:").replace("<ome:/", "</ome:").replace("<ome:?", "<?")
    head = head.replace("<ome:OME xmlns=", "<ome:OME xmlns:ome=")
    rebuilt = "".join(section.join_rois(head, split, "ome"))
    assert ome_types.from_xml(rebuilt) == ome_types.from_xml(xml)


@pytest.mark.parametrize(
    "xml",
    [
        f'<!DOCTYPE OME [<!ENTITY e "x">]><OME xmlns="{NS}"><ROI ID="ROI:1"/></OME>',
        f'<OME xmlns="{NS}"><!-- <ROI ID="ROI:0"/> --></OME>',
        f'<OME xmlns="{NS}"><ROI ID="ROI:1"></ROI><Image ID="Image:0"/></OME>',
        # an OME-namespace ROI element inside an XMLAnnotation, then the real ROIs
        f'<OME xmlns="{NS}"><StructuredAnnotations><XMLAnnotation ID="Annotation:0"><Value>'
        '<ROI ID="ROI:x"/></Value></XMLAnnotation></StructuredAnnotations>'
        '<ROI ID="ROI:1"><Union><Point ID="Shape:1" X="1" Y="2"/></Union></ROI></OME>',
    ],
)
def test_split_declines_what_it_cannot_cut(xml: str) -> None:
    assert section.split_rois(xml) is None


# -- writing: the one-shape-per-ROI path and the streamed description --------------------------


def test_the_sliced_writer_writes_what_the_general_writer_writes(monkeypatch) -> None:
    groups = [g for g in _groups() if g.objects is None]
    groups[0] = AnnotationGroup(  # a description and a text label, too
        groups[0].label,
        groups[0].graphic_type,
        groups[0].coordinates,
        groups[0].offsets,
        description="seen & counted",
        color=groups[0].color,
        measurements=groups[0].measurements,
        provenance=(("ome:label", "text"),),
    )
    monkeypatch.setattr(ome_rois, "SLICE", 7)  # several slices per group
    fast = ome_rois.rois_xml(groups, prefix="p:", ns="ome:")
    general = ome_rois.rois_xml(groups, prefix="p:", ns="ome:", general=True)
    assert len(fast.rois) > len(groups)  # it did slice
    assert "".join(fast.rois) == "".join(general.rois)
    assert "".join(fast.refs) == "".join(general.refs)
    assert "".join(fast.annotations) == "".join(general.annotations)
    assert fast.count == general.count == sum(g.count for g in groups)


def test_join_hands_out_the_roi_text_in_slices(monkeypatch) -> None:
    xml = _ome_types_doc()
    split = section.split_rois(xml)
    monkeypatch.setattr(section, "SLICE_CHARS", 50)
    pieces = list(section.join_rois(split.head, split))
    rois = split.end - split.start
    assert sum(1 for p in pieces if len(p) <= 50) >= rois // 50  # the ROI text came in slices
    assert ome_types.from_xml("".join(pieces)) == ome_types.from_xml(xml)
    # a prefix change cuts between tags, never inside one
    head = split.head.replace("<", "<ome:").replace("<ome:/", "</ome:").replace("<ome:?", "<?")
    head = head.replace("<ome:OME xmlns=", "<ome:OME xmlns:ome=")
    again = "".join(section.join_rois(head, split, "ome"))
    assert ome_types.from_xml(again) == ome_types.from_xml(xml)


def test_the_description_is_streamed_into_the_tiff(tmp_path: Path) -> None:
    import tifffile

    from bridge.ometiff.writer import PLACEHOLDER, put_description

    path = tmp_path / "t.ome.tif"
    with tifffile.TiffWriter(path, bigtiff=True, ome=False) as tw:
        tw.write(np.zeros((32, 32), np.uint8), description=PLACEHOLDER)
        tw.write(np.ones((16, 16), np.uint8))
    xml = _written()
    pieces = [xml[i : i + 1000] for i in range(0, len(xml), 1000)]
    put_description(path, pieces)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.description == xml
        assert tif.is_ome and len(tif.pages) == 2
        np.testing.assert_array_equal(tif.pages[1].asarray(), np.ones((16, 16), np.uint8))
    assert_same(
        rois_from_ome_xml(tifffile.TiffFile(path).pages.first.description), rois_from_ome_xml(xml)
    )


# -- cases a review found (each was a difference between the readers, or a failure) ----------


def _image_xml(n: int, refs: str = "") -> str:
    return (
        f'<Image ID="Image:{n}"><Pixels ID="Pixels:{n}" DimensionOrder="XYZCT" Type="uint8" '
        f'SizeX="10" SizeY="10" SizeZ="1" SizeC="1" SizeT="1"><TiffData/></Pixels>{refs}</Image>'
    )


def _doc(images: str, rois: str, before: str = "") -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<OME xmlns="{NS}">{before}{images}{rois}</OME>'


def _roi(i: int, shape: str, name: str = "") -> str:
    name_attr = f' Name="{name}"' if name else ""
    return f'<ROI ID="ROI:{i}"{name_attr}><Union>{shape}</Union></ROI>'


_MANY = "".join(f'<Point ID="Shape:{i}" X="{i}" Y="0"/>' for i in range(1100))
_FOREIGN_IMAGE = (
    '<StructuredAnnotations><XMLAnnotation ID="Annotation:1"><Value><Meta xmlns="urn:vendor">'
    '<Image name="overview">scan.jpg</Image></Meta></Value></XMLAnnotation>'
    "</StructuredAnnotations>"
)
_EXPERIMENT = (
    '<Experiment ID="Experiment:0"><MicrobeamManipulation ID="MicrobeamManipulation:0">'
    '<ROIRef ID="ROI:2"/><ExperimenterRef ID="Experimenter:0"/></MicrobeamManipulation>'
    '</Experiment><Experimenter ID="Experimenter:0"/>'
)
_P1 = '<Point ID="Shape:a" X="1" Y="1"/>'
_P2 = '<Point ID="Shape:b" X="2" Y="2"/>'
REVIEWED = {
    # must be read by the scanner, and read the same
    "an ROI of 1,100 shapes, then another": (
        _doc(_image_xml(0), _roi(1, _MANY) + _roi(2, '<Point ID="Shape:x" X="-1" Y="-1"/>')),
        0,
        True,
    ),
    "groups interleaved in the document": (
        _doc(
            _image_xml(0),
            _roi(1, _P1, "A")
            + _roi(2, '<Rectangle ID="Shape:r" X="1" Y="1" Width="2" Height="2"/>', "B")
            + _roi(3, _P2, "C"),
        ),
        0,
        True,
    ),
    "an <Image> inside an XMLAnnotation": (
        _doc(_image_xml(0, '<ROIRef ID="ROI:1"/>') + _FOREIGN_IMAGE, _roi(1, _P1) + _roi(2, _P2)),
        0,
        True,
    ),
    "TheT on an ROI without ID": (
        _doc(_image_xml(0), '<ROI><Union><Point ID="Shape:1" X="1" Y="1" TheT="1"/></Union></ROI>'),
        0,
        True,
    ),
    # may be declined, must not differ
    "a rectangle beyond float range": (
        _doc(
            _image_xml(0),
            _roi(1, '<Rectangle ID="Shape:1" X="1.5e308" Y="0" Width="1.5e308" Height="1"/>'),
        ),
        0,
        False,
    ),
    "a polygon beyond float range after its Transform": (
        _doc(
            _image_xml(0),
            _roi(
                1,
                '<Polygon ID="Shape:1" Points="1e300,0 0,1 1,1"><Transform A00="1e10" A01="0" '
                'A02="0" A10="0" A11="1" A12="0"/></Polygon>',
            ),
        ),
        0,
        False,
    ),
    "a character reference in an ROIRef, two Images": (
        _doc(
            _image_xml(0, '<ROIRef ID="ROI:&#x31;"/>') + _image_xml(1, '<ROIRef ID="ROI:2"/>'),
            _roi(1, _P1) + _roi(2, _P2),
        ),
        0,
        False,
    ),
    "an ROIRef in a MicrobeamManipulation": (
        _doc(
            _image_xml(0, '<ROIRef ID="ROI:1"/>') + _image_xml(1, '<ROIRef ID="ROI:2"/>'),
            _roi(1, _P1) + _roi(2, _P2),
            before=_EXPERIMENT,
        ),
        0,
        False,
    ),
    "a single-quoted name with a character reference": (
        _doc(_image_xml(0), "<ROI ID=\"ROI:1\" Name='a&#9;b'><Union>" + _P1 + "</Union></ROI>"),
        0,
        False,
    ),
}


@pytest.mark.parametrize("case", REVIEWED)
def test_reviewed_documents_read_the_same(case: str) -> None:
    xml, image, must_scan = REVIEWED[case]
    slow = ome_rois._parsed(xml, image)
    fast = ome_rois._scanned(xml, image)
    if must_scan:
        assert fast is not None, "the scanner declined"
    if fast is not None:
        assert_same(fast, slow)


def test_the_full_reader_counts_only_ome_images() -> None:
    xml = REVIEWED["an <Image> inside an XMLAnnotation"][0]
    groups, warnings = ome_rois._parsed(xml, 0)
    assert sum(g.count for g in groups) == 2 and warnings == ()  # one OME Image: both are its


def test_older_schemas_are_not_cut() -> None:
    old = _ome_types_doc().replace("OME/2016-06", "OME/2015-01")
    assert section.split_rois(old) is None


def test_inserting_keeps_the_document_s_own_rois_first() -> None:
    import re

    xml = _doc(_image_xml(0, '<ROIRef ID="ROI:old"/>'), '<ROI ID="ROI:old" Name="old">'
               f"<Union>{_P1}</Union></ROI>")  # fmt: skip
    group = AnnotationGroup("new", GraphicType.POINT, np.array([[5.0, 5.0]]), np.array([0]))
    out = insert_rois(xml, [group])
    order = re.findall(r'<(ROIRef|ROI) ID="([^"]+)"', out)
    assert next(i for t, i in order if t == "ROI") == "ROI:old"
    assert next(i for t, i in order if t == "ROIRef") == "ROI:old"
    assert [g.label for g in rois_from_ome_xml(out)[0]] == ["old", "new"]


def test_a_2010_06_slide_keeps_its_rois_through_dicom(tmp_path: Path) -> None:
    """The carried OME-XML of an older schema goes back upgraded whole, ROIs included."""
    from conftest import run_cli

    src = CORPUS / "ome-tiff" / "ome-model__2010-06_6x4y1z1t3c8b-swatch-ROI.ome.tiff"
    if not src.exists():
        pytest.skip(f"the corpus ({CORPUS}) is absent; set OMEDICOM_CORPUS")
    import tifffile

    run_cli("convert", src, tmp_path / "dcm", "--pixel-size", "0.5", check=True)
    run_cli("convert", tmp_path / "dcm", tmp_path / "back.ome.tif", check=True)
    with tifffile.TiffFile(tmp_path / "back.ome.tif") as tif:
        xml = tif.pages.first.description
    with tifffile.TiffFile(src) as tif:
        before, _ = rois_from_ome_xml(tif.pages.first.description)
    after, _ = rois_from_ome_xml(xml)
    assert len(after) == len(before) == 3
    assert_same((after, ()), (before, ()))
    assert len(ome_types.from_xml(xml).rois) == 3
