"""``omedicom batch`` and ``omedicom verify`` on real components: a Dask ``LocalCluster`` (two
worker processes), a real Orthanc, SIGKILL to a worker and to the batch itself, and bytes
changed on disk and in Orthanc's storage.

Slides are small (512×384, two levels) so a batch of twelve takes seconds."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import samples
from orthanc import (  # noqa: F401 - fixtures: orthanc, orthancs, orthanc_factory
    Orthanc,
    dicom_frames,
    ome_tiff_tiles,
    omedicom,
    orthanc_factory_fixture,
    orthanc_fixture,
    orthancs_fixture,
)
from pydicom import dcmread

from bridge.batch import manifest as mf
from bridge.codecs.jpeg import entropy_coded_data

#: Corpus files that convert with default options (real files from other tools).
CORPUS_SLIDES = ("ome-tiff/qupath__cells.ome.tif", "ome-tiff/aicsimageio__s_1_t_1_c_1_z_1.ome.tiff")

#: Ten generated slides: JPEG 4:2:0 and 4:4:4, RGB JPEG, uncompressed, grey, with label.
GENERATED = [
    ("jpeg-a", {}),
    ("jpeg-b", {"label": True}),
    ("jpeg-c", {}),
    ("jpeg-d", {}),
    ("jpeg-e", {}),
    ("jpeg-444", {"subsampling": (1, 1)}),
    ("rgb-jpeg", {"rgb_jpeg": True}),
    ("raw", {"compression": None}),
    ("grey", {"samples": 1}),
    ("zlib", {"compression": "zlib"}),
]


def make_sources(folder: Path, corpus: Path) -> list[Path]:
    """Twelve small slides in ``folder``: ten generated, two from the corpus."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, options in GENERATED:
        out.append(
            samples.write_tifffile(folder / f"{name}.ome.tif", size=(512, 384), levels=2, **options)
        )
    for rel in CORPUS_SLIDES:
        target = folder / Path(rel).name
        shutil.copyfile(corpus / rel, target)
        out.append(target)
    return out


