"""Monitoring commands against a real nats-server with JetStream and a workload made with nats-py."""

from __future__ import annotations

import csv
import io
import socket

import nats
import pytest
import yaml

from tests.helpers import ClientLoop, as_json, failed, ok, record, table_rows
from tests.servers import NatsServer

PAYLOAD = b"job-payload"  # 11 bytes
CORE_JOBS = 7


class Workload:
    """Stream ORDERS (5 orders.new + 3 orders.shipped), pull consumer `processor` on orders.new with
    3 fetched / 2 acked, durable `auditor` that received nothing; two queue workers in group
    `workers` on work.jobs; a core publisher that sent 7 jobs; a connection opened and closed."""

    def __init__(self, server: NatsServer) -> None:
        self.server = server
        self.loop = ClientLoop()
        self.conns: list = []
        self.stream_bytes = 0
        self.loop.run(self.start())

    async def connect(self, name: str):
        nc = await nats.connect(self.server.url, name=name, allow_reconnect=False)
        self.conns.append(nc)
        return nc

    async def start(self) -> None:
        js_conn = await self.connect("natsctl-js")
        js = js_conn.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.new", "orders.shipped"])
        for i in range(5):
            await js.publish("orders.new", f"order-{i}".encode())
        for i in range(3):
            await js.publish("orders.shipped", f"ship-{i}".encode())
        pull = await js.pull_subscribe("orders.new", "processor")
        msgs = await pull.fetch(3, timeout=5)
        for msg in msgs[:2]:
            await msg.ack()
        await js.add_consumer("ORDERS", nats.js.api.ConsumerConfig(durable_name="auditor", ack_policy="explicit"))
        self.stream_bytes = (await js.stream_info("ORDERS")).state.bytes
        workers = [await self.connect(f"natsctl-worker-{i}") for i in (1, 2)]
        for nc in workers:
            await nc.subscribe("work.jobs", queue="workers", cb=self.ignore)
            await nc.flush()
        publisher = await self.connect("natsctl-core-pub")
        for _ in range(CORE_JOBS):
            await publisher.publish("work.jobs", PAYLOAD)
        await publisher.flush()
        for nc in workers:
            await nc.flush()
        short = await nats.connect(self.server.url, name="natsctl-shortlived")
        await short.close()

    async def ignore(self, msg) -> None:
        pass

    async def stop(self) -> None:
        for nc in self.conns:
            await nc.close()

    def close(self) -> None:
        self.loop.run(self.stop())
        self.loop.close()


@pytest.fixture(scope="module")
def bus():
    server = NatsServer(name="mon-js").start()
    work = Workload(server)
    try:
        yield work
    finally:
        work.close()
        server.cleanup()


def mon(bus: Workload) -> list[str]:
    return ["--monitor", bus.server.monitor_url]


def test_clients_table_and_json(cli, bus):
    rows = {r["NAME"]: r for r in table_rows(ok(cli.run("clients", *mon(bus))))}
    assert set(rows) == {"natsctl-js", "natsctl-worker-1", "natsctl-worker-2", "natsctl-core-pub"}
    assert rows["natsctl-core-pub"]["MSGS IN"] == str(CORE_JOBS)
    assert rows["natsctl-core-pub"]["BYTES IN"] == f"{CORE_JOBS * len(PAYLOAD)} B"
    assert rows["natsctl-worker-1"]["SUBS"] == "1" and rows["natsctl-worker-2"]["SUBS"] == "1"
    assert rows["natsctl-worker-1"]["LANG"].startswith("python3 ")
    # queue group: the 7 jobs were shared between the two workers, each delivered once
    delivered = int(rows["natsctl-worker-1"]["MSGS OUT"]) + int(rows["natsctl-worker-2"]["MSGS OUT"])
    assert delivered == CORE_JOBS

    data = {c["name"]: c for c in as_json(cli.run("clients", "--json", *mon(bus)))}
    assert data["natsctl-core-pub"]["in_msgs"] == CORE_JOBS
    assert data["natsctl-core-pub"]["in_bytes"] == CORE_JOBS * len(PAYLOAD)
    assert data["natsctl-worker-1"]["out_msgs"] + data["natsctl-worker-2"]["out_msgs"] == CORE_JOBS
    assert {c["cid"] for c in data.values()} == {int(r["CID"]) for r in rows.values()}


