"""Errors of PACS transfers, with their own exit codes.

Every message names the server by a *display* address (scheme, host, port and path only, see
:func:`bridge.pacs.http.display_url`), never a password, token or query string. A failed
transfer carries its partial report, so the CLI can say exactly what reached the server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import BridgeError

if TYPE_CHECKING:
    from .records import PullReport, PushReport


class PacsError(BridgeError):
    """The server could not be reached, stopped answering, or answered with an error."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        report: PushReport | PullReport | None = None,
    ):
        super().__init__(message, hint=hint)
        self.report = report

    def attach(self, report: PushReport | PullReport, line: str, *, prefix: str = "") -> None:
        """Attach the transfer's report and add its summary ``line`` to the message."""
        self.report = report
        if line not in str(self):
            self.args = (f"{prefix}{self.args[0]}\n  {line}",)


class ServerUnreachable(PacsError):
    """No connection, a TLS failure, or a server that died mid-transfer (exit 5)."""


class AccessDenied(PacsError):
    """HTTP 401/403, or a DIMSE association the server refused (exit 6)."""

    exit_code = 6


class RejectedInstances(PacsError):
    """The server refused some instances; ``rejections`` says which and why (exit 7)."""

    exit_code = 7


class ServerError(PacsError):
    """The server answered, but not as DICOMweb/DIMSE says it must (wrong URL, bad reply)."""
