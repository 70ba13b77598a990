"""Every monitoring fault through the CLI: one line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import socket
import time

import pytest
import trustme

from tests.helpers import RecordedServer, as_json, failed, fixtures_dir, ok, send
from tests.servers import NatsServer, free_port

CONNECTION, USAGE, TLS, NOT_FOUND, SERVER, TIMEOUT = 3, 2, 6, 7, 8, 9


@pytest.fixture(scope="module")
def plain():
    """A nats-server without JetStream (also the target of the http/https and base-path mistakes)."""
    server = NatsServer(name="mon-plain", jetstream=False).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    base = tmp_path_factory.mktemp("monitor-tls")
    files = {name: base / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    return files


@pytest.fixture(scope="module")
def https_server(tls_files):
    config = f'tls {{ cert_file: "{tls_files["cert"]}", key_file: "{tls_files["key"]}" }}'
    server = NatsServer(name="mon-https", jetstream=False, config=config, monitor_scheme="https").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def faulty():
    """A real HTTP server whose endpoints misbehave on purpose."""

    def slow(request, path, query):
        time.sleep(3)
        send(request, 200, b'{"status":"ok"}')

    def cut_with_length(request, path, query):
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", "5000")
        request.end_headers()
        request.wfile.write(b'{"server_id": "NAB", "connections": [')
        request.wfile.flush()
        request.close_connection = True

    def cut_without_length(request, path, query):
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(b'{"server_id": "NAB", "version": "2.15.1", "conn')
        request.close_connection = True

    def html(request, path, query):
        send(
            request,
            200,
            (fixtures_dir("monitoring", "nats-2.15.1") / "extra" / "root.txt").read_bytes(),
            "text/html; charset=utf-8",
        )

    servers = {
        name: RecordedServer({"/streaming/serverz": handler, "/varz": handler, "/healthz": handler})
        for name, handler in [
            ("slow", slow),
            ("cut", cut_with_length),
            ("truncated", cut_without_length),
            ("html", html),
        ]
    }
    try:
        yield {name: s.url for name, s in servers.items()}
    finally:
        for server in servers.values():
            server.close()


def test_connection_refused(cli):
    url = f"http://127.0.0.1:{free_port()}"
    line = failed(cli.run("server", "-m", url), CONNECTION)
    assert line == (
        f"natsctl: error: cannot reach the monitoring port {url}: connection refused; "
        "is monitoring enabled (nats-server -m 8222)? point --monitor at it"
    )


def test_next_monitor_url_when_the_first_is_refused(cli, plain):
    urls = f"http://127.0.0.1:{free_port()},{plain.monitor_url}"
    assert as_json(cli.run("server", "--json", "-m", urls))["server_name"] == "mon-plain"


def test_client_port_by_mistake(cli, plain):
    url = f"http://127.0.0.1:{plain.port}"
    line = failed(cli.run("server", "-m", url), CONNECTION)
    assert line.startswith(f"natsctl: error: {url} does not speak HTTP (")
    assert line.endswith("is it the NATS client port (4222) instead of the monitoring port (8222)?")


def test_socket_that_never_answers(cli):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepted by the kernel, never answered
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        # a hang is caught by the subprocess timeout, not by timing the run
        line = failed(cli.run("server", "-m", url, "--timeout", "0.5", timeout=30), TIMEOUT)
    finally:
        listener.close()
    assert (
        line
        == f"natsctl: error: no answer from {url} within 0.5s; is it the monitoring port? raise --timeout if the server is busy"
    )


def test_slow_answer(cli, faulty):
    line = failed(cli.run("health", "-m", faulty["slow"], "--timeout", "0.5"), TIMEOUT)
    assert line.startswith(f"natsctl: error: no answer from {faulty['slow']} within 0.5s")


def test_body_cut_mid_way(cli, faulty):
    line = failed(cli.run("server", "-m", faulty["cut"]), CONNECTION)
    assert line == f"natsctl: error: the answer of {faulty['cut']} was cut off: the connection closed mid-body"


def test_truncated_json(cli, faulty):
    line = failed(cli.run("server", "-m", faulty["truncated"]), SERVER)
    assert (
        line
        == f"natsctl: error: the answer of {faulty['truncated']}/streaming/serverz was cut off after 47 bytes (invalid JSON)"
    )


def test_not_json(cli, faulty):
    line = failed(cli.run("server", "-m", faulty["html"]), SERVER)
    assert line == (
        f"natsctl: error: {faulty['html']}/streaming/serverz did not answer JSON "
        "(it starts with '<html lang=\"en\">'): not a NATS monitoring endpoint?"
    )


def test_plain_text_error_bodies(cli, plain):
    # an unknown --sort never reaches the server (tests/test_monitor_output.py); a known one it refuses does
    line = failed(cli.run("clients", "--sort", "stop", "-m", plain.monitor_url), SERVER)
    assert (
        line == f"natsctl: error: {plain.monitor_url}/connz answered 400: sort by stop only valid on closed connections"
    )


def test_wrong_base_path(cli, plain):
    line = failed(cli.run("server", "-m", plain.monitor_url + "/nats"), NOT_FOUND)
    assert line == (
        f"natsctl: error: {plain.monitor_url}/nats/varz answered 404 (404 page not found): no such monitoring "
        "endpoint there; wrong http_base_path in the --monitor URL?"
    )


def test_base_path_prefix(cli):
    """A server configured with http_base_path answers under it, and only there."""
    server = NatsServer(name="mon-base", jetstream=False, config='http_base_path: "/nats"').start()
    try:
        assert as_json(cli.run("server", "--json", "-m", server.monitor_url + "/nats/"))["server_name"] == "mon-base"
        line = failed(cli.run("health", "-m", server.monitor_url), NOT_FOUND)
        assert line.startswith(f"natsctl: error: {server.monitor_url}/varz answered 404 (404 page not found)")
    finally:
        server.cleanup()


def test_streaming_command_against_plain_nats_server(cli, plain):
    line = failed(cli.run("channels", "--cluster-id", "test-cluster", "-m", plain.monitor_url), NOT_FOUND)
    assert line == (
        f"natsctl: error: {plain.monitor_url} is a plain nats-server, not NATS Streaming (/streaming/serverz "
        "answered 404); drop --cluster-id / NATS_CLUSTER_ID to inspect it as JetStream"
    )


def test_jetstream_disabled(cli, plain):
    line = failed(cli.run("channels", "-m", plain.monitor_url), SERVER)
    assert line == (
        f"natsctl: error: JetStream is not enabled on the server at {plain.monitor_url}: it has no streams or "
        "consumers; start nats-server with -js (or a jetstream {} block)"
    )
    data = as_json(cli.run("server", "--json", "-m", plain.monitor_url))
    assert (data["kind"], data["jetstream"], data["server_name"]) == ("nats", None, "mon-plain")
    assert as_json(cli.run("subs", "--json", "-m", plain.monitor_url)) == []  # no consumers, no client subs


def test_http_against_https_port(cli, https_server):
    url = f"http://127.0.0.1:{https_server.monitor_port}"
    line = failed(cli.run("server", "-m", url), TLS)
    assert (
        line
        == f"natsctl: error: {url}/streaming/serverz is an https monitoring port: use https:// (and --monitor-ca FILE if its certificate is private)"
    )


def test_untrusted_certificate(cli, https_server):
    line = failed(cli.run("server", "-m", https_server.monitor_url), TLS)
    assert line.startswith(f"natsctl: error: the certificate of {https_server.monitor_url} is not trusted (")
    assert line.endswith("); pass its CA with --monitor-ca FILE")


def test_https_with_ca(cli, https_server, tls_files):
    data = as_json(cli.run("server", "--json", "-m", https_server.monitor_url, "--monitor-ca", str(tls_files["ca"])))
    assert data["server_name"] == "mon-https"
    # the NATS CA (--tlsca / NATS_CA) is used when no monitoring CA is given
    health = as_json(cli.run("health", "--json", "-m", https_server.monitor_url, env={"NATS_CA": str(tls_files["ca"])}))
    assert health["healthy"] is True
    line = failed(cli.run("server", "-m", https_server.monitor_url, "--monitor-ca", "/nonexistent/ca.pem"), USAGE)
    assert line == "natsctl: error: CA file /nonexistent/ca.pem does not exist (--monitor-ca / --tlsca)"


def test_https_against_http_port(cli, plain):
    url = f"https://127.0.0.1:{plain.monitor_port}"
    line = failed(cli.run("server", "-m", url), TLS)
    assert line.startswith(f"natsctl: error: TLS handshake with {url} failed (")
    assert line.endswith("); is it a plain http monitoring port? use http://")


def test_bad_monitor_url(cli_in_process):
    line = failed(cli_in_process.run("server", "-m", "ftp://127.0.0.1:8222"), USAGE)
    assert line.startswith("natsctl: error: bad monitoring URL ftp://127.0.0.1:8222")


def test_bad_flags(cli, plain):
    assert failed(cli.run("clients", "--state", "gone", "-m", plain.monitor_url), USAGE) == (
        "natsctl: error: --state must be open, closed or all, not 'gone'"
    )
    assert failed(cli.run("subs", "--sort", "age", "-m", plain.monitor_url), USAGE) == (
        "natsctl: error: --sort must be one of channel, lag, unacked, name, not 'age'"
    )
    assert failed(cli.run("server", "-o", "xml", "-m", plain.monitor_url), USAGE) == (
        "natsctl: error: unknown output format 'xml': use one of table, json, yaml, csv"
    )
    assert ok(cli.run("health", "-m", plain.monitor_url)).splitlines()[0].split() == ["Status", "ok"]
