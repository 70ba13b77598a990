"""The message writers' fast paths write exactly what the envelope code writes."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from natsctl.cli.render.messages import JsonWriter, RawWriter
from natsctl.core.envelope import message_to_json, outgoing_from_envelope
from natsctl.core.model import Message

times = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)),
    st.datetimes(
        min_value=datetime(1970, 1, 2),
        max_value=datetime(2200, 1, 1),
        timezones=st.sampled_from([timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))]),
    ),
)
names = st.text(min_size=1, max_size=12)
headers = st.one_of(
    st.none(),
    st.just({}),
    st.dictionaries(st.text(min_size=1, max_size=5), st.lists(st.text(max_size=5), min_size=1, max_size=2), max_size=2),
)
messages = st.builds(
    Message,
    channel=names,
    subject=names,
    sequence=st.integers(min_value=1, max_value=2**63),
    time=times,
    data=st.one_of(st.binary(max_size=40), st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass"))),
    headers=headers,
    redelivered=st.booleans(),
    deliveries=st.integers(min_value=1, max_value=50),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(messages, max_size=8))
def test_json_writer_matches_the_envelope(batch):
    writer = JsonWriter(io.BytesIO())
    expected = "".join(message_to_json(m) + "\n" for m in batch).encode("utf-8", "surrogatepass")
    assert writer.encode(batch) == expected


def test_json_writer_reuses_the_second_but_not_across_seconds():
    writer = JsonWriter(io.BytesIO())
    start = datetime(2026, 11, 28, 10, 0, 0, 999_999, tzinfo=UTC)
    batch = [Message("c", "c", n, start + timedelta(microseconds=n), b"x") for n in range(3)]
    lines = writer.encode(batch).decode().splitlines()
    assert [line.split('"time":"')[1][:27] for line in lines] == [
        "2026-11-28T10:00:00.999999Z",
        "2026-11-28T10:00:01.000000Z",
        "2026-11-28T10:00:01.000001Z",
    ]


def test_json_writer_output_reads_back_as_envelopes():
    out = io.BytesIO()
    batch = [Message("c", "c", 1, datetime(2026, 1, 1, tzinfo=UTC), 'é\n"'.encode())]
    JsonWriter(out).write_batch(batch)
    assert outgoing_from_envelope(out.getvalue().splitlines()[0], "line 1").data == 'é\n"'.encode()


def test_raw_writer_is_one_write_per_batch():
    class Counting(io.BytesIO):
        writes = 0

        def write(self, data):
            Counting.writes += 1
            return super().write(data)

    out = Counting()
    RawWriter(out).write_batch([Message("c", "c", n, None, b"%d" % n) for n in range(5)])
    assert Counting.writes == 1 and out.getvalue() == b"0\n1\n2\n3\n4\n"


def test_readable_form_shows_json_nested_too_deep_to_pretty_print_as_it_is():
    from natsctl.cli.render.messages import readable

    deep = b"[" * 100_000 + b"]" * 100_000
    _, _, body = readable(Message("c", "c", 1, None, deep), pretty=True)
    assert body == deep.decode()


# -- batches kept as the wire gave them (JetStream bulk reads) ----------------------------------------

wire_rows = st.lists(
    st.tuples(
        st.sampled_from([b"orders", b"orders.eu", 'b\u00e9"l'.encode()]),  # subjects, one needing escapes
        st.integers(min_value=1, max_value=2**63),  # stream sequence
        st.integers(min_value=10**18, max_value=7 * 10**18),  # ns since the epoch (2001 to 2191)
        st.integers(min_value=1, max_value=50),  # deliveries
        st.one_of(st.binary(max_size=40), st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass"))),
    ),
    max_size=8,
)


def _deliveries(rows, channel="orders", form="plain"):
    from natsctl.backends.jetstream.batch import Deliveries

    def reply(sequence, stamp, deliveries, pending):
        numbers = b"%d.%d.%d.%d.%d" % (deliveries, sequence, sequence, stamp, pending)
        if form == "domain":
            return b"$JS.ACK.hub.ACCHASH.orders_st.c1." + numbers + b".r4nd0m"
        return b"$JS.ACK.orders_st.c1." + numbers

    count = len(rows)
    return Deliveries.take(
        channel,
        [subject for subject, *_ in rows],
        [reply(seq, ns, dl, count - i - 1) for i, (_, seq, ns, dl, _) in enumerate(rows)],
        [data for *_, data in rows],
    )


@settings(max_examples=300, deadline=None)
@given(wire_rows, st.sampled_from(["plain", "domain"]))
def test_json_writer_formats_wire_columns_as_the_envelope_does(rows, form):
    batch = _deliveries(rows, form=form)
    messages = list(batch)
    assert [m.sequence for m in messages] == [seq for _, seq, *_ in rows]
    assert [m.pending for m in messages] == list(range(len(rows) - 1, -1, -1))
    expected = "".join(message_to_json(m) + "\n" for m in messages).encode("utf-8", "surrogatepass")
    assert JsonWriter(io.BytesIO()).encode(batch) == expected
    assert RawWriter(io.BytesIO()).encode(batch) == b"".join(m.data + b"\n" for m in messages)
    # what a short write is cut against: each message's size, summed, is the batch's
    assert sum(JsonWriter(io.BytesIO()).sizes(batch)) == len(expected)


def test_wire_batch_slices_keep_their_kind_and_columns():
    from natsctl.backends.jetstream.batch import Deliveries

    batch = _deliveries([(b"orders", n, 1_765_000_000_000_000_000 + n, 1, b"x%d" % n) for n in range(1, 6)])
    part = batch[1:3]
    assert isinstance(part, Deliveries)
    assert [m.sequence for m in part] == [2, 3]
    assert part.replies == batch.replies[1:3]  # the ack tokens, acked in bulk
    assert part.columns().payloads == [b"x2", b"x3"]
    assert batch[-1].pending == batch.last_pending == 0


def test_wire_batch_drops_what_is_no_jetstream_delivery_and_keeps_headers_per_message():
    from natsctl.backends.jetstream.batch import Deliveries

    good = b"$JS.ACK.s.c.1.7.7.1765000000000000000.0"
    batch = Deliveries.take(
        "orders",
        [b"orders"] * 4,
        [good, b"_INBOX.x", b"$JS.ACK.s.c.1.x.7.1765000000000000000.0", good.replace(b".7.7.", b".8.8.")],
        [b"a", b"b", b"c", b"d"],
        [None, None, None, {"K": ["v1", "v2"]}],
    )
    assert [(m.sequence, m.data, m.headers) for m in batch] == [(7, b"a", None), (8, b"d", {"K": ["v1", "v2"]})]
    assert batch.columns() is None  # a header: the writers take the Messages
    line = JsonWriter(io.BytesIO()).encode(batch).splitlines()[1]
    assert b'"headers":{"K":["v1","v2"]}' in line


def test_orjson_escapes_every_character_as_the_envelope_does():
    from json.encoder import encode_basestring

    import orjson

    text = "".join(chr(c) for c in range(0x2100)) + "\u2028\u2029\ufeff\U0010ffff"
    assert orjson.dumps(text) == encode_basestring(text).encode()
