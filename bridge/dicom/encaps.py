"""Stream Pixel Data to disk, batch by batch (DICOM PS3.5 A.4 and 8.1.1).

The dataset header is written by pydicom; Pixel Data (7FE0,0010) and, when needed, the Extended
Offset Table (7FE0,0001) and its Lengths (7FE0,0002) are appended here by hand, because they
are the last elements of the dataset. The offset tables are filled in once all frames are
written, so frames stream and no frame is held longer than it is written.

* Encapsulated (PS3.5 A.4): one fragment per frame; odd-length frames get one trailing 0x00
  (item values have even length). A Basic Offset Table is used while the last offset fits 32
  bits; beyond that the BOT stays empty and an Extended Offset Table (64-bit) is written instead.
* Native (PS3.5 8.1.1): Pixel Data with an explicit length, frames back to back, one pad byte if
  the total is odd.

How the bytes move: a frame's length is known as soon as its parts are (a ``FileRange`` knows
its count), so every item's place in the file is known before it is written. Items are
assembled in buffers of :data:`BUFFER_BYTES`: item headers packed in place, file ranges read
into their slots with one ``preadv`` per run of ranges that lie back to back in the source
(tiles usually do), small byte strings (merged JPEG tables) copied in. A full buffer is written
with one ``pwrite`` at its place, on a second thread when there is a second core, so that
reading the next batch and writing this one overlap (both system calls release the GIL). A
part larger than a buffer goes straight to its place (file ranges copied by the kernel with
``copy_file_range``). Nothing is held but :data:`BUFFERS` buffers and the offset table (8
bytes a frame).
"""

from __future__ import annotations

import os
import queue
import struct
import sys
import threading
from array import array
from collections.abc import Callable, Iterable
from typing import BinaryIO

from ..model import FileRange, Frame

ITEM = b"\xfe\xff\x00\xe0"
SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
PIXEL_DATA = b"\xe0\x7f\x10\x00"
EOT = b"\xe0\x7f\x01\x00"
EOT_LENGTHS = b"\xe0\x7f\x02\x00"
_UNDEFINED = 0xFFFFFFFF
_BOT_LIMIT = 2**32
#: An Item tag (FFFE,E000) and its 32-bit value length, little endian (PS3.5 7.5).
_ITEM_HEADER = struct.Struct("<4sI")

#: Size of one buffer, and how many the background writer cycles through.
BUFFER_BYTES = 512 << 10
BUFFERS = 3
_IOV_MAX = 1024  # buffers per preadv call (Linux IOV_MAX)
_PREADV = hasattr(os, "preadv")
_PROGRESS_EVERY = 64  # frames between progress calls


def _cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


#: Whether buffers are written on a second thread while the next one is read.
OVERLAP = _cores() > 1


def _long_header(tag: bytes, vr: bytes, length: int) -> bytes:
    """Explicit VR little endian header of an element with a 4-byte length (OB, OW, OV)."""
    return tag + vr + b"\x00\x00" + struct.pack("<I", length)


def needs_extended_offsets(frame_sizes: Iterable[int | None]) -> bool:
    """Whether a Basic Offset Table cannot address these frames (last offset >= 2**32).

    Unknown sizes (None) count as the worst case, so the extended table is chosen.
    """
    total = 0
    last = 0
    for size in frame_sizes:
        if size is None:
            return True
        last = total
        total += 8 + size + (size & 1)
    return last >= _BOT_LIMIT


def _frame_length(frame: Frame) -> int:
    """Bytes in a frame: the sum of its parts' lengths."""
    if len(frame) == 1:
        part = frame[0]
        return part.count if isinstance(part, FileRange) else len(part)
    return sum(len(part) for part in frame)


