"""Issue 7, clusters: `natsctl server run --cluster 3` gives a working cluster for replicated
channels (created with every channel-creation flag), seen by `natsctl cluster`, stopped cleanly."""

from __future__ import annotations

import json
import signal
import socket

import pytest

from tests.reliability_helpers import finish, start_server_run, wait_for


def consecutive_free(count: int) -> int:
    """A base port with ``count`` free ports from it (loopback)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count < 65000 and all(_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # closed connections may linger in TIME_WAIT
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_server_run_cluster_serves_replicated_channels(cli, tmp_path):
    def three_runs() -> dict[str, int]:
        return {
            "--port": consecutive_free(3),
            "--monitor-port": consecutive_free(3),
            "--cluster-port": consecutive_free(3),
        }

    # stderr is collected meanwhile: the nodes log to it, and that pipe must never fill
    proc, _err, ports = start_server_run(cli, three_runs, "--cluster", "3", "--store-dir", str(tmp_path / "store"))
    port, monitor = ports["--port"], ports["--monitor-port"]
    try:
        urls = ",".join(f"nats://127.0.0.1:{port + i}" for i in range(3))
        monitors = ",".join(f"http://127.0.0.1:{monitor + i}" for i in range(3))
        created = cli.run(
            "pub",
            "orders.r3",
            "--count",
            "5",
            "o{{Count}}",
            "--server",
            urls,
            "--json",
            "--timeout",
            "30",
            "--replicas",
            "3",
            "--storage",
            "memory",
            "--max-age",
            "1h",
            "--max-msgs",
            "1000",
            "--max-bytes",
            "1000000",
            "--discard",
            "new",
            "--dupe-window",
            "30s",
        )
        assert created.returncode == 0, created.stderr  # no "insufficient resources": the meta leader was ready
        stream = json.loads(created.stdout)["stream"]

        def replicas_current() -> bool:
            report = json.loads(cli.run("cluster", "--json", "-m", monitors).stdout)
            rows = [r for r in report["replicas"] if r["stream"] == stream]
            return len(rows) == 3 and all(r["current"] for r in rows) and [r["role"] for r in rows].count("leader") == 1

        wait_for(replicas_current, 30, "a leader and two current replicas")
        config = json.loads(cli.run("channel", stream, "--json", "-m", monitors.split(",")[0]).stdout)
        assert (config["replicas"], config["storage"]) == (3, "memory")
        assert config["messages"] == 5
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code, _took = finish(proc, 30)
    assert code == 143
    assert all(_free(p) for base in (port, monitor) for p in range(base, base + 3))  # every node stopped


@pytest.mark.slow
def test_channel_creation_flags_reach_the_stream(cli, server):
    """--max-msgs with --discard new: the limit refuses the next message, and natsctl says which."""
    args = [
        "--server",
        server.url,
        "--max-msgs",
        "3",
        "--discard",
        "new",
        "--max-age",
        "1h",
        "--dupe-window",
        "1m",
        "--storage",
        "file",
        "--max-bytes",
        "100000",
    ]
    assert cli.run("pub", "limited", "--count", "3", "x{{Count}}", *args).returncode == 0
    refused = cli.run("pub", "limited", "one too many", *args)
    assert refused.returncode == 10
    assert refused.stderr.decode().startswith(
        "natsctl: error: 1 of 1 messages not confirmed; first: message 1: refused by the server: maximum messages exceeded"
    )
    import httpx

    body = httpx.get(server.monitor_url + "/jsz", params={"streams": "true", "config": "true"}, timeout=5).json()
    config = body["account_details"][0]["stream_detail"][0]["config"]
    assert (
        config["max_msgs"],
        config["discard"],
        config["max_age"],
        config["duplicate_window"],
        config["max_bytes"],
    ) == (3, "new", 3600 * 10**9, 60 * 10**9, 100000)
    bad = cli.run("pub", "other", "x", "--server", server.url, "--discard", "sideways")
    assert (bad.returncode, bad.stderr.decode().strip()) == (
        2,
        "natsctl: error: --discard must be old or new, not 'sideways'",
    )


@pytest.mark.slow
def test_demo_on_a_local_cluster(cli):
    result = cli.run("demo", "--cluster", "3", "--events", "3", "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["published"]["count"] == 3
    assert sorted(s for seqs in report["queue_group"]["members"].values() for s in seqs) == [1, 2, 3]
    assert [c["replicas"] for c in report["tables"]["channels"]] == [3]
