"""Every credential kind against real nats-server processes, through the CLI; each failure's message and code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from natsctl.core.errors import NatsctlError
from natsctl.core.settings import merge
from tests import security_helpers as h
from tests.security_helpers import failure, pub_sub
from tests.servers import NatsServer

ALICE_PERMS = '{publish: {deny: ["secret", "secret.>"]}, subscribe: {deny: ["hidden", "hidden.>", "_INBOX.>"]}}'
# Carol may receive replies (natsctl needs _INBOX.> for every request) but not publish to "secret".
CAROL_PERMS = '{publish: {deny: ["secret", "secret.>"]}}'


@pytest.fixture(scope="module")
def nkey_user() -> h.NKey:
    return h.new_nkey()


@pytest.fixture(scope="module")
def users(nkey_user) -> Iterator[NatsServer]:
    """Password users (one with permissions) and an nkey user."""
    config = h.users_block(
        h.password_user("admin", h.PASSWORD),
        h.password_user("alice", h.BOB_PASSWORD, ALICE_PERMS),
        h.password_user("carol", h.BOB_PASSWORD, CAROL_PERMS),
        f'{{nkey: "{nkey_user.public}"}}',
    )
    srv = NatsServer(config=config).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def token_server() -> Iterator[NatsServer]:
    srv = NatsServer(config=h.token_block(h.TOKEN)).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def operator() -> h.Operator:
    return h.make_operator()


@pytest.fixture(scope="module")
def jwt_server(operator) -> Iterator[NatsServer]:
    srv = NatsServer(config=operator.config).start()
    yield srv
    srv.cleanup()


# --- success paths ---------------------------------------------------------------------------------


def test_user_password_flags(cli, users):
    pub_sub(cli, "orders", "-s", users.url, "--user", "admin", "--password", h.PASSWORD)


def test_user_password_in_the_url(cli, users):
    pub_sub(cli, "orders", "-s", f"nats://admin:{h.PASSWORD}@127.0.0.1:{users.port}")


def test_user_password_from_env(cli, users):
    pub_sub(cli, "orders", env={"NATS_URL": users.url, "NATS_USER": "admin", "NATS_PASSWORD": h.PASSWORD})


def test_token_flag_and_url(cli, token_server):
    pub_sub(cli, "tickets", "-s", token_server.url, "--token", h.TOKEN)
    pub_sub(cli, "tickets", "-s", f"nats://{h.TOKEN}@127.0.0.1:{token_server.port}")


def test_nkey_seed_file(cli, users, nkey_user, tmp_path):
    seed = h.write(tmp_path / "user.nk", nkey_user.seed + "\n")
    pub_sub(cli, "orders", "-s", users.url, "--nkey", str(seed))


def test_creds_file_decentralized_jwt(cli, jwt_server, operator, tmp_path):
    creds = h.write(tmp_path / "user.creds", operator.user_creds("app-user"))
    pub_sub(cli, "orders", "-s", jwt_server.url, "--creds", str(creds))


def test_context_file_with_password_drives_pub_and_sub(cli, users, isolated_home):
    folder = isolated_home / ".config" / "nats" / "context"
    folder.mkdir(parents=True)
    h.write(folder / "local.json", json.dumps({"url": users.url, "user": "admin", "password": h.PASSWORD}))
    h.write(isolated_home / ".config" / "nats" / "context.txt", "local\n")
    pub_sub(cli, "orders")


# --- authentication failures: exit 4 -------------------------------------------------------------


def test_wrong_password(cli, users):
    code, err = failure(cli, "pub", "orders", "x", "-s", users.url, "--user", "admin", "--password", "wrong-pw-123")
    assert code == 4
    assert err == (
        f"natsctl: error: authentication failed at {users.url}: the server rejected the credentials; "
        "check --user/--password, --token, --nkey or --creds\n"
    )


def test_wrong_password_in_url_is_redacted(cli, users):
    code, err = failure(cli, "pub", "orders", "x", "-s", f"nats://admin:wrong-pw-123@127.0.0.1:{users.port}")
    assert code == 4
    assert err.startswith(f"natsctl: error: authentication failed at nats://admin:***@127.0.0.1:{users.port}: ")
    assert "wrong-pw-123" not in err


def test_no_credentials(cli, users):
    code, err = failure(cli, "pub", "orders", "x", "-s", users.url)
    assert code == 4
    assert err == (
        f"natsctl: error: authentication failed at {users.url}: the server requires credentials and none were "
        "given; pass --user/--password, --token, --nkey or --creds, or use a context that has them\n"
    )


def test_wrong_token(cli, token_server):
    code, err = failure(cli, "sub", "tickets", "--all", "--count", "1", "-s", token_server.url, "--token", "nope-token")
    assert code == 4
    assert err.startswith(f"natsctl: error: authentication failed at {token_server.url}: the server rejected")


def test_unknown_nkey(cli, users, tmp_path):
    seed = h.write(tmp_path / "other.nk", h.new_nkey().seed)
    code, err = failure(cli, "pub", "orders", "x", "-s", users.url, "--nkey", str(seed))
    assert code == 4, err
    assert err.startswith(f"natsctl: error: authentication failed at {users.url}: the server rejected")


def test_expired_user_jwt(cli, jwt_server, operator, tmp_path):
    expired_at = int(time.time()) - 60
    creds = h.write(tmp_path / "old.creds", operator.user_creds("old", expires=expired_at))
    code, err = failure(cli, "pub", "orders", "x", "-s", jwt_server.url, "--creds", str(creds))
    assert code == 4
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expired_at))
    assert err == (
        f"natsctl: error: authentication failed at {jwt_server.url}: the user JWT in the creds file {creds} "
        f"expired at {stamp}\n"
    )


def test_creds_from_another_operator(cli, jwt_server, tmp_path):
    creds = h.write(tmp_path / "stranger.creds", h.make_operator().user_creds("stranger"))
    code, err = failure(cli, "pub", "orders", "x", "-s", jwt_server.url, "--creds", str(creds))
    assert code == 4
    assert err.startswith(f"natsctl: error: authentication failed at {jwt_server.url}: the server rejected")


# --- unreadable or malformed credential files: exit 2, the file named, its content never shown -----


def test_missing_nkey_file(cli, users, tmp_path):
    code, err = failure(cli, "pub", "orders", "x", "-s", users.url, "--nkey", str(tmp_path / "none.nk"))
    assert (code, err) == (
        2,
        f"natsctl: error: cannot read the nkey seed file {tmp_path / 'none.nk'}: no such file or directory\n",
    )


def test_malformed_nkey_file(cli, users, tmp_path):
    path = h.write(tmp_path / "bad.nk", "SUnot-a-real-seed-" + h.PASSWORD)
    code, err = failure(cli, "pub", "orders", "x", "-s", users.url, "--nkey", str(path))
    assert (code, err) == (2, f"natsctl: error: the nkey seed file {path} holds no valid nkey seed\n")


def test_malformed_creds_files(cli, jwt_server, operator, tmp_path):
    no_jwt = h.write(tmp_path / "nojwt.creds", "just a password: " + h.PASSWORD)
    code, err = failure(cli, "pub", "orders", "x", "-s", jwt_server.url, "--creds", str(no_jwt))
    assert (code, err) == (2, f"natsctl: error: the creds file {no_jwt} holds no NATS user JWT block\n")
    good = operator.user_creds("u")
    bad_seed = h.write(
        tmp_path / "badseed.creds", good.replace(good.split("SEED-----\n")[1].split("\n")[0], "SUAbroken")
    )
    code, err = failure(cli, "pub", "orders", "x", "-s", jwt_server.url, "--creds", str(bad_seed))
    assert (code, err) == (2, f"natsctl: error: the creds file {bad_seed} holds no valid user nkey seed block\n")
    missing = tmp_path / "missing.creds"
    code, err = failure(cli, "pub", "orders", "x", "-s", jwt_server.url, "--creds", str(missing))
    assert (code, err) == (2, f"natsctl: error: cannot read the creds file {missing}: no such file or directory\n")


# --- authorization: exit 5 -------------------------------------------------------------------------


def attempt(settings_fields: dict, subject: str) -> NatsctlError:
    with pytest.raises(NatsctlError) as caught:
        h.round_trip(merge({"timeout": 2, **settings_fields}), subject=subject)
    return caught.value


def test_publish_not_permitted(users):
    error = attempt(
        {"servers": users.url, "user": "alice", "password": h.BOB_PASSWORD, "inbox_prefix": "_ALICE"}, "secret.plans"
    )
    assert int(error.exit_code) == 5
    assert error.line() == 'authorization violation: this user is not permitted to publish to "secret.plans"'


def test_subscribe_not_permitted(users):
    error = attempt(
        {"servers": users.url, "user": "alice", "password": h.BOB_PASSWORD, "inbox_prefix": "_ALICE"}, "hidden.x"
    )
    assert int(error.exit_code) == 5
    assert error.line() == 'authorization violation: this user is not permitted to subscribe to "hidden.x"'


def test_inbox_prefix_lets_a_user_denied_inbox_subscriptions_make_requests(users):
    """alice may not subscribe to _INBOX.>, so request/reply works only with her own inbox prefix."""
    import asyncio

    import nats.errors

    from natsctl.transport.connect import close_quietly, connect_nats, raise_permission_error

    async def ask(alice) -> bytes:
        # Under a loaded full run the server once answered "no responders" right after the responder's
        # SUB was flushed; that says nothing about permissions, so it is asked again (a denied inbox
        # shows as a timeout and a permissions error, never as "no responders").
        for _ in range(4):
            try:
                return (await alice.request("svc.echo", b"ping", timeout=1)).data
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.2)
        return (await alice.request("svc.echo", b"ping", timeout=1)).data

    async def request(prefix: str | None) -> bytes:
        admin = await connect_nats(merge({"servers": users.url, "user": "admin", "password": h.PASSWORD}))
        alice = await connect_nats(
            merge({"servers": users.url, "user": "alice", "password": h.BOB_PASSWORD, "inbox_prefix": prefix})
        )
        try:

            async def echo(msg) -> None:
                await msg.respond(b"pong:" + msg.data)

            await admin.subscribe("svc.echo", cb=echo)
            await admin.flush()
            try:
                return await ask(alice)
            except Exception:
                await alice.flush(timeout=1)  # the server's -ERR for the inbox subscription may trail
                raise_permission_error(alice)
                raise
        finally:
            await close_quietly(alice)
            await close_quietly(admin)

    assert asyncio.run(request("_ALICE")) == b"pong:ping"
    with pytest.raises(NatsctlError) as caught:
        asyncio.run(request(None))
    assert caught.value.line().startswith(
        'authorization violation: this user is not permitted to subscribe to "_inbox.'
    )


def test_cli_publish_not_permitted(cli, users):
    assert cli.run("pub", "secret", "x", "-s", users.url, "--user", "admin", "--password", h.PASSWORD).returncode == 0
    code, err = failure(
        cli, "pub", "secret", "x", "-s", users.url, "--user", "carol", "--password", h.BOB_PASSWORD, "--timeout", "2"
    )
    assert code == 5
    assert err == 'natsctl: error: authorization violation: this user is not permitted to publish to "secret"\n'


def test_cli_publish_not_permitted_to_a_channel_it_creates(cli, users):
    """carol may create streams but not publish to secret.*: the stream is made, the message refused."""
    code, err = failure(
        cli,
        "pub",
        "secret.new",
        "x",
        "-s",
        users.url,
        "--user",
        "carol",
        "--password",
        h.BOB_PASSWORD,
        "--timeout",
        "3",
    )
    assert code == 5
    assert err == 'natsctl: error: authorization violation: this user is not permitted to publish to "secret.new"\n'
