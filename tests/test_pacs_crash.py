"""A server that dies mid-transfer: SIGKILL to a real Orthanc during push and pull, restart it
on the same storage, and run again. Nothing is reported as sent that the server does not hold;
the second run completes with every instance exactly once and intact frames."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory, slide
    AET,
    RECEPTION_LOG,
    Orthanc,
    Slide,
    assert_frames_identical,
    assert_held_exactly_once,
    assert_same_instances,
    dicom_frames,
    omedicom,
    orthanc_factory_fixture,
    orthanc_fixture,
    orthancs_fixture,
    server_args,
    slide_fixture,
)

from bridge.pacs.dicomweb import DicomWeb, RemoteSeries
from bridge.pacs.dimse import Dimse, DimsePeer
from bridge.pacs.errors import ServerUnreachable
from bridge.pacs.http import Http
from bridge.pacs.pull import pull
from bridge.pacs.push import push
from bridge.pacs.retry import RetryPolicy

PROTOCOLS = ["dicomweb", "dimse"]

#: Lua that SIGKILLs Orthanc (the shell's parent) when the third instance arrives, in the
#: middle of a STOW-RS request or an association: the server dies mid-transfer.
DIE_ON_THIRD = """
count = 0
function ReceivedInstanceFilter(dicom, origin, info)
  count = count + 1
  print('received ' .. dicom.SOPInstanceUID)
  if count == 3 then
    os.execute('kill -9 $PPID')
  end
  return true
