"""DIMSE: C-STORE, C-FIND and C-GET with pynetdicom (PS3.4 Annex B and C, PS3.7, PS3.8).

Presentation contexts carry **one transfer syntax each** (PS3.8 9.3.2.2). Offering several
syntaxes in one context lets the acceptor pick any of them, and a sender then has to
re-encode (decompress JPEG) to fit; one context per (SOP class, transfer syntax) pair lets
each instance travel in the syntax it is stored in:

* C-STORE: for each pair that occurs in a batch, one context; the file is sent as its raw
  bytes (pynetdicom ``STORE_SEND_CHUNKED_DATASET``). An instance whose pair the server does
  not accept is reported as rejected, never converted.
* C-GET: for each SOP class, one context per syntax this module knows, with the SCP role
  (PS3.7 D.3.3.4 SCP/SCU Role Selection), so the server can send each instance as stored.
  Orthanc 1.10.1 does pick the stored syntax when it is offered (measured). Received data
  sets are written to disk as they arrive (``STORE_RECV_CHUNKED_DATASET``), never held in
  memory.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydicom import Dataset, dcmread

from ..errors import InputError, UnsupportedError
from .errors import AccessDenied, ServerError, ServerUnreachable
from .records import BatchOutcome, LocalInstance, Rejection, RemoteInstance, SeriesSummary, uid_name
from .retry import RetryPolicy, TransientError, retrying

FIND_MODEL = "1.2.840.10008.5.1.4.1.2.2.1"  # Study Root Q/R Information Model - FIND
GET_MODEL = "1.2.840.10008.5.1.4.1.2.2.3"  # Study Root Q/R Information Model - GET

#: Syntaxes offered for C-GET, one context each: the compressed ones first, so that a server
#: that chooses by our order (rather than by what it stores) still sends compressed data.
RETRIEVE_SYNTAXES: tuple[str, ...] = (
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.4.201",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203",  # HTJ2K
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.2",  # Explicit VR Big Endian (retired, still met)
)

T = TypeVar("T")

_MAX_CONTEXTS = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255
_UIDS_PER_GET = 200


@dataclass(frozen=True)
class DimsePeer:
    """Where the DIMSE server is and who we both are (AE titles, PS3.8 7.1.1.5-6)."""

    host: str
    port: int
    called_aet: str = "ANY-SCP"
    calling_aet: str = "OMEDICOM"
    timeout: float = 60.0

    @classmethod
    def parse(
        cls, address: str, *, called_aet: str | None, calling_aet: str | None, timeout: float
    ) -> DimsePeer:
        host, sep, port = address.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InputError(
                f"{address!r} is not HOST:PORT", hint="e.g. --dimse pacs.example.org:104"
            )
        for title in (called_aet, calling_aet):
            if title is not None and not (0 < len(title) <= 16 and title.isascii()):
                raise InputError(f"the AE title {title!r} must be 1 to 16 ASCII characters")
        return cls(host, int(port), called_aet or "ANY-SCP", calling_aet or "OMEDICOM", timeout)

    @property
    def shown(self) -> str:
        return f"{self.called_aet}@{self.host}:{self.port}"


@contextmanager
def _pynetdicom_config(**flags: Any) -> Iterator[None]:
    from pynetdicom import _config

    old = {k: getattr(_config, k) for k in flags}
    for k, v in flags.items():
        setattr(_config, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(_config, k, v)


@contextmanager
def _temporary_files_in(folder: Path) -> Iterator[None]:
    """pynetdicom writes received data sets with NamedTemporaryFile(); putting them into the
    output's staging folder makes keeping one a rename, and cleans up what an abort left."""
    old = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield
    finally:
        tempfile.tempdir = old


def _tcp_reachable(host: str, port: int, timeout: float) -> str | None:
    """``None`` if a TCP connection opens, else the reason it does not."""
    try:
        with socket.create_connection((host, port), timeout=min(timeout, 10.0)):
            return None
    except ConnectionRefusedError:
        return "connection refused: nothing listens on that port"
    except socket.gaierror:
        return "the host name cannot be resolved"
    except TimeoutError:
        return "no answer in time"
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _status_text(code: int, status: Dataset) -> str:
    from pynetdicom.status import STORAGE_SERVICE_CLASS_STATUS

    _category, description = STORAGE_SERVICE_CLASS_STATUS.get(code, ("Failure", ""))
    text = f"C-STORE status 0x{code:04X}" + (f" ({description})" if description else "")
    comment = status.get("ErrorComment")
    return f"{text}: {comment}" if comment else text


