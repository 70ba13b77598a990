"""`natsctl migrate`: NATS Streaming (the test double, both recorded versions) -> JetStream (a real
nats-server), end to end through the CLI: plan, copy killed with -9 and resumed, --follow, durables
continuing exactly on JetStream, verify (0, then 12 on a changed payload); bad plans and targets."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import time
import urllib.request

import nats
import pytest
import yaml

from natsctl.backends.stan import proto
from natsctl.backends.stan.protocol import StanClient
from tests.helpers import ClientLoop, as_json, error_line, failed, ok, stan_publish
from tests.servers import NatsServer
from tests.stan_double.fixtures import StanServer, start_stan

BIG = 15_000  # messages of order:updated, the channel copied while the copy is killed (0.23.2)
SMALL = 500  # its messages on 0.17.0, where the copy is not killed (the kill is about natsctl, not the server)
LIMITED = 5  # ticket:updated keeps its last 5 of 8 messages: it starts at sequence 4
BINARY = [bytes([i]) * 7 + bytes(range(256)) for i in range(5)]
FIRST = proto.START_POSITIONS["First"]


def monitor(stan: StanServer, path: str) -> dict:
    with urllib.request.urlopen(stan.monitor_url + path, timeout=5) as answer:
        return json.loads(answer.read())


def wait_for(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def pending_of(stan: StanServer, channel: str) -> int:
    body = monitor(stan, f"/streaming/channelsz?channel={channel}&subs=1")
    return sum(s["pending_count"] for s in body.get("subscriptions", []))


class Seeder:
    """NATS Streaming clients as the seed's services use them (the protocol client of natsctl)."""

    def __init__(self, stan: StanServer, loop: ClientLoop) -> None:
        self.stan = stan
        self.loop = loop
        self.clients: dict[str, StanClient] = {}

    async def _client(self, client_id: str) -> StanClient:
        nc = await nats.connect(self.stan.url)
        client = StanClient(nc, self.stan.cluster_id, client_id)
        await client.connect()
        self.clients[client_id] = client
        return client

    def client(self, client_id: str) -> StanClient:
        return self.loop.run(self._client(client_id))

    async def _publish(self, channel: str, payloads: list[bytes]) -> None:
        client = self.clients.get("seed-publisher") or await self._client("seed-publisher")
        await stan_publish(client, [(channel, payload) for payload in payloads])

    def publish(self, channel: str, payloads: list[bytes]) -> None:
        self.loop.run(self._publish(channel, payloads), timeout=90)

    async def _durable(self, client_id: str, channel: str, durable: str, queue: str | None, expect: int):
        client = self.clients.get(client_id) or await self._client(client_id)
        got: list[int] = []
        arrived = asyncio.Event()

        def on_msg(payload: bytes) -> None:
            got.append(proto.decode("MsgProto", payload).sequence)
            arrived.set()

        request = {"subject": channel, "durableName": durable, "qGroup": queue, "maxInFlight": 100}
        request.update(ackWaitInSecs=60, startPosition=FIRST)
        handle = await client.subscribe(request, on_msg)
        while len(got) < expect:
            arrived.clear()
            await asyncio.wait_for(arrived.wait(), 10)
        return handle, got  # ``got`` keeps filling

    def durable(self, client_id: str, channel: str, durable: str, queue: str | None = None, expect: int = 0):
        return self.loop.run(self._durable(client_id, channel, durable, queue, expect))

    def ack(self, handle, sequences: list[int]) -> None:
        self.loop.run(handle.ack_many(sequences))

    def close_all(self) -> None:
        for client_id in list(self.clients):
            self.close(client_id)

    def close(self, client_id: str) -> None:
        client = self.clients.pop(client_id)

        async def close() -> None:
            await client.close()
            await client.nc.close()

        self.loop.run(close())


