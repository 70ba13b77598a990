"""Guards the nats-py internals natsctl/backends/wire.py relies on for both backends' hot paths.

nats-py is pinned (<2.17). If a release changes any of these, these tests fail before a publish or a
replay silently breaks: re-check route_raw / send_raw / wake_flusher against the new release.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import inspect

import nats
import pytest
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

from natsctl.backends.jetstream import parse_ack_reply
from natsctl.backends.wire import (
    deliver_routed,
    header_block,
    hpub_line,
    pub_line,
    route_raw,
    send_raw,
    unroute,
    wake_flusher,
)


def test_nats_py_is_the_pinned_series():
    major, minor, *_ = (int(p) for p in importlib.metadata.version("nats-py").split(".")[:2])
    assert (major, minor) == (2, 16), "jetstream.py uses nats-py 2.16 internals: check them, then move the pin"


def test_the_internals_have_the_shapes_used():
    assert list(inspect.signature(Client._process_msg).parameters) == ["self", "sid", "subject", "reply", "data", "headers"]
    assert inspect.iscoroutinefunction(Client._process_msg)
    assert list(inspect.signature(Client._send_command).parameters)[:2] == ["self", "cmd"]
    assert inspect.iscoroutinefunction(Client._send_command)
    assert inspect.iscoroutinefunction(Client._flush_pending)
    # The parser calls the client's _process_msg through the instance, so an instance attribute wins.
    assert "await self.nc._process_msg(" in inspect.getsource(Parser.parse)
    assert "self._id = " in inspect.getsource(Subscription.__init__)
    # The read loop calls the parser through the client's _ps; parse(data) appends to buf first.
    assert "await self._ps.parse(" in inspect.getsource(Client._read_loop)
    source = inspect.getsource(Parser.parse)
    assert source.index("self.buf.extend(data)") < source.index("while self.buf")
    assert "self.state = AWAITING_CONTROL_LINE" in inspect.getsource(Parser.reset)


def test_raw_routes_deliver_bytes_in_order_and_headers_parsed(server):
    async def scenario():
        nc = await nats.connect(server.url)
        got: list[tuple] = []
        sub = await nc.subscribe("raw.>")
        route_raw(nc, sub, lambda *args: got.append(args))
        other = await nc.subscribe("plain")  # not routed: nats-py delivers it as usual
        await nc.publish("raw.a", b"1", reply="r.1")
        await nc.publish("raw.b", b"2", headers={"K": "v"})
        await send_raw(nc, pub_line(b"raw.c", b"r.3", b"3") + pub_line(b"raw.d", b"r.4", b""))
        await send_raw(nc, hpub_line(b"raw.f", b"r.6", header_block({"K": ["a", "b"]}, "id"), b"6"))
        await wake_flusher(nc)
        await nc.publish("plain", b"p")
        plain = await other.next_msg(timeout=5)
        await nc.flush()
        assert [g[:3] for g in got] == [(b"raw.a", b"r.1", b"1"), (b"raw.b", b"", b"2"), (b"raw.c", b"r.3", b"3"),
                                        (b"raw.d", b"r.4", b""), (b"raw.f", b"r.6", b"6")]
        assert got[0][3] is None and got[1][3] == {"K": ["v"]}
        assert got[4][3] == {"K": ["a", "b"], "Nats-Msg-Id": ["id"]}  # every value of a repeated key
        assert plain.data == b"p"
        unroute(nc, sub)
        await nc.publish("raw.e", b"5")
        assert (await sub.next_msg(timeout=5)).data == b"5"  # back to nats-py's own delivery
        await nc.close()

    asyncio.run(scenario())


def test_a_status_message_reaches_a_raw_route_with_its_status(server):
    async def scenario():
        nc = await nats.connect(server.url)
        got: list[tuple] = []
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        route_raw(nc, sub, lambda *args: got.append(args))
        js = nc.jetstream()
        await js.add_stream(name="S", subjects=["s"])
        await js.add_consumer("S", durable_name="C")
        # No message stored and no wait: the server answers the next-request with a 404 status.
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.S.C", b'{"batch":1,"no_wait":true}', reply=inbox)
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.05)
        assert got and got[0][1] == b"" and got[0][3]["Status"] == ["404"]
        await nc.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "reply, expected",
    [
        ("$JS.ACK.S.C.2.17.9.1764300000000000123.41", (2, 17, 1764300000000000123, 41)),
        ("$JS.ACK.hub.acct.S.C.1.5.5.1764300000000000123.0.token", (1, 5, 1764300000000000123, 0)),
        (b"$JS.ACK.S.C.1.3.3.1764300000000000123.7", (1, 3, 1764300000000000123, 7)),
        ("_INBOX.x", None),
    ],
)
def test_ack_reply_metadata(reply, expected):
    assert parse_ack_reply(reply) == expected


def test_a_failing_ack_callback_stops_the_publish_and_leaves_the_connection_working(server):
    """Acks are handled inside nats-py's reader: a caller's exception must come out of publish(), not kill it."""
    from natsctl.backends.jetstream import connect
    from natsctl.core.model import OutgoingMessage
    from natsctl.core.settings import Settings

    async def scenario():
        backend = await connect(Settings(servers=[server.url]), notify=lambda _: None)
        calls = []

        def on_ack(ack):
            calls.append(ack.index)
            if ack.index == 9:
                raise OSError("no space left on device")

        messages = [OutgoingMessage(data=b"m%d" % n, source=f"line {n + 1}") for n in range(50_000)]
        with pytest.raises(OSError, match="no space left"):
            await backend.publish("fails.here", messages, on_ack=on_ack)
        assert calls[:10] == list(range(10)) and len(calls) == 10  # nothing reported after the failure
        summary = await backend.publish("fails.here", [OutgoingMessage(data=b"after")])
        assert summary.confirmed == 1  # the reader is alive
        await backend.close()

    asyncio.run(scenario())


def frame(subject: bytes, sid: int, payload: bytes, reply: bytes = b"") -> bytes:
    head = b"MSG %s %d %s%d\r\n" % (subject, sid, reply + b" " if reply else b"", len(payload))
    return head + payload + b"\r\n"


def test_deliver_routed_takes_only_whole_frames_of_routed_sids():
    got = []
    routes = {1: lambda *args: got.append(args)}
    one, two = frame(b"a", 1, b"x\r\ny", b"r.1"), frame(b"b", 1, b"")
    third = frame(b"c", 1, b"zzz", b"r.3")
    buf = bytearray(one + two + third[:-3])
    assert deliver_routed(buf, routes) == (len(one) + len(two), True)  # the cut third waits for more
    assert got == [(b"a", b"r.1", b"x\r\ny", None), (b"b", b"", b"", None)]
    other = frame(b"o", 2, b"p")
    assert deliver_routed(bytearray(one + other + one), routes) == (len(one), False)  # nats-py's turn
    assert deliver_routed(bytearray(b"PING\r\n" + one), routes) == (0, False)
    assert deliver_routed(bytearray(b"HMSG a 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"), routes) == (0, False)
    assert deliver_routed(bytearray(b"MSG a 1 r"), routes) == (0, True)  # control line still coming
    assert deliver_routed(bytearray(b"MSG a b c d e\r\n"), routes) == (0, False)
    assert deliver_routed(bytearray(b"MSG a x 3\r\nabc\r\n"), routes) == (0, False)  # malformed sid


def test_routed_frames_cut_by_reads_arrive_whole_and_in_order(server):
    async def scenario():
        nc = await nats.connect(server.url)
        got: list[bytes] = []
        sub = await nc.subscribe("big")
        route_raw(nc, sub, lambda subject, reply, data, headers: got.append(data))
        plain = await nc.subscribe("small")
        payloads = [bytes([65 + n % 26]) * (10_000 + 997 * n) for n in range(60)]  # many reads cut frames
        for n, payload in enumerate(payloads):
            await nc.publish("big", payload)
            if n % 7 == 0:
                await nc.publish("small", b"%d" % n)  # unrouted frames in between
        await nc.flush()
        for _ in range(100):
            if len(got) == len(payloads):
                break
            await asyncio.sleep(0.05)
        assert got == payloads
        assert [(await plain.next_msg(timeout=5)).data for _ in range(9)] == [b"%d" % n for n in range(0, 60, 7)]
        await nc.close()

    asyncio.run(scenario())


def test_connection_internals_have_the_shapes_used(server):
    """natsctl/backends/connection.py overrides _process_err and clears _pending / _pending_data_size."""
    assert list(inspect.signature(Client._process_err).parameters) == ["self", "err_msg"]
    assert inspect.iscoroutinefunction(Client._process_err)

    async def scenario():
        nc = await nats.connect(server.url)
        try:
            assert isinstance(nc._pending, list)
            assert isinstance(nc._pending_data_size, int)
        finally:
            await nc.close()

    asyncio.run(scenario())
