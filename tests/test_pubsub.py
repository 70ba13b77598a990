"""pub, sub and replay through the real CLI, on JetStream and on NATS Streaming (the `bus` fixture)."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.helpers import ok, read_lines_until
from tests.reliability_helpers import Collector


def envelopes(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def datas(stdout: bytes) -> list[str]:
    return [e["data"] for e in envelopes(stdout)]


def test_pub_one_message_reports_its_sequence(cli, bus):
    result = cli.run("pub", "orders", '{"id": 1}', *bus.args)
    ok(result)
    if bus.jetstream:
        assert result.stdout == b"published 1 message to orders (stream orders, sequence 1)\n"
    else:
        assert result.stdout == b"published 1 message to orders (confirmed)\n"
    got = cli.run("sub", "orders", "--all", "--exit-at-end", "--json", *bus.args)
    ok(got)
    [env] = envelopes(got.stdout)
    assert env["data"] == '{"id": 1}' and env["seq"] == 1 and env["channel"] == "orders"
    assert env["subject"] == "orders" and env["encoding"] == "utf-8" and env["redelivered"] is False


def test_pub_count_expands_templates(cli, bus):
    ok(cli.run("pub", "ticket:created", "--count", "5", "n={{Count}} id={{ID}} t={{.TimeStamp}}", *bus.args))
    got = cli.run("replay", "ticket:created", "--json", *bus.args)
    ok(got)
    items = datas(got.stdout)
    assert [d.split()[0] for d in items] == [f"n={n}" for n in range(1, 6)]
    ids = {d.split()[1] for d in items}
    assert len(ids) == 5 and all(len(i) == len("id=") + 32 for i in ids)
    stamp = items[0].split()[2][2:]
    assert abs((datetime.fromisoformat(stamp.replace("Z", "+00:00")) - datetime.now(UTC)).total_seconds()) < 60


def test_pub_lines_from_stdin_and_file(cli, bus, tmp_path):
    lines = "\n".join(json.dumps({"n": n}) for n in range(1, 4)) + "\n\n"
    result = cli.run("pub", "events", "--lines", *bus.args, input=lines)
    ok(result)
    assert result.stdout.startswith(b"published 3 messages to events (")
    path = tmp_path / "more.jsonl"
    path.write_text('{"n": 4}\r\n{"n": 5}\n')
    ok(cli.run("pub", "events", "--file", str(path), *bus.args))
    got = cli.run("replay", "events", "--raw", *bus.args)
    ok(got)
    assert got.stdout.decode().splitlines() == [json.dumps({"n": n}) for n in range(1, 4)] + ['{"n": 4}', '{"n": 5}']


def test_pub_whole_stdin_is_one_message(cli, bus):
    ok(cli.run("pub", "blob", *bus.args, input=b"line one\nline two\n"))
    got = cli.run("replay", "blob", "--json", *bus.args)
    assert datas(got.stdout) == ["line one\nline two\n"]


def test_envelope_round_trips_binary_data(cli, bus, tmp_path):
    payload = bytes(range(256)) + b"\xff\xfe invalid utf-8 \x00"
    ok(cli.run("pub", "bin", *bus.args, input=payload))
    ok(cli.run("pub", "bin", "plain text é", *bus.args))
    dump = cli.run("replay", "bin", "--json", *bus.args)
    ok(dump)
    first, second = envelopes(dump.stdout)
    assert first["encoding"] == "base64" and base64.b64decode(first["data"]) == payload
    assert second == {**second, "encoding": "utf-8", "data": "plain text é"}
    path = tmp_path / "dump.jsonl"
    path.write_bytes(dump.stdout)
    ok(cli.run("pub", "bin-copy", "--file", str(path), "--envelope", *bus.args))
    copy = cli.run("replay", "bin-copy", "--raw", *bus.args)
    assert copy.stdout == payload + b"\n" + "plain text é".encode() + b"\n"


def test_headers_on_jetstream_and_refused_on_stan(cli, bus):
    result = cli.run("pub", "h", "body", "-H", "Trace-Id:abc", "-H", "K: v1", *bus.args)
    if not bus.jetstream:
        assert result.returncode == 2
        assert (
            result.stderr
            == b"natsctl: error: headers (-H, --msg-id) exist on JetStream only; NATS Streaming messages have none\n"
        )
        return
    ok(result)
    [env] = envelopes(cli.run("replay", "h", "--json", *bus.args).stdout)
    assert env["headers"] == {"Trace-Id": ["abc"], "K": ["v1"]}
    readable = cli.run("replay", "h", *bus.args).stdout.decode()
    assert "  Trace-Id: abc\n" in readable and readable.startswith("[#1] ")


def _is_inbox(subject: str) -> bool:
    parts = subject.split(".")
    return len(parts) == 2 and parts[0] == "_INBOX"


def subscription_marks(bus) -> set[str]:
    """What the server shows of the subscriptions natsctl has open, one unique inbox each.

    JetStream: a `sub` subscribes to its own inbox (and pulls on it) once its consumer exists, so the
    consumer's start position is already fixed. NATS Streaming: the double subscribes to a fresh ack
    inbox for each subscription it has registered. Both show in the nats-server's /connz?subs=1.
    """
    body = httpx.get(bus.nats.monitor_url + "/connz", params={"subs": "1"}, timeout=5).json()
    marks = set()
    for conn in body.get("connections") or []:
        name = conn.get("name") or ""
        if (name == "natsctl") if bus.jetstream else name.startswith("_NSS-"):
            marks.update(s for s in conn.get("subscriptions_list") or [] if _is_inbox(s))
    return marks


def wait_for_subscriptions(
    bus, before: set[str], count: int, procs, timeout: float = 60, read_stderr: bool = True
) -> None:
    """Until ``count`` subscriptions not in ``before`` are registered on the server (readiness, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                err = proc.stderr.read() if read_stderr else b"(stderr collected by the test)"
                raise AssertionError(f"natsctl sub exited ({proc.returncode}) before subscribing: {err!r}")
        try:
            if len(subscription_marks(bus) - before) >= count:
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"{count} natsctl subscription(s) not registered on the server within {timeout:.0f}s")


