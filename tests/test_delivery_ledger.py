"""Issue 10: whatever stdout does (short writes, EPIPE, a signal mid-write, a slow reader), the messages
`sub` acks are always among those whose every byte the reader has taken."""

from __future__ import annotations

import asyncio
import errno
import os
import types

from hypothesis import given, settings
from hypothesis import strategies as st

from natsctl.cli.outlet import AckLedger, Outlet, PipeOutlet, open_outlet
from natsctl.cli.render.messages import JsonWriter, RawWriter
from natsctl.cli.sub import _consume_to_stdout
from natsctl.core.backend import RenderedBatch
from natsctl.core.model import Message, SubscribeSpec


class ScriptedOutlet(Outlet):
    """An outlet whose writes and whose reader follow a script drawn by hypothesis."""

    def __init__(self, steps: list[tuple[str, int]], stop: asyncio.Event) -> None:
        super().__init__(fd=-1)
        self.steps = iter(steps)
        self.stop = stop
        self.taken = 0  # what the reader has read so far: never more than was accepted
        self.reported: list[int] = []

    def _write_once(self, view: memoryview) -> int | None:
        kind, amount = next(self.steps, ("all", 0))
        if kind == "epipe":
            self.broken = True
            return 0
        if kind == "eio":
            self.error = OSError(errno.EIO, os.strerror(errno.EIO))
            return 0
        if kind == "signal":
            self.stop.set()  # a signal arrives during this write: it accepted a part first
        written = len(view) if kind == "all" else min(len(view), amount)
        self.accepted += written
        return written

    def consumed(self) -> int:
        kind, amount = next(self.steps, ("read", 10**9))
        if kind == "read":
            self.taken = min(self.accepted, self.taken + amount)
        self.reported.append(self.taken)
        return self.taken

    def unread(self) -> int:
        return self.accepted - self.taken

    def reader_gone(self) -> bool:
        return self.broken or self.error is not None


class FakeSubscription:
    def __init__(self, batches: list[list[Message]]) -> None:
        self.pending = batches
        self.spec = SubscribeSpec(channel="c", durable="d")
        self.acked: list[Message] = []
        self.stopped = False

    async def batches(self):
        for batch in self.pending:
            if self.stopped:
                return
            yield batch

    async def ack(self, messages: list[Message]) -> None:
        self.acked.extend(messages)

    def stop(self) -> None:
        self.stopped = True


class FakeRenderingSubscription(FakeSubscription):
    """One that writes its JSON envelopes itself (as NATS Streaming's reader does): acked by token."""

    def rendered_batches(self):
        async def batches():
            for batch in self.pending:
                if self.stopped:
                    return
                yield RenderedBatch([m.sequence for m in batch], JsonWriter().encode(batch))

        return batches()

    async def ack_rendered(self, tokens: list[int]) -> None:
        self.acked.extend(Message("c", "c", n, None, b"") for n in tokens)

    async def ack(self, messages: list[Message]) -> None:
        raise AssertionError("rendered batches are acked with ack_rendered")


payloads = st.binary(max_size=30)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("short"), st.integers(min_value=0, max_value=60)),
        st.tuples(st.just("all"), st.just(0)),
        st.tuples(st.just("read"), st.integers(min_value=0, max_value=80)),
        st.tuples(st.sampled_from(["epipe", "eio", "signal"]), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=500, deadline=None)
@given(
    st.lists(st.lists(payloads, min_size=1, max_size=6), max_size=6),
    steps,
    st.sampled_from(["raw", "json", "rendered"]),
)
def test_acked_messages_were_all_taken_by_the_reader(batch_payloads, script, output):
    sequence = 0
    batches = []
    for payload_list in batch_payloads:
        batch = []
        for data in payload_list:
            sequence += 1
            batch.append(Message("c", "c", sequence, None, data))
        batches.append(batch)
    subscription = FakeRenderingSubscription(batches) if output == "rendered" else FakeSubscription(batches)

    async def main() -> ScriptedOutlet:
        stop = types.SimpleNamespace(event=asyncio.Event())
        outlet = ScriptedOutlet(script, stop.event)
        try:
            await _consume_to_stdout(subscription, "json" if output == "rendered" else output, stop, outlet)
        except Exception as exc:  # noqa: BLE001 - an I/O error is reported after the acks, as a NatsctlError
            assert outlet.error is not None and "cannot write to stdout" in str(exc)
        return outlet

    outlet = asyncio.run(main())
    writer = RawWriter() if output == "raw" else JsonWriter()
    ends, offset = {}, 0
    for batch in batches:
        for message, size in zip(batch, writer.sizes(batch), strict=True):
            offset += size
            ends[message.sequence] = offset
    taken = max(outlet.reported, default=0)
    acked = [m.sequence for m in subscription.acked]
    assert acked == sorted(set(acked))  # in order, each once
    assert all(ends[seq] <= taken for seq in acked)  # every acked message was wholly read
    if not outlet.broken and outlet.error is None and not outlet.stop.is_set():
        assert len(acked) == sequence  # nothing went wrong: everything was taken and acked


def test_ledger_settles_whole_batches_then_the_exact_cut():
    ledger = AckLedger(RawWriter().sizes)
    first = [Message("c", "c", n, None, b"ab") for n in (1, 2)]  # 3 bytes each
    second = [Message("c", "c", n, None, b"abcd") for n in (3, 4)]  # 5 bytes each
    ledger.add(first, 6)
    ledger.add(second, 10)
    assert ledger.settle(10, whole_batches=True) == first
    assert ledger.settle(10, whole_batches=True) == []
    assert [m.sequence for m in ledger.settle(10)] == []  # 4 bytes into the batch: no message whole
    assert [m.sequence for m in ledger.settle(11)] == [3]
    assert [m.sequence for m in ledger.settle(16)] == [4]
    assert ledger.unsettled() == 0


def test_a_short_write_is_not_all_written():
    """A real pipe that takes fewer bytes than offered: the outlet counts what it took, no more."""
    read_end, write_end = os.pipe()
    try:
        capacity = 65536
        outlet = open_outlet(write_end)
        assert isinstance(outlet, PipeOutlet)
        stop = asyncio.Event()

        async def write_then_signal() -> None:
            writing = asyncio.ensure_future(outlet.write(b"x" * (capacity * 2), stop))
            while outlet.accepted < capacity - 4096:  # the pipe fills: the rest must wait for room
                await asyncio.sleep(0)
            stop.set()  # a signal: the write gives up the wait at once
            await asyncio.wait_for(writing, 5)

        asyncio.run(write_then_signal())
        assert 0 < outlet.accepted <= capacity
        assert outlet.consumed() == 0  # nothing read yet
        os.read(read_end, 1000)
        assert outlet.consumed() == 1000
        os.close(read_end)
        read_end = -1
        assert outlet.reader_gone()
        outlet.close()
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
