"""``omedicom preview``: pictures judged by their pixels. The scale bar is as long as it says,
annotation points land where their coordinates say, each channel shows in its colour, the
label sits beside the slide, and the level drawn is the smallest that is large enough."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pydicom
import pytest
import samples
import tifffile
from conftest import run_cli
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory
    Orthanc,
    orthanc_factory_fixture,
    orthanc_fixture,
    orthancs_fixture,
)
from PIL import Image

CELLS = "ome-tiff/qupath__cells.ome.tif"
POINT = (40.0, 60.0)  # level-0 px of the GeoJSON point
POINT_RGB = (0, 255, 0)


def _facts(png: Path) -> tuple[np.ndarray, dict[str, str]]:
    with Image.open(png) as im:
        return np.asarray(im.convert("RGB")), dict(im.text)


def _box(facts: dict[str, str]) -> tuple[int, int, int, int]:
    x, y, w, h = (int(v) for v in facts["omedicom:slide_box"].split(","))
    return x, y, w, h


def _stated_um(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+) (µm|mm)", text).groups()
    return float(number) * (1000 if unit == "mm" else 1)


def _longest_black_run(pixels: np.ndarray, top: int) -> tuple[int, int]:
    """(length, row) of the longest run of pure black pixels in any row below ``top``."""
    best = (0, -1)
    black = np.all(pixels == 0, axis=2)
    for row in range(top, pixels.shape[0]):
        line = np.concatenate([[0], black[row].astype(np.int8), [0]])
        edges = np.flatnonzero(np.diff(line))
        if len(edges):
            longest = int((edges[1::2] - edges[0::2]).max())
            best = max(best, (longest, row))
    return best


def _assert_scale_bar(pixels: np.ndarray, facts: dict[str, str], level0: tuple[int, int],
                      pixel_um: float) -> None:  # fmt: skip
    """The bar's drawn length equals its stated length / preview pixel size within 1 px; the
    pixel size is worked out here from the source's own size and the slide's box."""
    _x, y, w, h = _box(facts)
    preview_um = pixel_um * level0[0] / w
    stated = _stated_um(json.loads(facts["omedicom:scale_bar"])["text"])
    length, row = _longest_black_run(pixels, y + h + 1)
    assert row > y + h, "no scale bar under the slide"
    assert abs(length - stated / preview_um) <= 1, (length, stated, preview_um)
    assert 0.1 * w <= length <= 0.25 * w + 1  # a readable bar, not the whole width


def _geojson(tmp: Path) -> Path:
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": list(POINT)},
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "Mitosis", "color": list(POINT_RGB)},
                },
            },
            {
                "type": "Feature",
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[10, 10], [80, 12], [70, 50], [12, 45], [10, 10]]],
                },
                "properties": {
                    "objectType": "annotation",
                    "classification": {"name": "Tumor", "color": [200, 0, 0]},
                },
            },
        ],
    }
    path = tmp / "cells.geojson"
    path.write_text(json.dumps(doc))
    return path


def _assert_point(pixels: np.ndarray, facts: dict[str, str], level0: tuple[int, int]) -> None:
    x, y, w, h = _box(facts)
    where = np.argwhere(np.all(pixels[y : y + h, x : x + w] == POINT_RGB, axis=2))
    assert len(where), "the point's colour is nowhere on the slide"
    row, col = where.mean(axis=0) + 0.5 + (y, x)  # pixel centres
    expect_col = x + POINT[0] * w / level0[0]
    expect_row = y + POINT[1] * h / level0[1]
    assert abs(col - expect_col) <= 1 and abs(row - expect_row) <= 1, (
        (col, row),
        (expect_col, expect_row),
    )


def test_brightfield_corpus_slide_with_geojson(corpus: Path, tmp_path: Path) -> None:
    src = corpus / CELLS
    with tifffile.TiffFile(src) as tf:
        level0 = (tf.series[0].shape[-1], tf.series[0].shape[-2])  # SYX
    out = tmp_path / "cells.png"
    proc = run_cli("preview", src, out, "--annotations", _geojson(tmp_path), "--size", "512")
    assert proc.returncode == 0, proc.stderr
    pixels, facts = _facts(out)
    _assert_scale_bar(pixels, facts, level0, 0.25)  # the corpus slide's PhysicalSizeX
    _assert_point(pixels, facts, level0)
    x, y, w, h = _box(facts)
    assert max(w, h) == 512
    # the polygon's outline is drawn in its colour, on the slide; the legend names both groups
    assert np.all(pixels[y : y + h, x : x + w] == (200, 0, 0), axis=2).sum() > 50
    groups = {g["label"]: g["count"] for g in json.loads(facts["omedicom:annotations"])}
    assert groups == {"Mitosis": 1, "Tumor": 1}


def test_annotations_survive_conversion_and_draw_from_dicom(corpus: Path, tmp_path: Path) -> None:
    """The same point, carried into a DICOM annotation instance, lands at the same place."""
    src = corpus / CELLS
    dicom = tmp_path / "dicom"
    proc = run_cli("convert", src, dicom, "--annotations", _geojson(tmp_path), "-q")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "from-dicom.png"
    assert run_cli("preview", dicom, out, "--size", "512").returncode == 0
    pixels, facts = _facts(out)
    _assert_point(pixels, facts, (93, 131))
    _assert_scale_bar(pixels, facts, (93, 131), 0.25)


@pytest.fixture(scope="module")
def fluorescence(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("fluorescence")
    src = samples.write_fluorescence(tmp / "fluo.ome.tif")
    dicom = tmp / "dicom"
    proc = run_cli("convert", src, dicom, "-q")
    assert proc.returncode == 0, proc.stderr
    return src, dicom


@pytest.mark.parametrize("which", ["ome-tiff", "dicom"])
def test_fluorescence_composite_shows_each_channel_colour(fluorescence, tmp_path, which) -> None:
    src = fluorescence[0] if which == "ome-tiff" else fluorescence[1]
    out = tmp_path / "fluo.png"
    proc = run_cli("preview", src, out, "--size", "320")
    assert proc.returncode == 0, proc.stderr
    pixels, facts = _facts(out)
    channels = json.loads(facts["omedicom:channels"])
    assert [c["name"] for c in channels] == [c[0] for c in samples.FLUORESCENCE_CHANNELS]
    colors = [tuple(c["color"]) for c in channels]
    assert len(set(colors)) == 4
    assert colors[2] == samples.FLUORESCENCE_CHANNELS[2][2]  # Cy3's own OME Color is kept
    assert colors[0] == (0, 0, 255)  # the bluest emission gets blue
    x, y, w, h = _box(facts)
    width, height = 640, 512
    for k, spots in enumerate(samples.FLUORESCENCE_SPOTS):
        for cx, cy in spots:
            col, row = int(x + cx * w / width), int(y + cy * h / height)
            seen = pixels[row - 1 : row + 2, col - 1 : col + 2].reshape(-1, 3).mean(axis=0)
            assert np.abs(seen - colors[k]).max() < 40, (channels[k]["name"], seen, colors[k])
    # the background between spots is dark: windows start at the channels' low percentile
    assert pixels[y + 2 : y + 12, x + w // 2 - 5 : x + w // 2 + 5].max() < 60
    _assert_scale_bar(pixels, facts, (width, height), 0.325)


def test_test_fluorescence_zstack_previews_all_four_channels(tmp_path: Path) -> None:
    """The 4-channel z-stack of test_fluorescence: the composite is the sum of each channel,
    windowed between its own percentiles, in its colour; leaving any one channel out of that
    sum no longer matches the picture, so every channel's colour is in it."""
    from test_fluorescence import write_zstack

    src = write_zstack(tmp_path / "zstack.ome.tif")
    out = tmp_path / "z.png"
    assert run_cli("preview", src, out, "--size", "256", "--z", "2").returncode == 0
    pixels, facts = _facts(out)
    channels = json.loads(facts["omedicom:channels"])
    assert facts["omedicom:level"] == "1"  # 700, 350, 175 px wide
    with tifffile.TiffFile(src) as tf:
        data = tf.series[0].levels[1].asarray()[:, 2].astype(np.float64)  # C, Y, X at z=2
    for k, plane in enumerate(data):  # each window is the 0.5 and 99.5 percentile
        assert np.allclose(channels[k]["window"], np.percentile(plane, (0.5, 99.5)))
    lows = [c["window"][0] for c in channels]
    assert lows == sorted(lows) and lows[3] - lows[0] > 1000  # windows follow each channel
    x, y, w, h = _box(facts)
    drawn = pixels[y : y + h, x : x + w].astype(float)

    def composite(keep: list[int]) -> np.ndarray:
        acc = np.zeros((*data.shape[1:], 3))
        for k in keep:
            lo, hi = channels[k]["window"]
            weight = np.clip((data[k] - lo) / (hi - lo), 0, 1)
            acc += weight[..., None] * np.asarray(channels[k]["color"]) / 255
        rgb = (np.clip(acc, 0, 1) * 255 + 0.5).astype(np.uint8)
        return np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX), float)

    assert np.abs(composite([0, 1, 2, 3]) - drawn).mean() < 2
    for k in range(4):
        without = composite([j for j in range(4) if j != k])
        assert np.abs(without - drawn).mean() > 10, channels[k]["name"]
    bad = run_cli("preview", src, tmp_path / "bad.png", "--z", "7")
    assert bad.returncode == 2 and "focal plane 7" in bad.stderr


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("labelled")
    src = samples.write_tifffile(tmp / "labelled.ome.tif", label=True)
    dicom = tmp / "dicom"
    assert run_cli("convert", src, dicom, "-q").returncode == 0
    return dicom