def batch(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return omedicom("batch", *args, timeout=timeout)


def ledger_rows(path: Path) -> dict[str, tuple[str, int, str | None]]:
    """destination name -> (state, attempts, reason), read as another process would."""
    with sqlite3.connect(path, timeout=30) as db:
        rows = db.execute("SELECT destination, state, attempts, reason FROM tasks").fetchall()
    return {Path(d).name: (s, a, r) for d, s, a, r in rows}


def safe_rows(path: Path) -> dict[str, tuple[str, int, str | None]]:
    """:func:`ledger_rows`, or nothing while the batch has not created the ledger yet."""
    if not path.exists():
        return {}
    try:
        return ledger_rows(path)
    except sqlite3.Error:
        return {}


def count_done(path: Path) -> int:
    return sum(1 for s, _, _ in safe_rows(path).values() if s == "done")


def partials(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.endswith(".partial")]


def manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*" + mf.SUFFIX))]


def our_instances(out: Path) -> list[str]:
    """Every SOP Instance UID the outputs hold, read from the files (not the manifests)."""
    return sorted(
        str(dcmread(p, stop_before_pixels=True).SOPInstanceUID)
        for p in out.glob("*/*.dcm")
        if not p.parent.name.startswith(".")
    )


def assert_ledger_agrees(out: Path, ledger: Path, server: Orthanc) -> None:
    """Every slide done in the ledger has its folder and manifest, no staging leftovers, and
    Orthanc holds exactly the instances of the folders, each once."""
    rows = ledger_rows(ledger)
    assert rows and all(state == "done" for state, _, _ in rows.values()), rows
    for name in rows:
        assert (out / name).is_dir(), name
        assert (out / (name + mf.SUFFIX)).is_file(), name
    assert not partials(out)
    ours = our_instances(out)
    assert len(ours) == len(set(ours))
    held = server.sop_instance_uids()
    assert held == ours, "Orthanc holds other instances than the outputs"
    assert len(server.rest("instances")) == len(ours)


# -- a Dask cluster, a worker killed mid-batch ----------------------------------------------


@pytest.fixture(name="cluster")
def cluster_fixture():
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    yield cluster, client
    client.close()
    cluster.close()


def test_dask_cluster_twelve_slides_worker_killed(
    tmp_path: Path, corpus: Path, orthanc: Orthanc, cluster
) -> None:
    """Twelve slides on a 2-worker LocalCluster, pushed to Orthanc; one worker is SIGKILLed
    while it converts a slide. Dask reschedules it: every slide is done, checked, pushed and
    verified once; a re-run skips all twelve and sends Orthanc nothing."""
    local, client = cluster
    make_sources(tmp_path / "src", corpus)
    out, ledger = tmp_path / "out", tmp_path / "out" / "omedicom-batch.sqlite"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("omedicom")),
            "batch",
            tmp_path / "src",
            out,
            "--scheduler",
            local.scheduler_address,
            "--push-dicomweb",
            orthanc.dicomweb,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and proc.poll() is None and time.monotonic() < deadline:
        if count_done(ledger) >= 1:
            busy = [w for w, keys in client.processing().items() if keys]
            if busy:
                pids = client.run(os.getpid, workers=busy[:1])
                done_at_kill = count_done(ledger)
                killed = next(iter(pids.values()))
                os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = proc.communicate(timeout=300)
    assert killed is not None, "the batch ended before a worker could be killed"
    assert done_at_kill < 12
    assert proc.returncode == 0, stderr
    assert "12 of 12 slide(s) done" in stderr

    report = json.loads((out / "omedicom-batch-report.json").read_text())
    assert report["summary"] == {"total": 12, "done": 12, "failed": 0, "skipped": 0}
    for row in report["slides"]:
        assert (row["check"], row["verify"]) == ("pass", "pass"), row
        assert row["bytes"] > 0 and row["frames"] > 0
    workers = {row["worker"] for row in report["slides"]}
    assert len(workers) >= 2, "the slides did not run on both workers"
    assert_ledger_agrees(out, ledger, orthanc)
    received = orthanc.lua_lines("received")

    again = batch(
        tmp_path / "src",
        out,
        "--scheduler",
        local.scheduler_address,
        "--push-dicomweb",
        orthanc.dicomweb,
    )
    assert again.returncode == 0, again.stderr
    assert "12 skipped as done before" in again.stderr
    assert orthanc.lua_lines("received") == received, "a re-run sent instances again"
    assert {a for _, a, _ in ledger_rows(ledger).values()} == {1}


