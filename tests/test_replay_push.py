"""Issue 14: `replay` reads through an ephemeral push consumer with flow control (natsctl/backends/
jetstream/push.py). Nothing is acked, so natsctl itself must notice what the server sent and did not
arrive, or a consumer that is gone, and read on with a new consumer: the output is every message once,
in order. A reader that stops taking stdout holds the server back (flow control) instead of being cut
off as a slow consumer. Real nats-server; progress is waited on by observable state, never by time.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import nats
import pytest

from tests.reliability_helpers import pipe_has_room, read_some, wait_for

TOTAL = 40_000
BODY = "y" * 90  # ~100-byte payloads: 4 MB, twice the server's first flow-control window (2 MB)


def publish(cli, server, channel: str, total: int = TOTAL) -> str:
    body = "".join(f"{n:06d}-{BODY}\n" for n in range(1, total + 1))
    result = cli.run("pub", channel, "--lines", "--json", "--server", server.url, input=body, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["stream"]


def numbers(data: bytes) -> list[int]:
    return [int(line[:6]) for line in data.split(b"\n") if line]


def consumers(server, stream: str) -> list[dict]:
    """The stream's consumers as the monitoring port shows them (name, delivered, num_pending)."""
    reply = httpx.get(f"{server.monitor_url}/jsz", params={"consumers": "true"}, timeout=5).json()
    found = []
    for account in reply.get("account_details", []):
        for detail in account.get("stream_detail", []):
            if detail["name"] == stream:
                found.extend(detail.get("consumer_detail") or [])
    return found


def delete_consumer(server, stream: str, name: str) -> None:
    async def delete() -> None:
        nc = await nats.connect(server.url)
        try:
            await nc.jetstream().delete_consumer(stream, name)
        finally:
            await nc.close()

    asyncio.run(delete())


def blocked_replay(cli, server, channel: str, env: dict | None = None):
    """A replay whose reader takes nothing until natsctl has filled the pipe."""
    proc = cli.popen("replay", channel, "--raw", "--server", server.url, env=env)
    fd = proc.stdout.fileno()
    wait_for(lambda: not pipe_has_room(fd) or proc.poll() is not None, 60, "replay to fill its stdout pipe")
    assert proc.poll() is None, proc.stderr.read().decode()
    return proc


def read_all(proc) -> tuple[list[int], str]:
    out = read_some(proc.stdout.fileno(), 1 << 30)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    return numbers(out), err


def test_replay_pushes_every_message_once_in_order(cli, server):
    stream = publish(cli, server, "push.all", 3_000)
    result = cli.run("replay", "push.all", "--json", "--server", server.url)
    assert result.returncode == 0, result.stderr
    envelopes = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["seq"] for e in envelopes] == list(range(1, 3_001))
    assert envelopes[0]["data"] == f"000001-{BODY}" and not envelopes[0]["redelivered"]
    wait_for(lambda: consumers(server, stream) == [], 10, "the ephemeral consumer to be deleted")


def test_a_reader_that_stops_holds_the_server_back_and_loses_nothing(cli, server):
    stream = publish(cli, server, "push.slow")
    proc = blocked_replay(cli, server, "push.slow")

    # Flow control: while stdout takes nothing, the server stops pushing short of the end.
    def paused() -> bool:
        found = consumers(server, stream)
        return len(found) == 1 and found[0]["num_pending"] > 0 and found[0]["delivered"]["stream_seq"] > 0

    wait_for(paused, 30, "the push consumer to be paused by flow control")
    held = consumers(server, stream)[0]["num_pending"]
    assert held >= TOTAL // 4, f"only {held} of {TOTAL} held back: flow control did not pause the server"
    got, err = read_all(proc)
    assert got == list(range(1, TOTAL + 1)), err
    assert "new consumer" not in err


def test_a_consumer_deleted_mid_replay_is_replaced_and_nothing_repeats(cli, server):
    stream = publish(cli, server, "push.gone")
    proc = blocked_replay(cli, server, "push.gone")
    wait_for(lambda: len(consumers(server, stream)) == 1, 30, "replay's consumer")
    delete_consumer(server, stream, consumers(server, stream)[0]["name"])
    got, err = read_all(proc)
    assert got == list(range(1, TOTAL + 1))
    assert "with a new consumer" in err  # the operator is told why it took longer


def test_a_message_lost_on_the_way_is_noticed_and_read_again(cli, server):
    publish(cli, server, "push.lost", 5_000)
    result = cli.run("replay", "push.lost", "--raw", "--server", server.url, env={"NATSCTL_FAULT": "replay-lose-one"})
    assert result.returncode == 0, result.stderr
    assert numbers(result.stdout) == list(range(1, 5_001))
    assert b"consumer sequence 1000 did not arrive" in result.stderr


@pytest.mark.parametrize("bound", [("--to-seq", "1234"), ("--count", "777")])
def test_bounds_cut_a_pushed_replay_exactly(cli, server, bound):
    publish(cli, server, "push.bound", 5_000)
    result = cli.run("replay", "push.bound", "--raw", "--seq", "100", *bound, "--server", server.url)
    assert result.returncode == 0, result.stderr
    last = 1234 if bound[0] == "--to-seq" else 100 + 777 - 1
    assert numbers(result.stdout) == list(range(100, last + 1))


def test_replay_survives_a_server_restart(cli, server):
    """The ephemeral consumer lives in memory: a restarted server has lost it, and replay reads on."""
    stream = publish(cli, server, "push.restart")
    proc = blocked_replay(cli, server, "push.restart")
    wait_for(lambda: len(consumers(server, stream)) == 1, 30, "replay's consumer")
    server.restart()
    got, err = read_all(proc)
    assert got == list(range(1, TOTAL + 1)), err
    assert "with a new consumer" in err, err