def publish_numbers(cli, bus, channel: str, numbers) -> None:
    ok(cli.run("pub", channel, "--lines", *bus.args, input="".join(f"{n}\n" for n in numbers)))


def test_start_positions(cli, bus):
    publish_numbers(cli, bus, "pos", range(1, 6))

    def read(*flags):
        result = cli.run("sub", "pos", "--exit-at-end", "--json", *flags, *bus.args)
        ok(result)
        return [int(d) for d in datas(result.stdout)]

    assert read("--all") == [1, 2, 3, 4, 5]
    assert read("--last") == [5]
    assert read("--seq", "3") == [3, 4, 5]
    time.sleep(1.1)
    middle = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    time.sleep(0.2)
    publish_numbers(cli, bus, "pos", range(6, 9))
    assert read("--since", middle) == [6, 7, 8]
    assert read("--since", "1h") == list(range(1, 9))
    assert read("--all", "--count", "2") == [1, 2]


def test_new_only_sees_messages_published_after_it_started(cli, bus):
    publish_numbers(cli, bus, "live", [1, 2])
    before = subscription_marks(bus)
    proc = cli.popen("sub", "live", "--json", "--count", "2", *bus.args)
    wait_for_subscriptions(bus, before, 1, [proc])
    publish_numbers(cli, bus, "live", [3, 4])
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert datas(out) == ["3", "4"]


def test_replay_bounds(cli, bus):
    publish_numbers(cli, bus, "rp", range(1, 5))
    time.sleep(0.05)  # --until cuts at a time: keep message 5 clear of message 4's microsecond
    publish_numbers(cli, bus, "rp", range(5, 11))
    got = cli.run("replay", "rp", "--seq", "3", "--to-seq", "6", "--raw", *bus.args)
    ok(got)
    assert got.stdout == b"3\n4\n5\n6\n"
    stamps = [e["time"] for e in envelopes(cli.run("replay", "rp", "--json", *bus.args).stdout)]
    got = cli.run("replay", "rp", "--until", stamps[3], "--raw", *bus.args)
    assert got.stdout == b"1\n2\n3\n4\n"
    assert cli.run("replay", "rp", "--count", "3", "--raw", *bus.args).stdout == b"1\n2\n3\n"


