"""What the monitoring commands print agrees with itself (table, csv, json), and bad input is caught
before any request: monitoring URLs, `clients --sort`; failures wrapped in exception groups."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys

import nats
import pytest

from tests.helpers import (
    RecordedServer,
    as_json,
    failed,
    fixtures_dir,
    ok,
    record,
    serve_file,
    table_rows,
)
from tests.servers import NatsServer, free_port

USAGE, CONNECTION = 2, 3
CONNZ_SORTS = (
    "cid, start, subs, pending, msgs_to, msgs_from, bytes_to, bytes_from, last, idle, uptime, rtt, stop, reason"
)
STREAMS = ["ZULU", "alpha", "MIKE", "BRAVO", "yankee", "CHARLIE"]  # created in this order, listed sorted
HINT = "(use http://host:8222 or https://...)"


@pytest.fixture(scope="module")
def streams():
    """A JetStream server with several streams, only some of them with a consumer."""
    server = NatsServer(name="mon-order").start()

    async def fill() -> None:
        nc = await nats.connect(server.url, allow_reconnect=False)
        js = nc.jetstream()
        for i, name in enumerate(STREAMS):
            await js.add_stream(name=name, subjects=[f"order.{name}"])
            await js.publish(f"order.{name}", b"x" * (i + 1))
            if i % 2 == 0:
                await js.add_consumer(name, nats.js.api.ConsumerConfig(durable_name=f"c-{name}", ack_policy="explicit"))
        await nc.close()

    asyncio.run(fill())
    try:
        yield server
    finally:
        server.cleanup()


# --- monitoring URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://127.0.0.1:99999", "the port must be a number from 1 to 65535, not '99999'"),
        ("http://127.0.0.1:0", "the port must be a number from 1 to 65535, not '0'"),
        ("http://127.0.0.1:http", "the port must be a number from 1 to 65535, not 'http'"),
        ("http://:8222", "it names no host"),
        ("nats://127.0.0.1:8222", "the scheme must be http or https, not 'nats'"),
        ("127.0.0.1:8222", "the scheme must be http or https, not 'none'"),
    ],
)
def test_invalid_monitor_url_is_a_usage_error_naming_it(cli_in_process, url, problem):
    for command in ("server", "clients", "health", "cluster"):
        line = failed(cli_in_process.run(command, "-m", url), USAGE)
        assert line == f"natsctl: error: bad monitoring URL {url}: {problem} {HINT}", command


def test_invalid_url_among_several_is_named(cli_in_process):
    good = f"http://127.0.0.1:{free_port()}"
    line = failed(cli_in_process.run("server", "-m", f"{good},http://127.0.0.1:70000"), USAGE)
    assert (
        line
        == f"natsctl: error: bad monitoring URL http://127.0.0.1:70000: the port must be a number from 1 to 65535, not '70000' {HINT}"
    )


GROUPED = """
import sys
import anyio

async def connect_tcp(*args, **kwargs):
    raise ExceptionGroup("unhandled errors in a TaskGroup", [{cause}])

