"""Issue 10: Ctrl-C and SIGTERM act at once while natsctl is still connecting (nothing to finish
gracefully yet), even to a server that accepts the connection and never says a word."""

from __future__ import annotations

import signal
import socket
import threading

import pytest

from tests.reliability_helpers import finish, wait_for


class SilentServer:
    """Accepts TCP connections on loopback and never sends anything (no INFO)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent():
    server = SilentServer()
    yield server
    server.close()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["sigint", "sigterm"])
@pytest.mark.parametrize("command", [["pub", "c", "x"], ["sub", "c"], ["replay", "c"]], ids=["pub", "sub", "replay"])
def test_a_signal_while_connecting_ends_natsctl_at_once(cli, silent, command, sig, code):
    proc = cli.popen(*command, "--server", f"nats://127.0.0.1:{silent.port}", "--timeout", "600")
    try:
        wait_for(lambda: silent.accepted or proc.poll() is not None, 30, "natsctl to connect")
        proc.send_signal(sig)
        status, _ = finish(proc, 20)  # --timeout is 600 s: only the signal can end it this soon
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    assert status == code, err
    assert b"Traceback" not in err
