"""`natsctl channel ...` and `natsctl durable ...` on JetStream (one server for the module), through the CLI.

Every change is checked by reading the server's state back (`channel info --json`, `durable info
--json`, what the next `sub --durable` delivers); refusals by their one line, exit code, and the
state unchanged. Channel names are the seed's colon names.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.helpers import ClientLoop, as_json, failed, ok, read_lines_until, record
from tests.servers import NatsServer


class Reader:
    """Reads the server's state back with nats-py, in the test process (cheaper than a natsctl run)."""

    def __init__(self, url: str) -> None:
        import nats

        self.loop = ClientLoop()
        self.nc = self.loop.run(nats.connect(url))
        self.js = self.nc.jetstream()

    def stream(self, channel: str):
        async def read():
            name = await self.js.find_stream_name_by_subject(channel)
            return (await self.js.stream_info(name)).state

        return self.loop.run(read())

    def config(self, channel: str):
        async def read():
            return (await self.js.stream_info(await self.js.find_stream_name_by_subject(channel))).config

        return self.loop.run(read())

    def consumer(self, channel: str, name: str):
        async def read():
            return await self.js.consumer_info(await self.js.find_stream_name_by_subject(channel), name)

        return self.loop.run(read())

    def close(self) -> None:
        self.loop.run(self.nc.close())
        self.loop.close()


@pytest.fixture(scope="module")
def js() -> Iterator[NatsServer]:
    srv = NatsServer().start()
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture(scope="module")
def server_state(js) -> Iterator[Reader]:
    reader = Reader(js.url)
    try:
        yield reader
    finally:
        reader.close()


def S(js: NatsServer) -> list[str]:
    return ["-s", js.url]


def pub(cli, js, channel: str, count: int) -> None:
    ok(cli.run("pub", channel, "--count", str(count), "msg {{Count}}", *S(js)))


def state(reader: Reader, channel: str) -> tuple[int, int, int]:
    found = reader.stream(channel)
    return found.messages, found.first_seq, found.last_seq


