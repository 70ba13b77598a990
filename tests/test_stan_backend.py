"""StanBackend end to end against the NATS Streaming double on a real nats-server."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from datetime import UTC, datetime

import pytest

from natsctl.backends.stan import connect
from natsctl.backends.stan.backend import StanBackend
from natsctl.backends.stan.errors import server_error
from natsctl.core import errors
from natsctl.core.model import OutgoingMessage, StartKind, StartPosition, SubscribeSpec
from tests.stan_double.fixtures import ROOT, start_stan
from tests.stan_double.replay import FIXTURES

FAST_PINGS = {"ping_interval": 0.2, "ping_max_out": 3}


def run(coro, timeout: float = 20):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


@pytest.fixture(scope="module", params=["0.17.0", "0.23.2"])
def shared(request):
    """One double per recorded version for the tests that only need their own channels."""
    server = start_stan(request.param)
    yield server
    server.cleanup()


def channel() -> str:
    return f"ch:{uuid.uuid4().hex[:8]}"


def msgs(*texts: str) -> list[OutgoingMessage]:
    return [OutgoingMessage(t.encode(), source=f"line {n + 1}") for n, t in enumerate(texts)]


async def publish(settings, name: str, *texts: str) -> None:
    backend = await connect(settings)
    try:
        summary = await backend.publish(name, msgs(*texts))
        assert summary.confirmed == len(texts), summary
    finally:
        await backend.close()


async def collect(backend, spec: SubscribeSpec, *, want: int | None = None, wait: float = 5, ack=True):
    """Sequences and data delivered until ``want`` messages, the end of the subscription or ``wait``."""
    sub = await backend.subscribe(spec)
    got = []

    async def loop():
        async for batch in sub.batches():
            got.extend(batch)
            if ack:
                await sub.ack(batch)
            if want is not None and len(got) >= want:
                return

    try:
        await asyncio.wait_for(loop(), wait)
    except TimeoutError:
        pass
    await sub.close()
    return got


def seqs(messages) -> list[int]:
    return [m.sequence for m in messages]


# ---- publish


def test_publish_confirms_in_input_order(shared):
    async def main():
        backend = await connect(shared.settings())
        acked = []
        try:
            summary = await backend.publish(channel(), msgs(*"abcde"), on_ack=lambda a: acked.append(a.index))
        finally:
            await backend.close()
        return summary, acked

    summary, acked = run(main())
    assert (summary.published, summary.confirmed, summary.failed, summary.stream) == (5, 5, [], "")
    assert acked == [0, 1, 2, 3, 4]


def test_headers_and_msg_ids_are_jetstream_only(shared):
    async def main(message):
        backend = await connect(shared.settings())
        try:
            await backend.publish(channel(), [message])
        finally:
            await backend.close()

    assert StanBackend.supports_headers is False and StanBackend.kind == "stan"
    with pytest.raises(errors.Unsupported, match="headers exist on JetStream only"):
        run(main(OutgoingMessage(b"x", headers={"a": ["b"]})))
    with pytest.raises(errors.Unsupported, match="JetStream only"):
        run(main(OutgoingMessage(b"x", msg_id="1")))


def test_bulk_publish_is_pipelined(shared):
    """Pipelining seen on the wire, not timed (speed is measured in bench/): a spy connection sees the
    PubMsgs and the PubAcks in causal order, so PubMsgs seen minus PubAcks seen is what was in flight."""
    import nats

    async def main():
        spy = await nats.connect(shared.url)
        name = channel()
        in_flight = {"now": 0, "max": 0, "acks": 0}

        async def on_wire(msg):  # one subscription: its callbacks run in wire order
            if msg.subject.startswith("_STAN.pub.") and msg.subject.endswith("." + name):
                in_flight["now"] += 1
                in_flight["max"] = max(in_flight["max"], in_flight["now"])
            elif msg.subject.startswith("_STAN.acks."):
                in_flight["now"] -= 1
                in_flight["acks"] += 1

        await spy.subscribe("_STAN.>", cb=on_wire)
        await spy.flush()
        backend = await connect(shared.settings())
        try:

            async def all_acks_seen(count):
                while in_flight["acks"] < count:  # bounded by run()'s timeout
                    await asyncio.sleep(0.02)
                peak = in_flight["max"]
                in_flight.update(now=0, max=0, acks=0)
                return peak

            for i in range(200):  # naive: one PubAck at a time
                await backend.publish(name, msgs(str(i)))
            naive = await all_acks_seen(200)
            summary = await backend.publish(name, msgs(*[str(i) for i in range(2000)]))
            bulk = await all_acks_seen(2000)
        finally:
            await backend.close()
            await spy.close()
        return summary, naive, bulk

    summary, naive, bulk = run(main(), timeout=60)
    assert summary.confirmed == 2000
    assert naive == 1, naive  # the spy itself is sound: one at a time shows as one in flight
    assert bulk > 10, bulk  # many PubMsgs out before their PubAcks came back


# ---- start positions, stop conditions


def test_every_start_position(shared):
    name = channel()
    settings = shared.settings()

    async def main():
        await publish(settings, name, "1", "2", "3")
        await asyncio.sleep(1.0)
        middle = datetime.now(UTC)
        await publish(settings, name, "4", "5")
        backend = await connect(settings)
        try:
            results = {}
            for label, start in {
                "all": StartPosition(StartKind.ALL),
                "last": StartPosition(StartKind.LAST),
                "seq": StartPosition(StartKind.SEQUENCE, sequence=2),
                "time": StartPosition(StartKind.TIME, time=middle),
                "new": StartPosition(StartKind.NEW),
            }.items():
                spec = SubscribeSpec(name, start=start, stop_at_end=True)
                results[label] = seqs(await collect(backend, spec))
            live = backend.subscribe(SubscribeSpec(name, start=StartPosition(StartKind.NEW)))
            sub = await live
            await publish(settings, name, "6")
            async for batch in sub.batches():
                results["new-live"] = seqs(batch)
                break
            await sub.close()
        finally:
            await backend.close()
        return results

    assert run(main()) == {
        "all": [1, 2, 3, 4, 5],
        "last": [5],
        "seq": [2, 3, 4, 5],
        "time": [4, 5],
        "new": [],
        "new-live": [6],
    }


def test_stop_conditions(shared):
    name = channel()
    settings = shared.settings()

    async def main():
        backend = await connect(settings)
        try:
            empty = await collect(
                backend, SubscribeSpec(channel(), start=StartPosition(StartKind.ALL), stop_at_end=True), wait=3
            )
            await backend.publish(name, msgs(*"abcdef"))
            all_ = StartPosition(StartKind.ALL)
            to_seq = await collect(backend, SubscribeSpec(name, start=all_, to_sequence=3), wait=3)
            until = await collect(
                backend, SubscribeSpec(name, start=all_, until=datetime(2000, 1, 1, tzinfo=UTC)), wait=2
            )
            beyond = await collect(
                backend,
                SubscribeSpec(name, start=StartPosition(StartKind.SEQUENCE, sequence=99), stop_at_end=True),
                wait=3,
            )
            replay = await collect(
                backend, SubscribeSpec(name, start=all_, ack=False, stop_at_end=True), wait=3, ack=False
            )
        finally:
            await backend.close()
        return empty, to_seq, until, beyond, replay

    empty, to_seq, until, beyond, replay = run(main())
    assert empty == [] and beyond == [] and until == []
    assert seqs(to_seq) == [1, 2, 3]
    assert seqs(replay) == [1, 2, 3, 4, 5, 6] and replay[0].data == b"a"


# ---- durables, queues, acks


def test_durable_close_keeps_and_unsubscribe_deletes(shared):
    name = channel()
    settings = shared.settings(client_id=f"c-{uuid.uuid4().hex[:6]}")

    async def main():
        await publish(shared.settings(), name, "1", "2")
        backend = await connect(settings)
        try:
            spec = dict(start=StartPosition(StartKind.ALL), stop_at_end=True)
            first_keep = await collect(backend, SubscribeSpec(name, durable="keep", **spec))
            first_drop = await collect(backend, SubscribeSpec(name, durable="drop", unsubscribe=True, **spec))
            await backend.publish(name, msgs("3"))
            again_keep = await collect(backend, SubscribeSpec(name, durable="keep", **spec))
            again_drop = await collect(backend, SubscribeSpec(name, durable="drop", **spec))
        finally:
            await backend.close()
        return first_keep, first_drop, again_keep, again_drop

    first_keep, first_drop, again_keep, again_drop = run(main())
    assert seqs(first_keep) == seqs(first_drop) == [1, 2]
    assert seqs(again_keep) == [3]  # resumed after the last ack
    assert seqs(again_drop) == [1, 2, 3]  # deleted: starts over


def test_durable_resumes_after_sigkill(shared):
    name = channel()
    client_id = f"killed-{uuid.uuid4().hex[:6]}"
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from natsctl.backends.stan import connect
        from natsctl.core.settings import Settings
        from natsctl.core.model import SubscribeSpec, StartPosition, StartKind
        async def main():
            backend = await connect(Settings(servers=[{shared.url!r}], cluster_id={shared.cluster_id!r}, client_id={client_id!r}))
            sub = await backend.subscribe(SubscribeSpec({name!r}, durable="worker", start=StartPosition(StartKind.ALL)))
            async for batch in sub.batches():
                for m in batch:
                    if m.sequence <= 3:
                        await sub.ack([m])
                    print(m.sequence, flush=True)
        asyncio.run(main())
        """
    )

    async def main():
        await publish(shared.settings(), name, *"abcd")
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            seen = [int(proc.stdout.readline()) for _ in range(4)]
            await asyncio.sleep(0.2)  # the acks reach the server
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        await publish(shared.settings(), name, "e")
        backend = await connect(shared.settings(client_id=client_id))  # replaces the dead registration
        try:
            again = await collect(
                backend, SubscribeSpec(name, durable="worker", start=StartPosition(StartKind.ALL)), want=2
            )
        finally:
            await backend.close()
        return seen, again

    seen, again = run(main())
    assert seen == [1, 2, 3, 4]
    assert sorted(seqs(again)) == [4, 5]  # 4 was never acked: redelivered
    assert [m.redelivered for m in again if m.sequence == 4] == [True]


