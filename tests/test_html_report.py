"""``check --html`` and ``convert --report``: one self-contained page, judged by a real browser
(Debian's chromium driven by Playwright): every image loads, the verdict and every finding of
``check --json`` are visible, with the same ids in the same order; a screenshot is kept in the
test's tmp folder."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pydicom
import pytest
import samples
from conftest import run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (scripts/test.sh installs the Debian package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # --no-sandbox: the tests may run as root (CI containers), where the sandbox refuses
        chrome = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chrome
        chrome.close()


def _open(browser, page_path: Path, shot: Path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # no JavaScript is needed to read the report: it is judged with scripts off in the page
    page.goto(page_path.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(shot), full_page=True)
    return page


def _images_load(page) -> int:
    widths = page.eval_on_selector_all(
        "img", "els => els.map(e => [e.complete, e.naturalWidth, e.src.slice(0, 22)])"
    )
    assert widths, "the report shows no image"
    for complete, width, src in widths:
        assert complete and width > 0, (complete, width, src)
        assert src.startswith("data:image/png;base64"), src  # self-contained
    return len(widths)


def _self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r"""(src|href)=['"](?!data:)""", text), "an external resource"


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A converted slide with annotations whose level 1 claims a wrong Pixel Spacing."""
    tmp = tmp_path_factory.mktemp("broken")
    src = samples.write_tifffile(tmp / "slide.ome.tif", size=(1024, 768), label=True)
    geojson = tmp / "a.geojson"
    geojson.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {"type": "Point", "coordinates": [500, 400]},
                        "properties": {"classification": {"name": "Cell", "color": [0, 255, 0]}},
                    }
                ],
            }
        )
    )
    out = tmp / "dicom"
    assert run_cli("convert", src, out, "--annotations", geojson, "-q").returncode == 0
    for path in out.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        if ds.Modality == "SM" and int(ds.TotalPixelMatrixColumns) == 512:
            measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
            measures.PixelSpacing = [0.004, 0.004]  # level 1 is 0.001 mm per pixel
            ds.save_as(path)
            break
    else:
        raise AssertionError("no level 1 found to break")
    return out


def test_failing_check_report_lists_the_json_findings(broken: Path, tmp_path: Path, browser):
    report = tmp_path / "check.html"
    proc = run_cli("check", broken, "--json", "--html", report)  # one check, both reports
    assert proc.returncode == 1, proc.stderr
    expected = json.loads(proc.stdout)
    assert expected["verdict"] == "fail"
    assert "WSI-spacing" in {f["id"] for f in expected["findings"]}
    text = report.read_text()
    _self_contained(text)

    page = _open(browser, report, tmp_path / "check-report.png")
    verdict = page.locator("#verdict")
    assert verdict.is_visible() and verdict.inner_text() == "FAIL"
    rows = page.locator("tr.finding")
    assert rows.count() == len(expected["findings"])
    ids = page.eval_on_selector_all("tr.finding", "rows => rows.map(r => r.dataset.id)")
    assert ids == [f["id"] for f in expected["findings"]]  # same findings, same order
    shown = page.eval_on_selector_all(
        "tr.finding",
        """rows => rows.map(r => { const b = r.getBoundingClientRect();
            const s = getComputedStyle(r);
            return b.width > 0 && b.height > 0 && s.visibility === 'visible'
                && s.display !== 'none'; })""",
    )
    assert all(shown)
    assert rows.first.is_visible() and rows.last.is_visible()
    texts = rows.all_inner_texts()
    for finding, text in zip(expected["findings"], texts, strict=True):
        assert finding["message"] in text
        assert finding["reference"] in text  # its DICOM section
    # a preview of the pyramid, with the annotation drawn (its legend names the group)
    assert _images_load(page) >= 1
    body = page.locator("body").inner_text()
    assert "Cell\tPOINT\t1" in body
    # each level's grid, size and spacing: level 1 shows the broken 4 µm spacing
    levels = page.locator("table.levels").first.inner_text()
    assert "4 × 3\t0.5 × 0.5" in levels  # level 0: 1024 × 768 px in 256 px tiles
    assert "512 × 384\t256 × 256\t2 × 2\t4 × 4 (level 0 and the size imply 1 × 1)" in levels
    assert (tmp_path / "check-report.png").stat().st_size > 10_000
    page.close()


def test_convert_report_shows_source_and_output_and_why(corpus: Path, tmp_path: Path, browser):
    jpeg = samples.write_tifffile(tmp_path / "jpeg.ome.tif", size=(600, 500), levels=2)
    cells = corpus / "ome-tiff/qupath__cells.ome.tif"
    for name, src, expect in (
        ("jpeg", jpeg, "copied verbatim"),
        ("cells", cells, "re-encoded"),
    ):
        report = tmp_path / f"{name}.html"
        proc = run_cli("convert", src, tmp_path / f"{name}_dicom", "--report", report, "-q")
        assert proc.returncode == 0, proc.stderr
        _self_contained(report.read_text())
        page = _open(browser, report, tmp_path / f"convert-{name}.png")
        assert page.locator("#verdict").is_visible()
        assert _images_load(page) == 2  # the source and the output, side by side
        copies = page.locator("#copies tbody tr")
        assert copies.count() >= 1
        for n in range(copies.count()):
            assert expect in copies.nth(n).inner_text()
        if name == "cells":  # the reason is the converter's own
            assert "PlanarConfiguration" in copies.first.inner_text()
        sections = page.locator("section.slide h2").all_inner_texts()
        assert sections[0].startswith("source") and sections[1].startswith("output")
        page.close()
    exists = run_cli("convert", jpeg, tmp_path / "again", "--report", tmp_path / "jpeg.html")
    assert exists.returncode == 4 and not (tmp_path / "again").exists()


def test_dicom_files_named_one_by_one_are_one_slide_in_the_report(broken: Path, tmp_path: Path):
    files = sorted(broken.glob("*.dcm"))
    report = tmp_path / "files.html"
    proc = run_cli("check", *files, "--html", report, "--no-dicom3tools")
    assert proc.returncode == 1, proc.stderr
    text = report.read_text()
    assert text.count("<section class='slide'>") == 1  # the files read together
    assert text.count("data:image/png;base64,") == 1  # one pyramid, one preview
    assert "<td>Cell</td><td>POINT</td><td>1</td>" in text  # its annotations file joined in