def test_dicom_series_with_label(labelled: Path, tmp_path: Path) -> None:
    out = tmp_path / "with.png"
    proc = run_cli("preview", labelled, out, "--size", "300")
    assert proc.returncode == 0, proc.stderr
    pixels, facts = _facts(out)
    assert facts["omedicom:level"] == "2"  # 1200, 600, 300 px wide: 300 is enough
    _assert_scale_bar(pixels, facts, (1200, 1000), 0.5)
    lx, ly, lw, lh = (int(v) for v in facts["omedicom:label_box"].split(","))
    x, _y, w, h = _box(facts)
    assert lx >= x + w and lh <= h and lw <= w / 2 + 1  # beside the slide, smaller than it
    assert lh == h or abs(lw - w / 2) <= 1  # as large as that allows
    drawn = pixels[ly : ly + lh, lx : lx + lw].astype(float)
    label = samples.tissue(128, 256, seed=7)  # what write_tifffile wrote as the label
    expected = np.asarray(Image.fromarray(label).resize((lw, lh), Image.Resampling.BILINEAR))
    assert np.abs(drawn - expected).mean() < 12  # JPEG-free path: the label's own pixels

    bare = tmp_path / "bare.png"
    assert run_cli("preview", labelled, bare, "--size", "300", "--no-label").returncode == 0
    bare_pixels, bare_facts = _facts(bare)
    assert "omedicom:label_box" not in bare_facts
    assert bare_pixels.shape[1] < pixels.shape[1]

    bigger = tmp_path / "bigger.png"
    assert run_cli("preview", labelled, bigger, "--size", "301", "--no-label").returncode == 0
    assert _facts(bigger)[1]["omedicom:level"] == "1"  # 300 px is too small now