def test_local_worker_killed_is_rerun(tmp_path: Path) -> None:
    """SIGKILL one process of the local pool while it converts: the slides it and its pool
    held are run once more in the same batch; all end done, no staging folder is left."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        samples.write_tifffile(src / f"s{i}.ome.tif", size=(512, 384), levels=2)
    out, ledger = tmp_path / "out", tmp_path / "out" / "omedicom-batch.sqlite"
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("omedicom")),
            "batch",
            str(src),
            str(out),
            "--workers",
            "2",
            "--no-dicom3tools",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    children: list[str] = []
    deadline = time.monotonic() + 120
    while not children and proc.poll() is None and time.monotonic() < deadline:
        if any(s == "running" for s, _, _ in safe_rows(ledger).values()):
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        time.sleep(0.02)
    assert children, "the batch ended before a worker could be killed"
    os.kill(int(children[0]), signal.SIGKILL)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    rows = ledger_rows(ledger)
    assert {s for s, _, _ in rows.values()} == {"done"}
    assert max(a for _, a, _ in rows.values()) == 2, "no slide was run again"
    assert not partials(out)


# -- the batch itself killed mid-batch -------------------------------------------------------


def test_batch_killed_then_rerun(tmp_path: Path, corpus: Path, orthanc: Orthanc) -> None:
    """SIGKILL the batch process (local pool) in the middle; the re-run removes the staging
    leftovers, redoes the interrupted slides with the same UIDs, skips the finished ones:
    each slide is done once, no partial folder remains, the ledger agrees with the disk and
    with Orthanc (each instance held once)."""
    make_sources(tmp_path / "src", corpus)
    out, ledger = tmp_path / "out", tmp_path / "out" / "omedicom-batch.sqlite"
    args = [tmp_path / "src", out, "--workers", "2", "--no-dicom3tools"]
    args += ["--push-dicomweb", orthanc.dicomweb]
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("omedicom")), "batch", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while count_done(ledger) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the batch ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    before = ledger_rows(ledger)
    finished = {name for name, (state, _, _) in before.items() if state == "done"}
    assert 2 <= len(finished) < 12
    assert any(state == "running" for state, _, _ in before.values())
    time.sleep(0.5)  # the pool's workers die with the batch (PR_SET_PDEATHSIG)

    again = batch(*args)
    assert again.returncode == 0, again.stderr
    assert "interrupted by an earlier run" in again.stderr
    assert f"{len(finished)} skipped as done before" in again.stderr
    rows = ledger_rows(ledger)
    for name in finished:
        assert rows[name][1] == 1, f"{name} was done before the kill and done again"
    assert_ledger_agrees(out, ledger, orthanc)
    report = json.loads((out / "omedicom-batch-report.json").read_text())["slides"]
    redone = [r for r in report if not r["skipped"]]
    assert len(redone) == 12 - len(finished)
    assert all(r["verify"] == "pass" for r in redone)  # the disk and Orthanc, per frame
    assert len(manifests(out)) == 12


def test_ctrl_c_leaves_no_partial_and_no_running_row(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the batch's process group, as a terminal sends it) mid-batch: exit
    130, no staging folder left, no row still running; the next run finishes the rest."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        samples.write_tifffile(src / f"s{i}.ome.tif", size=(512, 384), levels=2)
    out, ledger = tmp_path / "out", tmp_path / "out" / "omedicom-batch.sqlite"
    args = [src, out, "--workers", "2", "--no-dicom3tools"]
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("omedicom")), "batch", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while count_done(ledger) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the batch ended before Ctrl-C"
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "run the same command again" in stderr
    time.sleep(0.5)
    rows = ledger_rows(ledger)
    assert not [n for n, (state, _, _) in rows.items() if state == "running"], rows
    assert any(state != "done" for state, _, _ in rows.values()), "nothing was interrupted"
    for name, (state, _, _) in rows.items():
        if state == "done":
            assert (out / name).is_dir() and (out / (name + mf.SUFFIX)).is_file()
    assert not partials(out)
    again = batch(*args)
    assert again.returncode == 0, again.stderr
    assert {state for state, _, _ in ledger_rows(ledger).values()} == {"done"}
    assert not partials(out)


# -- verify: on disk and in Orthanc's storage ----------------------------------------------


def _flip_in_frame(path: Path, frame: bytes) -> None:
    """Change one byte in the middle of ``frame`` where it lies in ``path``."""
    data = bytearray(path.read_bytes())
    at = data.find(frame)
    assert at > 0 and data.find(frame, at + 1) < 0
    data[at + len(frame) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_verify_disk_and_orthanc(tmp_path: Path, orthanc: Orthanc) -> None:
    """verify passes on an untouched output and on what Orthanc returns; it fails, naming the
    file and the frame, once one byte of one frame changes on disk or in Orthanc's storage."""
    src = tmp_path / "src"
    src.mkdir()
    samples.write_tifffile(src / "one.ome.tif", size=(512, 384), levels=2)
    samples.write_tifffile(src / "two.ome.tif", size=(512, 384), levels=2)
    out = tmp_path / "out"
    done = batch(
        src, out, "--workers", "1", "--no-dicom3tools", "--push-dicomweb", orthanc.dicomweb
    )
    assert done.returncode == 0, done.stderr
    manifest = out / ("one" + mf.SUFFIX)
    data = json.loads(manifest.read_text())
    entry = next(f for f in data["files"] if f["name"] == "level0.dcm")
    study = entry["study_uid"]

    ok = omedicom("verify", manifest)
    assert ok.returncode == 0, ok.stderr
    ok = omedicom("verify", manifest, "--dicomweb", orthanc.dicomweb, "--study", study)
    assert ok.returncode == 0, ok.stderr
    assert f"{len(data['files'])} file(s)" in ok.stderr

    # one byte of frame 3 of level 0, in a copy of the output
    copy = tmp_path / "copy"
    shutil.copytree(out / "one", copy)
    frame = dicom_frames(copy / "level0.dcm")[2]
    _flip_in_frame(copy / "level0.dcm", frame)
    bad = omedicom("verify", manifest, copy)
    assert bad.returncode == 1
    assert "level0.dcm: frame 3 differs" in bad.stderr
    assert bad.stderr.count("differs") == 1
    assert omedicom("verify", manifest).returncode == 0  # the output itself is untouched

    # the same byte in the file Orthanc keeps in its storage folder
    (orthanc_id,) = [i["id"] for i in orthanc.instances() if i["sop"] == entry["sop_instance_uid"]]
    uuid = orthanc.rest(f"instances/{orthanc_id}/attachments/dicom/info")["Uuid"]
    stored = orthanc.root / "storage" / uuid[:2] / uuid[2:4] / uuid
    _flip_in_frame(stored, frame)
    orthanc.stop()  # Orthanc caches files it has read: start it again on the same storage
    orthanc.start()
    bad = omedicom("verify", manifest, "--dicomweb", orthanc.dicomweb)
    assert bad.returncode == 1, bad.stderr
    assert "level0.dcm: frame 3 differs" in bad.stderr
    other = omedicom("verify", out / ("two" + mf.SUFFIX), "--dicomweb", orthanc.dicomweb)
    assert other.returncode == 0, other.stderr


