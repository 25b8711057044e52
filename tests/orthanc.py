"""A real Orthanc for the PACS tests: started from a temporary JSON config, stopped by PID.

``/usr/sbin/Orthanc`` (Debian ``orthanc``) with the DICOMweb plugin (``orthanc-dicomweb``)
runs on free ports with its storage and index in a temporary folder, listening on 127.0.0.1
only (``RemoteAccessAllowed: false``). It starts in about 0.1 s; stopping takes about 3 s, so
servers are sent SIGTERM when a test ends and reaped together when the session ends.

Orthanc 1.10.1's own HTTPS (civetweb with OpenSSL 3) segfaults on the first TLS connection on
Debian 12, so TLS tests put :class:`TlsProxy`, a small TLS terminator, in front of it.

A test module imports the fixtures it uses by their function names, e.g.
``from orthanc import orthanc_fixture  # noqa: F401``; pytest knows them as ``orthanc`` etc.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from pydicom import dcmread

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AET = "ORTHANC"
#: Our AE title as a DICOM modality known to Orthanc (so C-GET/C-MOVE could reach us).
CLIENT_AET = "OMEDICOM"

_RUNNING: set[subprocess.Popen[bytes]] = set()


def _kill_leftovers() -> None:
    for proc in list(_RUNNING):
        if proc.poll() is None:
            proc.kill()


atexit.register(_kill_leftovers)


def free_port() -> int:
    """A TCP port nothing listens on now (bound to port 0 and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_tools() -> str | None:
    if not ORTHANC.exists():
        return f"{ORTHANC} is absent (Debian package orthanc; scripts/test.sh installs it)"
    if not DICOMWEB_PLUGIN.exists():
        return f"{DICOMWEB_PLUGIN} is absent (Debian package orthanc-dicomweb)"
    return None


@dataclass
class Orthanc:
    """One Orthanc process and its folder (config.json, storage/, orthanc.log)."""

    root: Path
    users: dict[str, str] | None = None  # HTTP Basic users; None: no authentication
    lua: str | None = None  # a Lua script (e.g. ReceivedInstanceFilter)
    accepted_syntaxes: list[str] | None = None  # DIMSE AcceptedTransferSyntaxes
    check_called_aet: bool = True
    public_host: str | None = None  # DicomWeb.Host when a proxy fronts the server
    public_ssl: bool = False
    http_port: int = field(default_factory=free_port)
    dicom_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    # -- addresses --------------------------------------------------------------------------

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.rest_url}/dicom-web"

    @property
    def dimse(self) -> str:
        return f"127.0.0.1:{self.dicom_port}"

    @property
    def log_path(self) -> Path:
        return self.root / "orthanc.log"

    # -- life cycle -------------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        cfg: dict[str, Any] = {
            "Name": f"omedicom-test-{self.http_port}",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "StorageCompression": False,
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": AET,
            "DicomCheckCalledAet": self.check_called_aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": self.users is not None,
            "RegisteredUsers": self.users or {},
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"omedicom": [CLIENT_AET, "127.0.0.1", free_port()]},
            "SaveJobs": False,
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {
                "Enable": True,
                "Root": "/dicom-web/",
                "Host": self.public_host or f"127.0.0.1:{self.http_port}",
                "Ssl": self.public_ssl,
            },
        }
        if self.lua is not None:
            script = self.root / "script.lua"
            script.write_text(self.lua)
            cfg["LuaScripts"] = [str(script)]
        if self.accepted_syntaxes is not None:
            cfg["AcceptedTransferSyntaxes"] = self.accepted_syntaxes
        return cfg

    def start(self, timeout: float = 20.0) -> Orthanc:
        """Start (or restart, on the same storage) and wait until the REST API answers."""
        assert self.process is None or self.process.poll() is not None, "already running"
        config = self.root / "config.json"
        config.write_text(json.dumps(self.config(), indent=2))
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== start {time.strftime('%H:%M:%S')} ===\n".encode())
            self.process = subprocess.Popen(
                [str(ORTHANC), "--verbose", str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                start_new_session=True,
            )
        _RUNNING.add(self.process)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Orthanc exited at start:\n{self.log_tail()}")
            try:
                r = requests.get(f"{self.rest_url}/system", auth=self._auth(), timeout=2)
                if r.status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"Orthanc did not answer within {timeout} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no clean shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM without waiting (see :meth:`wait`)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)

    def wait(self, timeout: float = 20.0) -> None:
        """Wait for the process to end; SIGKILL it after ``timeout``."""
        if self.process is None:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        _RUNNING.discard(self.process)

    def stop(self, timeout: float = 20.0) -> None:
        self.terminate()
        self.wait(timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:])

    # -- what the server holds (its own REST API, not DICOMweb) -----------------------------

    def _auth(self) -> tuple[str, str] | None:
        if not self.users:
            return None
        return next(iter(self.users.items()))

    def rest(self, path: str) -> Any:
        r = requests.get(f"{self.rest_url}/{path.lstrip('/')}", auth=self._auth(), timeout=30)
        r.raise_for_status()
        return r.json()

    def rest_text(self, path: str) -> str:
        r = requests.get(f"{self.rest_url}/{path.lstrip('/')}", auth=self._auth(), timeout=30)
        r.raise_for_status()
        return r.text

    def upload(self, path: Path) -> None:
        """Store a file through Orthanc's REST API (independent of our client)."""
        r = requests.post(
            f"{self.rest_url}/instances",
            data=path.read_bytes(),
            auth=self._auth(),
            timeout=60,
        )
        r.raise_for_status()

    def instances(self) -> list[dict[str, Any]]:
        """One entry per stored instance: SOP Instance UID, Orthanc id, stored syntax."""
        out = []
        for item in self.rest("instances?expand"):
            out.append(
                {
                    "id": item["ID"],
                    "sop": item["MainDicomTags"]["SOPInstanceUID"],
                    "syntax": self.rest_text(f"instances/{item['ID']}/metadata/TransferSyntax"),
                }
            )
        return out

    def sop_instance_uids(self) -> list[str]:
        return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in self.rest("instances?expand"))

    def file(self, orthanc_id: str) -> bytes:
        r = requests.get(
            f"{self.rest_url}/instances/{orthanc_id}/file", auth=self._auth(), timeout=60
        )
        r.raise_for_status()
        return r.content

    def http_requests(self, method: str, path: str) -> int:
        """How many ``method path`` HTTP requests the (verbose) log records."""
        needle = f"(http) {method} {path}"
        return sum(
            1
            for line in self.log_path.read_text(errors="replace").splitlines()
            if line.rstrip().endswith(needle)
        )

    def lua_lines(self, prefix: str) -> list[str]:
        """What the Lua script printed with ``print(prefix .. ...)``."""
        marker = f"Lua says: {prefix}"
        return [
            line.split(marker, 1)[1].strip()
            for line in self.log_path.read_text(errors="replace").splitlines()
            if marker in line
        ]


