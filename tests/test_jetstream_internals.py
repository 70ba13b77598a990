"""The bulk paths of both backends (natsctl/transport/fast.py): the nats-py internals of the fast path,
and the public path that runs whenever those internals are not there as expected.

The fast path is taken with nats-py 2.16 only, after natsctl/transport/fast.py probes the shapes it
uses at every connect. The tests marked ``fast_only`` guard those shapes against the installed
release (re-check route_raw / send_raw / wake_flusher / drop_unsent before widening FAST_SERIES);
with any other release they are skipped, since natsctl then takes the public path, which the rest
of this module checks end to end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json

import nats
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.protocol.parser import Parser

from natsctl.backends.jetstream import parse_ack_reply
from natsctl.core.errors import PublishInterrupted
from natsctl.core.model import OutgoingMessage, StartKind, StartPosition, SubscribeSpec
from natsctl.core.settings import Settings
from natsctl.transport import fast
from natsctl.transport.fast import (
    deliver_routed,
    publish_many,
    route_raw,
    send_raw,
    unroute,
    wake_flusher,
)
from natsctl.transport.frames import FrameError, header_block, hpub_line, pub_line, read_pub_frames
from tests.helpers import ok
from tests.servers import NatsServer

FAST_RELEASE = fast.nats_py_version().startswith(fast.FAST_SERIES)
fast_only = pytest.mark.skipif(
    not FAST_RELEASE,
    reason=f"nats-py {fast.nats_py_version()}: natsctl takes the public path, these internals are unused",
)


@pytest.fixture(autouse=True)
def default_path(monkeypatch):
    """Each test chooses its path itself, whatever the environment running the suite forces."""
    monkeypatch.delenv(fast.PUBLIC_ENV, raising=False)


@pytest.fixture
def public_path(monkeypatch):
    monkeypatch.setenv(fast.PUBLIC_ENV, "1")


# -- the fast path's internals (nats-py 2.16) -------------------------------------------------------


def test_the_fast_path_is_taken_with_the_checked_release_only():
    reason = fast.why_not_fast(Client())
    if FAST_RELEASE:
        assert reason is None, reason
    else:
        assert reason.startswith(f"nats-py {fast.nats_py_version()}: the fast path is checked against nats-py 2.16")


@fast_only
def test_the_internals_have_the_shapes_used():
    assert list(inspect.signature(Client._process_msg).parameters) == [
        "self",
        "sid",
        "subject",
        "reply",
        "data",
        "headers",
    ]
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
    # _server_info holds the INFO as received (connect reads tls_required, auth_required, tls_verify).
    assert "self._server_info = srv_info" in inspect.getsource(Client._process_connect_init)


@fast_only
def test_connection_internals_have_the_shapes_used(server):
    """drop_unsent clears _pending / _pending_data_size (what a reconnect would send)."""

    async def scenario():
        nc = await nats.connect(server.url)
        try:
            assert isinstance(nc._pending, list)
            assert isinstance(nc._pending_data_size, int)
            assert fast.is_fast(nc)
            await send_raw(nc, pub_line(b"never", b"", b"x"))  # queued, not yet flushed
            assert fast.drop_unsent(nc) == 1 and nc._pending == [] and nc._pending_data_size == 0
            assert fast.server_info(nc)["max_payload"] == nc.max_payload
        finally:
            await nc.close()

    asyncio.run(scenario())


@fast_only
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
        assert [g[:3] for g in got] == [
            (b"raw.a", b"r.1", b"1"),
            (b"raw.b", b"", b"2"),
            (b"raw.c", b"r.3", b"3"),
            (b"raw.d", b"r.4", b""),
            (b"raw.f", b"r.6", b"6"),
        ]
        assert got[0][3] is None and got[1][3] == {"K": ["v"]}
        assert got[4][3] == {"K": ["a", "b"], "Nats-Msg-Id": ["id"]}  # every value of a repeated key
        assert plain.data == b"p"
        unroute(nc, sub)
        await nc.publish("raw.e", b"5")
        assert (await sub.next_msg(timeout=5)).data == b"5"  # back to nats-py's own delivery
        await nc.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("path", ["fast", "public"])
def test_a_status_message_reaches_a_raw_route_with_its_status(server, monkeypatch, path):
    if path == "fast" and not FAST_RELEASE:
        pytest.skip("nats-py is not the release the fast path is checked against")
    if path == "public":
        monkeypatch.setenv(fast.PUBLIC_ENV, "1")

    async def scenario():
        nc = await nats.connect(server.url)
        got: list[tuple] = []
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        route_raw(nc, sub, lambda *args: got.append(args))
        assert fast.is_fast(nc) == (path == "fast")
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
        ("$JS.ACK.hub.acct.S.C.x.5.5.ts.0.token", None),  # shaped like one, but not numbers: never raises
    ],
)
def test_ack_reply_metadata(reply, expected):
    assert parse_ack_reply(reply) == expected


@pytest.mark.parametrize("path", ["fast", "public"])
def test_a_failing_ack_callback_stops_the_publish_and_leaves_the_connection_working(server, monkeypatch, path):
    """Acks are handled inside nats-py's reader: a caller's exception must come out of publish(), not kill it."""
    from natsctl.backends.jetstream import connect

    if path == "public":
        monkeypatch.setenv(fast.PUBLIC_ENV, "1")

    async def scenario():
        backend = await connect(Settings(servers=[server.url]), notify=lambda _: None)
        calls = []

        def on_ack(ack):
            calls.append(ack.index)
            if ack.index == 9:
                raise OSError("no space left on device")

        messages = [OutgoingMessage(data=b"m%d" % n, source=f"line {n + 1}") for n in range(50_000)]
        with pytest.raises(PublishInterrupted) as raised:
            await backend.publish("fails.here", messages, on_ack=on_ack)
        assert isinstance(raised.value.cause, OSError) and "no space left" in str(raised.value.cause)
        assert raised.value.summary.confirmed >= 10  # what the server had confirmed comes with it
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
    got.clear()
    headed = b"HMSG a 1 r.9 24 26\r\nNATS/1.0\r\nK: 1\r\nK: 2\r\n\r\nhi\r\n"
    assert deliver_routed(bytearray(headed + one), routes) == (len(headed) + len(one), False)
    assert got == [(b"a", b"r.9", b"hi", {"K": ["1", "2"]}), (b"a", b"r.1", b"x\r\ny", None)]
    malformed = b"HMSG a 1 30 24\r\nNATS/1.0\r\n\r\n" + b"h" * 12 + b"\r\n"  # headers longer than the frame
    assert deliver_routed(bytearray(malformed), routes) == (0, False)
    assert deliver_routed(bytearray(b"MSG a 1 r"), routes) == (0, True)  # control line still coming
    assert deliver_routed(bytearray(b"MSG a b c d e\r\n"), routes) == (0, False)
    assert deliver_routed(bytearray(b"MSG a x 3\r\nabc\r\n"), routes) == (0, False)  # malformed sid


@pytest.mark.parametrize("path", ["fast", "public"])
def test_routed_frames_cut_by_reads_arrive_whole_and_in_order(server, monkeypatch, path):
    if path == "fast" and not FAST_RELEASE:
        pytest.skip("nats-py is not the release the fast path is checked against")
    if path == "public":
        monkeypatch.setenv(fast.PUBLIC_ENV, "1")

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


# -- natsctl's own frames, read back by the public path ---------------------------------------------


def test_pub_frames_read_back_as_built():
    block = header_block({"K": ["a", "b"]}, "id-1")
    commands = (
        pub_line(b"ch", b"_INBOX.x.1", b"one\r\ntwo")
        + hpub_line(b"ch", b"_INBOX.x.2", block, b"")
        + b"PUB $JS.ACK.S.C.1.5.5.1.0 4\r\n+ACK\r\n"  # an ack batch's frame: no reply
        + pub_line(b"ch", b"r", b"")
    )
    assert list(read_pub_frames(commands)) == [
        (b"ch", b"_INBOX.x.1", b"", b"one\r\ntwo"),
        (b"ch", b"_INBOX.x.2", block, b""),
        (b"$JS.ACK.S.C.1.5.5.1.0", b"", b"", b"+ACK"),
        (b"ch", b"r", b"", b""),
    ]
    for bad in (b"PUB a 3\r\nabcd\r\n", b"PUB a x\r\n\r\n", b"SUB a 1\r\n", b"PUB a 1\r\nb", b"HPUB a 9 3\r\nabc\r\n"):
        with pytest.raises(FrameError):
            list(read_pub_frames(bad))


# -- the public path ---------------------------------------------------------------------------------


def test_the_public_path_routes_publishes_and_keeps_one_value_per_header_key(server, public_path):
    async def scenario():
        nc = await nats.connect(server.url)
        warnings: list[str] = []
        assert not fast.choose(nc, warn=warnings.append)
        assert fast.path_reason(nc) == f"{fast.PUBLIC_ENV}=1"
        got: list[tuple] = []
        sub = await nc.subscribe("pp.>")
        route_raw(nc, sub, lambda *args: got.append(args))
        await send_raw(nc, pub_line(b"pp.a", b"r.1", b"1") + pub_line(b"pp.b", b"", b"2"))
        await send_raw(nc, hpub_line(b"pp.c", b"r.3", header_block({"K": ["a", "b"], "J": ["j"]}), b"3"))
        await send_raw(nc, hpub_line(b"pp.d", b"r.4", header_block({"K": ["c", "d"]}), b"4"))
        await wake_flusher(nc)
        await publish_many(nc, [(b"pp.e", b"", b"5"), (b"pp.f", b"r.6", b"6")])
        await nc.flush()
        for _ in range(100):
            if len(got) == 6:
                break
            await asyncio.sleep(0.05)
        assert [g[:3] for g in got] == [
            (b"pp.a", b"r.1", b"1"),
            (b"pp.b", b"", b"2"),
            (b"pp.c", b"r.3", b"3"),
            (b"pp.d", b"r.4", b"4"),
            (b"pp.e", b"", b"5"),
            (b"pp.f", b"r.6", b"6"),
        ]
        assert got[0][3] is None
        assert got[2][3] == {"K": ["b"], "J": ["j"]}  # nats-py's publish and Msg.headers: one value per key
        assert len(warnings) == 1 and "'K' has several values" in warnings[0]  # said once per connection
        unroute(nc, sub)
        await nc.publish("pp.g", b"7")
        assert (await sub.next_msg(timeout=5)).data == b"7"  # nats-py's own delivery again
        await nc.close()

    asyncio.run(scenario())


def test_the_public_path_hands_over_what_arrived_when_asked_to_settle(server, public_path):
    """On a lost connection (ConnectionEvents.on_disconnected) every message received reaches its handler
    before the publish concludes that its ack never came."""

    async def scenario():
        nc = await nats.connect(server.url)
        got: list[bytes] = []
        sub = await nc.subscribe("settle")
        route_raw(nc, sub, lambda subject, reply, data, headers: got.append(data))
        await nc.flush()  # the server has the SUB before anything is sent (else the messages go nowhere)
        sender = await nats.connect(server.url)
        for n in range(5000):
            await sender.publish("settle", b"%d" % n)
        await sender.flush()
        await nc.flush()
        while nc.stats["in_msgs"] < 5000:  # every message read off the socket (bounded by the test timeout)
            await asyncio.sleep(0.001)
        # A generous bound: the public path takes each message through nats-py's next_msg (a task and a
        # wait_for each), so 5000 can need more than the 1 s natsctl allows when a connection drops.
        await fast.settle_deliveries(nc, timeout=30)
        assert got == [b"%d" % n for n in range(5000)] and not sub.pending_msgs
        await sender.close()
        await nc.close()

    asyncio.run(scenario())


def test_the_public_path_closes_instead_of_dropping_what_is_buffered(server, public_path):
    from natsctl.transport.connect import close_quietly, connect_nats

    async def scenario():
        client = await connect_nats(Settings(servers=[server.url]), notify=lambda _: None)
        assert not fast.is_fast(client) and fast.server_info(client) is None
        assert client.drop_unsent() == 0
        for _ in range(100):
            if client.is_closed:
                break
            await asyncio.sleep(0.02)
        assert client.is_closed  # a reconnect can send nothing now
        await close_quietly(client)

    asyncio.run(scenario())


def test_the_public_path_publishes_delivers_and_acks_end_to_end(cli, bus):
    env = {fast.PUBLIC_ENV: "1"}
    ident = [] if bus.jetstream else ["--client-id", "public-path-1"]
    total = 3000
    lines = "".join(json.dumps({"n": n}) + "\n" for n in range(1, total + 1))
    published = cli.run("--debug", "pub", "pp", "--lines", *bus.args, input=lines, env=env)
    ok(published)
    assert f"natsctl: debug: bulk path: public nats-py API ({fast.PUBLIC_ENV}=1)" in published.stderr.decode()
    if bus.jetstream:
        ok(cli.run("pub", "pp", "-H", "Trace-Id:abc", '{"n": 0}', *bus.args, env=env))
        total += 1
    read = ["sub", "pp", "--all", "--durable", "d", "--exit-at-end", "--json", *ident, *bus.args]
    first = [json.loads(line) for line in ok(cli.run(*read, env=env)).splitlines()]
    assert [e["seq"] for e in first] == list(range(1, total + 1))
    assert [json.loads(e["data"])["n"] for e in first[:3000]] == list(range(1, 3001))
    if bus.jetstream:
        assert first[-1]["headers"] == {"Trace-Id": ["abc"]}
    assert ok(cli.run(*read, env=env)) == ""  # every message was acked
    replayed = [json.loads(line) for line in ok(cli.run("replay", "pp", "--json", *bus.args, env=env)).splitlines()]
    assert replayed == first


def test_missing_internals_are_named(monkeypatch):
    monkeypatch.setattr(fast, "nats_py_version", lambda: "2.16.0")  # past the release check, whatever is installed
    assert fast.why_not_fast(object()) == (
        "nats-py internals not as expected: Client._process_msg(sid, subject, reply, data, headers) is missing"
    )


def _renamed_send_command(monkeypatch):
    original = Client._send_command

    async def _send_command(self, command: bytes, priority: bool = False) -> None:  # a later release's shape
        await original(self, command, priority)

    monkeypatch.setattr(Client, "_send_command", _send_command)
    monkeypatch.setattr(fast, "nats_py_version", lambda: "2.16.0")  # past the release check, whatever is installed
    return "nats-py internals not as expected: Client._send_command(cmd, ...)"


def _another_release(monkeypatch):
    from nats.aio import client as client_module

    monkeypatch.setattr(client_module, "__version__", "2.17.0")
    return "nats-py 2.17.0: the fast path is checked against nats-py 2.16.x only"


@pytest.mark.parametrize("move", [_renamed_send_command, _another_release], ids=["moved-internal", "another-release"])
def test_internals_not_as_probed_fall_back_to_the_public_path(bus, monkeypatch, capsys, move):
    from natsctl.opener import open_backend

    reason = move(monkeypatch)
    monkeypatch.setenv("NATSCTL_DEBUG", "1")
    if bus.jetstream:
        settings = Settings(servers=[bus.nats.url])
    else:
        settings = dataclasses.replace(bus.stan.settings(), client_id="moved-1")

    async def read(backend, durable: str) -> list[bytes]:
        spec = SubscribeSpec(channel="moved", start=StartPosition(StartKind.ALL), durable=durable, stop_at_end=True)
        sub = await backend.subscribe(spec)
        got: list[bytes] = []
        try:
            async for batch in sub.batches():
                got += [m.data for m in batch]
                await sub.ack(batch)
        finally:
            await sub.close()
        return got

    async def scenario():
        backend = await open_backend(settings, notify=lambda _: None)
        try:
            assert not fast.is_fast(backend.nc)
            messages = [OutgoingMessage(data=b"m%d" % n) for n in range(2000)]
            summary = await backend.publish("moved", messages)
            assert summary.confirmed == 2000 and not summary.failed
            assert await read(backend, "d") == [m.data for m in messages]
            assert await read(backend, "d") == []  # acked
        finally:
            await backend.close()

    asyncio.run(scenario())
    assert f"natsctl: debug: bulk path: public nats-py API ({reason}" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["fast", "public"])
def test_permission_violations_reach_the_connection_events(monkeypatch, path):
    """nats-py reports a permissions violation through the error callback natsctl gives it."""
    from natsctl.transport.connect import close_quietly, connect_nats, permission_errors

    if path == "fast" and not FAST_RELEASE:
        pytest.skip("nats-py is not the release the fast path is checked against")
    if path == "public":
        monkeypatch.setenv(fast.PUBLIC_ENV, "1")
    config = 'authorization { users = [ {user: a, password: b, permissions: {publish: {deny: ["secret"]}}} ] }'
    server = NatsServer(config=config, jetstream=False).start()

    async def scenario():
        client = await connect_nats(Settings(servers=[server.url], user="a", password="b"), notify=lambda _: None)
        try:
            await client.publish("secret", b"x")
            await client.flush()
            for _ in range(100):
                if permission_errors(client):
                    break
                await asyncio.sleep(0.02)
            assert permission_errors(client) == [
                'authorization violation: this user is not permitted to publish to "secret"'
            ]
        finally:
            await close_quietly(client)

    try:
        asyncio.run(scenario())
    finally:
        server.cleanup()


def test_deliver_routed_hands_runs_over_at_once_and_stops_at_other_sids():
    def frame(sid, n):
        return b"MSG orders %d $JS.ACK.s.c.1.%d.%d.1765000000000000000.0 2\r\nm%d\r\n" % (sid, n, n, n)

    calls = []
    routes = {1: lambda *args: calls.append(("one", args)), 2: lambda *args: calls.append(("msg", args))}
    runs = {1: lambda *lists: calls.append(("run", lists))}
    buf = bytearray(frame(1, 1) + frame(1, 2) + frame(2, 3) + frame(1, 4) + frame(9, 5) + frame(1, 6))
    consumed, waiting = deliver_routed(buf, routes, runs=runs)
    assert (consumed, waiting) == (len(frame(1, 1)) * 4, False)  # sid 9 is nats-py's to parse
    assert [kind for kind, _ in calls] == ["run", "msg", "run"]
    assert calls[0][1][2] == [b"m1", b"m2"] and calls[2][1][2] == [b"m4"]
    assert calls[1][1][2] == b"m3"
    # a big frame still arriving is not copied or handed over: the next read completes it
    big = bytearray(b"MSG orders 1 r 100000\r\n" + b"x" * 50_000)
    assert deliver_routed(big, routes, runs=runs) == (0, True)


frames = st.lists(
    st.tuples(
        st.sampled_from(["run", "run", "run", "one", "other", "hmsg"]),
        st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"\r\n")),  # payloads with CRLFs inside too
    ),
    max_size=12,
)


@settings(max_examples=500, deadline=None)
@given(frames, st.integers(min_value=0, max_value=400))
def test_deliver_routed_in_bulk_hands_over_exactly_the_leading_whole_routed_frames(items, cut):
    sids = {"run": 1, "one": 2, "other": 9}
    wire = []
    for kind, body in items:
        if kind == "hmsg":  # a message with headers (a status, flow control) on the routed sid
            wire.append(b"HMSG s 1 r 12 %d\r\nNATS/1.0\r\n\r\n%s\r\n" % (12 + len(body), body))
        else:
            wire.append(
                b"MSG s.%d %d $JS.ACK.s.c.1.1.1.1765000000000000000.0 %d\r\n%s\r\n"
                % (sids[kind], sids[kind], len(body), body)
            )
    buf = b"".join(wire)
    cut = min(cut, len(buf))
    got = []
    routes = {1: lambda *a: got.append(("msg", a[2])), 2: lambda *a: got.append(("one", a[2]))}
    runs = {1: lambda subjects, replies, payloads: got.extend(("msg", p) for p in payloads)}
    consumed, _ = deliver_routed(bytearray(buf[:cut]), routes, runs=runs)
    expected, end = [], 0
    for (kind, body), frame in zip(items, wire, strict=True):
        if kind == "other" or end + len(frame) > cut:
            break
        expected.append(("one" if kind == "one" else "msg", body))
        end += len(frame)
    assert (got, consumed) == (expected, end)