# -- manifests, UIDs, the ledger's failed rows ---------------------------------------------


def test_manifest_verbatim_frames_equal_source_tiles(tmp_path: Path, corpus: Path) -> None:
    """A JPEG slide's manifest says verbatim, and its scan hashes are the source tiles' (read
    with tifffile); an LZW source re-encoded into DICOM is not verbatim."""
    src = tmp_path / "src"
    src.mkdir()
    source = samples.write_tifffile(src / "jpeg.ome.tif", size=(512, 384), levels=2)
    shutil.copyfile(corpus / CORPUS_SLIDES[0], src / "lzw.ome.tif")
    out = tmp_path / "out"
    done = batch(src, out, "--workers", "2", "--no-dicom3tools")
    assert done.returncode == 0, done.stderr
    data = json.loads((out / ("jpeg" + mf.SUFFIX)).read_text())
    assert data["source"]["sha256"] == mf.sha256_file(source)
    by_name = {f["name"]: f for f in data["files"]}
    for level in (0, 1):
        entry = by_name[f"level{level}.dcm"]
        assert entry["verbatim"] is True
        import hashlib

        # the tiles as tifffile reads them (complete streams), compared by their scan data
        tiles = [
            hashlib.sha256(entropy_coded_data(t)).hexdigest() for t in ome_tiff_tiles(source, level)
        ]
        assert entry["scans"] == tiles
        assert entry["sha256"] == mf.sha256_file(out / "jpeg" / entry["name"])
        frames = dicom_frames(out / "jpeg" / entry["name"])
        assert [hashlib.sha256(entropy_coded_data(f)).hexdigest() for f in frames] == tiles
    lzw = json.loads((out / ("lzw" + mf.SUFFIX)).read_text())
    assert [f["verbatim"] for f in lzw["files"]] == [False]


def test_same_source_same_uids(tmp_path: Path) -> None:
    """Two batches of the same source into different places write the same UIDs; other
    options (a slide id, a metadata file) give other UIDs, and the CSV's columns reach the
    output (relative paths are relative to the CSV file)."""
    source = samples.write_tifffile(tmp_path / "s.ome.tif", size=(512, 384), levels=2)
    (tmp_path / "meta.json").write_text('{"PatientID": "P-17", "AccessionNumber": "A9"}')
    lists = {}
    rows = {"a": ",", "b": ",", "c": "OTHER,meta.json"}
    for name, extra in rows.items():
        (tmp_path / f"{name}.csv").write_text(
            f"source,destination,slide_id,metadata_json\ns.ome.tif,{name}/out,{extra}\n"
        )
        done = batch(tmp_path / f"{name}.csv", "--no-check", "--workers", "1")
        assert done.returncode == 0, done.stderr
        lists[name] = our_instances(tmp_path / name)
    assert lists["a"] == lists["b"]
    assert not set(lists["a"]) & set(lists["c"])
    ds = dcmread(tmp_path / "c" / "out" / "level0.dcm", stop_before_pixels=True)
    assert (ds.PatientID, ds.AccessionNumber, ds.ContainerIdentifier) == ("P-17", "A9", "OTHER")
    assert source.exists()