def wait_for(condition, timeout: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"no {what} within {timeout}s"
        time.sleep(0.05)


# -- channels --------------------------------------------------------------------------------------


def test_add_info_and_the_short_form(cli, js):
    made = as_json(
        cli.run("channel", "add", "ticket:created", "--max-msgs", "1000", "--max-age", "1h", "--json", *S(js))
    )
    assert (made["channel"], made["kind"], made["created"], made["messages"]) == ("ticket:created", "stream", True, 0)
    assert made["stream"].startswith("ticket_created_")
    assert (made["config"]["max_msgs"], made["config"]["max_age"], made["config"]["subjects"]) == (
        1000,
        3600.0,
        ["ticket:created"],
    )
    again = cli.run("channel", "add", "ticket:created", *S(js))
    assert ok(again) == "" and "exists already, left as it is" in again.stderr.decode()
    pub(cli, js, "ticket:created", 3)
    info = as_json(cli.run("channel", "info", "ticket:created", "--json", *S(js)))
    assert (info["messages"], info["first_seq"], info["last_seq"], info["state"]["messages"]) == (3, 1, 3, 3)
    assert info["first_time"] <= info["last_time"] == info["state"]["last_ts"] and info["first_time"].startswith("20")
    # `channel NAME` is `channel info NAME`
    assert as_json(cli.run("channel", "ticket:created", "--json", *S(js)))["config"] == info["config"]
    fields = record(ok(cli.run("channel", "ticket:created", *S(js))))
    assert (fields["Channel"], fields["Messages"], fields["Max messages"], fields["Max age"]) == (
        "ticket:created",
        "3",
        "1000",
        "3600s",
    )


def test_purge_variants_by_first_and_last_sequence(cli, js, server_state):
    pub(cli, js, "order:purged", 10)
    below = as_json(cli.run("channel", "purge", "order:purged", "--seq", "4", "--yes", "--json", *S(js)))
    assert (below["purged"], below["messages"], below["first_seq"], below["last_seq"]) == (3, 7, 4, 10)
    assert state(server_state, "order:purged") == (7, 4, 10)
    kept = as_json(cli.run("channel", "purge", "order:purged", "--keep", "2", "--yes", "--json", *S(js)))
    assert (kept["purged"], kept["messages"]) == (5, 2)
    assert state(server_state, "order:purged") == (2, 9, 10)
    other = as_json(cli.run("channel", "purge", "order:purged", "--subject", "order:other", "--yes", "--json", *S(js)))
    assert other["purged"] == 0 and state(server_state, "order:purged") == (2, 9, 10)
    everything = cli.run("channel", "purge", "order:purged", "--subject", "order:purged", "--yes", *S(js))
    assert "purged 2 messages of channel order:purged; 0 left" in everything.stderr.decode() and ok(everything) == ""
    assert state(server_state, "order:purged") == (0, 11, 10)
    pub(cli, js, "order:purged", 3)
    assert as_json(cli.run("channel", "purge", "order:purged", "--yes", "--json", *S(js)))["purged"] == 3
    assert state(server_state, "order:purged") == (0, 14, 13)


def test_get_writes_like_sub_and_rm_msg_deletes_one(cli, js, server_state):
    ok(cli.run("pub", "order:updated", '{"id": 1}', *S(js)))
    ok(cli.run("pub", "order:updated", '{"id": 2}', *S(js)))
    ok(cli.run("pub", "order:updated", '{"id": 3}', *S(js)))
    for output in ([], ["--json"]):
        got = ok(cli.run("channel", "get", "order:updated", "--seq", "2", *output, *S(js)))
        read = ok(cli.run("replay", "order:updated", "--seq", "2", "--to-seq", "2", *output, *S(js)))
        assert got == read
    envelope = json.loads(
        ok(cli.run("channel", "get", "order:updated", "--last-for", "order:updated", "--json", *S(js)))
    )
    assert (envelope["seq"], envelope["data"], envelope["channel"]) == (3, '{"id": 3}', "order:updated")
    removed = as_json(cli.run("channel", "rm-msg", "order:updated", "2", "--yes", "--json", *S(js)))
    assert (removed["what"], removed["sequence"]) == ("message", 2)
    assert failed(cli.run("channel", "get", "order:updated", "--seq", "2", *S(js)), 7).endswith(
        f"no message 2 in channel 'order:updated' (stream '{removed['stream']}')"
    )
    assert state(server_state, "order:updated") == (2, 1, 3)
    failed(cli.run("channel", "rm-msg", "order:updated", "2", "--yes", *S(js)), 7)


def test_edit_shows_the_difference_then_applies(cli, js, server_state):
    pub(cli, js, "ticket:edited", 1)
    before = server_state.config("ticket:edited")
    plan = cli.run("channel", "edit", "ticket:edited", "--max-msgs", "5", "--max-age", "2h", "--dry-run", *S(js))
    assert ok(plan).splitlines() == ["max_msgs: unlimited -> 5", "max_age: unlimited -> 7200"]
    assert server_state.config("ticket:edited") == before
    done = as_json(cli.run("channel", "edit", "ticket:edited", "--max-msgs", "5", "--yes", "--json", *S(js)))
    assert done["applied"] is True and done["changes"] == [{"field": "max_msgs", "before": None, "after": 5}]
    after = server_state.config("ticket:edited")
    assert (after.max_msgs, after.max_age, before.max_msgs) == (5, before.max_age, -1)
    same = as_json(cli.run("channel", "edit", "ticket:edited", "--max-msgs", "5", "--yes", "--json", *S(js)))
    assert same == {"channel": "ticket:edited", "stream": done["stream"], "changes": [], "applied": False}


def test_rm_deletes_the_stream(cli, js):
    pub(cli, js, "ticket:removed", 2)
    removed = as_json(cli.run("channel", "rm", "ticket:removed", "--yes", "--json", *S(js)))
    assert removed["what"] == "channel"
    line = failed(cli.run("channel", "info", "ticket:removed", *S(js)), 7)
    assert "no stream holds channel 'ticket:removed'" in line and "natsctl channel add" in line


def test_destructive_commands_need_yes_off_a_terminal(cli, js, server_state):
    pub(cli, js, "order:kept", 5)
    ok(cli.run("sub", "order:kept", "--all", "--durable", "keeper", "--count", "2", *S(js)))
    cases = [
        (["channel", "purge", "order:kept"], "would purge all 5 messages of channel order:kept"),
        (["channel", "purge", "order:kept", "--keep", "1"], "would purge all but the last 1 messages"),
        (["channel", "rm", "order:kept"], "would delete channel order:kept: stream "),
        (["channel", "rm-msg", "order:kept", "3"], "would delete message 3 of channel order:kept"),
        (
            ["channel", "edit", "order:kept", "--max-msgs", "2"],
            "would change max_msgs: unlimited -> 2 of channel order:kept",
        ),
        (["durable", "rm", "order:kept", "keeper"], "would delete durable keeper of channel order:kept"),
        (["durable", "reset", "order:kept", "keeper", "--all"], "would move durable keeper of channel order:kept"),
    ]
    before = (server_state.stream("order:kept"), server_state.config("order:kept"))
    for args, said in cases:
        line = failed(cli.run(*args, *S(js)), 2)
        assert said in line and line.endswith("pass --yes to do it (stdin is not a terminal, so natsctl does not ask)")
    assert (server_state.stream("order:kept"), server_state.config("order:kept")) == before
    assert before[0].messages == 5
    after = server_state.consumer("order:kept", "keeper")
    assert (after.delivered.stream_seq, after.ack_floor.stream_seq, after.config.deliver_policy) == (2, 2, "all")


def test_unknown_channel_or_durable_exits_7(cli, js):
    pub(cli, js, "order:known", 1)
    for args in (
        ["channel", "info", "order:unknown"],
        ["channel", "purge", "order:unknown", "--yes"],
        ["channel", "get", "order:unknown", "--seq", "1"],
        ["durable", "ls", "order:unknown"],
        ["durable", "rm", "order:known", "nobody", "--yes"],
        ["durable", "reset", "order:known", "nobody", "--all", "--yes"],
    ):
        line = failed(cli.run(*args, *S(js)), 7)
        assert "order:unknown" in line or "no durable 'nobody' on channel 'order:known'" in line


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["channel", "purge", "x", "--seq", "2", "--keep", "1"], "--seq and --keep contradict each other"),
        (["channel", "get", "x"], "give one of --seq N or --last-for SUBJECT"),
        (["channel", "get", "x", "--seq", "1", "--last-for", "x"], "give one of --seq N or --last-for SUBJECT"),
        (["channel", "get", "x", "--seq", "1", "--json", "--raw"], "--json and --raw contradict each other"),
        (["channel", "edit", "x"], "nothing to change"),
        (["channel", "edit", "x", "--discard", "all"], "--discard must be old or new"),
        (["durable", "reset", "x", "d"], "give one of --seq N, --since DURATION|TIME, --all or --last"),
        (["durable", "reset", "x", "d", "--seq", "3", "--last"], "(--seq and --last contradict each other)"),
        (["durable", "pause", "x", "d"], "give --until TIME|DURATION"),
        (["durable", "pause", "x", "d", "--until", "2020-01-01T00:00:00Z"], "is in the past"),
        (["channel", "info", "x", "-o", "xml"], "unknown output format 'xml'"),
    ],
)
def test_conflicting_flags(cli_in_process, args, said):
    line = failed(cli_in_process.run(*args, "-s", "nats://127.0.0.1:1"), 2)
    assert said in line


