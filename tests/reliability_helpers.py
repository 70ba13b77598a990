"""Shared by the reliability tests: feeding natsctl's stdin at a pace, reading streams, figures.

Figures (faults injected, time to give up, messages lost) are appended as JSON lines to the file
named by NATSCTL_RELIABILITY_FIGURES, when set, for the closing note of issue 7.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def figure(kind: str, **data: object) -> None:
    path = os.environ.get("NATSCTL_RELIABILITY_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": kind, **data}) + "\n")


def lines_file(path: Path, count: int, prefix: str = "msg") -> Path:
    path.write_text("".join(f"{prefix}-{n:06d}\n" for n in range(1, count + 1)))
    return path


class Feeder(threading.Thread):
    """Writes ``lines`` to a process's stdin at about ``per_second``; stops quietly when it exits."""

    def __init__(self, proc: subprocess.Popen, lines: list[bytes], per_second: float) -> None:
        super().__init__(daemon=True)
        self.proc, self.lines, self.per_second = proc, lines, per_second
        self.written = 0

    def run(self) -> None:
        chunk = max(1, int(self.per_second / 50))
        try:
            for start in range(0, len(self.lines), chunk):
                self.proc.stdin.write(b"".join(self.lines[start : start + chunk]))
                self.proc.stdin.flush()
                self.written = start + chunk
                time.sleep(0.02)
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError, OSError):
            pass  # natsctl stopped reading (it gave up): that is what some tests expect


class Collector(threading.Thread):
    """Reads a pipe line by line into a list, so a process never blocks on a full pipe."""

    def __init__(self, stream, delay: float = 0.0) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[bytes] = []
        self.delay = delay  # seconds per line: a slow reader holds natsctl back (the pipe fills)
        self.reading = threading.Event()
        self.reading.set()

    def pause(self) -> None:
        """Stop reading after the current line: the writer soon blocks on a full pipe."""
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()

    def run(self) -> None:
        while True:
            self.reading.wait()
            line = self.stream.readline()
            if not line:
                return
            self.lines.append(line)
            if self.delay:
                time.sleep(self.delay)

    def pipe_pending(self) -> int:
        """Bytes written into the pipe and not read yet."""
        waiting = bytearray(4)
        fcntl.ioctl(self.stream.fileno(), termios.FIONREAD, waiting)
        return int.from_bytes(waiting, "little")

    def wait_for_blocked_writer(self, timeout: float) -> None:
        """Once paused: wait until the pipe holds data that stops growing, i.e. the writer is stuck.

        Only meaningful while the writer has more to write (a stream not yet exhausted).
        """
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            pending = self.pipe_pending()
            if pending != last:
                last, since = pending, time.monotonic()
            elif pending and time.monotonic() - since >= 0.5:
                return
            time.sleep(0.05)
        raise AssertionError(f"the writer never blocked on its pipe within {timeout}s")


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def stream_state(monitor_url: str, stream: str) -> dict:
    """The stream's state and cluster block from one node's /jsz ({} when it does not hold it)."""
    try:
        body = httpx.get(monitor_url + "/jsz", params={"streams": "true"}, timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return {}
    for account in body.get("account_details") or []:
        for detail in account.get("stream_detail") or []:
            if detail.get("name") == stream:
                return detail
    return {}


def stored_messages(monitor_url: str, stream: str) -> int:
    return int((stream_state(monitor_url, stream).get("state") or {}).get("messages") or 0)


def leader_of(nodes, stream: str, replicas_current: int = 2):
    """The node leading ``stream`` once ``replicas_current`` of its followers report they are current."""

    def found():
        for node in nodes:
            cluster = stream_state(node.monitor_url, stream).get("cluster") or {}
            current = [r for r in cluster.get("replicas") or [] if r.get("current")]
            if cluster.get("leader") in {n.name for n in nodes} and len(current) >= replicas_current:
                return cluster["leader"]
        return None

    wait_for(lambda: found() is not None, 30, f"a leader of {stream} with current replicas")
    name = found()
    return next(n for n in nodes if n.name == name)


def meta_leader_among(nodes) -> None:
    """Wait until the survivors agree on a JetStream meta leader (the API answers only then)."""

    def elected() -> bool:
        try:
            meta = httpx.get(nodes[0].monitor_url + "/jsz", timeout=2).json().get("meta_cluster") or {}
        except (httpx.HTTPError, ValueError):
            return False
        return meta.get("leader") in {n.name for n in nodes}

    wait_for(elected, 30, "a JetStream meta leader among the surviving nodes")


def finish(proc: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for natsctl to end; (exit status, seconds it took). A hang fails the test and is killed."""
    started = time.monotonic()
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
        raise AssertionError(f"natsctl did not end within {timeout}s (it hung)") from None
    return code, time.monotonic() - started


def record_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def start_server_run(
    cli, pick_ports: Callable[[], dict[str, int]], *args: str, attempts: int = 3, timeout: float = 30, **popen
) -> tuple[subprocess.Popen, Collector, dict[str, int]]:
    """`natsctl server run` with ports from ``pick_ports()`` ({"--port": n, ...}), once it says it serves.

    A port picked free can be taken before natsctl binds it (another test's connection gets it as its
    ephemeral port): natsctl then refuses or its node exits, and the run starts again on new ports.
    stderr is collected (the nodes log there); the caller stops the process.
    """
    for attempt in range(attempts):
        ports = pick_ports()
        port_args = [str(item) for flag, port in ports.items() for item in (flag, port)]
        proc = cli.popen("server", "run", *port_args, *args, **popen)
        err = Collector(proc.stderr)
        err.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if b"Ctrl-C stops it" in b"".join(list(err.lines)):
                return proc, err, ports
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        err.join(5)
        said = b"".join(err.lines)
        if b"in use" not in said or attempt == attempts - 1:
            raise AssertionError(f"natsctl server run did not start (exit {proc.returncode}): {said.decode()[-2000:]}")
    raise AssertionError("unreachable")


def read_some(fd: int, size: int) -> bytes:
    got = b""
    while len(got) < size:
        chunk = os.read(fd, size - len(got))
        if not chunk:
            break
        got += chunk
    return got


def pipe_has_room(read_fd: int) -> bool:
    """Poll a write end of the pipe: POLLOUT means a free page, i.e. a writer could go on."""
    write_end = os.open(f"/proc/self/fd/{read_fd}", os.O_WRONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(write_end, select.POLLOUT)
        return bool(poller.poll(0))
    finally:
        os.close(write_end)
