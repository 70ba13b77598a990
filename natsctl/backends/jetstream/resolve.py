"""What a name on the command line stands for on JetStream: a channel (a subject some stream holds),
a stream (by its name), or a subject family (a wildcard pattern an existing stream covers).

``ticket:updated`` and ``ticket_updated_f9d028`` (the stream natsctl made for it) resolve to the same
channel; ``ORDERS`` (a stream of ``orders.>``) to the whole stream; ``orders.*`` to the part of
``ORDERS`` it matches. A name that is a subject of one stream and the name of another is refused,
naming both. A pattern no stream covers is not found: natsctl never creates a stream for a pattern.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING

from nats.js import api

from natsctl.core.errors import NotFound, UsageError
from natsctl.core.model import ChannelRef, OutgoingMessage, StreamOptions
from natsctl.core.names import validate_channel
from natsctl.core.subjects import describe, has_wildcard, is_subset, validate_pattern

if TYPE_CHECKING:
    from natsctl.backends.jetstream.admin import Admin

# What nats-server refuses in a stream name (whitespace, '.', wildcards, path separators).
_NOT_A_STREAM_NAME = re.compile(r"[\s.*>/\\]|[\x00-\x1f\x7f]")
MISSING_HINT = "check the name ('natsctl channels' lists the channels there)"
PATTERN_HINT = "natsctl never creates a stream for a wildcard: create one that covers it, or name one channel"


def could_be_stream_name(name: str) -> bool:
    return bool(name) and not _NOT_A_STREAM_NAME.search(name)


def stream_ref(info: api.StreamInfo) -> ChannelRef:
    """A stream named on the command line: its one subject is its channel; several make it a whole-stream read."""
    subjects = tuple(info.config.subjects or ())
    name = info.config.name or ""
    if len(subjects) == 1:
        return ChannelRef(channel=subjects[0], stream=name, subjects=subjects)
    return ChannelRef(channel=name, stream=name, subjects=subjects, whole_stream=True)


async def resolve_name(admin: Admin, name: str, *, create: bool, options: StreamOptions) -> ChannelRef:
    """The channel, stream or subject family ``name`` stands for; a channel is created when missing and ``create``."""
    if has_wildcard(name):
        return await resolve_pattern(admin, validate_pattern(name), create=create)
    validate_channel(name)
    if could_be_stream_name(name):
        held_by, named = await asyncio.gather(admin.stream_for_subject(name), admin.stream_named(name))
    else:
        held_by, named = await admin.stream_for_subject(name), None
    if named is not None and held_by is not None and held_by != named.config.name:
        raise UsageError(
            f"{name!r} is ambiguous: it is a subject of stream {held_by!r} and the name of stream "
            f"{named.config.name!r} ({describe(named.config.subjects or [])})",
            hint=f"sub, replay and verify read the stream with --stream {name}; or rename one of them",
        )
    if held_by:
        return ChannelRef(channel=name, stream=held_by)
    if named is not None:
        return stream_ref(named)
    if not create:
        raise NotFound(f"no stream holds channel {name!r}", hint=MISSING_HINT)
    return await admin.create_stream(name, options)


async def resolve_stream(admin: Admin, name: str) -> ChannelRef:
    """``--stream NAME``: the stream of that name, whole."""
    named = await admin.stream_named(name) if could_be_stream_name(name) else None
    if named is None:
        if not could_be_stream_name(name):
            raise UsageError(f"{name!r} cannot be a stream name (no '.', '*', '>', '/', '\\' or whitespace)")
        raise NotFound(f"no stream named {name!r}", hint=MISSING_HINT)
    ref = stream_ref(named)
    return ChannelRef(channel=ref.channel, stream=ref.stream, subjects=ref.subjects, whole_stream=True)


async def resolve_pattern(admin: Admin, pattern: str, *, create: bool) -> ChannelRef:
    """The one stream whose subjects cover every subject ``pattern`` matches."""
    overlapping = await admin.streams_overlapping(pattern)
    for info in overlapping:
        subjects = tuple(info.config.subjects or ())
        if any(is_subset(pattern, subject) for subject in subjects):
            return ChannelRef(channel=pattern, stream=info.config.name or "", subjects=subjects)
    if overlapping:
        parts = "; ".join(f"{i.config.name} holds {describe(i.config.subjects or [])}" for i in overlapping)
        raise NotFound(f"no one stream covers {pattern!r} ({parts})", hint="read a narrower pattern or --stream NAME")
    raise NotFound(f"no stream covers {pattern!r}", hint=PATTERN_HINT if create else MISSING_HINT)


def parse_stream_list(body: bytes) -> list[api.StreamInfo]:
    """A ``STREAM.LIST`` answer; an API error comes back as nats-py's own error."""
    from nats.js import errors as js_errors

    data = json.loads(body)
    if "error" in data:
        raise js_errors.APIError.from_error(data["error"])
    return [api.StreamInfo.from_response(s) for s in data.get("streams") or [] if isinstance(s, dict)]


def publishable(ref: ChannelRef) -> bool:
    """Whether messages without a subject of their own can go to ``ref``: one literal subject."""
    return not ref.whole_stream and not has_wildcard(ref.channel)


def subject_for(ref: ChannelRef, message: OutgoingMessage) -> str:
    """Where ``message`` is published: its own subject (pub --keep-subject), within ``ref``; else the channel."""
    where = f"{message.source}: " if message.source else ""
    subject = message.subject
    if subject is None:
        if publishable(ref):
            return ref.channel
        raise UsageError(
            f"{where}{_shown(ref)} is not one subject: publish to one of its subjects "
            f"({describe(ref.subjects)}), or import envelopes with --keep-subject"
        )
    inside = any(is_subset(subject, s) for s in ref.subjects) if ref.whole_stream else is_subset(subject, ref.channel)
    if not inside:
        raise UsageError(f"{where}subject {subject!r} is not in {_shown(ref)}; publish it to its own stream")
    return subject


def _shown(ref: ChannelRef) -> str:
    if ref.whole_stream:
        return f"stream {ref.stream!r} ({describe(ref.subjects)})"
    return f"{ref.channel!r} (stream {ref.stream!r})"
