"""Apply the profile to one DICOM dataset (PS3.15 E.1.1), in place, nested sequences included.

Private blocks are removed (the Retain Safe Private Option is not offered), except the bridge's
own carrier block (``OMEDICOM 1``, mappings/README.md), whose OME-XML is de-identified by the
same rules (:mod:`.omexml`) and kept, so that a round trip stays lossless for what is left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..dicom import carrier
from .profile import Options, action
from .remap import DUMMY_DATE, Remapper

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

#: Identifiers the issue asks to replace consistently, whatever the table's choice (X/Z, D):
#: Barcode Value, Label Text, Container Identifier, Specimen Identifier, Patient ID, Accession
#: Number, Study ID. Each gets the same pseudonym wherever its value appears.
PSEUDONYMIZED = {0x22000005, 0x22000002, 0x00400512, 0x00400551, 0x00100020, 0x00080050, 0x00200010}

_DUMMY = {"DA": DUMMY_DATE, "TM": "000000", "DT": DUMMY_DATE + "000000", "AS": "000Y"}
_TEXT_VRS = {"LO", "SH", "ST", "LT", "UT", "PN", "UC", "CS", "AE"}


@dataclass
class Cleaner:
    """What one de-identification run shares across every file: options, keyed remapper, and
    the identifying strings seen (to scrub free text under Clean Descriptors, E.3.5)."""

    options: Options
    remap: Remapper
    tokens: set[str] = field(default_factory=set)

    # -- the pass before: what identifies the patient, to scrub from text ---------------------
    def collect(self, ds: Dataset) -> None:
        """Remember identifying values (names split into parts) found in ``ds``."""
        for element in ds.iterall():
            if element.tag.is_private or element.VR == "SQ" or element.value in (None, ""):
                continue
            act = action(int(element.tag), self.options)
            if act is None or act in ("K", "U", "C") or element.VR not in _TEXT_VRS:
                continue
            for value in element.value if element.VM > 1 else [element.value]:
                for part in re.split(r"[\^=\s,]+", str(value)):
                    if len(part) >= 3:
                        self.tokens.add(part)
                if len(str(value)) >= 3:
                    self.tokens.add(str(value))

    def scrub(self, text: str) -> str:
        """Free text with every identifying value seen replaced by its pseudonym."""
        for token in sorted(self.tokens, key=len, reverse=True):
            text = re.sub(re.escape(token), self.remap.identifier(token), text, flags=re.I)
        return text

    # -- the dataset ---------------------------------------------------------------------------
    def clean(self, ds: Dataset) -> None:
        """De-identify ``ds`` in place."""
        for element in list(ds):
            tag = int(element.tag)
            if element.tag.is_private:
                self._private(ds, element)
                continue
            act = action(tag, self.options)
            if act is None:
                if element.VR == "SQ":
                    for item in element.value:
                        self.clean(item)
                continue
            self._apply(ds, element, act)

    def _apply(self, ds: Dataset, element, act: str) -> None:
        tag, vr = int(element.tag), element.VR
        if act == "K":
            return
        if "U" in act and (vr == "UI" or vr == "SQ"):  # U, X/Z/U*: replace UIDs, recurse
            act = "U"
        elif tag in PSEUDONYMIZED and act != "X":
            act = "P"
        elif "/" in act:  # a dummy where the table allows one (the instance stays valid when
            # the IOD makes the attribute Type 1, e.g. Device Serial Number), else empty
            choices = act.split("/")
            act = "D" if "D" in choices else "Z" if "Z" in choices else "X"
        if act == "X":
            del ds[element.tag]
        elif act == "Z":
            element.value = [] if vr == "SQ" else ""
        elif act == "C":
            self._clean_value(element)
        elif act == "P":
            element.value = self._each(element, self.remap.identifier)
        elif act in ("U", "D"):
            if vr == "SQ":
                for item in element.value:
                    self.clean(item)
            elif vr == "UI":
                element.value = self._each(element, self.remap.uid)
            elif vr in ("DA", "DT"):
                element.value = self._date(element)
            elif vr in _DUMMY:
                element.value = _DUMMY[vr]
            elif vr in _TEXT_VRS:
                element.value = self._each(element, self.remap.identifier)
            else:
                del ds[element.tag]

    def _each(self, element, fn):
        if element.value in (None, ""):
            return element.value
        if element.VM > 1:
            return [fn(str(v)) for v in element.value]
        return fn(str(element.value))

    def _date(self, element) -> str:
        if self.options.dates == "modified":
            return self._each(element, self.remap.shift_date)
        if self.options.dates == "full":
            return element.value
        return _DUMMY[element.VR] if element.value not in (None, "") else element.value

    def _clean_value(self, element) -> None:
        vr = element.VR
        if vr == "SQ":
            for item in element.value:
                self.clean(item)
        elif vr in ("DA", "DT"):
            element.value = self._date(element)
        elif vr == "TM":
            if self.options.dates == "removed":
                element.value = _DUMMY["TM"] if element.value else element.value
        elif vr in _TEXT_VRS:
            element.value = self._each(element, self.scrub)

    def _private(self, ds: Dataset, element) -> None:
        group, elem = element.tag.group, element.tag.element
        if group == carrier.GROUP and tag_in_carrier(ds, group, elem):
            if elem & 0xFF == carrier.OME_XML and elem >= 0x1000:
                from .omexml import clean_ome_xml

                element.value = clean_ome_xml(str(element.value), self)
            return
        del ds[element.tag]


def tag_in_carrier(ds: Dataset, group: int, elem: int) -> bool:
    """Whether (group, elem) is the bridge's ``OMEDICOM 1`` creator or one of its elements."""
    if 0x10 <= elem <= 0xFF:
        creator = ds.get((group << 16) | elem)
    elif elem >= 0x1000:
        creator = ds.get((group << 16) | (elem >> 8))
    else:
        return False
    return creator is not None and str(creator.value).strip() == carrier.CREATOR
