"""NATS Streaming's bulk paths against the double: --exit-at-end on a durable ends at the channel's last
message without a quiet period, and the publisher's PubAck bookkeeping.

The quiet period (backend.CAUGHT_UP_QUIET) is made an hour here: a run that still waited for silence
would not end within run()'s bound and the test fails; one that knows the end returns at once.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from natsctl.backends.stan import backend as stan_backend
from natsctl.backends.stan import connect
from natsctl.core.model import OutgoingMessage, StartKind, StartPosition, SubscribeSpec
from tests.stan_double.fixtures import start_stan

ALL = StartPosition(StartKind.ALL)


@pytest.fixture(scope="module")
def double():
    server = start_stan("0.23.2")
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def no_quiet_period(monkeypatch):
    monkeypatch.setattr(stan_backend, "CAUGHT_UP_QUIET", 3600.0)


def run(coro, timeout: float = 20):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def msgs(count: int, first: int = 1) -> list[OutgoingMessage]:
    return [OutgoingMessage(b"m%d" % n) for n in range(first, first + count)]


async def read(backend, spec: SubscribeSpec, ack_upto: int | None = None, unacked: tuple[int, ...] = ()) -> list:
    """Every message until the subscription ends by itself; acked (all, or those up to ``ack_upto``,
    but never those in ``unacked``)."""
    sub = await backend.subscribe(spec)
    got = []
    try:
        async for batch in sub.batches():
            got.extend(batch)
            await sub.ack(
                [m for m in batch if (ack_upto is None or m.sequence <= ack_upto) and m.sequence not in unacked]
            )
    finally:
        await sub.close()
    return got


def test_a_durable_ends_at_the_last_message(double):
    name = f"exact:{uuid.uuid4().hex[:8]}"

    async def main():
        backend = await connect(double.settings(client_id=f"c-{uuid.uuid4().hex[:6]}"))
        try:
            summary = await backend.publish(name, msgs(300))
            got = await read(backend, SubscribeSpec(name, durable="d", start=ALL, stop_at_end=True))
            again = await read(backend, SubscribeSpec(name, durable="one", start=ALL, stop_at_end=True))
        finally:
            await backend.close()
        return summary, got, again

    summary, got, again = run(main())
    assert summary.confirmed == 300
    assert [m.sequence for m in got] == list(range(1, 301))
    assert [m.data for m in got[:2]] == [b"m1", b"m2"]
    assert len(again) == 300


def test_a_resumed_durable_gets_its_unacked_then_the_new_and_ends(double):
    name = f"exact:{uuid.uuid4().hex[:8]}"
    client_id = f"c-{uuid.uuid4().hex[:6]}"

    async def main():
        backend = await connect(double.settings(client_id=client_id))
        try:
            await backend.publish(name, msgs(5))
            spec = dict(durable="resume", start=ALL, stop_at_end=True)
            first = await read(backend, SubscribeSpec(name, **spec), ack_upto=2)  # 3, 4, 5 stay unacked
            await backend.publish(name, msgs(2, first=6))
            second = await read(backend, SubscribeSpec(name, **spec))
            # Nothing new: the one case left to the quiet period, made short again for this read only.
            stan_backend.CAUGHT_UP_QUIET = 0.2
            third = await read(backend, SubscribeSpec(name, **spec, unsubscribe=True))
        finally:
            await backend.close()
        return first, second, third

    first, second, third = run(main())
    assert [m.sequence for m in first] == [1, 2, 3, 4, 5]
    assert [(m.sequence, m.redelivered) for m in second] == [(3, True), (4, True), (5, True), (6, False), (7, False)]
    assert third == []


def test_a_durable_with_only_a_hole_to_redeliver_ends_after_it(double):
    """Its last run got every message but did not ack 3: resumed, only 3 comes (redelivered), then
    nothing. It is not left waiting for the channel's last message, which it will never see again."""
    name = f"exact:{uuid.uuid4().hex[:8]}"

    async def main():
        backend = await connect(double.settings(client_id=f"c-{uuid.uuid4().hex[:6]}"))
        try:
            await backend.publish(name, msgs(5))
            spec = dict(durable="hole", start=ALL, stop_at_end=True)
            first = await read(backend, SubscribeSpec(name, **spec), unacked=(3,))
            stan_backend.CAUGHT_UP_QUIET = 0.2  # only redeliveries, then silence: the quiet period decides
            second = await read(backend, SubscribeSpec(name, **spec, unsubscribe=True))
        finally:
            await backend.close()
        return first, second

    first, second = run(main())
    assert [m.sequence for m in first] == [1, 2, 3, 4, 5]
    assert [(m.sequence, m.redelivered) for m in second] == [(3, True)]


