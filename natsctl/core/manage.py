"""Managing channels and durables: the backend-neutral interface and the shape of its ``--json`` output.

``natsctl channel add|info|edit|purge|rm|get|rm-msg`` and ``natsctl durable ls|info|rm|reset|pause|resume``
talk to a :class:`ChannelAdmin` that a backend hands out (``Backend.admin()``). What a server kind cannot
do is an ``Unsupported`` error of one line naming what does it instead (NATS Streaming's server
settings, or the nats-server version that has the API).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .model import Message, StartPosition, StreamOptions

# nats-server releases that added an API natsctl uses (said in the refusal on older servers)
PAUSE_SINCE = (2, 11, 0)  # $JS.API.CONSUMER.PAUSE
RESET_SINCE = (2, 14, 0)  # $JS.API.CONSUMER.RESET


def version_text(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


@dataclass(slots=True)
class Durable:
    """A JetStream consumer or a NATS Streaming durable subscription (``durable ls`` / ``durable info``)."""

    channel: str
    stream: str
    name: str  # the durable name (what `sub --durable` takes)
    queue: str = ""  # the queue group, for a durable queue group
    consumer: str = ""  # the JetStream consumer name (durable_queue for a durable queue group)
    client_id: str = ""  # NATS Streaming: the client id that owns a plain durable
    online: bool | None = None  # NATS Streaming: its client holds it now
    start: str = ""  # deliver policy it was made with (JetStream)
    delivered_seq: int | None = None  # last channel sequence delivered
    ack_floor_seq: int | None = None  # every sequence up to here is acknowledged
    pending: int | None = None  # messages not delivered yet
    unacked: int | None = None  # delivered, not acknowledged
    redelivered: int | None = None
    waiting: int | None = None  # pull requests waiting (JetStream)
    paused: bool = False
    pause_until: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the server's consumer configuration (JetStream)


@dataclass(slots=True)
class ChannelDetails:
    """One channel with its full configuration and state (``channel info``, ``channel add``)."""

    channel: str
    stream: str  # the JetStream stream that holds it; "" on NATS Streaming
    kind: str  # "stream" (JetStream) or "channel" (NATS Streaming)
    subjects: list[str] = field(default_factory=list)
    messages: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0
    first_time: str | None = None
    last_time: str | None = None
    consumers: int = 0
    created: bool = False  # `channel add` made it now
    config: dict[str, Any] = field(default_factory=dict)  # the server's stream configuration, as it reports it
    state: dict[str, Any] = field(default_factory=dict)  # the server's stream state, as it reports it
    durables: list[Durable] = field(default_factory=list)  # its consumers (`channel info`)


@dataclass(slots=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(slots=True)
class EditResult:
    channel: str
    stream: str
    changes: list[Change] = field(default_factory=list)
    applied: bool = False  # False: --dry-run, or nothing to change


@dataclass(slots=True)
class PurgeResult:
    channel: str
    stream: str
    purged: int  # messages removed
    messages: int  # left in the stream
    first_seq: int
    last_seq: int


@dataclass(slots=True)
class Removed:
    """What ``rm`` / ``rm-msg`` / ``durable rm`` removed."""

    channel: str
    stream: str
    what: str  # "channel", "message" or "durable"
    name: str = ""  # the durable (consumer) name
    sequence: int | None = None  # the message removed


@dataclass(slots=True)
class ResetResult:
    durable: Durable
    sequence: int  # the next message delivered is the first at or after this channel sequence
    how: str  # "reset" (the server's consumer reset API) or "recreated" (deleted and made again)


@dataclass(frozen=True, slots=True)
class DurableRef:
    """How the user names a durable: its channel, the durable name and, for a durable queue group, the group."""

    channel: str
    name: str
    queue: str | None = None


class ChannelAdmin(abc.ABC):
    """Channel and durable management on one connected server."""

    # -- channels ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def add_channel(self, channel: str, options: StreamOptions) -> ChannelDetails:
        """Create the channel (an existing one is left as it is: ``created`` says which)."""

    @abc.abstractmethod
    async def channel_details(self, channel: str) -> ChannelDetails:
        """Its configuration and state; NotFound when missing."""

    @abc.abstractmethod
    async def edit_channel(self, channel: str, changes: dict[str, Any], *, apply: bool) -> EditResult:
        """Compare ``changes`` (StreamOptions field -> value) with the channel's limits; apply them if asked."""

    @abc.abstractmethod
    async def purge_channel(
        self, channel: str, *, below: int | None = None, keep: int | None = None, subject: str | None = None
    ) -> PurgeResult:
        """Remove every message, those below sequence ``below``, all but the last ``keep``, or only ``subject``'s."""

    @abc.abstractmethod
    async def remove_channel(self, channel: str) -> Removed:
        """Delete the channel and everything in it."""

    @abc.abstractmethod
    async def get_message(self, channel: str, *, sequence: int | None = None, last_for: str | None = None) -> Message:
        """One stored message, by sequence or the last of a subject; NotFound when there is none."""

    @abc.abstractmethod
    async def remove_message(self, channel: str, sequence: int) -> Removed:
        """Delete one stored message."""

    # -- durables ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def durables(self, channel: str | None) -> list[Durable]:
        """The durables of ``channel``, or of every channel."""

    @abc.abstractmethod
    async def durable(self, ref: DurableRef) -> Durable:
        """One durable; NotFound when missing."""

    @abc.abstractmethod
    async def remove_durable(self, ref: DurableRef) -> Removed:
        """Delete it without consuming from it."""

    @abc.abstractmethod
    async def reset_durable(self, ref: DurableRef, start: StartPosition) -> ResetResult:
        """Move it so that the next message delivered is the first at ``start``."""

    @abc.abstractmethod
    async def pause_durable(self, ref: DurableRef, until: datetime | None) -> Durable:
        """Stop deliveries until ``until``; None resumes at once."""
