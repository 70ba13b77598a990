"""Issue 10: monitoring within limits. A password in a --monitor URL is never shown (every output
format, every error); listings, answer sizes and request times are bounded whatever the server
claims; Ctrl-C and SIGTERM end an in-flight request at once; answers JSON allows but no reader can use
(nesting, NaN, Infinity) are one-line errors. Misbehaving endpoints are served by the test itself on
loopback (``RecordedServer`` from tests/helpers.py, as tests/test_monitor_faults.py does)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import signal
import subprocess
import threading
import time

import pytest
import yaml

from tests.helpers import RecordedServer, as_json, error_line, failed, fixtures_dir, ok, record, send
from tests.security_helpers import PASSWORD
from tests.servers import free_port

CONNECTION, NOT_FOUND, SERVER, TIMEOUT, UNHEALTHY = 3, 7, 8, 9, 11
VARZ = (fixtures_dir("monitoring", "nats-2.15.1") / "varz.json").read_bytes()
NOT_STREAMING = {"/streaming/serverz": lambda r, p, q: send(r, 404, b"404 page not found\n", "text/plain")}


def with_password(url: str, secret: str = PASSWORD) -> tuple[str, str]:
    """``url`` with user alice and ``secret`` in it, and the same URL as natsctl must show it."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://alice:{secret}@{rest}", f"{scheme}://alice:***@{rest}"


def no_secret(result: subprocess.CompletedProcess, secret: str = PASSWORD) -> None:
    for name, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
        assert secret.encode() not in stream, f"the password is in {name}: {stream.decode()}"
    assert b"Traceback" not in result.stderr


@pytest.fixture
def endpoints():
    """Loopback HTTP servers built from route tables; handlers that hold a request wait on
    ``release``, which teardown sets, so no handler thread outlives the test."""
    release = threading.Event()
    made: list[RecordedServer] = []

    def make(routes: dict) -> RecordedServer:
        made.append(RecordedServer({**NOT_STREAMING, **routes}))
        return made[-1]

    make.release = release
    yield make
    release.set()
    for server in made:
        server.close()


# --- A: a password in a monitoring URL ---------------------------------------------------------------


@pytest.mark.parametrize("command", ["server", "health"])
@pytest.mark.parametrize("fmt", ["table", "json", "yaml", "csv"])
def test_password_in_monitor_url_is_masked_in_every_format(cli, server, command, fmt):
    url, shown = with_password(server.monitor_url)
    result = cli.run(command, "-o", fmt, "-m", url)
    no_secret(result)
    out = ok(result)
    if fmt == "table":
        assert record(out)["Monitor"] == shown
    elif fmt == "json":
        assert json.loads(out)["monitor_url"] == shown
    elif fmt == "yaml":
        assert yaml.safe_load(out)["monitor_url"] == shown
    else:
        assert next(csv.DictReader(io.StringIO(out)))["monitor_url"] == shown


def test_password_in_monitor_urls_of_a_cluster_view(cli, server):
    down = f"http://127.0.0.1:{free_port()}"
    urls = [with_password(server.monitor_url), with_password(down, "pw-Other7Kd9")]
    argv = ["-m", ",".join(url for url, _ in urls)]
    for args in (["cluster", "--json", *argv], ["cluster", *argv]):
        result = cli.run(*args)
        no_secret(result)
        no_secret(result, "pw-Other7Kd9")
        assert result.returncode == 0, result.stderr
    report = as_json(cli.run("cluster", "--json", *argv))
    assert [n["url"] for n in report["nodes"]] == [shown for _, shown in urls]
    assert report["nodes"][1]["error"].startswith(f"cannot reach the monitoring port {urls[1][1]}: connection refused")
    unreachable = [w for w in report["warnings"] if w["check"] == "unreachable"]
    assert [w["subject"] for w in unreachable] == [urls[1][1]]
    table = ok(cli.run("cluster", *argv))
    assert urls[0][1] in table and urls[1][1] in table


def test_password_in_monitor_url_of_the_other_commands(cli, server):
    url, _ = with_password(server.monitor_url)
    assert ok(cli.run("pub", "orders", "one", "-s", server.url)).strip()
    for args in (
        ["clients"],
        ["channels"],
        ["channel", "orders"],
        ["subs"],
        ["routes"],
        ["server", "--json"],
        ["clients", "-o", "yaml"],
        ["channels", "-o", "csv"],
    ):
        result = cli.run(*args, "-m", url)
        no_secret(result)
        assert result.returncode == 0, result.stderr