#: Lua that records each instance Orthanc receives (duplicates too) and accepts it.
RECEPTION_LOG = """
function ReceivedInstanceFilter(dicom, origin, info)
  print('received ' .. dicom.SOPInstanceUID)
  return true
end
"""

#: Lua that silently discards label images (Orthanc still acknowledges them).
DISCARD_LABELS = """
function ReceivedInstanceFilter(dicom, origin, info)
  if string.find(dicom.ImageType or '', 'LABEL') then
    return false
  end
  return true
end
"""


class OrthancFactory:
    """Starts servers for tests; ``finish`` stops them all at once."""

    def __init__(self, base: Path):
        self.base = base
        self.servers: list[Orthanc] = []

    def __call__(self, **options: Any) -> Orthanc:
        root = self.base / f"orthanc{len(self.servers)}"
        root.mkdir(parents=True)
        server = Orthanc(root, **options)
        self.servers.append(server)
        return server.start()

    def finish(self) -> None:
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.wait()


def _report_logs(request: pytest.FixtureRequest, servers: list[Orthanc], failed: int) -> None:
    """Print the servers' log tails when a test failed while they ran."""
    if request.session.testsfailed <= failed:
        return
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for server in servers:
        text = f"\n--- Orthanc log ({server.log_path}), last lines ---\n{server.log_tail()}\n"
        if reporter is not None:
            reporter.write_line(text)
        else:
            print(text)


