"""Issue 7, test 6: hostile input, property-based. Whatever hypothesis throws at natsctl (channel
names, headers, payload bytes, durations, sequences, JSON Lines with bad lines, random or truncated
monitoring bodies), it answers with a documented exit code and at most one-line errors: never a
traceback, never the last-resort "unexpected" error. In-process (natsctl.cli.main.main) against real
servers, so a hundred examples take seconds, not minutes."""

from __future__ import annotations

import base64
import io
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from natsctl.cli.main import main
from natsctl.core.errors import ExitCode, UsageError
from natsctl.core.timeparse import parse_duration
from tests.helpers import fixtures_dir
from tests.reliability_helpers import figure
from tests.servers import NatsServer

DOCUMENTED = {int(code) for code in ExitCode}
FIXTURES = fixtures_dir("monitoring", "nats-2.15.1")
RELAXED = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
TRIED: dict[str, int] = {}


@pytest.fixture(scope="module")
def bus():
    srv = NatsServer(name="hostile").start()
    try:
        yield srv
    finally:
        srv.cleanup()
        figure("hostile-inputs", **TRIED, total=sum(TRIED.values()))


def natsctl(capsys, *args: str, stdin: bytes | None = None) -> tuple[int, bytes, str]:
    """Run natsctl in-process; (exit status, stdout bytes, stderr), checked for the promises."""
    capsys.readouterr()
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    assert code in DOCUMENTED, (args, code, err)
    assert "Traceback" not in err and "unexpected" not in err, (args, err)
    for line in err.splitlines():
        assert line.startswith("natsctl: "), (args, err)
    return code, out.encode("utf-8", "surrogateescape"), err


def tried(kind: str) -> None:
    TRIED[kind] = TRIED.get(kind, 0) + 1


@RELAXED
@given(name=st.text(min_size=0, max_size=40))
@example(name="")
@example(name="a..b")
@example(name="orders.>")
@example(name="tab\there")
@example(name="ticket:created")
def test_channel_names(capsys, bus, name):
    tried("channel names")
    code, _, err = natsctl(capsys, "pub", "--server", bus.url, "--no-create", "--", name, "x")
    assert code in (ExitCode.USAGE, ExitCode.NOT_FOUND, ExitCode.OK), err
    if code == ExitCode.USAGE:
        assert "channel name" in err or "invalid" in err or "empty" in err


@RELAXED
@given(key=st.text(max_size=20), value=st.text(max_size=40))
@example(key="Nats-Msg-Id", value="")
@example(key="bad key", value="v")
@example(key="k", value="line\nbreak")
def test_header_keys_and_values(capsys, bus, key, value):
    tried("headers")
    code, _, err = natsctl(capsys, "pub", "hostile.headers", "x", "-H", f"{key}:{value}", "--server", bus.url)
    assert code in (ExitCode.OK, ExitCode.USAGE), err


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.binary(max_size=2048))
@example(payload=b"")
@example(payload=b"\xff\xfe\x00invalid utf-8 \xc3\x28")
@example(payload=b"\x00" * 1024)
def test_payload_bytes_round_trip(capsys, bus, payload):
    tried("payloads")
    code, out, err = natsctl(capsys, "pub", "hostile.bytes", "--json", "--server", bus.url, stdin=payload)
    assert code == ExitCode.OK, err
    seq = json.loads(out)["last_sequence"]
    code, out, err = natsctl(
        capsys, "replay", "hostile.bytes", "--seq", str(seq), "--to-seq", str(seq), "--json", "--server", bus.url
    )
    envelope = json.loads(out)
    data = base64.b64decode(envelope["data"]) if envelope["encoding"] == "base64" else envelope["data"].encode()
    assert data == payload


@pytest.mark.parametrize("extra", [0, 1, 4096])
def test_payload_at_and_over_max_payload(capsys, bus, extra):
    tried("payloads")
    size = 1024 * 1024 + extra  # nats-server's default max_payload is 1 MB
    code, _, err = natsctl(capsys, "pub", "hostile.big", "--server", bus.url, stdin=b"z" * size)
    if extra == 0:
        assert code == ExitCode.OK, err
    else:
        assert code == ExitCode.UNCONFIRMED
        assert f"payload of {size} bytes is over the server's max_payload of 1048576 bytes" in err


@settings(max_examples=200, deadline=None)
@given(
    text=st.one_of(
        st.text(max_size=12), st.from_regex(r"\A-?[0-9.]{0,6}(ns|us|ms|s|m|h|d|x)?([0-9]{0,3}(ms|s|m|h))?\Z")
    )
)
@example(text="nan")
@example(text="-1s")
@example(text="1e400")
@example(text="inf")
def test_durations(text):
    tried("durations")
    try:
        seconds = parse_duration(text, what="--max-age")
    except UsageError as exc:
        assert "\n" not in exc.line()
        return
    assert seconds >= 0 and seconds == seconds and seconds != float("inf")


@RELAXED
@given(text=st.text(max_size=12))
@example(text="1h30m")
@example(text="-5m")
def test_durations_through_the_cli(capsys, bus, text):
    tried("durations")
    code, _, err = natsctl(
        capsys, "sub", "hostile.durations", "--ack-wait", text, "--count", "1", "--exit-at-end", "--server", bus.url
    )
    assert code in (ExitCode.OK, ExitCode.USAGE), err


@RELAXED
@given(seq=st.one_of(st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, 2**63 - 1, 2**64])))
def test_sequences(capsys, bus, seq):
    tried("sequences")
    natsctl(capsys, "pub", "hostile.seq", "s", "--server", bus.url)
    code, out, err = natsctl(capsys, "replay", "hostile.seq", "--seq", str(seq), "--json", "--server", bus.url)
    assert code in (ExitCode.OK, ExitCode.USAGE), err
    if code == ExitCode.OK:
        assert all(json.loads(line)["seq"] >= seq for line in out.splitlines())