def test_password_in_monitor_url_is_masked_in_errors(cli, server, endpoints):
    def unhealthy(request, path, query):
        send(request, 503, b'{"status": "unavailable", "error": "JetStream has not started"}')

    def html(request, path, query):
        send(request, 200, b"<html><body>login</body></html>", "text/html")

    sick = endpoints({"/varz": lambda r, p, q: send(r, 200, VARZ), "/healthz": unhealthy})
    page = endpoints({"/varz": html})
    refused = f"http://127.0.0.1:{free_port()}"
    cases = [
        (["health"], sick.url, UNHEALTHY, "{shown} is unhealthy: JetStream has not started"),
        (["server"], page.url, SERVER, "{shown}/varz did not answer JSON"),
        (["server"], refused, CONNECTION, "cannot reach the monitoring port {shown}: connection refused"),
        (["server"], server.monitor_url + "/nats", NOT_FOUND, "{shown}/varz answered 404"),
        (["channel", "nope"], server.monitor_url, NOT_FOUND, "no stream named 'nope' at {shown}"),
        (["clients", "--sort", "stop"], server.monitor_url, SERVER, "{shown}/connz answered 400"),
    ]
    for args, base, code, expected in cases:
        url, shown = with_password(base)
        result = cli.run(*args, "-m", url)
        no_secret(result)
        assert result.returncode == code, result.stderr
        line = error_line(result.stderr.decode(), stdout=None)  # health shows its table, then fails
        assert line.startswith("natsctl: error: " + expected.format(shown=shown)), line


def test_password_in_monitor_url_is_masked_when_it_times_out(cli, endpoints):
    held = threading.Event()

    def hang(request, path, query):
        held.set()
        endpoints.release.wait(60)

    url, shown = with_password(endpoints({"/streaming/serverz": hang}).url)
    result = cli.run("server", "-m", url, "--timeout", "0.5", timeout=30)
    no_secret(result)
    assert held.is_set()
    assert failed(result, TIMEOUT) == (
        f"natsctl: error: no answer from {shown} within 0.5s; is it the monitoring port? raise --timeout if the server is busy"
    )


# --- B: listings bounded whatever the server claims -------------------------------------------------


def connection(cid: int) -> dict:
    return {
        "cid": cid,
        "name": f"fake-{cid}",
        "ip": "127.0.0.1",
        "port": 40000 + cid % 20000,
        "lang": "go",
        "version": "1.0",
        "subscriptions": 0,
        "in_msgs": 0,
        "out_msgs": 0,
        "in_bytes": 0,
        "out_bytes": 0,
    }


def connz(pages: list, items) -> callable:
    """A /connz claiming 10^12 connections; ``items(offset, limit)`` makes each page's connections."""

    def handler(request, path, query):
        offset, limit = int(query.get("offset", ["0"])[0]), int(query.get("limit", ["1024"])[0])
        pages.append(offset)
        found = items(offset, limit)
        body = {
            "server_id": "NFAKE",
            "now": "2026-11-28T00:00:00Z",
            "num_connections": len(found),
            "total": 10**12,
            "offset": offset,
            "limit": limit,
            "connections": found,
        }
        send(request, 200, json.dumps(body).encode())

    return handler


def test_a_total_of_10_to_the_12_that_repeats_one_page_ends_at_once(cli, endpoints):
    """The server says 10^12 connections but every page is the same one: the second page adds nothing,
    so the listing stops there (it used to page forever, deaf to the first SIGTERM)."""
    pages: list[int] = []
    url = endpoints(
        {"/varz": lambda r, p, q: send(r, 200, VARZ), "/connz": connz(pages, lambda o, n: [connection(1)])}
    ).url
    result = cli.run("clients", "--json", "-m", url, timeout=60)
    assert result.returncode == 0, result.stderr
    assert [c["cid"] for c in json.loads(result.stdout)] == [1]
    assert pages == [0, 1]
    assert result.stderr.decode() == (
        f"natsctl: warning: listing of {url}/connz cut short at 1 connections (the server reports "
        "1,000,000,000,000): page 2 (offset 1) repeated only what was read already\n"
    )


