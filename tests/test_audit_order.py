"""`natsctl audit order`: per-key versions across channels, merged by publish time, on JetStream and on
the NATS Streaming double (one server of each kind for the module; each test its own channels)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from natsctl.core.model import OutgoingMessage
from natsctl.core.settings import Settings
from natsctl.opener import open_backend
from tests.helpers import error_line, failed, ok
from tests.servers import NatsServer
from tests.stan_double.fixtures import start_stan


class Target:
    def __init__(self, kind: str, args: list[str], env: dict[str, str], settings: Settings) -> None:
        self.kind, self.args, self.env, self.settings = kind, args, env, settings


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, Target]]:
    js = NatsServer().start()
    stan = None
    try:
        stan = start_stan("0.23.2", monitoring=True)
        yield {
            "jetstream": Target("jetstream", ["--server", js.url], {}, Settings(servers=[js.url])),
            "stan": Target("stan", stan.cli_args(), {"NATS_MONITOR_URL": stan.monitor_url or ""}, stan.settings()),
        }
    finally:
        js.cleanup()
        if stan is not None:
            stan.cleanup()


@pytest.fixture(params=["jetstream", "stan"])
def target(request, servers) -> Target:
    return servers[request.param]


def publish_in_order(target: Target, events: list[tuple[str, object]]) -> None:
    """Publish (channel, event) pairs one at a time, each confirmed before the next: publish order is time order."""

    async def go() -> None:
        backend = await open_backend(target.settings)
        try:
            for channel, event in events:
                data = event if isinstance(event, bytes) else json.dumps(event).encode()
                summary = await backend.publish(channel, [OutgoingMessage(data=data)], create=True)
                assert summary.confirmed == 1
        finally:
            await backend.close()

    asyncio.run(go())


def audit(cli, target: Target, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        cli.command("audit", "order", *args, *target.args),
        capture_output=True,
        env={**cli.env, **target.env},
        stdin=subprocess.DEVNULL,
        timeout=60,
    )


def test_every_kind_of_fault_is_found_exactly(cli, target):
    tag = uuid.uuid4().hex[:6]
    created, updated = f"ticket:created.{tag}", f"ticket:updated.{tag}"

    def t(key: str, version: object, **more: object) -> dict:
        return {"id": key, "title": "show", "price": 10, "userId": "u1", "version": version, **more}

    # (channel, event); sequences per channel are counted below
    plan = [
        (created, t("A", 0)),  # created #1
        (updated, t("A", 1)),  # updated #1
        (created, t("B", 0)),  # created #2
        (updated, t("A", 2)),  # updated #2
        (updated, t("A", 2)),  # updated #3  repeat
        (updated, t("B", 1)),  # updated #4
        (updated, t("A", 1)),  # updated #5  go-back (highest 2)
        (created, t("C", 1)),  # created #3  wrong start
        (updated, t("B", 3)),  # updated #6  gap (2 missing)
        # key D interleaves across the two channels, in order: nothing to report
        (created, t("D", 0)),  # created #4
        (updated, t("D", 1)),  # updated #7
        (updated, t("D", 2)),  # updated #8
        (updated, t("A", 3)),  # updated #9  in order again after the go-back
        (created, t("E", 0)),  # created #5
        (updated, t("E", 1)),  # updated #10
    ]
    publish_in_order(target, plan)
    expected = [
        ("repeat", "A", 2, 3, updated, 3, updated, 2, 2),
        ("go-back", "A", 1, 3, updated, 5, updated, 2, 2),
        ("wrong-start", "C", 1, 0, created, 3, None, None, None),
        ("gap", "B", 3, 2, updated, 6, updated, 4, 1),
    ]
    for order in ([created, updated], [updated, created]):  # merged by time, not by the order given
        result = audit(cli, target, *order, "--key", "id", "--version", "version", "--json")
        assert result.returncode == 12, result.stderr
        report = json.loads(result.stdout)
        found = [
            (
                f["kind"],
                f["key"],
                f["version"],
                f["expected"],
                f["channel"],
                f["seq"],
                f["previous_channel"],
                f["previous_seq"],
                f["previous_version"],
            )
            for f in report["findings"]
        ]
        assert found == expected
        assert report["counts"] == {"repeat": 1, "go-back": 1, "gap": 1, "wrong-start": 1}
        assert (report["events"], report["keys"]) == (15, 5)
        assert error_line(result.stderr.decode(), stdout=None) == (
            f"natsctl: error: {', '.join(order)}: 1 repeat, 1 go-back, 1 gap, 1 wrong-start in 15 events of 5 keys"
        )
    # the table: one row per finding, with channel and sequence
    table = audit(cli, target, created, updated, "--key", "id", "--version", "version")
    assert table.returncode == 12
    lines = table.stdout.decode().splitlines()
    assert lines[1] == "FOUND: repeat 1, go-back 1, gap 1, wrong-start 1"
    assert lines[2].split() == ["KIND", "KEY", "VERSION", "EXPECTED", "CHANNEL", "SEQ", "PREVIOUS"]
    assert [line.split()[:6] for line in lines[3:]] == [[str(v) for v in row[:6]] for row in expected]
    # --start 1: the keys that started at 0 are now the wrong start (and C is right)
    started = json.loads(
        audit(cli, target, created, updated, "--key", "id", "--version", "version", "--start", "1", "--json").stdout
    )
    assert sorted(f["key"] for f in started["findings"] if f["kind"] == "wrong-start") == ["A", "B", "D", "E"]


def test_a_channel_in_order_exits_0_and_key_and_version_come_from_the_catalog(cli, servers, tmp_path):
    js = servers["jetstream"]
    name = f"ticket:ok.{uuid.uuid4().hex[:6]}"
    publish_in_order(js, [(name, {"ticket": {"id": k}, "v": v}) for v in range(3) for k in ("x", "y")])
    catalog = tmp_path / "c.yaml"
    catalog.write_text("channels:\n  'ticket:ok.*':\n    schema: {type: object}\n    key: ticket.id\n    version: v\n")
    result = audit(cli, js, name, "--catalog", str(catalog))
    assert ok(result).splitlines() == [
        f"channels {name}: 6 events, 2 keys (key ticket.id, version v, start 0)",
        "OK: every key in order",
    ]
    without = audit(cli, js, name)
    assert failed(without, 2) == f"natsctl: error: give --key: the catalog does not name one key field for '{name}'"


@pytest.mark.parametrize(
    "event, problem",
    [
        (
            {"ticketId": "a", "version": 0},
            "the key path 'id' is missing from the event; pass --key with the field that holds it",
        ),
        ({"id": "a", "version": "3"}, "the version at 'version' is a string, not an integer"),
        ({"id": "a", "version": 1.5}, "the version at 'version' is 1.5, not an integer"),
        (b"not json", "the event is not JSON, so it has no key or version"),
    ],
    ids=["missing-key", "string-version", "fraction-version", "not-json"],
)
def test_an_event_the_audit_cannot_read_is_one_line_exit_14(cli, servers, event, problem):
    js = servers["jetstream"]
    name = f"bad.{uuid.uuid4().hex[:6]}"
    publish_in_order(js, [(name, {"id": "a", "version": 0}), (name, event)])
    result = audit(cli, js, name, "--key", "id", "--version", "version")
    assert failed(result, 14) == f"natsctl: error: {name} sequence 2: {problem}"


def test_state_is_one_entry_per_key_and_findings_past_the_limit_are_counted():
    from natsctl.contracts.order import OrderAudit

    audit = OrderAudit(["a", "b"], "id", "version", start=0, max_findings=10)
    for n in range(50_000):  # 500 keys, 100 versions each, every 7th event of a key repeated
        key, version = n % 500, n // 500
        audit.feed(n % 2, n + 1, None, b'{"id": %d, "version": %d}' % (key, version))
        if version % 7 == 3:
            audit.feed(0, n + 1, None, b'{"id": %d, "version": %d}' % (key, version))
    report = audit.report
    assert len(audit.last) == 500 and report.keys == 500
    assert report.events == 50_000 + 500 * len(range(3, 100, 7))
    assert report.counts == {"repeat": 500 * len(range(3, 100, 7)), "go-back": 0, "gap": 0, "wrong-start": 0}
    assert len(report.findings) == 10 and report.truncated == report.counts["repeat"] - 10
    assert {tuple(v[:1]) for v in audit.last.values()} == {(99,)}
