"""TLS for nats-py connections: whether the user asked for it, and the SSL context from the settings."""

from __future__ import annotations

import logging
import ssl

from natsctl.core.errors import TLSFailed, UsageError
from natsctl.core.settings import Settings


class _QuietSSLTransport(logging.Filter):
    """asyncio logs "returning true from eof_received() has no effect when using ssl" for every TLS
    connection nats-py closes; it is noise on a CLI's stderr."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "eof_received()" not in record.getMessage()


logging.getLogger("asyncio").addFilter(_QuietSSLTransport())


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
