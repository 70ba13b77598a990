"""Issue 12 (items 1, 2, 6): names that resolve everywhere, subject families and whole streams,
export/import with subjects kept, and the connection flags before the command.

One JetStream server and one NATS Streaming double for the module; every check reads the server back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import nats
import pytest

from natsctl.core.names import stream_name_for
from tests.helpers import as_json, error_line, failed, ok, record, table_rows
from tests.servers import NatsServer
from tests.stan_double.fixtures import StanServer, start_stan

USAGE, NOT_FOUND, CONNECTION = 2, 7, 3
CREATED, UPDATED = "ticket:created", "order:updated"


@pytest.fixture(scope="module")
def js() -> Iterator[NatsServer]:
    server = NatsServer(name="i12a-names").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def stan() -> Iterator[StanServer]:
    server = start_stan("0.23.2", monitoring=True)
    try:
        yield server
    finally:
        server.cleanup()


def on_server(server: NatsServer, work: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``work(jetstream context)`` with a plain nats-py client (how services and natscli make streams)."""

    async def go() -> Any:
        nc = await nats.connect(server.url, allow_reconnect=False)
        try:
            return await work(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


def stream_names(server: NatsServer) -> list[str]:
    return sorted(s.config.name for s in on_server(server, lambda j: j.streams_info()))


def stored(server: NatsServer, stream: str) -> list[tuple[str, bytes, dict[str, str] | None]]:
    """(subject, data, headers) of every message of ``stream``, read back with nats-py."""

    async def read(j: Any) -> list[tuple[str, bytes, dict[str, str] | None]]:
        info = await j.stream_info(stream)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1) if info.state.messages else ():
            msg = await j.get_msg(stream, seq)
            out.append((msg.subject, msg.data, dict(msg.headers) if msg.headers else None))
        return out

    return on_server(server, read)