end
"""


def client(server: Orthanc, protocol: str, retry: RetryPolicy) -> DicomWeb | Dimse:
    if protocol == "dicomweb":
        return DicomWeb(Http(server.dicomweb, retry=retry))
    host, port = server.dimse.split(":")
    return Dimse(DimsePeer(host, int(port), called_aet=AET), retry=retry)


def kill_after(server: Orthanc, count: int) -> Callable[[int, str], Callable[[int], None]]:
    """A progress factory that SIGKILLs ``server`` (once) when ``count`` units are done."""
    done = [0]
    killed = threading.Event()

    def factory(total: int, label: str) -> Callable[[int], None]:
        def tick(n: int) -> None:
            done[0] += n
            if done[0] >= count and not killed.is_set():
                killed.set()
                server.kill()

        return tick

    return factory


def restart_later(server: Orthanc, delay: float) -> threading.Thread:
    def run() -> None:
        server.process.wait(30)
        threading.Event().wait(delay)
        server.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_killed_between_batches_then_pushed_again(orthancs, slide: Slide, protocol: str) -> None:
    server = orthancs(lua=RECEPTION_LOG)
    fast = RetryPolicy(attempts=3, delay=0.05)
    with pytest.raises(ServerUnreachable) as info:
        push(
            slide.folder,
            client(server, protocol, fast),
            batch_size=2,
            progress=kill_after(server, 2),
        )
    error = info.value
    assert error.exit_code == 5
    assert "gave up after 3 attempts" in str(error)
    report = error.report
    assert len(report.sent) == 2 and report.unsent == 4  # the failed batches are not counted
    assert "sent 2 of 6 instance(s)" in str(error) and "4 not sent" in str(error)
    server.start()  # the same storage
    held = set(server.sop_instance_uids())
    assert {i.sop_instance_uid for i in report.sent} <= held
    proc = omedicom("push", slide.folder, *server_args(server, protocol))
    assert proc.returncode == 0, proc.stderr
    assert f"{len(held)} skipped" in proc.stderr
    assert_held_exactly_once(server, slide.files)
    assert assert_frames_identical(server, slide.files) == 31
    # no instance crossed the wire twice over both runs
    assert sorted(server.lua_lines("received")) == sorted(slide.by_uid())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_killed_mid_request_then_pushed_again(orthancs, slide: Slide, protocol: str) -> None:
    """Orthanc dies while receiving a batch: the CLI fails with exit 5 and counts nothing of
    the unanswered batch as sent; after a restart a second push completes it."""
    server = orthancs(lua=DIE_ON_THIRD)
    proc = omedicom(
        "push", slide.folder, *server_args(server, protocol), "--batch-size", "6",
        "--retries", "1", "--retry-delay", "0.1",
    )  # fmt: skip
    assert proc.returncode == 5, proc.stderr
    # STOW-RS answers once per request, which never came; C-STORE answers per instance, and
    # the first two were answered before the third killed the server.
    sent = 0 if protocol == "dicomweb" else 2
    assert f"sent {sent} of 6 instance(s)" in proc.stderr
    assert f"{6 - sent} not sent" in proc.stderr
    assert "gave up after 2 attempts" in proc.stderr
    assert server.process.poll() is not None  # it did die
    server.lua = RECEPTION_LOG
    server.start()
    # Orthanc kept what it had stored before it died; that is what the next push skips
    held = server.sop_instance_uids()
    assert sent <= len(held) < 6
    again = omedicom("push", slide.folder, *server_args(server, protocol))
    assert again.returncode == 0, again.stderr
    assert f"sent {6 - len(held)} of 6" in again.stderr and f"{len(held)} skipped" in again.stderr
    assert_held_exactly_once(server, slide.files)
    assert assert_frames_identical(server, slide.files) == 31


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_push_rides_out_a_restart(orthancs, slide: Slide, protocol: str) -> None:
    """Killed after the first batch and back a second later: the retries (with backoff)
    carry one push to the end."""
    server = orthancs(lua=RECEPTION_LOG)
    patient = RetryPolicy(attempts=8, delay=0.2, max_delay=1.0)
    restart = restart_later(server, 0.5)
    report = push(
        slide.folder,
        client(server, protocol, patient),
        batch_size=2,
        progress=kill_after(server, 2),
    )
    restart.join(30)
    assert len(report.sent) == 6 and report.verified and not report.rejected
    assert_held_exactly_once(server, slide.files)
    assert assert_frames_identical(server, slide.files) == 31


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pull_interrupted(orthancs, slide: Slide, tmp_path: Path, protocol: str) -> None:
    server = orthancs()
    for path in slide.files:
        server.upload(path)
    study = slide.uid("level0.dcm", "StudyInstanceUID")
    dst = tmp_path / "pulled"
    fast = RetryPolicy(attempts=2, delay=0.05)
    with pytest.raises(ServerUnreachable) as info:
        pull(client(server, protocol, fast), study, dst, progress=kill_after(server, 2))
    assert "received 2 of 6 instance(s)" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no partial folder left behind
    # and when the server comes back during the retries, the pull completes
    server.start()
    restart = restart_later(server, 0.5)
    patient = RetryPolicy(attempts=8, delay=0.2, max_delay=1.0)
    report = pull(client(server, protocol, patient), study, dst, progress=kill_after(server, 3))
    restart.join(30)
    assert len(report.files) == 6 and report.frames == 31
    assert_same_instances(dst, slide.files)


def test_remote_frames_ride_out_a_restart(orthancs, slide: Slide) -> None:
    """The lazy frame reader (for streaming into an OME-TIFF) asks again for the frames it
    still lacks when the server comes back."""
    server = orthancs()
    for path in slide.files:
        server.upload(path)
    level0 = slide.folder / "level0.dcm"
    patient = RetryPolicy(attempts=8, delay=0.2, max_delay=1.0)
    series = RemoteSeries(
        DicomWeb(Http(server.dicomweb, retry=patient)),
        slide.uid("level0.dcm", "StudyInstanceUID"),
        slide.uid("level0.dcm", "SeriesInstanceUID"),
    )
    uid = slide.uid("level0.dcm")
    expected = dicom_frames(level0)
    assert series.frame(uid, 1) == expected[0]
    server.kill()
    restart = restart_later(server, 0.5)
    assert list(series.frames(uid, range(1, 21))) == expected
    restart.join(30)
