"""The messaging interface every backend (JetStream, NATS Streaming) implements.

The CLI only talks to these two abstract classes; it never imports a backend module. A backend must
map its server's failures onto :mod:`natsctl.core.errors` and its wire objects onto
:mod:`natsctl.core.model`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, ClassVar

from .errors import Unsupported
from .model import (
    ChannelRef,
    Message,
    OutgoingMessage,
    PublishAck,
    PublishSummary,
    StreamOptions,
    SubscribeSpec,
)

Messages = Iterable[OutgoingMessage] | AsyncIterable[OutgoingMessage]
if TYPE_CHECKING:
    from .deadletter import Redelivery
    from .manage import ChannelAdmin  # imported where a command manages channels (its dataclasses cost start-up)

AckCallback = Callable[[PublishAck], None]
ErrorCallback = Callable[[int, OutgoingMessage, str], None]  # (index, message, reason)


class RenderedBatch(list):
    """Messages a subscription wrote out itself as natsctl's JSON envelopes (``Subscription.rendered_batches``).

    ``data`` holds one line per message, byte for byte ``core.envelope.message_to_json`` and a newline;
    the list holds, in the same order, what ``Subscription.ack_rendered`` takes to ack each message.
    """

    __slots__ = ("data",)

    def __init__(self, tokens: Iterable[object], data: bytes) -> None:
        super().__init__(tokens)
        self.data = data

    def sizes(self) -> list[int]:
        """Each message's size in ``data`` (an envelope is one line: JSON escapes every newline)."""
        return [len(line) + 1 for line in self.data.split(b"\n")[:-1]]


class Subscription(abc.ABC):
    """A running subscription. Iterate it for batches of messages; ack each batch once written out."""

    spec: SubscribeSpec

    @abc.abstractmethod
    def batches(self) -> AsyncIterator[list[Message]]:
        """Yield batches of messages in delivery order until the subscription ends.

        It ends when ``spec.stop_at_end`` is set and the channel is caught up, past ``spec.to_sequence``
        or ``spec.until``, or when :meth:`stop` is called. A lost connection raises a NatsctlError.
        """

    @abc.abstractmethod
    async def ack(self, messages: list[Message]) -> None:
        """Acknowledge messages that were written out (or processed). A no-op when ``spec.ack`` is off."""

    def rendered_batches(self) -> AsyncIterator[RenderedBatch] | None:
        """The batches as JSON envelope lines, where the subscription writes them faster than a Message
        each; None where it does not (then ``batches``). Acked with ``ack_rendered``, not ``ack``."""
        return None

    async def ack_rendered(self, tokens: list) -> None:
        """``ack`` for messages of rendered batches, given their tokens."""
        raise Unsupported("this subscription renders no batches")

    # The redelivery policy in force once started (a durable's own when it has one); None: the spec's.
    redelivery: Redelivery | None = None

    @abc.abstractmethod
    async def nak(self, message: Message, delay: float | None = None) -> None:
        """Ask for ``message`` again (after ``delay`` seconds where the server can wait: JetStream).

        Where the server has no negative ack it comes back after the ack wait.
        """

    async def terminate(self, message: Message, reason: str = "") -> None:
        """Never deliver ``message`` again (it was parked). JetStream: ``+TERM``; elsewhere an ack."""
        await self.ack([message])

    async def in_progress(self, message: Message) -> None:
        """Tell the server ``message`` is still being worked on, so its ack wait starts again.

        Only JetStream has this (``+WPI``); elsewhere it does nothing and a message still unacked
        after the ack wait is delivered again.
        """
        return None

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop delivering: ``batches()`` finishes after the batch in hand. Safe from a signal handler."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the subscription: keep a durable, unless ``spec.unsubscribe`` asks to delete it."""


class Backend(abc.ABC):
    """A connected server of one kind."""

    kind: ClassVar[str]  # "jetstream" | "stan"
    supports_headers: ClassVar[bool]
    # How a missing channel is created (JetStream streams); a backend without the notion ignores it.
    stream_options: StreamOptions = StreamOptions()

    @abc.abstractmethod
    async def resolve_channel(self, channel: str, *, create: bool) -> ChannelRef:
        """Find the stream/channel for ``channel``; create it when missing and ``create`` is set."""

    @abc.abstractmethod
    async def publish(
        self,
        channel: str,
        messages: Messages,
        *,
        create: bool = True,
        on_ack: AckCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> PublishSummary:
        """Publish every message, pipelined, and wait for each confirmation.

        ``on_ack`` is called once per confirmed message, in input order. A message that is refused or
        not confirmed is reported to ``on_error`` and counted in the summary; publishing goes on unless
        the connection is lost.
        """

    @abc.abstractmethod
    async def subscribe(self, spec: SubscribeSpec) -> Subscription:
        """Start a subscription (validating the spec against the server first)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and close the connection."""

    # -- stored messages (dead letters); JetStream only, NATS Streaming cannot address one message --

    async def stored_message(self, channel: str, sequence: int) -> Message:
        """The message stored at ``sequence`` of ``channel`` (NotFound when there is none)."""
        raise Unsupported("reading one stored message by sequence exists on JetStream only, not on NATS Streaming")

    async def delete_stored(self, channel: str, sequence: int) -> None:
        """Remove the message at ``sequence`` from ``channel`` (NotFound when there is none)."""
        raise Unsupported("deleting a stored message exists on JetStream only, not on NATS Streaming")

    def manager(self) -> ChannelAdmin:
        """Channel and durable management (``natsctl channel ...``, ``natsctl durable ...``)."""
        raise Unsupported(f"managing channels is not available on {self.kind}")

    async def __aenter__(self) -> Backend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def each_message(messages: Messages) -> AsyncIterator[OutgoingMessage]:
    """Iterate plain or async message sources alike (files are plain, pipes are async)."""
    if isinstance(messages, AsyncIterable):
        async for message in messages:
            yield message
    else:
        for message in messages:
            yield message
