"""Issue 7: `--server` with several URLs fails over; a server that is gone for good makes natsctl
give up within its --timeout with one clear line, never hang."""

from __future__ import annotations

import json
import time

import pytest

from tests.reliability_helpers import Collector, figure, finish, leader_of, wait_for
from tests.servers import free_port

TOTAL = 4_000


def test_first_url_refused_second_serves(cli, server):
    dead = f"nats://127.0.0.1:{free_port()}"
    result = cli.run("pub", "failover.first", "x", "--server", f"{dead},{server.url}", "--timeout", "2")
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_connected_node_killed_subscriber_fails_over(cli, nodes):
    urls = ",".join(n.url for n in nodes)
    created = cli.run(
        "pub",
        "failover.sub",
        "--lines",
        "--replicas",
        "3",
        "--server",
        urls,
        "--json",
        "--timeout",
        "30",
        input="".join(f"m{n}\n" for n in range(1, TOTAL + 1)),
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    stream = json.loads(created.stdout)["stream"]
    leader_of(nodes, stream)
    # the first URL is the one natsctl connects to (it does not shuffle the list)
    proc = cli.popen(
        "sub",
        "failover.sub",
        "--all",
        "--durable",
        "f",
        "--json",
        "--exit-at-end",
        "--ack-wait",
        "2s",
        "--max-in-flight",
        "50",
        "--timeout",
        "5",
        "--server",
        urls,
    )
    out = Collector(proc.stdout, delay=0.001)
    out.start()
    try:
        wait_for(lambda: len(out.lines) >= 800, 30, "800 messages read")
        nodes[0].kill()
        out.delay = 0
        code, took = finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out.join(5)
    stderr = proc.stderr.read().decode()
    figure("subscribe-connected-node-kill", took_s=round(took, 2), exit=code)
    assert "natsctl: connection lost, reconnecting (up to 5s)" in stderr and "natsctl: reconnected" in stderr, stderr
    if code == 0:  # carried on: everything read
        assert {json.loads(line)["seq"] for line in out.lines} == set(range(1, TOTAL + 1))
    else:  # or failed clearly (the consumer's leader may still be electing)
        assert code in (3, 9) and stderr.strip().splitlines()[-1].startswith("natsctl: error: "), stderr


@pytest.mark.slow
@pytest.mark.parametrize("command", ["sub", "pub"])
def test_server_gone_for_good_gives_up_within_timeout(cli, server, command):
    body = "".join(f"g{n}\n" for n in range(1, TOTAL + 1))
    if command == "sub":
        assert cli.run("pub", "gone", "--lines", "--server", server.url, input=body).returncode == 0
        proc = cli.popen("sub", "gone", "--all", "--durable", "g", "--json", "--timeout", "2", "--server", server.url)
    else:
        import subprocess

        proc = cli.popen("pub", "gone", "--lines", "--timeout", "2", "--server", server.url, stdin=subprocess.PIPE)
        proc.stdin.write(body.encode())
        proc.stdin.flush()
    out = Collector(proc.stdout, delay=0.002)
    out.start()
    try:
        if command == "sub":
            wait_for(lambda: len(out.lines) >= 300, 30, "300 messages read")
        else:
            wait_for(lambda: server.proc.poll() is None and _stored(server) >= 1000, 30, "1000 messages stored")
        server.kill()
        started = time.monotonic()
        out.delay = 0
        code, _ = finish(proc, 30)  # a hang fails here: no assertion on how long giving up took
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    stderr = proc.stderr.read().decode()
    figure("gave-up", command=command, took_s=round(took, 2), exit=code)
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("natsctl: error: "), stderr
    assert code == (3 if command == "sub" else 10), stderr


def _stored(server) -> int:
    import httpx

    from tests.reliability_helpers import stored_messages, stream_state  # noqa: F401

    try:
        body = httpx.get(server.monitor_url + "/jsz", timeout=1).json()
    except (httpx.HTTPError, ValueError):
        return 0
    return int(body.get("messages") or 0)