def seed(stan: StanServer, loop: ClientLoop, big: int) -> Seeder:
    """ticket:created (10, durable tickets-svc: 7, 9, 10 unacked), ticket:updated (8, limit 5: 4-8,
    durable audit: all acked), order:created (binary, one near max payload; durable queue group
    billing:billing-workers of two members, each acked its first only), order:cancelled (empty,
    a plain subscription of a connected client), order:updated (``big`` messages)."""
    s = Seeder(stan, loop)
    s.publish("ticket:created", [json.dumps({"id": i, "title": f"ticket {i}"}).encode() for i in range(1, 11)])
    s.publish("ticket:updated", [f"update {i}".encode() for i in range(1, 9)])
    first, got1 = s.durable("billing-1", "order:created", "billing", "billing-workers")
    second, got2 = s.durable("billing-2", "order:created", "billing", "billing-workers")
    s.publish("order:created", [*BINARY, os.urandom(1024 * 1024 - 200)])  # the last one near max_payload
    s.publish("order:updated", [b"u%d" % i for i in range(big)])
    handle, got = s.durable("tickets-1", "ticket:created", "tickets-svc", expect=10)
    assert got == list(range(1, 11))
    s.ack(handle, [1, 2, 3, 4, 5, 6, 8])
    wait_for(lambda: pending_of(stan, "ticket:created") == 3, "tickets-svc's acks")
    s.close("tickets-1")
    handle, got = s.durable("audit-1", "ticket:updated", "audit", expect=LIMITED)
    assert got == [4, 5, 6, 7, 8]
    s.ack(handle, got)
    wait_for(lambda: pending_of(stan, "ticket:updated") == 0, "audit's acks")
    s.close("audit-1")
    wait_for(lambda: pending_of(stan, "order:created") == 6, "the queue group's deliveries")
    assert (sorted(got1), sorted(got2)) == ([1, 3, 5], [2, 4, 6])
    s.ack(first, [1])
    s.ack(second, [2])
    wait_for(lambda: pending_of(stan, "order:created") == 4, "the queue group's acks")
    s.close("billing-1")
    s.close("billing-2")
    watcher = s.client("watcher")
    loop.run(watcher.subscribe({"subject": "order:cancelled", "maxInFlight": 10, "ackWaitInSecs": 30}, lambda _: None))
    return s


@pytest.fixture(params=["0.17.0", "0.23.2"])
def world(request):
    stan = start_stan(request.param, monitoring=True, channel_max_msgs={"ticket:updated": LIMITED})
    js = NatsServer(config="max_payload: 2MB").start()
    loop = ClientLoop()
    try:
        big = BIG if request.param == "0.23.2" else SMALL
        seeder = seed(stan, loop, big)
        yield stan, js, seeder, big
        seeder.close_all()
    finally:
        loop.close()
        stan.cleanup()
        js.cleanup()


def stan_args(stan: StanServer) -> list[str]:
    return ["-s", stan.url, "--cluster-id", stan.cluster_id, "-m", stan.monitor_url]


def progress_lines(proc, until) -> list[dict]:
    """JSON progress lines of a running copy (stderr) until ``until(line)``."""
    seen = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        raw = proc.stderr.readline()
        if not raw:
            break
        if raw.startswith(b"{"):
            seen.append(json.loads(raw)["progress"])
            if until(seen[-1]):
                return seen
    raise AssertionError(f"the copy never showed the wanted progress: {seen[-3:]}")


def js_sub(cli, js: NatsServer, channel: str, *flags: str, count: int) -> list[tuple[int, bool, str]]:
    """What the next `natsctl sub --durable ...` on JetStream delivers: (Nats-Streaming-Sequence, redelivered, data)."""
    result = cli.run("sub", channel, "-s", js.url, *flags, "--count", str(count), "--json")
    ok(result)
    out = []
    for line in result.stdout.decode().splitlines():
        message = json.loads(line)
        out.append((int(message["headers"]["Nats-Streaming-Sequence"][0]), message["redelivered"], message["data"]))
    return out


