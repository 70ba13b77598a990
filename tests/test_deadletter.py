"""Issue 15: a failing `sub --exec` handler gets bounded, spaced redelivery; a message out of
deliveries is parked in a dead-letter channel (once, even across kill -9), looked at, sent back, and
collected from consumers natsctl did not create. Real nats-server and the NATS Streaming double."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from itertools import accumulate
from typing import Any

import nats
import pytest
from nats.js import api

from natsctl.core.deadletter import DEFAULT_BACKOFF, PARKING_HEADERS
from natsctl.core.names import stream_name_for
from tests.helpers import ClientLoop, as_json, failed, ok
from tests.servers import NatsServer
from tests.stan_double.fixtures import StanServer, start_stan


@pytest.fixture(scope="module")
def js() -> Iterator[NatsServer]:
    server = NatsServer(name="deadletter").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def stan() -> Iterator[StanServer]:
    server = start_stan("0.23.2", monitoring=True)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def client(js) -> Iterator[Any]:
    """A nats-py connection to the module's server, in a background loop."""
    loop = ClientLoop()
    nc = loop.run(nats.connect(js.url))
    loop.nc = nc  # type: ignore[attr-defined]
    loop.js = nc.jetstream()  # type: ignore[attr-defined]
    try:
        yield loop
    finally:
        loop.run(nc.close())
        loop.close()


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def stream_msgs(client, stream: str) -> int:
    async def count() -> int:
        try:
            return (await client.js.stream_info(stream)).state.messages
        except nats.js.errors.NotFoundError:
            return 0

    return client.run(count())


def consumer(client, stream: str, name: str) -> api.ConsumerInfo:
    return client.run(client.js.consumer_info(stream, name))


def capture(client, subject: str) -> list[tuple[str, dict]]:
    """Advisories (or any JSON) published to ``subject`` from now on."""
    seen: list[tuple[str, dict]] = []

    async def on(msg) -> None:
        seen.append((msg.subject, json.loads(msg.data)))

    async def subscribe() -> None:
        await client.nc.subscribe(subject, cb=on)
        await client.nc.flush()

    client.run(subscribe())
    return seen


def handler(tmp_path, fail_on: str, code: int = 3) -> tuple[str, Any]:
    """A handler logging "<payload> <deliveries>" per run; it fails (stderr line, exit code) on ``fail_on``."""
    log = tmp_path / "runs.log"
    script = tmp_path / "handle.sh"
    script.write_text(
        "#!/bin/sh\n"
        "read payload\n"
        f'echo "$payload $NATSCTL_DELIVERIES" >> {log}\n'
        f'if [ "$payload" = "{fail_on}" ]; then echo "cannot handle $payload" >&2; echo "giving up" >&2; exit {code}; fi\n'
    )
    script.chmod(0o755)
    return str(script), log


def runs(log) -> list[tuple[str, int]]:
    if not log.exists():
        return []
    return [(p, int(d)) for p, d in (line.split() for line in log.read_text().splitlines())]


def stop(proc: subprocess.Popen) -> tuple[bytes, bytes]:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    return out, err


def parked_json(cli, args: list[str], channel: str, *extra: str) -> list[dict]:
    return as_json(cli.run("dead-letter", "ls", channel, "--json", *extra, *args))


# --- bounded, spaced redelivery and parking ------------------------------------------------------------