def test_failed_slide_is_retried(tmp_path: Path) -> None:
    """A slide that fails is recorded with its reason and the exit code is 1; the next run
    retries it (and only it) and records it done."""
    src = tmp_path / "src"
    src.mkdir()
    samples.write_tifffile(src / "good.ome.tif", size=(512, 384), levels=2)
    samples.write_tifffile(src / "bad.ome.tif", size=(512, 384), levels=2, pixel_size=None)
    out = tmp_path / "out"
    first = batch(src, out, "--workers", "1", "--no-dicom3tools")
    assert first.returncode == 1
    rows = ledger_rows(out / "omedicom-batch.sqlite")
    assert rows["good"][0] == "done"
    assert rows["bad"][0] == "failed" and "pixel size" in rows["bad"][2]
    assert not (out / "bad").exists() and not partials(out)
    report = list(json.loads((out / "omedicom-batch-report.json").read_text())["slides"])
    assert {r["state"] for r in report} == {"done", "failed"}

    samples.write_tifffile(src / "bad.ome.tif", size=(512, 384), levels=2)  # fixed
    second = batch(src, out, "--workers", "1", "--no-dicom3tools")
    assert second.returncode == 0, second.stderr
    rows = ledger_rows(out / "omedicom-batch.sqlite")
    assert rows["bad"][:2] == ("done", 2) and rows["good"][:2] == ("done", 1)

    # a source whose bytes change is converted again (new checksum, so new UIDs)
    old_uids = our_instances(out)
    samples.write_tifffile(src / "good.ome.tif", size=(512, 256), levels=2)
    third = batch(src, out, "--workers", "1", "--no-dicom3tools")
    assert third.returncode == 0, third.stderr
    assert "1 skipped as done before" in third.stderr
    rows = ledger_rows(out / "omedicom-batch.sqlite")
    assert rows["good"][:2] == ("done", 2) and rows["bad"][:2] == ("done", 2)
    assert our_instances(out) != old_uids


def test_bad_task_list(tmp_path: Path) -> None:
    """A CSV without the required columns: one message, exit 2, nothing written."""
    bad = tmp_path / "list.csv"
    bad.write_text("src,dst\na.ome.tif,out\n")
    done = batch(bad)
    assert done.returncode == 2
    assert "source,destination" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["list.csv"]


def test_deterministic_uids_are_name_based_uuids() -> None:
    """Inside ``deterministic_uids(seed)`` the UIDs are version-5 UUIDs (PS3.5 B.2) that depend
    on the seed and the order only; outside they are random again."""
    import uuid

    from pydicom.uid import UID

    from bridge.dicom.uids import deterministic_uids, generate_uid, is_valid

    def made(seed: str) -> list[str]:
        with deterministic_uids(seed):
            return [generate_uid() for _ in range(50)]

    a, b, c = made("seed-a"), made("seed-a"), made("seed-b")
    assert a == b and len(set(a)) == 50
    assert not set(a) & set(c)
    for text in a:
        assert is_valid(text) and UID(text).is_valid and text.startswith("2.25.")
        assert uuid.UUID(int=int(text[5:])).version == 5
    assert generate_uid() not in a and generate_uid() != generate_uid()


