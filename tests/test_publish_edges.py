"""Issue 10, publishing edges: headers against max_payload, repeated header keys, long lines from a
pipe, bad envelope lines after good ones, and what `pub` says when it fails after confirmations."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading
import tracemalloc

import pytest

from natsctl.core import inputs
from natsctl.core.inputs import line_maker, pipe_lines
from natsctl.core.names import stream_name_for
from tests.reliability_helpers import Feeder, finish, record_lines, wait_for
from tests.servers import NatsServer

MAX_PAYLOAD = 1024


def envelopes(stdout: bytes) -> list[dict]:
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


def ok(result) -> None:
    assert result.returncode == 0, (result.returncode, result.stderr.decode())
    assert b"Traceback" not in result.stderr


@pytest.fixture
def small_server():
    srv = NatsServer(config=f"max_payload: {MAX_PAYLOAD}").start()
    try:
        yield srv
    finally:
        srv.cleanup()


# -- 6. headers count against max_payload --------------------------------------------------------


def test_headers_count_against_max_payload_and_the_rest_of_the_file_goes_on(cli, small_server, tmp_path):
    value = "v" * 100
    # NATS/1.0\r\n + "K: <value>\r\n" + \r\n: what the server adds up with the payload
    block = len("NATS/1.0\r\n") + len(f"K: {value}\r\n") + len("\r\n")
    fits = MAX_PAYLOAD - block
    lines = [b"one", b"f" * fits, b"o" * (fits + 1), b"four", b"t" * (MAX_PAYLOAD - 10), b"six"]
    source = tmp_path / "in.txt"
    source.write_bytes(b"\n".join(lines) + b"\n")

    result = cli.run("pub", "hdr.size", "--file", str(source), "-H", f"K:{value}", "--server", small_server.url)

    assert result.returncode == 10, result.stderr
    assert (
        result.stdout.decode()
        == f"published 4 messages to hdr.size (stream {stream_name_for('hdr.size')}, sequences 1-4)\n"
    )
    assert result.stderr.decode() == (
        f"natsctl: error: 2 of 6 messages not confirmed; first: line 3: headers ({block} bytes) and payload "
        f"({fits + 1} bytes) make {MAX_PAYLOAD + 1} bytes, over the server's max_payload of {MAX_PAYLOAD} bytes "
        "(and 1 more)\n"
    )
    stored = envelopes(cli.run("replay", "hdr.size", "--json", "--server", small_server.url).stdout)
    assert [e["data"] for e in stored] == ["one", "f" * fits, "four", "six"]
    assert all(e["headers"] == {"K": [value]} for e in stored)


def test_json_summary_names_each_refused_line(cli, small_server, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(b"a\n" + b"x" * 1000 + b"\nb\n")
    result = cli.run(
        "pub", "hdr.json", "--file", str(source), "-H", "Trace:" + "t" * 50, "--json", "--server", small_server.url
    )
    assert result.returncode == 10
    summary = json.loads(result.stdout)
    assert summary["confirmed"] == 2 and summary["published"] == 2
    [reason] = summary["failed"]
    assert reason.startswith("line 2: headers (") and "over the server's max_payload of 1024 bytes" in reason


# -- 7. repeated header keys ---------------------------------------------------------------------


def raw_hpub(url: str, subject: str, header_lines: list[str], payload: bytes) -> None:
    """Publish one message with a hand-written header block (repeated keys), as another client may."""
    host, port = url.removeprefix("nats://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"INFO ")
        block = ("NATS/1.0\r\n" + "".join(f"{line}\r\n" for line in header_lines) + "\r\n").encode()
        sock.sendall(
            b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n'
            + b"HPUB %s %d %d\r\n" % (subject.encode(), len(block), len(block) + len(payload))
            + block
            + payload
            + b"\r\nPING\r\n"
        )
        assert reader.readline() == b"PONG\r\n"


def test_repeated_header_keys_keep_every_value_in_order(cli, server):
    args = ["--server", server.url]
    ok(cli.run("pub", "rk", "first", "-H", "K:a", "-H", "Other:x", "-H", "K:b", "-H", "K: a ", *args))
    raw_hpub(server.url, "rk", ["K: one", "Trace: t", "K: two"], b"second")

    got = cli.run("sub", "rk", "--all", "--exit-at-end", "--json", *args)
    ok(got)
    first, second = envelopes(got.stdout)
    assert first["headers"] == {"K": ["a", "b", "a"], "Other": ["x"]}
    assert second["headers"] == {"K": ["one", "two"], "Trace": ["t"]}
    readable = cli.run("replay", "rk", *args).stdout.decode()
    assert "  K: a\n  K: b\n  K: a\n  Other: x\n" in readable

    dump = cli.run("replay", "rk", "--json", *args)
    ok(dump)
    ok(cli.run("pub", "rk.copy", "--envelope", *args, input=dump.stdout))
    copy = cli.run("replay", "rk.copy", "--json", *args)
    ok(copy)

    def content(items: list[dict]) -> list[tuple]:
        return [(e["headers"], e["data"], e["encoding"], e["seq"]) for e in items]

    assert content(envelopes(copy.stdout)) == content(envelopes(dump.stdout))


def test_repeated_keys_with_a_message_id(cli, server):
    args = ["--server", server.url, "--msg-id", "id-{{Count}}"]
    ok(cli.run("pub", "rkid", "--count", "2", "x", "-H", "K:a", "-H", "K:b", *args))
    ok(cli.run("pub", "rkid", "--count", "2", "x", "-H", "K:a", "-H", "K:b", *args))  # duplicates, dropped
    stored = envelopes(cli.run("replay", "rkid", "--json", "--server", server.url).stdout)
    assert [e["headers"] for e in stored] == [
        {"K": ["a", "b"], "Nats-Msg-Id": ["id-1"]},
        {"K": ["a", "b"], "Nats-Msg-Id": ["id-2"]},
    ]


# -- 8. a long line from a pipe is read in linear time --------------------------------------------


class CountingReads:
    """Stands in for ``os`` in natsctl.core.inputs: ``read`` hands out one long line in small chunks and
    measures, between two reads, how many bytes the reader allocated (a re-joined leftover shows)."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data = data
        self.chunk = chunk
        self.pos = 0
        self.allocated = 0
        self.reads = 0
        self.lock = threading.Lock()

    def read(self, fd: int, size: int) -> bytes:
        with self.lock:
            peak = tracemalloc.get_traced_memory()[1]
            if self.reads:
                self.allocated += peak - self.base
            piece = self.data[self.pos : self.pos + min(size, self.chunk)]
            self.pos += len(piece)
            self.reads += 1
            tracemalloc.reset_peak()
            self.base = tracemalloc.get_traced_memory()[0]
            return piece

    def __getattr__(self, name: str):
        return getattr(os, name)


