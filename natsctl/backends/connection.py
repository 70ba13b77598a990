"""Open a nats-py connection from Settings: fail fast, fail over, and say what went wrong.

nats-py's defaults suit services, not a CLI: it retries forever, prints tracebacks from its default
callbacks and reports a wrong password as a bare ``NoServersError``. Here the first connect gives up
after one round over the servers (within ``settings.timeout``), the callbacks are ours, and the last
real reason (refused, auth, TLS) becomes a typed natsctl error.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import ssl
import time
import sys
from collections.abc import Callable
from typing import Any

from nats import errors as nats_errors
from nats.aio.client import Client

from natsctl.core import debug
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


class CredentialsFileError(UsageError):
    """A creds or nkey seed file that cannot be read or holds no usable key (the message names the file)."""

Notify = Callable[[str], None]


class _QuietSSLTransport(logging.Filter):
    """asyncio logs "returning true from eof_received() has no effect when using ssl" for every TLS
    connection nats-py closes; it is noise on a CLI's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSSLTransport())


def stderr_notify(message: str) -> None:
    sys.stderr.write(f"natsctl: {message}\n")
    sys.stderr.flush()


class NatsctlClient(Client):
    """nats-py's client, with permission violations reported to our events.

    nats-py 2.16 compares the (lower-cased) server -ERR text with "permissions violation" only after
    prefixing it, so its error callback never fires for one; the violation would be lost silently.
    """

    async def _process_err(self, err_msg: str) -> None:
        events = getattr(self, "_natsctl_events", None)
        if events is not None and "permissions violation" in err_msg.lower():
            message = permission_message(err_msg)
            if message not in events.permission_errors:
                events.permission_errors.append(message)
        await super()._process_err(err_msg)

    def drop_unsent(self) -> int:
        """Forget commands still buffered for the lost server, so a reconnect does not send them.

        A publish that stopped at a lost connection must not have its unsent tail stored after a gap:
        then the stored messages stay a prefix of the input and a rerun with --msg-id fills in order.
        """
        dropped = len(self._pending)
        self._pending = []
        self._pending_data_size = 0
        return dropped


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

    async def on_error(self, error: Exception) -> None:
        text = str(error)
        if isinstance(error, ssl.SSLError) and not self.connected and not self.tls_failure.done():
            self.tls_failure.set_result(error)
        if "permissions violation" in text.lower():
            self.permission_errors.append(permission_message(text))
            return
        self.last_error = error

    async def on_disconnected(self) -> None:
        if self.connected and not self.closed_by_us:
            for listener in list(self.on_lost):
                listener()
            self.notify(f"connection lost, reconnecting (up to {self.settings.timeout:g}s)")

    async def on_reconnected(self) -> None:
        self.notify("reconnected")

    async def on_closed(self) -> None:
        pass


# nats-py lower-cases the server's -ERR text, so this matches either case.
_PERMISSION = re.compile(
    r'permissions violation for (publish|subscription) to "?([^"\s]+)"?(?: using queue "?([^"\s]+)"?)?', re.I
)


def permission_message(text: str) -> str:
    """The server's "Permissions Violation for Publish to \"x\"" in plain words."""
    found = _PERMISSION.search(text)
    if not found:
        return "authorization violation: " + text.replace("nats: ", "").strip("'\" ")
    verb = "publish to" if found.group(1).lower() == "publish" else "subscribe to"
    queue = f' in queue group "{found.group(3)}"' if found.group(3) else ""
    return f'authorization violation: this user is not permitted to {verb} "{found.group(2)}"{queue}'


def wants_tls(settings: Settings) -> bool:
    """The user asked for TLS: a tls:// URL or any TLS option."""
    return any(u.startswith("tls://") for u in settings.servers) or any(
        (settings.tls_ca, settings.tls_cert, settings.tls_key, settings.tls_first, settings.tls_insecure)
    )


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    if not wants_tls(settings):
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
        raise TLSFailed(f"cannot load the TLS files {tls_files(settings)}: {tls_load_reason(exc)}") from None
    if settings.tls_insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def tls_files(settings: Settings) -> str:
    named = [p for p in (settings.tls_ca, settings.tls_cert, settings.tls_key) if p]
    return ", ".join(named) if named else "(none)"


