"""NATS Streaming's reader writes natsctl's JSON envelopes itself (StanSubscription.rendered_batches):
the same bytes as core.envelope.message_to_json and the CLI's JsonWriter, for every kind of message,
and only where no check or cut needs a Message (the plain reader)."""

from __future__ import annotations

import asyncio
import random
import types
from datetime import UTC, datetime

import pytest

from natsctl.backends.stan import proto, wire
from natsctl.backends.stan.backend import STOP, StanSubscription, to_message
from natsctl.backends.stan.render import Envelopes
from natsctl.cli.contract_io import CheckedSubscription
from natsctl.cli.render.messages import JsonWriter
from natsctl.cli.sub import _rendered_batches
from natsctl.core.backend import RenderedBatch
from natsctl.core.envelope import message_to_json
from natsctl.core.model import StartKind, StartPosition, SubscribeSpec
from tests.stan_wire_helpers import msg_protos, mutations

CHANNEL = "ticket:created"


def subscription(channel: str = CHANNEL, **spec) -> StanSubscription:
    spec.setdefault("durable", "d")
    return StanSubscription(types.SimpleNamespace(client=None), SubscribeSpec(channel, **spec))


def rendered(payloads: list[bytes], channel: str = CHANNEL, **spec) -> tuple[list[int], bytes]:
    sub = subscription(channel, **spec)
    sub.arrived.extend(payloads)
    envelopes = Envelopes(channel)
    tokens: list[int] = []
    data = b""
    while sub.arrived and not sub.done:
        batch = sub._render(envelopes)
        if batch is not None:
            tokens += batch
            data += batch.data
            assert sum(batch.sizes()) == len(batch.data)
    return tokens, data


def expected(payloads: list[bytes], channel: str = CHANNEL) -> tuple[list[int], bytes, bytes]:
    """(sequences, message_to_json lines, JsonWriter's bytes) of the Messages the tuple path makes."""
    messages = [
        to_message(channel, fields) for p in payloads if (fields := wire.read_msg(p, wire.subject_field(channel)))
    ]
    lines = "".join(message_to_json(m) + "\n" for m in messages).encode()
    return [m.sequence for m in messages], lines, JsonWriter().encode(messages)


def msg(sequence: int, data: bytes, timestamp: int, channel: str = CHANNEL, **more) -> bytes:
    return proto.encode("MsgProto", sequence=sequence, subject=channel, data=data, timestamp=timestamp, **more)


DATA = [
    b'{"id":1,"type":"ticket:created","pad":"xxxx"}',
    b"",
    b"plain text",
    "é ü 漢字 \U0001f600".encode(),
    b'quote " backslash \\ newline \n tab \t nul \x00 del \x7f',
    b"\xff\xfe not utf-8",
    b"\xc3",  # a cut multi-byte character
    "\u2028 \u2029 separators".encode(),
    b"x" * 70000,
]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("extra", [{}, {"redelivered": True}, {"redelivered": True, "redeliveryCount": 4}])
def test_every_kind_of_message_renders_as_the_envelope_code(data, extra):
    payloads = [msg(n, data, 1796615535562382000 + n * 1234567, **extra) for n in (1, 127, 128, 20000, 2**40)]
    sequences, lines, writer = expected(payloads)
    tokens, data_out = rendered(payloads)
    assert tokens == sequences
    assert data_out == lines == writer
    messages = [to_message(CHANNEL, wire.read_msg(p, wire.subject_field(CHANNEL))) for p in payloads]  # type: ignore[arg-type]
    assert RenderedBatch(tokens, data_out).sizes() == JsonWriter().sizes(messages)  # where a short write is cut


@pytest.mark.parametrize("channel", ["orders", "é.ü", 'we"ird\\name', "a" * 300])
def test_channel_names_render_as_the_envelope_code(channel):
    payloads = [msg(n, b"d", 1796615535000000000 + n, channel=channel) for n in range(1, 4)]
    assert rendered(payloads, channel)[1] == expected(payloads, channel)[1]


def test_times_round_as_datetime_does():
    """The microseconds are fromtimestamp(ns / 1e9)'s, ties and carries into the next second included."""
    rng = random.Random(19)
    stamps = [1, 999, 500, 1500, 999_999_500, 999_999_499, 1_000_000_000, 10**9 - 1, 2**62, 2**63 - 1]
    seconds = [0, 1, 1796615535, 1796615536, 2**33, 4102444800, 9223372035]
    for second in seconds:
        stamps += [second * 10**9 + ns for ns in (0, 499, 500, 501, 999_999_499, 999_999_500, 999_999_999)]
    stamps += [rng.randrange(1, 2**63) for _ in range(3000)]
    stamps += [1796615535 * 10**9 + rng.randrange(10**9) for _ in range(3000)]
    stamps += [1796615535 * 10**9 + rng.randrange(10**6) * 1000 + 500 for _ in range(2000)]
    stamps = [stamp for stamp in stamps if stamp]  # 0: no time (test_odd_payloads_render_as_the_tuple_path)
    payloads = [msg(n + 1, b"t", stamp) for n, stamp in enumerate(stamps)]
    _, data = rendered(payloads)
    lines = data.decode().splitlines()
    assert len(lines) == len(stamps)
    for stamp, text in zip(stamps, lines, strict=True):
        moment = datetime.fromtimestamp(stamp / 1e9, UTC)
        assert f'"time":"{moment.isoformat(timespec="microseconds").replace("+00:00", "Z")}"' in text, stamp
    assert data == expected(payloads)[1]