def _pwrite_all(fd: int, data: bytes | bytearray | memoryview, position: int) -> None:
    """Write all of ``data`` at ``position`` of ``fd`` (the file position is not used)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, position)
        position += written
        view = view[written:]


class _Copier:
    """Kernel copies of a file range to a place in the output, with a fallback through memory
    where the file systems do not support them (e.g. EXDEV, EINVAL)."""

    kernel = hasattr(os, "copy_file_range")

    @classmethod
    def copy(cls, part: FileRange, fd: int, position: int) -> None:
        """Copy ``part`` to ``position`` of ``fd``; EOFError if the source is short."""
        offset, left = part.offset, part.count
        while left and cls.kernel:
            try:
                n = os.copy_file_range(part.fd, fd, left, offset, position)
            except OSError:
                cls.kernel = False
                break
            if n == 0:
                raise EOFError(f"the source ends before offset {offset + left}")
            offset += n
            position += n
            left -= n
        while left:
            data = os.pread(part.fd, min(left, 8 << 20), offset)
            if not data:
                raise EOFError(f"the source ends before offset {offset + left}")
            _pwrite_all(fd, data, position)
            offset += len(data)
            position += len(data)
            left -= len(data)


def _read_into(fd: int, views: list[memoryview], offset: int) -> None:
    """Fill ``views`` from ``fd``, back to back from ``offset``; EOFError if the file is short."""
    for first in range(0, len(views), _IOV_MAX):
        chunk = views[first : first + _IOV_MAX]
        got = os.preadv(fd, chunk, offset) if _PREADV else 0
        for view in chunk:
            size = len(view)
            if got >= size:
                got -= size
            else:  # a short read (or no preadv): the rest of this view, then the next ones
                done, got = got, 0
                while done < size:
                    data = os.pread(fd, size - done, offset + done)
                    if not data:
                        raise EOFError(f"the source ends before offset {offset + size}")
                    view[done : done + len(data)] = data
                    done += len(data)
            offset += size


class _DirectSink:
    """Writes each full buffer at its place at once, in the calling thread (one buffer)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.size = BUFFER_BYTES
        self._buffer = memoryview(bytearray(self.size))

    def buffer(self) -> memoryview:
        """The buffer to fill next."""
        return self._buffer

    def write(self, buffer: memoryview, length: int, position: int) -> None:
        """Write the first ``length`` bytes of ``buffer`` at ``position``."""
        _pwrite_all(self.fd, buffer[:length], position)

    def close(self) -> None:
        """Nothing is pending: every write is done when it returns."""

    def abort(self) -> None:
        """Nothing is pending: every write is done when it returns."""


class _BackgroundSink:
    """Writes full buffers at their place on a second thread and hands them back for reuse,
    so the calling thread reads the next batch meanwhile. A write error is raised in the
    calling thread, at its next :meth:`buffer` or at :meth:`close`."""

    def __init__(self, fd: int):
        self.fd = fd
        self.size = BUFFER_BYTES
        self.free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(BUFFERS):
            self.free.put(memoryview(bytearray(self.size)))
        self.todo: queue.SimpleQueue[tuple[memoryview, int, int] | None] = queue.SimpleQueue()
        self.error: BaseException | None = None
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name="pixel-data-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        """The writer thread: write each buffer handed over, then hand it back."""
        while (job := self.todo.get()) is not None:
            buffer, length, position = job
            if self.error is None and not self.cancelled:
                try:
                    _pwrite_all(self.fd, buffer[:length], position)
                except BaseException as exc:  # raised in the calling thread
                    self.error = exc
            self.free.put(buffer)

    def buffer(self) -> memoryview:
        """A free buffer to fill, once the writer has handed one back."""
        buffer = self.free.get()
        if self.error is not None:
            raise self.error
        return buffer

    def write(self, buffer: memoryview, length: int, position: int) -> None:
        """Have the first ``length`` bytes of ``buffer`` written at ``position``."""
        self.todo.put((buffer, length, position))

    def close(self) -> None:
        """Wait until every buffer is written; raise the first write error."""
        self.todo.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop after the write in progress (the output is being given up)."""
        self.cancelled = True
        self.todo.put(None)
        self.thread.join()


class _Run:
    """File ranges that lie back to back in one source: read with one ``preadv`` into the
    buffer slots (views) they go to."""

    __slots__ = ("end", "fd", "offset", "views")

    def __init__(self, part: FileRange, view: memoryview):
        self.fd = part.fd
        self.offset = part.offset
        self.end = part.offset + part.count
        self.views = [view]


