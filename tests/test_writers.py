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
