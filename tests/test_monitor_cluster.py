"""routes, cluster fields and an unhealthy verdict on a real three-node nats-server cluster."""

from __future__ import annotations

import time

import httpx

from tests.helpers import as_json, error_line, ok, table_rows


def full_route_pools(nodes, per_peer: int = 4, timeout: float = 30) -> None:
    """The cluster fixture is ready once JetStream is; the route pools may still be connecting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            counts = [httpx.get(n.monitor_url + "/routez", timeout=2).json().get("num_routes") for n in nodes]
        except (httpx.HTTPError, ValueError):
            counts = []
        if counts == [per_peer * (len(nodes) - 1)] * len(nodes):
            return
        time.sleep(0.1)
    raise AssertionError(f"route pools incomplete after {timeout}s: {counts}")


def test_routes_server_and_health_in_a_cluster(cli, cluster):
    n1, n2, n3 = cluster
    full_route_pools(cluster)
    report = as_json(cli.run("routes", "--json", "-m", n1.monitor_url))
    assert (report["server_name"], report["cluster_name"]) == ("n1", "natsctl-test-cluster")
    assert report["num_routes"] == len(report["routes"])
    # nats-server 2.10+: a pool of 3 routes per peer plus one dedicated to the system account
    by_peer: dict[str, list] = {}
    for route in report["routes"]:
        by_peer.setdefault(route["remote_name"], []).append(route["account"])
    assert sorted(by_peer) == ["n2", "n3"]
    assert all(sorted(accounts) == ["", "", "", "$SYS"] for accounts in by_peer.values())
    assert len({r["rid"] for r in report["routes"]}) == 8

    out = ok(cli.run("routes", "-m", n1.monitor_url))
    assert out.splitlines()[0] == "n1: 8 routes in cluster natsctl-test-cluster"
    rows = table_rows(out)
    assert sorted(r["REMOTE"] for r in rows) == ["n2"] * 4 + ["n3"] * 4
    assert sum(r["ACCOUNT"] == "$SYS" for r in rows) == 2

    server = as_json(cli.run("server", "--json", "-m", n2.monitor_url))
    assert (server["server_name"], server["cluster_name"], server["routes"]) == ("n2", "natsctl-test-cluster", 8)
    assert sorted(server["cluster_urls"]) == sorted(f"127.0.0.1:{n.cluster_port}" for n in (n1, n3))

    assert as_json(cli.run("health", "--json", "-m", n1.monitor_url))["healthy"] is True
    n2.kill()
    n3.kill()
    # without its peers n1 loses the JetStream meta leader: /healthz turns 503
    deadline = time.monotonic() + 20
    while True:
        result = cli.run("health", "-m", n1.monitor_url)
        if result.returncode != 0 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    line = _unhealthy_with_report(result)
    assert line.startswith(f"natsctl: error: {n1.monitor_url} is unhealthy: JetStream ")


def _unhealthy_with_report(result) -> str:
    """health prints its report on stdout, then fails with exit 11 and one line on stderr."""
    assert result.returncode == 11, result.stderr
    fields = dict(line.split(None, 1) for line in result.stdout.decode().splitlines() if line.strip())
    assert fields["Status"] == "unavailable" and fields["Healthy"] == "no"
    return error_line(result.stderr.decode(), stdout=None)
