"""Typed errors and the exit codes they map to.

Every failure natsctl reports goes through one of these classes. The CLI layer turns an instance into a
single line on stderr and exits with ``error.exit_code``; nothing else decides exit statuses. Messages
must say what is wrong and what to do, in one line, and never contain a secret.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import PublishSummary


class ExitCode(enum.IntEnum):
    """Documented exit statuses (README "Exit codes" lists the same table)."""

    OK = 0
    ERROR = 1  # unexpected failure, or a command that ran and failed (e.g. --exec target missing)
    USAGE = 2  # bad flags, arguments or input data
    CONNECTION = 3  # server or monitoring endpoint unreachable, connection lost
    AUTH = 4  # authentication failed (bad user/password/token/nkey/creds)
    PERMISSION = 5  # authorization violation: not permitted to publish/subscribe there
    TLS = 6  # TLS required / handshake / certificate problems
    NOT_FOUND = 7  # channel, stream, consumer or endpoint does not exist
    SERVER = 8  # the server refused the request (JetStream off, payload too large, ...)
    TIMEOUT = 9  # no answer within --timeout
    UNCONFIRMED = 10  # some published messages were not confirmed by the server
    UNHEALTHY = 11  # `natsctl health` found the server unhealthy
    MISMATCH = 12  # `natsctl verify`: a recorded message is missing, changed, duplicated or out of order
    LAGGING = 13  # `natsctl subs` / `channel` --fail-on-*: a subscription lags, holds unacked messages or stalls
    INVALID = 14  # an event breaks its contract where reading stops on it (sub --on-invalid stop, audit order input)
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


class NatsctlError(Exception):
    """Base of every error natsctl reports on purpose."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def line(self) -> str:
        """The one line shown to the user."""
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(NatsctlError):
    exit_code = ExitCode.USAGE


class ConnectionFailed(NatsctlError):
    exit_code = ExitCode.CONNECTION


class AuthFailed(NatsctlError):
    exit_code = ExitCode.AUTH


class PermissionDenied(NatsctlError):
    exit_code = ExitCode.PERMISSION


class TLSFailed(NatsctlError):
    exit_code = ExitCode.TLS


class NotFound(NatsctlError):
    exit_code = ExitCode.NOT_FOUND


class ServerError(NatsctlError):
    exit_code = ExitCode.SERVER


class Timeout(NatsctlError):
    exit_code = ExitCode.TIMEOUT


class Unconfirmed(NatsctlError):
    exit_code = ExitCode.UNCONFIRMED


class Unhealthy(NatsctlError):
    exit_code = ExitCode.UNHEALTHY


class Mismatch(NatsctlError):
    """`natsctl verify` found the channel does not hold what the publish record says."""

    exit_code = ExitCode.MISMATCH


class Lagging(NatsctlError):
    """A lag gate (`subs --fail-on-lag/--fail-on-unacked/--fail-on-stalled`) failed."""

    exit_code = ExitCode.LAGGING


class Invalid(NatsctlError):
    """An event on the bus breaks its channel's contract (or cannot be read as the audit needs)."""

    exit_code = ExitCode.INVALID


class Unsupported(NatsctlError):
    """A feature that exists on one server kind only (e.g. headers on NATS Streaming)."""

    exit_code = ExitCode.USAGE


class PublishInterrupted(Exception):
    """A publish that ``cause`` stopped after the server had confirmed ``summary``.

    Not an error of its own: the CLI reports the summary (what is stored), then handles ``cause`` as
    it would have without a publish in progress (its message and exit code).
    """

    def __init__(self, cause: BaseException, summary: PublishSummary) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.summary = summary