anyio.connect_tcp = connect_tcp  # what httpcore calls: a failure inside anyio's happy-eyeballs TaskGroup
from natsctl.cli.main import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    "cause, code, line",
    [
        (
            'OverflowError("connect(): port must be 0-65535.")',
            USAGE,
            "bad monitoring URL {url}: connect(): port must be 0-65535.",
        ),
        (
            'ConnectionRefusedError(111, "Connect call failed")',
            CONNECTION,
            "cannot reach the monitoring port {url}: connection refused; is monitoring enabled (nats-server -m 8222)? point --monitor at it",
        ),
        (
            'ExceptionGroup("inner", [OSError(113, "No route to host")])',
            CONNECTION,
            "cannot reach the monitoring port {url}: [Errno 113] No route to host",
        ),
        ('RuntimeError("boom")', CONNECTION, "request to {url} failed: boom"),
    ],
)
def test_exception_group_becomes_the_one_line_typed_error(cli, cause, code, line):
    """What anyio's TaskGroup raises reaches the user as its real cause, never "unexpected ExceptionGroup"."""
    url = f"http://127.0.0.1:{free_port()}"
    result = subprocess.run(
        [sys.executable, "-c", GROUPED.format(cause=cause), "server", "-m", url],
        check=False,
        capture_output=True,
        env=cli.env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert failed(result, code) == "natsctl: error: " + line.format(url=url)
    assert b"ExceptionGroup" not in result.stderr and b"TaskGroup" not in result.stderr


# --- clients --sort ---------------------------------------------------------------------------------


def test_clients_sort_checked_locally(cli_in_process):
    """Nothing listens at the URL: the bad option is refused before any request (exit 2, not 8)."""
    url = f"http://127.0.0.1:{free_port()}"
    for bad in ("bogus", "CID", "in_msgs"):
        line = failed(cli_in_process.run("clients", "--sort", bad, "-m", url), USAGE)
        assert line == f"natsctl: error: --sort must be one of {CONNZ_SORTS}, not {bad!r}"


def test_every_listed_sort_is_accepted_by_the_server(cli, streams):
    for option in CONNZ_SORTS.split(", "):
        state = "closed" if option in ("stop", "reason") else "open"
        assert isinstance(
            as_json(cli.run("clients", "--sort", option, "--state", state, "--json", "-m", streams.monitor_url)), list
        )
    assert (
        fixtures_dir("monitoring", "nats-2.15.1") / "extra" / "connz_bad_sort.txt"
    ).read_text() == "invalid sorting option: bogus"


# --- one order, one set of columns --------------------------------------------------------------------


def test_channels_same_order_in_table_csv_and_json(cli, streams):
    wanted = sorted(STREAMS)
    for _ in range(3):  # /jsz lists streams in map order: it differs from one read to the next
        table = [r["STREAM"] for r in table_rows(ok(cli.run("channels", "-m", streams.monitor_url)))]
        rows = list(csv.DictReader(io.StringIO(ok(cli.run("channels", "-o", "csv", "-m", streams.monitor_url)))))
        data = as_json(cli.run("channels", "--json", "-m", streams.monitor_url))
        assert table == [r["name"] for r in rows] == [c["name"] for c in data] == wanted


def test_csv_leaves_out_lists_of_records_whatever_the_row(cli, streams):
    """A stream with consumers and one without: no ``subscriptions`` column either way (the
    ``consumers`` column has the count; ``natsctl subs -o csv`` has the rows)."""
    text = ok(cli.run("channels", "-o", "csv", "-m", streams.monitor_url))
    header = text.splitlines()[0].split(",")
    assert "subscriptions" not in header and "consumers" in header
    rows = {r["name"]: r for r in csv.DictReader(io.StringIO(text))}
    assert (rows["ZULU"]["consumers"], rows["alpha"]["consumers"]) == ("1", "0")
    with_consumer, without = (
        ok(cli.run("channel", name, "-o", "csv", "-m", streams.monitor_url)).splitlines()[0]
        for name in ("ZULU", "alpha")
    )
    assert with_consumer == without == ",".join(header)
    clients = (
        ok(cli.run("clients", "--state", "closed", "-o", "csv", "-m", streams.monitor_url)).splitlines()[0].split(",")
    )
    assert "subscriptions_list" not in clients and "subscriptions" in clients
    server = ok(cli.run("server", "-o", "csv", "-m", streams.monitor_url)).splitlines()[0].split(",")
    assert "warnings" not in server and "cpu" in server


def test_channel_detail_lists_its_consumer(cli, streams):
    out = ok(cli.run("channel", "ZULU", "-m", streams.monitor_url))
    head, _, subs = out.partition("\n\n")
    assert record(head)["Subscriptions"] == "1"
    assert [r["NAME"] for r in table_rows(subs)] == ["c-ZULU"]
    assert "\n\n" not in ok(cli.run("channel", "alpha", "-m", streams.monitor_url)).strip()


def test_server_cpu_is_the_varz_percentage_in_table_and_json(cli):
    """/varz ``cpu`` is a percentage of one core (the recorded server: "cpu": 2 with "cores": 2)."""
    base = fixtures_dir("monitoring", "nats-2.15.1")
    recorded = RecordedServer(
        {"/varz": serve_file(base / "varz.json"), "/jsz": serve_file(base / "extra" / "jsz_plain.json")}
    )
    try:
        fields = record(ok(cli.run("server", "-m", recorded.url)))
        data = as_json(cli.run("server", "--json", "-m", recorded.url))
    finally:
        recorded.close()
    assert (data["cpu"], data["cores"]) == (2.0, 2)
    assert fields["CPU"] == "2.0% of one core (2 cores)"
    assert float(fields["CPU"].split("%")[0]) == data["cpu"]


def test_subs_help_says_what_queue_means_on_each_server(cli_in_process):
    text = " ".join(ok(cli_in_process.run("subs", "--help")).split())
    assert "QUEUE is the group" in text
    for server in ("Core NATS:", "JetStream:", "NATS Streaming:"):
        assert server in text
    assert 'a pull consumer shows "-" because the consumer itself is the group' in text
