"""The test harness itself: a server whose chosen port was taken meanwhile starts on fresh ports."""

from __future__ import annotations

import socket

from tests.servers import NatsServer, TakenFirst, squatted_port


def test_server_takes_fresh_ports_when_its_port_was_taken():
    with squatted_port() as taken:
        srv = NatsServer(jetstream=False, port=taken)
        try:
            srv.start()
            assert srv.port != taken
            with socket.create_connection(("127.0.0.1", srv.port), timeout=2):
                pass
        finally:
            srv.cleanup()


def test_cluster_starts_again_on_fresh_ports_when_a_route_port_was_taken(monkeypatch):
    import tests.servers as servers

    with squatted_port() as taken:
        picker = TakenFirst(taken, servers.free_port)
        monkeypatch.setattr(servers, "free_port", picker)
        nodes = servers.start_cluster(3)
        try:
            assert picker.handed[0] == taken
            assert taken not in {n.cluster_port for n in nodes}
            assert all(n.proc.poll() is None for n in nodes)
        finally:
            for node in nodes:
                node.cleanup()


def test_server_run_helper_picks_ports_again_when_one_was_taken(cli, tmp_path):
    import signal

    from tests.reliability_helpers import start_server_run
    from tests.servers import free_port

    with squatted_port() as taken:
        picks = []

        def pick() -> dict[str, int]:
            picks.append({"--port": taken if not picks else free_port(), "--monitor-port": free_port()})
            return picks[-1]

        proc, _err, ports = start_server_run(cli, pick, "--store-dir", str(tmp_path))
        try:
            assert len(picks) == 2 and ports == picks[1]
            with socket.create_connection(("127.0.0.1", ports["--port"]), timeout=2):
                pass
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 143


def test_servers_started_together_take_fresh_ports_when_one_was_taken():
    """Fixtures start many servers at once (start(wait=False), then wait_started())."""
    with squatted_port() as taken:
        servers = [
            NatsServer(jetstream=False).start(wait=False),
            NatsServer(jetstream=False, monitor_port=taken).start(wait=False),
        ]
        try:
            for srv in servers:
                srv.wait_started()
            assert servers[1].monitor_port != taken and all(s.proc.poll() is None for s in servers)
        finally:
            for srv in servers:
                srv.cleanup()


def test_a_base_path_server_is_ready_under_its_prefix():
    srv = NatsServer(jetstream=False, config='http_base_path: "/nats"').start()
    try:
        assert srv.base_path() == "/nats"
    finally:
        srv.cleanup()
