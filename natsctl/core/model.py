"""Dataclasses shared by every backend; they are also the shape of natsctl's JSON output.

Nothing here imports NATS, Typer or rich: a backend converts its wire objects into these, the CLI
renders them.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class StartKind(str, enum.Enum):
    """Where a subscription starts (the concept map's "start at" row)."""

    NEW = "new"  # only messages published after subscribing
    ALL = "all"  # from the first message still stored
    LAST = "last"  # the last message, then new ones
    SEQUENCE = "sequence"  # from a channel sequence
    TIME = "time"  # from the first message at or after a point in time


@dataclass(frozen=True, slots=True)
class StartPosition:
    kind: StartKind = StartKind.NEW
    sequence: int | None = None  # with SEQUENCE
    time: datetime | None = None  # with TIME (aware, UTC)


@dataclass(slots=True)
class OutgoingMessage:
    """One message to publish. ``source`` names where it came from for error reports (e.g. "line 17")."""

    data: bytes
    headers: dict[str, list[str]] | None = None
    msg_id: str | None = None  # JetStream de-duplication id (Nats-Msg-Id)
    source: str = ""
    subject: str | None = None  # pub --keep-subject: publish to this subject (within the named stream)


@dataclass(frozen=True, slots=True)
class PublishAck:
    """The server's confirmation of one published message."""

    index: int  # position in the input, from 0
    channel: str
    sequence: int  # stream / channel sequence; 0 where the server does not say (NATS Streaming)
    stream: str = ""  # JetStream stream name; "" on NATS Streaming
    duplicate: bool = False


@dataclass(slots=True)
class PublishSummary:
    channel: str
    stream: str
    published: int = 0  # messages sent
    confirmed: int = 0  # messages the server confirmed
    first_sequence: int | None = None
    last_sequence: int | None = None
    duplicates: int = 0
    created: bool = False  # natsctl created the stream/channel for this publish
    failed: list[str] = field(default_factory=list)  # "<source>: <reason>" of unconfirmed messages


@dataclass(slots=True)
class Message:
    """One delivered message, backend-neutral."""

    channel: str
    subject: str
    sequence: int
    time: datetime | None
    data: bytes
    headers: dict[str, list[str]] | None = None
    redelivered: bool = False
    deliveries: int = 1  # JetStream delivery count; NATS Streaming: 2 when redelivered, else 1
    pending: int | None = None  # messages left after this one, where the server says (JetStream)
    ack_token: Any = field(default=None, repr=False, compare=False)  # backend-private: how to ack it


@dataclass(slots=True)
class WireColumns:
    """A batch's messages column by column, spelled as the wire gave them.

    For writers that format a bulk read (JSON envelopes, raw payloads) without building a Message per
    message. Entry i of every list belongs to message i. Offered only for a batch without headers
    whose every field came well formed; the Messages of the same batch say the same thing.
    """

    channel: str
    subjects: list[bytes]
    sequences: list[bytes]  # decimal digits
    stamps: list[bytes]  # nanoseconds since the epoch, decimal digits, at least 10 of them
    deliveries: list[bytes]  # decimal digits, "1" for a first delivery
    payloads: list[bytes]


class WireBatch(Sequence[Message]):
    """A batch of delivered messages that a backend keeps as they came, building each Message only
    when it is asked for (indexing, iterating). Slicing gives a batch of the same kind.

    ``payloads`` is the payload of each message, in order; ``columns()`` the whole batch for bulk
    writers, or None when they must take the Messages instead.
    """

    __slots__ = ()

    payloads: list[bytes]

    @abc.abstractmethod
    def columns(self) -> WireColumns | None: ...


@dataclass(frozen=True, slots=True)
class SubscribeSpec:
    """Everything a backend needs to start a subscription."""

    channel: str
    start: StartPosition = StartPosition()
    durable: str | None = None
    queue: str | None = None
    ack_wait: float = 30.0  # seconds
    max_in_flight: int = 1024
    create: bool = True  # create the channel when missing (NATS Streaming does it implicitly)
    ack: bool = True  # False: nothing is acked (replay of a channel without a durable)
    stop_at_end: bool = False  # stop once the channel is caught up
    to_sequence: int | None = None  # stop after this sequence (replay --to-seq)
    until: datetime | None = None  # stop before the first message after this time (replay --until)
    unsubscribe: bool = False  # on leaving, delete the durable instead of keeping it
    max_messages: int | None = None  # deliver at most this many (sub --count): nothing more is fetched
    exclusive_acks: bool = False  # every message is acked or nacked on its own (sub --exec)
    # Messages this reader takes from the server at once (sub --exec: 1, so that none waits for the
    # handler past the ack wait); None: as many as --max-in-flight allows.
    hold: int | None = None
    # A failing handler (sub --exec): deliveries at most (None: no bound) and the spacing of redeliveries
    # (empty: the durable's or natsctl's default); see core/deadletter.py.
    max_deliver: int | None = None
    backoff: tuple[float, ...] = ()
    whole_stream: bool = False  # ``channel`` names a JetStream stream: read all its subjects (--stream)


@dataclass(frozen=True, slots=True)
class ChannelRef:
    """A channel resolved on the server: the JetStream stream that holds it, or the STAN channel."""

    channel: str
    stream: str = ""
    created: bool = False
    # JetStream: the stream's subjects, where the lookup read them (a stream named, a pattern covered).
    subjects: tuple[str, ...] = ()
    # Named a stream of several subjects: read without a subject filter; publish only with each message's own subject.
    whole_stream: bool = False

    @property
    def filter_subject(self) -> str | None:
        """The subject (or pattern) a reader filters on; None: the whole stream."""
        return None if self.whole_stream else self.channel


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """How natsctl creates a JetStream stream for a channel (an existing stream is used as it is)."""

    replicas: int = 1
    storage: str = "file"  # file | memory
    max_age: float | None = None  # seconds
    max_msgs: int | None = None
    max_bytes: int | None = None
    discard: str = "old"  # old | new
    duplicate_window: float | None = None  # seconds; de-duplication by Nats-Msg-Id
