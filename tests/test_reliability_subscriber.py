"""Issue 7, test 1: a durable subscriber, alone and in a queue group, SIGKILLed mid-stream and
restarted: what was acked was written out first (nothing acked is lost), the union of the runs
covers every message, and only unacked messages come again (flagged as redelivered)."""

from __future__ import annotations

import asyncio
import json
import signal

import nats
import pytest

from tests.reliability_helpers import Collector, figure, finish, wait_for

TOTAL = 3_000


def publish(cli, server, channel: str) -> str:
    body = "".join(f"{channel}-{n}\n" for n in range(1, TOTAL + 1))
    result = cli.run("pub", channel, "--lines", "--json", "--server", server.url, input=body, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["stream"]


def consumer_state(server, stream: str, durable: str) -> dict:
    async def read() -> dict:
        nc = await nats.connect(server.url)
        try:
            info = await nc.jetstream().consumer_info(stream, durable)
            return {
                "ack_floor": info.ack_floor.stream_seq,
                "ack_pending": info.num_ack_pending,
                "pending": info.num_pending,
            }
        finally:
            await nc.close()

    return asyncio.run(read())


def seqs(lines: list[bytes]) -> list[dict]:
    # A SIGKILL can cut the last line short: a message not fully written out was not acked either.
    return [json.loads(line) for line in lines if line.endswith(b"\n") and line.strip()]


def start_member(cli, server, channel: str, durable: str, *extra: str, delay: float = 0.0):
    proc = cli.popen(
        "sub",
        channel,
        "--all",
        "--durable",
        durable,
        "--json",
        "--ack-wait",
        "2s",
        "--timeout",
        "5",
        "--server",
        server.url,
        *extra,
    )
    out = Collector(proc.stdout, delay=delay)
    out.start()
    return proc, out


def sigkill_after(proc, out: Collector, lines: int) -> None:
    """SIGKILL once `lines` were read and natsctl is blocked writing a batch it has not acked yet.

    Blocking it on a full pipe first makes the crash land while it holds unacked messages, whatever
    the machine's speed; without it a fast reader could catch it with everything acked.
    """
    try:
        wait_for(lambda: len(out.lines) >= lines, 30, f"{lines} messages written")
        out.pause()
        out.wait_for_blocked_writer(30)
    finally:
        proc.send_signal(signal.SIGKILL)  # a crash: no goodbye, no last acks
        proc.wait(10)
    out.delay = 0
    out.resume()
    out.join(10)  # what it had written to the pipe before dying still counts as received


@pytest.mark.slow
def test_durable_subscriber_killed_mid_stream(cli, server):
    stream = publish(cli, server, "jobs.plain")
    proc, first = start_member(cli, server, "jobs.plain", "worker", "--max-in-flight", "100", delay=0.002)
    sigkill_after(proc, first, 600)
    floor = consumer_state(server, stream, "worker")["ack_floor"]

    again = cli.run(
        "sub",
        "jobs.plain",
        "--all",
        "--durable",
        "worker",
        "--json",
        "--exit-at-end",
        "--ack-wait",
        "2s",
        "--server",
        server.url,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    run1, run2 = seqs(first.lines), seqs(again.stdout.splitlines(keepends=True))
    got1, got2 = [m["seq"] for m in run1], [m["seq"] for m in run2]
    assert 0 < floor < TOTAL
    assert set(range(1, floor + 1)) <= set(got1)  # everything acked had been written out first
    assert sorted(got2) == list(range(floor + 1, TOTAL + 1))  # exactly the unacked ones come again, once
    assert all(m["redelivered"] for m in run2 if m["seq"] in set(got1))
    assert any(m["redelivered"] for m in run2)  # the batch it was blocked on came again
    assert set(got1) | set(got2) == set(range(1, TOTAL + 1))
    figure("subscriber-sigkill", acked=floor, redelivered=len(set(got1) & set(got2)), lost=0)


@pytest.mark.slow
def test_queue_group_member_killed_mid_stream(cli, server):
    stream = publish(cli, server, "jobs.queue")
    group = ("--queue", "crew", "--max-in-flight", "20")
    a, a_out = start_member(cli, server, "jobs.queue", "crew", *group, delay=0.002)
    b, b_out = start_member(cli, server, "jobs.queue", "crew", *group, delay=0.002)
    restarted = None
    try:
        sigkill_after(a, a_out, 300)
        b_out.delay = 0
        restarted, a2_out = start_member(cli, server, "jobs.queue", "crew", *group)
        wait_for(
            lambda: (
                consumer_state(server, stream, "crew")
                == {**consumer_state(server, stream, "crew"), "pending": 0, "ack_pending": 0}
            ),
            60,
            "the group to process and ack everything",
        )
        for member in (b, restarted):
            member.send_signal(signal.SIGINT)
            code, _ = finish(member, 20)
            assert code == 130, member.stderr.read().decode()
    finally:
        for member in (a, b, restarted):
            if member is not None and member.poll() is None:
                member.kill()
    b_out.join(10)
    a2_out.join(10)
    killed, survivor, rerun = seqs(a_out.lines), seqs(b_out.lines), seqs(a2_out.lines)
    everything = [m["seq"] for m in killed + survivor + rerun]
    assert set(everything) == set(range(1, TOTAL + 1))
    killed_seqs = {m["seq"] for m in killed}
    later = survivor + rerun
    repeated = [m for m in later if m["seq"] in killed_seqs]
    assert all(m["redelivered"] for m in repeated)  # only what the killed member had not acked came again
    assert any(m["redelivered"] for m in later)  # the killed member's unacked messages did come again
    later_seqs = [m["seq"] for m in later]
    assert len(later_seqs) == len(set(later_seqs))  # acked by a live member: never delivered again
    assert len(repeated) <= 2 * 20 + 10
    figure("queue-member-sigkill", redelivered=sum(m["redelivered"] for m in later), lost=0)