def test_queue_group_is_disjoint_and_complete(shared):
    name = channel()

    async def main():
        members = [await connect(shared.settings()) for _ in range(2)]
        try:
            subs = [await m.subscribe(SubscribeSpec(name, queue="workers")) for m in members]
            got = [[], []]

            async def drain(i):
                async for batch in subs[i].batches():
                    got[i].extend(seqs(batch))
                    await subs[i].ack(batch)

            tasks = [asyncio.create_task(drain(i)) for i in range(2)]
            await publish(shared.settings(), name, *[str(i) for i in range(20)])
            await asyncio.sleep(0.5)
            for sub in subs:
                sub.stop()
            await asyncio.gather(*tasks)
            for sub in subs:
                await sub.close()
        finally:
            for m in members:
                await m.close()
        return got

    one, two = run(main())
    assert one and two
    assert not set(one) & set(two)
    assert sorted(one + two) == list(range(1, 21))


def test_durable_queue_group_survives_its_members(shared):
    name = channel()

    async def main():
        spec = SubscribeSpec(name, queue="workers", durable="svc", start=StartPosition(StartKind.ALL))
        await publish(shared.settings(), name, "1", "2")
        first = await connect(shared.settings())
        try:
            got1 = await collect(first, spec, want=2)
        finally:
            await first.close()  # the last member leaves: the group stays
        await publish(shared.settings(), name, "3")
        second = await connect(shared.settings())
        try:
            got2 = await collect(second, spec, want=1, wait=3)
        finally:
            await second.close()
        return got1, got2

    got1, got2 = run(main())
    assert seqs(got1) == [1, 2] and seqs(got2) == [3]


