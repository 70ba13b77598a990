"""natsctl's Backend on NATS Streaming: the protocol client mapped onto core.backend and core.model."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from natsctl.core.backend import AckCallback, Backend, ErrorCallback, Messages, RenderedBatch, Subscription
from natsctl.core.envelope import message_to_json
from natsctl.core.errors import ConnectionFailed, NatsctlError, NotFound, PublishInterrupted, UsageError
from natsctl.core.limits import INT64_MAX, check_subscription
from natsctl.core.model import (
    ChannelRef,
    Message,
    PublishSummary,
    StartKind,
    SubscribeSpec,
)
from natsctl.core.settings import Settings

from . import proto, wire
from .protocol import DEFAULT_PUB_WINDOW, StanClient, StanSubscriptionHandle, check_channel
from .render import Envelopes, encode_basestring

if TYPE_CHECKING:
    from natsctl.core.manage import ChannelAdmin

PUB_ACK_TIMEOUT = 30.0  # seconds without any PubAck before the awaited ones count as unconfirmed
PROBE_WAIT = 0.25  # seconds to wait for the last message of a channel (none: the channel is empty)
CAUGHT_UP_QUIET = 0.5  # queue members, and durables with nothing new: no delivery for this long means caught up
BATCH_MAX = 512
SINCE_MARGIN_NS = 2_000_000_000  # a --since start is asked this much earlier, then cut exactly (non-durable)
STOP = object()


FIRST_DELIVERY = 'Z","redelivered":false,"deliveries":1,"headers":null,"data":'  # an envelope after its time


class _Unusual(Exception):
    """A payload StanSubscription._render leaves to wire.read_msg."""


def generated_client_id() -> str:
    from nats.nuid import NUID

    return "natsctl-" + NUID().next().decode()[:12]


class StanBackend(Backend):
    kind: ClassVar[str] = "stan"
    supports_headers: ClassVar[bool] = False

    def __init__(self, nc, client: StanClient, *, client_id_generated: bool, settings: Settings | None = None) -> None:
        self.nc = nc
        self.client = client
        self.settings = settings  # for the monitoring port (replay and verify ask it whether a channel exists)
        self.client_id = client.client_id
        self.client_id_generated = client_id_generated
        self.pub_window = DEFAULT_PUB_WINDOW
        self.pub_ack_timeout = PUB_ACK_TIMEOUT

    @classmethod
    async def open(cls, settings: Settings, **client_options) -> StanBackend:
        from natsctl.transport.connect import close_quietly, connect_nats

        client_id = settings.client_id or generated_client_id()
        nc = await connect_nats(settings, purpose="stan")
        client = StanClient(
            nc,
            settings.cluster_id or "",
            client_id,
            timeout=settings.timeout,
            where=settings.redacted_servers(),
            **client_options,
        )
        try:
            await client.connect()
        except BaseException:
            await close_quietly(nc)
            raise
        return cls(nc, client, client_id_generated=not settings.client_id, settings=settings)

    async def resolve_channel(self, channel: str, *, create: bool) -> ChannelRef:
        # A STAN channel exists once something is published to it or subscribed to; the protocol
        # cannot list channels. Without ``create`` the monitoring port is asked (see .lookup).
        check_channel(channel)
        if not create and self.settings is not None:
            await self._require_channel(channel)
        return ChannelRef(channel=channel)

    async def _require_channel(self, channel: str) -> None:
        from natsctl.transport.connect import stderr_notify

        from .lookup import channel_exists

        settings = self.settings
        assert settings is not None
        found = await asyncio.to_thread(channel_exists, settings, channel)
        if found.exists is False:
            raise NotFound(
                f"no channel {channel!r} on NATS Streaming cluster {settings.cluster_id!r} "
                f"(its monitoring port {found.where} does not list it)",
                hint="check the name ('natsctl channels' lists the channels there); reading a channel never creates it",
            )
        if found.exists is None:
            stderr_notify(
                f"warning: cannot check that channel {channel!r} exists ({found.reason}), so reading it creates "
                "it if it is missing; point NATS_MONITOR_URL or 'monitor' in the config at the server's monitoring port"
            )

    async def publish(
        self,
        channel: str,
        messages: Messages,
        *,
        create: bool = True,
        on_ack: AckCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> PublishSummary:
        from .publish import StanPublishRun

        check_channel(channel)
        run = StanPublishRun(self, channel, on_ack, on_error)
        try:
            await run.send_all(messages)
        except Exception as exc:
            if not isinstance(exc, ConnectionFailed) and self.client.lost is None:
                # Bad input (or a failing callback) mid-way: what was sent is still confirmed and
                # reported first. After a loss every awaited confirmation was given up already.
                await run._wait_until_below(1)
            if run.summary.confirmed:  # what is stored before the error goes with it
                raise PublishInterrupted(exc, run.summary) from exc
            raise
        return run.summary

    async def subscribe(self, spec: SubscribeSpec) -> StanSubscription:
        subscription = StanSubscription(self, spec)
        await subscription.start()
        return subscription

    def manager(self) -> ChannelAdmin:
        from .manage import StanAdmin

        return StanAdmin(self)

    async def close(self) -> None:
        from natsctl.transport.connect import close_quietly

        try:
            await self.client.close()
        finally:
            await close_quietly(self.nc)


def start_fields(spec: SubscribeSpec) -> dict:
    """SubscriptionRequest fields for ``spec.start``."""
    start = spec.start
    positions = proto.START_POSITIONS
    if start.kind is StartKind.ALL:
        return {"startPosition": positions["First"]}
    if start.kind is StartKind.LAST:
        return {"startPosition": positions["LastReceived"]}
    if start.kind is StartKind.SEQUENCE:
        if not start.sequence or start.sequence < 1:
            raise UsageError("a start sequence must be 1 or more")
        return {"startPosition": positions["SequenceStart"], "startSequence": start.sequence}
    if start.kind is StartKind.TIME:
        if start.time is None:
            raise UsageError("a start time is required")
        delta_ns = max(0, time.time_ns() - int(start.time.timestamp() * 1e9))
        if not spec.durable:
            # The server applies the delta to *its* now, a moment later: ask from a little earlier and
            # drop what came before the start (see StanSubscription._before_start). A durable keeps the
            # exact delta: it must not store an earlier position, and a resumed one ignores it anyway.
            delta_ns += SINCE_MARGIN_NS
        # An int64 on the wire: a start further back than ~292 years is every message, as that is.
        delta_ns = min(delta_ns, INT64_MAX)
        return {"startPosition": positions["TimeDeltaStart"], "startTimeDelta": delta_ns}
    return {"startPosition": positions["NewOnly"]}


def request_fields(spec: SubscribeSpec) -> dict:
    check_channel(spec.channel)
    if spec.ack_wait < 1:
        raise UsageError(f"--ack-wait must be at least 1s on NATS Streaming (got {spec.ack_wait:g}s)")
    if spec.max_in_flight < 1:
        raise UsageError("--max-in-flight must be at least 1")
    check_subscription("stan", ack_wait=spec.ack_wait, max_in_flight=spec.max_in_flight)
    for label, name in (("durable", spec.durable), ("queue", spec.queue)):
        if name is not None and (not name or any(c.isspace() for c in name)):
            raise UsageError(f"invalid {label} name {name!r}: it must be non-empty, without spaces")
    if spec.durable and spec.queue and ":" in spec.durable:
        raise UsageError(
            f"invalid durable name {spec.durable!r}: a durable queue group's durable name cannot contain ':'"
        )
    fields = dict(
        subject=spec.channel,
        qGroup=spec.queue or None,
        durableName=spec.durable or None,
        maxInFlight=min(spec.max_in_flight, spec.hold or spec.max_in_flight),
        ackWaitInSecs=math.ceil(spec.ack_wait),  # whole seconds on the wire
    )
    fields.update(start_fields(spec))
    return fields


def to_message(channel: str, fields: tuple[int, bytes, int, bool, int]) -> Message:
    """A Message of a MsgProto read by ``wire.read_msg`` (StanSubscription._accept_plain inlines this)."""
    sequence, data, timestamp, redelivered, count = fields
    return Message(
        channel,
        channel,
        sequence,
        datetime.fromtimestamp(timestamp / 1e9, UTC) if timestamp else None,
        data,
        None,
        redelivered,
        1 + count if count else (2 if redelivered else 1),
    )


class StanSubscription(Subscription):
    def __init__(self, backend: StanBackend, spec: SubscribeSpec) -> None:
        self.backend = backend
        self.client = backend.client
        self.spec = spec
        # Filled straight from the parser (see _on_msg): MsgProto payloads, a lost-connection error, STOP.
        self.arrived: deque = deque()
        self.wakeup = asyncio.Event()
        self.waiting = False  # _take waits for wakeup: the next payload sets it
        self.subject_field = wire.subject_field(spec.channel)
        self.to_auto_ack: list[int] = []
        self.handle: StanSubscriptionHandle | None = None
        self.end_sequence: int | None = None  # stop_at_end: the channel's last sequence when we started
        self.done = False
        self.delivered = 0
        self.max_seen = 0
        self.fresh_seen = False  # a message delivered for the first time came (not only redeliveries)
        # Without acks a non-durable replay would be redelivered after the ack wait: ack on receipt.
        self.auto_ack = not spec.ack and not spec.durable

    async def start(self) -> None:
        request_fields(self.spec)  # a bad spec fails before the probe
        # Subscribing creates a missing channel: without ``create`` (replay, verify) it must exist already.
        await self.backend.resolve_channel(self.spec.channel, create=self.spec.create)
        if self.spec.stop_at_end:
            self.end_sequence = await self._last_sequence()
        self.client.on_lost(self._arrive)
        # Built only now: a --since start is a delta from *now*, and the probe above takes time.
        self.handle = await self.client.subscribe(request_fields(self.spec), on_raw=self._on_msg, on_run=self._on_run)
        if self.spec.stop_at_end and self._nothing_to_wait_for():
            self.done = True

    async def _last_sequence(self) -> int:
        """The channel's last sequence, learnt with a short-lived LastReceived subscription (0: empty)."""
        seen: asyncio.Queue = asyncio.Queue()

        def on_msg(payload: bytes) -> None:
            fields = wire.read_msg(payload, self.subject_field)
            if fields is not None:  # else not a message: the probe goes on waiting
                seen.put_nowait(fields)

        probe = {"subject": self.spec.channel, "maxInFlight": 1, "ackWaitInSecs": 30}
        probe["startPosition"] = proto.START_POSITIONS["LastReceived"]
        handle = await self.client.subscribe(probe, on_msg)
        try:
            last = await asyncio.wait_for(seen.get(), PROBE_WAIT)
        except TimeoutError:
            last = None
        finally:
            await handle.close(unsubscribe=True)
        self._last_time = last[wire.TIMESTAMP] if last else 0
        return last[wire.SEQUENCE] if last else 0

    def _nothing_to_wait_for(self) -> bool:
        start = self.spec.start
        if self.end_sequence == 0:
            return True
        if self.spec.durable:
            return False  # a resumed durable ignores the start position: what it has not acked comes
        if start.kind is StartKind.NEW:
            return True
        if start.kind is StartKind.SEQUENCE:
            return (start.sequence or 0) > (self.end_sequence or 0)
        return bool(start.kind is StartKind.TIME and start.time and self._last_time < start.time.timestamp() * 1e9)

    def _on_msg(self, subject: bytes, reply: bytes, payload: bytes, headers) -> None:
        """Each MsgProto, straight from the parser: kept as it is, read a batch at a time (_read)."""
        self.arrived.append(payload)
        if self.waiting:
            self.waiting = False
            self.wakeup.set()

    def _on_run(self, subjects: list[bytes], replies: list[bytes], payloads: list[bytes]) -> None:
        """The MsgProtos of a read, a run at a time (``_on_msg`` for the rest)."""
        self.arrived.extend(payloads)
        if self.waiting:
            self.waiting = False
            self.wakeup.set()

    def _arrive(self, item) -> None:
        """A lost connection's error, or STOP."""
        self.arrived.append(item)
        self.wakeup.set()

    async def batches(self) -> AsyncIterator[list[Message]]:
        while not self.done:
            items = await self._take()
            if items is STOP:
                return
            batch = self._accept(items)
            if batch:
                yield batch
                # The batch's acks are queued: let nats-py's flusher send them (and its reader read)
                # before the next batch. Without it a reader that is behind takes every message the
                # server may have in flight before any ack leaves, and the server waits for it.
                await asyncio.sleep(0)

    async def _take(self):
        """What has arrived (at most BATCH_MAX), waiting for it; STOP once caught up."""
        if not await self._wait():
            return STOP
        items = self._read(self.arrived)
        await self._auto_ack()
        return items

    async def _wait(self) -> bool:
        """Until something has arrived; False once caught up (the quiet period, where it applies)."""
        quiet = CAUGHT_UP_QUIET if self.spec.stop_at_end and (self.spec.durable or self.spec.queue) else None
        arrived = self.arrived
        while not arrived:
            await self._auto_ack()  # what arrived redelivered only, so nothing else would ack it
            self.wakeup.clear()
            if arrived:
                break  # came while the acks were written
            self.waiting = True
            try:
                if quiet:
                    await asyncio.wait_for(self.wakeup.wait(), quiet)
                else:
                    await self.wakeup.wait()
            except TimeoutError:
                if self._lone_durable_behind():
                    continue  # a gap in delivery, not the end: the channel's last message is still to come
                return False  # nothing more is coming to this durable / queue member: caught up
            finally:
                self.waiting = False
        return True

    def _read(self, arrived: deque) -> list:
        """Up to BATCH_MAX of what arrived: MsgProtos read into tuples (wire.read_msg), and STOP.

        Payloads that are no MsgProto are dropped; with auto_ack each is acked, and a redelivered one
        dropped too (it was handed out once already).
        """
        items: list = []
        append = items.append
        read, subject = wire.read_msg, self.subject_field
        auto_ack = self.to_auto_ack if self.auto_ack else None
        popleft = arrived.popleft
        for _ in range(min(len(arrived), BATCH_MAX)):
            item = popleft()
            if item.__class__ is not bytes:
                if item is STOP:
                    append(item)
                    continue
                if isinstance(item, NatsctlError):
                    raise item
                item = bytes(item)
            fields = read(item, subject)
            if fields is None:
                continue
            if auto_ack is not None:
                auto_ack.append(fields[0])  # sent with this batch (_take)
                if fields[3]:
                    continue  # redelivered: already handed out once
            append(fields)
        return items

    async def _auto_ack(self) -> None:
        if self.to_auto_ack and self.handle is not None:
            sequences, self.to_auto_ack = self.to_auto_ack, []
            await self.handle.ack_many(sequences)

    def _plain(self) -> bool:
        """The usual reader: no cut but the channel's end (to_sequence, until, --count), no queue, no --since."""
        spec = self.spec
        cuts = spec.to_sequence is not None or spec.max_messages is not None or spec.until
        return not (cuts or spec.queue or spec.start.kind is StartKind.TIME)

    def _accept(self, items: list) -> list[Message]:
        """Convert, and cut at the stop point (to_sequence, until, caught up, stop())."""
        if self._plain():
            return self._accept_plain(items)
        batch = []
        for item in items:
            if item is STOP:
                self.done = True
                break
            message = to_message(self.spec.channel, item)
            if self._before_start(message):
                continue
            if self._past_end(message):
                self.done = True
                break
            batch.append(message)
            self.delivered += 1
            self.fresh_seen = self.fresh_seen or not message.redelivered
            if self._at_end(message):
                self.done = True
                break
        return batch

    def _accept_plain(self, items: list) -> list[Message]:
        """``_accept`` for the usual reader (no cut but the channel's end): one loop, no call per check."""
        channel, end = self.spec.channel, self.end_sequence
        fromtimestamp = datetime.fromtimestamp
        batch: list[Message] = []
        append = batch.append
        for item in items:
            if item is STOP:
                self.done = True
                break
            sequence, data, timestamp, redelivered, count = item
            append(
                Message(
                    channel,
                    channel,
                    sequence,
                    fromtimestamp(timestamp / 1e9, UTC) if timestamp else None,
                    data,
                    None,
                    redelivered,
                    1 + count if count else (2 if redelivered else 1),
                )
            )
            if end is not None and sequence >= end:
                self.done = True
                break
        if batch:
            self.delivered += len(batch)
            self.max_seen = max(self.max_seen, max(message.sequence for message in batch))
            self.fresh_seen = self.fresh_seen or not all(message.redelivered for message in batch)
        return batch

    def _before_start(self, message: Message) -> bool:
        """A message the --since margin brought in that is older than the start: skipped, and acked."""
        start = self.spec.start
        if self.spec.durable or start.kind is not StartKind.TIME or not start.time or not message.time:
            return False
        if message.time >= start.time:
            return False
        if not self.auto_ack:
            self.to_auto_ack.append(message.sequence)  # sent with the next batch taken (_take)
        return True

    def _past_end(self, message: Message) -> bool:
        if self.spec.to_sequence is not None and message.sequence > self.spec.to_sequence:
            return True
        return bool(self.spec.until and message.time and message.time > self.spec.until)

    def _at_end(self, message: Message) -> bool:
        self.max_seen = max(self.max_seen, message.sequence)
        if self.spec.max_messages is not None and self.delivered >= self.spec.max_messages:
            return True
        if self.spec.to_sequence is not None and message.sequence >= self.spec.to_sequence:
            return True
        if self.spec.queue:
            # A queue member shares the channel with the others: it may never see the last message.
            # It is caught up after the quiet period.
            return False
        # A durable too ends at the channel's last message: the server sends a resumed durable's
        # unacked messages first (performDurableRedelivery), then the new ones, in order.
        return self.end_sequence is not None and message.sequence >= self.end_sequence

    def _lone_durable_behind(self) -> bool:
        """A durable (not a queue member) that got new messages but not yet the channel's last one.

        Only redeliveries and then silence: the server sends a resumed durable's unacked messages
        first and new ones right after, so none is coming (it had been sent up to the end already).
        """
        if self.spec.queue or not self.spec.durable or self.end_sequence is None:
            return False
        return self.fresh_seen and 0 < self.max_seen < self.end_sequence

    async def ack(self, messages: list[Message]) -> None:
        if not self.spec.ack or self.auto_ack or self.handle is None:
            return
        await self.handle.ack_many([message.sequence for message in messages])

    # ---- the usual reader's JSON envelopes, straight from the MsgProtos (no Message each)

    def rendered_batches(self) -> AsyncIterator[RenderedBatch] | None:
        if not self._plain():
            return None
        return self._rendered()

    async def ack_rendered(self, tokens: list) -> None:
        """``tokens`` are sequences (see _render)."""
        if not self.spec.ack or self.auto_ack or self.handle is None:
            return
        await self.handle.ack_many(tokens)

    async def _rendered(self) -> AsyncIterator[RenderedBatch]:
        envelopes = Envelopes(self.spec.channel)
        while not self.done:
            if not await self._wait():
                return
            batch = self._render(envelopes)
            await self._auto_ack()
            if batch is not None:
                yield batch
                await asyncio.sleep(0)  # see batches()

    def _render(self, envelopes: Envelopes) -> RenderedBatch | None:
        """``_read`` and ``_accept_plain`` in one loop, writing each message's envelope line directly.

        The line is what ``message_to_json(to_message(channel, fields))`` gives (tests/test_stan_render.py):
        formatted here for UTF-8 data with a time, through the envelope code otherwise.
        """
        arrived = self.arrived
        popleft = arrived.popleft
        read, subject = wire.read_msg, self.subject_field
        subject_size, nine, continuations = len(subject), wire.unpack_nine, wire.NINE_CONTINUATIONS
        auto_ack = self.to_auto_ack if self.auto_ack else None
        end = self.end_sequence
        channel, head = self.spec.channel, envelopes.head
        second, second_text = envelopes.second, envelopes.second_text
        lines: list[str] = []
        line = lines.append
        tokens: list[int] = []
        token = tokens.append
        fresh = False
        for _ in range(min(len(arrived), BATCH_MAX)):
            item = popleft()
            if item.__class__ is not bytes:
                if item is STOP:
                    self.done = True
                    break
                if isinstance(item, NatsctlError):
                    raise item
                item = bytes(item)
            # wire.read_msg's reading of the usual layout, inline (no call, no tuple): a first delivery,
            # then its timestamp in nine bytes. Anything else is read by read_msg itself.
            try:
                if item[0] != 0x08:
                    raise _Unusual
                sequence = item[1]
                if sequence < 0x80:
                    i = 2
                else:
                    byte = item[2]
                    if byte < 0x80:
                        sequence = sequence & 0x7F | byte << 7
                        i = 3
                    elif item[3] < 0x80:
                        sequence = sequence & 0x7F | (byte & 0x7F) << 7 | item[3] << 14
                        i = 4
                    else:
                        raise _Unusual
                if not item.startswith(subject, i):
                    raise _Unusual
                i += subject_size
                if item[i] == 0x22:
                    length = item[i + 1]
                    if length < 0x80:
                        i += 2
                    else:
                        byte = item[i + 2]
                        if byte > 0x7F:
                            raise _Unusual
                        length = length & 0x7F | byte << 7
                        i += 3
                    data = item[i : i + length]
                    i += length
                else:
                    data = b""
                if item[i] != 0x28 or len(item) != i + 10:
                    raise _Unusual
                b0, b1, b2, b3, b4, b5, b6, b7, b8 = nine(item, i + 1)
                if b8 > 0x7F or (b0 & b1 & b2 & b3 & b4 & b5 & b6 & b7) < 0x80:
                    raise _Unusual
                timestamp = (
                    (b0 + (b1 << 7) + (b2 << 14) + (b3 << 21) + (b4 << 28) + (b5 << 35) + (b6 << 42) + (b7 << 49))
                    + (b8 << 56)
                    - continuations
                )
                redelivered = False
                count = 0
            except (_Unusual, IndexError):
                fields = read(item, subject)
                if fields is None:
                    continue  # not a MsgProto
                sequence, data, timestamp, redelivered, count = fields
            if auto_ack is not None:
                auto_ack.append(sequence)  # sent with this batch (_rendered)
                if redelivered:
                    continue  # already handed out once
            token(sequence)
            if not redelivered:
                fresh = True
            try:
                text = data.decode()
            except UnicodeDecodeError:
                text = None
            if text is None or timestamp <= 0:
                line(message_to_json(to_message(channel, (sequence, data, timestamp, redelivered, count))) + "\n")
            else:
                # datetime.fromtimestamp(timestamp / 1e9)'s own rounding: half-even on the fraction's microseconds
                moment = timestamp / 1e9
                whole = int(moment)
                micro = round((moment - whole) * 1e6)
                if micro > 999999:
                    whole += 1
                    micro = 0
                if whole != second:
                    second, second_text = whole, envelopes.second_of(whole)
                if redelivered or count:
                    middle = (
                        f'Z","redelivered":{"true" if redelivered else "false"},'
                        f'"deliveries":{1 + count if count else 2},"headers":null,"data":'
                    )
                else:
                    middle = FIRST_DELIVERY
                line(
                    f'{head}{sequence},"time":"{second_text}.{micro:06d}{middle}{encode_basestring(text)},"encoding":"utf-8"}}\n'
                )
            if end is not None and sequence >= end:
                self.done = True
                break
        envelopes.second, envelopes.second_text = second, second_text
        if not tokens:
            return None
        self.delivered += len(tokens)
        self.max_seen = max(self.max_seen, max(tokens))
        self.fresh_seen = self.fresh_seen or fresh
        return RenderedBatch(tokens, "".join(lines).encode())

    async def nak(self, message: Message, delay: float | None = None) -> None:
        # NATS Streaming has no negative ack: an unacked message comes back after the ack wait.
        return None

    def stop(self) -> None:
        self.done = True
        self._arrive(STOP)

    async def close(self) -> None:
        if self.handle is not None:
            await self.handle.close(unsubscribe=self.spec.unsubscribe)
