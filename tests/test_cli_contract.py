"""Promises found broken in review, each proven through the CLI against real servers."""

from __future__ import annotations

import json
import signal

import pytest

from tests.helpers import ok, read_lines_until


def test_two_readers_of_one_durable_lose_nothing(cli, server):
    """Anyone may attach to a durable: one reader's acks must never cover what another still holds."""
    total = 2000
    body = "".join(f"{n:06d}{'y' * 1000}\n" for n in range(1, total + 1))
    ok(cli.run("pub", "shared", "--lines", "--server", server.url, input=body))
    args = ["--durable", "sh", "--all", "--raw", "--ack-wait", "2s", "--server", server.url]
    blocked = cli.popen("sub", "shared", *args)  # its stdout pipe fills up: it holds messages unwritten
    held = read_lines_until(blocked, 10)
    assert len(held) == 10
    other = cli.run("sub", "shared", *args, "--exit-at-end", timeout=120)
    ok(other)
    blocked.send_signal(signal.SIGKILL)
    rest = blocked.stdout.read()
    blocked.wait(10)
    written = {line[:6] for line in held + rest.splitlines(keepends=True)}
    written |= {line[:6] for line in other.stdout.splitlines()}
    again = cli.run("sub", "shared", *args, "--exit-at-end", timeout=120)
    ok(again)
    written |= {line[:6] for line in again.stdout.splitlines()}
    assert written == {f"{n:06d}".encode() for n in range(1, total + 1)}, "a message was acked but never written"


@pytest.mark.parametrize("names", [("A", "g1", "g2")])
def test_durable_queue_groups_are_told_apart_by_both_names(cli, bus, names):
    durable, first, second = names
    ok(cli.run("pub", "qq", "--lines", *bus.args, input="1\n2\n3\n"))
    ident = [] if bus.jetstream else ["--client-id", "dq"]
    for group in (first, second):
        got = cli.run(
            "sub", "qq", "--all", "--durable", durable, "--queue", group, "--exit-at-end", "--raw", *ident, *bus.args
        )
        ok(got)
        assert got.stdout == b"1\n2\n3\n", f"group {group} is its own durable queue group"


def test_bad_line_after_good_ones_reports_what_was_stored(cli, server, tmp_path):
    source = tmp_path / "dump.jsonl"
    source.write_text('{"data": "a"}\n{"data": "b"}\nnot json\n{"data": "c"}\n')
    record = tmp_path / "record.jsonl"
    result = cli.run(
        "pub", "envy", "--file", str(source), "--envelope", "--record", str(record), "--server", server.url
    )
    assert result.returncode == 2
    assert result.stdout == b"published 2 messages to envy (stream envy, sequences 1-2)\n"
    assert result.stderr.decode() == (
        "natsctl: error: line 3: not a JSON envelope (JSONDecodeError); fix the line or pass --skip-bad-lines\n"
    )
    recorded = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(r["line"], r["seq"]) for r in recorded] == [(1, 1), (2, 2)]
    check = cli.run("verify", "envy", "--against", str(record), "--server", server.url)
    assert check.returncode == 0, check.stdout + check.stderr