def test_migration_end_to_end(cli, world, tmp_path):
    stan, js, seeder, big = world
    plan_file = tmp_path / "plan.yaml"
    to = ["--to-server", js.url]

    # -- plan: every channel and durable, the empty one, the limits, what cannot be carried
    result = cli.run("migrate", "plan", *stan_args(stan), "--out", str(plan_file))
    ok(result)
    plan = yaml.safe_load(plan_file.read_text())
    channels = plan["channels"]
    assert sorted(channels) == ["order:cancelled", "order:created", "order:updated", "ticket:created", "ticket:updated"]
    assert (channels["ticket:updated"]["first_seq"], channels["ticket:updated"]["last_seq"]) == (4, 8)
    assert channels["ticket:updated"]["msgs"] == LIMITED
    assert channels["order:cancelled"]["msgs"] == 0
    assert channels["ticket:created"]["stream"] == "ticket_created_" + channels["ticket:created"]["stream"][-6:]
    durables = {(d["channel"], d["durable"], d["queue"]): d for d in plan["durables"]}
    assert sorted(durables) == [
        ("order:created", "billing", "billing-workers"),
        ("ticket:created", "tickets-svc", ""),
        ("ticket:updated", "audit", ""),
    ]
    tickets = durables[("ticket:created", "tickets-svc", "")]
    assert (tickets["client_id"], tickets["last_sent"], tickets["pending"], tickets["offline"]) == (
        "tickets-1",
        10,
        3,
        True,
    )
    billing = durables[("order:created", "billing", "billing-workers")]
    assert (billing["last_sent"], billing["pending"], billing["consumer"]) == (6, 4, "billing_billing-workers")
    assert len(plan["not_carried"]) == 1 and "order:cancelled" in plan["not_carried"][0]
    err = result.stderr.decode()
    assert f"5 channels, {10 + LIMITED + 6 + big:,} messages" in err
    assert "warning: not carried over: order:cancelled: plain subscription of client 'watcher'" in err

    # -- copy, killed with -9 in the middle (0.23.2; copied whole on 0.17.0), then again: nothing lost, nothing twice
    proc = cli.popen("migrate", "copy", str(plan_file), *stan_args(stan), *to)
    try:
        if big == BIG:
            seen = progress_lines(proc, lambda p: p["channel"] == "order:updated" and p["copied"] > 0 and not p["done"])
            proc.send_signal(signal.SIGKILL)
            assert seen[-1]["last_copied"] < big
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    result = cli.run("migrate", "copy", str(plan_file), *stan_args(stan), *to, "--json")
    ok(result)
    report = {r["channel"]: r for r in as_json(result)}
    assert 0 < report["order:updated"]["resumed_after"] < big or big != BIG
    assert report["order:updated"]["resumed_after"] > 0
    assert report["order:updated"]["last_copied"] == big
    assert report["order:updated"]["copied"] == big - report["order:updated"]["resumed_after"]
    assert report["order:cancelled"]["copied"] == 0 and report["order:cancelled"]["created"] is False
    result = cli.run("migrate", "verify", str(plan_file), *stan_args(stan), *to, "--json", "--no-durables")
    ok(result)
    checks = {c["channel"]: c for c in as_json(result)["channels"]}
    assert {c: (v["matched"], v["source_first_seq"]) for c, v in checks.items()} == {
        "order:cancelled": (0, 0),
        "order:created": (6, 1),
        "order:updated": (big, 1),
        "ticket:created": (10, 1),
        "ticket:updated": (LIMITED, 4),
    }

    # the copies: stream sequences are the channel's, headers as stan2js names them, payloads byte for byte
    replay = cli.run("replay", "ticket:updated", "-s", js.url, "--json")
    ok(replay)
    copied = [json.loads(line) for line in replay.stdout.decode().splitlines()]
    assert [m["seq"] for m in copied] == [4, 5, 6, 7, 8]
    assert [m["data"] for m in copied] == [f"update {i}" for i in range(4, 9)]
    headers = copied[0]["headers"]
    assert headers["Nats-Streaming-Channel"] == ["ticket:updated"]
    assert headers["Nats-Streaming-Sequence"] == ["4"]
    assert headers["Nats-Msg-Id"] == ["stan:ticket:updated:4"]
    assert int(headers["Nats-Streaming-Timestamp"][0]) > 1_700_000_000 * 10**9
    replay = cli.run("replay", "order:created", "-s", js.url, "--json", "--to-seq", "5")
    binary = [json.loads(line) for line in ok(replay).splitlines()]
    assert [(m["encoding"], base64.b64decode(m["data"])) for m in binary] == [("base64", p) for p in BINARY]

    # -- --follow: what services still publish to NATS Streaming arrives, with the lag shown; Ctrl-C ends it
    proc = cli.popen("migrate", "copy", str(plan_file), *stan_args(stan), *to, "--follow")
    try:
        progress_lines(proc, lambda p: p["channel"] == "ticket:created" and p["last_copied"] == 10)
        seeder.publish("ticket:created", [b'{"id": 11}', b'{"id": 12}'])
        seeder.publish("ticket:updated", [b"update 9"])
        progress_lines(proc, lambda p: p["channel"] == "ticket:updated" and p["last_copied"] == 9 and p["lag"] == 0)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert b"every one confirmed by JetStream" in err

    # -- durables: acked ones never again, unacked ones first, then the rest
    result = cli.run("migrate", "durables", str(plan_file), *stan_args(stan), *to, "--json")
    ok(result)
    assert {r["durable"]: (r["status"], r["unacked"]) for r in as_json(result)} == {
        "tickets-svc": ("positioned", [7, 9, 10]),
        "audit": ("positioned", []),
        "billing:billing-workers": ("positioned", [3, 4, 5, 6]),
    }
    assert js_sub(cli, js, "ticket:created", "--durable", "tickets-svc", count=5) == [
        (7, True, '{"id": 7, "title": "ticket 7"}'),
        (9, True, '{"id": 9, "title": "ticket 9"}'),
        (10, True, '{"id": 10, "title": "ticket 10"}'),
        (11, False, '{"id": 11}'),
        (12, False, '{"id": 12}'),
    ]
    assert js_sub(cli, js, "ticket:updated", "--durable", "audit", count=1) == [(9, False, "update 9")]
    delivered = js_sub(cli, js, "order:created", "--durable", "billing", "--queue", "billing-workers", count=4)
    assert [(seq, again) for seq, again, _ in delivered] == [(3, True), (4, True), (5, True), (6, True)]
    result = cli.run("migrate", "durables", str(plan_file), *stan_args(stan), *to)
    ok(result)
    assert result.stderr.decode().count(": exists: consumer") == 3  # a rerun leaves them as they are

    # -- verify: 0; a changed payload in the stream: 12, naming it
    ok(cli.run("migrate", "verify", str(plan_file), *stan_args(stan), *to))
    tamper(js, "ticket_updated_" + plan["channels"]["ticket:updated"]["stream"][-6:], 9, b"update 9, changed")
    result = cli.run("migrate", "verify", str(plan_file), *stan_args(stan), *to, "-o", "json")
    assert result.returncode == 12, result.stderr
    bad = [c for c in json.loads(result.stdout)["channels"] if not c["ok"]]
    assert [(c["channel"], c["changed"]) for c in bad] == [("ticket:updated", 1)]
    assert bad[0]["first_difference"].startswith("sequence 9: payload changed (stream sequence 10")
    assert error_line(result.stderr.decode(), None).startswith(
        "natsctl: error: ticket:updated: sequence 9: payload changed"
    )


