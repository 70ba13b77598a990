"""Open a nats-py connection from Settings: fail fast, fail over, and say what went wrong.

nats-py's defaults suit services, not a CLI: it retries forever, prints tracebacks from its default
callbacks and reports a wrong password as a bare ``NoServersError``. Here the first connect gives up
after one round over the servers (within ``settings.timeout``), the callbacks are ours, and the last
real reason (refused, auth, TLS) becomes a typed natsctl error (natsctl/transport/diagnose.py).
"""

from __future__ import annotations

import asyncio
import json
import math
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from nats import errors as nats_errors
from nats.aio.client import Client

from natsctl.core import debug
from natsctl.core.errors import ConnectionFailed, NatsctlError, PermissionDenied, TLSFailed
from natsctl.core.settings import Settings
from natsctl.core.stderr import say

from . import fast
from .credentials import auth_kind, check_creds_file, read_nkey_seed
from .diagnose import classify_connect_error, permission_message, wants_server_info
from .tls import tls_context, wants_tls

# While connected, a lost server is retried this often until settings.timeout has passed.
RECONNECT_WAIT = 0.25

Notify = Callable[[str], None]


def stderr_notify(message: str) -> None:
    say(message)


class NatsctlClient(Client):
    """nats-py's client, with natsctl's connection events attached (``events_of``).

    Permission violations reach ``ConnectionEvents.on_error`` through nats-py's error callback.
    """

    _natsctl_events: ConnectionEvents | None = None

    def drop_unsent(self) -> int:
        """Forget commands still buffered for the lost server, so a reconnect does not send them.

        A publish that stopped at a lost connection must not have its unsent tail stored after a gap:
        then the stored messages stay a prefix of the input and a rerun with --msg-id fills in order.
        On the public path nats-py cannot forget them, so the connection is closed instead (before
        its reconnect sends anything): the publish stops there either way.
        """
        dropped = fast.drop_unsent(self)
        if dropped is not None:
            return dropped
        events = events_of(self)
        if events is not None:
            events.closed_by_us = True
        debug.log("public path: the connection is closed so that nothing buffered is sent after a reconnect")
        closing = asyncio.get_running_loop().create_task(self.close())
        _keep.add(closing)
        closing.add_done_callback(_keep.discard)
        return 0


_keep: set[asyncio.Task] = set()  # tasks nobody awaits, kept alive until done


class ConnectionEvents:
    """Our callbacks for nats-py: remember the last real error, report connection changes."""

    def __init__(self, settings: Settings, notify: Notify) -> None:
        self.settings = settings
        self.notify = notify
        self.last_error: BaseException | None = None
        self.permission_errors: list[str] = []
        self.connected = False
        self.closed_by_us = False
        # Called when a live connection drops, before nats-py reconnects (a publish stops there).
        self.on_lost: list[Callable[[], None]] = []
        # Set by a TLS failure during the first connect: retrying cannot fix a certificate, and nats-py
        # 2.16 hangs closing a socket whose TLS upgrade failed, so connect_nats stops waiting instead.
        self.tls_failure: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()
        self.client: Client | None = None  # set once connect_nats made it

    async def on_error(self, error: Exception) -> None:
        text = str(error)
        if isinstance(error, ssl.SSLError) and not self.connected and not self.tls_failure.done():
            self.tls_failure.set_result(error)
        if "permissions violation" in text.lower():
            message = permission_message(text)
            if message not in self.permission_errors:
                self.permission_errors.append(message)
            return
        self.last_error = error

    async def on_disconnected(self) -> None:
        if self.connected and not self.closed_by_us:
            if self.client is not None:
                await fast.settle_deliveries(self.client)  # what arrived before the loss counts first
            for listener in list(self.on_lost):
                listener()
            self.notify(f"connection lost, reconnecting (up to {self.settings.timeout:g}s)")

    async def on_reconnected(self) -> None:
        self.notify("reconnected")

    async def on_closed(self) -> None:
        pass


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
        check_creds_file(settings.creds)
        options["user_credentials"] = settings.creds
    elif settings.nkey:
        # Parsed here so a bad file is named in a clear error; nats-py gets the seed, not the path.
        options["nkeys_seed_str"] = read_nkey_seed(settings.nkey)
    if settings.inbox_prefix:
        options["inbox_prefix"] = settings.inbox_prefix
    context = tls_context(settings)
    if context is not None:
        options["tls"] = context
        if settings.tls_first:
            options["tls_handshake_first"] = True
    return options