def test_clients_closed_state_and_filters(cli, bus):
    # the test harness's readiness probe (a bare TCP connect) is the other, unnamed, closed connection
    closed = as_json(cli.run("clients", "--state", "closed", "-o", "json", *mon(bus)))
    assert [(c["name"], c["reason"]) for c in closed if c["name"]] == [("natsctl-shortlived", "Client Closed")]
    assert len(closed) == 2
    table = table_rows(ok(cli.run("clients", "--state", "closed", *mon(bus))))
    assert [(r["NAME"], r["REASON"]) for r in table if r["NAME"] != "-"] == [("natsctl-shortlived", "Client Closed")]
    everyone = as_json(cli.run("clients", "--state", "all", "--json", *mon(bus)))
    assert len(everyone) == 6 and len({c["cid"] for c in everyone}) == 6
    # an unknown account: the server answers "connections": null
    nobody = cli.run("clients", "--account", "NOPE", "--json", *mon(bus))
    assert as_json(nobody) == []
    empty = cli.run("clients", "--account", "NOPE", *mon(bus))
    assert empty.returncode == 0 and empty.stdout == b"" and b"nothing to show" in empty.stderr
    sorted_ = as_json(cli.run("clients", "--sort", "msgs_from", "--limit", "1", "--json", *mon(bus)))
    assert [c["name"] for c in sorted_] == ["natsctl-js"]  # it sent the most (JetStream API + publishes)


def test_clients_yaml_and_csv(cli, bus):
    data = yaml.safe_load(ok(cli.run("clients", "-o", "yaml", *mon(bus))))
    assert {c["name"]: c["in_msgs"] for c in data}["natsctl-core-pub"] == CORE_JOBS
    rows = list(csv.DictReader(io.StringIO(ok(cli.run("clients", "-o", "csv", *mon(bus))))))
    assert {r["name"]: r["in_bytes"] for r in rows}["natsctl-core-pub"] == str(CORE_JOBS * len(PAYLOAD))


def test_channels(cli, bus):
    rows = table_rows(ok(cli.run("channels", *mon(bus))))
    assert len(rows) == 1
    row = rows[0]
    # the channel (the stream's subjects) first, the stream beside it
    assert (row["CHANNEL"], row["STREAM"], row["MSGS"], row["FIRST"], row["LAST"], row["SUBS"]) == (
        "orders.new orders.shipped",
        "ORDERS",
        "8",
        "1",
        "8",
        "2",
    )
    assert row["BYTES"] == f"{bus.stream_bytes} B"
    [stream] = as_json(cli.run("channels", "--json", *mon(bus)))
    assert list(stream)[:3] == ["channel", "stream", "name"]
    assert (stream["channel"], stream["stream"], stream["subjects"]) == (
        "orders.new orders.shipped",
        "ORDERS",
        ["orders.new", "orders.shipped"],
    )
    assert (stream["name"], stream["messages"], stream["bytes"], stream["consumers"]) == (
        "ORDERS",
        8,
        bus.stream_bytes,
        2,
    )
    assert (stream["first_seq"], stream["last_seq"], stream["storage"], stream["account"]) == (1, 8, "file", "$G")


def test_subs_lag(cli, bus):
    rows = table_rows(ok(cli.run("subs", *mon(bus))))
    by_name = {(r["KIND"], r["NAME"], r["CLIENT"]): r for r in rows}
    processor = by_name[("consumer", "processor", "-")]
    assert (processor["CHANNEL"], processor["STREAM"], processor["LAG"], processor["UNACKED"]) == (
        "orders.new",
        "ORDERS",
        "2",
        "1",
    )
    assert (processor["DELIVERED"], auditor_channel(rows)) == ("3", "orders.new orders.shipped")
    assert processor["FILTER"] == "orders.new"
    auditor = by_name[("consumer", "auditor", "-")]
    assert (auditor["LAG"], auditor["UNACKED"], auditor["DELIVERED"]) == ("8", "0", "0")
    core = sorted((r["CHANNEL"], r["QUEUE"], r["CLIENT"]) for r in rows if r["KIND"] == "core")
    assert core == [("work.jobs", "workers", "natsctl-worker-1"), ("work.jobs", "workers", "natsctl-worker-2")]

    data = as_json(cli.run("subs", "--json", "--channel", "ORDERS", "--sort", "lag", *mon(bus)))
    assert [(s["name"], s["lag"], s["unacked"], s["redelivered"]) for s in data] == [
        ("auditor", 8, 0, 0),
        ("processor", 2, 1, 0),
    ]
    lagging = as_json(cli.run("subs", "--json", "--min-lag", "3", *mon(bus)))
    assert [s["name"] for s in lagging] == ["auditor"]
    consumers = as_json(cli.run("subs", "--json", "--no-core", *mon(bus)))
    assert sorted(s["name"] for s in consumers) == ["auditor", "processor"]


