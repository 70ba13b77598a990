"""Issue 15: lag gates on `subs` and `channel` (--fail-on-lag, --fail-on-unacked, --fail-on-stalled:
exit 13 naming every subscription that failed) and the time-to-drain column of `subs --watch`, each
both ways, on a real nats-server and on the NATS Streaming double."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.helpers import as_json, failed, ok, table_rows
from tests.servers import NatsServer
from tests.stan_double.fixtures import start_stan


class Target:
    def __init__(self, kind: str, args: list[str], monitor: list[str]) -> None:
        self.kind, self.args, self.monitor = kind, args, monitor

    def ident(self, name: str) -> list[str]:
        return ["--client-id", name] if self.kind == "stan" else []


@pytest.fixture(scope="module", params=["jetstream", "stan"])
def target(request) -> Iterator[Target]:
    if request.param == "jetstream":
        server = NatsServer(name="gates").start()
        try:
            yield Target("jetstream", ["--server", server.url], ["-m", server.monitor_url])
        finally:
            server.cleanup()
    else:
        stan = start_stan("0.23.2", monitoring=True)
        try:
            yield Target("stan", stan.cli_args(), ["-m", stan.monitor_url or "", "--cluster-id", stan.cluster_id])
        finally:
            stan.cleanup()


def wait_for(check, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.25)  # each look is a natsctl process
    return value


def make_stuck(cli, target: Target, base) -> None:
    """Durable g on gatestuck: m1 acked, m2 delivered and never acked (its natsctl killed), m3 m4 waiting."""
    ok(cli.run("pub", "gatestuck", "--lines", *target.args, input="m1\nm2\nm3\nm4\n"))
    log = base / "log"
    script = base / "h.sh"
    script.write_text(f'#!/bin/sh\nread p\necho "$p" >> {log}\n[ "$p" != m2 ] || sleep 60\n')
    script.chmod(0o755)
    proc = cli.popen(
        "sub", "gatestuck", "--all", "--durable", "g", "--exec", str(script), *target.ident("gate-g"), *target.args,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: log.exists() and "m2" in log.read_text().split(), "m2 in the handler")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # natsctl and its handler, at once
        proc.wait(10)
    # what the monitoring port shows settles once the ack of m1 is in
    wait_for(lambda: _sub(cli, target, "gatestuck").get("unacked") == 1, "m2 unacked")


def _sub(cli, target: Target, channel: str) -> dict:
    subs = as_json(cli.run("subs", "--channel", channel, "--json", *target.monitor))
    found = [s for s in subs if s["kind"] != "core"]
    assert len(found) <= 1, found
    return found[0] if found else {}


def test_gates_pass_and_fail_naming_the_subscription(cli, target, tmp_path):
    make_stuck(cli, target, tmp_path)
    sub = _sub(cli, target, "gatestuck")
    assert (sub["lag"], sub["unacked"]) == (2, 1)
    name = "gatestuck/g"
    subs = ["subs", "--channel", "gatestuck", *target.monitor]
    runs = together(
        cli,
        [*subs, "--fail-on-lag", "2", "--fail-on-unacked", "1"],
        [*subs, "--fail-on-lag", "1"],
        [*subs, "--fail-on-unacked", "0", "--fail-on-lag", "0"],
        [*subs, "--fail-on-stalled", "0.5s", "-o", "json"],
        ["channel", "gatestuck", "--fail-on-lag", "2", *target.monitor],  # the per-channel view has the same gates
        ["channel", "gatestuck", "--fail-on-unacked", "0", *target.monitor],
    )
    ok(runs[0])
    ok(runs[4])
    assert [failed_after_output(r) for r in (runs[1], runs[2], runs[3], runs[5])] == [
        f"natsctl: error: 1 of 1 subscriptions failed the gates: {name} (lag 2 > 1)",
        f"natsctl: error: 1 of 1 subscriptions failed the gates: {name} (lag 2 > 0, unacked 1 > 0)",
        f"natsctl: error: 1 of 1 subscriptions failed the gates: {name} (stalled: 3 pending, no ack for 0.5s)",
        f"natsctl: error: 1 of 1 subscriptions failed the gates: {name} (unacked 1 > 0)",
    ]


def together(cli, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Run independent read-only commands at the same time (each its own process, as a user runs it)."""
    procs = [cli.popen(*command) for command in commands]
    results = []
    for command, proc in zip(commands, procs, strict=True):
        out, err = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(command, proc.returncode, out, err))
    return results


def failed_after_output(result) -> str:
    """Exit 13, the report on stdout, one error line on stderr."""
    assert result.stdout.strip(), "the table or JSON comes first"
    return failed_with_output(result, 13)


def failed_with_output(result, code: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, f"exit {result.returncode}: {err}"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_stalled_gate_passes_while_acks_progress_and_watch_shows_time_to_drain(cli, target, tmp_path):
    ok(cli.run("pub", "gatebusy", "--count", "40", "b{{Count}}", *target.args))
    proc = cli.popen(
        "sub", "gatebusy", "--all", "--durable", "p", "--exec", "sleep 0.1", *target.ident("gate-p"), *target.args
    )
    try:
        wait_for(lambda: (_sub(cli, target, "gatebusy").get("delivered_seq") or 0) >= 2, "p at work")
        ok(cli.run("subs", "--channel", "gatebusy", "--fail-on-stalled", "1s", *target.monitor))
        watch = cli.popen("subs", "--channel", "gatebusy", "--no-core", "--watch", "0.5", *target.monitor)
        try:
            tables = wait_for(lambda: _tables(watch, 2), "two refreshes")
        finally:
            watch.send_signal(signal.SIGINT)
            watch.communicate(timeout=10)
        assert watch.returncode == 0
        (row,) = table_rows(tables[1])
        assert re.fullmatch(r"(<1s|\d+s|\d+m\d\ds|drained)", row["TIME TO DRAIN"]), row
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=20)


_seen: dict[int, bytes] = {}


def _tables(proc, count: int) -> list[str] | None:
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    seen = _seen.setdefault(proc.pid, b"")
    try:
        seen = _seen[proc.pid] = seen + os.read(fd, 65536)
    except BlockingIOError:
        pass
    text = seen.decode()
    parts = [p for p in text.split("\n\n") if "TIME TO DRAIN" in p and p.count("\n") >= 1]
    return parts if len(parts) >= count and text.endswith("\n") else None


def test_gate_flags_bad_input(cli_in_process):
    line = failed(cli_in_process.run("subs", "--fail-on-lag", "-1"), 2)
    assert line == "natsctl: error: --fail-on-lag must be 0 or more, not -1"
    line = failed(cli_in_process.run("subs", "--fail-on-stalled", "0s"), 2)
    assert line == "natsctl: error: --fail-on-stalled must be more than 0s, not 0s"
    line = failed(cli_in_process.run("subs", "--fail-on-lag", "3", "--watch", "1"), 2)
    assert line == "natsctl: error: --fail-on-* gates read once and exit; they do not go with --watch"