class _Assembler:
    """Lays out parts one after the other from a file offset, in buffers from a sink."""

    def __init__(self, sink: _DirectSink | _BackgroundSink, position: int):
        self.sink = sink
        self.size = sink.size
        self.buffer: memoryview | None = None
        self.start = position  # file offset of buffer[0]
        self.used = 0
        self.runs: list[_Run] = []  # reads still to do into the buffer

    @property
    def position(self) -> int:
        """File offset of the next byte."""
        return self.start + self.used

    def _room(self, count: int) -> memoryview:
        """The buffer, with at least ``count`` (<= size) bytes free after ``used``."""
        if self.buffer is not None and count <= self.size - self.used:
            return self.buffer
        self.flush()
        self.buffer = self.sink.buffer()
        return self.buffer

    def frame(self, frame: Frame, length: int, items: bool) -> None:
        """One frame of ``length`` bytes: as an item (header, parts, pad byte to an even
        length; PS3.5 A.4) when ``items``, else its parts alone (PS3.5 8.1.1)."""
        padded = length + (length & 1) if items else length
        need = padded + 8 if items else padded
        if need > self.size:  # larger than a buffer: part by part
            if items:
                _ITEM_HEADER.pack_into(self._room(8), self.used, ITEM, padded)
                self.used += 8
            for part in frame:
                self.add(part)
            if padded != length:
                self.add(b"\x00")
            return
        buffer = self._room(need)
        used = self.used
        if items:
            _ITEM_HEADER.pack_into(buffer, used, ITEM, padded)
            used += 8
        for part in frame:
            if isinstance(part, FileRange):
                count = part.count
                self._read(part, buffer[used : used + count])
            else:
                count = len(part)
                buffer[used : used + count] = part
            used += count
        if padded != length:
            buffer[used] = 0
            used += 1
        self.used = used

    def _read(self, part: FileRange, view: memoryview) -> None:
        """Read ``part`` into ``view`` at the next flush, with the run it continues if any."""
        runs = self.runs
        if runs and runs[-1].end == part.offset and runs[-1].fd == part.fd:
            run = runs[-1]
            run.end += part.count
            run.views.append(view)
        else:
            runs.append(_Run(part, view))

    def add(self, part: bytes | memoryview | FileRange) -> None:
        """One part at the next position: into the buffer, or straight to its place when it
        is larger than a buffer."""
        count = len(part)
        if count > self.size:  # straight to its place
            self.flush()
            if isinstance(part, FileRange):
                _Copier.copy(part, self.sink.fd, self.start)
            else:
                _pwrite_all(self.sink.fd, part, self.start)
            self.start += count
            return
        buffer = self._room(count)
        used = self.used
        if isinstance(part, FileRange):
            self._read(part, buffer[used : used + count])
        else:
            buffer[used : used + count] = part
        self.used = used + count

    def flush(self) -> None:
        """Read the pending ranges into the buffer, then hand it to the sink to write."""
        if self.buffer is None:
            return
        for run in self.runs:
            _read_into(run.fd, run.views, run.offset)
        self.runs = []
        self.sink.write(self.buffer, self.used, self.start)
        self.buffer = None
        self.start += self.used
        self.used = 0


def _write_frames(
    fd: int,
    frames: Iterable[Frame],
    n_frames: int,
    position: int,
    *,
    items: bool,
    frame_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    overlap: bool | None = None,
) -> tuple[array, array, int]:
    """Write ``frames`` from ``position`` on: as items (PS3.5 A.4) or back to back (8.1.1).

    Returns the item offsets (from the first item) and value lengths, and the end position.
    """
    if overlap is None:
        overlap = OVERLAP
    sink = _BackgroundSink(fd) if overlap and n_frames > 1 else _DirectSink(fd)
    out = _Assembler(sink, position)
    offsets = array("Q")  # 8 bytes a frame, not a Python int object each
    lengths = array("Q")
    count = reported = 0
    try:
        for frame in frames:
            length = _frame_length(frame)
            if frame_size is not None and length != frame_size:
                raise ValueError(f"native frame {count} has {length} bytes, not {frame_size}")
            count += 1
            if count > n_frames:
                raise ValueError(f"more than {n_frames} frames, {n_frames} were declared")
            if items:
                offsets.append(out.start + out.used - position)
                lengths.append(length + (length & 1))
            out.frame(frame, length, items)
            if progress is not None and count - reported >= _PROGRESS_EVERY:
                progress(count - reported)
                reported = count
        out.flush()
    except BaseException:
        sink.abort()
        raise
    sink.close()
    if progress is not None and count > reported:
        progress(count - reported)
    if count != n_frames:
        raise ValueError(f"{count} frames were written, {n_frames} were declared")
    return offsets, lengths, out.position


