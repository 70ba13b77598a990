"""/connz paging beyond one page (real 1024 default and a forced small page) and --watch."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import time

import nats
import pytest

from tests.helpers import ClientLoop, as_json, ok, table_rows
from tests.reliability_helpers import Collector
from tests.servers import NatsServer

BULK = 1030  # more than the server's 1024 connections per /connz page


def open_raw_connection(port: int, name: str) -> socket.socket:
    """A minimal NATS client (CONNECT + PING, wait for PONG): cheap enough to open a thousand."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    connect = json.dumps({"verbose": False, "pedantic": False, "name": name, "lang": "raw", "version": "0"})
    sock.sendall(f"CONNECT {connect}\r\nPING\r\n".encode())
    received = b""
    while b"PONG\r\n" not in received:
        chunk = sock.recv(4096)
        assert chunk, f"server closed {name}: {received!r}"
        received += chunk
    return sock


@pytest.fixture(scope="module")
def crowded():
    server = NatsServer(name="mon-crowded", jetstream=False).start()
    socks = []
    try:
        socks = [open_raw_connection(server.port, f"bulk-{i}") for i in range(BULK)]
        yield server
    finally:
        for sock in socks:
            sock.close()
        server.cleanup()


def bulk_names(connections: list[dict]) -> list[str]:
    return [c["name"] for c in connections if c["name"].startswith("bulk-")]


def test_more_than_1024_connections_all_read_once(cli, crowded):
    everyone = as_json(cli.run("clients", "--json", "-m", crowded.monitor_url))
    names = bulk_names(everyone)
    assert len(names) == BULK and set(names) == {f"bulk-{i}" for i in range(BULK)}
    assert len({c["cid"] for c in everyone}) == len(everyone)
    rows = table_rows(ok(cli.run("clients", "-m", crowded.monitor_url)))
    assert sum(r["NAME"].startswith("bulk-") for r in rows) == BULK


def test_small_forced_page_reads_everything_once(cli, crowded):
    paged = as_json(cli.run("clients", "--json", "--page-size", "97", "-m", crowded.monitor_url))
    assert sorted(bulk_names(paged)) == sorted(f"bulk-{i}" for i in range(BULK))
    assert len({c["cid"] for c in paged}) == len(paged) == len(bulk_names(paged))
    first = as_json(cli.run("clients", "--json", "--limit", "100", "--page-size", "30", "-m", crowded.monitor_url))
    assert [c["cid"] for c in first] == [c["cid"] for c in paged[:100]]  # cid order, across four pages


