"""Every error string a NATS Streaming server sends, turned into a one-line natsctl error of the right class."""

from __future__ import annotations

from natsctl.core.errors import ConnectionFailed, NatsctlError, NotFound, ServerError, UsageError

ERR_REPLACED = "client has been replaced or is no longer registered"
ERR_INVALID_PUBLISH = "stan: invalid publish request"


def server_error(error: str, *, client_id: str = "", channel: str = "", durable: str = "") -> NatsctlError:
    """Map the server's ``error`` field (ConnectResponse, SubscriptionResponse, CloseResponse, PingResponse)."""
    quoted = f"'{error}'"
    if error == "stan: clientID already registered":
        return UsageError(
            f"client id {client_id!r} is already connected to this NATS Streaming server ({quoted})",
            hint="stop the other client or pass another --client-id",
        )
    if error.startswith("stan: invalid clientID"):
        return UsageError(f"invalid client id {client_id!r}: only letters, digits, '-' and '_' are allowed")
    if error == "stan: invalid subject":
        return UsageError(f"invalid channel name {channel!r}: no wildcards ('*', '>') and no empty tokens")
    if error.startswith("stan: durable name of a durable queue subscriber"):
        return UsageError(f"invalid durable name {durable!r}: a durable queue group's durable name cannot contain ':'")
    if error == "stan: duplicate durable registration":
        return UsageError(
            f"durable {durable!r} of client id {client_id!r} is already active on {channel!r}",
            hint="stop the other subscriber or use another --durable / --client-id",
        )
    if error.startswith("stan: invalid ack wait time"):
        return UsageError("--ack-wait must be at least 1s on NATS Streaming")
    if error.startswith("stan: invalid MaxInflight"):
        return UsageError("--max-in-flight must be at least 1")
    if error == "stan: invalid start position":
        return UsageError("the NATS Streaming server refused the start position")
    if error in ("stan: unknown clientID", ERR_REPLACED) or error.startswith("can't find clientID"):
        return ConnectionFailed(
            f"the NATS Streaming server no longer knows client id {client_id!r} ({quoted})",
            hint="it was dropped after missed heartbeats or replaced by another client with the same id",
        )
    if error == "stan: invalid subscription":
        return NotFound(f"no such subscription on channel {channel!r} ({quoted})")
    if error in ("stan: clientID missing", "stan: invalid subscription request", "stan: invalid connection request"):
        return ServerError(f"the NATS Streaming server rejected natsctl's request ({quoted})")
    if error == ERR_INVALID_PUBLISH:
        return ServerError(f"the NATS Streaming server refused the message ({quoted})")
    return ServerError(f"NATS Streaming server error: {quoted}")
