"""HTTP for DICOMweb: authentication, TLS, timeouts, retries and messages without secrets.

Authentication (PS3.18 does not fix one; hospitals use these two):

* HTTP Basic (RFC 7617): ``--user NAME``, the password from an environment variable
  (``OMEDICOM_PASSWORD`` unless ``--password-env`` names another);
* Bearer tokens (RFC 6750): the token from the environment variable ``--token-env`` names.

Secrets never come from the command line (other users see it in ``ps``), never appear in a
message, and a URL with ``user:password@`` is refused. TLS certificates are verified by
default, against the system store or ``--ca-bundle``.
"""

from __future__ import annotations

import errno
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from ..errors import InputError
from .errors import AccessDenied, ServerError, ServerUnreachable
from .retry import RetryPolicy, TransientError, retrying

DEFAULT_PASSWORD_ENV = "OMEDICOM_PASSWORD"

#: Statuses worth another try: the server is overloaded, restarting or timed out.
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def display_url(url: str) -> str:
    """``url`` without user information, query or fragment: safe to print."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_base_url(url: str) -> str:
    """The DICOMweb base URL without a trailing slash; refuses what cannot be right."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InputError(
            f"{display_url(url) or 'the URL'} is not an http:// or https:// URL",
            hint="give the DICOMweb root, e.g. http://pacs.example.org:8042/dicom-web",
        )
    if parts.username is not None or parts.password is not None:
        raise InputError(
            "the DICOMweb URL contains user information (user:password@); it is not used",
            hint=f"give the user with --user and the password in ${DEFAULT_PASSWORD_ENV}",
        )
    if parts.query or parts.fragment:
        raise InputError(
            f"the DICOMweb URL {display_url(url)} has a query or fragment",
            hint="give the DICOMweb root only, e.g. https://pacs.example.org/dicom-web",
        )
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise InputError(f"the port in {display_url(url)} is not a number") from None
    return url.rstrip("/")


