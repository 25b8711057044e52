"""One exception hierarchy for the whole bridge.

Every error a user can meet derives from :class:`BridgeError`. Its message names the file and the
problem, and ``hint`` says what to do about it. The CLI prints ``message`` and ``hint`` (never a
traceback) and exits with ``exit_code``.
"""

from __future__ import annotations

from pathlib import Path


class BridgeError(Exception):
    """Base class of every error the bridge raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        self.path = str(path) if path is not None else None
        self.hint = hint
        self.message = message
        text = f"{self.path}: {message}" if self.path else message
        super().__init__(text)

    def at(self, path: str | Path) -> BridgeError:
        """This error, naming ``path`` if it names no file yet (raised deep in a reader that
        does not know which file it reads)."""
        if self.path is None:
            self.path = str(path)
            self.args = (f"{self.path}: {self.message}",)
        return self

    def describe(self) -> str:
        """The message as the CLI prints it: problem, then what to do."""
        text = str(self)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class InputError(BridgeError):
    """The input cannot be read: not a TIFF/DICOM, truncated, or internally inconsistent."""

    exit_code = 2


class MetadataError(InputError):
    """The input's metadata is missing something the target requires, or contradicts the pixels."""


class SeveralSlidesError(InputError):
    """Several slides (DICOM series, Series Instance UID (0020,000E)) are among the inputs and
    the command needs one; ``series`` lists their UIDs, in the order found."""

    def __init__(self, message: str, *, series: tuple[str, ...], **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.series = series


class UnsupportedError(BridgeError):
    """The input is valid but uses a codec, layout or pixel type this version cannot convert."""

    exit_code = 3


class OutputError(BridgeError):
    """The output cannot be written (exists already, no space, permission)."""

    exit_code = 4