GOOD = st.builds(lambda data: json.dumps({"data": data}), st.text(max_size=30))
BAD = st.one_of(
    st.text(max_size=30).filter(lambda t: t.strip() and not _is_json(t)),
    st.sampled_from(['{"data": 5}', "[1, 2]", '{"data": "x", "encoding": "base64"}', '"just a string"', "null", "42"]),
)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@RELAXED
@given(lines=st.lists(st.tuples(st.booleans(), st.data()), min_size=1, max_size=12), data=st.data())
def test_envelope_lines_with_bad_lines(capsys, bus, tmp_path_factory, lines, data):
    tried("JSON Lines files")
    texts, bad = [], []
    for number, (good, _) in enumerate(lines, start=1):
        text = (
            data.draw(GOOD if good else BAD)
            .replace("\n", " ")
            .replace("\r", " ")
            .replace("\x0b", " ")
            .replace("\x0c", " ")
        )
        text = (
            text.replace("\x1c", " ")
            .replace("\x1d", " ")
            .replace("\x1e", " ")
            .replace("\x85", " ")
            .replace("\u2028", " ")
            .replace("\u2029", " ")
        )
        texts.append(text)
        if not good:
            bad.append(number)
    path = tmp_path_factory.mktemp("jsonl") / "in.jsonl"
    path.write_text("".join(t + "\n" for t in texts))
    code, _, err = natsctl(capsys, "pub", "hostile.jsonl", "--file", str(path), "--envelope", "--server", bus.url)
    if bad:
        assert code == ExitCode.USAGE and f"line {bad[0]}" in err, err
    else:
        assert code == ExitCode.OK, err
    code, out, err = natsctl(
        capsys,
        "pub",
        "hostile.jsonl",
        "--file",
        str(path),
        "--envelope",
        "--skip-bad-lines",
        "--json",
        "--server",
        bus.url,
    )
    good_count = len(texts) - len(bad)
    if good_count:
        assert code == ExitCode.OK, err
        assert json.loads(out)["confirmed"] == good_count
    for number in bad:
        assert f"line {number}" in err


class Served:
    """A local HTTP server whose every answer is ``body`` (hypothesis changes it per example)."""

    def __init__(self) -> None:
        served = self
        self.body, self.status, self.length = b"{}", 200, None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(served.status)
                self.send_header("Content-Type", "application/json")
                self.send_header(
                    "Content-Length", str(served.length if served.length is not None else len(served.body))
                )
                self.end_headers()
                try:
                    self.wfile.write(served.body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def served():
    server = Served()
    try:
        yield server
    finally:
        server.close()


FIXTURE_BODIES = [p.read_bytes() for p in sorted(FIXTURES.glob("*.json"))]
MONITOR_COMMANDS = [
    ["server"],
    ["health"],
    ["channels"],
    ["subs"],
    ["clients"],
    ["routes"],
    ["cluster"],
    ["server", "--json"],
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.builds(lambda b, cut: b[:cut], st.sampled_from(FIXTURE_BODIES), st.integers(min_value=0, max_value=4000)),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=8),
            lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3),
            max_leaves=12,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    status=st.sampled_from([200, 200, 200, 404, 500, 503]),
    lie=st.booleans(),
    command=st.sampled_from(MONITOR_COMMANDS),
)
def test_random_and_truncated_monitoring_bodies(capsys, served, body, status, lie, command):
    tried("monitoring bodies")
    served.body, served.status = body, status
    served.length = len(body) + 50 if lie else None  # claims more than it sends: closes mid-body
    natsctl(capsys, *command, "-m", served.url, "--timeout", "1")


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=40),
    drops=st.sets(st.integers(min_value=1, max_value=40), max_size=5),
    dupes=st.sets(st.integers(min_value=1, max_value=40), max_size=5),
)
def test_verify_classifies_losses_and_duplicates(n, drops, dupes):
    """verify's core: every dropped line is missing, every re-stored line duplicated, nothing else flagged."""
    from natsctl.core.record import Entry, check, digest

    tried("verify records")
    entries = [Entry(line, line, digest(f"p{line}".encode())) for line in range(1, n + 1)]
    stored = {line: digest(f"p{line}".encode()) for line in range(1, n + 1) if line not in drops}
    extra_seq = n + 1
    for line in sorted(d for d in dupes if d <= n):
        stored[extra_seq] = digest(f"p{line}".encode())
        extra_seq += 1
    report = check("c", entries, stored)
    assert report.missing == sorted(d for d in drops if d <= n)
    # a line lost at its sequence but stored again elsewhere is missing (its confirmation is void), not duplicated
    doubled = sorted(d for d in dupes if d <= n and d not in drops)
    assert report.duplicated == doubled
    assert report.extra_copies == len(doubled)
    assert report.ok == (not report.missing and not report.duplicated)
    assert not report.out_of_order and not report.changed


def test_verify_flags_a_line_stored_before_an_earlier_one():
    from natsctl.core.record import Entry, check, digest

    entries = [Entry(1, 1, digest(b"a")), Entry(2, 3, digest(b"b")), Entry(3, 2, digest(b"c"))]
    report = check("c", entries, {1: digest(b"a"), 2: digest(b"c"), 3: digest(b"b")})
    assert report.out_of_order == [3] and not report.ok
    changed = check("c", entries, {1: digest(b"a"), 2: digest(b"c"), 3: digest(b"zzz")})
    assert changed.changed == [2]
