"""TLS against real nats-server processes with certificates made by the test (trustme), through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests import security_helpers as h
from tests.security_helpers import failure, pub_sub
from tests.servers import NatsServer


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> h.PKI:
    return h.make_pki(tmp_path_factory.mktemp("pki"))


def tls_server(cert, key, **tls) -> Iterator[NatsServer]:
    srv = NatsServer(config=h.tls_block(cert, key, **tls)).start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def tls(pki) -> Iterator[NatsServer]:
    """TLS required for every client, server certificate for 127.0.0.1 and localhost."""
    yield from tls_server(pki.server_cert, pki.server_key)


@pytest.fixture(scope="module")
def mtls(pki) -> Iterator[NatsServer]:
    yield from tls_server(pki.server_cert, pki.server_key, ca=pki.ca, verify=True)


def ca_flags(pki: h.PKI) -> tuple[str, ...]:
    return ("--tlsca", str(pki.ca), "--timeout", "3")


def test_tls_with_ca(cli, tls, pki):
    pub_sub(cli, "orders", "-s", tls.url, *ca_flags(pki))
    pub_sub(cli, "orders", "-s", f"tls://localhost:{tls.port}", *ca_flags(pki))


def test_tls_ca_from_env_and_context(cli, tls, pki, isolated_home):
    pub_sub(cli, "orders", env={"NATS_URL": f"tls://127.0.0.1:{tls.port}", "NATS_CA": str(pki.ca)})
    folder = isolated_home / ".config" / "nats" / "context"
    folder.mkdir(parents=True)
    h.write(folder / "secure.json", json.dumps({"url": f"tls://127.0.0.1:{tls.port}", "ca": str(pki.ca)}))
    pub_sub(cli, "orders", "--context", "secure")


def test_client_certificate(cli, mtls, pki):
    pub_sub(
        cli,
        "orders",
        "-s",
        mtls.url,
        *ca_flags(pki),
        "--tlscert",
        str(pki.client_cert),
        "--tlskey",
        str(pki.client_key),
    )


def test_tls_first(cli, pki):
    for srv in tls_server(pki.server_cert, pki.server_key, first=True):
        pub_sub(cli, "orders", "-s", srv.url, *ca_flags(pki), "--tlsfirst")


def test_tls_required_but_not_configured(cli, tls):
    code, err = failure(cli, "pub", "orders", "x", "-s", tls.url)
    assert code == 6
    assert err == (
        f"natsctl: error: the server at {tls.url} requires TLS; "
        "pass its CA with --tlsca (or a context's ca), or use a tls:// URL\n"
    )


def test_untrusted_certificate(cli, tls, pki):
    code, err = failure(cli, "pub", "orders", "x", "-s", tls.url, "--tlsca", str(pki.other_ca))
    assert code == 6
    assert err == (
        f"natsctl: error: TLS: the server certificate of {tls.url} is not trusted "
        "(unable to get local issuer certificate); pass its CA with --tlsca\n"
    )


def test_server_signed_by_an_unknown_ca(cli, pki):
    for srv in tls_server(pki.untrusted_cert, pki.untrusted_key):
        code, err = failure(cli, "sub", "orders", "--all", "--count", "1", "-s", srv.url, *ca_flags(pki))
        assert code == 6
        assert err.startswith(f"natsctl: error: TLS: the server certificate of {srv.url} is not trusted (")


def test_hostname_mismatch(cli, pki):
    for srv in tls_server(pki.wrong_host_cert, pki.wrong_host_key):
        code, err = failure(cli, "pub", "orders", "x", "-s", srv.url, *ca_flags(pki))
        assert code == 6
        assert err == (
            f"natsctl: error: TLS: the server certificate of {srv.url} is not valid for that host name "
            "(IP address mismatch, certificate is not valid for '127.0.0.1'.); connect with a name the certificate lists\n"
        )


def test_expired_certificate(cli, pki):
    for srv in tls_server(pki.expired_cert, pki.expired_key):
        code, err = failure(cli, "pub", "orders", "x", "-s", srv.url, *ca_flags(pki))
        assert (code, err) == (6, f"natsctl: error: TLS: the server certificate of {srv.url} has expired\n")


def test_client_certificate_required(cli, mtls, pki):
    code, err = failure(cli, "pub", "orders", "x", "-s", mtls.url, *ca_flags(pki))
    assert code == 6
    assert (
        err == f"natsctl: error: the server at {mtls.url} requires a client certificate; pass --tlscert and --tlskey\n"
    )


def test_client_certificate_not_trusted_by_the_server(cli, mtls, pki):
    code, err = failure(
        cli, "pub", "orders", "x", "-s", mtls.url, *ca_flags(pki),
        "--tlscert", str(pki.untrusted_cert), "--tlskey", str(pki.untrusted_key),
    )  # fmt: skip
    assert code == 6
    # The alert says why; when the server's reset beats its alert to the client (a busy machine), the
    # hang-up is all there is to say.
    assert err in (
        f"natsctl: error: the server at {mtls.url} rejected the client certificate (tlsv1 alert unknown ca)\n",
        f"natsctl: error: the server at {mtls.url} rejected the client certificate (it closed the connection)\n",
    )


def test_unreadable_tls_files(cli, tls, pki, tmp_path):
    missing = tmp_path / "missing-key.pem"
    code, err = failure(
        cli,
        "pub",
        "orders",
        "x",
        "-s",
        tls.url,
        *ca_flags(pki),
        "--tlscert",
        str(pki.client_cert),
        "--tlskey",
        str(missing),
    )
    assert code == 6
    assert (
        err
        == f"natsctl: error: cannot load the TLS files {pki.ca}, {pki.client_cert}, {missing}: no such file or directory\n"
    )


def test_tls_asked_for_but_server_is_plaintext(cli, server, pki):
    code, err = failure(cli, "pub", "orders", "x", "-s", f"tls://127.0.0.1:{server.port}")
    assert code == 6
    assert err == (
        f"natsctl: error: the server at tls://127.0.0.1:{server.port} does not offer TLS, and TLS was asked for; "
        "use a nats:// URL without TLS options, or enable TLS on the server\n"
    )


def test_tls_insecure_connects_and_warns(cli, pki):
    for srv in tls_server(pki.untrusted_cert, pki.untrusted_key):
        result = cli.run("pub", "orders", "x", "-s", srv.url, "--tls-insecure")
        assert result.returncode == 0, result.stderr
        assert result.stderr.decode() == (
            "natsctl: warning: TLS certificate verification is off (--tls-insecure): the server is not authenticated\n"
        )


def test_monitoring_over_https_gets_the_ca(cli, pki, isolated_home):
    """The https monitoring port is verified against Settings.monitor_ca: the flag, or the context's ca."""
    srv = NatsServer(config=h.tls_block(pki.server_cert, pki.server_key), monitor_scheme="https").start()
    try:
        folder = isolated_home / ".config" / "nats" / "context"
        folder.mkdir(parents=True)
        h.write(folder / "secure.json", json.dumps({"url": srv.url, "ca": str(pki.ca)}))
        doc = json.loads(
            cli.run("config", "show", "--json", "--context", "secure", "--monitor", srv.monitor_url).stdout
        )
        assert doc["effective"]["monitor_ca"] == {"value": str(pki.ca), "source": "tls_ca (context secure)"}
        with_flag = cli.run("health", "-m", srv.monitor_url, "--monitor-ca", str(pki.ca))
        assert with_flag.returncode == 0, with_flag.stderr
        from_context = cli.run("health", "--context", "secure", "-m", srv.monitor_url)
        assert from_context.returncode == 0, from_context.stderr
        without = cli.run("health", "-m", srv.monitor_url)
        assert without.returncode == 6
        assert "not trusted" in without.stderr.decode()
    finally:
        srv.cleanup()
