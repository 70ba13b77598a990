"""Reading a channel without acks (``replay``): an ephemeral push consumer with flow control.

A pull consumer makes the server answer a next-request for every batch; a push consumer streams, and
on this 2-core machine costs the server about 40% less CPU per message, which a replay feels as wall
time. Nothing is acked, so nothing tells the server what was lost; the reader checks instead, as an
ordered consumer does:

- every delivery carries its consumer sequence: a jump (messages dropped on the way, a reconnect)
  or an idle heartbeat saying more was sent than arrived means the consumer is replaced by one that
  starts just after the last message handed out, and nothing after the gap is handed out twice;
- the server sends an idle heartbeat every IDLE_HEARTBEAT seconds: none for PUSH_LOST seconds (the
  server restarted and the consumer is gone) also replaces it;
- flow control: the server pauses every so many bytes until its request is answered. It is answered
  once the messages before it have been handed out and written, so a slow reader of stdout holds at
  most the server's window (up to 32 MB on the wire) and is never cut off as a slow consumer.
"""

from __future__ import annotations

import time
from typing import Any

from nats.js import api

from natsctl.backends.jetstream.admin import PushTo
from natsctl.backends.jetstream.batch import Deliveries, consumer_sequence
from natsctl.backends.jetstream.pull import IDLE_HEARTBEAT, PullSubscription
from natsctl.core.debug import FAULT_ENV, fault, log
from natsctl.core.errors import NotFound
from natsctl.core.model import SubscribeSpec
from natsctl.core.stderr import say
from natsctl.transport.fast import route_raw, send_raw, spare_the_collector, unroute, wake_flusher

# Fault-injection point (tests and drills): with NATSCTL_FAULT=replay-lose-one the first consumer's
# delivery with consumer sequence LOSE_AT is dropped on arrival, as a message lost on the way would be.
LOSE_ONE = "replay-lose-one"
LOSE_AT = 1000
PUSH_LOST = 3 * IDLE_HEARTBEAT + 1  # seconds without a message or a heartbeat: the consumer is gone
FLOW_CONTROL_PREFIX = b"$JS.FC."


def pushes(spec: SubscribeSpec) -> bool:
    """A read that acks nothing and ends at the end: what a push consumer serves better than pulls."""
    return not spec.ack and spec.stop_at_end and not spec.durable and not spec.queue and spec.hold is None


