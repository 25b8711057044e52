"""Part of a batch is stored, then a temporary failure: only the rest is sent again.

A real Orthanc receives one batch of six instances and dies (SIGKILL from its own Lua filter)
when the third arrives, after storing the first two; it comes back a moment later on the same
storage while ``push`` is retrying. What crossed the wire is counted by the server itself: its
``ReceivedInstanceFilter`` prints every instance it is handed, in each of its two lives, to
the log (tests/orthanc.py ``lua_lines``). The instances stored before the failure must not
be received a second time; each of the others exactly once after the restart.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from orthanc import (  # noqa: F401 - fixtures: orthanc_factory, orthancs, slide
    RECEPTION_LOG,
    Orthanc,
    Slide,
    assert_frames_identical,
    assert_held_exactly_once,
    orthanc_factory_fixture,
    orthancs_fixture,
    slide_fixture,
)
from test_pacs_crash import PROTOCOLS, client

from bridge.pacs.push import push
from bridge.pacs.retry import RetryPolicy

#: First life: log and accept the first two instances; on the third, log it as the one that
#: killed the server (it is not stored) and SIGKILL Orthanc (the shell's parent).
FIRST_LIFE = """
count = 0
function ReceivedInstanceFilter(dicom, origin, info)
  count = count + 1
  if count == 3 then
    print('dying-on ' .. dicom.SOPInstanceUID)
    os.execute('kill -9 $PPID')
    return false
  end
  print('first ' .. dicom.SOPInstanceUID)
  return true
end
"""

#: Second life: log every instance received.
SECOND_LIFE = RECEPTION_LOG


def _restart_when_dead(server: Orthanc, delay: float) -> threading.Thread:
    def run() -> None:
        server.process.wait(30)
        threading.Event().wait(delay)
        server.lua = SECOND_LIFE
        server.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_partly_stored_batch_resends_only_the_rest(orthancs, slide: Slide, protocol: str) -> None:
    uids = set(slide.by_uid())
    assert len(uids) == 6
    server = orthancs(lua=FIRST_LIFE)
    restart = _restart_when_dead(server, 0.5)
    report = push(
        slide.folder,
        client(server, protocol, RetryPolicy(attempts=10, delay=0.3, max_delay=1.0)),
        batch_size=6,  # one batch: the failure comes in its middle
    )
    restart.join(30)
    first = server.lua_lines("first")
    dying = server.lua_lines("dying-on")
    again = server.lua_lines("received")
    # the failure came mid-batch: two instances stored, the third killed the server
    assert len(first) == 2 and len(set(first)) == 2 and len(dying) == 1, (first, dying)
    assert set(first) | set(dying) <= uids
    # what was sent again: exactly the four the server did not hold, each once
    assert Counter(again) == Counter(uids - set(first)), (first, again)
    assert len(report.sent) == 6 and report.verified and not report.rejected
    assert_held_exactly_once(server, slide.files)
    assert assert_frames_identical(server, slide.files) == 31
