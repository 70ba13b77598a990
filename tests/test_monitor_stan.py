"""Monitoring commands against recorded NATS Streaming 0.17.0 / 0.23.2 responses served over real HTTP.

No NATS Streaming server can run here (it is not packaged anywhere reachable), so the recorded bodies
of real servers, byte for byte, stand in for its monitoring port.
"""

from __future__ import annotations

import pytest

from tests.helpers import RecordedServer, as_json, failed, fixtures_dir, ok, record, serve_file, table_rows

VERSIONS = {"stan-0.23.2": ("0.23.2", "2.6.5"), "stan-0.17.0": ("0.17.0", "2.1.4")}


def stan_routes(name: str, after_close: bool = False) -> dict:
    base = fixtures_dir("monitoring", name)
    return {
        "/streaming/serverz": serve_file(base / "serverz.json"),
        "/streaming/storez": serve_file(base / "storez.json"),
        "/streaming/channelsz": serve_file(
            base / ("channelsz_subs_after_close.json" if after_close else "channelsz.json"), "channels"
        ),
        "/streaming/clientsz": serve_file(
            base / ("clientsz_after_close.json" if after_close else "clientsz_subs.json"), "clients"
        ),
        "/varz": serve_file(base / "varz.json"),
        "/connz": serve_file(base / "connz.json", "connections"),
    }


@pytest.fixture(params=sorted(VERSIONS), scope="module")
def stan(request):
    server = RecordedServer(stan_routes(request.param))
    server.version = VERSIONS[request.param]
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(params=sorted(VERSIONS), scope="module")
def stan_closed(request):
    server = RecordedServer(stan_routes(request.param, after_close=True))
    try:
        yield server
    finally:
        server.close()


def test_server(cli, stan):
    streaming, embedded = stan.version
    fields = record(ok(cli.run("server", "-m", stan.url)))
    assert fields["Kind"] == "NATS Streaming"
    assert (fields["Streaming version"], fields["Cluster id"], fields["State"], fields["Store"]) == (
        streaming,
        "test-cluster",
        "STANDALONE",
        "MEMORY",
    )
    assert (fields["Channels"], fields["Clients"], fields["Streaming subscriptions"]) == ("2", "2", "3")
    assert fields["Stored messages"] == "3 (86 B)"
    assert (fields["Limit channels"], fields["Limit msgs/channel"], fields["Limit subs/channel"]) == (
        "100",
        "1000000",
        "1000",
    )
    assert fields["Version"].startswith(embedded + ", ")
    data = as_json(cli.run("server", "--json", "-m", stan.url))
    assert (data["kind"], data["version"], data["jetstream"]) == ("stan", embedded, None)
    st = data["streaming"]
    assert (st["cluster_id"], st["version"], st["state"], st["store_type"]) == (
        "test-cluster",
        streaming,
        "STANDALONE",
        "MEMORY",
    )
    assert (st["channels"], st["clients"], st["subscriptions"], st["total_msgs"], st["total_bytes"]) == (2, 2, 3, 3, 86)
    assert (st["max_msgs"], st["max_bytes"], st["max_age_seconds"], st["max_inactivity_seconds"]) == (
        1000000,
        1024000000,
        0,
        0,
    )


def test_channels(cli, stan):
    rows = table_rows(ok(cli.run("channels", "-m", stan.url)))
    assert "STREAM" not in rows[0]  # NATS Streaming: the channel is all there is
    assert [(r["CHANNEL"], r["MSGS"], r["BYTES"], r["FIRST"], r["LAST"], r["SUBS"]) for r in rows] == [
        ("audit", "1", "28 B", "1", "1", "2"),
        ("orders", "2", "58 B", "1", "2", "1"),
    ]
    data = as_json(cli.run("channels", "--json", "-m", stan.url))
    assert [(c["name"], c["kind"], c["messages"], c["bytes"], c["last_seq"], c["consumers"]) for c in data] == [
        ("audit", "channel", 1, 28, 1, 2),
        ("orders", "channel", 2, 58, 2, 1),
    ]