def tls_load_reason(exc: BaseException) -> str:
    # ssl's own text for a bad PEM is cryptic ("[X509: NO_CERTIFICATE_OR_CRL_FOUND] ..."); keep it short.
    if isinstance(exc, ssl.SSLError):
        return (exc.reason or "not a valid PEM certificate or key").lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return type(exc).__name__


def read_secret_file(path: str, kind: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsFileError(f"the {kind} {path} is not a text file") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise CredentialsFileError(f"cannot read the {kind} {path}: {reason}") from None


def valid_seed(text: str) -> bool:
    import nkeys

    try:
        nkeys.from_seed(bytearray(text.encode())).wipe()
    except Exception:  # noqa: BLE001 - any failure means "not a seed"; its text could echo the seed
        return False
    return True


def read_nkey_seed(path: str) -> str:
    """The seed in an nkey file: a bare seed, or the first seed line of a decorated file."""
    text = read_secret_file(path, "nkey seed file")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("S") and valid_seed(line):
            return line
    raise CredentialsFileError(f"the nkey seed file {path} holds no valid nkey seed")


_JWT_BLOCK = re.compile(r"-+BEGIN NATS USER JWT-+\s*\n\s*(\S+)\s*\n\s*-+END NATS USER JWT-+")
_SEED_BLOCK = re.compile(r"-+BEGIN USER NKEY SEED-+\s*\n\s*(\S+)\s*\n\s*-+END USER NKEY SEED-+")


def check_creds_file(path: str) -> None:
    """Fail early, naming the file, if a creds file lacks the user JWT or a valid seed."""
    text = read_secret_file(path, "creds file")
    jwt = _JWT_BLOCK.search(text)
    if not jwt or jwt.group(1).count(".") != 2:
        raise CredentialsFileError(f"the creds file {path} holds no NATS user JWT block")
    seed = _SEED_BLOCK.search(text)
    if not seed or not valid_seed(seed.group(1)):
        raise CredentialsFileError(f"the creds file {path} holds no valid user nkey seed block")


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


async def connect_nats(
    settings: Settings, *, purpose: str = "", notify: Notify = stderr_notify
) -> Client:
    """A connected nats-py client, or a NatsctlError that names the server and the reason."""
    events = ConnectionEvents(settings, notify)
    options = connect_options(settings, events, purpose)
    client = NatsctlClient()
    client._natsctl_events = events  # type: ignore[attr-defined]  # read by permission checks
    secrets = settings.secrets()
    debug.log(
        f"connecting to {settings.redacted_servers()} as {options['name']!r} (auth: {auth_kind(settings)}, "
        f"tls: {'yes' if 'tls' in options else 'no'}, timeout {settings.timeout:g}s)",
        secrets,
    )
    try:
        await first_connect(client, options, events, settings)
    except NatsctlError as exc:
        debug.log(f"connect failed: {exc.line()}", secrets)
        raise
    except Exception as exc:  # noqa: BLE001 - classified below, nothing escapes raw
        debug.log(f"connect failed: {type(exc).__name__}: {exc}; last error: {events.last_error!r}", secrets)
        server_info = getattr(client, "_server_info", None) or {}
        raise classify_connect_error(exc, events.last_error, settings, server_info) from None
    info = getattr(client, "_server_info", None) or {}
    debug.log(
        f"connected to {info.get('server_name') or info.get('server_id', '?')} (nats-server {info.get('version', '?')}, "
        f"jetstream {'on' if info.get('jetstream') else 'off'}, max_payload {client.max_payload})",
        secrets,
    )
    await refuse_plaintext(client, settings, events)
    events.connected = True
    # Once connected, ride out a lost server (fail over to the others) for about settings.timeout.
    client.options["reconnect_time_wait"] = RECONNECT_WAIT
    client.options["max_reconnect_attempts"] = max(1, math.ceil(settings.timeout / RECONNECT_WAIT))
    return client


def auth_kind(settings: Settings) -> str:
    """How we authenticate, named without the secret."""
    for kind, present in (
        ("creds file", settings.creds), ("nkey", settings.nkey), ("token", settings.token),
        ("user/password", settings.user or settings.password),
    ):
        if present:
            return kind
    return "from the URL" if settings.secrets() else "none"


async def first_connect(client: Client, options: dict[str, Any], events: ConnectionEvents, settings: Settings) -> None:
    """client.connect, bounded in time (TLS handshakes, servers that never speak) and by TLS failures."""
    attempt = asyncio.ensure_future(client.connect(**options))
    bound = settings.timeout * max(1, len(settings.servers)) + 1
    done, _ = await asyncio.wait({attempt, events.tls_failure}, timeout=bound, return_when=asyncio.FIRST_COMPLETED)
    if attempt in done:
        attempt.result()
        return
    attempt.cancel()
    await asyncio.gather(attempt, return_exceptions=True)
    if events.tls_failure.done():
        raise events.tls_failure.result()
    tls_hint = "--tlsfirst needs a server with handshake_first" if settings.tls_first else "a TLS-first server needs --tlsfirst"
    raise ConnectionFailed(
        f"no answer from {settings.redacted_servers()} within {settings.timeout:g}s",
        hint=f"check --server / NATS_URL and that it is a NATS client port ({tls_hint})",
    )


async def refuse_plaintext(client: Client, settings: Settings, events: ConnectionEvents) -> None:
    """nats-py silently stays in plaintext when TLS was asked for but the server does not require it."""
    if not wants_tls(settings) or settings.tls_first:
        return
    if (getattr(client, "_server_info", None) or {}).get("tls_required"):
        return
    events.closed_by_us = True
    await client.close()
    raise TLSFailed(
        f"the server at {settings.redacted_servers()} does not offer TLS, and TLS was asked for",
        hint="use a nats:// URL without TLS options, or enable TLS on the server",
    )


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


def classify_connect_error(
    exc: BaseException, last: BaseException | None, settings: Settings, server_info: dict | None = None
) -> NatsctlError:
    """Turn what nats-py raised (often a bare NoServersError) into the real reason."""
    reason = last if isinstance(exc, nats_errors.NoServersError) and last is not None else exc
    server_info = server_info or {}
    return (
        classify_auth(reason, settings)
        or classify_tls(reason, settings, server_info)
        or classify_reset_after_auth(reason, settings, server_info)
        or classify_network(reason, settings)
    )


def classify_reset_after_auth(reason: BaseException, settings: Settings, server_info: dict) -> NatsctlError | None:
    # A server rejecting CONNECT sends -ERR and closes while our PING is unread, so the kernel may
    # reset the socket and drop the -ERR before nats-py reads it: the same failure, seen as a reset.
    if server_info.get("auth_required") and isinstance(reason, (ConnectionResetError, BrokenPipeError)):
        return classify_auth(nats_errors.AuthorizationError(), settings)
    return None


def classify_auth(reason: BaseException, settings: Settings) -> NatsctlError | None:
    where = settings.redacted_servers()
    lowered = str(reason).lower()
    if isinstance(reason, nats_errors.AuthorizationError) or "authorization violation" in lowered:
        if not has_credentials(settings):
            return AuthFailed(
                f"authentication failed at {where}: the server requires credentials and none were given",
                hint="pass --user/--password, --token, --nkey or --creds, or use a context that has them",
            )
        expired = creds_expiry(settings.creds) if settings.creds else None
        if expired is not None and expired <= time.time():
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expired))
            return AuthFailed(f"authentication failed at {where}: the user JWT in the creds file {settings.creds} expired at {stamp}")
        return AuthFailed(
            f"authentication failed at {where}: the server rejected the credentials",
            hint="check --user/--password, --token, --nkey or --creds",
        )
    if "authentication expired" in lowered:
        return AuthFailed(f"authentication failed at {where}: the user credentials have expired")
    if "authentication revoked" in lowered:
        return AuthFailed(f"authentication failed at {where}: the user credentials were revoked")
    return None


