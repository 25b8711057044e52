"""``omedicom pull`` from a real Orthanc: WADO-RS and C-GET into DICOM folders, ``--list``,
and the lazy frame interface an OME-TIFF writer reads from.

The server is filled through Orthanc's own REST API, so these tests do not depend on push.
"""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
import pytest
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory, slide
    Orthanc,
    Slide,
    assert_same_instances,
    dicom_frames,
    jpeg_stream,
    make_slide,
    ome_tiff_tiles,
    omedicom,
    orthanc_factory_fixture,
    orthanc_fixture,
    orthancs_fixture,
    server_args,
    slide_fixture,
)

from bridge.pacs.dicomweb import DicomWeb, RemoteSeries
from bridge.pacs.http import Http

PROTOCOLS = ["dicomweb", "dimse"]

CORPUS_FILES = [
    "wsi-to-dicom-converter__jpeg.dicom",
    "wsi-to-dicom-converter__jpeg2000.dicom",
    "highdicom__sm_image_jpegls.dcm",
    "highdicom__sm_image.dcm",
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pull_study_into_a_folder(
    orthanc: Orthanc, slide: Slide, tmp_path: Path, protocol: str
) -> None:
    for path in slide.files:
        orthanc.upload(path)
    dst = tmp_path / "pulled"
    study = slide.uid("level0.dcm", "StudyInstanceUID")
    proc = omedicom("pull", *server_args(orthanc, protocol), "--study", study, dst)
    assert proc.returncode == 0, proc.stderr
    assert "pulled 6 of 6 instance(s) (31 frames)" in proc.stderr
    assert "JPEG Baseline (Process 1)" in proc.stderr  # the stored syntax, not a transcoding
    assert_same_instances(dst, slide.files)
    if protocol == "dicomweb":  # WADO-RS with transfer-syntax=* hands out the stored file
        for path in dst.iterdir():
            assert path.read_bytes() in {p.read_bytes() for p in slide.files}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pull_into_an_ome_tiff(
    orthanc: Orthanc, slide: Slide, tmp_path: Path, protocol: str
) -> None:
    """Tiles of the pulled OME-TIFF = frames pushed = tiles of the original OME-TIFF
    (entropy-coded data: tables may move between tile and file, the scans do not change)."""
    pushed = omedicom("push", slide.folder, *server_args(orthanc, protocol))
    assert pushed.returncode == 0, pushed.stderr
    dst = tmp_path / "pulled.ome.tiff"
    study = slide.uid("level0.dcm", "StudyInstanceUID")
    proc = omedicom("pull", *server_args(orthanc, protocol), "--study", study, dst)
    assert proc.returncode == 0, proc.stderr
    assert "pulled 6 of 6 instance(s) (31 frames)" in proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == [dst.name]  # the DICOM stage is gone
    frames = [jpeg_stream(f) for f in dicom_frames(slide.folder / "level0.dcm")]
    assert ome_tiff_tiles(dst) == frames == ome_tiff_tiles(slide.source)
    for level in (1, 2):
        assert ome_tiff_tiles(dst, level) == ome_tiff_tiles(slide.source, level)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pull_corpus_in_stored_syntaxes(
    orthanc: Orthanc, corpus: Path, tmp_path: Path, protocol: str
) -> None:
    originals = [corpus / "dicom" / name for name in CORPUS_FILES]
    for path in originals:
        orthanc.upload(path)
    for path in originals:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        dst = tmp_path / f"{protocol}-{path.stem}"
        proc = omedicom(
            "pull",
            *server_args(orthanc, protocol),
            "--study",
            str(ds.StudyInstanceUID),
            "--series",
            str(ds.SeriesInstanceUID),
            dst,
        )
        assert proc.returncode == 0, proc.stderr
        assert ds.file_meta.TransferSyntaxUID.name in proc.stderr
        assert_same_instances(dst, [path])


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pull_one_series_of_a_study_and_list(
    orthanc: Orthanc, slide: Slide, tmp_path: Path, protocol: str
) -> None:
    study = slide.uid("level0.dcm", "StudyInstanceUID")
    other = make_slide(
        tmp_path / "second", "second", "--study-uid", study, "--slide-id", "S-2", levels=2
    )
    for path in slide.files + other.files:
        orthanc.upload(path)
    listing = omedicom("pull", *server_args(orthanc, protocol), "--list")
    assert listing.returncode == 0, listing.stderr
    lines = listing.stdout.splitlines()
    assert len(lines) == 2  # one line per slide
    second_series = other.uid("level0.dcm", "SeriesInstanceUID")
    (line,) = [x for x in lines if f"series={second_series}" in x]
    assert f"study={study}" in line
    assert f"instances={len(other.files)}" in line
    assert "slide=S-2" in line
    dst = tmp_path / "one"
    proc = omedicom(
        "pull", *server_args(orthanc, protocol), "--study", study, "--series", second_series, dst
    )
    assert proc.returncode == 0, proc.stderr
    assert_same_instances(dst, other.files)


def test_list_json_and_empty_server(orthanc: Orthanc, slide: Slide) -> None:
    empty = omedicom("pull", "--dicomweb", orthanc.dicomweb, "--list")
    assert empty.returncode == 0 and empty.stdout == ""
    assert "holds no slides" in empty.stderr
    for path in slide.files:
        orthanc.upload(path)
    proc = omedicom("pull", "--dicomweb", orthanc.dicomweb, "--list", "--json")
    assert proc.returncode == 0, proc.stderr
    (item,) = [json.loads(line) for line in proc.stdout.splitlines()]
    assert item["series_uid"] == slide.uid("level0.dcm", "SeriesInstanceUID")
    assert item["instances"] == 6
    assert item["modality"] == "SM"


def test_remote_series_reads_metadata_and_frames_lazily(orthanc: Orthanc, slide: Slide) -> None:
    """The interface for pulling into an OME-TIFF: attributes first, frames on demand, each
    frame in its stored syntax (asked for with the exact media type once known)."""
    for path in slide.files:
        orthanc.upload(path)
    level0 = slide.folder / "level0.dcm"
    ours = pydicom.dcmread(level0, stop_before_pixels=True)
    series = RemoteSeries(
        DicomWeb(Http(orthanc.dicomweb)), str(ours.StudyInstanceUID), str(ours.SeriesInstanceUID)
    )
    datasets = {str(d.SOPInstanceUID): d for d in series.datasets()}
    assert sorted(datasets) == sorted(slide.by_uid())
    theirs = datasets[str(ours.SOPInstanceUID)]
    for keyword in (
        "TotalPixelMatrixColumns",
        "NumberOfFrames",
        "ImageType",
        "ImageOrientationSlide",
    ):
        assert theirs[keyword].value == ours[keyword].value
    # bulk data other than pixels (the ICC profile) is fetched from its BulkDataURI
    icc = ours.OpticalPathSequence[0].ICCProfile
    assert len(icc) > 100
    assert theirs.OpticalPathSequence[0].ICCProfile == icc
    uid = str(ours.SOPInstanceUID)
    frames = dicom_frames(level0)
    assert f"/instances/{uid}/frames/" not in orthanc.log_path.read_text()  # none fetched yet
    assert series.frame(uid, 7) == frames[6]
    assert series.transfer_syntax(uid) == "1.2.840.10008.1.2.4.50"
    assert list(series.frames(uid, [1, 2, 20])) == [frames[0], frames[1], frames[19]]
    # frames are fetched when asked for, in one request per call
    base = f"/dicom-web/studies/{ours.StudyInstanceUID}/series/{ours.SeriesInstanceUID}"
    frames_url = f"{base}/instances/{uid}/frames/"
    assert orthanc.http_requests("GET", frames_url + "7") == 1
    assert orthanc.http_requests("GET", frames_url + "1,2,20") == 1