def test_poison_message_delivered_max_times_parked_once_and_terminated_jetstream(cli, js, client, tmp_path):
    args = ["--server", js.url]
    lines = "\n".join(["good1", "poison", "good2", "good3"])
    ok(cli.run("pub", "orders.a", "--lines", *args, input=lines + "\n"))
    terminated = capture(client, f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{stream_name_for('orders.a')}.w")
    script, log = handler(tmp_path, "poison")
    flags = ["--all", "--durable", "w", "--queue", "w", "--exec", script, "--max-deliver", "4", "--backoff", "1s,2s"]
    proc = cli.popen("sub", "orders.a", *flags, *args)
    try:
        wait_for(lambda: stream_msgs(client, stream_name_for("dead-letter.orders.a")) == 1, "parked")
        wait_for(lambda: terminated, "terminated advisory")
    finally:
        _, err = stop(proc)
    poison = [d for p, d in runs(log) if p == "poison"]
    assert poison == [1, 2, 3, 4]  # the server's delivery count, as the handler saw it, and its own log
    assert [p for p, _ in runs(log)][:3] == ["good1", "poison", "good2"]  # the others went on meanwhile
    assert sorted(p for p, d in runs(log) if p != "poison") == ["good1", "good2", "good3"]
    # the server terminated it after its 4th delivery, as natsctl asked
    assert [(a["stream_seq"], a["deliveries"], a["reason"]) for _, a in terminated] == [(2, 4, "natsctl parked")]
    info = consumer(client, stream_name_for("orders.a"), "w")
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    assert info.config.max_deliver == 5 and info.config.metadata["natsctl_max_deliver"] == "4"
    # parked once, with every header
    parked = parked_json(cli, args, "orders.a")
    assert len(parked) == 1
    assert {k: parked[0][k] for k in ("channel", "channel_seq", "subject", "deliveries", "consumer", "size")} == {
        "channel": "orders.a",
        "channel_seq": 2,
        "subject": "orders.a",
        "deliveries": 4,
        "consumer": "w:w",
        "size": 6,
    }
    assert parked[0]["reason"] == "--exec exit status 3: cannot handle poison | giving up"
    raw = json.loads(ok(cli.run("replay", "dead-letter.orders.a", "--json", *args)))
    assert raw["data"] == "poison"
    assert set(raw["headers"]) == {*PARKING_HEADERS, "Nats-Msg-Id"}
    assert raw["headers"]["Nats-Msg-Id"] == ["natsctl-dl:orders.a:2:w:w"]
    assert raw["headers"]["Natsctl-Dl-Published"][0].startswith(time.strftime("%Y-"))
    assert "--exec exited 3 for sequence 2 (delivery 2 of 4); it will be redelivered in 2s" in err.decode()


def test_poison_message_on_nats_streaming_parked_in_a_json_wrapper(cli, stan, tmp_path):
    args = stan.cli_args()
    env = {"NATS_MONITOR_URL": stan.monitor_url or ""}
    ok(cli.run("pub", "st.orders", "--lines", *args, input="poison\ngood1\n"))
    script, log = handler(tmp_path, "poison")
    flags = [
        "--all",
        "--durable",
        "w",
        "--client-id",
        "st-w",
        "--exec",
        script,
        "--max-deliver",
        "3",
        "--backoff",
        "5s",
    ]
    proc = cli.popen("sub", "st.orders", *flags, "--ack-wait", "1s", *args, env=env)
    try:
        wait_for(lambda: parked_json(cli, args, "st.orders"), "parked on NATS Streaming")
    finally:
        _, err = stop(proc)
    told = err.decode()
    assert "NATS Streaming has no delayed redelivery: --backoff is not used" in told
    assert "--exec exited 3 for sequence 1 (delivery 2 of 3); it will be redelivered after --ack-wait (1s)" in told
    assert [d for p, d in runs(log) if p == "poison"] == [1, 2, 3]
    assert ("good1", 1) in runs(log)
    (parked,) = parked_json(cli, args, "st.orders")
    assert (parked["channel"], parked["channel_seq"], parked["deliveries"], parked["consumer"]) == (
        "st.orders",
        1,
        3,
        "w",
    )
    assert parked["reason"] == "--exec exit status 3: cannot handle poison | giving up"
    wrapper = json.loads(ok(cli.run("replay", "dead-letter.st.orders", "--raw", *args, env=env)))
    assert wrapper["natsctl_dead_letter"] == 1 and wrapper["data"] == "poison" and wrapper["encoding"] == "utf-8"
    assert wrapper["id"] == "natsctl-dl:st.orders:1:w"


def test_default_spacing_bounds_a_failing_handler(cli, js, client, tmp_path):
    """No flag: redeliveries follow the default backoff (1s, 5s, 30s...): no hot loop."""
    args = ["--server", js.url]
    ok(cli.run("pub", "always.fails", "x", *args))
    script, log = handler(tmp_path, "x", code=1)
    proc = cli.popen("sub", "always.fails", "--all", "--durable", "d", "--exec", script, *args)
    started = time.monotonic()
    try:
        wait_for(lambda: len(runs(log)) >= 2, "a second try")
        while time.monotonic() - started < 3:  # the window measured: a failing handler for 3 seconds
            time.sleep(0.1)
    finally:
        stop(proc)
    elapsed = time.monotonic() - started
    bound = 1 + sum(1 for t in accumulate(DEFAULT_BACKOFF) if t <= elapsed)
    assert 2 <= len(runs(log)) <= bound == 2  # the first run, then one after 1s; the next waits 5s
    assert consumer(client, stream_name_for("always.fails"), "d").num_ack_pending == 1  # still there, not lost


def test_kill_9_between_parking_and_terminate_parks_exactly_once(cli, js, client, tmp_path):
    args = ["--server", js.url]
    ok(cli.run("pub", "crashy", "poison", *args))
    script, log = handler(tmp_path, "poison")
    flags = ["--all", "--durable", "c", "--exec", script, "--max-deliver", "2", "--backoff", "1s", "--ack-wait", "1s"]
    dead_stream = stream_name_for("dead-letter.crashy")
    proc = cli.popen("sub", "crashy", *flags, *args, env={"NATSCTL_FAULT": "pause-after-park"})
    try:
        wait_for(lambda: stream_msgs(client, dead_stream) == 1, "the parked copy stored")
        wait_for(lambda: b"fault injection" in _peek(proc), "paused before the terminate")
    finally:
        proc.kill()  # kill -9
        proc.wait(10)
    assert consumer(client, "crashy", "c").num_ack_pending == 1  # not terminated
    again = cli.popen("sub", "crashy", *flags, *args)
    try:
        wait_for(lambda: consumer(client, "crashy", "c").num_ack_pending == 0, "terminated after the restart")
    finally:
        _, err = stop(again)
    assert stream_msgs(client, dead_stream) == 1  # parked exactly once: the second parking was a duplicate
    assert [d for _, d in runs(log)] == [1, 2]  # the spare third delivery did not run the handler
    assert "it was parked before" in err.decode()


_peeked: dict[int, bytes] = {}


def _peek(proc: subprocess.Popen) -> bytes:
    """What the process wrote to stderr so far (non-blocking)."""
    fd = proc.stderr.fileno()
    os.set_blocking(fd, False)
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        chunk = b""
    _peeked[proc.pid] = _peeked.get(proc.pid, b"") + chunk
    return _peeked[proc.pid]


# --- redrive -----------------------------------------------------------------------------------------------


def test_redrive_round_trip_by_sequence_then_all(cli, js, client):
    args = ["--server", js.url]
    total = 50
    headers = ["-H", "Trace:t{{Count}}", "-H", "K:a", "-H", "K:b"]
    ok(cli.run("pub", "rt", "--count", str(total), *headers, "m{{Count}}", *args))
    dead_stream = stream_name_for("dead-letter.rt")
    # --max-deliver 1: the first failure parks
    proc = cli.popen("sub", "rt", "--all", "--durable", "p", "--exec", "exit 1", "--max-deliver", "1", *args)
    try:
        wait_for(lambda: stream_msgs(client, dead_stream) == total, "50 parked", timeout=40)
    finally:
        stop(proc)
    parked = parked_json(cli, args, "rt")
    assert [p["channel_seq"] for p in parked] == list(range(1, total + 1))
    # a sequence that is not parked: one line, exit 7, nothing sent, nothing removed
    line = failed(cli.run("dead-letter", "redrive", "rt", "--seq", str(parked[0]["seq"]), "--seq", "999", *args), 7)
    assert line == (
        "natsctl: error: nothing parked for 'rt' at sequence 999 of 'dead-letter.rt'; "
        "'natsctl dead-letter ls rt' lists what is parked; nothing was sent"
    )
    assert (stream_msgs(client, "rt"), stream_msgs(client, dead_stream)) == (total, total)
    first = [p["seq"] for p in parked[:20]]
    chosen = [arg for seq in first for arg in ("--seq", str(seq))]
    # killed after the republish, before the parked copies were removed: run again, nothing twice
    cut = cli.popen("dead-letter", "redrive", "rt", *chosen, *args, env={"NATSCTL_FAULT": "pause-after-redrive"})
    try:
        wait_for(lambda: stream_msgs(client, "rt") == total + 20, "20 sent back")
        wait_for(lambda: b"none removed yet" in _peek(cut), "paused before removing")
    finally:
        cut.kill()
        cut.wait(10)
    sent = as_json(cli.run("dead-letter", "redrive", "rt", *chosen, "--json", *args))
    assert [(r["seq"], r["duplicate"]) for r in sent["redriven"]] == [(seq, True) for seq in first]
    assert stream_msgs(client, "rt") == total + 20
    assert [p["seq"] for p in parked_json(cli, args, "rt")] == [p["seq"] for p in parked[20:]]
    rest = as_json(cli.run("dead-letter", "redrive", "rt", "--all", "--json", *args))
    assert [r["original_seq"] for r in rest["redriven"]] == list(range(21, total + 1))
    assert parked_json(cli, args, "rt") == []
    assert stream_msgs(client, dead_stream) == 0
    stored = [json.loads(line) for line in ok(cli.run("replay", "rt", "--json", *args)).splitlines()]
    originals, redriven = stored[:total], stored[total:]
    assert [m["data"] for m in redriven] == [m["data"] for m in originals]  # each once, in order
    for original, copy in zip(originals, redriven, strict=True):
        headers = dict(copy["headers"])
        assert headers.pop("Nats-Msg-Id") == [f"natsctl-redrive:dead-letter.rt:{parked[original['seq'] - 1]['seq']}"]
        assert headers == original["headers"]  # byte for byte, a repeated key's values in order
        assert headers["K"] == ["a", "b"]


# --- collect ---------------------------------------------------------------------------------------------


def test_collect_parks_what_a_plain_consumer_gave_up_and_a_killed_collector_loses_nothing(cli, js, client):
    """A consumer made by plain nats-py (max_deliver=2) that never acks, and terminates one message."""
    args = ["--server", js.url]
    total = 6
    ok(cli.run("pub", "legacy", "--count", str(total), "-H", "N:{{Count}}", "m{{Count}}", *args))
    config = api.ConsumerConfig(durable_name="node", ack_policy=api.AckPolicy.EXPLICIT, max_deliver=2, ack_wait=1)
    client.run(client.js.add_consumer("legacy", config))
    collector = cli.popen("dead-letter", "collect", "legacy", "--durable", "node", "--json", *args)
    wait_for(
        lambda: stream_msgs(client, "NATSCTL_ADVISORIES_legacy") == 0 and _exists(client, "NATSCTL_ADVISORIES_legacy"),
        "capturing",
    )
    worker = client.run(_start_never_acking(client))
    try:
        first = collector.stdout.readline()  # one parked: now kill it mid-stream
        assert json.loads(first)["consumer"] == "node"
        collector.kill()
        collector.wait(10)
        told = collector.stderr.read().decode()
        assert "from now on" in told and "what its consumers gave up before was not captured" in told
        wait_for(
            lambda: stream_msgs(client, "NATSCTL_ADVISORIES_legacy") == total,
            "every advisory captured",
        )
    finally:
        client.run(_stop(worker))
    resumed = cli.run("dead-letter", "collect", "legacy", "--durable", "node", "--exit-at-end", "--json", *args)
    lines = [json.loads(first)] + [json.loads(line) for line in ok(resumed).splitlines()]
    assert "resuming" in resumed.stderr.decode()
    assert sorted(line["channel_seq"] for line in lines if not line["duplicate"]) == list(range(1, total + 1))
    parked = parked_json(cli, args, "legacy")
    assert stream_msgs(client, stream_name_for("dead-letter.legacy")) == total  # none twice, none lost
    reasons = {p["channel_seq"]: p["reason"] for p in parked}
    assert reasons[3] == "terminated by consumer node after 1 deliveries: bad json"
    assert {reasons[n] for n in (1, 2, 4, 5, 6)} == {"max deliveries (2) reached on consumer node"}
    assert {p["channel_seq"]: p["deliveries"] for p in parked} == {1: 2, 2: 2, 3: 1, 4: 2, 5: 2, 6: 2}
    stored = [json.loads(line) for line in ok(cli.run("replay", "dead-letter.legacy", "--json", *args)).splitlines()]
    for message in stored:
        seq = int(message["headers"]["Natsctl-Dl-Sequence"][0])
        assert (message["data"], message["headers"]["N"]) == (f"m{seq}", [str(seq)])


def _exists(client, stream: str) -> bool:
    async def look() -> bool:
        try:
            await client.js.stream_info(stream)
            return True
        except nats.js.errors.NotFoundError:
            return False

    return client.run(look())


async def _start_never_acking(client) -> Any:
    """Pull from the consumer with plain next-requests; terminate m3 ("bad json"), never ack the others."""
    import asyncio

    inbox = client.nc.new_inbox()

    async def on(msg) -> None:
        if msg.data == b"m3":
            await client.nc.publish(msg.reply, b"+TERM bad json")

    await client.nc.subscribe(inbox, cb=on)
    request = json.dumps({"batch": 10, "expires": 1_000_000_000}).encode()

    async def pull() -> None:
        while True:
            await client.nc.publish("$JS.API.CONSUMER.MSG.NEXT.legacy.node", request, reply=inbox)
            await asyncio.sleep(0.5)  # a worker's polling pace, not a synchronization

    return asyncio.ensure_future(pull())


async def _stop(task) -> None:
    task.cancel()


# --- bad input: one line, a documented exit code, nothing changed -----------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--exec", "true", "--backoff", ""], "--backoff needs durations separated by commas"),
        (["--exec", "true", "--backoff", "-1s"], "--backoff steps must be positive, not '-1s'"),
        (["--exec", "true", "--backoff", "5s,1s"], "--backoff steps must not decrease: 1s comes after 5s"),
        (["--exec", "true", "--backoff", "1s,,2s"], "--backoff needs durations separated by commas"),
        (["--exec", "true", "--max-deliver", "0"], "--max-deliver must be 1 or more, not 0"),
        (["--exec", "true", "--dead-letter", "bad.in"], "the dead-letter channel must differ from the channel"),
        (["--max-deliver", "3"], "--max-deliver decide what happens when the --exec handler fails: add --exec CMD"),
    ],
    ids=["backoff-empty", "backoff-negative", "backoff-decreasing", "backoff-gap", "max-deliver-0", "same", "no-exec"],
)
def test_bad_failure_flags_are_one_line_and_change_nothing(cli_in_process, js, client, flags, message):
    result = cli_in_process.run("sub", "bad.in", "--durable", "b", *flags, "--server", js.url)
    assert message in failed(result, 2)

    async def streams() -> list[str]:
        return [info.config.name for info in await client.js.streams_info()]

    assert not {stream_name_for("bad.in"), stream_name_for("dead-letter.bad.in")} & set(client.run(streams()))