class PushReplay(PullSubscription):
    """An ephemeral push consumer read to its end, checked for gaps and replaced when it loses any."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests_in_flight = 0
        self.next_consumer_seq = 1  # the consumer sequence the next delivery must carry
        self.last_stream_seq = 0  # the last stream sequence handed out
        # Flow-control subjects behind messages not yet taken, with how many were held before each.
        self.flow_waiting: list[tuple[int, bytes]] = []
        self.flow_due: list[bytes] = []  # ... behind messages taken: answered once they are written
        self.replace = False  # a gap or a lost consumer: start a new one after last_stream_seq
        self.replacements = 0
        self.lose_at = LOSE_AT if fault(LOSE_ONE) else 0

    async def start(self) -> None:
        spare_the_collector()
        if await self._open(resume_after=None) and self.spec.stop_at_end:
            self.ended = True

    async def _open(self, resume_after: int | None) -> bool:
        """Subscribe a fresh inbox and make a consumer pushing to it; True when it has nothing to send."""
        self.inbox = self.nc.new_inbox()
        self.inbox_sub = await self.nc.subscribe(self.inbox)
        route_raw(self.nc, self.inbox_sub, self._on_msg, self._on_run)
        push = PushTo(self.inbox, IDLE_HEARTBEAT, resume_after)
        info, self.ephemeral = await self.backend.admin.ensure_consumer(self.spec, self.ref.stream, self.ref, push)
        self.consumer = info.name
        self.ack_policy = api.AckPolicy.NONE
        self.next_consumer_seq = 1
        self.last_seen = time.monotonic()
        return not info.num_pending

    # -- delivery -------------------------------------------------------------------------------

    def _on_run(self, subjects: list[bytes], replies: list[bytes], payloads: list[bytes]) -> None:
        if self.lose_at:
            self._lose_one(subjects, replies, payloads)
        super()._on_run(subjects, replies, payloads)

    def _lose_one(self, subjects: list[bytes], replies: list[bytes], payloads: list[bytes]) -> None:
        found = self._lost(replies)
        if found is not None:
            del subjects[found], replies[found], payloads[found]

    def _lost(self, replies: list[bytes]) -> int | None:
        """The fault point: where in ``replies`` the delivery to drop is, once."""
        for i, reply in enumerate(replies):
            if consumer_sequence(reply) == self.lose_at:
                self.lose_at = 0
                log(f"fault injection ({FAULT_ENV}={LOSE_ONE}): consumer sequence {LOSE_AT} dropped")
                return i
        return None

    def _on_msg(self, subject: bytes, reply: bytes, data: bytes, headers: dict[str, list[str]] | None) -> None:
        if reply.startswith(b"$JS.ACK."):
            if self.lose_at and self._lost([reply]) is not None:
                return
            super()._on_msg(subject, reply, data, headers)
        elif reply.startswith(FLOW_CONTROL_PREFIX):
            self._flow_control(reply)
        else:
            self._on_push_status(headers or {})

    def _flow_control(self, subject: bytes) -> None:
        self.last_seen = time.monotonic()
        if self.replies:
            self.flow_waiting.append((len(self.replies), subject))
        else:
            self.flow_due.append(subject)
        self.wake.set()

    def _on_push_status(self, headers: dict[str, list[str]]) -> None:
        status = headers.get("Status", [""])[0]
        self.last_seen = time.monotonic()
        if status == "100":  # an idle heartbeat
            stalled = headers.get("Nats-Consumer-Stalled")
            if stalled:
                self._flow_control(stalled[0].encode())
            sent = headers.get("Nats-Last-Consumer", [""])[0]
            if sent.isdigit() and int(sent) > self._last_consumer_seq_received():
                self._replace("the server sent more than arrived")
        elif status == "409":
            self._replace("the consumer was deleted")
        self.wake.set()

    def _last_consumer_seq_received(self) -> int:
        if not self.replies:
            return self.next_consumer_seq - 1
        last = consumer_sequence(self.replies[-1])
        return last if last is not None else self.next_consumer_seq - 1 + len(self.replies)

    def _replace(self, why: str) -> None:
        if not self.replace:
            # Nothing is lost (the new consumer sends the rest) but the operator hears why it took longer.
            say(f"{why}; reading on from stream sequence {self.last_stream_seq + 1} with a new consumer")
        self.replace = True

    async def _caught_up(self) -> bool:
        try:
            return await super()._caught_up()
        except NotFound:  # the server lost it (a restart): a new one continues
            self._replace("the consumer is gone")
            return False

    # -- handing out ----------------------------------------------------------------------------

    def _take_batch(self) -> Deliveries:
        held = len(self.replies)
        batch = super()._take_batch()
        taken = held - len(self.replies)
        self.flow_due += [subject for before, subject in self.flow_waiting if before <= taken]
        self.flow_waiting = [(before - taken, subject) for before, subject in self.flow_waiting if before > taken]
        return batch

    def _in_order(self, batch: Deliveries) -> Deliveries:
        """The part of ``batch`` that follows what was handed out without a gap."""
        if self.replace:
            return batch[:0]  # from the consumer being replaced: its successor sends them again
        count = len(batch)
        if not count:
            return batch
        first, last = int(batch.consumer_seqs[0]), int(batch.consumer_seqs[-1])
        if first != self.next_consumer_seq or last != first + count - 1:
            kept = 0
            for expected, seq in enumerate(batch.consumer_sequences(), start=self.next_consumer_seq):
                if seq != expected:
                    break
                kept += 1
            batch = batch[:kept]
            self._remember(batch)
            self._replace(f"consumer sequence {self.next_consumer_seq} did not arrive")
            return batch
        self._remember(batch)
        return batch

    def _remember(self, batch: Deliveries) -> None:
        if len(batch):
            self.next_consumer_seq = int(batch.consumer_seqs[-1]) + 1
            self.last_stream_seq = int(batch.stream_seqs[-1])

    async def _refill(self) -> None:
        """Answer the flow control behind what was written; replace a consumer that lost messages."""
        if self.flow_due:
            due, self.flow_due = self.flow_due, []
            await send_raw(self.nc, b"".join(b"PUB %s 0\r\n\r\n" % subject for subject in due))
            await wake_flusher(self.nc)
        if not self.replace and time.monotonic() - self.last_seen > PUSH_LOST and not self.stopped:
            self._replace(f"no heartbeat for {PUSH_LOST:.0f}s")
        if self.replace and not self.stopped and not self.ended:
            await self._start_over()

    async def _start_over(self) -> None:
        old_sub, old_consumer = self.inbox_sub, self.consumer
        unroute(self.nc, old_sub)
        try:
            await old_sub.unsubscribe()
        except Exception:  # noqa: BLE001 - a closed connection: the new subscription reports it
            pass
        await self.backend.admin.delete_consumer(self.ref.stream, old_consumer, quietly=True)
        self.subjects, self.replies, self.payloads, self.headers = [], [], [], None
        self.flow_waiting, self.flow_due = [], []
        self.replace = False
        self.replacements += 1
        resume = self.last_stream_seq or None
        if await self._open(resume_after=resume) and self.spec.stop_at_end:
            self.check_end = True  # nothing left to send: the loop confirms the end
            self.wake.set()
