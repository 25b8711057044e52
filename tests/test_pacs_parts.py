"""The PACS client's pieces that need no server: multipart bodies, media types, batches,
backoff, credentials and printable URLs."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bridge.errors import InputError
from bridge.pacs.dicomweb import frame_accept
from bridge.pacs.http import Credentials, check_base_url, display_url
from bridge.pacs.multipart import (
    MultipartError,
    MultipartReader,
    StowBody,
    media_type,
    transfer_syntax_of,
)
from bridge.pacs.push import batches
from bridge.pacs.records import LocalInstance
from bridge.pacs.retry import RetryPolicy


def _pieces(data: bytes, seed: int) -> list[bytes]:
    """``data`` cut at random places, some pieces one byte long."""
    rng = random.Random(seed)
    out, at = [], 0
    while at < len(data):
        step = rng.choice([1, 2, 3, 7, 64, 1000, 70000])
        out.append(data[at : at + step])
        at += step
    return out


@pytest.mark.parametrize("seed", range(8))
def test_stow_body_parses_back_into_the_files(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    contents = [rng.randbytes(rng.choice([0, 1, 5, 300, 100_000])) for _ in range(4)]
    # A file that contains what looks like a delimiter without the CRLF before it.
    contents.append(b"--boundary-like\r\n--" + rng.randbytes(50))
    paths = []
    for i, data in enumerate(contents):
        paths.append(tmp_path / f"f{i}.dcm")
        paths[-1].write_bytes(data)
    body = StowBody(paths)
    raw = body.read(7) + body.read()
    assert len(raw) == len(body)
    main, params = media_type(body.content_type)
    assert main == "multipart/related"
    assert params["type"] == "application/dicom"
    parts = list(MultipartReader(_pieces(raw, seed), params["boundary"]).parts())
    assert [p.content_type for p in parts] == ["application/dicom"] * len(contents)
    # bodies must be read while iterating: the reader drains a part when it moves on
    again = [p.read() for p in MultipartReader(_pieces(raw, seed + 100), body.boundary).parts()]
    assert again == contents


def test_stow_body_rewinds_for_a_resend(tmp_path: Path) -> None:
    path = tmp_path / "a.dcm"
    path.write_bytes(b"x" * 1000)
    body = StowBody([path])
    first = body.read()
    assert body.seek(0) == 0
    assert body.read(10) + body.read() == first


def test_reader_streams_a_large_part_in_chunks() -> None:
    payload = bytes(range(256)) * 40_000  # 10 MB
    raw = b"--b\r\nContent-Type: application/dicom\r\n\r\n" + payload + b"\r\n--b--\r\n"
    chunks = [raw[i : i + 65536] for i in range(0, len(raw), 65536)]
    (part,) = list(_consume(MultipartReader(chunks, "b")))
    assert part == payload


def _consume(reader: MultipartReader) -> list[bytes]:
    out = []
    for part in reader.parts():
        pieces = list(part.chunks())
        assert max(len(p) for p in pieces) < 200_000  # never the whole part at once
        out.append(b"".join(pieces))
    return out


def test_reader_rejects_a_cut_response() -> None:
    raw = b"--b\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff"
    with pytest.raises(MultipartError, match="ends in the middle"):
        _consume(MultipartReader([raw], "b"))
    with pytest.raises(MultipartError, match="no multipart boundary"):
        _consume(MultipartReader([b"<html>not found</html>"], "b"))


def test_transfer_syntax_from_orthanc_content_types() -> None:
    # As Orthanc 1.10.1 / DICOMweb 1.7 writes them (recorded from a real answer).
    outer = (
        'multipart/related; type="image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50"; '
        "boundary=0de7362b-dd31"
    )
    assert transfer_syntax_of(outer) == "1.2.840.10008.1.2.4.50"
    assert media_type(outer)[1]["boundary"] == "0de7362b-dd31"
    assert (
        transfer_syntax_of("image/jpeg; transfer-syntax=1.2.840.10008.1.2.4.50")
        == "1.2.840.10008.1.2.4.50"
    )
    assert transfer_syntax_of('multipart/related; type="application/dicom"') is None


def test_frame_accept_names_the_exact_media_type() -> None:
    assert frame_accept("1.2.840.10008.1.2.4.50") == (
        'multipart/related; type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50'
    )
    assert 'type="image/jp2"' in frame_accept("1.2.840.10008.1.2.4.90")
    assert frame_accept(None).endswith("transfer-syntax=*")


def _inst(i: int, size: int) -> LocalInstance:
    return LocalInstance(
        Path(f"{i}.dcm"), "1.2", f"1.2.{i}", "1", "2", "1.2.840.10008.1.2.1", 1, size
    )


def test_batches_respect_count_and_bytes() -> None:
    items = [_inst(i, s) for i, s in enumerate([10, 10, 10, 500, 10, 10, 10, 10])]
    sizes = [[b.size for b in batch] for batch in batches(items, size=3, max_bytes=100)]
    assert sizes == [[10, 10, 10], [500], [10, 10, 10], [10]]
    flat = [i for batch in batches(items, size=3, max_bytes=100) for i in batch]
    assert flat == items


def test_backoff_grows_and_is_capped() -> None:
    policy = RetryPolicy(attempts=6, delay=1.0, factor=2.0, max_delay=5.0)
    waits = [policy.wait(n) for n in range(1, 6)]
    assert 0.8 <= waits[0] <= 1.2
    assert 1.6 <= waits[1] <= 2.4
    assert all(w <= 6.0 for w in waits)
    assert waits[4] >= 4.0


def test_urls_are_printed_without_secrets() -> None:
    assert display_url("https://bob:pw@host:8443/dicom-web?token=abc#x") == (
        "https://host:8443/dicom-web"
    )
    with pytest.raises(InputError) as info:
        check_base_url("https://bob:hunter2@host/dicom-web")
    assert "hunter2" not in info.value.describe()
    with pytest.raises(InputError):
        check_base_url("ftp://host/dicom-web")
    assert check_base_url("http://host:8042/dicom-web/") == "http://host:8042/dicom-web"


def test_credentials_come_from_the_environment_only() -> None:
    creds = Credentials.from_environment(user="alice", environ={"OMEDICOM_PASSWORD": "s3cret"})
    assert creds.password == "s3cret"
    assert "s3cret" not in repr(creds)
    with pytest.raises(InputError, match="OMEDICOM_PASSWORD"):
        Credentials.from_environment(user="alice", environ={})
    token = Credentials.from_environment(user=None, token_env="TOK", environ={"TOK": "abc"})
    assert token.token == "abc" and "abc" not in repr(token)
    with pytest.raises(InputError, match="TOK"):
        Credentials.from_environment(user=None, token_env="TOK", environ={})