def test_progress_line_counts_rate_and_eta() -> None:
    """The bar counts done, failed and left, and gives a rate and an ETA once a slide ended."""
    import io

    from bridge.batch.progress import BatchProgress

    stream = io.StringIO()
    bar = BatchProgress(4, done=1, enabled=True, stream=stream)
    assert "1 done, 0 failed, 3 left" in bar.line() and "ETA --" in bar.line()
    time.sleep(0.05)
    bar.finished(True)
    bar.finished(False)
    line = bar.line()
    assert "2 done, 1 failed, 1 left" in line
    rate = float(line.split("left")[1].split("slides/min")[0])
    assert rate > 0
    assert "ETA --" not in line
    bar.close()
    last = stream.getvalue().split("\r")[-1]
    assert last.endswith("\n") and "2 done, 1 failed, 1 left" in last


def test_push_with_authentication(tmp_path: Path, orthancs) -> None:
    """A server that wants HTTP Basic: the batch pushes and verifies with --user and the
    password from the environment (never the command line); without it, it stops before
    converting anything (exit 2)."""
    server = orthancs(users={"alice": "s3cret"})
    src = tmp_path / "src"
    src.mkdir()
    samples.write_tifffile(src / "one.ome.tif", size=(512, 384), levels=2)
    out = tmp_path / "out"
    args = ["batch", src, out, "--workers", "1", "--no-check", "--push-dicomweb", server.dicomweb]
    refused_env = dict(os.environ)
    refused_env.pop("OMEDICOM_PASSWORD", None)
    missing = subprocess.run(
        [str(Path(sys.executable).with_name("omedicom")), *map(str, args), "--user", "alice"],
        capture_output=True,
        text=True,
        env=refused_env,
    )
    assert missing.returncode == 2 and "OMEDICOM_PASSWORD" in missing.stderr
    assert not out.exists()
    refused = omedicom(*args, "--user", "alice", env={"OMEDICOM_PASSWORD": "wrong"})
    assert refused.returncode == 1 and "401" in refused.stderr  # a wrong password
    done = omedicom(*args, "--user", "alice", env={"OMEDICOM_PASSWORD": "s3cret"})
    assert done.returncode == 0, done.stderr
    manifest = out / ("one" + mf.SUFFIX)
    assert len(server.sop_instance_uids()) == len(json.loads(manifest.read_text())["files"])
    ok = omedicom(
        "verify", manifest, "--dicomweb", server.dicomweb, "--user", "alice",
        env={"OMEDICOM_PASSWORD": "s3cret"},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr


def test_specimen_json_column_reaches_the_specimen_description(tmp_path: Path) -> None:
    """The CSV's specimen_json (convert --specimen) becomes a staining step of the Specimen
    Description Sequence (PS3.3 C.8.12.2.1, TID 8001), and a changed specimen file makes the
    slide a new task (its content is part of the task's options)."""
    samples.write_tifffile(tmp_path / "s.ome.tif", size=(512, 384), levels=2)
    spec = tmp_path / "he.json"
    spec.write_text('{"stains": ["hematoxylin", "eosin"]}')
    (tmp_path / "l.csv").write_text(
        "source,destination,slide_id,specimen_json\ns.ome.tif,out/s,S1,he.json\n"
    )
    done = batch(tmp_path / "l.csv", "--no-check", "--workers", "1")
    assert done.returncode == 0, done.stderr
    ds = dcmread(tmp_path / "out" / "s" / "level0.dcm", stop_before_pixels=True)
    assert _stains(ds) == ["hematoxylin stain", "water soluble eosin stain"]
    spec.write_text('{"stains": ["hematoxylin"]}')
    again = batch(tmp_path / "l.csv", "--no-check", "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert "(0 skipped as done before)" in again.stderr, again.stderr
    ds = dcmread(tmp_path / "out" / "s" / "level0.dcm", stop_before_pixels=True)
    assert _stains(ds) == ["hematoxylin stain"]


def _stains(ds) -> list[str]:
    import highdicom as hd

    description = hd.SpecimenDescription.from_dataset(ds.SpecimenDescriptionSequence[0])
    return [
        code.meaning.lower()
        for step in description.specimen_preparation_steps
        if isinstance(step.processing_procedure, hd.SpecimenStaining)
        for code in step.processing_procedure.substances
    ]
