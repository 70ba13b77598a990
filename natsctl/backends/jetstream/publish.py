"""The JetStream publish pipeline.

Raw publishes whose reply subjects are ``<inbox>.<index>`` on one wildcard subscription, a bounded window
of acks in flight refilled in halves, acks parsed without per-message futures, and every message
reported to the caller in input order once it is settled (confirmed, or failed with a reason).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from nats import errors as nats_errors

from natsctl.backends.jetstream.resolve import publishable, subject_for
from natsctl.core.backend import AckCallback, ErrorCallback, Messages, each_message
from natsctl.core.errors import ConnectionFailed, PublishInterrupted
from natsctl.core.model import ChannelRef, OutgoingMessage, PublishAck, PublishSummary
from natsctl.transport.connect import ConnectionEvents, events_of, raise_permission_error
from natsctl.transport.fast import route_raw, send_raw, spare_the_collector, unroute, wake_flusher
from natsctl.transport.frames import header_block, hpub_line, pub_line

if TYPE_CHECKING:
    from natsctl.backends.jetstream.backend import JetStreamBackend

PUBLISH_WINDOW = 8192  # acks in flight; refilled when half of them came back
READ_AHEAD = 1024  # messages read ahead of the publisher from an async input (a pipe)
SEND_BATCH = 128  # plain PUB frames queued per write (sooner when the input waits or the window is full)


class Settled(NamedTuple):
    """A message the server confirmed (``seq``) or that failed (``error``), waiting for its turn to be reported."""

    message: OutgoingMessage
    seq: int | None
    error: str | None
    duplicate: bool = False


@dataclass
class Window:
    """The messages sent and not settled yet (by input index), and the sender waiting for room among them."""

    outstanding: dict[int, OutgoingMessage] = field(default_factory=dict)
    settled: int = 0  # acks (or failures) so far: the no-progress timeout compares it
    wake_below: int = 0  # the waiting sender is woken once fewer than this are outstanding
    progress: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Halt:
    """Why publishing stopped early, and where the input stood then."""

    reason: str = ""  # connection lost, no stream, no confirmation, a confirmation could not be reported
    event: asyncio.Event = field(default_factory=asyncio.Event)  # set with ``reason``: stop waiting for a slow input
    input_cut: bool = False  # stopped while the input had not ended
    last_source: str = ""  # the last message read from an async input ("line 17"), to say where it stopped
    callback_error: Exception | None = None  # raised by on_ack / on_error, re-raised by run()

    def stop(self, reason: str) -> None:
        """Stop for ``reason``, unless publishing stopped already (the first reason stands)."""
        self.reason = self.reason or reason
        self.event.set()


@dataclass
class Reporting:
    """Settled messages reported to the caller in input order (acks can overtake each other after a reconnect)."""

    on_ack: AckCallback | None
    on_error: ErrorCallback | None
    waiting: dict[int, Settled] = field(default_factory=dict)  # settled out of turn
    next_index: int = 0  # the next message to report


class PublishPipeline:
    """Publishes messages with a bounded window of acks in flight and reports each confirmation in order.

    The hot path costs a few microseconds a message: a raw publish whose reply subject carries the
    message's index, one wildcard subscription for every ack, the sequence read from the ack's bytes
    (JSON is parsed only for errors and duplicates), no future or timer per message.
    """

    def __init__(
        self, backend: JetStreamBackend, ref: ChannelRef, on_ack: AckCallback | None, on_error: ErrorCallback | None
    ) -> None:
        self.backend = backend
        self.nc = backend.nc
        self.ref = ref
        self.summary = PublishSummary(channel=ref.channel, stream=ref.stream, created=ref.created)
        self.window = Window()
        self.reports = Reporting(on_ack, on_error)
        self.halt = Halt()
        self.prefix_len = 0  # the length of "<inbox>.", before an ack's index
        self.frames: list[bytes] = []  # plain PUB frames built and not yet queued on the connection

    # -- the run ----------------------------------------------------------------------------------

    async def run(self, messages: Messages) -> PublishSummary:
        """Publish every message; an error met on the way comes out as ``PublishInterrupted`` with the summary."""
        spare_the_collector()
        inbox = self.nc.new_inbox()
        self.prefix_len = len(inbox) + 1
        sub = await self.nc.subscribe(inbox + ".*")
        route_raw(self.nc, sub, self._on_reply)
        events = events_of(self.nc)
        if events is not None:
            events.on_lost.append(self._on_lost)
        if isinstance(messages, AsyncIterable):
            messages = self._read_ahead(messages)
        try:
            await self._send_and_confirm(messages, inbox + ".")
        except Exception as exc:
            raise PublishInterrupted(exc, self.summary) from exc
        finally:
            await self._leave(sub, events)
        self._note_unread_input()
        error = self.halt.callback_error
        if error is not None:
            raise PublishInterrupted(error, self.summary) from error
        return self.summary

    async def _send_and_confirm(self, messages: Messages, reply_prefix: str) -> None:
        try:
            await self._send_all(messages, reply_prefix)
        except Exception:
            # Bad input, a lost connection or anything else mid-way: what was sent still gets
            # confirmed and reported first, so the caller can say what is stored before the error.
            await self._wait_until_below(1)
            raise
        await self._wait_until_below(1)

    async def _leave(self, sub: Any, events: ConnectionEvents | None) -> None:
        if events is not None:
            events.on_lost.remove(self._on_lost)
        await self._fail_outstanding("no confirmation from the server")
        unroute(self.nc, sub)
        try:
            await sub.unsubscribe()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            pass

    def _note_unread_input(self) -> None:
        halt = self.halt
        if halt.input_cut:
            after = f"after {halt.last_source}" if halt.last_source else "from the start"
            self.summary.failed.append(f"the input {after}: not read, publishing stopped ({halt.reason})")

    # -- the input --------------------------------------------------------------------------------

    async def _read_ahead(self, messages: AsyncIterable[OutgoingMessage]) -> AsyncIterator[OutgoingMessage]:
        """Messages from an async input, read by a task so that a halted publish stops waiting for
        input that may never come (``tail -f | natsctl pub --lines`` after the server went away).

        The task fills a bounded deque: a message costs an append and a popleft, not a queue round trip.
        """
        ahead, halt = ReadAhead(), self.halt
        buffer, ready, room = ahead.buffer, ahead.ready, ahead.room
        reader, halted = asyncio.ensure_future(ahead.pump(messages)), asyncio.ensure_future(halt.event.wait())
        try:
            while True:
                if not buffer:
                    if self.frames:
                        await self._queue_frames()  # what is built goes out now, not when the next batch is full
                    if self.window.outstanding and self.nc.is_connected:
                        await wake_flusher(self.nc)  # an input that pauses: what is queued goes out meanwhile
                    if not await _input_ready(ready, halted):
                        halt.input_cut = True
                        return
                item = buffer.popleft()
                if len(buffer) < READ_AHEAD // 2:
                    room.set()
                if item is _END:
                    return
                if isinstance(item, Exception):
                    raise item
                halt.last_source = item.source
                yield item
        finally:
            reader.cancel()
            halted.cancel()

    # -- sending ----------------------------------------------------------------------------------

    async def _send_all(self, messages: Messages, reply_prefix: str) -> None:
        nc = self.nc
        channel = self.ref.channel.encode()
        each_named = not publishable(self.ref)  # a stream or pattern: every message names its subject
        reply = reply_prefix.encode()
        max_payload = nc.max_payload
        outstanding = self.window.outstanding
        summary = self.summary
        halt = self.halt
        frames = self.frames
        index = 0
        # An async input is read ahead by _read_ahead already: taken as it is, without another layer.
        source = messages if isinstance(messages, AsyncIterable) else each_message(messages)
        async for message in source:
            if halt.reason:
                # Stop at the first unconfirmed message (what is stored stays a prefix of the input),
                # and say so even when everything sent before was confirmed.
                self._refuse(index, message, f"not sent: publishing stopped ({halt.reason})")
                return
            subject = channel
            if message.subject is not None or each_named:
                # pub --keep-subject: its own subject, checked to be in the channel or stream named
                subject = subject_for(self.ref, message).encode()
            data = message.data
            if message.headers or message.msg_id or len(data) > max_payload or not nc.is_connected:
                await self._queue_frames()  # in order, before this one
                await self._send(index, message, reply_prefix)  # nats-py's publish checks every case
            else:
                if len(outstanding) >= PUBLISH_WINDOW:
                    await self._queue_frames()
                    await self._wait_until_below(PUBLISH_WINDOW // 2)
                outstanding[index] = message
                summary.published += 1
                frames.append(pub_line(subject, reply + b"%d" % index, data))
                if len(frames) >= SEND_BATCH:
                    await self._queue_frames()
            index += 1
        await self._queue_frames()

    async def _queue_frames(self) -> None:
        """Queue the PUB frames built so far on the connection, as one command."""
        frames = self.frames
        if frames:
            commands = b"".join(frames)
            frames.clear()
            await send_raw(self.nc, commands)

    async def _send(self, index: int, message: OutgoingMessage, reply_prefix: str) -> None:
        """The general path: headers, message ids, payloads over the limit, a connection not up.

        Headers go out as an HPUB built here (one line per value: repeated keys keep every value).
        The server's max_payload covers headers and payload together: a message over it is refused
        here, alone; sent, the server would close the connection and every message in flight with it.
        """
        nc = self.nc
        # A message may carry its header block ready-made (natsctl migrate: the same headers every time).
        block = getattr(message, "block", None) or header_block(message.headers, message.msg_id)
        if len(block) + len(message.data) > nc.max_payload:
            self._refuse(index, message, _over_max_payload(len(block), len(message.data), nc.max_payload))
            return
        if len(self.window.outstanding) >= PUBLISH_WINDOW:
            await self._wait_until_below(PUBLISH_WINDOW // 2)
        if block and not nc.is_connected and not nc.is_closed:
            # Reconnecting: what is buffered now is dropped once the loss is reported; stop here.
            self.halt.stop("connection lost")
            self._refuse(index, message, f"not sent: publishing stopped ({self.halt.reason})")
            return
        self.window.outstanding[index] = message
        self.summary.published += 1
        try:
            await self._publish(index, message, block, reply_prefix)
        except Exception as exc:  # noqa: BLE001
            self._publish_failed(index, exc)

    async def _publish(self, index: int, message: OutgoingMessage, block: bytes, reply_prefix: str) -> None:
        nc = self.nc
        if not block:
            await nc.publish(message.subject or self.ref.channel, message.data, reply=reply_prefix + str(index))
        elif nc.is_closed:
            raise nats_errors.ConnectionClosedError
        else:
            reply = (reply_prefix + str(index)).encode()
            await send_raw(nc, hpub_line((message.subject or self.ref.channel).encode(), reply, block, message.data))

    def _publish_failed(self, index: int, exc: Exception) -> None:
        if isinstance(exc, nats_errors.MaxPayloadError):
            self._settle(index, None, f"message is over the server's max_payload of {self.nc.max_payload} bytes")
            return
        if isinstance(exc, (nats_errors.ConnectionClosedError, nats_errors.OutboundBufferLimitError)):
            self._settle(index, None, f"not sent: {exc}")
            raise ConnectionFailed(
                f"connection to {self.backend.settings.redacted_servers()} lost while publishing"
            ) from None
        raise exc

    def _refuse(self, index: int, message: OutgoingMessage, error: str) -> None:
        """A message failed before it was sent: reported in its turn, not counted as published."""
        self.reports.waiting[index] = Settled(message, None, error)
        self._flush_reports()

    # -- waiting for room -------------------------------------------------------------------------

    async def _wait_until_below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` messages are outstanding, or give them up.

        Given up: when the connection closes, or when no ack came for --timeout (then publishing stops).
        """
        window = self.window
        await self._queue_frames()
        if len(window.outstanding) >= limit and self.nc.is_connected:
            await wake_flusher(self.nc)  # what was queued raw goes out now
        timeout = self.backend.settings.timeout
        step = min(timeout, 1.0)
        waited = 0.0
        seen = window.settled
        while len(window.outstanding) >= limit:
            if self.nc.is_closed:
                await self._fail_outstanding("connection closed before the server confirmed it")
                return
            if await self._progress_within(step, limit):
                continue
            waited = waited + step if window.settled == seen else 0.0
            seen = window.settled
            if waited >= timeout:
                raise_permission_error(self.nc)
                self.halt.stop("no confirmation")
                await self._fail_outstanding(f"no confirmation from the server within {timeout:g}s")
                return

    async def _progress_within(self, seconds: float, limit: int) -> bool:
        """True when an ack brought the outstanding messages under ``limit`` within ``seconds``."""
        window = self.window
        window.progress.clear()
        window.wake_below = limit
        try:
            await asyncio.wait_for(window.progress.wait(), timeout=seconds)
            return True
        except TimeoutError:
            return False
        finally:
            window.wake_below = 0

    # -- replies ----------------------------------------------------------------------------------

    def _on_reply(self, subject: bytes, _reply: bytes, data: bytes, headers: dict[str, list[str]] | None) -> None:
        try:
            index = int(subject[self.prefix_len :])
        except ValueError:
            return
        window = self.window
        message = window.outstanding.pop(index, None)
        if message is None:
            return  # a late ack for something already given up on
        seq = None if headers else _plain_ack_sequence(data)
        if seq is None:
            window.outstanding[index] = message
            self._on_unusual_reply(index, data, headers)
            return
        window.settled += 1
        reports = self.reports
        if index == reports.next_index and not reports.waiting:
            reports.next_index += 1
            self._confirmed(index, message, seq, False)
        else:
            reports.waiting[index] = Settled(message, seq, None)
            self._flush_reports()
        if len(window.outstanding) < window.wake_below:
            window.progress.set()

    def _on_unusual_reply(self, index: int, data: bytes, headers: dict[str, list[str]] | None) -> None:
        """A reply that is not a plain ack: an error, a duplicate, a 503 status, something unreadable."""
        if not data and headers and headers.get("Status") == ["503"]:
            # Nothing stored: the stream was deleted or (on a cluster) is electing a leader. Stop here.
            self.halt.stop("no stream")
            self._settle(
                index,
                None,
                f"no stream answered for channel {self.ref.channel!r} (deleted, or a cluster electing its leader)",
            )
        elif b'"error"' in data:
            self._settle(index, None, _api_error_text(data))
        else:
            try:
                ack = json.loads(data)
                self._settle(index, int(ack["seq"]), None, bool(ack.get("duplicate")), ack.get("stream"))
            except (ValueError, KeyError, TypeError):
                self._settle(index, None, f"unreadable confirmation {data[:80]!r}")

    def _settle(
        self, index: int, seq: int | None, error: str | None, duplicate: bool = False, stream: str | None = None
    ) -> None:
        window = self.window
        message = window.outstanding.pop(index, None)
        if message is None:
            return
        if stream and not self.summary.stream:
            self.summary.stream = stream
        window.settled += 1
        self.reports.waiting[index] = Settled(message, seq, error, duplicate)
        self._flush_reports()
        window.progress.set()

    # -- reporting --------------------------------------------------------------------------------

    def _flush_reports(self) -> None:
        """Report settled messages in input order (acks can overtake each other after a reconnect)."""
        reports = self.reports
        while reports.next_index in reports.waiting:
            index = reports.next_index
            message, seq, error, duplicate = reports.waiting.pop(index)
            reports.next_index += 1
            if error is None:
                self._confirmed(index, message, seq, duplicate)
            else:
                self._failed(index, message, error)

    def _confirmed(self, index: int, message: OutgoingMessage, seq: int | None, duplicate: bool) -> None:
        summary = self.summary
        summary.confirmed += 1
        summary.duplicates += duplicate
        if summary.first_sequence is None:
            summary.first_sequence = seq
        summary.last_sequence = seq
        on_ack = self.reports.on_ack
        if on_ack:
            try:
                on_ack(PublishAck(index, message.subject or self.ref.channel, seq or 0, summary.stream, duplicate))
            except Exception as exc:  # noqa: BLE001 - re-raised by run(): it must not reach nats-py's reader
                self._callback_failed(exc)

    def _failed(self, index: int, message: OutgoingMessage, error: str) -> None:
        self.summary.failed.append(f"{message.source or f'message {index + 1}'}: {error}")
        on_error = self.reports.on_error
        if on_error:
            try:
                on_error(index, message, error)
            except Exception as exc:  # noqa: BLE001 - see _callback_failed
                self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        """A caller's on_ack / on_error raised (e.g. --record's disk is full): stop, then raise it from run()."""
        self.halt.callback_error = self.halt.callback_error or exc
        self.reports.on_ack = self.reports.on_error = None
        self.halt.stop("a confirmation could not be reported")

    # -- giving up --------------------------------------------------------------------------------

    def _on_lost(self) -> None:
        """The connection dropped: what was sent and not confirmed is lost to us; send nothing more."""
        self.halt.reason = "connection lost"  # whatever stopped publishing before, this is what happened
        self.halt.event.set()
        self.frames.clear()  # built for the lost server, given up below with the rest
        self.nc.drop_unsent()  # type: ignore[attr-defined]  # NatsctlClient
        for index in sorted(self.window.outstanding):
            self._settle(index, None, "connection lost before the server confirmed it")

    async def _fail_outstanding(self, reason: str) -> None:
        if not self.window.outstanding:
            return
        events = events_of(self.nc)
        if events and events.permission_errors:
            reason = events.permission_errors[0]
        for index in sorted(self.window.outstanding):
            self._settle(index, None, reason)


