"""Cut the ROI part out of an OME-XML document, as text, and put it back.

A whole-slide OME-XML with a million cell detections is a 240 MB document whose ROI part is
nearly all of it: the ``ROI`` elements (OME 2016-06: the last children of ``OME``, after
``StructuredAnnotations`` and before ``BinaryOnly``), one ``ROIRef`` per ROI in its ``Image``
(after ``Pixels``), and, when shapes carry measurements, one ``MapAnnotation`` per shape. The
metadata readers and ome-types need only the rest. :func:`split_rois` separates the two with
string searches (no tree is built), and :func:`join_rois` puts the ROI text back, unchanged, into
a rewritten head, in the places the schema orders them.

Splitting refuses (returns ``None``) what it cannot cut safely: a DOCTYPE (entities), an ROI
start inside a comment or CDATA section, anything but ``BinaryOnly`` after the last ROI, or a
rest that is not well-formed (an ``ROI`` element inside an XMLAnnotation, say, so that the cut
did not fall between top-level elements). Callers then fall back to a full parse.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

#: Namespace of the per-shape measurement MapAnnotations omedicom writes (see ome_rois).
MEASUREMENTS_NS = "urn:omedicom:annotation-measurements:1"

_ROI_START = re.compile(r"<(?:(\w+):)?ROI[\s>/]")
_IMAGE = re.compile(r"<(?:\w+:)?Image[\s>].*?</(?:\w+:)?Image\s*>", re.S)
_ROI_REF = re.compile(r"<(?:\w+:)?ROIRef\b[^>]*?(?:/>|>\s*</(?:\w+:)?ROIRef\s*>)\s*")
_REF_RUN = re.compile(r"(?:\s*<(?:\w+:)?ROIRef\b[^<>]*?(?:/>|>\s*</(?:\w+:)?ROIRef\s*>))*\s*")
_REF_ID = re.compile(r"\bID\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_TAIL = re.compile(r"\s*(?:<(?:\w+:)?BinaryOnly\b[^>]*/>\s*)?</(?:\w+:)?OME\s*>\s*\Z")
_MEASUREMENT_MAP = re.compile(
    r"<(?:\w+:)?MapAnnotation\b[^>]*\bNamespace=\"" + re.escape(MEASUREMENTS_NS) + r"\""
    r"[^>]*>.*?</(?:\w+:)?MapAnnotation\s*>\s*",
    re.S,
)
_PIXELS_END = re.compile(r"</(?:\w+:)?Pixels\s*>|<(?:\w+:)?Pixels\b[^>]*/>")
_SA_START = re.compile(r"<(?:\w+:)?StructuredAnnotations[\s>/]")
_SCHEMA = re.compile(r"<(?:\w+:)?OME\b[^>]*xmlns(?::\w+)?=\"([^\"]+/OME/\d{4}-\d{2})\"")
OME_2016_06 = "http://www.openmicroscopy.org/Schemas/OME/2016-06"
_SA_END = re.compile(r"</(?:\w+:)?StructuredAnnotations\s*>")
_AFTER_ROIS = re.compile(r"<(?:\w+:)?BinaryOnly\b|</(?:\w+:)?OME\s*>")


@dataclass(frozen=True)
class RoiSplit:
    """An OME-XML document cut in two.

    ``head`` is the document without its ROI elements, the Images' ROIRefs and the omedicom
    measurement MapAnnotations. ``text[start:end]`` is the ROI elements' text as it stands in
    the document (not copied); ``refs`` holds, per Image in document order, the text of its
    ROIRef elements, and ``maps`` the text of the measurement MapAnnotations. ``prefix`` is the
    ROI elements' namespace prefix (``""`` for the default namespace).
    """

    text: str
    start: int
    end: int
    head: str
    refs: tuple[str, ...]
    maps: str
    prefix: str

    @property
    def images(self) -> int:
        return len(self.refs)

    def ref_ids(self, image: int) -> list[str]:
        """IDs of the ROIs Image ``image`` references (OME ``ROIRef/@ID``)."""
        return [a or b for a, b in _REF_ID.findall(self.refs[image])]


def ome_schema(xml: str | bytes) -> str | None:
    """The OME namespace the document's root declares (``.../OME/2016-06``), from its start."""
    head = xml[:4096] if isinstance(xml, str) else bytes(xml[:4096]).decode("utf-8", "replace")
    found = _SCHEMA.search(head)
    return found.group(1) if found else None


def _inside_markup(text: str, position: int) -> bool:
    """Whether ``position`` lies in a comment or CDATA section opened before it."""
    opened = text.rfind("<!", 0, position)
    if opened < 0:
        return False
    if text.startswith("<!--", opened):
        close = text.find("-->", opened + 4)
    elif text.startswith("<![CDATA[", opened):
        close = text.find("]]>", opened + 9)
    else:
        return False
    return close < 0 or close > position


def _cut_refs(body: str) -> tuple[str, str]:
    """An Image element's text without its ROIRefs, and the ROIRefs' text.

    ROIRefs stand together after Pixels (OME 2016-06 Image sequence), so the run from the first
    to the last is checked to hold nothing else and cut out whole; otherwise each is cut.
    """
    first = _ROI_REF.search(body)
    if first is None:
        return body, ""
    last = body.rfind("ROIRef")
    stop = body.find(">", last) + 1
    run = body[first.start() : stop]
    tag = first.group(0)[1 : first.group(0).index("ROIRef") + 6]  # "ROIRef" or "p:ROIRef"
    if run.count("<") == run.count("<" + tag) + run.count("</" + tag):
        return body[: first.start()] + body[stop:], run
    return _ROI_REF.sub("", body), "".join(r.rstrip() for r in _ROI_REF.findall(body))


