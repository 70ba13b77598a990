"""Issue 10: a resumed NATS Streaming durable with --exit-at-end, and --exec handlers that are slower
than the ack wait divided by what natsctl holds."""

from __future__ import annotations

import pytest


def ok(result) -> None:
    assert result.returncode == 0, result.stderr.decode()


def ident(bus, name: str) -> list[str]:
    return [] if bus.jetstream else ["--client-id", name]


@pytest.mark.parametrize("queue", [False, True], ids=["durable", "durable-queue"])
def test_resumed_durable_with_exit_at_end_reads_what_came_since(cli, bus, queue):
    group = ["--queue", "grp"] if queue else []
    flags = ["--durable", "d9", *group, "--exit-at-end", "--raw", *ident(bus, "m3"), *bus.args]
    ok(cli.run("sub", "resume.me", *flags))  # creates the durable: nothing to read yet
    ok(cli.run("pub", "resume.me", "--count", "5", "m{{Count}}", *bus.args))
    resumed = cli.run("sub", "resume.me", *flags)
    ok(resumed)
    assert resumed.stdout.decode().split() == [f"m{n}" for n in range(1, 6)]
    again = cli.run("sub", "resume.me", *flags)
    ok(again)
    assert again.stdout == b""  # they were acked


def handler(tmp_path, seconds: float):
    runs = tmp_path / "runs"
    script = tmp_path / "handle.sh"
    script.write_text(f"#!/bin/sh\necho $NATSCTL_SEQ >> {runs}\nsleep {seconds}\n")
    script.chmod(0o755)
    return script, runs


def test_exec_slower_than_the_ack_wait_over_what_is_held_runs_once_per_message(cli, bus, tmp_path):
    """150 messages, a 20 ms handler, --ack-wait 1s: holding them all would redeliver most of them."""
    total = 150
    ok(cli.run("pub", "slow.work", "--count", str(total), "w{{Count}}", *bus.args))
    script, runs = handler(tmp_path, 0.02)
    result = cli.run(
        "sub",
        "slow.work",
        "--all",
        "--durable",
        "h",
        "--exec",
        str(script),
        "--ack-wait",
        "1s",
        "--exit-at-end",
        *ident(bus, "exec-slow"),
        *bus.args,
        timeout=120,
    )
    ok(result)
    assert sorted(int(n) for n in runs.read_text().split()) == list(range(1, total + 1))  # each once


def test_exec_handler_longer_than_the_ack_wait_is_kept_alive_on_jetstream(cli, server, tmp_path):
    ok(cli.run("pub", "long.work", "--count", "2", "w{{Count}}", "--server", server.url))
    script, runs = handler(tmp_path, 2.5)
    result = cli.run(
        "sub",
        "long.work",
        "--all",
        "--durable",
        "h",
        "--exec",
        str(script),
        "--ack-wait",
        "1s",
        "--count",
        "2",
        "--server",
        server.url,
        timeout=60,
    )
    ok(result)
    assert runs.read_text().split() == ["1", "2"]  # in-progress acks: never delivered again
