"""NATS Streaming's messages come as MSG frames without a reply subject (``MSG <inbox> <sid> <length>``);
natsctl/transport/fast.py hands runs of them over in bulk as it does JetStream's (with a reply)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from natsctl.transport.fast import deliver_routed

frames = st.lists(
    st.tuples(
        st.sampled_from(["bare", "bare", "bare", "bare", "replied", "other"]),
        st.binary(max_size=14).map(lambda b: b.replace(b"\n", b"\r\n")),  # binary MsgProtos hold CRLFs too
    ),
    max_size=16,
)


@settings(max_examples=600, deadline=None)
@given(frames, st.integers(min_value=0, max_value=500))
def test_runs_of_frames_without_a_reply_are_handed_over_exactly(items, cut):
    wire = []
    for kind, body in items:
        if kind == "replied":
            wire.append(b"MSG _INBOX.x 1 _R.y %d\r\n%s\r\n" % (len(body), body))
        else:
            sid = 9 if kind == "other" else 1
            wire.append(b"MSG _INBOX.x %d %d\r\n%s\r\n" % (sid, len(body), body))
    buf = b"".join(wire)
    cut = min(cut, len(buf))
    got: list[tuple[bytes, bytes]] = []
    routes = {1: lambda subject, reply, payload, headers: got.append((reply, payload))}
    runs = {1: lambda subjects, replies, payloads: got.extend(zip(replies, payloads, strict=True))}
    consumed, _ = deliver_routed(bytearray(buf[:cut]), routes, runs=runs)
    expected, end = [], 0
    for (kind, body), frame in zip(items, wire, strict=True):
        if kind == "other" or end + len(frame) > cut:
            break
        expected.append((b"_R.y" if kind == "replied" else b"", body))
        end += len(frame)
    assert (got, consumed) == (expected, end)


def test_a_read_of_frames_without_a_reply_is_one_run():
    """What a NATS Streaming reader gets: the whole read in one call (the bulk part), not a call a frame."""
    bodies = [b"\x08%c\x12\x06spread" % n + b"x" * 100 for n in range(1, 101)]
    buf = bytearray(b"".join(b"MSG _INBOX.abc 7 %d\r\n%s\r\n" % (len(b), b) for b in bodies))
    calls = []
    consumed, waiting = deliver_routed(buf, {7: lambda *a: calls.append(a)}, runs={7: lambda *a: calls.append(a)})
    assert (consumed, waiting) == (len(buf), False)
    assert len(calls) == 1 and calls[0][2] == bodies and calls[0][1] == [b""] * 100


def test_frames_without_a_reply_are_taken_in_bulk():
    """The bulk part (one split of the read) takes them, as it takes frames with a reply."""
    from natsctl.transport.fast import _more_of_the_run

    bodies = [b"\x08%c\x12\x06spread" % n + b"y" * 50 for n in range(1, 41)]
    data = b"".join(b"MSG _INBOX.abc 7 %d\r\n%s\r\n" % (len(b), b) for b in bodies)
    subjects: list[bytes] = []
    replies: list[bytes] = []
    payloads: list[bytes] = []
    assert _more_of_the_run(data, 0, b"7", subjects, replies, payloads) == len(data)
    assert payloads == bodies and replies == [b""] * 40 and subjects == [b"_INBOX.abc"] * 40
