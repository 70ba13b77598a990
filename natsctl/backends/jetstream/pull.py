"""Reading a channel: a callback-driven pull.

Two next-requests in flight on one inbox (one when holding few), batches handed to the caller as they
arrive, a message's metadata read from its reply subject, acks sent raw.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from nats import errors as nats_errors
from nats.js import api

from natsctl.backends.jetstream.batch import Deliveries
from natsctl.backends.jetstream.redelivery import effective_redelivery, nak_payload, term_payload
from natsctl.backends.jetstream.retry import NotYet, retry_within
from natsctl.core.backend import Subscription
from natsctl.core.errors import (
    ConnectionFailed,
    NatsctlError,
    NotFound,
    PermissionDenied,
)
from natsctl.core.model import ChannelRef, Message, SubscribeSpec
from natsctl.transport.connect import events_of
from natsctl.transport.fast import route_raw, send_raw, spare_the_collector, unroute

if TYPE_CHECKING:
    from natsctl.backends.jetstream.backend import JetStreamBackend

PULL_BATCH = 500  # messages per next-request; two requests are kept in flight
MAX_BATCH = 1024  # messages handed out at once, at most
PULL_EXPIRES = 10.0  # seconds a next-request waits on the server for messages
IDLE_HEARTBEAT = 2.0  # the server's heartbeat on an idle next-request, to notice lost requests
ACK_LOOKS = 10  # times the consumer is read while acks of ours may still be on their way
ACK_LOOK_PAUSE = 0.02


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
        # What was received and not yet taken, column by column (see batch.Deliveries).
        self.subjects: list[bytes] = []
        self.replies: list[bytes] = []
        self.payloads: list[bytes] = []
        self.headers: list[dict[str, list[str]] | None] | None = None  # None while no message had any
        self.wake = asyncio.Event()
        self.requests: deque[list[float]] = deque()  # [messages still owed, deadline]
        self.stopped = False
        self.ended = False
        self.delivered = 0
        self.error: NatsctlError | None = None
        self.last_seen = time.monotonic()
        self.check_end = False
        self.inbox = ""
        self.inbox_sub: Any = None
        self.next_subject = ""
        self.channel = ref.channel  # the channel as resolved: a stream named on the command line gives its subject

    # -- set-up ---------------------------------------------------------------------------------

    async def start(self) -> None:
        info, self.ephemeral = await self.backend.admin.ensure_consumer(self.spec, self.ref.stream, self.ref)
        self.consumer = info.name
        self.ack_policy = info.config.ack_policy or api.AckPolicy.EXPLICIT
        self.redelivery = effective_redelivery(self.spec, info.config, self.consumer)
        spare_the_collector()
        self.inbox = self.nc.new_inbox()
        self.inbox_sub = await self.nc.subscribe(self.inbox)
        route_raw(self.nc, self.inbox_sub, self._on_msg, self._on_run)
        self.next_subject = f"{self.backend.api_prefix}.CONSUMER.MSG.NEXT.{self.ref.stream}.{self.consumer}"
        if self.spec.stop_at_end and await self._caught_up():
            self.ended = True
            return
        await self._refill()

    # -- delivery -------------------------------------------------------------------------------

    def _on_run(self, subjects: list[bytes], replies: list[bytes], payloads: list[bytes]) -> None:
        """A run of header-less messages from one read (see transport.fast.route_raw)."""
        if b"" in replies:  # a status without headers, or anything odd: one at a time
            for subject, reply, data in zip(subjects, replies, payloads, strict=True):
                self._on_msg(subject, reply, data, None)
            return
        held = len(self.replies)
        self.subjects += subjects
        self.replies += replies
        self.payloads += payloads
        if self.headers is not None:
            self.headers += [None] * len(replies)
        self._received(len(replies), held)

    def _on_msg(self, subject: bytes, reply: bytes, data: bytes, headers: dict[str, list[str]] | None) -> None:
        if not reply:
            self._on_status(headers or {})
            return
        held = len(self.replies)
        self.subjects.append(subject)
        self.replies.append(reply)
        self.payloads.append(data)
        if headers is not None and self.headers is None:
            self.headers = [None] * held
        if self.headers is not None:
            self.headers.append(headers)  # parsed by transport.fast, a fresh dict: every value of a repeated key
        self._received(1, held)

    def _received(self, count: int, held: int) -> None:
        requests = self.requests
        while count and requests:
            first = requests[0]
            taken = min(count, int(first[0]))
            first[0] -= taken
            count -= taken
            if first[0] <= 0:
                requests.popleft()
        if not held:
            self.wake.set()  # the reader empties the buffer before it waits: only the first one wakes it

    def _on_status(self, headers: dict[str, list[str]]) -> None:
        """A status on the inbox: a heartbeat, a request that ended (404, 408) or was refused (409)."""
        self.last_seen = time.monotonic()
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
        self._forget_lost_requests(now)
        while len(self.requests) < self.requests_in_flight and len(self.replies) < 2 * self.batch and not self.stopped:
            want = self._next_batch_size()
            if want <= 0:
                return
            self.requests.append([want, now + PULL_EXPIRES + 1])
            try:
                await self.nc.publish(self.next_subject, _next_request(want), reply=self.inbox)
            except (nats_errors.ConnectionClosedError, nats_errors.ConnectionReconnectingError):
                self.requests.pop()
                return

    def _forget_lost_requests(self, now: float) -> None:
        while self.requests and self.requests[0][1] < now:
            self.requests.popleft()  # expired on the server (or lost in a reconnect)
        if self.last_seen < now - 2 * IDLE_HEARTBEAT - 1 and self.requests:
            self.requests.clear()  # no heartbeat: the server no longer holds our requests
            self.last_seen = now

    def _next_batch_size(self) -> int:
        """A batch, or what is left of --count after what was delivered, is buffered and is owed."""
        if self.spec.max_messages is None:
            return self.batch
        owed = sum(int(r[0]) for r in self.requests)
        return min(self.batch, self.spec.max_messages - self.delivered - len(self.replies) - owed)

    async def batches(self) -> AsyncIterator[Deliveries]:  # type: ignore[override]  # a Sequence of Messages
        while not self.ended:
            if not self.replies:
                if self.stopped:
                    return
                await self._wait_for_messages()
            self._raise_if_broken()
            if self.check_end and not self.replies:
                self.check_end = False
                if await self._caught_up():
                    return
            if not self.replies:
                await self._refill()
                continue
            batch = self._take_batch()
            if batch:
                yield batch
            if self._finished():
                return
            at_end = self.spec.stop_at_end and batch and batch.last_pending == 0 and not self.replies
            if at_end and await self._caught_up():
                return
            await self._refill()

    async def _wait_for_messages(self) -> None:
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), IDLE_HEARTBEAT)
        except TimeoutError:
            self.check_end = self.spec.stop_at_end

    def _take_batch(self) -> Deliveries:
        """What was received, up to MAX_BATCH messages (a batch's transient memory is bounded too)."""
        if len(self.replies) <= MAX_BATCH:
            batch = Deliveries.take(self.channel, self.subjects, self.replies, self.payloads, self.headers)
            self.subjects, self.replies, self.payloads, self.headers = [], [], [], None
        else:
            headers = self.headers
            batch = Deliveries.take(
                self.channel,
                self.subjects[:MAX_BATCH],
                self.replies[:MAX_BATCH],
                self.payloads[:MAX_BATCH],
                headers[:MAX_BATCH] if headers is not None else None,
            )
            del self.subjects[:MAX_BATCH], self.replies[:MAX_BATCH], self.payloads[:MAX_BATCH]
            if headers is not None:
                del headers[:MAX_BATCH]
        self.last_seen = time.monotonic()  # messages came: the requests are alive
        batch = self._in_order(batch)
        batch = self._apply_bounds(batch)
        self.delivered += len(batch)
        return batch

    def _in_order(self, batch: Deliveries) -> Deliveries:
        """What of ``batch`` may be handed out (a pull consumer's deliveries always may)."""
        return batch

    def _finished(self) -> bool:
        if self.stopped or self.ended:
            return True
        return self.spec.max_messages is not None and self.delivered >= self.spec.max_messages

    def _apply_bounds(self, batch: Deliveries) -> Deliveries:
        limit, self.ended = bounded(batch, self.spec, self.delivered, self.ended)
        return batch if limit == len(batch) else batch[:limit]

    async def _caught_up(self) -> bool:
        """True when nothing is left for this consumer (and, for a lone reader, nothing awaits redelivery)."""

        async def look() -> bool:
            info = await self.backend.admin.consumer_info(self.ref.stream, self.consumer)
            if info.num_pending:
                return False
            if self.ack_policy == api.AckPolicy.NONE or self.spec.queue or not info.num_ack_pending:
                return True
            raise NotYet  # our own last ack may still be on its way through the server: look again shortly

        try:
            return await retry_within(
                look, math.inf, retryable=lambda exc: isinstance(exc, NotYet), pause=ACK_LOOK_PAUSE, tries=ACK_LOOKS
            )
        except NotYet:
            return False  # messages of an earlier run await redelivery after the ack wait

    def _raise_if_broken(self) -> None:
        if self.error is not None:
            raise self.error
        if self.nc.is_closed:
            raise ConnectionFailed(
                f"connection to {self.backend.settings.redacted_servers()} lost while reading {self.channel!r}"
            )
        events = events_of(self.nc)
        if events and events.permission_errors:
            raise PermissionDenied(events.permission_errors[0])

    # -- acks and leaving -----------------------------------------------------------------------

    async def ack(self, messages: Sequence[Message]) -> None:
        if not messages or self.ack_policy == api.AckPolicy.NONE:
            return
        tokens = messages.replies if isinstance(messages, Deliveries) else [m.ack_token for m in messages]
        if self.ack_policy != api.AckPolicy.ALL and len(tokens) > 1:
            # One queued write for all but the last ack; the last goes through publish, which checks
            # the connection and wakes the flusher.
            await send_raw(self.nc, b"PUB " + b" 4\r\n+ACK\r\nPUB ".join(tokens[:-1]) + b" 4\r\n+ACK\r\n")
        await self.nc.publish(_text(tokens[-1]), b"+ACK")

    async def nak(self, message: Message, delay: float | None = None) -> None:
        if self.ack_policy != api.AckPolicy.NONE:
            await self.nc.publish(_text(message.ack_token), nak_payload(delay))

    async def terminate(self, message: Message, reason: str = "") -> None:
        if self.ack_policy != api.AckPolicy.NONE:
            await self.nc.publish(_text(message.ack_token), term_payload(reason))
            await self.nc.flush(timeout=self.backend.settings.timeout)  # type: ignore[arg-type]

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
            await self.nc.flush(timeout=self.backend.settings.timeout)  # type: ignore[arg-type]  # nats-py says int; any number works
        except Exception:  # noqa: BLE001 - leaving must not fail after the work is done
            pass
        if self.ephemeral or (self.spec.unsubscribe and self.consumer):
            await self.backend.admin.delete_consumer(self.ref.stream, self.consumer, quietly=self.ephemeral)


def bounded(batch: Deliveries, spec: SubscribeSpec, delivered: int, ended: bool) -> tuple[int, bool]:
    """How many messages of ``batch`` are within --to-seq, --until and --count (``delivered`` so far),
    and whether the read ends with them."""
    limit = len(batch)
    sequences: list[int] = []
    if spec.to_sequence is not None or spec.until is not None:
        sequences = batch.sequences()
        for i, sequence in enumerate(sequences):
            past_seq = spec.to_sequence is not None and sequence > spec.to_sequence
            if past_seq or (spec.until is not None and _past(batch[i].time, spec.until)):
                limit, ended = i, True
                break
    if spec.max_messages is not None:
        limit = max(min(limit, spec.max_messages - delivered), 0)
    if spec.to_sequence is not None and limit and sequences[limit - 1] >= spec.to_sequence:
        ended = True
    return limit, ended


def _past(moment: datetime | None, until: datetime) -> bool:
    return moment is not None and moment > until


def _next_request(batch: int) -> bytes:
    request = {"batch": batch, "expires": int(PULL_EXPIRES * 1e9), "idle_heartbeat": int(IDLE_HEARTBEAT * 1e9)}
    return json.dumps(request).encode()


def _text(token: bytes | str) -> str:
    return token.decode() if isinstance(token, bytes) else token


def parse_ack_reply(reply: bytes | str) -> tuple[int, int, int, int] | None:
    """(deliveries, stream sequence, timestamp ns, pending) from a ``$JS.ACK`` reply subject."""
    tokens = reply.split(b".") if isinstance(reply, bytes) else reply.encode().split(b".")
    count = len(tokens)
    if count == 9:
        delivered, sseq, _cseq, ts, pending = tokens[4:9]
    elif count >= 11:
        delivered, sseq, _cseq, ts, pending = tokens[6:11]
    else:
        return None
    try:
        return int(delivered), int(sseq), int(ts), int(pending)
    except ValueError:
        return None  # not a JetStream ack subject: nothing here may raise into nats-py's parser
