"""Issue 7, test 2 (+5): a single file-store server SIGKILLed and restarted during a bulk publish.

Every message natsctl confirmed must be in the channel afterwards (checked with `verify`), natsctl
must exit 10 naming the first unconfirmed line, and rerunning the same publish with message ids must
complete the channel without a single duplicate.
"""

from __future__ import annotations

import re
import subprocess
import time

import pytest

from tests.reliability_helpers import Feeder, figure, finish, record_lines, stored_messages, wait_for
from tests.servers import NatsServer

TOTAL = 12_000
CHANNEL = "bulk.orders"


@pytest.fixture
def file_server():
    srv = NatsServer(name="bulk").start()
    try:
        yield srv
    finally:
        srv.cleanup()


def stream_name(cli, server) -> str:
    out = cli.run("channels", "--json", "-m", server.monitor_url, timeout=30)
    import json

    names = [c["name"] for c in json.loads(out.stdout) if CHANNEL in c.get("subjects", [])]
    assert names, out
    return names[0]


@pytest.mark.slow
def test_server_killed_during_bulk_publish_loses_nothing_confirmed(cli, file_server, tmp_path):
    lines = [f"order-{n:06d}\n".encode() for n in range(1, TOTAL + 1)]
    first_record, second_record = tmp_path / "first.rec", tmp_path / "second.rec"
    common = ["--server", file_server.url, "--timeout", "3", "--msg-id", "order-{{Count}}", "--dupe-window", "10m"]
    assert cli.run("pub", CHANNEL, "seed", "--dupe-window", "10m", "--server", file_server.url).returncode == 0
    stream = stream_name(cli, file_server)

    proc = cli.popen("pub", CHANNEL, "--lines", "--record", str(first_record), *common, stdin=subprocess.PIPE)
    feeder = Feeder(proc, lines, per_second=20_000)
    feeder.start()
    try:
        wait_for(lambda: stored_messages(file_server.monitor_url, stream) >= 3_000, 30, "3000 messages stored")
        file_server.kill()
        killed_at = time.monotonic()
        file_server.start()  # same ports, same store directory
        code, _ = finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    gave_up = time.monotonic() - killed_at
    stderr = proc.stderr.read().decode()
    figure("publish-server-kill", gave_up_s=round(gave_up, 2), exit=code)

    assert code == 10, stderr
    assert "Traceback" not in stderr
    confirmed = record_lines(first_record)
    assert 1_000 < len(confirmed) < TOTAL
    # the record is the confirmed prefix; the error names the line right after it
    assert [entry["line"] for entry in confirmed] == list(range(1, len(confirmed) + 1))
    first_unconfirmed = re.search(r"first: line (\d+): ", stderr)
    if first_unconfirmed:  # messages were in flight at the kill: their fate is in doubt
        assert int(first_unconfirmed.group(1)) == len(confirmed) + 1
        assert "rerun the same command" in stderr
    else:  # nothing was in flight: every line sent was confirmed, the rest never read
        not_read = re.search(r"first: the input after line (\d+): not read", stderr)
        assert not_read, stderr
        assert int(not_read.group(1)) == len(confirmed)

    check = cli.run("verify", CHANNEL, "--against", str(first_record), "--server", file_server.url, "--json")
    assert check.returncode == 0, check.stdout + check.stderr

    rerun = cli.run(
        "pub", CHANNEL, "--lines", "--record", str(second_record), *common, input=b"".join(lines), timeout=120
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "duplicates ignored" in rerun.stdout.decode()
    check = cli.run("verify", CHANNEL, "--against", str(second_record), "--server", file_server.url, "--json")
    assert check.returncode == 0, check.stdout + check.stderr
    assert stored_messages(file_server.monitor_url, stream) == TOTAL + 1  # + the seed message
    figure("messages", published=TOTAL, confirmed_before_fault=len(confirmed), lost=0)


def test_verify_fails_on_a_lost_and_a_duplicated_message(cli, server, tmp_path):
    record = tmp_path / "r.rec"
    data = "".join(f"v-{n}\n" for n in range(1, 21))
    assert (
        cli.run("pub", "verify.me", "--lines", "--record", str(record), "--server", server.url, input=data).returncode
        == 0
    )
    assert cli.run("verify", "verify.me", "--against", str(record), "--server", server.url).returncode == 0

    assert cli.run("pub", "verify.me", "v-7", "--server", server.url).returncode == 0  # a duplicate of line 7
    dup = cli.run("verify", "verify.me", "--against", str(record), "--server", server.url)
    assert dup.returncode == 12
    assert dup.stderr.decode().strip() == "natsctl: error: verify.me: 1 duplicated (first: line 7) of 20 recorded lines"

    import asyncio

    import nats  # delete one stored message to simulate a loss, through the real server

    async def delete(seq: int) -> None:
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        stream = await js.find_stream_name_by_subject("verify.me")
        await js.delete_msg(stream, seq)
        await nc.close()

    asyncio.run(delete(3))
    lost = cli.run("verify", "verify.me", "--against", str(record), "--server", server.url, "--json")
    assert lost.returncode == 12
    import json

    report = json.loads(lost.stdout)
    assert report["missing_lines"] == [3] and report["duplicated_lines"] == [7] and not report["ok"]


def test_record_names_input_lines_when_blank_lines_are_skipped(cli, server, tmp_path):
    record = tmp_path / "r.rec"
    source = tmp_path / "in.txt"
    source.write_bytes(b"one\n\n\ntwo\n  \nthree\n")
    assert (
        cli.run("pub", "blank.lines", "--file", str(source), "--record", str(record), "--server", server.url).returncode
        == 0
    )
    assert [e["line"] for e in record_lines(record)] == [1, 4, 6]
    assert cli.run("verify", "blank.lines", "--against", str(record), "--server", server.url).returncode == 0


def test_verify_rejects_a_bad_record(cli, server, tmp_path):
    bad = tmp_path / "bad.rec"
    bad.write_text('{"line": 1, "seq": 1}\nnot json\n')
    result = cli.run("verify", "x", "--against", str(bad), "--server", server.url)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == f"natsctl: error: {bad} line 2 is not a natsctl pub --record entry"


def test_verify_explains_a_record_without_sequences(cli, server, tmp_path):
    stan_like = tmp_path / "stan.rec"
    stan_like.write_text('{"line": 1, "seq": 0, "stream": ""}\n')
    result = cli.run("verify", "x", "--against", str(stan_like), "--server", server.url)
    assert result.returncode == 2
    assert "has no sequence (NATS Streaming does not confirm with one)" in result.stderr.decode()
