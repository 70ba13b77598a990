"""pytest fixtures: a nats-server plus the NATS Streaming test double running as its own process.

Plug into tests/conftest.py with ``from tests.stan_double.fixtures import *  # noqa: F403`` (or list
the names in ``pytest_plugins = ["tests.stan_double.fixtures"]``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from natsctl.core.settings import Settings
from tests.servers import NatsServer, stop_process

ROOT = Path(__file__).resolve().parents[2]
# Short liveness settings so a killed client is dropped in (1+1)*(2+1) = 6 s, as g7 was recorded.
TEST_HEARTBEATS = {"hb_interval": 1.0, "hb_timeout": 1.0, "hb_fail_count": 2}


@dataclass
class StanServer:
    """A running nats-server (no JetStream) with a NATS Streaming double serving ``cluster_id``."""

    nats: NatsServer
    cluster_id: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    version: str = "0.23.2"
    heartbeats: dict = field(default_factory=lambda: dict(TEST_HEARTBEATS))
    proc: subprocess.Popen | None = None
    monitoring: bool = False  # serve a monitoring port (tests/stan_double/monitor.py)
    monitor_url: str | None = None  # its URL once started
    channel_max_msgs: dict = field(default_factory=dict)  # channel -> the store's max_msgs limit for it

    @property
    def url(self) -> str:
        return self.nats.url

    def settings(self, **overrides) -> Settings:
        values = dict(servers=[self.url], cluster_id=self.cluster_id, timeout=5.0)
        values.update(overrides)
        return Settings(**values)

    def cli_args(self) -> list[str]:
        """Flags that point the natsctl CLI at this server."""
        return ["--server", self.url, "--cluster-id", self.cluster_id]

    def env(self) -> dict[str, str]:
        return {"NATS_URL": self.url, "NATS_CLUSTER_ID": self.cluster_id}

    def start_double(self) -> None:
        args = [sys.executable, "-m", "tests.stan_double", "--nats-url", self.url, "--cluster-id", self.cluster_id]
        args += ["--version", self.version]
        for key, value in self.heartbeats.items():
            args += [f"--{key.replace('_', '-')}", str(value)]
        if self.monitoring:
            args += ["--monitor-port", "0"]
        for channel, limit in self.channel_max_msgs.items():
            args += ["--channel-max-msgs", f"{channel}={limit}"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if "ready" not in line:
            self.proc.kill()
            raise RuntimeError(f"the NATS Streaming double did not start: {line!r}")
        self.monitor_url = next((w.split("=", 1)[1] for w in line.split() if w.startswith("monitor=")), None)

    def kill_double(self) -> None:
        """SIGKILL the double (its state is lost, as with a memory store); the nats-server stays up."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop_double(self) -> None:
        stop_process(self.proc)

    def restart_double(self) -> None:
        self.stop_double()
        self.start_double()

    def cleanup(self) -> None:
        self.stop_double()
        self.nats.cleanup()


def start_stan(
    version: str = "0.23.2", *, monitoring: bool = False, channel_max_msgs: dict | None = None, **heartbeats
) -> StanServer:
    server = StanServer(NatsServer(jetstream=False).start(), version=version, monitoring=monitoring)
    server.channel_max_msgs = dict(channel_max_msgs or {})
    server.heartbeats.update(heartbeats)
    try:
        server.start_double()
    except Exception:
        server.nats.cleanup()
        raise
    return server


@pytest.fixture
def stan_server() -> Iterator[StanServer]:
    """nats-server + NATS Streaming double (0.23.2 behaviour, short heartbeats), fresh per test."""
    server = start_stan("0.23.2")
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=["0.17.0", "0.23.2"])
def stan_server_any(request) -> Iterator[StanServer]:
    """The same, once per recorded server version."""
    server = start_stan(request.param)
    try:
        yield server
    finally:
        server.cleanup()