def test_odd_payloads_render_as_the_tuple_path():
    """No timestamp, a zero sequence, unknown fields, garbage: what read_msg and to_message make of them."""
    payloads = [
        msg(1, b"a", 5),
        proto.encode("MsgProto", sequence=2, subject=CHANNEL, data=b"no time"),
        proto.encode("MsgProto", subject=CHANNEL, data=b"no sequence", timestamp=7),
        msg(3, b"b", 9) + b"\x58\x01",  # an unknown field
        b"\xff\xff\xff",  # no MsgProto: dropped
        msg(4, b"c", 11, channel="another"),
        msg(5, b"d", 13, reply="_INBOX.x", CRC32=77),
    ]
    sequences, lines, writer = expected(payloads)
    assert rendered(payloads) == (sequences, lines)
    assert lines == writer


def test_it_ends_at_the_channels_end_and_at_stop():
    sub = subscription()
    sub.end_sequence = 3
    sub.arrived.extend(msg(n, b"x", 10 + n) for n in range(1, 6))
    batch = sub._render(Envelopes(CHANNEL))
    assert batch == [1, 2, 3] and sub.done and len(sub.arrived) == 2
    assert (sub.delivered, sub.max_seen, sub.fresh_seen) == (3, 3, True)

    sub = subscription()
    sub.arrived.extend([msg(1, b"x", 10, redelivered=True), STOP, msg(2, b"y", 11)])
    assert sub._render(Envelopes(CHANNEL)) == [1] and sub.done
    assert (sub.delivered, sub.max_seen, sub.fresh_seen) == (1, 1, False)


def test_replay_acks_on_receipt_and_drops_redeliveries():
    sub = subscription(durable=None, ack=False)
    assert sub.auto_ack
    sub.arrived.extend([msg(1, b"x", 10), msg(2, b"y", 11, redelivered=True), msg(3, b"z", 12)])
    assert sub._render(Envelopes(CHANNEL)) == [1, 3]
    assert sub.to_auto_ack == [1, 2, 3]


@pytest.mark.parametrize(
    "spec",
    [
        dict(to_sequence=5),
        dict(max_messages=5),
        dict(until=datetime(2030, 1, 1, tzinfo=UTC)),
        dict(queue="q"),
        dict(start=StartPosition(StartKind.TIME, time=datetime(2026, 1, 1, tzinfo=UTC))),
    ],
)
def test_only_the_plain_reader_renders(spec):
    """Cuts, queue members and --since need each Message (or its time): they take batches()."""
    assert subscription(**spec).rendered_batches() is None
    plain = subscription().rendered_batches()
    assert plain is not None
    asyncio.run(plain.aclose())


def test_a_checked_subscription_never_renders():
    """--validate wraps the subscription and forwards attributes: its checks must not be skipped."""
    inner = subscription()
    entry = types.SimpleNamespace(contract=lambda: None, pattern=CHANNEL)
    checks = types.SimpleNamespace(entry=entry, on_invalid=None)
    checked = CheckedSubscription(inner, checks, None, exclusive=False)  # type: ignore[arg-type]
    assert checked.rendered_batches is not None  # forwarded...
    assert _rendered_batches(checked) is None  # ...but not taken


def test_mutated_payloads_render_as_the_tuple_path():
    """The usual layout is read inline in _render: whatever the bytes, what read_msg makes of them."""
    rng = random.Random(19)
    seeds = [msg(n, b'{"a":"b"}', 1796615535562382000 + n) for n in (1, 200, 40000, 2**30)] + msg_protos()
    payloads = [mutated for seed in seeds for mutated in mutations(seed, rng, 60)]
    assert len(payloads) > 1000
    sequences, lines, _ = expected(payloads)
    assert rendered(payloads) == (sequences, lines)


@pytest.mark.parametrize("rendered_path", [False, True])
def test_other_tasks_run_between_batches(rendered_path):
    """After a batch (its acks queued), the reader lets the loop run (nats-py's flusher sends the acks,
    its reader reads on) before taking the next batch, even with more already arrived."""

    async def main() -> list[str]:
        sub = subscription()
        sub.arrived.extend(msg(n, b"x", 10 + n) for n in range(1, 1201))  # three batches, all there
        events: list[str] = []

        async def other_task():
            while True:
                events.append("other")
                await asyncio.sleep(0)

        task = asyncio.ensure_future(other_task())
        await asyncio.sleep(0)
        batches = sub.rendered_batches() if rendered_path else sub.batches()
        assert batches is not None
        async for _ in batches:
            events.append("batch")
            if events.count("batch") == 3:
                break
        task.cancel()
        return events

    events = asyncio.run(main())
    first = events.index("batch")
    assert "other" in events[first + 1 : events.index("batch", first + 1)]