async def _tick(nc, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await nc.publish("tick", b"0123456789")
        await asyncio.sleep(0.01)


def until(predicate, what: str, proc, timeout: float = 60) -> None:
    """Poll an observable condition (bounded) instead of sleeping for a guessed time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"natsctl exited ({proc.returncode}) before {what}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def snapshots_of(out: Collector) -> list[str]:
    """The complete --watch tables so far (each ends with a blank line; the last may be partial)."""
    return [s for s in b"".join(list(out.lines)).decode().split("\n\n")[:-1] if s.strip()]


def in_rate(snapshot: str) -> float | None:
    found = re.fullmatch(r"([\d.]+)/s", table_rows(snapshot)[0]["IN MSGS/S"])
    return float(found.group(1)) if found else None


def test_watch_refreshes_with_rates_and_ctrl_c_exits_0(cli):
    server = NatsServer(name="mon-watch", jetstream=False).start()
    loop = ClientLoop()
    stop = asyncio.Event()
    try:
        nc = loop.run(nats.connect(server.url, name="ticker"))
        ticking = asyncio.run_coroutine_threadsafe(_tick(nc, stop), loop.loop)
        proc = cli.popen("clients", "--watch", "0.3", "-m", server.monitor_url)
        out, errs = Collector(proc.stdout), Collector(proc.stderr)
        out.start()
        errs.start()
        try:
            until(
                lambda: len(shown := snapshots_of(out)) >= 3 and any((in_rate(s) or 0) > 0 for s in shown[1:]),
                "three refreshes, one with a message rate",
                proc,
            )
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        out.join(10)
        errs.join(10)
        err = b"".join(errs.lines)
        loop.loop.call_soon_threadsafe(stop.set)
        ticking.result(5)
        loop.run(nc.close())
    finally:
        loop.close()
        server.cleanup()
    assert proc.returncode == 0, err.decode()
    assert err == b""
    snapshots = [s for s in b"".join(out.lines).decode().split("\n\n") if s.strip()]
    assert len(snapshots) >= 3
    first, last = table_rows(snapshots[0])[0], table_rows(snapshots[-1])[0]
    assert first["NAME"] == "ticker" and first["IN MSGS/S"] == "-"  # nothing to compare with yet
    rates = [in_rate(s) for s in snapshots[1:]]
    assert None not in rates, [table_rows(s)[0]["IN MSGS/S"] for s in snapshots[1:]]  # a figure per second
    assert max(rates) > 0  # a rate was shown (how fast is not asserted: speed is measured in bench/)
    assert last["IN BYTES/S"].endswith("/s") and last["OUT MSGS/S"] == "0/s"


def test_watch_json_one_document_per_refresh(cli):
    server = NatsServer(name="mon-watch-json", jetstream=False).start()
    try:
        proc = cli.popen("server", "--watch", "0.2", "--json", "-m", server.monitor_url)
        out, errs = Collector(proc.stdout), Collector(proc.stderr)
        out.start()
        errs.start()
        try:
            until(lambda: len(out.lines) >= 3, "three JSON documents", proc)
            proc.send_signal(signal.SIGINT)
            proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        out.join(10)
        errs.join(10)
    finally:
        server.cleanup()
    assert proc.returncode == 0, b"".join(errs.lines).decode()
    documents = [json.loads(line) for line in b"".join(out.lines).decode().splitlines()]
    assert len(documents) >= 3
    assert {d["server_name"] for d in documents} == {"mon-watch-json"}


def test_paging_survives_connections_closing_between_pages():
    """Six connections of the first page close before the second is read: offsets shift by six, more
    than the pages' overlap. Every connection open throughout is still listed, once."""
    from natsctl.core.settings import merge
    from natsctl.monitor import api
    from natsctl.monitor.client import MonitorClient

    server = NatsServer(name="mon-churn", jetstream=False).start()
    socks = {f"churn-{i:02d}": open_raw_connection(server.port, f"churn-{i:02d}") for i in range(60)}
    leaving = [f"churn-{i:02d}" for i in range(6)]

    class ClosingAfterFirstPage(MonitorClient):
        pages = 0

        async def get(self, path, params=None, **kw):
            reply = await super().get(path, params, **kw)
            if path == "/connz":
                self.pages += 1
                if self.pages == 1:
                    for name in leaving:
                        socks.pop(name).close()
                    await self.until_gone(leaving)
            return reply

        async def until_gone(self, names):
            for _ in range(200):
                conns = (await super().get("/connz", {"limit": 1024})).data["connections"] or []
                if not {c.get("name") for c in conns} & set(names):
                    return
                await asyncio.sleep(0.05)
            raise AssertionError("the closed connections never left /connz")

    async def listing():
        async with ClosingAfterFirstPage(merge({"monitor_urls": [server.monitor_url]})) as client:
            return await api.connections(client, page_size=8), client.pages

    try:
        found, pages = asyncio.run(listing())
    finally:
        for sock in socks.values():
            sock.close()
        server.cleanup()
    names = [c.name for c in found]
    assert len(names) == len(set(names))
    assert set(names) >= {f"churn-{i:02d}" for i in range(6, 60)}, "a connection open throughout was skipped"
    assert pages > 60 // 6  # the shifted page was noticed and read again