def test_subscribing_creates_the_channel_unless_no_create(cli, bus):
    before = subscription_marks(bus)
    proc = cli.popen("sub", "early", "--json", "--count", "1", *bus.args)
    wait_for_subscriptions(bus, before, 1, [proc])
    ok(cli.run("pub", "early", "first", *bus.args))
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert datas(out) == ["first"]
    if bus.jetstream:
        result = cli.run("sub", "nothing-here", "--no-create", "--all", *bus.args)
        assert result.returncode == 7
        assert result.stderr.startswith(b"natsctl: error: no stream holds channel 'nothing-here'")


def big_messages(count: int, size: int = 2048) -> str:
    return "".join(f"{n:06d}{'x' * size}\n" for n in range(1, count + 1))


@pytest.mark.parametrize("queue", [False, True], ids=["durable", "durable-queue"])
def test_durable_resumes_after_sigkill(cli, bus, queue):
    total = 300
    ok(cli.run("pub", "work", "--lines", *bus.args, input=big_messages(total)))
    ident = ["--client-id", "worker-1"] if not bus.jetstream else []
    group = ["--queue", "workers"] if queue else []
    first = cli.popen(
        "sub",
        "work",
        "--all",
        "--durable",
        "svc",
        *group,
        "--raw",
        "--ack-wait",
        "2s",
        "--max-in-flight",
        "20",
        *ident,
        *bus.args,
    )
    seen = read_lines_until(first, 40)
    assert len(seen) == 40
    first.send_signal(signal.SIGKILL)  # the pipe is full: it is stuck mid-stream
    rest = first.stdout.read()  # includes what readline() had buffered; EOF once the process is gone
    first.wait(10)
    written_first = [line[:6].decode() for line in seen + rest.splitlines(keepends=True)]
    assert 40 <= len(written_first) < total
    second = cli.run(
        "sub",
        "work",
        "--all",
        "--durable",
        "svc",
        *group,
        "--exit-at-end",
        "--raw",
        "--ack-wait",
        "2s",
        *ident,
        *bus.args,
        timeout=90,
    )
    ok(second)
    written_second = [line[:6].decode() for line in second.stdout.splitlines()]
    everything = {f"{n:06d}" for n in range(1, total + 1)}
    assert set(written_first) | set(written_second) == everything  # nothing lost
    again = set(written_first) & set(written_second)
    assert len(again) <= 20, f"only unacked messages may come again, got {len(again)}"
    assert not again or min(again) > written_first[0]  # never the ones acked long before the kill


@pytest.mark.parametrize("durable", [False, True], ids=["queue", "durable-queue"])
def test_queue_group_members_share_disjoint_and_complete(cli, bus, durable):
    total = 200
    extra = ["--durable", "grp"] if durable else []
    before = subscription_marks(bus)
    members = [
        cli.popen("sub", "jobs", "--queue", "grp", *extra, "--raw", "--max-in-flight", "8", *bus.args) for _ in range(2)
    ]
    readers = [(Collector(m.stdout), Collector(m.stderr)) for m in members]
    for reader in readers:
        for collector in reader:
            collector.start()
    try:
        wait_for_subscriptions(
            bus, before, 2, members, read_stderr=False
        )  # both members in the group before anything is published
        ok(cli.run("pub", "jobs", "--lines", *bus.args, input="".join(f"{n}\n" for n in range(1, total + 1))))
        deadline = time.monotonic() + 60  # until every message was written by one member or the other
        while time.monotonic() < deadline and any(m.poll() is None for m in members):
            if len({line for out, _ in readers for line in list(out.lines)}) >= total:
                break
            time.sleep(0.1)
        for member in members:
            member.send_signal(signal.SIGINT)
        for member in members:
            member.wait(30)
    finally:
        for member in members:
            if member.poll() is None:
                member.kill()
                member.wait(10)
    outputs = []
    for member, (out, err) in zip(members, readers, strict=True):
        out.join(10)
        err.join(10)
        assert member.returncode == 130, b"".join(err.lines)
        outputs.append([int(x) for x in b"".join(out.lines).split()])
    a, b = (set(o) for o in outputs)
    assert len(outputs[0]) == len(a) and len(outputs[1]) == len(b), "a member saw a message twice"
    assert not a & b, "a message went to both members"
    assert a | b == set(range(1, total + 1)), f"{total - len(a | b)} messages not written within 60 s"
    assert a and b, "both members took a share"