def test_preview_of_a_series_on_a_dicomweb_server(
    orthanc: Orthanc, labelled: Path, tmp_path: Path
) -> None:
    """Frames fetched from the PACS draw the same picture as the files they came from."""
    for path in labelled.iterdir():
        orthanc.upload(path)
    study = str(pydicom.dcmread(next(labelled.glob("*.dcm"))).StudyInstanceUID)
    remote, local = tmp_path / "remote.png", tmp_path / "local.png"
    proc = run_cli("preview", "--dicomweb", orthanc.dicomweb, study, remote, "--size", "300")
    assert proc.returncode == 0, proc.stderr
    assert run_cli("preview", labelled, local, "--size", "300").returncode == 0
    remote_pixels, remote_facts = _facts(remote)
    local_pixels, local_facts = _facts(local)
    assert "omedicom:label_box" in remote_facts  # the label came over the wire too
    assert remote_facts == local_facts
    assert np.array_equal(remote_pixels, local_pixels)
    missing = run_cli("preview", "--dicomweb", orthanc.dicomweb, "1.2.3.4", tmp_path / "m.png")
    assert missing.returncode != 0 and "1.2.3.4" in missing.stderr


def test_bad_arguments_say_what_to_do(labelled: Path, tmp_path: Path) -> None:
    proc = run_cli("preview", labelled, tmp_path / "x.jpg")
    assert proc.returncode == 2 and ".png" in proc.stderr
    proc = run_cli("preview", tmp_path / "missing", tmp_path / "x.png")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    out = tmp_path / "x.png"
    out.write_bytes(b"keep")
    proc = run_cli("preview", labelled, out)
    assert proc.returncode == 4 and out.read_bytes() == b"keep"
    proc = run_cli("preview", labelled, tmp_path / "y.png", "--window", "60,40")
    assert proc.returncode == 2 and "LO < HI" in proc.stderr
    proc = run_cli("preview", "--help")
    for needle in ("examples:", "exit codes:", "--annotations", "--no-label", "--dicomweb"):
        assert needle in proc.stdout


