"""Open a nats-py connection from Settings: fail fast, fail over, and say what went wrong.

nats-py's defaults suit services, not a CLI: it retries forever, prints tracebacks from its default
callbacks and reports a wrong password as a bare ``NoServersError``. Here the first connect gives up
after one round over the servers (within ``settings.timeout``), the callbacks are ours, and the last
real reason (refused, auth, TLS) becomes a typed natsctl error.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import sys
from collections.abc import Callable
from typing import Any

import nats
from nats import errors as nats_errors
from nats.aio.client import Client

from natsctl.core.errors import (
    AuthFailed,
    ConnectionFailed,
    NatsctlError,
    PermissionDenied,
    TLSFailed,
    UsageError,
)
from natsctl.core.settings import Settings, redact_url

# While connected, a lost server is retried this often until settings.timeout has passed.
RECONNECT_WAIT = 0.25

Notify = Callable[[str], None]


def stderr_notify(message: str) -> None:
    sys.stderr.write(f"natsctl: {message}\n")
    sys.stderr.flush()


class ConnectionEvents:
    """Our callbacks for nats-py: remember the last real error, report connection changes."""

    def __init__(self, settings: Settings, notify: Notify) -> None:
        self.settings = settings
        self.notify = notify
        self.last_error: BaseException | None = None
        self.permission_errors: list[str] = []
        self.connected = False
        self.closed_by_us = False

    async def on_error(self, error: Exception) -> None:
        text = str(error)
        if "Permissions Violation" in text:
            self.permission_errors.append(text.replace("nats: ", "").strip("'\" "))
            return
        self.last_error = error

    async def on_disconnected(self) -> None:
        if self.connected and not self.closed_by_us:
            self.notify(f"connection lost, reconnecting (up to {self.settings.timeout:g}s)")

    async def on_reconnected(self) -> None:
        self.notify("reconnected")

    async def on_closed(self) -> None:
        pass


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    wants_tls = any(u.startswith("tls://") for u in settings.servers) or any(
        (settings.tls_ca, settings.tls_cert, settings.tls_key, settings.tls_first, settings.tls_insecure)
    )
    if not wants_tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        if settings.tls_ca:
            context.load_verify_locations(cafile=settings.tls_ca)
        if settings.tls_cert or settings.tls_key:
            if not (settings.tls_cert and settings.tls_key):
                raise UsageError("a client certificate needs both --tlscert and --tlskey")
            context.load_cert_chain(settings.tls_cert, settings.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSFailed(f"cannot load TLS files: {exc.strerror or exc}") from None
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect_options(settings: Settings, events: ConnectionEvents, purpose: str) -> dict[str, Any]:
    name = settings.connection_name + (f" {purpose}" if purpose else "")
    options: dict[str, Any] = dict(
        servers=settings.servers,
        name=name,
        connect_timeout=settings.timeout,
        allow_reconnect=True,
        max_reconnect_attempts=1,  # first connect: one round over the servers, then give up
        reconnect_time_wait=0,
        dont_randomize=True,
        error_cb=events.on_error,
        disconnected_cb=events.on_disconnected,
        reconnected_cb=events.on_reconnected,
        closed_cb=events.on_closed,
        verbose=False,
        pending_size=8 * 1024 * 1024,
    )
    if settings.user:
        options["user"] = settings.user
    if settings.password:
        options["password"] = settings.password
    if settings.token:
        options["token"] = settings.token
    if settings.creds:
        options["user_credentials"] = settings.creds
    if settings.nkey:
        options["nkeys_seed"] = settings.nkey
    if settings.inbox_prefix:
        options["inbox_prefix"] = settings.inbox_prefix
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
        if settings.tls_first:
            options["tls_handshake_first"] = True
    return options


async def connect_nats(
    settings: Settings, *, purpose: str = "", notify: Notify = stderr_notify
) -> Client:
    """A connected nats-py client, or a NatsctlError that names the server and the reason."""
    events = ConnectionEvents(settings, notify)
    options = connect_options(settings, events, purpose)
    try:
        # The hard bound covers TLS handshakes and servers that accept but never speak.
        client = await asyncio.wait_for(nats.connect(**options), settings.timeout * max(1, len(settings.servers)) + 1)
    except asyncio.TimeoutError:
        raise ConnectionFailed(
            f"no answer from {settings.redacted_servers()} within {settings.timeout:g}s",
            hint="check --server / NATS_URL and that it is a NATS client port",
        ) from None
    except NatsctlError:
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, nothing escapes raw
        raise classify_connect_error(exc, events.last_error, settings) from None
    events.connected = True
    # Once connected, ride out a lost server (fail over to the others) for about settings.timeout.
    client.options["reconnect_time_wait"] = RECONNECT_WAIT
    client.options["max_reconnect_attempts"] = max(1, math.ceil(settings.timeout / RECONNECT_WAIT))
    client._natsctl_events = events  # type: ignore[attr-defined]  # read by permission checks
    return client


def events_of(client: Client) -> ConnectionEvents | None:
    return getattr(client, "_natsctl_events", None)


def raise_permission_error(client: Client) -> None:
    """Raise PermissionDenied if the server reported a permissions violation on this connection."""
    events = events_of(client)
    if events and events.permission_errors:
        raise PermissionDenied(events.permission_errors[0])


async def close_quietly(client: Client) -> None:
    events = events_of(client)
    if events:
        events.closed_by_us = True
    try:
        await asyncio.wait_for(client.drain(), 5)
    except Exception:  # noqa: BLE001 - closing after an error must not raise another
        try:
            await client.close()
        except Exception:  # noqa: BLE001
            pass


def classify_connect_error(exc: BaseException, last: BaseException | None, settings: Settings) -> NatsctlError:
    """Turn what nats-py raised (often a bare NoServersError) into the real reason."""
    where = settings.redacted_servers()
    reason = last if isinstance(exc, nats_errors.NoServersError) and last is not None else exc
    text = str(reason)
    lowered = text.lower()
    if isinstance(reason, nats_errors.AuthorizationError) or "authorization violation" in lowered:
        return AuthFailed(
            f"authentication failed at {where}: the server rejected the credentials",
            hint="check --user/--password, --token, --nkey or --creds",
        )
    if "authentication expired" in lowered or "user authentication revoked" in lowered:
        return AuthFailed(f"authentication failed at {where}: {text.strip()}")
    if isinstance(reason, ssl.SSLCertVerificationError):
        detail = reason.verify_message or "certificate verify failed"
        if "hostname" in detail.lower() or "ip address mismatch" in detail.lower():
            return TLSFailed(f"TLS: the server certificate does not match the host {where} ({detail})")
        return TLSFailed(f"TLS: the server certificate of {where} is not trusted ({detail})", hint="pass its CA with --tlsca")
    if isinstance(reason, ssl.SSLError):
        return TLSFailed(f"TLS handshake with {where} failed: {reason.reason or text}")
    if "tls required" in lowered or "secure connection - tls required" in lowered:
        return TLSFailed(f"the server at {where} requires TLS", hint="use a tls:// URL or --tlsca")
    if "tls" in lowered and ("not available" in lowered or "not supported" in lowered):
        return TLSFailed(f"the server at {where} does not offer TLS: {text}")
    if isinstance(reason, ConnectionRefusedError):
        return ConnectionFailed(f"cannot connect to {where}: connection refused", hint="is nats-server running there? check --server / NATS_URL")
    if isinstance(reason, (asyncio.TimeoutError, TimeoutError, nats_errors.TimeoutError)):
        return ConnectionFailed(f"no answer from {where} within {settings.timeout:g}s", hint="check --server / NATS_URL")
    if isinstance(reason, OSError):
        return ConnectionFailed(f"cannot connect to {where}: {reason.strerror or text}")
    if isinstance(reason, nats_errors.NoServersError):
        return ConnectionFailed(f"cannot connect to {where}", hint="check --server / NATS_URL")
    return ConnectionFailed(f"cannot connect to {where}: {text or type(reason).__name__}")


__all__ = [
    "close_quietly",
    "connect_nats",
    "events_of",
    "raise_permission_error",
    "redact_url",
]
