"""HTTP access to a monitoring port, with every failure turned into a one-line natsctl error.

Users point this at the wrong thing often (the client port 4222, http vs https, a reverse proxy path),
so each transport failure is named for what it most likely means rather than shown as an httpx error.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from natsctl.core.errors import (
    ConnectionFailed,
    NatsctlError,
    NotFound,
    ServerError,
    Timeout,
    TLSFailed,
    UsageError,
)
from natsctl.core.settings import Settings, redact_url

HTTPS_PORT_ANSWER = "Client sent an HTTP request to an HTTPS server"


@dataclass(slots=True)
class Reply:
    status: int
    data: Any  # parsed JSON, or None when the body is not JSON (only for statuses the caller allowed)
    text: str


class MonitorClient:
    """One monitoring endpoint (the first of ``settings.derived_monitor_urls()`` that answers)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.urls = [check_url(u).rstrip("/") for u in settings.derived_monitor_urls()]
        self._secrets = url_secrets(self.urls)
        self.base = self.urls[0]
        self.timeout = settings.timeout
        self.kind = ""  # set by natsctl.monitor.api.detect
        self.notes: list[str] = []  # for the operator (stderr): e.g. a listing cut short, and why
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> MonitorClient:
        self._http = httpx.AsyncClient(
            timeout=self.timeout, verify=self._verify(), follow_redirects=False, trust_env=False
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()

    def _verify(self) -> ssl.SSLContext | bool:
        if self.settings.tls_insecure:
            return False
        ca = self.settings.monitor_ca or self.settings.tls_ca
        if ca and not os.path.isfile(ca):
            raise UsageError(f"CA file {ca} does not exist (--monitor-ca / --tlsca)")
        try:
            return ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        except ssl.SSLError as exc:
            raise UsageError(f"cannot use {ca} as a CA certificate: {exc.reason or exc}") from None

    def where(self, path: str = "") -> str:
        return redact_url(self.base + path)

    async def first_answering(self, path: str, ok: tuple[int, ...] = ()) -> Reply:
        """GET ``path`` on each URL in turn until one answers; stick to that one afterwards."""
        last: NatsctlError | None = None
        for url in self.urls:
            self.base = url
            try:
                return await self.get(path, ok=ok)
            except (ConnectionFailed, Timeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def get(self, path: str, params: dict[str, Any] | None = None, *, ok: tuple[int, ...] = ()) -> Reply:
        """GET a monitoring endpoint and parse its JSON. Statuses in ``ok`` are returned, not raised.

        Bounded: the whole request (connect, headers, every byte of the body) must finish within
        ``--timeout`` (httpx's own timeouts bound each socket operation only, so a server trickling a
        byte at a time would never trip them), and at most ``MAX_BODY_BYTES`` of body are read.
        Cancelling the calling task (Ctrl-C, SIGTERM) abandons the request at once.
        """
        assert self._http is not None, "use 'async with MonitorClient(...)'"
        query = {k: v for k, v in (params or {}).items() if v is not None}
        shown = self.where(path)
        deadline = asyncio.timeout(self.timeout)
        try:
            try:
                async with deadline:
                    status, body = await self._read(self.base + path, query, shown, ok)
            except (httpx.TimeoutException, TimeoutError):
                raise no_answer(self.where(), self.timeout) from None
            except httpx.HTTPError as exc:
                # a transport fault concerns the port, not the endpoint: name the URL the user gave
                raise transport_error(exc, self.where()) from None
            except BaseExceptionGroup as group:
                # anyio's connect runs in a TaskGroup: its failures arrive wrapped in an exception group
                if deadline.expired():
                    raise no_answer(self.where(), self.timeout) from None
                raise unwrapped(group, self.where(), self.timeout) from None
            return self._reply(status, body, shown, ok)
        except NatsctlError as exc:
            raise self._scrubbed(exc) from None

    async def _read(self, url: str, query: dict[str, Any], shown: str, ok: tuple[int, ...]) -> tuple[int, str]:
        """Status and body text, streamed: a body over the limit is refused before it is all in memory."""
        assert self._http is not None
        async with self._http.stream("GET", url, params=query) as response:
            wanted = response.status_code == 200 or response.status_code in ok
            # an error answer is only read for its first line; a wanted one in full, up to the limit
            limit = MAX_BODY_BYTES if wanted else MAX_ERROR_BODY_BYTES
            declared = response.headers.get("content-length", "")
            if wanted and declared.isdigit() and int(declared) > limit:
                raise too_large(shown, f"it announces {int(declared):,} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > limit:
                    if not wanted:
                        break
                    raise too_large(shown, f"more than {limit:,} bytes arrived")
            text = body[:limit].decode(response.encoding or "utf-8", errors="replace")
            return response.status_code, text

    def _reply(self, status: int, body: str, shown: str, ok: tuple[int, ...]) -> Reply:
        if status == 200 or status in ok:
            return Reply(status, parse_json(body, shown, strict=status == 200), body)
        raise status_error(status, body, shown)

    def _scrubbed(self, exc: NatsctlError) -> NatsctlError:
        """``exc`` with any password or token of the monitoring URLs masked: its message quotes what
        httpx or the server said, which could echo the URL."""
        for secret in self._secrets:
            exc.message = exc.message.replace(secret, "***")
            exc.hint = exc.hint.replace(secret, "***") if exc.hint else exc.hint
        exc.args = (exc.message,)
        return exc


MAX_BODY_BYTES = 32 * 1024 * 1024  # README "Inspecting the bus": the most natsctl reads of one answer
MAX_ERROR_BODY_BYTES = 64 * 1024  # of an error answer, only the start is shown


def too_large(shown: str, detail: str) -> ServerError:
    return ServerError(
        f"the answer of {shown} is too large ({detail}): natsctl reads at most "
        f"{MAX_BODY_BYTES // (1024 * 1024)} MiB of one monitoring answer"
    )


def url_secrets(urls: list[str]) -> list[str]:
    """The passwords (or tokens: a bare user part) in ``urls``, as written and percent-decoded."""
    found: set[str] = set()
    for url in urls:
        try:
            parts = urlsplit(url)
        except ValueError:
            continue
        secret = parts.password if parts.password is not None else parts.username
        if secret:
            found |= {secret, unquote(secret)}
    # (a secret of one or two characters is not searched for: masking it would garble every message;
    # the URLs themselves are always shown through redact_url)
    return sorted((s for s in found if len(s) >= 3), key=len, reverse=True)


MONITOR_SCHEMES = ("http", "https")


def check_url(url: str) -> str:
    """A monitoring URL must be http(s)://host[:port][/base-path] with a port in 1-65535."""
    shown = redact_url(url)
    parts = urlsplit(url.strip())
    try:
        port = parts.port  # ValueError when it is not a number or above 65535
    except ValueError:
        port = -1
    problem = ""
    if parts.scheme.lower() not in MONITOR_SCHEMES:
        problem = f"the scheme must be http or https, not {parts.scheme or 'none'!r}"
    elif not parts.hostname:
        problem = "it names no host"
    elif port is not None and not 1 <= port <= 65535:
        given = parts.netloc.rpartition("@")[2].rpartition(":")[2]
        problem = f"the port must be a number from 1 to 65535, not {given!r}"
    if problem:
        raise UsageError(f"bad monitoring URL {shown}: {problem} (use http://host:8222 or https://...)")
    return url


def leaves(group: BaseExceptionGroup) -> list[BaseException]:
    """The exceptions inside ``group`` and any groups nested in it, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def unwrapped(group: BaseExceptionGroup, shown: str, timeout: float) -> BaseException:
    """The real cause inside an exception group, as the one-line typed error ``get`` gives for it.

    Cancellation and interruption stay what they are; otherwise the first cause natsctl can name wins.
    """
    causes = leaves(group)
    for exc in causes:
        if isinstance(exc, KeyboardInterrupt | SystemExit | asyncio.CancelledError | NatsctlError):
            return exc
    for exc in causes:
        if isinstance(exc, httpx.TimeoutException | asyncio.TimeoutError | TimeoutError):
            return no_answer(shown, timeout)
        if isinstance(exc, httpx.HTTPError):
            return transport_error(exc, shown)
        if isinstance(exc, ssl.SSLError):
            return tls_error(exc, shown)
        if isinstance(exc, ConnectionRefusedError):
            return ConnectionFailed(
                f"cannot reach the monitoring port {shown}: connection refused",
                hint="is monitoring enabled (nats-server -m 8222)? point --monitor at it",
            )
        if isinstance(exc, OSError):
            return ConnectionFailed(f"cannot reach the monitoring port {shown}: {_said(exc)}")
        if isinstance(exc, OverflowError | ValueError):  # the socket layer refusing the address itself
            return UsageError(f"bad monitoring URL {shown}: {_said(exc)}")
    return ConnectionFailed(f"request to {shown} failed: {_said(causes[0] if causes else group)}")


def no_answer(shown: str, timeout: float) -> Timeout:
    return Timeout(
        f"no answer from {shown} within {timeout:g}s",
        hint="is it the monitoring port? raise --timeout if the server is busy",
    )


def _said(exc: BaseException) -> str:
    return first_line(str(exc)) or type(exc).__name__


class BadNumber(ValueError):
    """A number the monitoring JSON must not hold: NaN, Infinity, or one too large for a float."""


def _no_constant(name: str) -> Any:
    raise BadNumber(name)


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise BadNumber(literal)
    return value


def loads(body: str) -> Any:
    """Strict JSON: NaN, Infinity and numbers that overflow a float are refused (``BadNumber``), so no
    reader meets a float it cannot turn into an int and no ``--json`` output carries them."""
    return json.loads(body, parse_constant=_no_constant, parse_float=_finite)


def parse_json(body: str, shown: str, *, strict: bool) -> Any:
    try:
        return loads(body)
    except RecursionError:
        if not strict:
            return None
        raise ServerError(
            f"the answer of {shown} is nested too deeply to read: not a NATS monitoring answer?"
        ) from None
    except BadNumber as exc:
        if not strict:
            return None
        number = first_line(str(exc), 40)
        raise ServerError(
            f"the answer of {shown} holds the number {number}, which natsctl cannot read: not a NATS monitoring answer?"
        ) from None
    except ValueError as exc:
        if not strict:
            return None
        if not isinstance(exc, json.JSONDecodeError):  # e.g. an integer of more than 4300 digits
            raise ServerError(
                f"the answer of {shown} holds a number too long to read: not a NATS monitoring answer?"
            ) from None
        if _cut_off(exc, body):
            raise ServerError(
                f"the answer of {shown} was cut off after {len(body.encode())} bytes (invalid JSON)"
            ) from None
        raise ServerError(
            f"{shown} did not answer JSON (it starts with {first_line(body)!r}): not a NATS monitoring endpoint?"
        ) from None


def _cut_off(exc: ValueError, body: str) -> bool:
    """JSON that only lacks its end: the decoder stopped at the last byte or inside a string."""
    if not isinstance(exc, json.JSONDecodeError) or not body.lstrip().startswith(("{", "[")):
        return False
    return exc.pos >= len(body.rstrip()) or exc.msg.startswith("Unterminated string")


def first_line(body: str, limit: int = 80) -> str:
    line = body.strip().splitlines()[0] if body.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def error_text(body: str) -> str:
    """Monitoring errors come as plain text, or as JSON with an ``error`` field (``/healthz``)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return first_line(body)
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return first_line(data["error"])
    return first_line(body)


def status_error(status: int, body: str, shown: str) -> NatsctlError:
    if status == 400 and HTTPS_PORT_ANSWER in body:
        return TLSFailed(
            f"{shown} is an https monitoring port: use https:// (and --monitor-ca FILE if its certificate is private)"
        )
    reason = error_text(body)
    if status == 404:
        return NotFound(
            f"{shown} answered 404 ({reason or 'not found'}): no such monitoring endpoint there",
            hint="wrong http_base_path in the --monitor URL?",
        )
    return ServerError(f"{shown} answered {status}: {reason or 'no reason given'}")


def transport_error(exc: httpx.HTTPError, shown: str) -> NatsctlError:
    message = str(exc) or type(exc).__name__
    ssl_error = _ssl_cause(exc)
    if ssl_error is not None:
        return tls_error(ssl_error, shown)
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        if "complete message body" in message or "incomplete" in message.lower():
            return ConnectionFailed(f"the answer of {shown} was cut off: the connection closed mid-body")
        return ConnectionFailed(
            f"{shown} does not speak HTTP ({first_line(message).rstrip('.')})",
            hint="is it the NATS client port (4222) instead of the monitoring port (8222)?",
        )
    if isinstance(exc, httpx.ConnectError):
        if _refused(exc):
            return ConnectionFailed(
                f"cannot reach the monitoring port {shown}: connection refused",
                hint="is monitoring enabled (nats-server -m 8222)? point --monitor at it",
            )
        return ConnectionFailed(f"cannot reach the monitoring port {shown}: {first_line(message)}")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return UsageError(f"bad monitoring URL {shown}: {message} (use http://host:8222 or https://...)")
    return ConnectionFailed(f"request to {shown} failed: {first_line(message)}")


def _refused(exc: BaseException) -> bool:
    """httpx words a refusal "All connection attempts failed"; the cause chain says what happened."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    if "SSL" in str(exc) or "CERTIFICATE" in str(exc):
        return ssl.SSLError(str(exc))
    return None


def tls_error(error: ssl.SSLError, shown: str) -> TLSFailed:
    if isinstance(error, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(error):
        detail = getattr(error, "verify_message", "") or "certificate verify failed"
        return TLSFailed(
            f"the certificate of {shown} is not trusted ({detail})",
            hint="pass its CA with --monitor-ca FILE",
        )
    return TLSFailed(
        f"TLS handshake with {shown} failed ({error.reason or 'no TLS there'})",
        hint="is it a plain http monitoring port? use http://",
    )