def test_channel_colours_are_their_own_unless_taken_and_else_by_wavelength() -> None:
    from types import SimpleNamespace

    from bridge.model import Channel
    from bridge.preview.pixels import channel_colors

    def colours(*channels: Channel) -> list[tuple[int, int, int]]:
        return channel_colors(SimpleNamespace(channels=channels))

    red = (128, 0, 0, 255)
    # three channels all dark red (as an old OME sample has them): the first keeps it
    got = colours(Channel("a", color=red), Channel("b", color=red), Channel("c", color=red))
    assert got[0] == (128, 0, 0) and len(set(got)) == 3
    # no colours: blue for the shortest emission, whatever the channel order
    got = colours(Channel("far", emission_nm=670), Channel("dapi", emission_nm=461))
    assert got == [(0, 255, 0), (0, 0, 255)]
    assert colours(Channel("only")) == [(255, 255, 255)]  # one channel: grey levels
    clear = (128, 0, 0, 0)  # alpha 0: no colour at all (the 2010-06 swatch sample)
    assert colours(Channel("a", color=clear), Channel("b", color=clear))[0] == (0, 0, 255)


@pytest.mark.parametrize(
    ("most", "length"), [(0.9, 0.5), (1.0, 1.0), (3.7, 2.0), (740.0, 500.0), (1999.0, 1000.0)]
)
def test_scale_bar_lengths_are_round(most: float, length: float) -> None:
    from bridge.preview import round_length

    assert round_length(most) == length


def test_a_slide_without_a_pyramid_is_reduced_while_decoding(tmp_path: Path) -> None:
    """A 4096 px single-level slide drawn 512 px wide: 8 × 8 blocks are averaged tile by tile
    (the level is never held whole), and the picture is the source's block means."""
    src = samples.write_tifffile(tmp_path / "flat.ome.tif", size=(4096, 3072), levels=1)
    out = tmp_path / "flat.png"
    proc = run_cli("preview", src, out, "--size", "512", "--no-label")
    assert proc.returncode == 0, proc.stderr
    pixels, facts = _facts(out)
    assert facts["omedicom:level"] == "0" and facts["omedicom:reduction"] == "8"
    x, y, w, h = _box(facts)
    assert (w, h) == (512, 384)
    level0 = tifffile.imread(src).astype(float)
    expected = level0.reshape(384, 8, 512, 8, 3).mean(axis=(1, 3))
    assert np.abs(pixels[y : y + h, x : x + w] - expected).mean() < 1.0
