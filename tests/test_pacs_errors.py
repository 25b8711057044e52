"""Failures a user meets, each against a real server: unreachable, wrong URL, wrong port,
authentication, refused associations, rejected instances, TLS. Each gives one clear message,
its exit code, and never a secret."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory, slide
    DISCARD_LABELS,
    Orthanc,
    Slide,
    TlsProxy,
    dicom_frames,
    free_port,
    make_certificate,
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
PASSWORD = "pw-4f9c2e"


def one_error(proc, code: int) -> str:
    """The run failed with ``code`` and said so in one ``omedicom: error:`` message."""
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.count("omedicom: error:") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_unreachable_server_fails_at_once(slide: Slide) -> None:
    port = free_port()  # nothing listens there
    for args in (
        ["--dicomweb", f"http://127.0.0.1:{port}/dicom-web"],
        ["--dimse", f"127.0.0.1:{port}"],
    ):
        started = time.monotonic()
        err = one_error(omedicom("push", slide.folder, *args), 5)
        assert "cannot reach" in err and "connection refused" in err
        assert time.monotonic() - started < 10  # a wrong address is not retried for minutes
        err = one_error(omedicom("pull", *args, "--list"), 5)
        assert "cannot reach" in err


def test_wrong_url_path(orthanc: Orthanc, slide: Slide) -> None:
    wrong = f"{orthanc.rest_url}/wado-rs"  # the server runs, DICOMweb is elsewhere
    err = one_error(omedicom("push", slide.folder, "--dicomweb", wrong), 5)
    assert "no such DICOMweb resource (HTTP 404" in err
    assert "hint: check the URL" in err
    assert orthanc.sop_instance_uids() == []
    err = one_error(omedicom("pull", "--dicomweb", wrong, "--list"), 5)
    assert "HTTP 404" in err


def test_wrong_kind_of_port(orthanc: Orthanc, slide: Slide) -> None:
    # DICOMweb to the DICOM port, DIMSE to the HTTP port.
    err = one_error(
        omedicom("push", slide.folder, "--dicomweb", f"http://127.0.0.1:{orthanc.dicom_port}"),
        5,
    )
    assert "cannot reach the DICOMweb server" in err
    err = one_error(omedicom("push", slide.folder, "--dimse", f"127.0.0.1:{orthanc.http_port}"), 5)
    assert "did not answer the DICOM association request" in err
    assert "DICOM port" in err
    assert orthanc.sop_instance_uids() == []


def test_authentication(orthancs, slide: Slide) -> None:
    server = orthancs(users={"alice": PASSWORD})
    url = server.dicomweb
    err = one_error(omedicom("push", slide.folder, "--dicomweb", url), 6)
    assert "requires authentication (HTTP 401" in err and "--user" in err
    wrong = omedicom(
        "push", slide.folder, "--dicomweb", url, "--user", "alice",
        env={"OMEDICOM_PASSWORD": "not-" + PASSWORD},
    )  # fmt: skip
    err = one_error(wrong, 6)
    assert "refused our credentials" in err
    assert PASSWORD not in wrong.stdout + wrong.stderr
    token = omedicom(
        "push", slide.folder, "--dicomweb", url, "--token-env", "PACS_TOKEN",
        env={"PACS_TOKEN": PASSWORD},
    )  # fmt: skip
    assert "refused our credentials" in one_error(token, 6)
    assert PASSWORD not in token.stdout + token.stderr
    in_url = omedicom("push", slide.folder, "--dicomweb", url.replace("//", f"//alice:{PASSWORD}@"))
    assert "user information" in one_error(in_url, 2)
    assert PASSWORD not in in_url.stdout + in_url.stderr
    no_password = omedicom("push", slide.folder, "--dicomweb", url, "--user", "alice")
    assert "OMEDICOM_PASSWORD" in one_error(no_password, 2)
    assert server.sop_instance_uids() == []
    ok = omedicom(
        "push", slide.folder, "--dicomweb", url, "--user", "alice", "--password-env", "PW",
        env={"PW": PASSWORD},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert PASSWORD not in ok.stdout + ok.stderr
    assert server.sop_instance_uids() == sorted(slide.by_uid())
    listing = omedicom(
        "pull", "--dicomweb", url, "--list", "--user", "alice", env={"OMEDICOM_PASSWORD": PASSWORD}
    )
    assert listing.returncode == 0 and len(listing.stdout.splitlines()) == 1


def test_association_rejected_for_a_wrong_called_aet(orthanc: Orthanc, slide: Slide) -> None:
    proc = omedicom("push", slide.folder, "--dimse", orthanc.dimse, "--called-aet", "NOT-IT")
    err = one_error(proc, 6)
    assert "rejected the association" in err
    assert "--called-aet" in err
    assert orthanc.sop_instance_uids() == []


def test_instances_in_a_refused_transfer_syntax_are_rejected(orthancs, slide: Slide) -> None:
    """A server that takes only uncompressed data: the JPEG instances are reported, one by
    one with SOP class and transfer syntax, and never decompressed to fit."""
    server = orthancs(accepted_syntaxes=["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"])
    err = one_error(omedicom("push", slide.folder, *server_args(server, "dimse")), 7)
    assert "the server rejected 4 instance(s)" in err
    rejected = [line for line in err.splitlines() if "accepts no presentation context" in line]
    assert len(rejected) == 4
    for line in rejected:
        assert "VL Whole Slide Microscopy Image Storage" in line
        assert "JPEG Baseline (Process 1)" in line
    assert "sent 2 of 6 instance(s)" in err and "4 rejected" in err
    native = {uid for uid, p in slide.by_uid().items() if p.name in ("label.dcm", "thumbnail.dcm")}
    assert set(server.sop_instance_uids()) == native
    assert {i["syntax"] for i in server.instances()} == {"1.2.840.10008.1.2.1"}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_acknowledged_but_discarded_is_not_sent(orthancs, slide: Slide, protocol: str) -> None:
    """Orthanc acknowledges an instance its Lua filter discards; the final query catches it."""
    server = orthancs(lua=DISCARD_LABELS)
    err = one_error(omedicom("push", slide.folder, *server_args(server, protocol)), 7)
    (line,) = [x for x in err.splitlines() if "label.dcm" in x]
    assert "acknowledged it but does not hold it" in line
    assert "VL Whole Slide Microscopy Image Storage" in line
    assert "sent 5 of 6 instance(s)" in err
    assert len(server.sop_instance_uids()) == 5


def test_pull_errors(orthanc: Orthanc, slide: Slide, tmp_path: Path) -> None:
    err = one_error(
        omedicom("pull", "--dicomweb", orthanc.dicomweb, "--study", "1.2.3.4", tmp_path / "x"), 5
    )
    assert "holds no instances of study 1.2.3.4" in err
    assert not (tmp_path / "x").exists()
    for path in slide.files:
        orthanc.upload(path)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    study = slide.uid("level0.dcm", "StudyInstanceUID")
    err = one_error(omedicom("pull", "--dicomweb", orthanc.dicomweb, "--study", study, busy), 4)
    assert "not empty" in err and (busy / "keep.txt").read_text() == "mine"
    assert "--study" in one_error(omedicom("pull", "--dicomweb", orthanc.dicomweb, busy), 2)


def test_tls_is_verified(orthancs, slide: Slide, tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    http_port = free_port()
    proxy = TlsProxy(http_port, cert, key)
    try:
        server = orthancs(
            http_port=http_port, public_host=f"127.0.0.1:{proxy.port}", public_ssl=True
        )
        url = f"https://127.0.0.1:{proxy.port}/dicom-web"
        err = one_error(omedicom("push", slide.folder, "--dicomweb", url), 5)
        assert "certificate cannot be verified" in err and "--ca-bundle" in err
        assert server.sop_instance_uids() == []
        missing = omedicom("push", slide.folder, "--dicomweb", url, "--ca-bundle", tmp_path / "no")
        assert "CA bundle does not exist" in one_error(missing, 2)
        ok = omedicom("push", slide.folder, "--dicomweb", url, "--ca-bundle", cert)
        assert ok.returncode == 0, ok.stderr
        assert server.sop_instance_uids() == sorted(slide.by_uid())
        # metadata with bulk data (the ICC profile) and frames over https
        level0 = slide.folder / "level0.dcm"
        series = RemoteSeries(
            DicomWeb(Http(url, ca_bundle=str(cert))),
            slide.uid("level0.dcm", "StudyInstanceUID"),
            slide.uid("level0.dcm", "SeriesInstanceUID"),
        )
        assert len(series.datasets()) == 6
        assert series.frame(slide.uid("level0.dcm"), 3) == dicom_frames(level0)[2]
    finally:
        proxy.close()