def split_rois(text: str) -> RoiSplit | None:
    """Cut the ROI elements, ROIRefs and measurement maps out of an OME-XML document.

    ``None`` when the document has no ROI element or cannot be cut by string search (see the
    module docstring).
    """
    if "<!DOCTYPE" in text[:4096]:
        return None
    if ome_schema(text) != OME_2016_06:
        return None  # older schemas are upgraded whole, ROIs included (ome-types' XSLT)
    match = _ROI_START.search(text)
    while match is not None and _inside_markup(text, match.start()):
        match = _ROI_START.search(text, match.end())
    if match is None:
        return None
    prefix = match.group(1) or ""
    start = match.start()
    close = f"</{prefix}:ROI" if prefix else "</ROI"
    last = text.rfind(close)
    if last < start:
        return None
    end = text.find(">", last) + 1
    if end <= 0 or not _TAIL.match(text, end):
        return None
    before = text[:start]
    pieces: list[str] = []
    refs: list[str] = []
    cursor = 0
    # Images come before StructuredAnnotations (OME sequence), whose XMLAnnotations may hold
    # foreign elements of any name
    annotations = _SA_START.search(before)
    images_end = annotations.start() if annotations else len(before)
    for image in _IMAGE.finditer(before, 0, images_end):
        body = image.group(0)
        kept, found = _cut_refs(body)
        refs.append(found)
        pieces += [before[cursor : image.start()], kept]
        cursor = image.end()
    pieces.append(before[cursor:])
    head = "".join(pieces)
    maps = _MEASUREMENT_MAP.findall(head)
    if maps:
        head = _MEASUREMENT_MAP.sub("", head)
    head += text[end:]
    if not _well_formed(head):  # the cut was not between top-level elements
        return None
    return RoiSplit(text, start, end, head, tuple(refs), "".join(maps), prefix)


def _well_formed(xml: str) -> bool:
    """Whether ``xml`` parses (expat, no tree built)."""
    from xml.parsers import expat

    parser = expat.ParserCreate()
    try:
        parser.Parse(xml, True)
    except expat.ExpatError:
        return False
    return True


def _with_prefix(text: str, old: str, new: str) -> str:
    """Element names in ``text`` moved from namespace prefix ``old`` to ``new``."""
    if old == new:
        return text
    source = rf"<(/?){re.escape(old)}:" if old else r"<(/?)(?=[A-Za-z_])"
    return re.sub(source, rf"<\1{new}:" if new else r"<\1", text)


#: The ROI text is handed out in slices of this many characters (each one a copy).
SLICE_CHARS = 16 << 20


def join_rois(
    head: str, split: RoiSplit, prefix: str = "", extra_rois: Sequence[str] = ()
) -> Iterator[str]:
    """``head`` (a rewritten version of ``split.head``: same Images in the same order, elements
    in namespace prefix ``prefix``) with the ROI text put back, as pieces to write or join:
    each Image's ROIRefs after its Pixels, the measurement maps at the end of
    StructuredAnnotations, the ROI elements after it (before ``BinaryOnly``), then
    ``extra_rois``. The ROI text is handed out in slices as the pieces are consumed, so writing
    them holds one slice at a time. Raises ``ValueError`` (at once) if ``head`` does not have
    one Pixels per Image of ``split``.
    """
    refs = [_with_prefix(r, split.prefix, prefix) for r in split.refs]
    maps = _with_prefix(split.maps, split.prefix, prefix)
    pieces: list[str] = []
    cursor = 0
    pixels = list(_PIXELS_END.finditer(head))
    if len(pixels) != len(refs):
        raise ValueError(f"the rewritten OME-XML has {len(pixels)} Pixels for {len(refs)} Images")
    for found, ref in zip(pixels, refs, strict=True):
        pieces += [head[cursor : found.end()], ref]
        cursor = found.end()
    tail = head[cursor:]
    p = f"{prefix}:" if prefix else ""
    if maps:
        sa_end = _SA_END.search(tail)
        if sa_end is None:
            after = _AFTER_ROIS.search(tail)
            cut = after.start() if after else len(tail)
            tail = f"{tail[:cut]}<{p}StructuredAnnotations></{p}StructuredAnnotations>{tail[cut:]}"
            sa_end = _SA_END.search(tail)
        assert sa_end is not None
        pieces.append(tail[: sa_end.start()])
        pieces.append(maps)
        tail = tail[sa_end.start() :]
    after = _AFTER_ROIS.search(tail)
    cut = after.start() if after else len(tail)
    pieces.append(tail[:cut])
    return itertools.chain(
        (p for p in pieces if p), _roi_slices(split, prefix), extra_rois, [tail[cut:]]
    )


def _roi_slices(split: RoiSplit, prefix: str) -> Iterator[str]:
    """The document's ROI text, SLICE_CHARS at a time, in namespace prefix ``prefix``."""
    start = split.start
    while start < split.end:
        stop = min(start + SLICE_CHARS, split.end)
        if split.prefix != prefix and stop < split.end:  # cut after a tag, not inside a name
            stop = split.text.rfind(">", start, stop) + 1 or stop
        rois = split.text[start:stop]
        yield _with_prefix(rois, split.prefix, prefix) if split.prefix != prefix else rois
        start = stop