class Dimse:
    """A DIMSE peer. ``answered`` turns true with the first association the server accepts;
    before it, a refused connection is a wrong address and is not retried."""

    def __init__(self, peer: DimsePeer, *, retry: RetryPolicy | None = None):
        self.peer = peer
        self.retry = retry or RetryPolicy()
        self.name = peer.shown
        self.answered = False

    # -- associations ---------------------------------------------------------------------

    def _ae(self) -> Any:
        from pynetdicom import AE

        ae = AE(ae_title=self.peer.calling_aet)
        ae.acse_timeout = self.peer.timeout
        ae.dimse_timeout = self.peer.timeout
        ae.network_timeout = self.peer.timeout
        ae.connection_timeout = min(self.peer.timeout, 30.0)
        ae.maximum_pdu_size = 1 << 20
        return ae

    def _associate(self, ae: Any, **kwargs: Any) -> Any:
        """An established association, or the error that says why not."""
        peer = self.peer
        assoc = ae.associate(peer.host, peer.port, ae_title=peer.called_aet, **kwargs)
        if assoc.is_established:
            self.answered = True
            return assoc
        if assoc.is_rejected:
            primitive = getattr(assoc.acceptor, "primitive", None)
            why = ""
            if primitive is not None:
                why = f" ({primitive.result_str}, {primitive.source_str}: {primitive.reason_str})"
            raise AccessDenied(
                f"{self.name} rejected the association{why}",
                hint=f"check --called-aet (now {peer.called_aet}) and that the server knows "
                f"our AE title {peer.calling_aet} (--aet)",
            )
        reason = _tcp_reachable(peer.host, peer.port, peer.timeout)
        if reason is None:
            reason = "the port accepts connections but no DICOM association came back"
            if not self.answered:
                raise ServerError(
                    f"{self.name} did not answer the DICOM association request ({reason})",
                    hint="is this the server's DICOM port (not its HTTP port)?",
                )
        if self.answered:
            raise TransientError(f"{self.name}: {reason}")
        raise ServerUnreachable(
            f"cannot reach the DICOM server {self.name} ({reason})",
            hint="check the host, the port and that the server runs",
        )

    def _with_retries(self, action: Callable[[], T]) -> T:
        try:
            return retrying(action, self.retry)
        except TransientError as exc:
            raise ServerUnreachable(
                f"{exc} (gave up after {self.retry.attempts} attempts)",
                hint="the server is down or overloaded; run the same command again later",
            ) from None

    # -- C-FIND (PS3.4 C.4.1) ---------------------------------------------------------------

    def _find(self, query: Dataset, what: str, *, retry: bool = True) -> list[Dataset]:
        def attempt() -> list[Dataset]:
            ae = self._ae()
            ae.add_requested_context(FIND_MODEL)
            assoc = self._associate(ae)
            try:
                if not any(cx.abstract_syntax == FIND_MODEL for cx in assoc.accepted_contexts):
                    raise ServerError(f"{what}: {self.name} does not offer Study Root C-FIND")
                results: list[Dataset] = []
                for status, identifier in assoc.send_c_find(query, FIND_MODEL):
                    if not status:
                        raise TransientError(f"{self.name}: the association broke off ({what})")
                    code = int(status.Status)
                    if code in (0xFF00, 0xFF01):
                        if identifier is not None:
                            results.append(identifier)
                    elif code == 0x0000:
                        return results
                    else:
                        comment = status.get("ErrorComment", "")
                        raise ServerError(
                            f"{what}: {self.name} answered C-FIND status 0x{code:04X}"
                            + (f" ({comment})" if comment else ""),
                            hint="the server may not allow our AE title to query (--aet)",
                        )
                raise TransientError(f"{self.name}: C-FIND ended without a final status")
            finally:
                if assoc.is_established:
                    assoc.release()

        return self._with_retries(attempt) if retry else attempt()

    @staticmethod
    def _query(level: str, **keys: Any) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        for keyword, value in keys.items():
            setattr(ds, keyword, value)
        return ds

    def held_instances(self, study_uid: str, series_uid: str, *, retry: bool = True) -> set[str]:
        """SOP Instance UIDs the server holds in one series (C-FIND at IMAGE level)."""
        query = self._query(
            "IMAGE", StudyInstanceUID=study_uid, SeriesInstanceUID=series_uid, SOPInstanceUID=""
        )
        found = self._find(query, "searching for instances", retry=retry)
        return {str(d.SOPInstanceUID) for d in found if d.get("SOPInstanceUID")}

    def series(
        self, study_uid: str | None = None, modality: str | None = "SM"
    ) -> list[SeriesSummary]:
        query = self._query(
            "SERIES",
            StudyInstanceUID=study_uid or "",
            SeriesInstanceUID="",
            Modality=modality or "",
            NumberOfSeriesRelatedInstances="",
            PatientID="",
            PatientName="",
            ContainerIdentifier="",
            SeriesDescription="",
            StudyDate="",
        )
        out = []
        for d in self._find(query, "listing series"):
            count = d.get("NumberOfSeriesRelatedInstances")
            out.append(
                SeriesSummary(
                    study_uid=str(d.get("StudyInstanceUID", "")),
                    series_uid=str(d.get("SeriesInstanceUID", "")),
                    modality=str(d.get("Modality", "")),
                    instances=int(count) if count not in (None, "") else None,
                    patient_id=str(d.get("PatientID", "")),
                    patient_name=str(d.get("PatientName", "")),
                    container_id=str(d.get("ContainerIdentifier", "")),
                    description=str(d.get("SeriesDescription", "")),
                    study_date=str(d.get("StudyDate", "")),
                )
            )
        return out

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[RemoteInstance]:
        if series_uid:
            series = [series_uid]
        else:
            found = self._find(
                self._query("SERIES", StudyInstanceUID=study_uid, SeriesInstanceUID=""),
                "listing series",
            )
            series = sorted({str(d.SeriesInstanceUID) for d in found})
        out = []
        for uid in series:
            query = self._query(
                "IMAGE",
                StudyInstanceUID=study_uid,
                SeriesInstanceUID=uid,
                SOPInstanceUID="",
                SOPClassUID="",
                NumberOfFrames="",
            )
            for d in self._find(query, "searching for instances"):
                frames = d.get("NumberOfFrames")
                out.append(
                    RemoteInstance(
                        study_uid,
                        uid,
                        str(d.SOPInstanceUID),
                        str(d.get("SOPClassUID", "")),
                        int(frames) if frames not in (None, "") else 1,
                    )
                )
        return out

    # -- C-STORE (PS3.4 B.2) ----------------------------------------------------------------

    def store(self, batch: Sequence[LocalInstance]) -> BatchOutcome:
        """Send one batch over one association, each file in its own transfer syntax."""
        outcome = BatchOutcome()
        pairs = list(dict.fromkeys((i.sop_class_uid, i.transfer_syntax) for i in batch))
        if len(pairs) > _MAX_CONTEXTS:
            half = len(batch) // 2
            first, second = self.store(batch[:half]), self.store(batch[half:])
            return _merge(first, second)
        ae = self._ae()
        for sop_class, syntax in pairs:
            ae.add_requested_context(sop_class, [syntax])
        try:
            assoc = self._associate(ae)
        except TransientError as exc:
            return BatchOutcome(retry=list(batch), reason=str(exc))
        accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts
        }
        try:
            with _pynetdicom_config(STORE_SEND_CHUNKED_DATASET=True):
                for index, inst in enumerate(batch):
                    if (inst.sop_class_uid, inst.transfer_syntax) not in accepted:
                        outcome.rejected.append(
                            Rejection(
                                inst,
                                f"the server accepts no presentation context for "
                                f"{uid_name(inst.sop_class_uid)} in "
                                f"{uid_name(inst.transfer_syntax)}; it is not converted",
                            )
                        )
                        continue
                    status = assoc.send_c_store(inst.path) if assoc.is_established else Dataset()
                    if not status or "Status" not in status:
                        outcome.retry = list(batch[index:])
                        outcome.reason = f"{self.name}: the association broke off during C-STORE"
                        break
                    code = int(status.Status)
                    if code == 0x0000:
                        outcome.stored.append(inst)
                    elif code in (0xB000, 0xB006, 0xB007):
                        outcome.stored.append(inst)
                        outcome.warnings.append(
                            f"{inst.path.name}: stored with {_status_text(code, status)}"
                        )
                    else:
                        outcome.rejected.append(Rejection(inst, _status_text(code, status)))
        finally:
            if assoc.is_established:
                assoc.release()
        return outcome

    # -- C-GET (PS3.4 C.4.3) ----------------------------------------------------------------

    def retrieve(
        self,
        refs: Sequence[RemoteInstance],
        folder: Path,
        on_file: Callable[[RemoteInstance, Path, str], None],
    ) -> None:
        self.get(refs, folder, on_file)

    def get(
        self,
        refs: Sequence[RemoteInstance],
        folder: Path,
        on_file: Callable[[RemoteInstance, Path, str], None],
    ) -> None:
        """Retrieve ``refs`` into ``folder`` as ``<SOP Instance UID>.dcm``, each as it arrives.

        Raises :class:`TransientError` if the association breaks off; ``on_file`` has then
        been called for every complete file, so the caller retries only the rest."""
        from pynetdicom import build_role, evt

        wanted = {r.sop_instance_uid: r for r in refs}
        classes = sorted({r.sop_class_uid for r in refs if r.sop_class_uid})
        if 1 + len(classes) * len(RETRIEVE_SYNTAXES) > _MAX_CONTEXTS:
            raise UnsupportedError(
                f"the instances span {len(classes)} SOP classes, more than one C-GET "
                "association can offer one context per transfer syntax for",
                hint="pull one series at a time with --series",
            )
        ae = self._ae()
        ae.add_requested_context(GET_MODEL)
        for sop_class in classes:
            for syntax in RETRIEVE_SYNTAXES:
                ae.add_requested_context(sop_class, [syntax])
        roles = [build_role(c, scp_role=True) for c in classes]
        incoming = folder / ".incoming"
        incoming.mkdir(exist_ok=True)
        failures: list[str] = []

        def on_store(event: Any) -> int:
            uid = str(event.request.AffectedSOPInstanceUID)
            ref = wanted.get(uid)
            if ref is None:
                return 0xA900  # not one we asked for
            target = folder / f"{uid}.dcm"
            try:
                os.replace(event.dataset_path, target)
                on_file(ref, target, str(event.context.transfer_syntax))
            except Exception as exc:
                failures.append(f"{uid}: {exc}")
                target.unlink(missing_ok=True)
                return 0xA700
            return 0x0000

        with (
            _temporary_files_in(incoming),
            _pynetdicom_config(STORE_RECV_CHUNKED_DATASET=True),
        ):
            assoc = self._associate(ae, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, on_store)])
            try:
                if not any(cx.abstract_syntax == GET_MODEL for cx in assoc.accepted_contexts):
                    raise ServerError(f"{self.name} does not offer Study Root C-GET")
                by_series: dict[tuple[str, str], list[str]] = {}
                for r in refs:
                    by_series.setdefault((r.study_uid, r.series_uid), []).append(r.sop_instance_uid)
                for (study, series), uids in by_series.items():
                    for start in range(0, len(uids), _UIDS_PER_GET):
                        chunk = uids[start : start + _UIDS_PER_GET]
                        self._get_one(assoc, study, series, chunk)
                        if failures:
                            raise ServerError(
                                "writing a received instance failed: " + "; ".join(failures)
                            )
            finally:
                if assoc.is_established:
                    assoc.release()
                shutil.rmtree(incoming, ignore_errors=True)

    def _get_one(self, assoc: Any, study: str, series: str, uids: list[str]) -> None:
        query = self._query(
            "IMAGE",
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            SOPInstanceUID=uids if len(uids) > 1 else uids[0],
        )
        for status, _identifier in assoc.send_c_get(query, GET_MODEL):
            if not status or "Status" not in status:
                raise TransientError(f"{self.name}: the association broke off during C-GET")
            code = int(status.Status)
            if code in (0xFF00, 0x0000, 0xB000):
                continue  # pending, success, or warning (the caller checks what arrived)
            failed = status.get("FailedSOPInstanceUIDList", "")
            raise ServerError(
                f"{self.name} answered C-GET status 0x{code:04X}"
                + (f" (failed: {failed})" if failed else ""),
                hint="the server may not allow our AE title to retrieve (--aet)",
            )


def _merge(a: BatchOutcome, b: BatchOutcome) -> BatchOutcome:
    return BatchOutcome(
        stored=a.stored + b.stored,
        rejected=a.rejected + b.rejected,
        warnings=a.warnings + b.warnings,
        retry=a.retry + b.retry,
        reason=a.reason or b.reason,
        split=a.split + b.split,
    )


def read_frames(path: Path) -> int:
    """Number of Frames of a received file (1 when absent)."""
    ds = dcmread(path, stop_before_pixels=True, specific_tags=["NumberOfFrames"])
    value = ds.get("NumberOfFrames", 1)
    return int(value) if value not in (None, "") else 1
