"""`natsctl channel ...` and `natsctl durable ...` on NATS Streaming (the test double, with its monitoring
port), through the CLI: what the protocol can do works, the rest is a one-line refusal naming the
server setting; a durable is removed only while its client is away.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.helpers import as_json, failed, ok, read_lines_until
from tests.stan_double.fixtures import StanServer, start_stan


@pytest.fixture(scope="module")
def stan() -> Iterator[StanServer]:
    server = start_stan("0.23.2", monitoring=True)
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def run(cli, stan):
    """natsctl against the double: its server, cluster id and monitoring port (for every command)."""

    def go(*args: str, **kw):
        return cli.run(*args, *stan.cli_args(), env={"NATS_MONITOR_URL": stan.monitor_url or ""}, **kw)

    return go


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.05)


def durables(run, channel: str) -> list[dict]:
    return as_json(run("durable", "ls", channel, "--json"))


def test_add_creates_the_channel_and_info_shows_it(run):
    assert failed(run("channel", "info", "ticket:created"), 7).endswith("'natsctl channels' lists them")
    made = run("channel", "add", "ticket:created", "--json")
    assert as_json(made)["created"] is True
    again = run("channel", "add", "ticket:created")
    assert "channel ticket:created is there" in again.stderr.decode() and ok(again) == ""
    ok(run("pub", "ticket:created", "one"))
    shown = as_json(run("channel", "ticket:created", "--json"))
    assert (shown["name"], shown["kind"], shown["messages"]) == ("ticket:created", "channel", 1)
    refused = failed(run("channel", "add", "ticket:shaped", "--max-msgs", "5"), 2)
    assert "NATS Streaming channel limits are set on its server (store_limits)" in refused


def test_get_reads_one_message_like_sub(run):
    for n in (1, 2, 3):
        ok(run("pub", "order:updated", f'{{"id": {n}}}'))
    for output in ([], ["--json"]):
        got = ok(run("channel", "get", "order:updated", "--seq", "2", *output))
        assert got == ok(run("replay", "order:updated", "--seq", "2", "--to-seq", "2", *output))
    last = json.loads(ok(run("channel", "get", "order:updated", "--last-for", "order:updated", "--json")))
    assert (last["seq"], last["data"]) == (3, '{"id": 3}')
    assert failed(run("channel", "get", "order:updated", "--seq", "9"), 7).endswith(
        "no message 9 in channel 'order:updated'"
    )
    assert "a NATS Streaming channel has one subject" in failed(
        run("channel", "get", "order:updated", "--last-for", "order:other"), 2
    )
    failed(run("channel", "get", "order:nowhere", "--seq", "1"), 7)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["channel", "purge", "order:updated", "--yes"], "max_msgs, max_bytes and max_age"),
        (["channel", "edit", "order:updated", "--max-msgs", "5", "--yes"], "in store_limits"),
        (["channel", "rm", "order:updated", "--yes"], "for max_inactivity"),
        (["channel", "rm-msg", "order:updated", "1", "--yes"], "cannot delete one message"),
        (["durable", "reset", "order:updated", "d", "--all", "--yes"], "cannot move a durable"),
        (["durable", "pause", "order:updated", "d", "--until", "1m"], "NATS Streaming has no pause"),
        (["durable", "resume", "order:updated", "d"], "NATS Streaming has no pause"),
    ],
)
def test_what_the_protocol_cannot_do_is_one_line(run, args, said):
    assert said in failed(run(*args), 2)


def test_rm_refused_while_the_client_holds_the_durable_then_done(run, cli, stan):
    ok(run("pub", "order:created", "first"))
    holder = cli.popen(
        "sub", "order:created", "--all", "--durable", "billing", "--client-id", "holder", "--json", *stan.cli_args()
    )
    try:
        assert json.loads(read_lines_until(holder, 1)[0])["data"] == "first"
        listed = durables(run, "order:created")
        assert [(d["name"], d["client_id"], d["online"]) for d in listed] == [("billing", "holder", True)]
        line = failed(run("durable", "rm", "order:created", "billing", "--yes"), 2)
        assert "is in use by client id 'holder'" in line
        assert "removes a durable only while its client is not connected" in line
        assert durables(run, "order:created") == listed  # nothing changed
    finally:
        holder.terminate()
        holder.wait(30)
    wait_for(lambda: durables(run, "order:created")[0]["online"] is False, what="the durable going offline")
    assert "would delete durable billing of channel order:created" in failed(
        run("durable", "rm", "order:created", "billing"), 2
    )
    removed = as_json(run("durable", "rm", "order:created", "billing", "--yes", "--json"))
    assert (removed["what"], removed["name"], removed["channel"]) == ("durable", "billing", "order:created")
    assert durables(run, "order:created") == []
    # removed without consuming: the message is still there
    assert json.loads(ok(run("channel", "get", "order:created", "--seq", "1", "--json")))["data"] == "first"
    failed(run("durable", "rm", "order:created", "billing", "--yes"), 7)


def test_durable_queue_group_listed_and_removed(run):
    for n in (1, 2):
        ok(run("pub", "order:queued", f"m{n}"))
    ok(run("sub", "order:queued", "--all", "--durable", "workers", "--queue", "pool", "--count", "1"))
    info = as_json(run("durable", "info", "order:queued", "workers", "--queue", "pool", "--json"))
    assert (info["name"], info["queue"], info["online"], info["delivered_seq"], info["pending"]) == (
        "workers",
        "pool",
        False,
        2,  # NATS Streaming sent both (max in flight), one was acked
        0,
    )
    failed(run("durable", "info", "order:queued", "workers"), 7)  # no plain durable of that name
    ok(run("durable", "rm", "order:queued", "workers", "--queue", "pool", "--yes"))
    assert durables(run, "order:queued") == []
    failed(run("durable", "ls", "order:nowhere"), 7)
