"""What `sub`, `replay`, `verify` and `pub --keep-subject` read or write: one channel, a subject family
(``orders.*``, ``orders.>``) or a whole stream (``--stream NAME``), checked before connecting.

Wildcards and whole streams exist on JetStream only; on NATS Streaming (known from the settings
already resolved) they are a one-line refusal saying why.
"""

from __future__ import annotations

from typing import Annotated

import typer

from natsctl.core.errors import Unsupported, UsageError

STREAM_HELP = "Read this whole JetStream stream (all its subjects) instead of a CHANNEL"

StreamOpt = Annotated[str | None, typer.Option("--stream", metavar="NAME", help=STREAM_HELP, show_default=False)]


def server_kind() -> str:
    """The server kind the command's settings point at ("jetstream" or "stan")."""
    from natsctl.cli.settings import last_resolution

    resolution = last_resolution()
    return resolution.settings.backend_kind if resolution is not None else "jetstream"


def read_target(channel: str | None, stream: str | None) -> tuple[str, bool]:
    """(name, whole stream) for a reader given CHANNEL and/or --stream NAME; usage errors before connecting."""
    from natsctl.core.names import validate_channel
    from natsctl.core.subjects import has_wildcard, validate_pattern

    if channel is not None and stream is not None:
        raise UsageError(f"give CHANNEL or --stream NAME, not both ({channel!r} and --stream {stream})")
    if stream is not None:
        if server_kind() == "stan":
            raise Unsupported(
                "--stream reads a JetStream stream of several subjects; NATS Streaming has none "
                "(a channel is one subject, without wildcards): name the channel"
            )
        if not stream:
            raise UsageError("--stream needs a stream name")
        return stream, True
    if channel is None:
        raise UsageError("give a CHANNEL to read, or --stream NAME")
    if has_wildcard(channel):
        if server_kind() == "stan":
            raise Unsupported(
                f"{channel!r} is a wildcard: NATS Streaming has no wildcards (a channel is one literal subject); "
                "name one channel"
            )
        return validate_pattern(channel), False
    return validate_channel(channel), False


def publish_target(channel: str, keep_subject: bool, envelope: bool) -> None:
    """`pub`: a channel; with --keep-subject also a stream name or a pattern that each envelope's subject is in."""
    from natsctl.core.names import validate_channel
    from natsctl.core.subjects import has_wildcard, validate_pattern

    if not keep_subject:
        validate_channel(channel)
        return
    if not envelope:
        raise UsageError("--keep-subject keeps each envelope's subject: it goes with --envelope")
    if server_kind() == "stan":
        raise Unsupported(
            "--keep-subject publishes each envelope to its own subject within a JetStream stream; "
            "NATS Streaming has one subject per channel: publish to the channel without it"
        )
    if has_wildcard(channel):
        validate_pattern(channel)
    else:
        validate_channel(channel)