def listing(url: str, **options):
    from natsctl.core.settings import merge
    from natsctl.monitor import api
    from natsctl.monitor.client import MonitorClient

    async def run():
        async with MonitorClient(merge({"monitor_urls": [url]})) as client:
            return await api.connections(client, **options), client.notes

    return asyncio.run(run())


def test_a_server_inventing_connections_without_end_is_read_up_to_the_item_limit(endpoints, monkeypatch):
    from natsctl.monitor import api

    monkeypatch.setattr(api, "MAX_ITEMS", 2_500)  # the real limit (100,000) works the same, only slower
    pages: list[int] = []
    url = endpoints({"/connz": connz(pages, lambda o, n: [connection(o + i + 1) for i in range(n)])}).url
    found, notes = listing(url, page_size=100)
    assert [c.cid for c in found] == list(range(1, 2_501))
    assert len(pages) == 2_500 // (100 - 16) + 1  # each page re-reads 16 of the one before
    assert notes == [
        (
            f"listing of {url}/connz cut short at 2,500 connections (the server reports 1,000,000,000,000): "
            "2,500 is natsctl's limit for one listing"
        )
    ]
    assert listing(url, page_size=100, limit=250)[1] == []  # --limit N below the limit: nothing was cut


def test_a_server_giving_one_new_connection_per_page_is_read_up_to_the_page_limit(endpoints, monkeypatch):
    from natsctl.monitor import api

    monkeypatch.setattr(api, "MAX_PAGES", 40)
    monkeypatch.setattr(api, "MAX_ITEMS", 1_000)  # so that 40 pages are enough to reach it
    pages: list[int] = []
    url = endpoints({"/connz": connz(pages, lambda o, n: [connection(o + 1)])}).url
    found, notes = listing(url)
    assert len(pages) == len(found) == 40
    assert notes == [
        (
            f"listing of {url}/connz cut short at 40 connections (the server reports 1,000,000,000,000): "
            "after 40 pages, natsctl's limit for one listing"
        )
    ]


# --- B: answer sizes --------------------------------------------------------------------------------


def test_an_answer_announcing_more_than_the_limit_is_refused_unread(cli, endpoints):
    def huge(request, path, query):
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(50 * 1024 * 1024))
        request.end_headers()
        try:
            for _ in range(50):
                request.wfile.write(b" " * (1024 * 1024))
        except OSError:
            pass  # natsctl hung up: what the test expects

    url = endpoints({"/varz": huge}).url
    line = failed(cli.run("server", "-m", url), SERVER)
    assert line == (
        f"natsctl: error: the answer of {url}/varz is too large (it announces 52,428,800 bytes): natsctl reads "
        "at most 32 MiB of one monitoring answer"
    )


def test_an_answer_growing_past_the_limit_is_cut_while_it_streams(cli, endpoints):
    """No Content-Length: the body ends when the server closes, so the limit is checked as it arrives."""
    sent: list[int] = [0]
    done = threading.Event()

    def endless(request, path, query):
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.end_headers()
        try:
            request.wfile.write(b'{"server_id": "NFAKE", "filler": "')
            for _ in range(200):  # 200 MiB if nobody hangs up
                request.wfile.write(b"x" * (1024 * 1024))
                sent[0] += 1024 * 1024
        except OSError:
            pass
        finally:
            done.set()

    url = endpoints({"/varz": endless}).url
    line = failed(cli.run("server", "-m", url), SERVER)
    assert line == (
        f"natsctl: error: the answer of {url}/varz is too large (more than 33,554,432 bytes arrived): natsctl "
        "reads at most 32 MiB of one monitoring answer"
    )
    assert done.wait(30)
    assert sent[0] < 100 * 1024 * 1024, sent  # natsctl stopped reading: the rest was never taken


def test_a_large_error_answer_still_gives_its_first_line(cli, endpoints):
    def refuse(request, path, query):
        send(request, 500, b"database on fire\n" + b"." * (10 * 1024 * 1024), "text/plain")

    url = endpoints({"/varz": refuse}).url
    assert failed(cli.run("server", "-m", url), SERVER) == f"natsctl: error: {url}/varz answered 500: database on fire"


# --- B: time -------------------------------------------------------------------------------------------