def test_envelope_header_with_a_line_break_is_a_bad_line(cli, server, tmp_path):
    source = tmp_path / "dump.jsonl"
    source.write_text('{"data": "x", "headers": {"A": ["v\\r\\nInjected: 1"]}}\n')
    result = cli.run("pub", "hdr", "--file", str(source), "--envelope", "--server", server.url)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "natsctl: error: line 1: invalid value for header 'A': it contains a line break; "
        "fix the line or pass --skip-bad-lines\n"
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["pub", "c", "x", "--no-create"],
            "--no-create exists on JetStream only: NATS Streaming creates a channel on first use",
        ),
        (
            ["pub", "c", "x", "--replicas", "3"],
            "--replicas, --storage, --max-age, --max-msgs, --max-bytes, --discard and --dupe-window shape JetStream streams only; NATS Streaming channel limits are set on its server",
        ),
        (
            ["sub", "c", "--no-create", "-e"],
            "--no-create exists on JetStream only: NATS Streaming creates a channel on first use",
        ),
    ],
)
def test_jetstream_only_flags_are_refused_on_nats_streaming(cli, stan_server, args, message):
    result = cli.run(*args, *stan_server.cli_args())
    assert result.returncode == 2
    assert result.stderr.decode() == f"natsctl: error: {message}\n"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["sub", "x", "--since", "9999-12-31T23:59:59-05:00"],
            "invalid --since '9999-12-31T23:59:59-05:00': out of the range of dates",
        ),
        (["sub", "x", "--ack-wait", "1e20"], "invalid --ack-wait '1e20': at most 100 years"),
        (
            ["sub", "x", "--seq", "99999999999999999999999"],
            "--seq 99999999999999999999999 is past the largest sequence",
        ),
        (["pub", "x", "y", "--max-age", "1e20"], "invalid --max-age '1e20': at most 100 years"),
        (
            ["sub", "x", "--exec", "cat", "--json"],
            "--exec hands each payload to the command; it does not go with --json or --raw",
        ),
        (
            ["pub", "x", "y", "-s", "nats://127.0.0.1:99999"],
            "invalid server URL nats://127.0.0.1:99999: Port out of range 0-65535; use nats://host:port",
        ),
        (
            ["pub", "x", "y", "-s", "https://127.0.0.1:4222"],
            "invalid server URL https://127.0.0.1:4222: the scheme must be one of nats, tls, ws, wss",
        ),
        (
            ["pub", "x", "y", "-s", "nats://u:hunter2@[::1"],
            "invalid server URL <invalid url>: Invalid IPv6 URL; use nats://host:port",
        ),
    ],
)
def test_out_of_range_values_are_usage_errors(cli_in_process, args, message):
    result = cli_in_process.run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.decode() == f"natsctl: error: {message}\n"


def test_bare_command_prints_help_and_succeeds(cli_in_process):
    result = cli_in_process.run()
    assert result.returncode == 0
    assert result.stdout.decode().startswith("Usage: natsctl [OPTIONS] COMMAND [ARGS]...")
    assert result.stderr == b""


def test_debug_logs_connection_steps_without_secrets(cli, tmp_path):
    from tests.servers import NatsServer

    secret = "pa55-w0rd-xyz"
    srv = NatsServer(config=f'authorization {{ user: "alice", password: "{secret}" }}').start()
    try:
        good = cli.run("--debug", "pub", "dbg", "x", "-s", f"nats://alice:{secret}@127.0.0.1:{srv.port}")
        bad = cli.run("--debug", "pub", "dbg", "x", "-s", srv.url, "--user", "alice", "--password", secret + "!")
    finally:
        srv.cleanup()
    ok(good)
    assert b"natsctl: debug: connecting to nats://alice:***@127.0.0.1:" in good.stderr
    assert b"natsctl: debug: connected to " in good.stderr
    assert bad.returncode == 4
    assert b"natsctl: debug: connect failed" in bad.stderr
    for result in (good, bad):
        assert secret.encode() not in result.stdout + result.stderr


def test_subs_shows_the_queue_group_of_a_jetstream_consumer(cli, server):
    ok(cli.run("pub", "qm", "x", "--server", server.url))
    ok(cli.run("sub", "qm", "--all", "-e", "--durable", "d", "--queue", "workers", "--server", server.url))
    ok(cli.run("sub", "qm", "--all", "-e", "--durable", "solo", "--server", server.url))
    report = cli.run("subs", "--json", "--no-core", "--monitor", server.monitor_url)
    ok(report)
    rows = {row["name"]: row for row in json.loads(report.stdout)}
    assert rows["d_workers"]["queue"] == "workers" and rows["d_workers"]["lag"] == 0
    assert rows["solo"]["queue"] in ("", None)
