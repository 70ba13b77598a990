"""The test harness itself: a server whose chosen port was taken meanwhile starts on fresh ports."""

from __future__ import annotations

import socket

from tests.servers import NatsServer


def test_server_takes_fresh_ports_when_its_port_was_taken():
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        srv = NatsServer(jetstream=False, port=taken)
        try:
            srv.start()
            assert srv.port != taken
            with socket.create_connection(("127.0.0.1", srv.port), timeout=2):
                pass
        finally:
            srv.cleanup()