def test_channel_detail(cli, stan):
    data = as_json(cli.run("channel", "orders", "--json", "-m", stan.url))
    assert (data["name"], data["messages"], data["last_seq"]) == ("orders", 2, 2)
    [sub] = data["subscriptions"]
    assert (
        sub["queue"],
        sub["name"],
        sub["durable"],
        sub["lag"],
        sub["unacked"],
        sub["max_inflight"],
        sub["ack_wait_seconds"],
    ) == ("orders-durable:orders-workers", "orders-durable", True, 0, 0, 16, 30)
    line = failed(cli.run("channel", "nope", "-m", stan.url), 7)
    assert line == f"natsctl: error: no channel named 'nope' at {stan.url}; 'natsctl channels' lists them"


def test_subs(cli, stan):
    rows = table_rows(ok(cli.run("subs", "-m", stan.url)))
    got = [
        (r["CHANNEL"], r["NAME"], r["QUEUE"], r["CLIENT"], r["LAG"], r["UNACKED"], r["DELIVERED"], r["STATE"])
        for r in rows
    ]
    assert got == [
        ("audit", "-", "-", "fixture-subscriber", "0", "0", "1", "online"),
        ("audit", "audit-durable", "-", "fixture-subscriber", "0", "0", "1", "online"),
        ("orders", "orders-durable", "orders-durable:orders-workers", "fixture-subscriber", "0", "0", "2", "online"),
    ]
    data = as_json(cli.run("subs", "--json", "--channel", "orders", "-m", stan.url))
    assert [(s["kind"], s["queue"], s["lag"], s["offline"], s["stalled"]) for s in data] == [
        ("subscription", "orders-durable:orders-workers", 0, False, False)
    ]
    assert as_json(cli.run("subs", "--json", "--min-lag", "1", "-m", stan.url)) == []


def test_clients(cli, stan):
    rows = table_rows(ok(cli.run("clients", "-m", stan.url)))
    assert [(r["CLIENT ID"], r["SUBS"]) for r in rows] == [("fixture-publisher", "0"), ("fixture-subscriber", "3")]
    assert rows[1]["SUBSCRIPTIONS"] == "audit[plain], audit[audit-durable], orders[orders-durable:orders-workers]"
    data = as_json(cli.run("clients", "--json", "-m", stan.url))
    subscriber = data[1]
    assert subscriber["id"] == "fixture-subscriber"
    assert [(s["channel"], s["name"], s["lag"]) for s in subscriber["subscriptions"]] == [
        ("audit", "", 0),
        ("audit", "audit-durable", 0),
        ("orders", "orders-durable", 0),
    ]


def test_health_from_streaming_state(cli, stan):
    # no /healthz was recorded (0.17.0's nats-server 2.1.4 has none): the streaming state decides
    data = as_json(cli.run("health", "--json", "-m", stan.url))
    assert (data["healthy"], data["status"], data["kind"], data["streaming_state"]) == (
        True,
        "ok",
        "stan",
        "STANDALONE",
    )


def test_offline_durables_after_close(cli, stan_closed):
    rows = table_rows(ok(cli.run("subs", "-m", stan_closed.url)))
    assert [(r["CHANNEL"], r["NAME"], r["QUEUE"], r["STATE"], r["LAG"]) for r in rows] == [
        ("audit", "audit-durable", "-", "offline", "0"),
        ("orders", "orders-durable", "orders-durable:orders-workers", "offline", "0"),
    ]
    assert all(s["offline"] and s["durable"] for s in as_json(cli.run("subs", "--json", "-m", stan_closed.url)))
    empty = cli.run("clients", "-m", stan_closed.url)
    assert empty.returncode == 0 and empty.stdout == b"" and b"nothing to show" in empty.stderr
    assert as_json(cli.run("clients", "--json", "-m", stan_closed.url)) == []


def test_routes_not_recorded_is_not_found(cli, stan):
    line = failed(cli.run("routes", "-m", stan.url), 7)
    assert line.startswith(f"natsctl: error: {stan.url}/routez answered 404 (404 page not found)")