def write_encapsulated(
    fh: BinaryIO,
    frames: Iterable[Frame],
    n_frames: int,
    *,
    extended: bool,
    progress: Callable[[int], None] | None = None,
    overlap: bool | None = None,
) -> array:
    """Append encapsulated Pixel Data (PS3.5 A.4; and the EOT when ``extended``); return the
    item lengths.

    ``fh`` must be a real file (``fileno``, seekable); it is flushed first and positioned at
    the end of the Pixel Data afterwards. ``overlap`` writes on a second thread (default
    :data:`OVERLAP`); the bytes written are the same either way.
    """
    fh.flush()
    fd = fh.fileno()
    start = os.lseek(fd, 0, os.SEEK_CUR)
    head = bytearray()
    eot_pos = -1
    if extended:
        head += _long_header(EOT, b"OV", 8 * n_frames)
        eot_pos = start + len(head)
        head += bytes(8 * n_frames)
        head += _long_header(EOT_LENGTHS, b"OV", 8 * n_frames)
        head += bytes(8 * n_frames)
    head += _long_header(PIXEL_DATA, b"OB", _UNDEFINED)
    bot_size = 0 if extended else 4 * n_frames
    head += ITEM + struct.pack("<I", bot_size)
    bot_pos = start + len(head)
    head += bytes(bot_size)
    _pwrite_all(fd, head, start)
    offsets, lengths, end = _write_frames(
        fd, frames, n_frames, start + len(head), items=True, progress=progress, overlap=overlap
    )
    _pwrite_all(fd, SEQ_DELIMITER, end)
    if extended:
        if sys.byteorder != "little":
            offsets.byteswap()
            lengths.byteswap()
        _pwrite_all(fd, offsets.tobytes(), eot_pos)
        _pwrite_all(fd, lengths.tobytes(), eot_pos + 8 * n_frames + 12)
        if sys.byteorder != "little":
            lengths.byteswap()
    else:
        if offsets and offsets[-1] >= _BOT_LIMIT:
            raise ValueError("a Basic Offset Table cannot address these frames")
        bot = array("I", offsets)
        if sys.byteorder != "little":
            bot.byteswap()
        _pwrite_all(fd, bot.tobytes(), bot_pos)
    fh.seek(end + len(SEQ_DELIMITER))
    return lengths


def write_native(
    fh: BinaryIO,
    frames: Iterable[Frame],
    frame_size: int,
    n_frames: int,
    *,
    vr: bytes = b"OB",
    progress: Callable[[int], None] | None = None,
    overlap: bool | None = None,
) -> None:
    """Append native Pixel Data (PS3.5 8.1.1): ``n_frames`` frames of exactly ``frame_size``
    bytes, back to back, and a pad byte if the total is odd."""
    fh.flush()
    fd = fh.fileno()
    start = os.lseek(fd, 0, os.SEEK_CUR)
    total = frame_size * n_frames
    header = _long_header(PIXEL_DATA, vr, total + (total & 1))
    _pwrite_all(fd, header, start)
    _, _, end = _write_frames(
        fd,
        frames,
        n_frames,
        start + len(header),
        items=False,
        frame_size=frame_size,
        progress=progress,
        overlap=overlap,
    )
    if total & 1:
        _pwrite_all(fd, b"\x00", end)
        end += 1
    fh.seek(end)