def test_redelivery_after_ack_wait_and_max_in_flight(shared):
    name = channel()

    async def main():
        await publish(shared.settings(), name, "1", "2", "3")
        backend = await connect(shared.settings())
        try:
            spec = SubscribeSpec(name, start=StartPosition(StartKind.ALL), ack_wait=1, max_in_flight=1)
            sub = await backend.subscribe(spec)
            events = []
            start = time.monotonic()
            async for batch in sub.batches():
                for m in batch:
                    events.append((m.sequence, m.redelivered, m.deliveries, round(time.monotonic() - start, 1)))
                if len(events) == 2:  # seq 1 again after the ack wait: now ack it
                    await sub.ack(batch)
                if len(events) == 4:
                    await sub.ack(batch)
                if len(events) == 5:
                    break
            await sub.close()
        finally:
            await backend.close()
        return events

    events = run(main())
    assert [e[:3] for e in events] == [(1, False, 1), (1, True, 2), (2, False, 1), (2, True, 2), (3, False, 1)]
    assert events[1][3] >= 0.8  # redelivered after the 1 s ack wait, not before (how late is not asserted)
    assert events[3][3] - events[2][3] >= 0.8  # max in flight 1: nothing else meanwhile


def test_nak_is_a_no_op_and_the_message_comes_back(shared):
    name = channel()

    async def main():
        await publish(shared.settings(), name, "1")
        backend = await connect(shared.settings())
        try:
            sub = await backend.subscribe(SubscribeSpec(name, start=StartPosition(StartKind.ALL), ack_wait=1))
            seen = []
            async for batch in sub.batches():
                seen.extend(batch)
                if len(seen) == 1:
                    await sub.nak(batch[0])
                else:
                    await sub.ack(batch)
                    break
            await sub.close()
        finally:
            await backend.close()
        return seen

    seen = run(main())
    assert [(m.sequence, m.redelivered) for m in seen] == [(1, False), (1, True)]