async def connect_nats(settings: Settings, *, purpose: str = "", notify: Notify = stderr_notify) -> Client:
    """A connected nats-py client, or a NatsctlError that names the server and the reason."""
    events = ConnectionEvents(settings, notify)
    options = connect_options(settings, events, purpose)
    client = NatsctlClient()
    client._natsctl_events = events  # read by permission checks
    events.client = client
    secrets = settings.secrets()
    debug.log(
        f"connecting to {settings.redacted_servers()} as {options['name']!r} (auth: {auth_kind(settings)}, "
        f"tls: {'yes' if 'tls' in options else 'no'}, timeout {settings.timeout:g}s)",
        secrets,
    )
    fast.choose(client, secrets, warn=lambda message: notify(f"warning: {message}"))
    try:
        await first_connect(client, options, events, settings)
    except NatsctlError as exc:
        debug.log(f"connect failed: {exc.line()}", secrets)
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, nothing escapes raw
        debug.log(f"connect failed: {type(exc).__name__}: {exc}; last error: {events.last_error!r}", secrets)
        reason = events.last_error if isinstance(exc, nats_errors.NoServersError) and events.last_error else exc
        server_info = fast.server_info(client)
        if server_info is None and wants_server_info(reason):
            server_info = await peek_server_info(settings.servers[0], settings.timeout)
        raise classify_connect_error(exc, events.last_error, settings, server_info) from None
    info = fast.server_info(client)
    if info is not None:
        debug.log(
            f"connected to {info.get('server_name') or info.get('server_id', '?')} (nats-server {info.get('version', '?')}, "
            f"jetstream {'on' if info.get('jetstream') else 'off'}, max_payload {client.max_payload})",
            secrets,
        )
    else:
        version = client.connected_server_version
        url = client.connected_url
        debug.log(
            f"connected to {url.netloc if url else '?'} (nats-server {version.major}.{version.minor}.{version.patch}, "
            f"max_payload {client.max_payload})",
            secrets,
        )
    await refuse_plaintext(client, settings, events)
    events.connected = True
    # Once connected, ride out a lost server (fail over to the others) for about settings.timeout.
    client.options["reconnect_time_wait"] = RECONNECT_WAIT
    client.options["max_reconnect_attempts"] = max(1, math.ceil(settings.timeout / RECONNECT_WAIT))
    return client


async def first_connect(client: Client, options: dict[str, Any], events: ConnectionEvents, settings: Settings) -> None:
    """client.connect, bounded in time (TLS handshakes, servers that never speak) and by TLS failures."""
    attempt = asyncio.ensure_future(client.connect(**options))
    bound = settings.timeout * max(1, len(settings.servers)) + 1
    waiting: set[asyncio.Future[Any]] = {attempt, events.tls_failure}
    done, _ = await asyncio.wait(waiting, timeout=bound, return_when=asyncio.FIRST_COMPLETED)
    if attempt in done:
        attempt.result()
        return
    attempt.cancel()
    await asyncio.gather(attempt, return_exceptions=True)
    if events.tls_failure.done():
        raise events.tls_failure.result()
    tls_hint = (
        "--tlsfirst needs a server with handshake_first"
        if settings.tls_first
        else "a TLS-first server needs --tlsfirst"
    )
    raise ConnectionFailed(
        f"no answer from {settings.redacted_servers()} within {settings.timeout:g}s",
        hint=f"check --server / NATS_URL and that it is a NATS client port ({tls_hint})",
    )


async def refuse_plaintext(client: Client, settings: Settings, events: ConnectionEvents) -> None:
    """nats-py silently stays in plaintext when TLS was asked for but the server does not require it."""
    if not wants_tls(settings) or settings.tls_first:
        return
    info = fast.server_info(client)
    if info is None:  # public path: ask the server we are connected to for its INFO
        url = client.connected_url
        info = await peek_server_info(url.geturl() if url else settings.servers[0], settings.timeout)
        if not info:
            events.closed_by_us = True
            await client.close()
            raise TLSFailed(f"cannot confirm that the server at {settings.redacted_servers()} uses TLS (no INFO read)")
    if info.get("tls_required"):
        return
    events.closed_by_us = True
    await client.close()
    raise TLSFailed(
        f"the server at {settings.redacted_servers()} does not offer TLS, and TLS was asked for",
        hint="use a nats:// URL without TLS options, or enable TLS on the server",
    )


async def peek_server_info(url: str, timeout: float) -> dict:
    """The INFO a NATS server sends first on a new connection, read without nats-py; {} if none.

    For the public path, where nats-py's copy is private: is TLS required, is auth. A TLS-first server
    sends nothing before the handshake, so it gives {} (as does a server that is not there).
    """
    parts = urlsplit(url if "://" in url else f"nats://{url}")
    if parts.scheme not in ("nats", "tls") or not parts.hostname:
        return {}
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 4222), timeout)
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (TimeoutError, OSError, ValueError):
        return {}
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:  # noqa: BLE001 - only closing
                pass
    if not line.startswith(b"INFO "):
        return {}
    try:
        info = json.loads(line[5:])
    except ValueError:
        return {}
    return info if isinstance(info, dict) else {}


def events_of(client: Client) -> ConnectionEvents | None:
    return getattr(client, "_natsctl_events", None)


def permission_errors(client: Client) -> list[str]:
    """Permission violations the server reported on this connection, in plain words (nats-py lower-cases
    the server's text, so the subject is shown in lower case)."""
    events = events_of(client)
    found = list(events.permission_errors) if events else []
    last = str(getattr(client, "last_error", None) or "")
    if "permissions violation" in last.lower():
        message = permission_message(last)
        if message not in found:
            found.append(message)
    return found


def raise_permission_error(client: Client) -> None:
    """Raise PermissionDenied if the server reported a permissions violation on this connection."""
    found = permission_errors(client)
    if found:
        raise PermissionDenied(found[0])


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
