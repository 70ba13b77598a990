"""What went wrong, in plain words: nats-py's connect failures and the server's permission errors.

nats-py often reports a wrong password or an untrusted certificate as a bare ``NoServersError``; the
last real error (kept by the connection's error callback) and the server's INFO say what happened.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import time

from nats import errors as nats_errors

from natsctl.core.errors import AuthFailed, ConnectionFailed, NatsctlError, TLSFailed
from natsctl.core.settings import Settings

from .credentials import creds_expiry, has_credentials
from .tls import wants_tls

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
            return AuthFailed(
                f"authentication failed at {where}: the user JWT in the creds file {settings.creds} expired at {stamp}"
            )
        return AuthFailed(
            f"authentication failed at {where}: the server rejected the credentials",
            hint="check --user/--password, --token, --nkey or --creds",
        )
    if "authentication expired" in lowered:
        return AuthFailed(f"authentication failed at {where}: the user credentials have expired")
    if "authentication revoked" in lowered:
        return AuthFailed(f"authentication failed at {where}: the user credentials were revoked")
    return None


def classify_tls(reason: BaseException, settings: Settings, server_info: dict) -> NatsctlError | None:
    where = settings.redacted_servers()
    lowered = str(reason).lower()
    if server_info.get("tls_required") and not wants_tls(settings) and isinstance(reason, (ssl.SSLError, OSError)):
        # nats-py tried the system CAs on its own; the user never configured TLS for this server.
        return TLSFailed(
            f"the server at {where} requires TLS",
            hint="pass its CA with --tlsca (or a context's ca), or use a tls:// URL",
        )
    if isinstance(reason, ssl.SSLCertVerificationError):
        return classify_verify(reason, where)
    if isinstance(reason, ssl.SSLError):
        return classify_ssl_error(reason, settings, where)
    if server_info.get("tls_verify") and not settings.tls_cert and isinstance(reason, OSError):
        # TLS 1.3: the server checks the client certificate after the handshake and just hangs up.
        return client_cert_required(where)
    if (
        server_info.get("tls_verify")
        and settings.tls_cert
        and isinstance(reason, (ConnectionResetError, BrokenPipeError))
    ):
        # TLS 1.3 again: a server refusing our certificate sends an alert and hangs up, and on a busy
        # machine the reset can reach us before the alert is read.
        return TLSFailed(f"the server at {where} rejected the client certificate (it closed the connection)")
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
    return TLSFailed(
        f"TLS: the server certificate of {where} is not trusted ({detail})", hint="pass its CA with --tlsca"
    )


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
        return ConnectionFailed(
            f"cannot connect to {where}: connection refused",
            hint="is nats-server running there? check --server / NATS_URL",
        )
    if isinstance(reason, (asyncio.TimeoutError, TimeoutError, nats_errors.TimeoutError)):
        return ConnectionFailed(
            f"no answer from {where} within {settings.timeout:g}s", hint="check --server / NATS_URL"
        )
    if isinstance(reason, OSError):
        return ConnectionFailed(f"cannot connect to {where}: {(reason.strerror or text).lower()}")
    if isinstance(reason, nats_errors.NoServersError):
        return ConnectionFailed(f"cannot connect to {where}", hint="check --server / NATS_URL")
    # nats-py messages carry no credentials, but keep the URL-bearing ones redacted all the same.
    return ConnectionFailed(f"cannot connect to {where}: {scrub(text, settings) or type(reason).__name__}")


def wants_server_info(reason: BaseException | None) -> bool:
    """Whether the server's INFO could change the diagnosis of ``reason`` (see classify_tls and
    classify_reset_after_auth): a refused or silent server has none to give."""
    if reason is None or isinstance(reason, (ConnectionRefusedError, asyncio.TimeoutError, TimeoutError)):
        return False
    return isinstance(reason, OSError)


def scrub(text: str, settings: Settings) -> str:
    for secret in settings.secrets():
        text = text.replace(secret, "***")
    return text