# ---- lost connections


def test_killed_server_is_detected_without_hanging():
    server = start_stan("0.23.2")
    try:

        async def main():
            backend = await StanBackend.open(server.settings(), **FAST_PINGS)
            sub = await backend.subscribe(SubscribeSpec("ticket:created"))
            server.kill_double()
            start = time.monotonic()
            try:
                async for _ in sub.batches():
                    pass
            finally:
                elapsed = time.monotonic() - start
                await backend.close()
            return elapsed

        with pytest.raises(errors.ConnectionFailed, match="pings went unanswered") as caught:
            run(main(), timeout=10)
        assert "\n" not in caught.value.line()
    finally:
        server.cleanup()


def test_dropped_client_is_detected_from_the_ping_response(shared):
    async def main():
        backend = await StanBackend.open(shared.settings(), **FAST_PINGS)
        other = await connect(shared.settings())
        try:
            sub = await backend.subscribe(SubscribeSpec(channel()))
            # Another connection closes our registration, as the g6 recording does.
            await other.client._request(other.client.subjects.close, _close_request(backend.client_id))
            async for _ in sub.batches():
                pass
        finally:
            await other.close()
            await backend.close()

    with pytest.raises(errors.ConnectionFailed, match="replaced or is no longer registered"):
        run(main(), timeout=10)


def _close_request(client_id: str) -> bytes:
    from natsctl.backends.stan import proto

    return proto.encode("CloseRequest", clientID=client_id)


def test_publish_after_the_server_died_fails_fast():
    server = start_stan("0.23.2")
    try:

        async def main():
            backend = await StanBackend.open(server.settings(), **FAST_PINGS)
            server.kill_double()
            try:
                await backend.publish("ticket:created", msgs("x"))
            finally:
                await backend.close()

        with pytest.raises(errors.ConnectionFailed):
            run(main(), timeout=10)
    finally:
        server.cleanup()


# ---- errors


def test_unknown_cluster_id(shared):
    settings = shared.settings(cluster_id="no-such-cluster", timeout=1)
    with pytest.raises(
        errors.ConnectionFailed,
        match=r"no NATS Streaming server with cluster id 'no-such-cluster' answered at nats://127\.0\.0\.1",
    ):
        run(connect(settings))


@pytest.mark.parametrize("version", ["0.17.0", "0.23.2"])
def test_duplicate_client_id_while_alive(version):
    server = start_stan(version)
    try:

        async def main():
            first = await connect(server.settings(client_id="twin"))
            try:
                await connect(server.settings(client_id="twin"))
            finally:
                await first.close()

        with pytest.raises(errors.UsageError, match="stan: clientID already registered"):
            run(main())
    finally:
        server.cleanup()


def test_bad_inputs_are_usage_errors(shared):
    async def main(spec=None, client_id=None):
        backend = await connect(shared.settings(client_id=client_id))
        try:
            if spec:
                await backend.subscribe(spec)
        finally:
            await backend.close()

    cases = [
        (dict(spec=SubscribeSpec("foo.*")), "invalid channel name"),
        (dict(spec=SubscribeSpec("foo..bar")), "invalid channel name"),
        (dict(spec=SubscribeSpec("ok", ack_wait=0.5)), "at least 1s"),
        (dict(spec=SubscribeSpec("ok", max_in_flight=0)), "at least 1"),
        (dict(spec=SubscribeSpec("ok", durable="a:b", queue="q")), "cannot contain ':'"),
        (dict(client_id="bad id"), "invalid client id"),
    ]
    for kwargs, text in cases:
        with pytest.raises(errors.UsageError, match=text):
            run(main(**kwargs))


def test_duplicate_durable_registration(shared):
    async def main():
        backend = await connect(shared.settings())
        try:
            spec = SubscribeSpec(channel(), durable="same")
            await backend.subscribe(spec)
            await backend.subscribe(spec)
        finally:
            await backend.close()

    with pytest.raises(errors.UsageError, match="already active"):
        run(main())