def test_exec_failure_is_redelivered(cli, bus, tmp_path):
    publish_numbers(cli, bus, "tasks", [1, 2, 3])
    log = tmp_path / "log"
    script = tmp_path / "handle.sh"
    script.write_text(
        "#!/bin/sh\n"
        f'body=$(cat); echo "$NATSCTL_SEQ $body $NATSCTL_REDELIVERED" >> {log}\n'
        f"[ -e {tmp_path}/seen-$NATSCTL_SEQ ] && exit 0\n"
        f"touch {tmp_path}/seen-$NATSCTL_SEQ; exit 3\n"
    )
    script.chmod(0o755)
    result = cli.run(
        "sub",
        "tasks",
        "--all",
        "--durable",
        "handler",
        "--exec",
        str(script),
        "--count",
        "3",
        "--ack-wait",
        "1s",
        *(["--client-id", "exec-1"] if not bus.jetstream else []),
        *bus.args,
        timeout=60,
    )
    ok(result)
    attempts = log.read_text().splitlines()
    assert sorted(attempts) == sorted([f"{n} {n} 0" for n in (1, 2, 3)] + [f"{n} {n} 1" for n in (1, 2, 3)]), attempts
    assert result.stderr.count(b"--exec exited 3 for sequence") == 3
    after = cli.run(
        "sub",
        "tasks",
        "--all",
        "--durable",
        "handler",
        "--exit-at-end",
        "--raw",
        *(["--client-id", "exec-1"] if not bus.jetstream else []),
        *bus.args,
    )
    ok(after)
    assert after.stdout == b"", "everything was acked once the command succeeded"


def test_ctrl_c_exits_130_and_sigterm_143(cli, bus):
    for sig, code in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        before = subscription_marks(bus)
        proc = cli.popen("sub", "quiet", *bus.args)
        wait_for_subscriptions(bus, before, 1, [proc])
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=15)
        assert proc.returncode == code, err
        assert b"Traceback" not in err


BAD_CHANNELS = ["foo..bar", "*", ">", "foo.>", "", " ", "a b", ".lead", "trail."]