@dataclass(frozen=True)
class Credentials:
    """Who we are to the server. ``repr`` hides the secrets."""

    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(
        cls,
        *,
        user: str | None,
        password_env: str | None = None,
        token_env: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Credentials:
        """Read secrets from the environment variables the options name."""
        env = os.environ if environ is None else environ
        if user and token_env:
            raise InputError("give either --user (HTTP Basic) or --token-env (Bearer), not both")
        if token_env:
            token = env.get(token_env, "")
            if not token:
                raise InputError(
                    f"the environment variable {token_env} (named by --token-env) is not set "
                    "or empty",
                    hint=f"export {token_env}=... with the bearer token",
                )
            return cls(token=token)
        if user:
            name = password_env or DEFAULT_PASSWORD_ENV
            password = env.get(name)
            if password is None:
                raise InputError(
                    f"--user is given but the environment variable {name} with the password "
                    "is not set",
                    hint=f"export {name}=... (passwords are never taken from the command line)",
                )
            return cls(user=user, password=password)
        return cls()

    @property
    def present(self) -> bool:
        return bool(self.user or self.token)

    def apply(self, session: requests.Session) -> None:
        if self.token:
            session.headers["Authorization"] = f"Bearer {self.token}"
        elif self.user:
            session.auth = (self.user, self.password or "")


def _reason(exc: BaseException) -> str:
    """A short cause of a connection failure, from the exception chain, without the URL."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused: nothing listens on that port"
        if isinstance(current, ConnectionResetError):
            return "the connection was reset by the server"
        if isinstance(current, BrokenPipeError):
            return "the server closed the connection while we were sending"
        if isinstance(current, OSError) and current.errno == errno.EHOSTUNREACH:
            return "no route to host"
        name = type(current).__name__
        if name == "NameResolutionError" or "gaierror" in name:
            return "the host name cannot be resolved"
        if name == "RemoteDisconnected":
            return "the server closed the connection without answering"
        if name in ("BadStatusLine", "LineTooLong"):
            return "the answer is not HTTP (is this the right port?)"
        if isinstance(current, TimeoutError) or "Timeout" in name:
            return "no answer in time"
        current = current.__cause__ or current.__context__ or _args_exception(current)
    return type(exc).__name__


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__ or _args_exception(current)
    return False


def _args_exception(exc: BaseException) -> BaseException | None:
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, BaseException):
            return arg
        reason = getattr(arg, "reason", None)
        if isinstance(reason, BaseException):
            return reason
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, BaseException) else None


class Http:
    """One session with one DICOMweb server.

    ``answered`` turns true with the first HTTP answer. Before it, a refused connection is a
    wrong address and fails at once; after it, the server is restarting and it is retried.
    """

    def __init__(
        self,
        base_url: str,
        *,
        credentials: Credentials | None = None,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ):
        self.base_url = check_base_url(base_url)
        self.shown = display_url(self.base_url)
        self.credentials = credentials or Credentials()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.answered = False
        self.session = requests.Session()
        self.session.trust_env = False  # no ~/.netrc credentials, no proxy from the environment
        self.session.headers["User-Agent"] = "omedicom"
        if ca_bundle:
            if not os.path.isfile(ca_bundle):
                raise InputError("the CA bundle does not exist", path=ca_bundle)
            self.session.verify = ca_bundle
        self.credentials.apply(self.session)

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def close(self) -> None:
        self.session.close()

    # -- one request ------------------------------------------------------------------------

    def send(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request. Connection failures raise :class:`TransientError` once the server has
        answered before, else :class:`ServerUnreachable`; TLS failures always raise
        :class:`ServerUnreachable`. HTTP statuses are returned, except 401/403."""
        kwargs.setdefault("timeout", (min(self.timeout, 30.0), self.timeout))
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.SSLError as exc:
            if _caused_by(exc, ssl.SSLCertVerificationError):
                raise ServerUnreachable(
                    f"TLS with {self.shown} failed: its certificate cannot be verified",
                    hint="give the CA certificate that signed the server's certificate with "
                    "--ca-bundle FILE.pem",
                ) from None
            if self.answered:  # e.g. the connection broke mid-transfer
                raise TransientError(f"{self.shown}: TLS connection failed") from None
            raise ServerUnreachable(
                f"TLS with {self.shown} failed (does the server speak https on this port?)",
                hint="check the URL's scheme and port",
            ) from None
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            reason = _reason(exc)
            if self.answered:
                raise TransientError(f"{self.shown}: {reason}") from None
            raise ServerUnreachable(
                f"cannot reach the DICOMweb server {self.shown} ({reason})",
                hint="check the host, the port and that the server runs",
            ) from None
        self.answered = True
        if response.status_code in (401, 403):
            response.close()
            raise self.denied(response.status_code)
        return response

    def denied(self, status: int) -> AccessDenied:
        if status == 401:
            if self.credentials.present:
                return AccessDenied(
                    f"{self.shown} refused our credentials (HTTP 401 Unauthorized)",
                    hint="check the user name and the password/token in the environment variable",
                )
            return AccessDenied(
                f"{self.shown} requires authentication (HTTP 401 Unauthorized) and none was given",
                hint=f"give --user NAME with the password in ${DEFAULT_PASSWORD_ENV}, or "
                "--token-env VAR for a bearer token",
            )
        return AccessDenied(
            f"{self.shown} denies access (HTTP 403 Forbidden)",
            hint="this account may not read or store here; ask the PACS administrator",
        )

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """:meth:`send` with retries on transient failures (connection, 5xx, 429, 408).

        Only for requests whose body can be sent again (no one-shot streams)."""

        def attempt() -> requests.Response:
            response = self.send(method, url, **kwargs)
            if response.status_code in TRANSIENT_STATUS:
                status = f"HTTP {response.status_code} {response.reason}"
                response.close()
                raise TransientError(f"{self.shown}: {status}")
            return response

        try:
            return retrying(attempt, self.retry)
        except TransientError as exc:
            raise ServerUnreachable(
                f"{exc} (gave up after {self.retry.attempts} attempts)",
                hint="the server is down or overloaded; run the same command again later",
            ) from None

    def unexpected(self, response: requests.Response, what: str) -> ServerError:
        """An error for an answer that DICOMweb does not allow here."""
        detail = _error_detail(response)
        status = f"HTTP {response.status_code} {response.reason}"
        if response.status_code in (404, 405):
            return ServerError(
                f"{what}: {self.shown} has no such DICOMweb resource ({status})",
                hint="check the URL: it must be the DICOMweb root (for Orthanc "
                "http://HOST:8042/dicom-web)",
            )
        return ServerError(f"{what}: {self.shown} answered {status}{detail}")


def status_text(response: requests.Response) -> str:
    """``HTTP 400 Bad Request: <the server's explanation>``."""
    return f"HTTP {response.status_code} {response.reason}{_error_detail(response)}"


def _error_detail(response: requests.Response) -> str:
    """The server's one-line explanation, if it gave one (Orthanc: JSON ``Details``)."""
    try:
        if "json" in response.headers.get("Content-Type", ""):
            data = response.json()
            if isinstance(data, dict):
                text = data.get("Details") or data.get("Message") or ""
                return f": {str(text)[:200]}" if text else ""
        text = response.text.strip().splitlines()
        return f": {text[0][:200]}" if text else ""
    except (ValueError, UnicodeDecodeError):
        return ""