def test_every_recorded_error_string_maps_to_a_one_line_error():
    recorded = json.loads((FIXTURES / "error_strings.json").read_text())
    expected = {
        "stan: clientID already registered": errors.UsageError,
        "client has been replaced or is no longer registered": errors.ConnectionFailed,
        "stan: unknown clientID": errors.ConnectionFailed,
        "can't find clientID: ghost-client": errors.ConnectionFailed,
        "stan: invalid subscription": errors.NotFound,
        "stan: invalid publish request": errors.ServerError,
        "stan: invalid subscription request": errors.ServerError,
        "stan: invalid connection request": errors.ServerError,
        "stan: clientID missing": errors.ServerError,
    }
    assert len(recorded) == 17
    for entry in recorded:
        error = server_error(entry["error"], client_id="c", channel="ch", durable="d")
        assert isinstance(error, expected.get(entry["error"], errors.UsageError)), entry["error"]
        assert "\n" not in error.line() and error.line()


# ---- heartbeats and the process fixture


def test_heartbeats_are_answered_and_silence_is_dropped():
    server = start_stan("0.23.2", hb_interval=0.2, hb_timeout=0.2, hb_fail_count=1)  # dropped after 0.8 s
    try:

        async def main():
            import nats

            from natsctl.backends.stan import proto

            backend = await connect(server.settings())
            silent = await nats.connect(server.url)
            try:
                hb_inbox = silent.new_inbox()
                await silent.subscribe(hb_inbox)  # receives heartbeats, never answers
                request = proto.encode(
                    "ConnectRequest", clientID="silent", heartbeatInbox=hb_inbox, protocol=1, connID=b"x"
                )
                response = proto.decode(
                    "ConnectResponse", (await silent.request(f"_STAN.discover.{server.cluster_id}", request)).data
                )
                await asyncio.sleep(1.5)
                summary = await backend.publish(channel(), msgs("still here"))
                pub = proto.encode("PubMsg", clientID="silent", guid="g", subject="x", data=b"x", connID=b"x")
                ack = proto.decode("PubAck", (await silent.request(response.pubPrefix + ".x", pub)).data)
            finally:
                await silent.close()
                await backend.close()
            return summary, ack

        summary, ack = run(main())
        assert summary.confirmed == 1  # natsctl answered every heartbeat
        assert ack.error == "stan: invalid publish request"  # the silent client was dropped
    finally:
        server.cleanup()


def test_process_fixture_kill_and_restart(stan_server):
    async def main():
        await publish(stan_server.settings(), "x", "1")
        stan_server.restart_double()  # memory store: the channel is gone
        backend = await connect(stan_server.settings())
        try:
            return await collect(backend, SubscribeSpec("x", start=StartPosition(StartKind.ALL), stop_at_end=True))
        finally:
            await backend.close()

    assert run(main()) == []
    stan_server.kill_double()
    with pytest.raises(errors.ConnectionFailed, match="no NATS Streaming server"):
        run(connect(stan_server.settings(timeout=1)))


def read_since_the_third(shared) -> list[int]:
    """Publish 1 and 2, then 3 a moment later; read from the time between them (--since)."""
    name = channel()
    settings = shared.settings()

    async def main():
        await publish(settings, name, "1", "2")
        await asyncio.sleep(0.3)
        middle = datetime.now(UTC)
        await publish(settings, name, "3")
        backend = await connect(settings)
        try:
            spec = SubscribeSpec(name, start=StartPosition(StartKind.TIME, time=middle), stop_at_end=True)
            return seqs(await collect(backend, spec))
        finally:
            await backend.close()

    return run(main())


def test_since_start_survives_a_slow_probe(shared, monkeypatch):
    """--since is sent as a delta from *now*: it must be computed after the end-of-channel probe,
    however long that takes (a loaded machine once lost sequences 4-5 of the test above)."""
    from natsctl.backends.stan.backend import StanSubscription

    probe = StanSubscription._last_sequence

    async def slow_probe(self):
        found = await probe(self)
        await asyncio.sleep(0.5)  # the probe's round trips on a loaded machine
        return found

    monkeypatch.setattr(StanSubscription, "_last_sequence", slow_probe)
    assert read_since_the_third(shared) == [3]


def test_since_start_survives_a_slow_subscribe(shared, monkeypatch):
    """The server applies a --since delta to its own clock when the request arrives: however late
    that is, the first message at or after the start is still delivered, and none before it."""
    from natsctl.backends.stan.protocol import StanClient

    subscribe = StanClient.subscribe

    async def slow_subscribe(self, *args, **kwargs):
        await asyncio.sleep(0.5)  # a loaded machine between computing the delta and the server using it
        return await subscribe(self, *args, **kwargs)

    monkeypatch.setattr(StanClient, "subscribe", slow_subscribe)
    assert read_since_the_third(shared) == [3]