def auditor_channel(rows) -> str:
    """A consumer without a filter reads its stream's channel: every subject of the stream."""
    [auditor] = [r for r in rows if r["NAME"] == "auditor"]
    return auditor["CHANNEL"]


def test_channel_detail(cli, bus):
    out = ok(cli.run("channel", "ORDERS", *mon(bus)))
    head, _, subs = out.partition("\n\n")
    fields = record(head)
    assert (fields["Channel"], fields["Stream"], fields["Messages"], fields["Subscriptions"], fields["Storage"]) == (
        "orders.new orders.shipped",
        "ORDERS",
        "8",
        "2",
        "file",
    )
    assert sorted(r["NAME"] for r in table_rows(subs)) == ["auditor", "processor"]
    data = as_json(cli.run("channel", "ORDERS", "--json", *mon(bus)))
    assert {s["name"]: s["lag"] for s in data["subscriptions"]} == {"auditor": 8, "processor": 2}
    line = failed(cli.run("channel", "NOPE", *mon(bus)), 7)
    assert line.startswith("natsctl: error: no stream named 'NOPE' at http://127.0.0.1:")


def test_server(cli, bus):
    fields = record(ok(cli.run("server", *mon(bus))))
    assert fields["Kind"] == "nats-server with JetStream"
    assert fields["Server"].startswith("mon-js (N")
    assert fields["Connections"].startswith("4 (")
    assert (fields["Streams"], fields["Consumers"], fields["Stream messages"]) == ("1", "2", "8")
    data = as_json(cli.run("server", "--json", *mon(bus)))
    assert (data["kind"], data["server_name"], data["version"], data["connections"]) == (
        "jetstream",
        "mon-js",
        "2.15.1",
        4,
    )
    assert data["jetstream"]["streams"] == 1 and data["jetstream"]["consumers"] == 2
    assert data["jetstream"]["messages"] == 8 and data["jetstream"]["bytes"] == bus.stream_bytes
    assert data["streaming"] is None and data["port"] == bus.server.port


def test_health_ok_and_monitor_from_env(cli, bus):
    data = as_json(cli.run("health", "--json", env={"NATS_MONITOR_URL": bus.server.monitor_url}))
    assert isinstance(data.pop("warnings", []), list)  # the durability audit's findings (issue 7)
    assert data == {
        "monitor_url": bus.server.monitor_url,
        "healthy": True,
        "status": "ok",
        "error": "",
        "kind": "jetstream",
        "streaming_state": None,
    }


def test_monitor_url_derived_from_server(cli, bus):
    """No --monitor: http://<host of --server>:8222. A socket there that never answers proves which
    URL was used (and the timeout fault: one line, exit 9)."""
    # 127.0.0.0/8 is all loopback on Linux: a host of our own keeps 8222 free whatever runs on 127.0.0.1.
    # Nothing serves NATS there either: the health check goes to the monitoring port only.
    host = "127.0.0.2"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, 8222))
    except OSError as exc:  # only a listener on 0.0.0.0:8222 can take it: say so rather than skip
        listener.close()
        raise AssertionError(f"cannot listen on {host}:8222 ({exc}); is something bound to 0.0.0.0:8222?") from None
    listener.listen(16)
    try:
        # a hang is caught by the subprocess timeout, not by timing the run
        line = failed(
            cli.run("health", "--server", f"nats://{host}:{bus.server.port}", "--timeout", "0.5", timeout=30), 9
        )
    finally:
        listener.close()
    assert line.startswith(f"natsctl: error: no answer from http://{host}:8222 within 0.5s")


def test_json_flag_contradiction(cli, bus):
    line = failed(cli.run("clients", "--json", "-o", "yaml", *mon(bus)), 2)
    assert line == "natsctl: error: --json contradicts -o yaml"