# -- durables --------------------------------------------------------------------------------------


def next_seq(cli, js, channel: str, durable: str) -> int:
    return json.loads(ok(cli.run("sub", channel, "--durable", durable, "--count", "1", "--json", *S(js))))["seq"]


def test_rewind_and_forward_a_durable(cli, js):
    pub(cli, js, "order:created", 200)
    ok(cli.run("sub", "order:created", "--all", "--durable", "rebuild", "--count", "100", "--raw", *S(js)))
    info = as_json(cli.run("durable", "info", "order:created", "rebuild", "--json", *S(js)))
    assert (info["ack_floor_seq"], info["pending"], info["consumer"]) == (100, 100, "rebuild")
    back = as_json(cli.run("durable", "reset", "order:created", "rebuild", "--seq", "50", "--yes", "--json", *S(js)))
    assert (back["sequence"], back["how"], back["durable"]["pending"]) == (50, "reset", 151)
    assert next_seq(cli, js, "order:created", "rebuild") == 50
    forward = cli.run("durable", "reset", "order:created", "rebuild", "--seq", "180", "--yes", *S(js))
    assert "reset by the server: next delivery from sequence 180" in forward.stderr.decode() and ok(forward) == ""
    assert next_seq(cli, js, "order:created", "rebuild") == 180
    for flag, expected in ((["--all"], 1), (["--last"], 200), (["--since", "1h"], 1)):
        moved = as_json(cli.run("durable", "reset", "order:created", "rebuild", *flag, "--yes", "--json", *S(js)))
        assert moved["sequence"] == expected
        assert next_seq(cli, js, "order:created", "rebuild") == expected


