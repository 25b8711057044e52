"""``omedicom push`` against a real Orthanc: STOW-RS and C-STORE, skipping, batches, progress.

The frames on the server are read back with dicomweb-client (not our own client), asking for
the exact stored media type, and compared byte for byte with the files we sent.
"""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory, slide
    Orthanc,
    Slide,
    assert_frames_identical,
    assert_held_exactly_once,
    dicom_frames,
    jpeg_stream,
    ome_tiff_tiles,
    omedicom,
    orthanc_factory_fixture,
    orthanc_fixture,
    orthancs_fixture,
    server_args,
    slide_fixture,
)

PROTOCOLS = ["dicomweb", "dimse"]

#: Corpus files of other tools: several SOP classes and transfer syntaxes.
CORPUS_FILES = [
    "wsi-to-dicom-converter__jpeg.dicom",  # JPEG Baseline
    "wsi-to-dicom-converter__jpeg2000.dicom",  # JPEG 2000 lossless
    "highdicom__sm_image_jpegls.dcm",  # JPEG-LS lossless
    "highdicom__sm_image.dcm",  # Explicit VR Little Endian, ICC profile
    "highdicom__seg_image_sm_dots.dcm",  # Segmentation, Implicit VR Little Endian
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_push_puts_every_instance_with_identical_frames(
    orthanc: Orthanc, slide: Slide, protocol: str
) -> None:
    proc = omedicom("push", slide.folder, *server_args(orthanc, protocol))
    assert proc.returncode == 0, proc.stderr
    assert "sent 6 of 6 instance(s) (31 frames)" in proc.stderr
    assert "a final query found every sent instance" in proc.stderr
    assert_held_exactly_once(orthanc, slide.files)
    # Each instance crossed the wire once (Orthanc's Lua filter logs every reception).
    assert sorted(orthanc.lua_lines("received")) == sorted(slide.by_uid())
    assert assert_frames_identical(orthanc, slide.files) == 31


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_push_corpus_keeps_each_transfer_syntax(
    orthanc: Orthanc, corpus: Path, tmp_path: Path, protocol: str
) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name in CORPUS_FILES:
        (folder / name).symlink_to(corpus / "dicom" / name)
    proc = omedicom("push", folder, *server_args(orthanc, protocol))
    assert proc.returncode == 0, proc.stderr
    files = sorted(folder.iterdir())
    assert_held_exactly_once(orthanc, files)
    assert assert_frames_identical(orthanc, files) > 0


def test_push_ome_tiff_converts_on_the_way(orthanc: Orthanc, slide: Slide, tmp_path: Path) -> None:
    proc = omedicom(
        "push", slide.source, "--dicomweb", orthanc.dicomweb, env={"TMPDIR": str(tmp_path)}
    )
    assert proc.returncode == 0, proc.stderr
    # converted as `convert` does by default: the 300×250 level gets a 150×125 one below it
    # (--pyramid auto), so 3 + 1 levels and 3 associated images
    assert "sent 7 of 7" in proc.stderr
    assert list(tmp_path.iterdir()) == [], "the temporary conversion was not removed"
    held = orthanc.instances()
    assert len(held) == 7
    # The level-0 instance's frames carry the OME-TIFF's level-0 tiles, entropy-coded data
    # equal (the tiles were copied, not re-encoded, on the way to the PACS).
    by_frames = {}
    for item in held:
        path = tmp_path / f"{item['id']}.dcm"
        path.write_bytes(orthanc.file(item["id"]))
        by_frames[int(pydicom.dcmread(path, stop_before_pixels=True).NumberOfFrames)] = path
    level0 = by_frames[20]
    pushed = [jpeg_stream(f) for f in dicom_frames(level0)]
    assert pushed == ome_tiff_tiles(slide.source)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_push_skips_what_the_server_holds(orthanc: Orthanc, slide: Slide, protocol: str) -> None:
    already = slide.files[:2]
    for path in already:
        orthanc.upload(path)  # through Orthanc's REST API, not our client
    proc = omedicom("push", slide.folder, *server_args(orthanc, protocol))
    assert proc.returncode == 0, proc.stderr
    assert "sent 4 of 6 instance(s)" in proc.stderr
    assert "2 skipped (the server already held them)" in proc.stderr
    assert_held_exactly_once(orthanc, slide.files)
    received = orthanc.lua_lines("received")
    # the two uploaded ones arrived once (the upload), the rest once (the push)
    assert sorted(received) == sorted(slide.by_uid())
    again = omedicom("push", slide.folder, *server_args(orthanc, protocol))
    assert again.returncode == 0, again.stderr
    assert "sent 0 of 6" in again.stderr and "6 skipped" in again.stderr
    assert sorted(orthanc.lua_lines("received")) == sorted(slide.by_uid())


def test_push_sends_in_batches(orthancs, slide: Slide) -> None:
    web = orthancs()
    proc = omedicom("push", slide.folder, "--dicomweb", web.dicomweb, "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert web.http_requests("POST", "/dicom-web/studies") == 2  # 4 + 2 instances
    small = orthancs()
    # 1 kB batches: every instance travels alone
    proc = omedicom("push", slide.folder, "--dicomweb", small.dicomweb, "--batch-mb", "0.001")
    assert proc.returncode == 0, proc.stderr
    assert small.http_requests("POST", "/dicom-web/studies") == 6
    dimse = orthancs()
    proc = omedicom(
        "push", slide.folder, "--dimse", dimse.dimse, "--called-aet", "ORTHANC", "--batch-size", "4"
    )
    assert proc.returncode == 0, proc.stderr
    associations = re.findall(r"Association Received from AET OMEDICOM", dimse.log_path.read_text())
    assert len(associations) == 4  # the first query, two batches, the final query


def test_push_reports_progress(orthanc: Orthanc, slide: Slide) -> None:
    proc = omedicom("push", slide.folder, "--dicomweb", orthanc.dicomweb, "--progress")
    assert proc.returncode == 0, proc.stderr
    draws = re.findall(r"push → \S+ \[[#.]+\]\s+\d+% (\d+)/6", proc.stderr)
    assert draws and draws[-1] == "6"
    quiet = omedicom("push", slide.folder, "--dicomweb", orthanc.dicomweb, "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""