def envelopes(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def mon(server: NatsServer) -> list[str]:
    return ["-m", server.monitor_url]


# --- 1. the seed's colon names, by channel and by stream, through every command ------------------------------


def test_colon_names_resolve_by_channel_and_by_stream(cli, js, tmp_path):
    args = ["-s", js.url]
    created_stream, updated_stream = stream_name_for(CREATED), stream_name_for(UPDATED)
    assert created_stream.startswith("ticket_created_") and updated_stream.startswith("order_updated_")
    ok(cli.run("pub", CREATED, '{"id": 1}', *args))
    ok(cli.run("pub", UPDATED, '{"id": 1}', *args))
    # pub by the stream's name goes to its channel
    summary = as_json(cli.run("pub", created_stream, '{"id": 2}', "--json", "--record", str(tmp_path / "c.rec"), *args))
    assert (summary["channel"], summary["stream"], summary["created"], summary["last_sequence"]) == (
        CREATED,
        created_stream,
        False,
        2,
    )
    assert [s[0] for s in stored(js, created_stream)] == [CREATED, CREATED]
    assert stream_names(js).count(created_stream) == 1 and CREATED not in stream_names(js)

    # replay and sub by either name read the channel, named as the user knows it
    for name in (CREATED, created_stream):
        got = envelopes(ok(cli.run("replay", name, "--json", *args)))
        assert [(e["channel"], e["subject"], e["seq"], e["data"]) for e in got] == [
            (CREATED, CREATED, 1, '{"id": 1}'),
            (CREATED, CREATED, 2, '{"id": 2}'),
        ]
    got = envelopes(ok(cli.run("sub", updated_stream, "--all", "-e", "--durable", "upd", "--json", *args)))
    assert [(e["channel"], e["subject"], e["seq"]) for e in got] == [(UPDATED, UPDATED, 1)]
    # the same durable through the channel's name: one consumer, resumed after what was acked
    ok(cli.run("pub", UPDATED, '{"id": 2}', *args))
    got = envelopes(ok(cli.run("sub", UPDATED, "--all", "-e", "--durable", "upd", "--json", *args)))
    assert [e["seq"] for e in got] == [2]

    # verify by the stream's name
    report = as_json(cli.run("verify", created_stream, "--against", str(tmp_path / "c.rec"), "--json", *args))
    assert (report["ok"], report["present"], report["missing_count"]) == (True, 1, 0)

    # monitoring: the channel first, the stream beside it (table and JSON)
    rows = {r["CHANNEL"]: r for r in table_rows(ok(cli.run("channels", *mon(js))))}
    assert (rows[CREATED]["STREAM"], rows[CREATED]["MSGS"]) == (created_stream, "2")
    assert (rows[UPDATED]["STREAM"], rows[UPDATED]["MSGS"], rows[UPDATED]["SUBS"]) == (updated_stream, "2", "1")
    data = {c["channel"]: c for c in as_json(cli.run("channels", "--json", *mon(js)))}
    assert list(data[CREATED])[:2] == ["channel", "stream"]
    assert (data[UPDATED]["stream"], data[UPDATED]["subjects"]) == (updated_stream, [UPDATED])
    [sub] = [r for r in table_rows(ok(cli.run("subs", "--no-core", *mon(js)))) if r["NAME"] == "upd"]
    assert (sub["CHANNEL"], sub["STREAM"], sub["DELIVERED"]) == (UPDATED, updated_stream, "2")
    for name in (UPDATED, updated_stream):
        [sub_json] = as_json(cli.run("subs", "--json", "--no-core", "--channel", name, *mon(js)))
        assert (sub_json["channel"], sub_json["stream"], sub_json["name"]) == (UPDATED, updated_stream, "upd")
    # `channel ticket:created` finds its stream
    fields = record(ok(cli.run("channel", CREATED, *mon(js))).partition("\n\n")[0])
    assert (fields["Channel"], fields["Stream"], fields["Messages"]) == (CREATED, created_stream, "2")


def test_a_name_that_is_a_subject_and_another_streams_name_is_refused(cli, js):
    async def make(j: Any) -> None:
        await j.add_stream(name="audit", subjects=["events.audit"])
        await j.add_stream(name="AUDITLOG", subjects=["audit"])

    on_server(js, make)
    for command in (["replay", "audit"], ["sub", "audit", "--all", "-e"], ["pub", "audit", "x"]):
        line = failed(cli.run(*command, "-s", js.url), USAGE)
        assert line == (
            "natsctl: error: 'audit' is ambiguous: it is a subject of stream 'AUDITLOG' and the name of stream "
            "'audit' (events.audit); sub, replay and verify read the stream with --stream audit; or rename one of them"
        )
    assert (len(stored(js, "audit")), len(stored(js, "AUDITLOG"))) == (0, 0)
    # --stream names the stream; its own subject names the other
    ok(cli.run("pub", "events.audit", "e1", "-s", js.url))
    assert ok(cli.run("replay", "--stream", "audit", "--raw", "-s", js.url)) == "e1\n"
    assert ok(cli.run("replay", "events.audit", "--raw", "-s", js.url)) == "e1\n"


# --- 2. subject families and whole streams ------------------------------------------------------------------

ORDERS = [("orders.new", b"n1"), ("orders.shipped", b"s1"), ("orders.eu.new", b"e1"), ("orders.new", b"n2")]


@pytest.fixture(scope="module")
def orders(js) -> str:
    async def make(j: Any) -> None:
        await j.add_stream(name="ORDERS", subjects=["orders.>"])
        for subject, data in ORDERS:
            await j.publish(subject, data)

    on_server(js, make)
    return "ORDERS"


def test_wildcards_and_whole_streams_read_a_stream_made_elsewhere(cli, js, orders):
    args = ["-s", js.url]
    one_token = envelopes(ok(cli.run("replay", "orders.*", "--json", *args)))
    assert [(e["channel"], e["subject"], e["seq"], e["data"]) for e in one_token] == [
        ("orders.*", "orders.new", 1, "n1"),
        ("orders.*", "orders.shipped", 2, "s1"),
        ("orders.*", "orders.new", 4, "n2"),
    ]
    every = envelopes(ok(cli.run("replay", "orders.>", "--json", *args)))
    assert [(e["subject"], e["seq"]) for e in every] == [(s, i) for i, (s, _) in enumerate(ORDERS, start=1)]
    for how in (["--stream", orders], [orders]):
        whole = envelopes(ok(cli.run("replay", *how, "--json", *args)))
        assert [(e["subject"], e["data"]) for e in whole] == [(s, d.decode()) for s, d in ORDERS]
    # the readable output names each message's own subject
    text = ok(cli.run("replay", "--stream", orders, *args))
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("[#")] == [s for s, _ in ORDERS]
    # sub with a wildcard and a durable: a consumer filtering on it, resumed
    got = envelopes(ok(cli.run("sub", "orders.*.new", "--all", "-e", "--durable", "eu", "--json", *args)))
    assert [(e["subject"], e["seq"]) for e in got] == [("orders.eu.new", 3)]
    info = on_server(js, lambda j: j.consumer_info(orders, "eu"))
    assert (info.config.filter_subject, info.ack_floor.stream_seq) == ("orders.*.new", 3)
    # verify reads a family too (a record of what a publish to it confirmed)
    rec = [{"line": 1, "seq": 2, "sha256": _sha("s1")}, {"line": 2, "seq": 4, "sha256": _sha("n2")}]
    report = _verify(cli, js, "orders.*", rec)
    assert (report["ok"], report["present"], report["duplicated_count"]) == (True, 2, 0)
    # nothing was created for any of it
    assert [n for n in stream_names(js) if "orders" in n.lower()] == ["ORDERS"]


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _verify(cli, js, name: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".rec", delete=False) as handle:
        handle.write("".join(json.dumps(line) + "\n" for line in lines))
    return as_json(cli.run("verify", name, "--against", handle.name, "--json", "-s", js.url))


