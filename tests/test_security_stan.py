"""NATS Streaming rides on the same NATS connection: credentials work and fail the same way."""

from __future__ import annotations

import pytest

from tests.servers import NatsServer
from tests.stan_double.fixtures import StanServer

ADMIN_PW = "adm1n-pw-q9"
ALICE_PW = "al1ce-pw-z7"


class AuthStanServer(StanServer):
    @property
    def url(self) -> str:  # the double itself logs in as admin
        return f"nats://admin:{ADMIN_PW}@127.0.0.1:{self.nats.port}"


@pytest.fixture
def auth_stan():
    config = (
        "authorization { users = [ "
        f'{{user: "admin", password: "{ADMIN_PW}"}}, {{user: "alice", password: "{ALICE_PW}"}} ] }}\n'
    )
    server = AuthStanServer(NatsServer(jetstream=False, config=config).start())
    try:
        server.start_double()
        yield server
    finally:
        server.cleanup()


def test_nats_streaming_with_user_and_password(cli, auth_stan):
    target = ["--server", auth_stan.nats.url, "--cluster-id", auth_stan.cluster_id]
    pub = cli.run("pub", "orders", "secret order", *target, "--user", "alice", "--password", ALICE_PW)
    assert pub.returncode == 0, pub.stderr
    got = cli.run("replay", "orders", "--raw", *target, "--user", "alice", "--password", ALICE_PW)
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"secret order\n"
    for result in (pub, got):
        assert ALICE_PW.encode() not in result.stdout + result.stderr


def test_nats_streaming_wrong_password_is_an_auth_failure(cli, auth_stan):
    url = f"nats://alice:wrong-{ALICE_PW}@127.0.0.1:{auth_stan.nats.port}"
    result = cli.run("pub", "orders", "x", "--server", url, "--cluster-id", auth_stan.cluster_id)
    assert result.returncode == 4
    assert result.stderr.decode().startswith(
        f"natsctl: error: authentication failed at nats://alice:***@127.0.0.1:{auth_stan.nats.port}"
    )
    assert ALICE_PW.encode() not in result.stderr
