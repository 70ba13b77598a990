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
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from nats import errors as nats_errors
from nats.js import api

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
PULL_EXPIRES = 10.0  # seconds a next-request waits on the server for messages
IDLE_HEARTBEAT = 2.0  # the server's heartbeat on an idle next-request, to notice lost requests
ACK_LOOKS = 10  # times the consumer is read while acks of ours may still be on their way
ACK_LOOK_PAUSE = 0.02

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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
        self.inbox = ""
        self.inbox_sub: Any = None
        self.next_subject = ""
        self.channel = ref.channel  # the channel as resolved: a stream named on the command line gives its subject
        self.subject_bytes = b""  # the last subject seen, decoded once
        self.subject_text = ""

    # -- set-up ---------------------------------------------------------------------------------

    async def start(self) -> None:
        info, self.ephemeral = await self.backend.admin.ensure_consumer(self.spec, self.ref.stream, self.ref)
        self.consumer = info.name
        self.ack_policy = info.config.ack_policy or api.AckPolicy.EXPLICIT
        self.redelivery = effective_redelivery(self.spec, info.config, self.consumer)
        spare_the_collector()
        self.inbox = self.nc.new_inbox()
        self.inbox_sub = await self.nc.subscribe(self.inbox)
        route_raw(self.nc, self.inbox_sub, self._on_msg)
        self.next_subject = f"{self.backend.api_prefix}.CONSUMER.MSG.NEXT.{self.ref.stream}.{self.consumer}"
        if self.spec.stop_at_end and await self._caught_up():
            self.ended = True
            return
        await self._refill()

    # -- delivery -------------------------------------------------------------------------------

    def _on_msg(self, subject: bytes, reply: bytes, data: bytes, headers: dict[str, list[str]] | None) -> None:
        tokens = reply.split(b".")
        if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts ns>.<pending>, inlined
            try:
                deliveries, seq, micros, pending = int(tokens[4]), int(tokens[5]), int(tokens[7][:-3]), int(tokens[8])
            except ValueError:
                return  # not a JetStream delivery; a handler must never raise into nats-py's parser
        elif not reply:
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
        buffer.append(
            Message(
                self.channel,
                self.subject_text,
                seq,
                _EPOCH + timedelta(microseconds=micros),
                data,
                headers,  # parsed by wire.route_raw, a fresh dict per message: every value of a repeated key
                deliveries > 1,
                deliveries,
                pending,
                reply,
            )
        )
        requests = self.requests
        if requests:
            first = requests[0]
            first[0] -= 1
            if first[0] <= 0:
                requests.popleft()
        if len(buffer) == 1:
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
        while len(self.requests) < self.requests_in_flight and len(self.buffer) < 2 * self.batch and not self.stopped:
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
        return min(self.batch, self.spec.max_messages - self.delivered - len(self.buffer) - owed)

    async def batches(self) -> AsyncIterator[list[Message]]:
        while not self.ended:
            if not self.buffer:
                if self.stopped:
                    return
                await self._wait_for_messages()
            self._raise_if_broken()
            if self.check_end and not self.buffer:
                self.check_end = False
                if await self._caught_up():
                    return
            if not self.buffer:
                await self._refill()
                continue
            batch = self._take_batch()
            if batch:
                yield batch
            if self._finished():
                return
            at_end = self.spec.stop_at_end and batch and batch[-1].pending == 0 and not self.buffer
            if at_end and await self._caught_up():
                return
            await self._refill()

    async def _wait_for_messages(self) -> None:
        self.wake.clear()
        try:
            await asyncio.wait_for(self.wake.wait(), IDLE_HEARTBEAT)
        except TimeoutError:
            self.check_end = self.spec.stop_at_end

    def _take_batch(self) -> list[Message]:
        batch, self.buffer = self.buffer, []
        self.last_seen = time.monotonic()  # messages came: the requests are alive
        batch = self._apply_bounds(batch)
        self.delivered += len(batch)
        return batch

    def _finished(self) -> bool:
        if self.stopped or self.ended:
            return True
        return self.spec.max_messages is not None and self.delivered >= self.spec.max_messages

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

    async def ack(self, messages: list[Message]) -> None:
        if not messages or self.ack_policy == api.AckPolicy.NONE:
            return
        if self.ack_policy != api.AckPolicy.ALL and len(messages) > 1:
            # One queued write for all but the last ack; the last goes through publish, which checks
            # the connection and wakes the flusher.
            tokens = [m.ack_token for m in messages[:-1]]
            await send_raw(self.nc, b"PUB " + b" 4\r\n+ACK\r\nPUB ".join(tokens) + b" 4\r\n+ACK\r\n")
        await self.nc.publish(_text(messages[-1].ack_token), b"+ACK")

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