class ReadAhead:
    """A bounded deque a task fills from an async input; ``_END`` or the input's error comes last."""

    def __init__(self) -> None:
        self.buffer: deque[Any] = deque()
        self.ready = asyncio.Event()  # the buffer holds something (or the input ended)
        self.room = asyncio.Event()  # the reading task may go on

    async def pump(self, messages: AsyncIterable[OutgoingMessage]) -> None:
        buffer, ready, room = self.buffer, self.ready, self.room
        try:
            async for message in messages:
                buffer.append(message)
                ready.set()
                if len(buffer) >= READ_AHEAD:
                    room.clear()
                    await room.wait()
            buffer.append(_END)
        except Exception as exc:  # noqa: BLE001 - re-raised in the reading task, in order
            buffer.append(exc)
        ready.set()


_END = object()


async def _input_ready(ready: asyncio.Event, halted: asyncio.Future) -> bool:
    """Wait for input; False when publishing halted first."""
    ready.clear()
    waiter = asyncio.ensure_future(ready.wait())
    await asyncio.wait({waiter, halted}, return_when=asyncio.FIRST_COMPLETED)
    if waiter.done():
        return True
    waiter.cancel()
    return False


def _plain_ack_sequence(data: bytes) -> int | None:
    """The sequence of a plain ack (``{"stream":"s","seq":7}``, maybe with a domain), read without JSON.

    None for anything else (an error, a duplicate, a status, garbage): the caller parses it fully.
    """
    start = data.find(b'"seq":')
    if start < 0 or data[:1] != b"{" or b'"error"' in data or b"duplicate" in data:
        return None
    start += 6
    end = data.find(b",", start)
    if end < 0:
        end = data.find(b"}", start)
    try:
        return int(data[start:end])
    except ValueError:
        return None


def _api_error_text(data: bytes) -> str:
    try:
        error = json.loads(data).get("error") or {}
        return f"refused by the server: {error.get('description', 'unknown error')} (code {error.get('err_code', '?')})"
    except (ValueError, AttributeError):
        return f"refused by the server: {data[:120]!r}"


def _over_max_payload(headers: int, payload: int, max_payload: int) -> str:
    if not headers:
        return f"payload of {payload} bytes is over the server's max_payload of {max_payload} bytes"
    return (
        f"headers ({headers} bytes) and payload ({payload} bytes) make {headers + payload} bytes, "
        f"over the server's max_payload of {max_payload} bytes"
    )