def tamper(js: NatsServer, stream: str, seq: int, data: bytes) -> None:
    """Remove message ``seq`` and store a changed one with the same migration headers after it."""

    async def run() -> None:
        nc = await nats.connect(js.url)
        jsm = nc.jetstream()
        original = await jsm.get_msg(stream, seq)
        await jsm.delete_msg(stream, seq)
        headers = {k: v for k, v in (original.headers or {}).items() if k != "Nats-Msg-Id"}
        await jsm.publish(original.subject, data, headers=headers)
        await nc.close()

    asyncio.run(run())


def stream_names(js: NatsServer) -> list[str]:
    async def run() -> list[str]:
        nc = await nats.connect(js.url)
        try:
            return sorted(str(info.config.name) for info in await nc.jetstream().streams_info())
        finally:
            await nc.close()

    return asyncio.run(run())


def add_stream(js: NatsServer, name: str, subjects: list[str]) -> None:
    async def run() -> None:
        nc = await nats.connect(js.url)
        await nc.jetstream().add_stream(name=name, subjects=subjects)
        await nc.close()

    asyncio.run(run())


def test_bad_plans_and_targets_change_nothing(cli, tmp_path):
    stan = start_stan("0.23.2", monitoring=True)
    js = NatsServer().start()
    loop = ClientLoop()
    try:
        s = Seeder(stan, loop)
        s.publish("ticket:created", [b"t1", b"t2", b"t3"])
        s.publish("order:created", [b"o1"])
        handle, _got = s.durable("tickets-1", "ticket:created", "tickets-svc", expect=3)
        s.ack(handle, [1])
        wait_for(lambda: pending_of(stan, "ticket:created") == 2, "tickets-svc's ack")
        plan_file = tmp_path / "plan.yaml"
        ok(cli.run("migrate", "plan", *stan_args(stan), "--out", str(plan_file)))
        good = yaml.safe_load(plan_file.read_text())
        to = ["--to-server", js.url.replace("nats://", "http://")]  # the seed's NATS_URL style

        def with_plan(change) -> str:
            plan = yaml.safe_load(yaml.safe_dump(good))
            change(plan)
            path = tmp_path / "edited.yaml"
            path.write_text(yaml.safe_dump(plan))
            return str(path)

        def missing(plan):
            plan["channels"]["ticket:deleted"] = {"stream": "ticket_deleted"}

        result = cli.run("migrate", "copy", with_plan(missing), *stan_args(stan), *to)
        assert failed(result, 7).startswith(
            f"natsctl: error: plan: channel 'ticket:deleted' is not on NATS Streaming cluster '{stan.cluster_id}'"
        )

        def refused(plan):
            plan["channels"]["order:created"]["stream"] = "orders.created"

        result = cli.run("migrate", "copy", with_plan(refused), *stan_args(stan), *to)
        assert failed(result, 2) == (
            "natsctl: error: plan: channel 'order:created': JetStream refuses the stream name 'orders.created' "
            "(it may not be empty or contain whitespace, '.', '*', '>', '/' or '\\')"
        )
        assert stream_names(js) == []

        taken = good["channels"]["order:created"]["stream"]
        add_stream(js, taken, ["orders.legacy"])
        result = cli.run("migrate", "copy", str(plan_file), *stan_args(stan), *to)
        assert failed(result, 2) == (
            f"natsctl: error: channel 'order:created': stream '{taken}' exists on the target with other subjects "
            "(orders.legacy); pick another stream name in the plan"
        )
        assert stream_names(js) == [taken]

        def renamed(plan):
            plan["channels"]["order:created"]["stream"] = "orders_migrated"

        fixed = with_plan(renamed)
        ok(cli.run("migrate", "copy", fixed, *stan_args(stan), *to))
        assert stream_names(js) == sorted([taken, "orders_migrated", good["channels"]["ticket:created"]["stream"]])

        # the durable's client is still connected: skipped with one line, exit 1; once it is gone, done
        result = cli.run("migrate", "durables", fixed, *stan_args(stan), *to)
        assert result.returncode == 1, result.stderr
        assert error_line(result.stderr.decode(), None) == (
            "natsctl: error: durable 'tickets-svc' on 'ticket:created' -> 'tickets-svc': connected: its client is "
            "connected: its unacked messages can only be read while it is disconnected; stop the service holding it "
            "and run migrate durables again"
        )
        s.close("tickets-1")
        result = cli.run("migrate", "durables", fixed, *stan_args(stan), *to)
        ok(result)
        assert "positioned: 2 unacked delivered again first (2, 3), then from sequence 4" in result.stderr.decode()
        ok(cli.run("migrate", "verify", fixed, *stan_args(stan), *to))
        s.close_all()
    finally:
        loop.close()
        stan.cleanup()
        js.cleanup()