def test_a_long_line_from_a_pipe_is_not_copied_again_per_chunk(monkeypatch):
    line = bytes(range(97, 123)) * (4 * 1024 * 1024 // 26)  # ~4 MB, no newline until the end
    chunk = 16 * 1024
    fake = CountingReads(line + b"\n", chunk)
    monkeypatch.setattr(inputs, "os", fake)
    read_fd, write_fd = os.pipe()  # only its number is used; the fake hands out the data
    handle = os.fdopen(read_fd, "rb")
    make = line_maker(envelope=False, headers=None, skip_bad=False, on_skip=lambda _: None)

    async def collect() -> list[bytes]:
        return [message.data async for message in pipe_lines(handle, make)]

    tracemalloc.start()
    try:
        got = asyncio.run(collect())
    finally:
        tracemalloc.stop()
        handle.close()
        os.close(write_fd)
    assert got == [line]
    assert fake.reads >= len(line) // chunk
    # Each chunk is kept once and joined once at the newline: a few times the line in all. Re-joining
    # the leftover with every chunk allocates the line again per chunk (~128 MB for 256 chunks here).
    assert fake.allocated < 4 * len(line), f"{fake.allocated} bytes allocated reading a {len(line)}-byte line"


def test_pipe_lines_split_across_chunks_are_whole(monkeypatch):
    text = b"alpha\nbe" + b"ta\r\n\ngam" + b"ma\ndelta"
    fake = CountingReads(text, 3)
    monkeypatch.setattr(inputs, "os", fake)
    read_fd, write_fd = os.pipe()
    handle = os.fdopen(read_fd, "rb")
    make = line_maker(envelope=False, headers=None, skip_bad=False, on_skip=lambda _: None)

    async def collect() -> list[tuple[bytes, str]]:
        return [(m.data, m.source) async for m in pipe_lines(handle, make)]

    try:
        got = asyncio.run(collect())
    finally:
        handle.close()
        os.close(write_fd)
    assert got == [(b"alpha", "line 1"), (b"beta", "line 2"), (b"gamma", "line 4"), (b"delta", "line 5")]


# -- 9. a bad envelope line after good ones ------------------------------------------------------


def test_a_deeply_nested_envelope_line_is_a_bad_line_after_a_summary(cli, bus, tmp_path):
    good = [json.dumps({"data": f"m{n}"}) for n in range(1, 5)]
    deep = '{"data": "x", "headers": ' + "[" * 100_000 + "]" * 100_000 + "}"
    source = tmp_path / "dump.jsonl"
    source.write_text("\n".join([*good, deep, json.dumps({"data": "after"})]) + "\n")

    result = cli.run("pub", "deep", "--file", str(source), "--envelope", *bus.args)

    assert result.returncode == 2, result.stderr
    where = "(stream deep, sequences 1-4)" if bus.jetstream else "(all confirmed)"
    assert result.stdout.decode() == f"published 4 messages to deep {where}\n"
    assert result.stderr.decode() == (
        "natsctl: error: line 5: not a JSON envelope (nested too deeply); fix the line or pass --skip-bad-lines\n"
    )
    skipped = cli.run("pub", "deep2", "--envelope", "--skip-bad-lines", *bus.args, input=source.read_bytes())
    ok(skipped)
    assert "line 5: not a JSON envelope (nested too deeply)" in skipped.stderr.decode()
    stored = envelopes(cli.run("replay", "deep2", "--json", *bus.args).stdout)
    assert [e["data"] for e in stored] == ["m1", "m2", "m3", "m4", "after"]


def test_a_record_that_cannot_be_written_still_reports_what_was_confirmed(cli, bus, tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    source = tmp_path / "in.txt"
    source.write_text("".join(f"n{n}\n" for n in range(1, 20_001)))  # more than a window of acks

    result = cli.run("pub", "full", "--file", str(source), "--record", "/dev/full", *bus.args)

    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr and "unexpected" not in stderr
    out = result.stdout.decode()
    assert out.startswith("published ") and " messages to full (" in out
    confirmed = int(out.split()[1])
    *notes, error = stderr.splitlines()
    assert error == "natsctl: error: cannot write --record /dev/full: No space left on device"
    assert notes == [
        (
            f"natsctl: warning: {confirmed} messages confirmed before the error; first unconfirmed: "
            f"line {confirmed + 1}: not sent: publishing stopped (a confirmation could not be reported)"
        )
    ]


# -- 10. the server goes away mid-publish --------------------------------------------------------


def record_count(path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_nats_streaming_lost_mid_publish_says_what_was_confirmed(cli, stan_server, tmp_path):
    record = tmp_path / "confirmed.rec"
    lines = [f"order-{n:06d}\n".encode() for n in range(1, 200_001)]
    proc = cli.popen(
        "pub", "lost.mid", "--lines", "--record", str(record), *stan_server.cli_args(), stdin=subprocess.PIPE
    )
    feeder = Feeder(proc, lines, per_second=20_000)
    feeder.start()
    try:
        wait_for(lambda: record_count(record) >= 2_000, 30, "2000 confirmations recorded")
        stan_server.kill_double()
        code, _ = finish(proc, 60)
    finally:
        if proc.poll() is None:
            proc.kill()
    stdout, stderr = proc.stdout.read().decode(), proc.stderr.read().decode()

    assert code == 3, stderr
    assert "Traceback" not in stderr
    confirmed = record_lines(record)
    assert len(confirmed) >= 2_000 and [e["line"] for e in confirmed] == list(range(1, len(confirmed) + 1))
    assert stdout == f"published {len(confirmed)} messages to lost.mid (all confirmed)\n"
    *_, note, error = stderr.splitlines()
    assert note.startswith(
        f"natsctl: warning: {len(confirmed)} messages confirmed before the error; "
        f"first unconfirmed: line {len(confirmed) + 1}: "
    ), stderr
    assert error.startswith("natsctl: error: ") and "NATS Streaming server" in error