def test_ls_and_info_with_a_durable_queue_group(cli, js, server_state):
    pub(cli, js, "order:listed", 4)
    ok(cli.run("sub", "order:listed", "--all", "--durable", "billing", "--count", "1", *S(js)))
    ok(cli.run("sub", "order:listed", "--all", "--durable", "workers", "--queue", "pool", "--count", "3", *S(js)))
    listed = as_json(cli.run("durable", "ls", "order:listed", "--json", *S(js)))
    assert [(d["name"], d["queue"], d["consumer"], d["ack_floor_seq"], d["pending"]) for d in listed] == [
        ("billing", "", "billing", 1, 3),
        ("workers", "pool", "workers_pool", 3, 1),
    ]
    everywhere = as_json(cli.run("durable", "ls", "--json", *S(js)))
    assert {("order:listed", "billing"), ("order:listed", "workers")} <= {(d["channel"], d["name"]) for d in everywhere}
    group = as_json(cli.run("durable", "info", "order:listed", "workers", "--queue", "pool", "--json", *S(js)))
    assert (group["consumer"], group["delivered_seq"], group["config"]["filter_subject"]) == (
        "workers_pool",
        3,
        "order:listed",
    )
    table = ok(cli.run("durable", "info", "order:listed", "workers", "-q", "pool", *S(js)))
    assert record(table)["Queue group"] == "pool"
    gone = as_json(cli.run("durable", "rm", "order:listed", "workers", "--queue", "pool", "--yes", "--json", *S(js)))
    assert (gone["what"], gone["name"]) == ("durable", "workers_pool")
    assert [d["name"] for d in as_json(cli.run("durable", "ls", "order:listed", "--json", *S(js)))] == ["billing"]
    # removed without consuming: the channel still holds every message
    assert state(server_state, "order:listed") == (4, 1, 4)


def test_pause_holds_deliveries_until_resume(cli, js, server_state):
    pub(cli, js, "ticket:paused", 3)
    ok(cli.run("sub", "ticket:paused", "--all", "--durable", "slow", "--count", "1", *S(js)))
    paused = as_json(cli.run("durable", "pause", "ticket:paused", "slow", "--until", "1h", "--json", *S(js)))
    assert paused["paused"] is True and paused["pause_until"]
    reader = cli.popen("sub", "ticket:paused", "--durable", "slow", "--count", "2", "--json", *S(js))
    try:
        # the reader's pull request waits at the paused consumer, which delivers nothing
        def waiting():
            info = server_state.consumer("ticket:paused", "slow")
            return info if info.num_waiting >= 1 else None

        held = wait_for(waiting, what="pull request waiting at the paused consumer")
        assert (held.paused, held.delivered.stream_seq, held.num_pending) == (True, 1, 2)
        resumed = as_json(cli.run("durable", "resume", "ticket:paused", "slow", "--json", *S(js)))
        assert resumed["paused"] is False
        lines = read_lines_until(reader, 2)
        assert [json.loads(line)["seq"] for line in lines] == [2, 3]
        assert reader.wait(30) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()


def test_the_stream_name_works_wherever_the_channel_does(cli, js):
    pub(cli, js, "ticket:renamed", 3)
    ok(cli.run("sub", "ticket:renamed", "--all", "--durable", "audit", "--count", "2", *S(js)))
    stream = as_json(cli.run("channel", "info", "ticket:renamed", "--json", *S(js)))["stream"]
    assert stream.startswith("ticket_renamed_")
    by_stream = as_json(cli.run("channel", "info", stream, "--json", *S(js)))
    assert (by_stream["channel"], by_stream["stream"], by_stream["messages"]) == ("ticket:renamed", stream, 3)
    listed = as_json(cli.run("durable", "ls", stream, "--json", *S(js)))
    assert [(d["channel"], d["name"], d["ack_floor_seq"]) for d in listed] == [("ticket:renamed", "audit", 2)]
    got = as_json(cli.run("channel", "get", stream, "--seq", "3", "--json", *S(js)))
    assert (got["channel"], got["subject"], got["seq"], got["data"]) == ("ticket:renamed", "ticket:renamed", 3, "msg 3")
    ok(cli.run("durable", "rm", stream, "audit", "--yes", *S(js)))
    assert as_json(cli.run("durable", "ls", "ticket:renamed", "--json", *S(js))) == []