def has_credentials(settings: Settings) -> bool:
    from urllib.parse import urlsplit

    in_urls = any(urlsplit(u).username for u in settings.servers)
    return in_urls or any((settings.user, settings.password, settings.token, settings.creds, settings.nkey))


def creds_expiry(path: str) -> float | None:
    """The ``exp`` claim of the user JWT in a creds file (the JWT body is public, unlike the seed)."""
    import base64
    import json

    try:
        found = _JWT_BLOCK.search(read_secret_file(path, "creds file"))
        body = found.group(1).split(".")[1] if found else ""
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        exp = claims.get("exp")
    except (NatsctlError, ValueError, IndexError, AttributeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) and exp > 0 else None


def classify_tls(reason: BaseException, settings: Settings, server_info: dict) -> NatsctlError | None:
    where = settings.redacted_servers()
    lowered = str(reason).lower()
    if server_info.get("tls_required") and not wants_tls(settings) and isinstance(reason, (ssl.SSLError, OSError)):
        # nats-py tried the system CAs on its own; the user never configured TLS for this server.
        return TLSFailed(f"the server at {where} requires TLS", hint="pass its CA with --tlsca (or a context's ca), or use a tls:// URL")
    if isinstance(reason, ssl.SSLCertVerificationError):
        return classify_verify(reason, where)
    if isinstance(reason, ssl.SSLError):
        return classify_ssl_error(reason, settings, where)
    if server_info.get("tls_verify") and not settings.tls_cert and isinstance(reason, OSError):
        # TLS 1.3: the server checks the client certificate after the handshake and just hangs up.
        return client_cert_required(where)
    if "tls required" in lowered or "secure connection" in lowered:
        return TLSFailed(f"the server at {where} requires TLS", hint="pass its CA with --tlsca, or use a tls:// URL")
    if "tls" in lowered and ("not available" in lowered or "not supported" in lowered):
        return TLSFailed(f"the server at {where} does not offer TLS")
    return None


