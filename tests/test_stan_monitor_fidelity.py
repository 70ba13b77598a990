"""The test double's NATS Streaming monitoring port against the recordings of both real servers.

The recorded workload (tests/fixtures/monitoring/stan-*/README.md) is played against the double with
natsctl's protocol client; every listing ``migrate plan`` reads (channelsz with and without subs,
clientsz with and without subs, both again after the clients closed) must equal the recorded body,
but for what differs on every run (ids, inboxes, times).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

import nats
import pytest

from natsctl.backends.stan import proto
from natsctl.backends.stan.protocol import StanClient
from tests.helpers import fixtures_dir, stan_publish
from tests.stan_double.fixtures import start_stan

RUN_SPECIFIC = {"server_id", "now", "inbox", "ack_inbox", "hb_inbox", "cluster_id"}
LIVE = {
    "channelsz.json": "/streaming/channelsz?subs=1",
    "channelsz_names.json": "/streaming/channelsz",
    "clientsz.json": "/streaming/clientsz",
    "clientsz_subs.json": "/streaming/clientsz?subs=1",
}
CLOSED = {
    "channelsz_subs_after_close.json": "/streaming/channelsz?subs=1",
    "clientsz_after_close.json": "/streaming/clientsz",
}


def normalised(value):
    if isinstance(value, dict):
        return {k: ("*" if k in RUN_SPECIFIC else normalised(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v) for v in value]
    return value


async def workload(url: str, cluster_id: str):
    """fixture-publisher: order-1, order-2 to orders, audit-1 to audit; fixture-subscriber: a durable
    queue subscription on orders, a plain and a durable subscription on audit, every message acked."""
    clients = []
    for client_id in ("fixture-publisher", "fixture-subscriber"):
        client = StanClient(await nats.connect(url), cluster_id, client_id)
        await client.connect()
        clients.append(client)
    publisher, subscriber = clients
    handles = []

    def acker(index: int):
        def on_msg(payload: bytes) -> None:
            sequence = proto.decode("MsgProto", payload).sequence
            asyncio.get_running_loop().create_task(handles[index].ack(sequence))

        return on_msg

    first = proto.START_POSITIONS["NewOnly"]
    for index, request in enumerate(
        [
            {"subject": "orders", "qGroup": "orders-workers", "durableName": "orders-durable", "maxInFlight": 16},
            {"subject": "audit", "maxInFlight": 16384},
            {"subject": "audit", "durableName": "audit-durable", "maxInFlight": 16384},
        ]
    ):
        handles.append(
            await subscriber.subscribe({**request, "ackWaitInSecs": 30, "startPosition": first}, acker(index))
        )
    await stan_publish(publisher, [("orders", b"order-1"), ("orders", b"order-2"), ("audit", b"audit-1")], 10)
    return clients


def get(base: str, path: str) -> dict:
    with urllib.request.urlopen(base + path, timeout=5) as answer:
        return json.loads(answer.read())


def settled(base: str) -> bool:
    body = get(base, "/streaming/channelsz?subs=1")
    subs = [s for c in body["channels"] for s in c.get("subscriptions", [])]
    return len(subs) == 3 and all(s["pending_count"] == 0 for s in subs)


@pytest.mark.parametrize("version", ["0.17.0", "0.23.2"])
def test_listings_match_the_recordings(version):
    recorded = fixtures_dir("monitoring", f"stan-{version}")
    stan = start_stan(version, monitoring=True)
    loop = asyncio.new_event_loop()
    try:
        clients = loop.run_until_complete(workload(stan.url, stan.cluster_id))
        deadline = time.monotonic() + 10
        while not settled(stan.monitor_url):
            assert time.monotonic() < deadline, "the subscriber's acks never settled"
            loop.run_until_complete(asyncio.sleep(0.05))
        for name, path in LIVE.items():
            expected = json.loads((recorded / name).read_text())
            assert normalised(get(stan.monitor_url, path)) == normalised(expected), name

        async def close() -> None:
            for client in clients:
                await client.close()
                await client.nc.close()

        loop.run_until_complete(close())
        for name, path in CLOSED.items():
            expected = json.loads((recorded / name).read_text())
            assert normalised(get(stan.monitor_url, path)) == normalised(expected), name
    finally:
        loop.close()
        stan.cleanup()
