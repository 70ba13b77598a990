"""Issue 7, tests 4 and the audit: reading every node when one hangs, answers slowly or closes
mid-body (the single-endpoint cases are in tests/test_monitor_faults.py), and the durability audit
of `server`, `health` and `cluster` against real servers and the recorded 2.15.1 bodies."""

from __future__ import annotations

import copy
import json
import socket
import threading
import time

import pytest

from natsctl.monitor.audit import audit
from natsctl.monitor.cluster import NodeReport
from tests.helpers import fixtures_dir
from tests.reliability_helpers import figure
from tests.servers import NatsServer

FIXTURES = fixtures_dir("monitoring", "nats-2.15.1")


class Hostile:
    """A loopback HTTP endpoint that misbehaves: 'hang' accepts and never answers, 'slow' trickles its
    body, 'cut' closes mid-body. Closed (and its threads ended) by the fixture, even on failure."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.closed = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            if self.mode == "hang":
                self.closed.wait(30)
            elif self.mode == "slow":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{")
                for _ in range(399):
                    if self.closed.wait(0.3):
                        break
                    conn.sendall(b" ")
            elif self.mode == "cut":
                conn.sendall(
                    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"server_id": "N'
                )
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass


@pytest.fixture
def hostile():
    made: list[Hostile] = []

    def make(mode: str) -> Hostile:
        made.append(Hostile(mode))
        return made[-1]

    yield make
    for endpoint in made:
        endpoint.close()


@pytest.mark.parametrize("mode, reason", [("hang", "no answer from"), ("slow", "no answer from"), ("cut", "cut off")])
def test_cluster_view_survives_a_bad_node(cli, server, hostile, mode, reason):
    bad = hostile(mode)
    started = time.monotonic()
    result = cli.run("cluster", "--json", "-m", f"{server.monitor_url},{bad.url}", "--timeout", "1", timeout=30)
    took = time.monotonic() - started
    figure("monitor-bad-node", mode=mode, gave_up_s=round(took, 2))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    good, down = report["nodes"]
    assert good["ok"] and good["name"] == "natsctl-test"
    assert not down["ok"] and reason in down["error"]
    assert any(w["check"] == "unreachable" and w["subject"] == bad.url for w in report["warnings"])
    # a hang is caught by the subprocess timeout above; how long giving up took is only recorded


@pytest.mark.parametrize("mode, code", [("hang", 9), ("slow", 9), ("cut", 3)])
def test_cluster_view_with_no_node_answering_fails_clearly(cli, hostile, mode, code):
    bad = hostile(mode)
    started = time.monotonic()
    result = cli.run("cluster", "-m", bad.url, "--timeout", "1", timeout=30)
    figure("monitor-no-node", mode=mode, gave_up_s=round(time.monotonic() - started, 2))
    stderr = result.stderr.decode()
    assert result.returncode == code, stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("natsctl: error: ")


def test_health_audit_on_a_single_lazy_server(cli, server):
    result = cli.run("health", "-m", server.monitor_url)
    assert result.returncode == 0
    warnings = [line for line in result.stderr.decode().splitlines() if line.startswith("natsctl: warning: ")]
    assert any("lazy fsync on natsctl-test" in w and "every 2m" in w and "acknowledged messages" in w for w in warnings)
    assert any("single server natsctl-test" in w and "losing its disk loses every message" in w for w in warnings)
    as_json = json.loads(cli.run("health", "--json", "-m", server.monitor_url).stdout)
    assert {w["check"] for w in as_json["warnings"]} == {"fsync", "single-node"}


@pytest.fixture
def careful_server(tmp_path):
    """fsync on every write, and a file store of 200 KB so it can be filled."""
    srv = NatsServer(
        name="careful",
        jetstream=False,
        config=f'jetstream {{ store_dir: "{tmp_path}/js", sync_interval: always, max_file_store: 200KB }}',
    )
    srv.start()
    try:
        yield srv
    finally:
        srv.cleanup()


def test_audit_of_sync_always_and_storage_near_its_limit(cli, careful_server):
    result = cli.run("server", "--json", "-m", careful_server.monitor_url)
    checks = {w["check"] for w in json.loads(result.stdout)["warnings"]}
    assert "fsync" not in checks and "storage" not in checks
    payload = "x" * 1000
    fill = cli.run(
        "pub", "big", "--lines", "--server", careful_server.url, input="".join(payload + "\n" for _ in range(190))
    )
    assert fill.returncode == 0, fill.stderr
    found = json.loads(cli.run("server", "--json", "-m", careful_server.monitor_url).stdout)["warnings"]
    storage = [w for w in found if w["check"] == "storage"]
    assert (
        storage
        and "file storage on careful is 9" in storage[0]["message"]
        and "publishing fails" in storage[0]["message"]
    )


def test_audit_of_a_cluster_with_a_one_replica_channel(cli, cluster):
    monitors = ",".join(n.monitor_url for n in cluster)
    servers = ",".join(n.url for n in cluster)
    assert cli.run("pub", "single.copy", "x", "--server", servers).returncode == 0
    assert (
        cli.run("pub", "three.copies", "x", "--replicas", "3", "--timeout", "30", "--server", servers).returncode == 0
    )
    report = json.loads(cli.run("cluster", "--json", "-m", monitors).stdout)
    one = [w for w in report["warnings"] if w["check"] == "one-replica"]
    assert len(one) == 1 and "channel single.copy" in one[0]["message"] and "cluster of 3" in one[0]["message"]
    assert not any(w["check"] == "single-node" for w in report["warnings"])
    roles = sorted(r["role"] for r in report["replicas"] if r["channel"].startswith("three"))
    assert roles == ["leader", "replica", "replica"]


def fixture_node() -> NodeReport:
    varz = json.loads((FIXTURES / "varz.json").read_text())
    jsz = json.loads((FIXTURES / "jsz_streams_consumers_config.json").read_text())
    return NodeReport("http://fixture", "natsctl-research", varz=varz, jsz=jsz)


def consumer(node: NodeReport) -> dict:
    return node.jsz["account_details"][0]["stream_detail"][0]["consumer_detail"][0]


def test_audit_consumer_findings_on_recorded_bodies():
    node = fixture_node()
    assert not [f for f in audit([node]) if f.check == "consumer"]  # acked a second ago: fine
    later = copy.deepcopy(node)
    consumer(later)["ts"] = "2026-11-28T01:17:16.37649353Z"  # ten minutes on, nothing acked since
    stalled = [f for f in audit([later]) if f.check == "consumer"]
    assert len(stalled) == 1 and stalled[0].message.startswith("consumer processor on ORDERS is stalled: 1 delivered")
    consumer(later)["num_ack_pending"] = 0
    offline = [f for f in audit([later]) if f.check == "consumer"]
    assert offline[0].message.startswith("consumer processor on ORDERS is offline: 2 messages wait")
    assert "lost to it" in offline[0].message


@pytest.mark.parametrize(
    "discard, effect",
    [("old", "the oldest messages are dropped to make room"), ("new", "new messages will be refused")],
)
def test_audit_channel_at_its_limit(discard, effect):
    node = fixture_node()
    stream = node.jsz["account_details"][0]["stream_detail"][0]
    stream["config"].update(max_msgs=8, discard=discard)
    found = [f for f in audit([node]) if f.check == "channel-limit"]
    assert [f.message for f in found] == [
        f"channel ORDERS holds 8 of its 8 max messages: {effect}" + ("" if discard == "new" else ", unread or not")
    ]