@pytest.fixture(scope="session", name="orthanc_factory")
def orthanc_factory_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancFactory]:
    """``orthanc_factory(users=..., lua=..., accepted_syntaxes=...)`` starts a fresh server."""
    reason = missing_tools()
    if reason:
        pytest.fail(reason)
    factory = OrthancFactory(tmp_path_factory.mktemp("orthanc"))
    yield factory
    factory.finish()


@pytest.fixture(name="orthancs")
def orthancs_fixture(
    orthanc_factory: OrthancFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Orthanc]]:
    """Start servers for one test; they get SIGTERM when it ends (log tails on failure)."""
    started: list[Orthanc] = []
    failed = request.session.testsfailed

    def start(**options: Any) -> Orthanc:
        server = orthanc_factory(**options)
        started.append(server)
        return server

    yield start
    _report_logs(request, started, failed)
    for server in started:
        server.terminate()


@pytest.fixture(name="orthanc")
def orthanc_fixture(orthancs: Callable[..., Orthanc]) -> Orthanc:
    """A fresh, empty Orthanc for one test, logging every instance it receives."""
    return orthancs(lua=RECEPTION_LOG)


# -- TLS --------------------------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (``openssl``): ``(cert.pem, key.pem)``."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is absent (Debian package openssl)")
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class TlsProxy:
    """Accepts TLS on a free port and forwards the plain bytes to ``target_port``."""

    def __init__(self, target_port: int, cert: Path, key: Path):
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        try:
            client.settimeout(30)
            tls = self.context.wrap_socket(client, server_side=True)
        except (ssl.SSLError, OSError):
            client.close()  # e.g. the client refused our certificate
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        try:
            while not self._stop.is_set():
                ready = [tls] if tls.pending() else select.select([tls, upstream], [], [], 1)[0]
                for sock in ready:
                    data = sock.recv(1 << 16)
                    if not data:
                        return
                    (upstream if sock is tls else tls).sendall(data)
        except (OSError, ssl.SSLError):
            return
        finally:
            tls.close()
            upstream.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


# -- test data --------------------------------------------------------------------------------