def test_export_and_import_of_a_stream_keeps_each_subject(cli, js, tmp_path):
    async def make(j: Any) -> None:
        await j.add_stream(name="SHOP", subjects=["shop.>"])
        await j.publish("shop.cart", b"c1")
        await j.publish("shop.pay.card", b"\xff\x00binary", headers={"Trace": "t-1"})
        await j.publish("shop.cart", b"c2")

    on_server(js, make)
    original = stored(js, "SHOP")
    export = tmp_path / "shop.jsonl"
    export.write_bytes(cli.run("replay", "--stream", "SHOP", "--json", "-s", js.url).stdout)
    assert [e["subject"] for e in envelopes(export.read_text())] == ["shop.cart", "shop.pay.card", "shop.cart"]

    async def move(j: Any) -> None:  # the restore target: the stream re-made under another name
        await j.delete_stream("SHOP")
        await j.add_stream(name="SHOP_RESTORED", subjects=["shop.>"])

    on_server(js, move)
    summary = as_json(
        cli.run("pub", "SHOP_RESTORED", "--envelope", "--keep-subject", "-f", str(export), "--json", "-s", js.url)
    )
    assert (summary["stream"], summary["confirmed"], summary["first_sequence"], summary["last_sequence"]) == (
        "SHOP_RESTORED",
        3,
        1,
        3,
    )
    assert stored(js, "SHOP_RESTORED") == original  # subjects, payloads (binary too) and headers

    # an envelope whose subject the target does not hold: refused at that line, nothing after it sent;
    # what came before it is confirmed and said so
    result = cli.run("pub", "shop.cart", "--envelope", "--keep-subject", "-f", str(export), "-s", js.url)
    assert result.returncode == USAGE
    assert error_line(result.stderr.decode(), stdout=None) == (
        "natsctl: error: line 2: subject 'shop.pay.card' is not in 'shop.cart' (stream 'SHOP_RESTORED'); "
        "publish it to its own stream"
    )
    assert result.stdout == b"published 1 message to shop.cart (stream SHOP_RESTORED, sequence 4)\n"
    assert stored(js, "SHOP_RESTORED") == [*original, original[0]]
    # a missing target is not created for an import
    line = failed(cli.run("pub", "NOPE", "--envelope", "--keep-subject", "-f", str(export), "-s", js.url), NOT_FOUND)
    assert line.endswith("--keep-subject imports into a stream that exists: create it first")
    assert "NOPE" not in stream_names(js)


def test_a_wildcard_no_stream_covers_is_not_found_and_creates_nothing(cli, js, orders):
    before = stream_names(js)
    line = failed(cli.run("sub", "nothing.*", "--all", "-e", "-s", js.url), NOT_FOUND)
    assert line == (
        "natsctl: error: no stream covers 'nothing.*'; natsctl never creates a stream for a wildcard: "
        "create one that covers it, or name one channel"
    )
    line = failed(cli.run("replay", "nothing.>", "-s", js.url), NOT_FOUND)
    assert line.startswith("natsctl: error: no stream covers 'nothing.>'")
    # a pattern wider than any one stream names the streams it overlaps
    line = failed(cli.run("replay", "*.new", "-s", js.url), NOT_FOUND)
    assert line.startswith("natsctl: error: no one stream covers '*.new' (ORDERS holds orders.>")
    line = failed(cli.run("replay", "--stream", "NOSUCH", "-s", js.url), NOT_FOUND)
    assert line.startswith("natsctl: error: no stream named 'NOSUCH'")
    # publishing to a pattern or to a stream of several subjects, without --keep-subject
    assert failed(cli.run("pub", "orders.*", "x", "-s", js.url), USAGE).endswith(
        "wildcards (* and >) are not allowed in a channel name"
    )
    assert stream_names(js) == before
    count = len(stored(js, orders))
    line = failed(cli.run("pub", orders, "x", "-s", js.url), USAGE)
    assert "'orders.>' (stream 'ORDERS') is not one subject: publish to one of its subjects" in line
    assert len(stored(js, orders)) == count


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "orders.new", "--stream", "ORDERS"], "give CHANNEL or --stream NAME, not both"),
        (["sub", "orders.new", "--stream", "ORDERS"], "give CHANNEL or --stream NAME, not both"),
        (["replay"], "give a CHANNEL to read, or --stream NAME"),
        (["replay", "--json"], "give a CHANNEL to read, or --stream NAME"),
        (["replay", "orders.*x"], "'*' and '>' stand for whole tokens"),
        (["replay", "orders.>.new"], "'>' may only be the last token"),
        (
            ["pub", "orders.new", "x", "--keep-subject"],
            "--keep-subject keeps each envelope's subject: it goes with --envelope",
        ),
        (["verify", "--stream", "ORDERS"], "verify needs --against FILE"),
    ],
)
def test_conflicting_flags_are_usage_errors(cli_in_process, js, args, message):
    assert message in failed(cli_in_process.run(*args, "-s", js.url), USAGE)