def test_http_server_urls_are_plain_nats(cli):
    js = NatsServer().start()
    try:
        url = js.url.replace("nats://", "http://")
        result = cli.run("--debug", "pub", "ticket:created", '{"id": 1}', "-s", url)
        ok(result)
        assert f"natsctl: debug: server URL {url}: http:// taken as a plain NATS connection (nats://)" in (
            result.stderr.decode()
        )
        result = cli.run("replay", "ticket:created", "--raw", env={"NATS_URL": url})
        assert ok(result) == '{"id": 1}\n'
    finally:
        js.cleanup()


def test_usage_errors_are_one_line(cli_in_process, tmp_path):
    plan = tmp_path / "plan.yaml"
    plan.write_text("version: 1\nsource: {cluster_id: ticketing}\nchannels: {ticket:created: {stream: tickets}}\n")
    cases = [
        (("migrate", "plan"), "the migration source is NATS Streaming: give its --cluster-id"),
        (("migrate", "copy", str(plan), "--cluster-id", "ticketing"), "say where JetStream is: --to-server URL[,URL]"),
        (
            ("migrate", "verify", str(plan), "--cluster-id", "orders", "--to-server", "nats://127.0.0.1:1"),
            "the plan is for NATS Streaming cluster 'ticketing', not 'orders' (--cluster-id)",
        ),
        (
            ("migrate", "durables", str(tmp_path / "none.yaml"), "--cluster-id", "c", "--to-server", "nats://h:1"),
            f"no migration plan at {tmp_path / 'none.yaml'}",
        ),
        (
            ("migrate", "copy", str(plan), "--cluster-id", "ticketing", "--to-server", "https://h:4222"),
            "invalid server URL",
        ),
    ]
    for args, start in cases:
        result = cli_in_process.run(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert failed(result, 2).startswith(f"natsctl: error: {start}"), args
    plan.write_text("version: 1\nsource: {cluster_id: c}\nchannels: {ticket:created: {replicas: 0}}\n")
    result = cli_in_process.run("migrate", "copy", str(plan), "--cluster-id", "c", "--to-server", "nats://h:1")
    assert failed(result, 2) == (
        "natsctl: error: plan: channel 'ticket:created'.replicas must be a whole number of at least 1 (got 0)"
    )
