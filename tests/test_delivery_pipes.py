"""Issue 10: nothing acknowledged is lost when stdout is a pipe.

Each test holds natsctl back on a full pipe (the reader stops reading), then interrupts it or makes the
reader go away, and resumes the durable: what the reader got plus what the resumed durable delivers
must be every message. natsctl may deliver a message twice (at least once), never zero times.
"""

from __future__ import annotations

import fcntl
import signal
import subprocess
import termios

import pytest

from tests.reliability_helpers import finish, pipe_has_room, read_some, wait_for

TOTAL = 5_000
BODY = "x" * 92  # ~100-byte lines, as in the report


def payload(n: int) -> str:
    return f"{n:06d}-{BODY}"


def publish(cli, bus, channel: str) -> None:
    result = cli.run(
        "pub", channel, "--lines", *bus.args, input="".join(payload(n) + "\n" for n in range(1, TOTAL + 1))
    )
    assert result.returncode == 0, result.stderr


def unread(fd: int) -> int:
    waiting = bytearray(4)
    fcntl.ioctl(fd, termios.FIONREAD, waiting)
    return int.from_bytes(waiting, "little")


def wait_until_pipe_full(proc: subprocess.Popen) -> None:
    """natsctl has filled the pipe: it holds messages it cannot write out (observable, not timed)."""
    fd = proc.stdout.fileno()
    wait_for(lambda: not pipe_has_room(fd) or proc.poll() is not None, 60, "natsctl to fill its stdout pipe")
    assert proc.poll() is None, proc.stderr.read().decode()


def numbers(data: bytes) -> list[int]:
    """Sequence numbers of the complete lines (a line cut short by the pipe is not a message)."""
    lines = data.split(b"\n")[:-1]  # the part after the last newline is incomplete
    return [int(line[:6]) for line in lines if line.endswith(BODY.encode())]


def start_reader_blocked(cli, bus, channel: str, ident: list[str]) -> tuple[subprocess.Popen, bytes]:
    proc = cli.popen("sub", channel, "--durable", "di", "--all", "--raw", "--ack-wait", "2s", *ident, *bus.args)
    first = read_some(proc.stdout.fileno(), 1000)  # the reader takes 1,000 bytes, then pauses
    wait_until_pipe_full(proc)
    return proc, first


def resume(cli, bus, channel: str, ident: list[str]) -> list[int]:
    again = cli.run(
        "sub",
        channel,
        "--durable",
        "di",
        "--all",
        "--raw",
        "--exit-at-end",
        "--ack-wait",
        "2s",
        *ident,
        *bus.args,
        timeout=90,
    )
    assert again.returncode == 0, again.stderr
    return numbers(again.stdout)


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
def test_signal_while_the_reader_is_paused_loses_nothing(cli, bus, sig, code):
    channel = f"pipes.{sig.name.lower()}"
    ident = [] if bus.jetstream else ["--client-id", f"reader-{sig.name.lower()}"]
    publish(cli, bus, channel)
    proc, first = start_reader_blocked(cli, bus, channel, ident)
    try:
        proc.send_signal(sig)
        status, _ = finish(proc, 30)  # acts at once: the reader is still paused
        rest = proc.stdout.read()  # the reader reads to the end afterwards
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == code, proc.stderr.read().decode()
    got = set(numbers(first + rest))
    resumed = resume(cli, bus, channel, ident)
    assert set(range(1, TOTAL + 1)) - got - set(resumed) == set()  # lost: none


def test_reader_that_exits_without_reading_loses_nothing(cli, bus):
    channel = "pipes.gone"
    ident = [] if bus.jetstream else ["--client-id", "reader-gone"]
    publish(cli, bus, channel)
    proc, first = start_reader_blocked(cli, bus, channel, ident)
    try:
        proc.stdout.close()  # the reader exits: what sits in the pipe is never read
        status, _ = finish(proc, 30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert status == 0, proc.stderr.read().decode()  # a reader going away is not an error (`| head`)
    got = set(numbers(first))
    resumed = resume(cli, bus, channel, ident)
    assert set(range(1, TOTAL + 1)) - got - set(resumed) == set()
