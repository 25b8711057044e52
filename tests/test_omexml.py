"""The fast OME-XML reader agrees with ome-types (the reference parser) on every corpus file."""

from __future__ import annotations

from pathlib import Path

import ome_types
import pytest
import tifffile

from bridge.errors import MetadataError
from bridge.ometiff import omexml


def _documents(corpus: Path) -> list[tuple[str, str]]:
    docs = [(p.name, p.read_text(encoding="utf-8")) for p in sorted(corpus.glob("ome-xml/*.xml"))]
    for path in sorted(corpus.glob("ome-tiff/*.ome.tif*")):
        with tifffile.TiffFile(path) as tf:
            docs.append((path.name, tf.pages.first.description))
    return docs


def _unit(u) -> str | None:
    return None if u is None else getattr(u, "value", u)


def _length(value, unit, default):
    return None if value is None else (pytest.approx(float(value)), _unit(unit) or default)


@pytest.mark.filterwarnings("ignore:Casting invalid:UserWarning")  # ome-types fixing bad IDs
def test_reader_matches_ome_types_on_the_corpus(corpus: Path) -> None:
    docs = _documents(corpus)
    assert len(docs) >= 15
    for name, xml in docs:
        ours = omexml.parse(xml)
        ref = ome_types.from_xml(xml, validate=False)
        assert ours.uuid == ref.uuid, name
        assert len(ours.images) == len(ref.images), name
        objectives = {o.id: o for i in ref.instruments for o in i.objectives}
        assert set(ours.objectives) == set(objectives), name
        for oid, obj in objectives.items():
            mine = ours.objectives[oid]
            assert mine.nominal_magnification == obj.nominal_magnification, name
            assert mine.lens_na == obj.lens_na, name
            assert mine.immersion == _unit(obj.immersion), name
        for a, b in zip(ours.images, ref.images, strict=True):
            where = f"{name} {b.id}"
            assert (a.id, a.name, a.description) == (b.id, b.name, b.description), where
            assert a.acquisition_date == b.acquisition_date, where
            sid = b.objective_settings.id if b.objective_settings else None
            assert a.objective_id == sid, where
            pa, pb = a.pixels, b.pixels
            assert pa.dimension_order == pb.dimension_order.value, where
            assert pa.type == pb.type.value, where
            assert (pa.size_x, pa.size_y, pa.size_z, pa.size_c, pa.size_t) == (
                pb.size_x,
                pb.size_y,
                pb.size_z,
                pb.size_c,
                pb.size_t,
            ), where
            for axis in "xyz":
                got = getattr(pa, f"physical_size_{axis}")
                want = _length(
                    getattr(pb, f"physical_size_{axis}"),
                    getattr(pb, f"physical_size_{axis}_unit"),
                    "µm",
                )
                assert got == want, (where, axis)
            assert pa.significant_bits == pb.significant_bits, where
            assert len(pa.channels) == len(pb.channels), where
            for ca, cb in zip(pa.channels, pb.channels, strict=True):
                assert (ca.id, ca.name, ca.samples_per_pixel, ca.fluor) == (
                    cb.id,
                    cb.name,
                    cb.samples_per_pixel,
                    cb.fluor,
                ), where
                # an absent Color reads as None here, as the schema default -1 in ome-types
                mine = -1 if ca.color is None else ca.color
                assert mine == (-1 if cb.color is None else cb.color.as_int32()), where
                if ca.color is not None:
                    r, g, b_, _ = cb.color.as_rgb_tuple(alpha=True)
                    assert ca.rgba[:3] == (r, g, b_), where
                assert ca.excitation == _length(
                    cb.excitation_wavelength, cb.excitation_wavelength_unit, "nm"
                ), where
                assert ca.emission == _length(
                    cb.emission_wavelength, cb.emission_wavelength_unit, "nm"
                ), where
                assert ca.illumination_type == _unit(cb.illumination_type), where
                assert ca.contrast_method == _unit(cb.contrast_method), where
            assert len(pa.tiff_data) == len(pb.tiff_data_blocks), where
            for ta, tb in zip(pa.tiff_data, pb.tiff_data_blocks, strict=True):
                assert (ta.ifd, ta.first_z, ta.first_c, ta.first_t, ta.plane_count) == (
                    tb.ifd,
                    tb.first_z or 0,
                    tb.first_c or 0,
                    tb.first_t or 0,
                    tb.plane_count,
                ), where
                assert ta.uuid == (tb.uuid.value if tb.uuid else None), where
                assert ta.file_name == (tb.uuid.file_name if tb.uuid else None), where
            assert len(pa.planes) == len(pb.planes), where
            for la, lb in zip(pa.planes, pb.planes, strict=True):
                assert (la.the_z, la.the_c, la.the_t) == (lb.the_z, lb.the_c, lb.the_t), where
                for axis in "xyz":
                    got = getattr(la, f"position_{axis}")
                    want = _length(
                        getattr(lb, f"position_{axis}"),
                        getattr(lb, f"position_{axis}_unit"),
                        "reference frame",
                    )
                    assert got == want, (where, axis)


def test_old_schema_is_upgraded(corpus: Path) -> None:
    path = corpus / "ome-tiff" / "ome-model__2010-06_6x4y1z1t3c8b-swatch-ROI.ome.tiff"
    with tifffile.TiffFile(path) as tf:
        xml = tf.pages.first.description
    assert "2010-06" in xml
    ome = omexml.parse(xml)
    assert ome.namespace == omexml.OME_2016_06
    assert ome.images[0].pixels.size_c == 3


@pytest.mark.parametrize(
    "xml",
    ["<OME", "<Other xmlns='x'/>", '<OME xmlns="http://example.org/not-ome"/>'],
)
def test_bad_documents_are_refused(xml: str) -> None:
    with pytest.raises(MetadataError):
        omexml.parse(xml)
