from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import InProcessCLI
from tests.servers import NatsServer, env_without_nats, start_cluster


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """No test reads or writes the real user's contexts, config or data directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    for key in list(os.environ):
        if key.startswith("NATS_"):
            monkeypatch.delenv(key)
    return home


@pytest.fixture
def server() -> Iterator[NatsServer]:
    """A fresh nats-server with JetStream and monitoring, on free loopback ports."""
    srv = NatsServer().start()
    try:
        yield srv
    finally:
        srv.cleanup()


@pytest.fixture
def cluster() -> Iterator[list[NatsServer]]:
    nodes = start_cluster(3)
    try:
        yield nodes
    finally:
        for node in nodes:
            node.cleanup()


@pytest.fixture
def nodes(cluster) -> list[NatsServer]:
    """The same three-node cluster, under the name the reliability tests give it."""
    return cluster


class CLI:
    """Runs natsctl as a real process (signals, stdin and exit codes as a user sees them)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "natsctl", *args]

    def run(
        self,
        *args: str,
        input: bytes | str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess:
        data = input.encode() if isinstance(input, str) else input
        return subprocess.run(
            self.command(*args),
            input=data,
            capture_output=True,
            env={**self.env, **(env or {})},
            timeout=timeout,
            stdin=None if data is not None else subprocess.DEVNULL,
        )

    def popen(self, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.Popen(self.command(*args), env={**self.env, **(env or {})}, **kw)


@pytest.fixture
def cli(isolated_home) -> CLI:
    env = env_without_nats()
    env.update(
        HOME=str(isolated_home),
        XDG_CONFIG_HOME=str(isolated_home / ".config"),
        XDG_DATA_HOME=str(isolated_home / ".local" / "share"),
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
        COLUMNS="200",
    )
    return CLI(env)


@pytest.fixture
def cli_in_process(isolated_home) -> InProcessCLI:
    """natsctl run inside the test process (help, usage and usage errors); results shaped like ``cli``'s."""
    return InProcessCLI()


from tests.stan_double.fixtures import StanServer, stan_server, stan_server_any, start_stan  # noqa: E402,F401


class Bus:
    """A server of one kind, with the flags that point natsctl at it."""

    def __init__(self, kind: str, nats: NatsServer, stan: StanServer | None = None) -> None:
        self.kind = kind
        self.nats = nats
        self.stan = stan

    @property
    def args(self) -> list[str]:
        return self.stan.cli_args() if self.stan else ["--server", self.nats.url]

    @property
    def jetstream(self) -> bool:
        return self.kind == "jetstream"


@pytest.fixture(params=["jetstream", "stan"])
def bus(request) -> Iterator[Bus]:
    """Each messaging test runs on JetStream and on NATS Streaming (the test double)."""
    if request.param == "jetstream":
        srv = NatsServer().start()
        try:
            yield Bus("jetstream", srv)
        finally:
            srv.cleanup()
    else:
        stan = start_stan("0.23.2")
        try:
            yield Bus("stan", stan.nats, stan)
        finally:
            stan.cleanup()