def classify_verify(reason: ssl.SSLCertVerificationError, where: str) -> TLSFailed:
    detail = reason.verify_message or "certificate verify failed"
    lowered = detail.lower()
    if "hostname" in lowered or "ip address mismatch" in lowered:
        return TLSFailed(
            f"TLS: the server certificate of {where} is not valid for that host name ({detail})",
            hint="connect with a name the certificate lists",
        )
    if "expired" in lowered:
        return TLSFailed(f"TLS: the server certificate of {where} has expired")
    if "not yet valid" in lowered:
        return TLSFailed(f"TLS: the server certificate of {where} is not valid yet")
    return TLSFailed(f"TLS: the server certificate of {where} is not trusted ({detail})", hint="pass its CA with --tlsca")


def client_cert_required(where: str) -> TLSFailed:
    return TLSFailed(f"the server at {where} requires a client certificate", hint="pass --tlscert and --tlskey")


def classify_ssl_error(reason: ssl.SSLError, settings: Settings, where: str) -> TLSFailed:
    code = (reason.reason or "").lower()
    if "certificate_required" in code or ("handshake_failure" in code and not settings.tls_cert):
        return client_cert_required(where)
    if "alert" in code and settings.tls_cert:
        return TLSFailed(f"the server at {where} rejected the client certificate ({code.replace('_', ' ')})")
    if "wrong_version_number" in code or "record_layer_failure" in code:
        hint = "the server does not expect a TLS-first handshake: drop --tlsfirst" if settings.tls_first else None
        return TLSFailed(f"TLS handshake with {where} failed: the server did not answer in TLS", hint=hint)
    return TLSFailed(f"TLS handshake with {where} failed: {(reason.reason or 'ssl error').lower().replace('_', ' ')}")


def classify_network(reason: BaseException, settings: Settings) -> NatsctlError:
    where = settings.redacted_servers()
    text = str(reason)
    if isinstance(reason, ConnectionRefusedError):
        return ConnectionFailed(f"cannot connect to {where}: connection refused", hint="is nats-server running there? check --server / NATS_URL")
    if isinstance(reason, (asyncio.TimeoutError, TimeoutError, nats_errors.TimeoutError)):
        return ConnectionFailed(f"no answer from {where} within {settings.timeout:g}s", hint="check --server / NATS_URL")
    if isinstance(reason, OSError):
        return ConnectionFailed(f"cannot connect to {where}: {(reason.strerror or text).lower()}")
    if isinstance(reason, nats_errors.NoServersError):
        return ConnectionFailed(f"cannot connect to {where}", hint="check --server / NATS_URL")
    # nats-py messages carry no credentials, but keep the URL-bearing ones redacted all the same.
    return ConnectionFailed(f"cannot connect to {where}: {scrub(text, settings) or type(reason).__name__}")


def scrub(text: str, settings: Settings) -> str:
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text


__all__ = [
    "CredentialsFileError",
    "close_quietly",
    "connect_nats",
    "events_of",
    "permission_errors",
    "raise_permission_error",
    "redact_url",
]