def test_nats_streaming_says_what_exists_on_jetstream_only(cli_in_process):
    args = ["--server", "nats://127.0.0.1:1", "--cluster-id", "any"]  # refused before connecting
    line = failed(cli_in_process.run("dead-letter", "collect", "st.any", *args), 2)
    assert line == (
        "natsctl: error: dead-letter collect exists on JetStream only: NATS Streaming has no advisories "
        "(use 'sub --exec CMD --max-deliver N', which parks on both)"
    )
    line = failed(cli_in_process.run("dead-letter", "redrive", "st.any", "--all", *args), 2)
    assert "redrive exists on JetStream only" in line
    assert "choose --seq N" in failed(
        cli_in_process.run("dead-letter", "redrive", "rt", "--server", "nats://127.0.0.1:1"), 2
    )


def test_a_durable_made_with_other_values_keeps_them_and_says_so(cli, js, client):
    args = ["--server", js.url]
    ok(cli.run("pub", "kept", "k", *args))
    first = ["sub", "kept", "--all", "--durable", "k", "--exec", "true", "--exit-at-end", *args]
    ok(cli.run(*first, "--max-deliver", "3", "--backoff", "1s,4s"))
    again = cli.run(*first, "--max-deliver", "5", "--backoff", "2s")
    ok(again)
    assert again.stderr.decode().splitlines() == [
        "natsctl: warning: durable 'k' was created with max deliver 3, backoff 1s,4s; keeping the durable's, "
        "not --max-deliver 5 and --backoff 2s (delete the durable to change them)"
    ]
    config = consumer(client, "kept", "k").config
    assert (config.max_deliver, config.metadata["natsctl_max_deliver"], config.metadata["natsctl_backoff"]) == (
        4,
        "3",
        "1,4",
    )
