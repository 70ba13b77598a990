"""The JetStream backend: a channel is a stream whose subject is the channel name.

Publishing is pipelined: raw publishes whose reply subjects are ``<inbox>.<index>`` on one wildcard
subscription, a bounded window of acks in flight refilled in halves, acks parsed without per-message
futures. Consuming is a callback-driven pull: two next-requests in flight on one inbox, batches handed
to the caller as they arrive, metadata read from the reply subject.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from nats import errors as nats_errors
from nats.aio.client import Client
from nats.js import api
from nats.js import errors as js_errors

from natsctl.backends.connection import (
    close_quietly,
    connect_nats,
    events_of,
    permission_errors,
    raise_permission_error,
    stderr_notify,
)
from natsctl.backends.wire import (
    header_block,
    hpub_line,
    pub_line,
    route_raw,
    send_raw,
    spare_the_collector,
    unroute,
    wake_flusher,
)
from natsctl.core.backend import (
    AckCallback,
    Backend,
    ErrorCallback,
    Messages,
    Subscription,
    each_message,
)
from natsctl.core.errors import (
    ConnectionFailed,
    NatsctlError,
    NotFound,
    PermissionDenied,
    ServerError,
    Timeout,
    UsageError,
)
from natsctl.core.model import (
    ChannelRef,
    Message,
    OutgoingMessage,
    PublishAck,
    PublishSummary,
    StartKind,
    StreamOptions,
    SubscribeSpec,
)
from natsctl.core.names import stream_name_for, validate_channel, validate_durable
from natsctl.core.settings import Settings

T = TypeVar("T")

PUBLISH_WINDOW = 8192  # acks in flight; refilled when half of them came back
READ_AHEAD = 1024  # messages read ahead of the publisher from an async input (a pipe)
PULL_BATCH = 500  # messages per next-request; two requests are kept in flight
PULL_EXPIRES = 10.0  # seconds a next-request waits on the server for messages
IDLE_HEARTBEAT = 2.0  # the server's heartbeat on an idle next-request, to notice lost requests
QUEUE_INACTIVE = 300.0  # a queue group without --durable is removed after this long without members
EPHEMERAL_INACTIVE = 30.0


async def connect(settings: Settings, notify=stderr_notify) -> JetStreamBackend:
    client = await connect_nats(settings, notify=notify)
    return JetStreamBackend(client, settings)


def jetstream_error(exc: BaseException, settings: Settings, doing: str, client: Client | None = None) -> NatsctlError:
    """Map a nats-py JetStream API failure while ``doing`` something to a natsctl error.

    A request the server refused for lack of permission only times out on the client: the
    connection's reported permission violation is the real reason, so it wins.
    """
    if isinstance(exc, NatsctlError):
        return exc
    denied = permission_errors(client) if client is not None else []
    if denied:
        return PermissionDenied(denied[0])
    where = settings.redacted_servers()
    if isinstance(exc, (js_errors.ServiceUnavailableError, nats_errors.NoRespondersError)):
        return ServerError(
            f"JetStream is not enabled on the server at {where} (no answer to {doing})",
            hint="start nats-server with -js, or pass --cluster-id for a NATS Streaming server",
        )
    if isinstance(exc, (nats_errors.TimeoutError, asyncio.TimeoutError)):
        return Timeout(f"JetStream did not answer {doing} within {settings.timeout:g}s at {where}")
    if isinstance(exc, js_errors.NotFoundError):
        return NotFound(f"{doing}: {exc.description or 'not found'}")
    if isinstance(exc, js_errors.APIError):
        return ServerError(f"{doing} failed: {exc.description or exc}")
    if isinstance(exc, (nats_errors.ConnectionClosedError, nats_errors.StaleConnectionError)):
        return ConnectionFailed(f"connection to {where} lost while {doing}")
    return ServerError(f"{doing} failed: {exc}")


# A missing channel met by a reader that never creates one (replay, verify).
READER_MISSING_HINT = "check the name ('natsctl channels' lists the channels there); reading a channel never creates it"


class JetStreamBackend(Backend):
    kind = "jetstream"
    supports_headers = True

    def __init__(self, client: Client, settings: Settings, stream_options: StreamOptions | None = None) -> None:
        self.nc = client
        self.settings = settings
        self.stream_options = stream_options or StreamOptions()
        self.js = client.jetstream(
            prefix=settings.js_api_prefix or api.DEFAULT_PREFIX, domain=settings.js_domain, timeout=settings.timeout
        )
        self._channels: dict[str, ChannelRef] = {}

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload

    async def close(self) -> None:
        await close_quietly(self.nc)

    async def while_electing(self, call: Callable[[], Awaitable[T]], *, deadline: float | None = None) -> T:
        """``call()``, tried again while a JetStream leader election makes the API time out or answer 503.

        After a node of a cluster is lost, the meta, stream and consumer leaders are re-elected; the API
        is silent meanwhile. Within --timeout that is waited out; then the last error is raised.
        """
        if deadline is None:
            deadline = time.monotonic() + self.settings.timeout
        # A request sent while no leader exists is dropped, not queued: waiting longer for its answer
        # is useless, sending it again once a leader is elected gets one. So each try gets a slice of
        # the timeout. Only idempotent calls (lookups, creating a stream or consumer that may exist) come here.
        attempt = max(2.0, self.settings.timeout / 3)
        while True:
            remaining = deadline - time.monotonic()
            try:
                return await asyncio.wait_for(call(), timeout=max(0.1, min(attempt, remaining)))
            except (nats_errors.TimeoutError, asyncio.TimeoutError, js_errors.ServiceUnavailableError) as exc:
                if time.monotonic() >= deadline - 0.1 or self.nc.is_closed:
                    if isinstance(exc, (nats_errors.Error, js_errors.Error)):
                        raise
                    raise nats_errors.TimeoutError from None  # our slice ran out: the same as nats-py's
                await asyncio.sleep(0.25)

    # -- channels -------------------------------------------------------------------------------

    async def resolve_channel(self, channel: str, *, create: bool) -> ChannelRef:
        validate_channel(channel)
        known = self._channels.get(channel)
        if known:
            return known
        name = await self._stream_for_subject(channel)
        if name:
            ref = ChannelRef(channel=channel, stream=name)
        elif not create:
            raise NotFound(
                f"no stream holds channel {channel!r}",
                hint="drop --no-create to let natsctl create it, or create a stream for that subject",
            )
        else:
            ref = await self._create_stream(channel)
        self._channels[channel] = ref
        return ref

    async def _stream_for_subject(self, channel: str) -> str | None:
        try:
            return await self.while_electing(lambda: self.js.find_stream_name_by_subject(channel))
        except js_errors.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise jetstream_error(exc, self.settings, f"looking up the stream of {channel!r}", self.nc) from None

    def _stream_config(self, channel: str) -> api.StreamConfig:
        opts = self.stream_options
        return api.StreamConfig(
            name=stream_name_for(channel),
            subjects=[channel],
            storage=api.StorageType.MEMORY if opts.storage == "memory" else api.StorageType.FILE,
            num_replicas=opts.replicas,
            max_age=opts.max_age,
            max_msgs=opts.max_msgs,
            max_bytes=opts.max_bytes,
            discard=api.DiscardPolicy.NEW if opts.discard == "new" else api.DiscardPolicy.OLD,
            duplicate_window=opts.duplicate_window,
            description=f"natsctl channel {channel}",
        )

    async def _create_stream(self, channel: str) -> ChannelRef:
        config = self._stream_config(channel)
        try:
            await self._add_stream_asking_again(config)
        except js_errors.BadRequestError as exc:
            # Another natsctl may have created it a moment ago: use what is there now.
            name = await self._stream_for_subject(channel)
            if name:
                return ChannelRef(channel=channel, stream=name)
            raise ServerError(f"cannot create a stream for channel {channel!r}: {exc.description}") from None
        except Exception as exc:  # noqa: BLE001
            raise jetstream_error(exc, self.settings, f"creating a stream for {channel!r}", self.nc) from None
        if (config.num_replicas or 1) > 1:
            await self._wait_for_stream_leader(config.name)
        return ChannelRef(channel=channel, stream=config.name, created=True)

    async def _add_stream_asking_again(self, config: api.StreamConfig) -> None:
        """``add_stream``, asked again within --timeout while a cluster cannot answer it yet.

        A cluster that has just formed (or a node that is restarting) is placed on only once the meta
        leader has heard from every peer; until then placement answers "no suitable peers for
        placement, peer offline". A request that meets a leader election gets no answer at all. Both
        are asked again (creating the same stream twice is harmless); any other refusal (too few
        nodes, no resources) is final at once.
        """
        deadline = time.monotonic() + self.settings.timeout

        async def create() -> None:
            while True:
                try:
                    await self.js.add_stream(config)
                    return
                except js_errors.BadRequestError as exc:
                    if "peer offline" not in (exc.description or "") or time.monotonic() + 0.35 >= deadline:
                        raise  # the last answer, rather than our own timeout, says why
                    await asyncio.sleep(0.25)

        await self.while_electing(create, deadline=deadline)

    async def _wait_for_stream_leader(self, stream: str) -> None:
        """A replicated stream answers publishes only once its replicas elected a leader."""
        deadline = time.monotonic() + self.settings.timeout
        while time.monotonic() < deadline:
            try:
                cluster = (await self.js.stream_info(stream)).cluster
                replicas = (cluster.replicas or []) if cluster is not None else []
                if cluster is not None and cluster.leader and all(r.current for r in replicas):
                    return
            except (nats_errors.TimeoutError, js_errors.ServiceUnavailableError, js_errors.NotFoundError):
                pass
            await asyncio.sleep(0.05)
        raise Timeout(f"stream {stream!r} elected no leader within {self.settings.timeout:g}s")

    async def _until_stream_listens(self, ref: ChannelRef) -> None:
        """Wait until a stream natsctl just created receives what is published to its channel.

        On a cluster the stream leader's interest in the subject reaches the other nodes a moment after
        the leader is elected; a publish through another node meanwhile gets "no responders". The probe
        names a stream that cannot exist (a space), so the stream refuses it without storing anything.
        Past --timeout the publish goes ahead and reports what happens.
        """
        deadline = time.monotonic() + self.settings.timeout
        probe = {"Nats-Expected-Stream": "natsctl interest probe"}
        while time.monotonic() < deadline:
            try:
                await self.nc.request(ref.channel, b"", timeout=max(0.1, min(1.0, deadline - time.monotonic())),
                                      headers=probe)
                return  # the stream answered (its refusal of the probe)
            except (nats_errors.NoRespondersError, nats_errors.TimeoutError):
                raise_permission_error(self.nc)  # the probe was refused: so would every message be
                await asyncio.sleep(0.05)
            except Exception:  # noqa: BLE001 - anything else: let the publish itself report it
                return

    # -- publishing -----------------------------------------------------------------------------

    async def publish(
        self,
        channel: str,
        messages: Messages,
        *,
        create: bool = True,
        on_ack: AckCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> PublishSummary:
        ref = await self.resolve_channel(channel, create=create)
        if ref.created:
            await self._until_stream_listens(ref)
        pipeline = PublishPipeline(self, ref, on_ack, on_error)
        return await pipeline.run(messages)

    # -- subscribing ----------------------------------------------------------------------------

    async def subscribe(self, spec: SubscribeSpec) -> Subscription:
        try:
            ref = await self.resolve_channel(spec.channel, create=spec.create)
        except NotFound as exc:
            if spec.ack:
                raise  # sub --no-create: the hint to drop it stands
            # replay and verify never create a channel: no flag of theirs would help
            raise NotFound(exc.message, hint=READER_MISSING_HINT) from None
        for name, what in ((spec.durable, "durable"), (spec.queue, "queue group")):
            if name is not None:
                validate_durable(name, what)
        subscription = PullSubscription(self, spec, ref)
        await subscription.start()
        return subscription


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
        self.on_ack = on_ack
        self.on_error = on_error
        self.summary = PublishSummary(channel=ref.channel, stream=ref.stream, created=ref.created)
        self.in_flight = 0
        self.window = PUBLISH_WINDOW
        self.wake_below = 0  # the waiting sender is woken once in_flight drops below this
        self.progress = asyncio.Event()
        self.pending: dict[int, tuple[OutgoingMessage, int | None, str | None, bool]] = {}
        self.outstanding: dict[int, OutgoingMessage] = {}
        self.next_report = 0
        self.settled = 0  # acks (or failures) so far: the no-progress timeout compares it
        self.halted = ""  # why publishing stopped early (connection lost, no stream, no answer)
        self.callback_error: Exception | None = None  # raised by on_ack / on_error, re-raised by run()
        self.halt = asyncio.Event()  # set with ``halted``: a slow input (a pipe) is not waited for any more
        self.input_cut = False  # halted while the input had not ended
        self.last_source = ""  # the last message read from an async input ("line 17"), to say where it stopped

    async def run(self, messages: Messages) -> PublishSummary:
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
            try:
                await self._send_all(messages, inbox + ".")
            except Exception:
                # Bad input, a lost connection or anything else mid-way: what was sent still gets
                # confirmed and reported first, so the caller can say what is stored before the error.
                await self._wait_until_below(1)
                raise
            await self._wait_until_below(1)
        except Exception as exc:
            exc.summary = self.summary  # type: ignore[attr-defined]
            raise
        finally:
            if events is not None:
                events.on_lost.remove(self._on_lost)
            await self._fail_outstanding("no confirmation from the server")
            unroute(self.nc, sub)
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass
        if self.input_cut:
            after = f"after {self.last_source}" if self.last_source else "from the start"
            self.summary.failed.append(f"the input {after}: not read, publishing stopped ({self.halted})")
        if self.callback_error is not None:
            self.callback_error.summary = self.summary  # type: ignore[attr-defined]
            raise self.callback_error
        return self.summary

    async def _read_ahead(self, messages: AsyncIterable[OutgoingMessage]) -> AsyncIterator[OutgoingMessage]:
        """Messages from an async input, read by a task so that a halted publish stops waiting for
        input that may never come (``tail -f | natsctl pub --lines`` after the server went away).

        The task fills a bounded deque: a message costs an append and a popleft, not a queue round trip.
        """
        buffer: deque[Any] = deque()
        ready = asyncio.Event()  # the buffer holds something (or the input ended)
        room = asyncio.Event()  # the reading task may go on
        end = object()

        async def pump() -> None:
            try:
                async for message in messages:
                    buffer.append(message)
                    ready.set()
                    if len(buffer) >= READ_AHEAD:
                        room.clear()
                        await room.wait()
                buffer.append(end)
            except Exception as exc:  # noqa: BLE001 - re-raised in the reading task, in order
                buffer.append(exc)
            ready.set()

        reader, halted = asyncio.ensure_future(pump()), asyncio.ensure_future(self.halt.wait())
        try:
            while True:
                if not buffer and not await self._input_ready(ready, halted):
                    self.input_cut = True
                    return
                item = buffer.popleft()
                if len(buffer) < READ_AHEAD // 2:
                    room.set()
                if item is end:
                    return
                if isinstance(item, Exception):
                    raise item
                self.last_source = item.source
                yield item
        finally:
            reader.cancel()
            halted.cancel()

    @staticmethod
    async def _input_ready(ready: asyncio.Event, halted: asyncio.Future) -> bool:
        """Wait for input; False when publishing halted first."""
        ready.clear()
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({waiter, halted}, return_when=asyncio.FIRST_COMPLETED)
        if waiter.done():
            return True
        waiter.cancel()
        return False

    async def _send_all(self, messages: Messages, reply_prefix: str) -> None:
        nc = self.nc
        channel = self.ref.channel.encode()
        reply = reply_prefix.encode()
        max_payload = nc.max_payload
        outstanding = self.outstanding
        summary = self.summary
        index = 0
        async for message in each_message(messages):
            if self.halted:
                # Stop at the first unconfirmed message (what is stored stays a prefix of the input),
                # and say so even when everything sent before was confirmed.
                self._report(index, message, None, f"not sent: publishing stopped ({self.halted})")
                self._flush_reports()
                return
            data = message.data
            if message.headers or message.msg_id or len(data) > max_payload or not nc.is_connected:
                await self._send(index, message, reply_prefix)  # nats-py's publish checks every case
            else:
                if self.in_flight >= self.window:
                    await self._wait_until_below(self.window // 2)
                outstanding[index] = message
                self.in_flight += 1
                summary.published += 1
                await send_raw(nc, pub_line(channel, reply + b"%d" % index, data))
            index += 1

    async def _send(self, index: int, message: OutgoingMessage, reply_prefix: str) -> None:
        """The general path: headers, message ids, payloads over the limit, a connection not up.

        Headers go out as an HPUB built here (one line per value: repeated keys keep every value).
        The server's max_payload covers headers and payload together: a message over it is refused
        here, alone; sent, the server would close the connection and every message in flight with it.
        """
        nc = self.nc
        block = header_block(message.headers, message.msg_id)
        size = len(block) + len(message.data)
        if size > nc.max_payload:
            self._report(index, message, None, _over_max_payload(len(block), len(message.data), nc.max_payload))
            self._flush_reports()
            return
        if self.in_flight >= self.window:
            await self._wait_until_below(self.window // 2)
        if block and not nc.is_connected and not nc.is_closed:
            # Reconnecting: what is buffered now is dropped once the loss is reported; stop here.
            self.halted = self.halted or "connection lost"
            self.halt.set()
            self._report(index, message, None, f"not sent: publishing stopped ({self.halted})")
            self._flush_reports()
            return
        self.outstanding[index] = message
        self.in_flight += 1
        self.summary.published += 1
        try:
            if not block:
                await nc.publish(self.ref.channel, message.data, reply=reply_prefix + str(index))
            elif nc.is_closed:
                raise nats_errors.ConnectionClosedError
            else:
                reply = (reply_prefix + str(index)).encode()
                await send_raw(nc, hpub_line(self.ref.channel.encode(), reply, block, message.data))
        except Exception as exc:  # noqa: BLE001
            self._publish_failed(index, exc)

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

    async def _wait_until_below(self, limit: int) -> None:
        if self.in_flight >= limit and self.nc.is_connected:
            await wake_flusher(self.nc)  # what was queued raw goes out now
        timeout = self.backend.settings.timeout
        waited = 0.0
        seen = self.settled
        while self.in_flight >= limit:
            if self.nc.is_closed:
                await self._fail_outstanding("connection closed before the server confirmed it")
                return
            self.progress.clear()
            self.wake_below = limit
            step = min(timeout, 1.0)
            try:
                await asyncio.wait_for(self.progress.wait(), timeout=step)
            except asyncio.TimeoutError:
                waited = waited + step if self.settled == seen else 0.0
                seen = self.settled
                if waited >= timeout:
                    raise_permission_error(self.nc)
                    self.halted = self.halted or "no confirmation"
                    self.halt.set()
                    await self._fail_outstanding(f"no confirmation from the server within {timeout:g}s")
                    return
            finally:
                self.wake_below = 0

    def _on_reply(self, subject: bytes, _reply: bytes, data: bytes, headers: dict[str, list[str]] | None) -> None:
        try:
            index = int(subject[self.prefix_len :])
        except ValueError:
            return
        message = self.outstanding.pop(index, None)
        if message is None:
            return  # a late ack for something already given up on
        seq = None if headers else _plain_ack_sequence(data)
        if seq is None:
            self.outstanding[index] = message
            self._on_unusual_reply(index, data, headers)
            return
        self.in_flight -= 1
        self.settled += 1
        if index == self.next_report and not self.pending:
            self.next_report += 1
            self._confirmed(index, message, seq, False)
        else:
            self.pending[index] = (message, seq, None, False)
            self._flush_reports()
        if self.in_flight < self.wake_below:
            self.progress.set()

    def _on_unusual_reply(self, index: int, data: bytes, headers: dict[str, list[str]] | None) -> None:
        """A reply that is not a plain ack: an error, a duplicate, a 503 status, something unreadable."""
        if not data and headers and headers.get("Status") == ["503"]:
            # Nothing stored: the stream was deleted or (on a cluster) is electing a leader. Stop here.
            self.halted = self.halted or "no stream"
            self.halt.set()
            self._settle(index, None, f"no stream answered for channel {self.ref.channel!r} (deleted, or a cluster electing its leader)")
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
        message = self.outstanding.pop(index, None)
        if message is None:
            return
        if stream and not self.summary.stream:
            self.summary.stream = stream
        self.in_flight -= 1
        self.settled += 1
        self.pending[index] = (message, seq, error, duplicate)
        self._flush_reports()
        self.progress.set()

    def _report(self, index: int, message: OutgoingMessage, seq: int | None, error: str | None) -> None:
        self.pending[index] = (message, seq, error, False)

    def _flush_reports(self) -> None:
        """Report settled messages in input order (acks can overtake each other after a reconnect)."""
        while self.next_report in self.pending:
            message, seq, error, duplicate = self.pending.pop(self.next_report)
            index = self.next_report
            self.next_report += 1
            if error is not None:
                self.summary.failed.append(f"{message.source or f'message {index + 1}'}: {error}")
                if self.on_error:
                    try:
                        self.on_error(index, message, error)
                    except Exception as exc:  # noqa: BLE001 - see _callback_failed
                        self._callback_failed(exc)
            else:
                self._confirmed(index, message, seq, duplicate)

    def _confirmed(self, index: int, message: OutgoingMessage, seq: int | None, duplicate: bool) -> None:
        summary = self.summary
        summary.confirmed += 1
        summary.duplicates += duplicate
        if summary.first_sequence is None:
            summary.first_sequence = seq
        summary.last_sequence = seq
        if self.on_ack:
            try:
                self.on_ack(PublishAck(index, self.ref.channel, seq or 0, summary.stream, duplicate))
            except Exception as exc:  # noqa: BLE001 - re-raised by run(): it must not reach nats-py's reader
                self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        """A caller's on_ack / on_error raised (e.g. --record's disk is full): stop, then raise it from run()."""
        self.callback_error = self.callback_error or exc
        self.on_ack = self.on_error = None
        self.halted = self.halted or "a confirmation could not be reported"
        self.halt.set()

    def _on_lost(self) -> None:
        """The connection dropped: what was sent and not confirmed is lost to us; send nothing more."""
        self.halted = "connection lost"
        self.halt.set()
        self.nc.drop_unsent()  # type: ignore[attr-defined]  # NatsctlClient
        for index in sorted(self.outstanding):
            self._settle(index, None, "connection lost before the server confirmed it")

    async def _fail_outstanding(self, reason: str) -> None:
        if not self.outstanding:
            return
        events = events_of(self.nc)
        if events and events.permission_errors:
            reason = events.permission_errors[0]
        for index in sorted(self.outstanding):
            self._settle(index, None, reason)


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


def _text(token: bytes | str) -> str:
    return token.decode() if isinstance(token, bytes) else token


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def time_of(ns: int) -> datetime:
    """A JetStream timestamp (ns) as a UTC datetime, truncated to the microsecond.

    Exact, unlike ``fromtimestamp(ns / 1e9)`` whose float rounding can put two messages a microsecond
    apart on the same printed time (and ``--until`` would then include one too many).
    """
    return _EPOCH + timedelta(microseconds=ns // 1000)


def parse_ack_reply(reply: bytes | str) -> tuple[int, int, int, int] | None:
    """(deliveries, stream sequence, timestamp ns, pending) from a ``$JS.ACK`` reply subject."""
    tokens = reply.split(b"." if isinstance(reply, bytes) else ".")
    count = len(tokens)
    if count == 9:
        delivered, sseq, _cseq, ts, pending = tokens[4:9]
    elif count >= 11:
        delivered, sseq, _cseq, ts, pending = tokens[6:11]
    else:
        return None
    return int(delivered), int(sseq), int(ts), int(pending)


class PullSubscription(Subscription):
    """A pull consumer read with next-requests in flight and a callback filling a buffer."""

    def __init__(self, backend: JetStreamBackend, spec: SubscribeSpec, ref: ChannelRef) -> None:
        self.backend = backend
        self.nc = backend.nc
        self.spec = spec
        self.ref = ref
        self.consumer = ""
        self.ephemeral = False
        self.ack_policy = api.AckPolicy.EXPLICIT
        self.batch = max(1, min(PULL_BATCH, spec.max_in_flight // 2 or 1, spec.hold or PULL_BATCH))
        self.requests_in_flight = 1 if spec.hold else 2  # holding few: no request waits ahead of them
        self.buffer: list[Message] = []
        self.wake = asyncio.Event()
        self.requests: deque[list[float]] = deque()  # [messages still owed, deadline]
        self.stopped = False
        self.ended = False
        self.delivered = 0
        self.error: NatsctlError | None = None
        self.last_seen = time.monotonic()
        self.check_end = False
        self.inbox_sub: Any = None
        self.channel = spec.channel
        self.subject_bytes = b""  # the last subject seen, decoded once
        self.subject_text = ""

    # -- set-up ---------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._ensure_consumer()
        spare_the_collector()
        self.inbox = self.nc.new_inbox()
        self.inbox_sub = await self.nc.subscribe(self.inbox)
        route_raw(self.nc, self.inbox_sub, self._on_msg)
        self.next_subject = f"{self.backend.js._prefix}.CONSUMER.MSG.NEXT.{self.ref.stream}.{self.consumer}"
        if self.spec.stop_at_end and await self._caught_up():
            self.ended = True
            return
        await self._refill()

    def _consumer_name(self) -> str | None:
        """A durable queue group is identified by both names, as on NATS Streaming (``durable:queue``)."""
        durable, queue = self.spec.durable, self.spec.queue
        if durable and queue and durable != queue:
            return f"{durable}_{queue}"
        return durable or queue

    def _wanted_policy(self) -> api.AckPolicy:
        spec = self.spec
        if not spec.ack:
            return api.AckPolicy.NONE
        if spec.durable or spec.queue or spec.exclusive_acks:
            # Anyone may attach to a durable: an ack-all from one reader would ack what another
            # reader holds but has not written out yet. Every message is acked on its own.
            return api.AckPolicy.EXPLICIT
        return api.AckPolicy.ALL  # a private (ephemeral) consumer: one ack per written batch

    def _consumer_config(self, name: str | None) -> api.ConsumerConfig:
        spec = self.spec
        start = spec.start
        policy = {
            StartKind.NEW: api.DeliverPolicy.NEW,
            StartKind.ALL: api.DeliverPolicy.ALL,
            StartKind.LAST: api.DeliverPolicy.LAST,
            StartKind.SEQUENCE: api.DeliverPolicy.BY_START_SEQUENCE,
            StartKind.TIME: api.DeliverPolicy.BY_START_TIME,
        }[start.kind]
        ack_policy = self._wanted_policy()
        inactive = None
        if name is None:
            inactive = EPHEMERAL_INACTIVE
        elif not spec.durable:
            inactive = max(QUEUE_INACTIVE, spec.ack_wait * 2)
        return api.ConsumerConfig(
            durable_name=name if spec.durable else None,
            name=name,
            deliver_policy=policy,
            opt_start_seq=start.sequence if start.kind == StartKind.SEQUENCE else None,
            opt_start_time=start.time.isoformat().replace("+00:00", "Z") if start.kind == StartKind.TIME else None,
            ack_policy=ack_policy,
            ack_wait=spec.ack_wait if ack_policy != api.AckPolicy.NONE else None,
            max_ack_pending=spec.max_in_flight if ack_policy != api.AckPolicy.NONE else None,
            filter_subject=spec.channel,
            inactive_threshold=inactive,
            max_deliver=-1,
            mem_storage=True if name is None else None,
            # The monitoring port shows pull consumers without a group: say which queue group this is.
            metadata={"natsctl_queue": spec.queue} if spec.queue else None,
            num_replicas=1 if name is None else None,
        )

    async def _ensure_consumer(self) -> None:
        name = self._consumer_name()
        js = self.backend.js
        settings = self.backend.settings
        try:
            if name:
                info = await self.backend.while_electing(lambda: self._existing_consumer(name))
                if info is None:
                    config = self._consumer_config(name)
                    info = await self.backend.while_electing(lambda: js.add_consumer(self.ref.stream, config))
            else:
                info = await js.add_consumer(self.ref.stream, self._consumer_config(None))
                self.ephemeral = True
        except NatsctlError:
            raise
        except js_errors.BadRequestError as exc:
            raise UsageError(f"cannot subscribe to {self.spec.channel!r}: {exc.description}") from None
        except Exception as exc:  # noqa: BLE001
            raise jetstream_error(exc, settings, f"creating a consumer on {self.ref.stream!r}", self.nc) from None
        self.consumer = info.name
        self.ack_policy = info.config.ack_policy or api.AckPolicy.EXPLICIT
        self._check_compatible(info.config)

    async def _existing_consumer(self, name: str) -> api.ConsumerInfo | None:
        try:
            return await self.backend.js.consumer_info(self.ref.stream, name)
        except js_errors.NotFoundError:
            return None

    def _check_compatible(self, config: api.ConsumerConfig) -> None:
        """A durable made for one use must not be silently used in a way that loses acks."""
        spec = self.spec
        name = self.consumer
        subject = config.filter_subject
        if subject and subject != spec.channel:
            raise UsageError(
                f"durable {name!r} on stream {self.ref.stream!r} reads {subject!r}, not {spec.channel!r}; use another name"
            )
        if config.ack_policy == api.AckPolicy.ALL and (spec.queue or spec.exclusive_acks):
            use = "a queue group" if spec.queue else "--exec"
            raise UsageError(
                f"durable {name!r} acknowledges all-at-once (it was made for a single reader) and cannot serve {use}; "
                f"use another --durable name or delete it first"
            )
        if config.ack_policy == api.AckPolicy.NONE and spec.ack:
            raise UsageError(f"consumer {name!r} takes no acks; use another --durable name")
        if spec.durable and not config.durable_name and config.inactive_threshold:
            raise UsageError(
                f"{name!r} is a queue group without --durable (the server removes it when idle); "
                f"use another --durable name"
            )

    # -- delivery -------------------------------------------------------------------------------

    def _on_msg(self, subject: bytes, reply: bytes, data: bytes, headers: dict[str, list[str]] | None) -> None:
        tokens = reply.split(b".")
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts ns>.<pending>, inlined
            try:
                deliveries, seq, micros, pending = int(tokens[4]), int(tokens[5]), int(tokens[7][:-3]), int(tokens[8])
            except ValueError:
                return  # not a JetStream delivery; a handler must never raise into nats-py's parser
        elif not reply:
            self.last_seen = time.monotonic()
            self._on_status(headers or {})
            return
        else:
            meta = parse_ack_reply(reply)
            if meta is None:
                return
            deliveries, seq, ts, pending = meta
            micros = ts // 1000
        if subject != self.subject_bytes:
            self.subject_bytes, self.subject_text = subject, subject.decode()
        buffer = self.buffer
        # Positional: this runs once per message and keyword arguments cost more.
        buffer.append(Message(
            self.channel, self.subject_text, seq, _EPOCH + timedelta(microseconds=micros), data,
            headers,  # parsed by wire.route_raw, a fresh dict per message: every value of a repeated key
            deliveries > 1, deliveries, pending, reply,
        ))
        requests = self.requests
        if requests:
            first = requests[0]
            first[0] -= 1
            if first[0] <= 0:
                requests.popleft()
        if len(buffer) == 1:
            self.wake.set()  # the reader empties the buffer before it waits: only the first one wakes it

    def _on_status(self, headers: dict[str, list[str]]) -> None:
        status = headers.get("Status", [""])[0]
        description = headers.get("Description", [""])[0]
        if status == "100":
            return  # idle heartbeat: the request is alive
        if status in ("404", "408"):
            if self.requests:
                self.requests.popleft()
            self.check_end = self.spec.stop_at_end
        elif status == "409":
            lowered = description.lower()
            if "consumer deleted" in lowered or "consumer is push based" in lowered:
                self.error = NotFound(f"the consumer {self.consumer!r} was deleted while reading")
            elif self.requests:
                self.requests.popleft()  # exceeded limits or leadership change: ask again
        self.wake.set()

    async def _refill(self) -> None:
        """Keep two next-requests in flight (one when holding few) while the local buffer has room."""
        now = time.monotonic()
        while self.requests and self.requests[0][1] < now:
            self.requests.popleft()  # expired on the server (or lost in a reconnect)
        if self.last_seen < now - 2 * IDLE_HEARTBEAT - 1 and self.requests:
            self.requests.clear()  # no heartbeat: the server no longer holds our requests
            self.last_seen = now
        while len(self.requests) < self.requests_in_flight and len(self.buffer) < 2 * self.batch and not self.stopped:
            want = self.batch
            if self.spec.max_messages is not None:
                owed = sum(int(r[0]) for r in self.requests)
                want = min(want, self.spec.max_messages - self.delivered - len(self.buffer) - owed)
                if want <= 0:
                    return
            request = {"batch": want, "expires": int(PULL_EXPIRES * 1e9), "idle_heartbeat": int(IDLE_HEARTBEAT * 1e9)}
            self.requests.append([want, now + PULL_EXPIRES + 1])
            try:
                await self.nc.publish(self.next_subject, json.dumps(request).encode(), reply=self.inbox)
            except (nats_errors.ConnectionClosedError, nats_errors.ConnectionReconnectingError):
                self.requests.pop()
                return

    async def batches(self) -> AsyncIterator[list[Message]]:
        while not self.ended:
            if not self.buffer:
                if self.stopped:
                    return
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), IDLE_HEARTBEAT)
                except asyncio.TimeoutError:
                    self.check_end = self.spec.stop_at_end
            self._raise_if_broken()
            if self.check_end and not self.buffer:
                self.check_end = False
                if await self._caught_up():
                    return
            if not self.buffer:
                await self._refill()
                continue
            batch, self.buffer = self.buffer, []
            self.last_seen = time.monotonic()  # messages came: the requests are alive
            batch = self._apply_bounds(batch)
            if batch:
                self.delivered += len(batch)
                yield batch
            if self.stopped or self.ended:
                return
            if self.spec.max_messages is not None and self.delivered >= self.spec.max_messages:
                return
            if self.spec.stop_at_end and batch and batch[-1].pending == 0 and not self.buffer:
                if await self._caught_up():
                    return
            await self._refill()

    def _apply_bounds(self, batch: list[Message]) -> list[Message]:
        spec = self.spec
        if spec.to_sequence is None and spec.until is None and spec.max_messages is None:
            return batch
        limit = len(batch)
        for i, message in enumerate(batch):
            past_seq = spec.to_sequence is not None and message.sequence > spec.to_sequence
            past_time = spec.until is not None and message.time is not None and message.time > spec.until
            if past_seq or past_time:
                limit = i
                self.ended = True
                break
        if spec.max_messages is not None:
            limit = min(limit, spec.max_messages - self.delivered)
        kept = batch[:limit]
        if spec.to_sequence is not None and kept and kept[-1].sequence >= spec.to_sequence:
            self.ended = True
        return kept

    async def _consumer_info(self) -> api.ConsumerInfo:
        """The consumer's state; a leader election in progress is waited out within --timeout."""
        try:
            return await self.backend.while_electing(
                lambda: self.backend.js.consumer_info(self.ref.stream, self.consumer)
            )
        except Exception as exc:  # noqa: BLE001
            raise jetstream_error(exc, self.backend.settings, "reading the consumer's position", self.nc) from None

    async def _caught_up(self) -> bool:
        """True when nothing is left for this consumer (and, for a lone reader, nothing awaits redelivery)."""
        info = await self._consumer_info()
        if info.num_pending:
            return False
        if self.ack_policy == api.AckPolicy.NONE or self.spec.queue:
            return True
        for _ in range(10):
            if not info.num_ack_pending:
                return True
            # Our own last ack may still be on its way through the server: look again shortly.
            await asyncio.sleep(0.02)
            info = await self._consumer_info()
            if info.num_pending:
                return False
        return False  # messages of an earlier run await redelivery after the ack wait

    def _raise_if_broken(self) -> None:
        if self.error is not None:
            raise self.error
        if self.nc.is_closed:
            raise ConnectionFailed(
                f"connection to {self.backend.settings.redacted_servers()} lost while reading {self.spec.channel!r}"
            )
        events = events_of(self.nc)
        if events and events.permission_errors:
            raise PermissionDenied(events.permission_errors[0])

    # -- acks and leaving -----------------------------------------------------------------------

    async def ack(self, messages: list[Message]) -> None:
        if not messages or self.ack_policy == api.AckPolicy.NONE:
            return
        if self.ack_policy != api.AckPolicy.ALL and len(messages) > 1:
            # One queued write for all but the last ack; the last goes through publish, which checks
            # the connection and wakes the flusher.
            tokens = [m.ack_token for m in messages[:-1]]
            await send_raw(self.nc, b"PUB " + b" 4\r\n+ACK\r\nPUB ".join(tokens) + b" 4\r\n+ACK\r\n")
        await self.nc.publish(_text(messages[-1].ack_token), b"+ACK")

    async def nak(self, message: Message) -> None:
        if self.ack_policy != api.AckPolicy.NONE:
            await self.nc.publish(_text(message.ack_token), b"-NAK")

    async def in_progress(self, message: Message) -> None:
        if self.ack_policy != api.AckPolicy.NONE:
            await self.nc.publish(_text(message.ack_token), b"+WPI")

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()

    async def close(self) -> None:
        self.stopped = True
        try:
            if self.inbox_sub is not None:
                unroute(self.nc, self.inbox_sub)
                await self.inbox_sub.unsubscribe()
            await self.nc.flush(timeout=self.backend.settings.timeout)
        except Exception:  # noqa: BLE001 - leaving must not fail after the work is done
            pass
        if self.ephemeral or (self.spec.unsubscribe and self.consumer):
            try:
                await self.backend.js.delete_consumer(self.ref.stream, self.consumer)
            except js_errors.NotFoundError:
                pass
            except Exception as exc:  # noqa: BLE001
                if not self.ephemeral:
                    raise jetstream_error(exc, self.backend.settings, f"deleting durable {self.consumer!r}", self.nc) from None