def dicom_frames(path: Path) -> list[bytes]:
    """The frames of a DICOM file as stored: encapsulated fragments (pad byte included) or
    slices of native Pixel Data."""
    from pydicom.encaps import generate_frames

    ds = dcmread(path)
    count = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = ds.Rows * ds.Columns * ds.SamplesPerPixel * (ds.BitsAllocated // 8)
    return [ds.PixelData[i * size : (i + 1) * size] for i in range(count)]


@dataclass(frozen=True)
class Slide:
    """A generated OME-TIFF and its conversion to DICOM (one file per instance)."""

    source: Path
    folder: Path

    @property
    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.dcm"))

    def by_uid(self) -> dict[str, Path]:
        return {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in self.files}

    def uid(self, name: str, keyword: str = "SOPInstanceUID") -> str:
        return str(dcmread(self.folder / name, stop_before_pixels=True).get(keyword))


def make_slide(folder: Path, name: str, *extra: str, **options: Any) -> Slide:
    """Write an OME-TIFF with tests/samples.py and convert it with the installed CLI."""
    import samples
    from conftest import run_cli

    folder.mkdir(parents=True, exist_ok=True)
    source = samples.write_tifffile(folder / f"{name}.ome.tif", **options)
    out = folder / f"{name}_dicom"
    # the source's own levels: the PACS tests count instances and frames
    run_cli("convert", source, out, "-q", "--pyramid", "keep", *extra, check=True)
    return Slide(source, out)


@pytest.fixture(scope="session", name="slide")
def slide_fixture(tmp_path_factory: pytest.TempPathFactory) -> Slide:
    """A 1200×1000 JPEG slide: 3 levels (20 + 6 + 2 frames), label, macro, thumbnail."""
    return make_slide(tmp_path_factory.mktemp("pacs-slide"), "slide", label=True)


def omedicom(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``omedicom`` with extra environment variables (e.g. a password)."""
    import sys

    exe = Path(sys.executable).with_name("omedicom")
    cmd = [str(exe) if exe.exists() else "omedicom", *map(str, args)]
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        cmd, capture_output=True, text=True, env=full_env, timeout=timeout, check=False
    )


# -- checks ----------------------------------------------------------------------------------


def server_args(server: Orthanc, protocol: str) -> list[str]:
    """``omedicom`` options that address ``server`` over ``protocol``."""
    if protocol == "dicomweb":
        return ["--dicomweb", server.dicomweb]
    return ["--dimse", server.dimse, "--called-aet", AET]


def assert_frames_identical(server: Orthanc, files: list[Path]) -> int:
    """WADO-RS (dicomweb-client, exact media type) returns each file's frames byte for byte.

    Native frames are asked for as Explicit VR Little Endian (dicomweb-client allows no other
    native syntax; the bytes of a little-endian frame are the same). Bit-packed (1-bit)
    frames are not compared."""
    from dicomweb_client import DICOMwebClient

    from bridge.pacs.dicomweb import FRAME_MEDIA_TYPES

    client = DICOMwebClient(server.dicomweb)
    compared = 0
    for path in files:
        ds = dcmread(path, stop_before_pixels=True)
        if ds.get("BitsAllocated", 8) == 1:
            continue
        syntax = str(ds.file_meta.TransferSyntaxUID)
        if not ds.file_meta.TransferSyntaxUID.is_compressed:
            syntax = "1.2.840.10008.1.2.1"
        ours = dicom_frames(path)
        theirs = client.retrieve_instance_frames(
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
            str(ds.SOPInstanceUID),
            frame_numbers=list(range(1, len(ours) + 1)),
            media_types=((FRAME_MEDIA_TYPES[syntax], syntax),),
        )
        assert len(theirs) == len(ours), path.name
        for number, (a, b) in enumerate(zip(ours, theirs, strict=True), 1):
            assert a == b, f"{path.name} frame {number} differs"
        compared += len(ours)
    return compared


def assert_held_exactly_once(server: Orthanc, files: list[Path]) -> None:
    """The server holds every file once, in the transfer syntax it has on disk here."""
    ours = {
        str(d.SOPInstanceUID): str(d.file_meta.TransferSyntaxUID)
        for d in (dcmread(p, stop_before_pixels=True) for p in files)
    }
    held = server.instances()
    assert sorted(i["sop"] for i in held) == sorted(ours)
    for item in held:
        assert item["syntax"] == ours[item["sop"]], "the server stores a different syntax"


def assert_same_instances(pulled: Path, originals: list[Path]) -> None:
    """Every original arrived once as ``<SOP Instance UID>.dcm``: same transfer syntax, every
    attribute equal, every frame byte-identical."""
    files = sorted(pulled.glob("*.dcm"))
    assert sorted(p.name for p in pulled.iterdir()) == sorted(p.name for p in files)
    by_uid = {str(dcmread(p, stop_before_pixels=True).SOPInstanceUID): p for p in originals}
    assert sorted(p.stem for p in files) == sorted(by_uid)
    for path in files:
        ours, theirs = dcmread(by_uid[path.stem]), dcmread(path)
        assert theirs.file_meta.TransferSyntaxUID == ours.file_meta.TransferSyntaxUID
        for element in ours:
            if element.tag != 0x7FE00010:
                assert theirs[element.tag] == element, f"{path.name}: {element.keyword}"
        assert len(theirs) == len(ours)
        assert dicom_frames(path) == dicom_frames(by_uid[path.stem])


def ome_tiff_tiles(path: Path, level: int = 0) -> list[bytes]:
    """Each JPEG tile of the first image's ``level``, in file order, as a complete stream: the
    tile as stored, with the page's JPEGTables segments (``SOI tables EOI``, TIFF Technical
    Note 2) put back right after its SOI when it has them."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[level].keyframe
        tables = page.jpegtables
        tiles = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            tif.filehandle.seek(offset)
            tile = tif.filehandle.read(count)
            if tables and len(tables) > 4:
                tile = tile[:2] + tables[2:-2] + tile[2:]
            tiles.append(tile)
    return tiles


def jpeg_stream(frame: bytes) -> bytes:
    """A JPEG frame without its pad byte: fragments have even lengths (PS3.5 A.4), so an
    odd-length stream is stored with one 0x00 after its EOI."""
    assert frame[:2] == b"\xff\xd8", "not a JPEG frame"
    return frame[:-1] if frame.endswith(b"\xff\xd9\x00") else frame
