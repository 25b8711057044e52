"""DICOMweb: STOW-RS, QIDO-RS and WADO-RS (PS3.18 10.5, 10.6, 10.4).

Frames and instances are asked for *as stored*. What Orthanc 1.10.1 with its DICOMweb plugin
1.7 does with each Accept header (measured; see README.md in this folder):

* ``multipart/related; type="application/dicom"`` (no transfer-syntax): transcodes the whole
  instance to Explicit VR Little Endian, i.e. decompresses every JPEG frame.
* ``multipart/related; type="application/dicom"; transfer-syntax=*``: the stored file, byte
  for byte.
* frames, no Accept or ``type="application/octet-stream"``: decompressed pixels.
* frames, bare ``type="image/jpeg"``: transcoded to JPEG *lossless* (1.2.840.10008.1.2.4.70).
* frames, ``type="image/jpeg"; transfer-syntax=1.2.840.10008.1.2.4.50``: the stored frame.
* frames, ``type="application/octet-stream"; transfer-syntax=*``: the stored frame; the part's
  Content-Type then names the stored syntax.

So this client asks with ``transfer-syntax=*`` until it knows an instance's syntax, then with
the exact media type and syntax (PS3.18 Table 8.7.3-5), and checks each part's Content-Type.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from pydicom import Dataset

from .errors import ServerError, ServerUnreachable
from .http import TRANSIENT_STATUS, Http, status_text
from .multipart import MultipartError, MultipartReader, StowBody, media_type, transfer_syntax_of
from .records import BatchOutcome, LocalInstance, Rejection, RemoteInstance, SeriesSummary
from .retry import RetryPolicy, TransientError

DICOM_JSON = "application/dicom+json"

#: Media types of frames per transfer syntax (PS3.18 Table 8.7.3-5 and 8.7.4-1).
FRAME_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.4.110": "image/jxl",
    "1.2.840.10008.1.2.4.111": "image/jxl",
    "1.2.840.10008.1.2.4.112": "image/jxl",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
    "1.2.840.10008.1.2.1": "application/octet-stream",
    "1.2.840.10008.1.2": "application/octet-stream",
    "1.2.840.10008.1.2.1.99": "application/octet-stream",
    "1.2.840.10008.1.2.2": "application/octet-stream",
}

AS_STORED = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
INSTANCE_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'

#: STOW-RS Failure Reason (0008,1197) values (PS3.18 Table I.2-1; PS3.4 Annex B.2.3).
FAILURE_REASONS: dict[int, str] = {
    0xA700: "refused: out of resources",
    0xA900: "data set does not match SOP class",
    0xC000: "cannot understand",
    0xC122: "referenced transfer syntax not supported",
    0x0110: "processing failure",
    0x0122: "referenced SOP class not supported",
    0x0124: "not authorised",
    0xA770: "out of resources: unable to store",
}

_PAGE = 1000  # QIDO-RS page size (limit/offset, PS3.18 8.3.4.4)
_CHUNK = 1 << 20


def frame_accept(transfer_syntax: str | None) -> str:
    """The Accept header for frames in ``transfer_syntax``, or as stored when unknown."""
    if not transfer_syntax or transfer_syntax not in FRAME_MEDIA_TYPES:
        return AS_STORED
    return (
        f'multipart/related; type="{FRAME_MEDIA_TYPES[transfer_syntax]}"; '
        f"transfer-syntax={transfer_syntax}"
    )


def _value(item: dict[str, Any], tag: str, default: Any = "") -> Any:
    values = item.get(tag, {}).get("Value")
    if not values:
        return default
    value = values[0]
    if isinstance(value, dict):  # PN
        return value.get("Alphabetic", default)
    return value


def _reason_text(code: int | None) -> str:
    if code is None:
        return "the server gave no reason"
    name = FAILURE_REASONS.get(code)
    if name is None and 0xA700 <= code <= 0xA7FF:
        name = "refused: out of resources"
    elif name is None and 0xA900 <= code <= 0xA9FF:
        name = "data set does not match SOP class"
    elif name is None and 0xC000 <= code <= 0xCFFF:
        name = "cannot understand"
    return f"failure reason 0x{code:04X}" + (f" ({name})" if name else "")


class DicomWeb:
    """A DICOMweb server at one base URL (the ``/dicom-web`` root for Orthanc)."""

    def __init__(self, http: Http):
        self.http = http
        self.name = http.shown

    # -- QIDO-RS (PS3.18 10.6) ----------------------------------------------------------------

    @property
    def retry(self) -> RetryPolicy:
        return self.http.retry

    def _get(self, url: str, *, retry: bool, **kwargs: Any) -> requests.Response:
        """GET with retries, or once (transient failures then raise TransientError)."""
        if retry:
            return self.http.request("GET", url, **kwargs)
        response = self.http.send("GET", url, **kwargs)
        if response.status_code in TRANSIENT_STATUS:
            response.close()
            raise TransientError(f"{self.name}: HTTP {response.status_code} {response.reason}")
        return response

    def _search(
        self, path: str, params: dict[str, Any], what: str, *, retry: bool = True
    ) -> list[dict[str, Any]]:
        """All matches of a QIDO-RS search, page by page."""
        out: list[dict[str, Any]] = []
        seen: set[str] = set()
        offset = 0
        while True:
            query = dict(params, limit=_PAGE, offset=offset)
            response = self._get(
                self.http.url(path), retry=retry, params=query, headers={"Accept": DICOM_JSON}
            )
            if response.status_code == 204:
                return out
            if response.status_code != 200:
                raise self.http.unexpected(response, what)
            try:
                page = response.json() if response.content.strip() else []
            except ValueError:
                raise ServerError(
                    f"{what}: {self.name} answered with something that is not DICOM JSON"
                ) from None
            if not isinstance(page, list):
                raise ServerError(f"{what}: {self.name} answered with a non-list DICOM JSON")
            fresh = [
                item for item in page if json.dumps(item, sort_keys=True) not in seen
            ]  # a server that ignores offset would return the first page forever
            for item in fresh:
                seen.add(json.dumps(item, sort_keys=True))
            out.extend(fresh)
            if len(page) < _PAGE or not fresh:
                return out
            offset += len(page)

    def held_instances(self, study_uid: str, series_uid: str, *, retry: bool = True) -> set[str]:
        """SOP Instance UIDs the server holds in one series (QIDO-RS instance search)."""
        items = self._search(
            f"studies/{study_uid}/series/{series_uid}/instances",
            {"includefield": "00080018"},
            "searching for instances",
            retry=retry,
        )
        return {str(_value(i, "00080018")) for i in items if _value(i, "00080018")}

    def instances(self, study_uid: str, series_uid: str | None = None) -> list[RemoteInstance]:
        """The instances of a study (or of one series in it)."""
        path = f"studies/{study_uid}/" + (f"series/{series_uid}/" if series_uid else "")
        items = self._search(
            path + "instances",
            {"includefield": ["0020000E", "00080016", "00280008"]},
            "searching for instances",
        )
        out = []
        for item in items:
            frames = _value(item, "00280008", 1)
            out.append(
                RemoteInstance(
                    study_uid=study_uid,
                    series_uid=str(_value(item, "0020000E") or series_uid or ""),
                    sop_instance_uid=str(_value(item, "00080018")),
                    sop_class_uid=str(_value(item, "00080016")),
                    frames=int(frames) if str(frames).strip() else 1,
                )
            )
        return out

    def series(
        self, study_uid: str | None = None, modality: str | None = "SM"
    ) -> list[SeriesSummary]:
        """Series on the server (QIDO-RS series search), slides (modality SM) by default."""
        params: dict[str, Any] = {
            "includefield": [
                "00080060",
                "00201209",
                "00100020",
                "00100010",
                "00400512",
                "0008103E",
                "00080020",
            ]
        }
        if modality:
            params["00080060"] = modality
        path = f"studies/{study_uid}/series" if study_uid else "series"
        out = []
        for item in self._search(path, params, "listing series"):
            count = _value(item, "00201209", None)
            out.append(
                SeriesSummary(
                    study_uid=str(_value(item, "0020000D") or study_uid or ""),
                    series_uid=str(_value(item, "0020000E")),
                    modality=str(_value(item, "00080060")),
                    instances=int(count) if count not in (None, "") else None,
                    patient_id=str(_value(item, "00100020")),
                    patient_name=str(_value(item, "00100010")),
                    container_id=str(_value(item, "00400512")),
                    description=str(_value(item, "0008103E")),
                    study_date=str(_value(item, "00080020")),
                )
            )
        return out

    # -- STOW-RS (PS3.18 10.5) ----------------------------------------------------------------

    def store(self, batch: Sequence[LocalInstance]) -> BatchOutcome:
        """POST one batch to ``/studies``; each instance ends stored, rejected or to retry."""
        body = StowBody([i.path for i in batch])
        try:
            response = self.http.send(
                "POST",
                self.http.url("studies"),
                data=body,
                headers={"Content-Type": body.content_type, "Accept": DICOM_JSON},
            )
        except TransientError as exc:
            return BatchOutcome(retry=list(batch), reason=str(exc))
        finally:
            body.close()
        status = response.status_code
        if status >= 500 or status in (408, 429):
            return BatchOutcome(
                retry=list(batch), reason=f"{self.name}: HTTP {status} {response.reason}"
            )
        if status in (404, 405):
            raise self.http.unexpected(response, "storing instances (STOW-RS)")
        if status == 415:
            raise ServerError(
                f'{self.name} does not accept multipart/related; type="application/dicom" '
                "(HTTP 415)",
                hint="the server does not implement STOW-RS at this URL",
            )
        try:
            reply = response.json() if response.content.strip() else {}
        except ValueError:
            reply = {}
        if not isinstance(reply, dict):
            reply = {}
        return self._outcome(batch, status, reply, response)

    def _outcome(
        self,
        batch: Sequence[LocalInstance],
        status: int,
        reply: dict[str, Any],
        response: requests.Response,
    ) -> BatchOutcome:
        """Read the Store Instances Response Module (PS3.18 Table 10.5.3-1)."""
        by_uid = {i.sop_instance_uid: i for i in batch}
        outcome = BatchOutcome()
        failed: dict[str, int | None] = {}
        for item in reply.get("00081198", {}).get("Value", []) or []:
            uid = str(_value(item, "00081155"))
            code = _value(item, "00081197", None)
            failed[uid] = int(code) if code not in (None, "") else None
        stored: set[str] = set()
        for item in reply.get("00081199", {}).get("Value", []) or []:
            uid = str(_value(item, "00081155"))
            stored.add(uid)
            warning = _value(item, "00081196", None)
            if warning not in (None, "") and uid in by_uid:
                outcome.warnings.append(
                    f"{by_uid[uid].path.name}: stored with warning 0x{int(warning):04X}"
                )
        for uid, inst in by_uid.items():
            if uid in failed:
                outcome.rejected.append(Rejection(inst, _reason_text(failed[uid])))
            elif uid in stored and status in (200, 202):
                outcome.stored.append(inst)
        unanswered = [i for u, i in by_uid.items() if u not in failed and u not in stored]
        if not unanswered:
            return outcome
        if status in (200, 202):
            # The server says nothing about them: the final query decides.
            outcome.stored.extend(unanswered)
            outcome.warnings.append(
                f"{self.name} did not report on {len(unanswered)} instance(s); "
                "the final query checks them"
            )
        elif len(batch) > 1:
            outcome.split.extend(unanswered)
        else:
            detail = status_text(response)
            outcome.rejected.extend(Rejection(i, f"refused ({detail})") for i in unanswered)
        return outcome

    # -- WADO-RS (PS3.18 10.4) ----------------------------------------------------------------

    def _instance_url(self, ref: RemoteInstance) -> str:
        return self.http.url(
            f"studies/{ref.study_uid}/series/{ref.series_uid}/instances/{ref.sop_instance_uid}"
        )

    def _multipart(
        self, url: str, accept: str, what: str, *, retry: bool = True
    ) -> tuple[requests.Response, str]:
        response = self._get(
            url,
            retry=retry,
            headers={"Accept": accept, "Accept-Encoding": "identity"},
            stream=True,
        )
        if response.status_code != 200:
            error = self.http.unexpected(response, what)
            response.close()
            if response.status_code == 406:
                error.hint = "the server cannot send this in its stored transfer syntax"
            raise error
        content_type = response.headers.get("Content-Type", "")
        main, params = media_type(content_type)
        if main != "multipart/related" or "boundary" not in params:
            response.close()
            raise ServerError(
                f"{what}: {self.name} answered {main or 'without a Content-Type'}, not "
                "multipart/related"
            )
        return response, content_type

    def retrieve_instance(self, ref: RemoteInstance, path: Path) -> str:
        """Stream one instance, as stored, into ``path``; return its transfer syntax."""
        what = f"retrieving instance {ref.sop_instance_uid}"
        response, content_type = self._multipart(
            self._instance_url(ref), INSTANCE_AS_STORED, what, retry=False
        )
        try:
            reader = MultipartReader(
                response.iter_content(_CHUNK), media_type(content_type)[1]["boundary"]
            )
            parts = reader.parts()
            part = next(parts, None)
            if part is None:
                raise ServerError(f"{what}: {self.name} sent no instance")
            with open(path, "xb") as fh:
                for chunk in part.chunks():
                    fh.write(chunk)
        except (requests.exceptions.RequestException, MultipartError) as exc:
            path.unlink(missing_ok=True)
            raise TransientError(f"{self.name}: {what} broke off ({exc})") from None
        finally:
            response.close()
        return _file_transfer_syntax(path)

    def retrieve(
        self,
        refs: Sequence[RemoteInstance],
        folder: Path,
        on_file: Callable[[RemoteInstance, Path, str], None],
    ) -> None:
        """Retrieve ``refs`` into ``folder`` as ``<SOP Instance UID>.dcm``, one by one.

        Raises :class:`TransientError` when the server fails; ``on_file`` has then been
        called for every complete file, so the caller retries only the rest."""
        for ref in refs:
            path = folder / f"{ref.sop_instance_uid}.dcm"
            syntax = self.retrieve_instance(ref, path)
            on_file(ref, path, syntax)

    def metadata(self, study_uid: str, series_uid: str) -> list[Dataset]:
        """Every instance's attributes, without pixel data (WADO-RS series metadata).

        Bulk data other than Pixel Data (e.g. ICC profiles) is fetched from its BulkDataURI,
        but only from this server: credentials are never sent elsewhere."""
        url = self.http.url(f"studies/{study_uid}/series/{series_uid}/metadata")
        response = self.http.request("GET", url, headers={"Accept": DICOM_JSON})
        if response.status_code != 200:
            raise self.http.unexpected(response, "retrieving metadata")
        try:
            items = response.json()
        except ValueError:
            raise ServerError(f"{self.name} sent metadata that is not DICOM JSON") from None
        return [Dataset.from_json(item, self._bulk_data) for item in items]

    def _bulk_data(self, tag: str, vr: str, uri: str) -> bytes | None:
        if tag.upper() in ("7FE00010", "7FE00008", "7FE00009"):
            return None  # pixel data comes frame by frame
        base, target = urlsplit(self.http.base_url), urlsplit(uri)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            raise ServerError(
                f"{self.name} points bulk data of ({tag}) to another server; not followed"
            )
        response, content_type = self._multipart(uri, AS_STORED, f"retrieving bulk data {tag}")
        try:
            boundary = media_type(content_type)[1]["boundary"]
            part = next(MultipartReader(response.iter_content(_CHUNK), boundary).parts(), None)
            return part.read() if part is not None else b""
        finally:
            response.close()

    def frames(
        self,
        ref: RemoteInstance,
        numbers: Sequence[int],
        transfer_syntax: str | None = None,
    ) -> Iterator[tuple[bytes, str]]:
        """Frames ``numbers`` (1-based) of one instance, one request, as ``(bytes, syntax)``.

        With ``transfer_syntax`` known, the exact media type is asked for and a different
        answer is an error; otherwise the stored syntax is asked for and reported. A broken
        connection raises :class:`TransientError` (:class:`RemoteSeries` retries)."""
        what = f"retrieving frames of {ref.sop_instance_uid}"
        url = self._instance_url(ref) + "/frames/" + ",".join(str(n) for n in numbers)
        response, content_type = self._multipart(
            url, frame_accept(transfer_syntax), what, retry=False
        )
        default = transfer_syntax_of(content_type)
        try:
            boundary = media_type(content_type)[1]["boundary"]
            count = 0
            for part in MultipartReader(response.iter_content(_CHUNK), boundary).parts():
                syntax = transfer_syntax_of(part.content_type) or default
                if syntax is None:
                    raise ServerError(f"{what}: {self.name} does not say the transfer syntax")
                if transfer_syntax and syntax != transfer_syntax:
                    raise ServerError(
                        f"{what}: asked for {transfer_syntax}, {self.name} sent {syntax} "
                        "(it transcoded the frames)"
                    )
                count += 1
                if count > len(numbers):
                    raise ServerError(f"{what}: {self.name} sent more frames than asked for")
                yield part.read(), syntax
            if count != len(numbers):
                raise ServerError(
                    f"{what}: asked for {len(numbers)} frame(s), {self.name} sent {count}"
                )
        except (requests.exceptions.RequestException, MultipartError) as exc:
            raise TransientError(f"{self.name}: {what} broke off ({exc})") from None
        finally:
            response.close()


def _file_transfer_syntax(path: Path) -> str:
    from pydicom import dcmread

    try:
        meta = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"]).file_meta
        return str(meta.TransferSyntaxUID)
    except Exception as exc:
        os.unlink(path)
        raise ServerError(f"the server sent a file that is not DICOM ({exc})") from None


class RemoteSeries:
    """One series on a DICOMweb server, read lazily: the interface the OME-TIFF writer needs.

    ``datasets()`` gives each instance's attributes (no pixel data); ``frame(uid, n)`` and
    ``frames(uid, numbers)`` fetch frames in their stored transfer syntax, only when asked,
    so a slide streams from the PACS into a writer without a local copy.
    """

    def __init__(self, web: DicomWeb, study_uid: str, series_uid: str):
        self.web = web
        self.study_uid = study_uid
        self.series_uid = series_uid
        self._syntax: dict[str, str] = {}
        self._refs: dict[str, RemoteInstance] = {}

    def datasets(self) -> list[Dataset]:
        datasets = self.web.metadata(self.study_uid, self.series_uid)
        for ds in datasets:
            uid = str(ds.SOPInstanceUID)
            self._refs[uid] = RemoteInstance(
                self.study_uid,
                self.series_uid,
                uid,
                str(ds.get("SOPClassUID", "")),
                int(ds.get("NumberOfFrames", 1) or 1),
            )
            available = ds.get((0x0008, 0x3002))  # Available Transfer Syntax UID
            if available is not None and available.value:
                value = available.value
                self._syntax[uid] = str(value[0] if isinstance(value, list) else value)
        return datasets

    def _ref(self, sop_instance_uid: str) -> RemoteInstance:
        ref = self._refs.get(sop_instance_uid)
        if ref is None:
            ref = RemoteInstance(self.study_uid, self.series_uid, sop_instance_uid, "", 0)
            self._refs[sop_instance_uid] = ref
        return ref

    def transfer_syntax(self, sop_instance_uid: str) -> str:
        """The stored transfer syntax (learnt from the first frame when the server does not
        send Available Transfer Syntax UID)."""
        if sop_instance_uid not in self._syntax:
            for _ in self.frames(sop_instance_uid, [1]):
                pass
        return self._syntax[sop_instance_uid]

    def frames(self, sop_instance_uid: str, numbers: Sequence[int]) -> Iterator[bytes]:
        """Frames ``numbers`` (1-based) in one request; after a broken connection the rest
        are asked for again, with backoff (the web client's retry policy)."""
        ref = self._ref(sop_instance_uid)
        left = list(numbers)
        failures = 0
        while left:
            try:
                syntax = self._syntax.get(sop_instance_uid)
                for data, got in self.web.frames(ref, list(left), syntax):
                    self._syntax.setdefault(sop_instance_uid, got)
                    left.pop(0)
                    failures = 0
                    yield data
            except TransientError as exc:
                failures += 1
                if failures >= self.web.retry.attempts:
                    raise ServerUnreachable(
                        f"{exc}; gave up after {failures} attempts",
                        hint="the server stopped answering; try again later",
                    ) from None
                time.sleep(self.web.retry.wait(failures))

    def frame(self, sop_instance_uid: str, number: int) -> bytes:
        (data,) = list(self.frames(sop_instance_uid, [number]))
        return data