def test_nats_streaming_refuses_wildcards_and_streams_in_one_line(cli_in_process, stan):
    """Refused before connecting: no channel appears on the double."""
    cli = cli_in_process
    args = stan.cli_args()
    line = failed(cli.run("replay", "orders.*", *args), USAGE)
    assert line == (
        "natsctl: error: 'orders.*' is a wildcard: NATS Streaming has no wildcards (a channel is one literal "
        "subject); name one channel"
    )
    assert "no wildcards" in failed(cli.run("sub", "orders.>", "--all", *args), USAGE)
    assert "no wildcards" in failed(cli.run("verify", "orders.>", "--against", "x.rec", *args), USAGE)
    line = failed(cli.run("replay", "--stream", "ORDERS", *args), USAGE)
    assert line == (
        "natsctl: error: --stream reads a JetStream stream of several subjects; NATS Streaming has none "
        "(a channel is one subject, without wildcards): name the channel"
    )
    line = failed(cli.run("pub", "orders", "--envelope", "--keep-subject", *args, input='{"data":"x"}\n'), USAGE)
    assert "NATS Streaming has one subject per channel" in line
    for name in ("orders.*", "orders.>", "ORDERS", "orders"):  # nothing was created
        assert httpx.get(f"{stan.monitor_url}/streaming/channelsz", params={"channel": name}).status_code == 404


# --- the hint of a missing channel, per command ------------------------------------------------------------


def test_a_missing_channel_hint_fits_the_command(cli, js, tmp_path):
    reader = "check the name ('natsctl channels' lists the channels there); reading a channel never creates it"
    no_create = "drop --no-create to let natsctl create it, or create a stream for that subject"
    (tmp_path / "x.rec").write_text(json.dumps({"line": 1, "seq": 1, "sha256": _sha("x")}) + "\n")
    for command, hint in (
        (["replay", "nosuch"], reader),
        (["verify", "nosuch", "--against", str(tmp_path / "x.rec")], reader),
        (["sub", "nosuch", "--no-create", "--all", "-e"], no_create),
        (["pub", "nosuch", "x", "--no-create"], no_create),
    ):
        assert (
            failed(cli.run(*command, "-s", js.url), NOT_FOUND)
            == f"natsctl: error: no stream holds channel 'nosuch'; {hint}"
        )
    assert "nosuch" not in stream_names(js)


# --- 6. connection flags before the command -----------------------------------------------------------------


def test_connection_flags_before_the_command(cli, js, stan, orders):
    dead = "nats://127.0.0.1:1"
    summary = as_json(cli.run("-s", js.url, "--timeout", "5", "pub", "early:flags", "x", "--json"))
    assert (summary["channel"], summary["confirmed"]) == ("early:flags", 1)
    assert stored(js, stream_name_for("early:flags"))[0][:2] == ("early:flags", b"x")
    # given before and after: the one after the command wins, both ways
    assert ok(cli.run("-s", dead, "replay", "early:flags", "--raw", "-s", js.url)) == "x\n"
    line = failed(cli.run("-s", js.url, "replay", "early:flags", "--raw", "-s", dead, "--timeout", "1"), CONNECTION)
    assert "127.0.0.1:1" in line
    # --cluster-id before the command picks NATS Streaming
    ok(cli.run("--server", stan.url, "--cluster-id", stan.cluster_id, "pub", "before", "s1"))
    assert ok(cli.run("--cluster-id", stan.cluster_id, "-s", stan.url, "replay", "before", "--raw")) == "s1\n"
    assert "no wildcards" in failed(cli.run("--cluster-id", stan.cluster_id, "-s", stan.url, "replay", "a.*"), USAGE)
    # --monitor before a monitoring command
    rows = table_rows(ok(cli.run("-m", js.monitor_url, "channels")))
    assert "early:flags" in [r["CHANNEL"] for r in rows]
    # help shows each flag once, at the root and in a command's help
    for help_args in (["--help"], ["pub", "--help"]):
        text = ok(cli.run(*help_args))
        assert text.count("--cluster-id") == 1 and text.count("--server") == 1, text


def test_context_add_stores_flags_given_before_the_command(cli):
    ok(cli.run("-s", "nats://before:4222", "--user", "u1", "context", "add", "staging", "--user", "u2"))
    stored_context = as_json(cli.run("context", "show", "staging", "--json"))["context"]
    assert (stored_context["url"], stored_context["user"]) == ("nats://before:4222", "u2")
