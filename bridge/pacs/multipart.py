"""multipart/related bodies (RFC 2387) for DICOMweb, streamed both ways (PS3.18 8.6.1.2).

* :class:`StowBody` is a STOW-RS request body read straight from the DICOM files: a
  file-like object with a known length, so the request has a ``Content-Length`` and no file
  is held in memory.
* :class:`MultipartReader` splits a WADO-RS response into parts as the bytes arrive; each
  part's body is an iterator of chunks, so a whole instance can stream into a file.
"""

from __future__ import annotations

import email.message
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

CRLF = b"\r\n"


def media_type(content_type: str) -> tuple[str, dict[str, str]]:
    """``(type/subtype, parameters)`` of a Content-Type value; parameter names lower case,
    quotes removed (RFC 9110 8.3.1)."""
    msg = email.message.Message()
    msg["Content-Type"] = content_type
    params = msg.get_params() or []
    main = params[0][0].lower() if params else ""
    return main, {k.lower(): str(v) for k, v in params[1:]}


def transfer_syntax_of(content_type: str) -> str | None:
    """The ``transfer-syntax`` a Content-Type names, also inside a multipart ``type``
    parameter, as Orthanc writes it: ``type="image/jpeg; transfer-syntax=1.2..."``."""
    main, params = media_type(content_type)
    if "transfer-syntax" in params:
        return params["transfer-syntax"]
    if main == "multipart/related" and "type" in params:
        return transfer_syntax_of(params["type"])
    return None


class StowBody:
    """``--boundary / Content-Type: application/dicom / <file>`` for each file, then the close
    delimiter; read in pieces, never joined in memory."""

    def __init__(self, paths: Sequence[Path], *, boundary: str | None = None):
        self.boundary = boundary or uuid.uuid4().hex
        head = f"--{self.boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        self._segments: list[bytes | Path] = []
        for i, path in enumerate(paths):
            self._segments.append((CRLF if i else b"") + head)
            self._segments.append(Path(path))
        self._segments.append(f"\r\n--{self.boundary}--\r\n".encode())
        self._sizes = [
            len(s) if isinstance(s, bytes) else os.stat(s).st_size for s in self._segments
        ]
        self._length = sum(self._sizes)
        self._index = 0
        self._offset = 0  # within the current segment
        self._position = 0
        self._fh = None

    @property
    def content_type(self) -> str:
        return f'multipart/related; type="application/dicom"; boundary={self.boundary}'

    def __len__(self) -> int:
        return self._length

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence != 0 or offset != 0:
            if whence == 2 and offset == 0:  # requests asks for the end to learn the length
                self._close_file()
                self._index, self._offset, self._position = len(self._segments), 0, self._length
                return self._position
            raise OSError("StowBody can only seek to the start or the end")
        self._close_file()
        self._index = self._offset = self._position = 0
        return 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._length - self._position
        out: list[bytes] = []
        wanted = size
        while wanted > 0 and self._index < len(self._segments):
            segment = self._segments[self._index]
            left = self._sizes[self._index] - self._offset
            if left <= 0:
                self._close_file()
                self._index += 1
                self._offset = 0
                continue
            take = min(left, wanted)
            if isinstance(segment, bytes):
                piece = segment[self._offset : self._offset + take]
            else:
                if self._fh is None:
                    self._fh = open(segment, "rb")  # noqa: SIM115 - closed at segment end
                    self._fh.seek(self._offset)
                piece = self._fh.read(take)
                if len(piece) != take:
                    raise OSError(f"{segment} changed size while being sent")
            out.append(piece)
            self._offset += len(piece)
            self._position += len(piece)
            wanted -= len(piece)
        return b"".join(out)

    def _close_file(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def close(self) -> None:
        self._close_file()


class MultipartError(ValueError):
    """The response is not the multipart/related body it claims to be."""


class Part:
    """One body part: its headers, then its bytes as an iterator (consume before the next)."""

    def __init__(self, headers: dict[str, str], body: Iterator[bytes]):
        self.headers = headers
        self._body = body

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")

    def chunks(self) -> Iterator[bytes]:
        yield from self._body

    def read(self) -> bytes:
        return b"".join(self._body)


class MultipartReader:
    """Parts of a multipart body arriving in ``chunks`` (RFC 2046 5.1.1).

    The delimiter is CRLF + ``--boundary``; the first boundary may start the body. Memory
    stays at one chunk plus one delimiter, whatever the part sizes.
    """

    def __init__(self, chunks: Iterable[bytes], boundary: str):
        if not boundary:
            raise MultipartError("the multipart response has no boundary")
        self._chunks = iter(chunks)
        self._delimiter = b"\r\n--" + boundary.encode("latin-1")
        self._buffer = bytearray(CRLF)  # so that a boundary at the very start is found too
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        for chunk in self._chunks:
            if chunk:
                self._buffer += chunk
                return True
        self._eof = True
        return False

    def _find(self, needle: bytes, start: int = 0) -> int:
        while True:
            at = self._buffer.find(needle, start)
            if at >= 0:
                return at
            start = max(0, len(self._buffer) - len(needle) + 1)
            if not self._fill():
                return -1

    def _need(self, count: int) -> None:
        while len(self._buffer) < count:
            if not self._fill():
                raise MultipartError("the multipart response ends in the middle of a part")

    def parts(self) -> Iterator[Part]:
        at = self._find(self._delimiter)
        if at < 0:
            raise MultipartError("no multipart boundary in the response")
        del self._buffer[: at + len(self._delimiter)]
        while True:
            self._need(2)
            if self._buffer[:2] == b"--":
                return  # close delimiter
            end = self._find(CRLF)  # rest of the boundary line (transport padding)
            if end < 0:
                raise MultipartError("the multipart response ends after a boundary")
            del self._buffer[: end + 2]
            headers: dict[str, str] = {}
            self._need(2)
            if self._buffer[:2] == CRLF:
                del self._buffer[:2]
            else:
                end = self._find(b"\r\n\r\n")
                if end < 0:
                    raise MultipartError("the multipart response ends inside part headers")
                for line in bytes(self._buffer[:end]).decode("latin-1").split("\r\n"):
                    name, sep, value = line.partition(":")
                    if sep:
                        headers[name.strip().lower()] = value.strip()
                del self._buffer[: end + 4]
            body = self._body()
            yield Part(headers, body)
            for _ in body:  # drain what the consumer left
                pass

    def _body(self) -> Iterator[bytes]:
        keep = len(self._delimiter) - 1
        while True:
            at = self._buffer.find(self._delimiter)
            if at >= 0:
                if at:
                    yield bytes(self._buffer[:at])
                del self._buffer[: at + len(self._delimiter)]
                return
            if len(self._buffer) > keep:
                out = bytes(self._buffer[: len(self._buffer) - keep])
                del self._buffer[: len(out)]
                yield out
            if not self._fill():
                raise MultipartError("the multipart response ends in the middle of a part")