def test_a_trickled_answer_fails_within_the_timeout(cli, endpoints):
    """One byte every 0.1 s never trips httpx's per-read timeout; the request's own deadline must.
    The server notes when the request came and when natsctl hung up."""
    seen: dict[str, float] = {}

    def trickle(request, path, query):
        seen["came"] = time.monotonic()
        request.send_response(200)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", "100000")
        request.end_headers()
        request.wfile.write(b"{")
        try:
            while not endpoints.release.wait(0.1):
                request.wfile.write(b" ")
                request.wfile.flush()
        except OSError:
            seen["gone"] = time.monotonic()

    url = endpoints({"/streaming/serverz": trickle}).url
    line = failed(cli.run("server", "-m", url, "--timeout", "4", timeout=60), TIMEOUT)
    assert line.startswith(f"natsctl: error: no answer from {url} within 4s")
    for _ in range(100):  # the server notices the hang-up at its next byte
        if "gone" in seen:
            break
        endpoints.release.wait(0.1)
    # within the timeout, not twice it (the old bound, 8 s); the margin absorbs a busy machine
    assert seen["gone"] - seen["came"] < 6.0, seen


# --- B: Ctrl-C and SIGTERM during a request --------------------------------------------------------------


def hold(endpoints) -> tuple[str, threading.Event]:
    """An endpoint whose every request is held unanswered until teardown, and an event set when one came."""
    came = threading.Event()

    def held(request, path, query):
        came.set()
        endpoints.release.wait(120)

    return endpoints({"/streaming/serverz": held, "/varz": held}).url, came


@pytest.mark.parametrize(
    "args, sig, code",
    [
        (["server"], signal.SIGTERM, 143),
        (["server"], signal.SIGINT, 130),
        (["clients", "--json"], signal.SIGTERM, 143),
        (["health"], signal.SIGINT, 130),
        (["cluster"], signal.SIGTERM, 143),
        (["server", "--watch", "1"], signal.SIGTERM, 143),
        (["server", "--watch", "1"], signal.SIGINT, 0),  # Ctrl-C ends a watch normally
    ],
)
def test_a_signal_ends_a_request_in_flight_at_once(cli, endpoints, args, sig, code):
    url, came = hold(endpoints)
    proc = cli.popen(*args, "-m", url, "--timeout", "120")
    try:
        assert came.wait(30), "natsctl never sent its request"
        proc.send_signal(sig)
        # the request is held for far longer than this: only the signal can end natsctl here
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err.decode()
    assert (out, err) == (b"", b"")


# --- C: answers JSON allows that no reader can use ---------------------------------------------------------


@pytest.mark.parametrize(
    "body, problem",
    [
        (b'{"server_id": "NFAKE", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "is nested too deeply to read"),
        (b'{"server_id": "NFAKE", "connections": NaN}', "holds the number NaN, which natsctl cannot read"),
        (b'{"server_id": "NFAKE", "connections": Infinity}', "holds the number Infinity, which natsctl cannot read"),
        (b'{"server_id": "NFAKE", "mem": -Infinity}', "holds the number -Infinity, which natsctl cannot read"),
        (b'{"server_id": "NFAKE", "in_msgs": 1e999}', "holds the number 1e999, which natsctl cannot read"),
        (b'{"server_id": "NFAKE", "in_msgs": ' + b"9" * 5000 + b"}", "holds a number too long to read"),
    ],
)
def test_unreadable_json_is_a_bad_server_answer(cli, endpoints, body, problem):
    url = endpoints({"/varz": lambda r, p, q: send(r, 200, body)}).url
    for args in (["server"], ["server", "--json"], ["health"]):
        line = failed(cli.run(*args, "-m", url), SERVER)
        assert line == f"natsctl: error: the answer of {url}/varz {problem}: not a NATS monitoring answer?"


def test_unreadable_json_in_a_listing(cli, endpoints):
    pages: list[int] = []
    url = endpoints(
        {
            "/varz": lambda r, p, q: send(r, 200, VARZ),
            "/connz": lambda r, p, q: (pages.append(0), send(r, 200, b'{"total": NaN, "connections": []}')),
        }
    ).url
    line = failed(cli.run("clients", "-m", url), SERVER)
    assert line == (
        f"natsctl: error: the answer of {url}/connz holds the number NaN, which natsctl cannot read: not a NATS monitoring answer?"
    )
    assert pages == [0]
