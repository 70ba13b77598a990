"""Security fixtures for the tests: certificates, nkeys, JWTs and creds, and nats-server config text.

Everything is generated per test session with PyPI packages (trustme, cryptography, nkeys), so no key
material is committed and nothing depends on the nsc tool.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nkeys
import trustme

# Secrets the secret-hygiene tests look for in every output; distinctive so a hit is never by chance.
PASSWORD = "pw-Zq8tLx3vRk"
TOKEN = "tok-Vb7nQp2sWy"
BOB_PASSWORD = "pw-Bob5Gh1Jk"


def write(path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    path.chmod(mode)
    return path


# --- TLS -------------------------------------------------------------------------------------------


@dataclass
class PKI:
    ca: Path  # the CA clients should trust
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    expired_cert: Path  # server certificate, signed by the CA, expired yesterday
    expired_key: Path
    wrong_host_cert: Path  # server certificate, signed by the CA, for another host name
    wrong_host_key: Path
    untrusted_cert: Path  # server certificate signed by a CA nobody trusts
    untrusted_key: Path
    other_ca: Path


def make_pki(folder: Path) -> PKI:
    folder.mkdir(parents=True, exist_ok=True)
    ca, other = trustme.CA(), trustme.CA()
    yesterday = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    leaves = {
        "server": ca.issue_cert("127.0.0.1", "localhost"),
        "client": ca.issue_cert("natsctl-client@example.com", common_name="natsctl-client"),
        "expired": ca.issue_cert(
            "127.0.0.1", "localhost", not_before=yesterday - dt.timedelta(days=30), not_after=yesterday
        ),
        "wrong": ca.issue_cert("nats.example.com"),
        "untrusted": other.issue_cert("127.0.0.1", "localhost"),
    }
    paths: dict[str, Path] = {}
    for name, leaf in leaves.items():
        paths[f"{name}_cert"] = write(folder / f"{name}.pem", b"".join(b.bytes() for b in leaf.cert_chain_pems), 0o644)
        paths[f"{name}_key"] = write(folder / f"{name}-key.pem", leaf.private_key_pem.bytes())
    return PKI(
        ca=write(folder / "ca.pem", ca.cert_pem.bytes(), 0o644),
        other_ca=write(folder / "other-ca.pem", other.cert_pem.bytes(), 0o644),
        server_cert=paths["server_cert"],
        server_key=paths["server_key"],
        client_cert=paths["client_cert"],
        client_key=paths["client_key"],
        expired_cert=paths["expired_cert"],
        expired_key=paths["expired_key"],
        wrong_host_cert=paths["wrong_cert"],
        wrong_host_key=paths["wrong_key"],
        untrusted_cert=paths["untrusted_cert"],
        untrusted_key=paths["untrusted_key"],
    )


def tls_block(cert: Path, key: Path, ca: Path | None = None, verify: bool = False, first: bool = False) -> str:
    lines = [f'cert_file: "{cert}"', f'key_file: "{key}"', "timeout: 2"]
    if ca:
        lines.append(f'ca_file: "{ca}"')
    if verify:
        lines.append("verify: true")
    if first:
        lines.append("handshake_first: true")
    return "tls {\n  " + "\n  ".join(lines) + "\n}\n"


# --- users, permissions, nkeys ---------------------------------------------------------------------


def users_block(*users: str) -> str:
    return "authorization {\n  users = [\n    " + "\n    ".join(users) + "\n  ]\n}\n"


def password_user(name: str, password: str, permissions: str = "") -> str:
    perms = f", permissions: {permissions}" if permissions else ""
    return f'{{user: "{name}", password: "{password}"{perms}}}'


def token_block(token: str) -> str:
    return f'authorization {{ token: "{token}" }}\n'


@dataclass
class NKey:
    seed: str
    public: str


def new_nkey(prefix: int = nkeys.PREFIX_BYTE_USER) -> NKey:
    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(bytearray(seed))
    return NKey(seed=seed.decode(), public=pair.public_key.decode())


# --- decentralized auth: operator / account / user JWTs --------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims: dict, issuer: NKey) -> str:
    """A NATS JWT: base64url(header).base64url(claims).base64url(ed25519 signature by the issuer nkey)."""
    claims = {"iat": int(time.time()), "iss": issuer.public, **claims}
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    header = _b64url(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = f"{header}.{_b64url(json.dumps(claims).encode())}"
    signature = nkeys.from_seed(bytearray(issuer.seed.encode())).sign(body.encode())
    return f"{body}.{_b64url(signature)}"


def creds_text(user_jwt: str, seed: str) -> str:
    return (
        "-----BEGIN NATS USER JWT-----\n"
        f"{user_jwt}\n"
        "------END NATS USER JWT------\n\n"
        "************************* IMPORTANT *************************\n"
        "NKEY Seed printed below can be used to sign and prove identity.\n\n"
        "-----BEGIN USER NKEY SEED-----\n"
        f"{seed}\n"
        "------END USER NKEY SEED------\n"
    )


@dataclass
class Operator:
    config: str  # nats-server config text
    account: NKey
    operator: NKey

    def user_creds(self, name: str, expires: int | None = None, pub_deny: list[str] | None = None) -> str:
        user = new_nkey()
        nats_claims: dict = {"type": "user", "version": 2, "subs": -1, "data": -1, "payload": -1, "pub": {}, "sub": {}}
        if pub_deny:
            nats_claims["pub"] = {"deny": pub_deny}
        claims: dict = {"sub": user.public, "name": name, "nats": nats_claims}
        if expires is not None:
            claims["exp"] = expires
        return creds_text(sign_jwt(claims, self.account), user.seed)


def make_operator() -> Operator:
    operator, account = new_nkey(nkeys.PREFIX_BYTE_OPERATOR), new_nkey(nkeys.PREFIX_BYTE_ACCOUNT)
    operator_jwt = sign_jwt(
        {"sub": operator.public, "name": "natsctl-test-op", "nats": {"type": "operator", "version": 2}}, operator
    )
    limits = {
        "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True, "conn": -1,
        "leaf": -1, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1,
    }  # fmt: skip
    account_jwt = sign_jwt(
        {"sub": account.public, "name": "APP", "nats": {"type": "account", "version": 2, "limits": limits}}, operator
    )
    # JetStream in operator mode needs a system account for its internal subscriptions.
    system = new_nkey(nkeys.PREFIX_BYTE_ACCOUNT)
    system_jwt = sign_jwt({"sub": system.public, "name": "SYS", "nats": {"type": "account", "version": 2}}, operator)
    config = (
        f'operator: "{operator_jwt}"\n'
        f"system_account: {system.public}\n"
        "resolver: MEMORY\n"
        f'resolver_preload: {{\n  {account.public}: "{account_jwt}"\n  {system.public}: "{system_jwt}"\n}}\n'
    )
    return Operator(config=config, account=account, operator=operator)


# --- a tiny round trip through natsctl's transport -------------------------------------------------


def round_trip(settings, subject: str = "security.check", purpose: str = "test") -> bytes:
    """Connect with natsctl's transport, publish one message to ourselves, return what came back."""
    from natsctl.transport.connect import close_quietly, connect_nats, raise_permission_error

    async def main() -> bytes:
        client = await connect_nats(settings, purpose=purpose, notify=lambda _m: None)
        try:
            sub = await client.subscribe(subject)
            await client.publish(subject, b"hello")
            await client.flush(timeout=settings.timeout)
            try:
                msg = await sub.next_msg(timeout=1)
            except Exception:
                raise_permission_error(client)
                raise
            raise_permission_error(client)
            return msg.data
        finally:
            await close_quietly(client)

    return asyncio.run(main())


# --- the CLI against a secured server ----------------------------------------------------------------


def pub_sub(cli, channel: str, *conn: str, env: dict | None = None) -> None:
    """Publish one event and read it back with the CLI; both must succeed with no stderr noise."""
    data = f"event-{time.monotonic_ns()}"
    published = cli.run("pub", channel, data, *conn, env=env)
    assert published.returncode == 0, published.stderr.decode()
    got = cli.run("sub", channel, "--last", "--count", "1", "--json", *conn, env=env)
    assert got.returncode == 0, got.stderr.decode()
    assert json.loads(got.stdout)["data"] == data
    assert published.stderr == got.stderr == b""


def failure(cli, *args: str, env: dict | None = None) -> tuple[int, str]:
    """(exit code, stderr) of a run that must print nothing on stdout."""
    result = cli.run(*args, env=env)
    assert result.stdout == b""
    return result.returncode, result.stderr.decode()