def test_pub_acks_given_up_leave_the_publisher_registering_where_acks_are_looked_up(double):
    """After ``forget`` (no PubAck within the timeout) the next PubMsgs' acks are still found."""

    async def main():
        backend = await connect(double.settings(client_id=f"c-{uuid.uuid4().hex[:6]}"))
        try:
            client = backend.client
            heard: list[tuple[int, str]] = []
            client.await_acks(lambda token, error: heard.append((token, error)))
            encoder = client.pub_encoder(f"acks:{uuid.uuid4().hex[:8]}")
            encoder.frame(1, b"a")  # built, never sent: its PubAck will not come
            client.forget("no confirmation")
            awaited_after_forget = client.awaiting_acks
            from natsctl.transport.fast import send_raw, wake_flusher

            await send_raw(client.nc, encoder.frame(2, b"b"))
            await wake_flusher(client.nc)
            while len(heard) < 2:  # bounded by run()
                await asyncio.sleep(0.01)
            return heard, awaited_after_forget, client.awaiting_acks
        finally:
            await backend.close()

    heard, awaited_after_forget, awaited_at_end = run(main())
    assert heard == [(1, "no confirmation"), (2, "")]
    assert awaited_after_forget == 0 and awaited_at_end == 0


def test_sub_json_on_a_durable_writes_the_envelopes_itself_and_acks_them(double, monkeypatch, tmp_path):
    """`sub --json --durable` takes StanSubscription.rendered_batches (no Message each): the bytes a
    Message each and JsonWriter give, every message acked (a second run of the durable gets nothing)."""
    import types

    from natsctl.cli.outlet import Outlet
    from natsctl.cli.render.messages import JsonWriter
    from natsctl.cli.sub import _consume_to_stdout

    name = f"json:{uuid.uuid4().hex[:8]}"
    client_id = f"c-{uuid.uuid4().hex[:6]}"
    payloads = [b"m%d" % n for n in range(1, 251)] + [b"\xff\xfe binary", b'{"q":"\\"","n":"\\n"}', "é".encode()]
    out = tmp_path / "out.jsonl"

    async def main():
        backend = await connect(double.settings(client_id=client_id))
        try:
            await backend.publish(name, [OutgoingMessage(p) for p in payloads])
            # The Message path, for reference: another durable, read through batches()
            reference = await read(backend, SubscribeSpec(name, durable="ref", start=ALL, stop_at_end=True))
            spec = SubscribeSpec(name, durable="json", start=ALL, stop_at_end=True)
            sub = await backend.subscribe(spec)

            def no_messages(self, items):
                raise AssertionError("the plain JSON reader built Messages")

            accept_plain = stan_backend.StanSubscription._accept_plain
            monkeypatch.setattr(stan_backend.StanSubscription, "_accept_plain", no_messages)
            with open(out, "wb") as file:
                stop = types.SimpleNamespace(event=asyncio.Event())
                try:
                    await _consume_to_stdout(sub, "json", stop, Outlet(file.fileno()))
                finally:
                    await sub.close()
            monkeypatch.setattr(stan_backend.StanSubscription, "_accept_plain", accept_plain)
            monkeypatch.setattr(stan_backend, "CAUGHT_UP_QUIET", 0.2)  # nothing new: the quiet period ends it
            again = await read(backend, spec)
        finally:
            await backend.close()
        return reference, again

    reference, again = run(main())
    assert len(reference) == len(payloads)
    assert out.read_bytes() == JsonWriter().encode(reference)
    assert again == []  # every message was acked


def test_a_durable_read_imports_neither_protobuf_nor_nats_jetstream_package(double, tmp_path):
    """Start-up: NATS Streaming's messages go through backends/stan/wire.py, and nats-py's JetStream
    package (nats.js) is left unexecuted (natsctl/transport/__init__.py) unless something uses it."""
    import json
    import os
    import subprocess
    import sys

    name = f"lean:{uuid.uuid4().hex[:8]}"

    async def fill():
        backend = await connect(double.settings(client_id=f"c-{uuid.uuid4().hex[:6]}"))
        try:
            await backend.publish(name, msgs(3))
        finally:
            await backend.close()

    run(fill())
    probe = (
        "import json, sys\n"
        "from natsctl.cli.main import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "json.dump({'code': code, 'modules': sorted(sys.modules)}, open(sys.argv[0] + '.json', 'w'))\n"
    )
    script = tmp_path / "probe.py"
    script.write_text(probe)
    args = ["sub", name, "--all", "--exit-at-end", "--json", "--durable", "d", "--unsubscribe", *double.cli_args()]
    done = subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        env={**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")},
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    result = json.loads((tmp_path / "probe.py.json").read_text())
    assert result["code"] in (0, None), done.stderr
    assert len(done.stdout.splitlines()) == 3
    modules = set(result["modules"])
    assert "nats" in modules and "nats.js" in modules
    assert not [m for m in modules if m.startswith(("google.protobuf", "nats.js."))]