@pytest.mark.parametrize("channel", BAD_CHANNELS)
def test_bad_channel_names(cli_in_process, channel):
    # A wildcard is a subject family for sub and replay (tests/test_channel_names.py), never a channel to publish to.
    readers = [] if channel in ("*", ">", "foo.>") else [["sub", channel], ["replay", channel]]
    for command in (["pub", channel, "x"], *readers):
        result = cli_in_process.run(*command, "--server", "nats://127.0.0.1:1")
        assert result.returncode == 2, result.stderr
        lines = result.stderr.decode().splitlines()
        assert len(lines) == 1 and lines[0].startswith("natsctl: error: ")
        assert "channel name" in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--all", "--last"], "natsctl: error: choose one start position, not --all and --last"),
        (["--seq", "0"], "natsctl: error: --seq must be 1 or more, not 0"),
        (["--seq", "-4"], "natsctl: error: --seq must be 1 or more, not -4"),
        (
            ["--since", "yesterday"],
            "natsctl: error: invalid --since 'yesterday'; use a duration ago (90s, 1h) or an RFC 3339 time (2026-11-28T10:00:00Z)",
        ),
        (["--ack-wait", "500ms"], "natsctl: error: --ack-wait must be at least 1s, not 500ms"),
        (
            ["--ack-wait", "soon"],
            "natsctl: error: invalid --ack-wait 'soon'; use a duration such as 30s, 5m, 1h30m or 250ms",
        ),
        (["--json", "--raw"], "natsctl: error: choose one of --json and --raw"),
        (
            ["--durable", "a.b"],
            "natsctl: error: invalid durable name 'a.b': it may not contain whitespace, '.', '*', '>', '/' or '\\'",
        ),
        (["--unsubscribe"], "natsctl: error: --unsubscribe deletes a durable: it needs --durable"),
        (["--bogus"], "natsctl: error: No such option: --bogus (Possible options: --user) (see 'natsctl --help')"),
    ],
)
def test_bad_sub_flags(cli_in_process, args, message):
    result = cli_in_process.run("sub", "orders", *args, "--server", "nats://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.decode() == message + "\n"


def test_unreachable_server_fails_fast_with_masked_password(cli):
    # a hang is caught by the subprocess timeout, not by timing the run
    result = cli.run("pub", "orders", "x", "--server", "nats://alice:s3cret@127.0.0.1:1", "--timeout", "2", timeout=30)
    assert result.returncode == 3
    assert result.stderr == (
        b"natsctl: error: cannot connect to nats://alice:***@127.0.0.1:1: connection refused; "
        b"is nats-server running there? check --server / NATS_URL\n"
    )


def test_server_without_jetstream(cli):
    from tests.servers import NatsServer

    plain = NatsServer(jetstream=False).start()
    try:
        result = cli.run("pub", "orders", "x", "--server", plain.url)
    finally:
        plain.cleanup()
    assert result.returncode == 8
    assert result.stderr.decode().startswith(f"natsctl: error: JetStream is not enabled on the server at {plain.url}")


def test_payload_over_max_payload(cli, bus, tmp_path):
    big = b"x" * (1024 * 1024 + 1)  # nats-server's default max_payload is 1 MiB
    result = cli.run("pub", "big", *bus.args, input=big)
    assert result.returncode == 10, result.stderr
    expected = (
        "natsctl: error: 1 of 1 messages not confirmed; first: stdin: payload of 1048577 bytes is over "
        "the server's max_payload of 1048576 bytes"
    )
    assert result.stderr.decode().startswith(expected)
    assert len(result.stderr.decode().splitlines()) == 1


def test_unreadable_file(cli_in_process, tmp_path):
    missing = tmp_path / "missing.jsonl"
    result = cli_in_process.run("pub", "orders", "--file", str(missing), "--server", "nats://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.decode() == f"natsctl: error: cannot read --file {missing}: no such file\n"


def test_bad_envelope_line_named(cli, bus, tmp_path):
    path = tmp_path / "dump.jsonl"
    path.write_text('{"data": "ok"}\nnot json\n{"data": "fine"}\n')
    result = cli.run("pub", "env", "--file", str(path), "--envelope", *bus.args)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "natsctl: error: line 2: not a JSON envelope (JSONDecodeError); fix the line or pass --skip-bad-lines\n"
    )
    result = cli.run("pub", "env", "--file", str(path), "--envelope", "--skip-bad-lines", *bus.args)
    ok(result)
    assert b"line 2: not a JSON envelope" in result.stderr
    assert datas(cli.run("replay", "env", "--json", *bus.args).stdout)[-2:] == ["ok", "fine"]


def test_connection_name_shows_in_connz(cli, server):
    proc = cli.popen("sub", "named", "--server", server.url)
    try:
        deadline = time.monotonic() + 10
        names = []
        while time.monotonic() < deadline and "natsctl" not in names:
            conns = httpx.get(server.monitor_url + "/connz").json()["connections"] or []
            names = [c.get("name") for c in conns]
            time.sleep(0.2)
        assert "natsctl" in names
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=10)


def test_output_is_plain_when_not_a_terminal(cli, server):
    ok(cli.run("pub", "plain", '{"a": 1}', "--server", server.url))
    got = cli.run("replay", "plain", "--server", server.url)
    text = got.stdout.decode()
    assert "\x1b[" not in text
    assert text.splitlines()[0].startswith("[#1] ") and text.splitlines()[0].endswith(" plain")
    assert text.splitlines()[1] == '{"a": 1}'


def test_pub_json_summary(cli, server):
    result = cli.run("pub", "sum", "--count", "3", "x", "--json", "--server", server.url)
    ok(result)
    assert json.loads(result.stdout) == {
        "channel": "sum",
        "stream": "sum",
        "published": 3,
        "confirmed": 3,
        "first_sequence": 1,
        "last_sequence": 3,
        "duplicates": 0,
        "created": True,
        "failed": [],
    }
    assert os.environ.get("NATS_URL") is None


def test_generated_client_id_is_printed_for_durables(cli, stan_server):
    publish = cli.run("pub", "ids", "x", *stan_server.cli_args())
    ok(publish)
    result = cli.run("sub", "ids", "--all", "--durable", "keep", "--exit-at-end", "--raw", *stan_server.cli_args())
    ok(result)
    assert result.stdout == b"x\n"
    line = result.stderr.decode().strip()
    assert line.startswith("natsctl: client id natsctl-") and "resume durable 'keep' with --client-id natsctl-" in line
    client_id = line.split("--client-id ")[1]
    resumed = cli.run(
        "sub", "ids", "--durable", "keep", "--exit-at-end", "--raw", "--client-id", client_id, *stan_server.cli_args()
    )
    ok(resumed)
    assert resumed.stdout == b"" and resumed.stderr == b""
