"""Validation of channel, durable and queue names, and stream names derived from channels."""

from __future__ import annotations

import hashlib
import re

from .errors import UsageError

MAX_STREAM_NAME = 255  # nats-server refuses longer stream names (JSMaxNameLen)
_STREAM_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_NAME_UNSAFE = re.compile(r"[\s.*>/\\]")
# An HTTP token (RFC 9110), which is what nats-py accepts as a header name; anything else it refuses
# only when sending, mid-publish.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def validate_channel(channel: str) -> str:
    """A channel is a literal NATS subject: dot-separated non-empty tokens, no wildcards, no spaces."""
    if channel is None or channel == "":
        raise UsageError("the channel name is empty; give a name such as orders or ticket:created")
    if any(ch.isspace() for ch in channel):
        raise UsageError(f"invalid channel name {channel!r}: it contains whitespace")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in channel):
        raise UsageError(f"invalid channel name {channel!r}: it contains control characters")
    tokens = channel.split(".")
    if any(token == "" for token in tokens):
        raise UsageError(f"invalid channel name {channel!r}: empty token (leading, trailing or double dot)")
    if any(token in ("*", ">") for token in tokens) or "*" in channel or ">" in channel:
        raise UsageError(f"invalid channel name {channel!r}: wildcards (* and >) are not allowed in a channel name")
    return channel


def validate_durable(name: str, what: str = "durable") -> str:
    """Durable and queue names become JetStream consumer names: no spaces, dots, wildcards or slashes."""
    if not name:
        raise UsageError(f"the {what} name is empty")
    if _NAME_UNSAFE.search(name) or any(ord(ch) < 32 for ch in name):
        raise UsageError(f"invalid {what} name {name!r}: it may not contain whitespace, '.', '*', '>', '/' or '\\'")
    return name


def validate_header_name(key: str, where: str = "") -> str:
    if not _HEADER_NAME.fullmatch(key):
        raise UsageError(f"{where}invalid header name {key!r}: letters, digits and !#$%&'*+-.^_`|~ only")
    return key


def validate_header_value(key: str, value: str, where: str = "") -> str:
    """A line break in a value would end the header block early: the message would be changed."""
    if "\r" in value or "\n" in value:
        raise UsageError(f"{where}invalid value for header {key!r}: it contains a line break")
    return value


def stream_name_for(channel: str) -> str:
    """The stream natsctl creates for a channel: the channel with unsafe characters replaced.

    ``ticket:created`` -> ``ticket_created``; ``orders.new`` -> ``orders_new``. A short hash keeps
    names distinct when the replacement made two channels alike (``a.b`` and ``a_b``).
    """
    safe = _STREAM_UNSAFE.sub("_", channel)
    name = channel if safe == channel else f"{safe}_{hashlib.sha1(channel.encode()).hexdigest()[:6]}"
    if len(name) > MAX_STREAM_NAME:
        shown = channel if len(channel) <= 40 else channel[:40] + "..."
        raise UsageError(
            f"channel {shown!r} is too long for a stream of its own: its stream name would have {len(name)} "
            f"characters, JetStream allows {MAX_STREAM_NAME}",
            hint=f"use a channel name of at most {MAX_STREAM_NAME - (0 if safe == channel else 7)} characters, "
            "or create a stream that covers this subject yourself",
        )
    return name
