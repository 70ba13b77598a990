"""Helpers shared by the test modules (no tests here; test modules never import each other).

- the recorded fixtures in tests/fixtures/ (a missing folder is an error, never a skip);
- checks of a finished natsctl run: ``ok``, ``failed``, ``error_line``, ``as_json``;
- parsing natsctl's plain tables and record views: ``table_rows``, ``record``;
- reading a running natsctl's output: ``read_lines_until``;
- natsctl run in-process for help and usage checks: ``InProcessCLI`` (the ``cli_in_process`` fixture);
- a background nats-py client loop (``ClientLoop``) and a loopback HTTP server of recorded
  responses (``RecordedServer``, ``serve_file``, ``send``).

Servers live in tests/servers.py, reliability tools in tests/reliability_helpers.py, credentials and
certificates in tests/security_helpers.py, the NATS Streaming double in tests/stan_double/.
Only the standard library is imported at module level.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

# --- recorded fixtures --------------------------------------------------------------------------------

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixtures_dir(*parts: str) -> Path:
    """A folder of recordings under tests/fixtures/, e.g. ``fixtures_dir("monitoring", "nats-2.15.1")``.

    Missing or empty is an error (also at collection time), never a skip or an empty parametrization.
    """
    path = FIXTURES.joinpath(*parts)
    if not path.is_dir() or not any(path.iterdir()):
        raise FileNotFoundError(f"recorded fixtures missing: {path} (they are part of the repository: tests/fixtures/)")
    return path


# --- checks of a finished run ---------------------------------------------------------------------------


def ok(result: Any) -> str:
    """stdout of a run that must have succeeded cleanly."""
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr.decode()}"
    assert b"Traceback" not in result.stderr
    return result.stdout.decode()


def failed(result: Any, code: int) -> str:
    """The one error line of a run that must have failed with ``code``."""
    err = result.stderr.decode()
    assert result.returncode == code, f"exit {result.returncode} (want {code}): {err}"
    assert "Traceback" not in err
    return error_line(err, stdout=result.stdout)


def error_line(err: str, stdout: bytes | None = b"") -> str:
    """The single ``natsctl: error:`` line; other stderr lines may only be warnings."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("natsctl: error: ")]
    assert len(errors) == 1, err
    assert all(line.startswith("natsctl: warning: ") for line in lines if line not in errors), err
    if stdout is not None:
        assert stdout == b""
    return errors[0]


def as_json(result: Any) -> Any:
    return json.loads(ok(result))


# --- natsctl's plain output -------------------------------------------------------------------------------


def table_rows(text: str) -> list[dict[str, str]]:
    """Rows of a plain (non-terminal) natsctl table: columns are separated by two spaces or more."""
    lines = [line for line in text.splitlines() if line.strip()]
    header_index = next(
        i for i, line in enumerate(lines) if re.fullmatch(r"[A-Z][A-Z ]*", re.split(r"\s{2,}", line.strip())[0])
    )
    headers = re.split(r"\s{2,}", lines[header_index].strip())
    rows = []
    for line in lines[header_index + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(headers), f"cannot split {line!r} into {headers}"
        rows.append(dict(zip(headers, cells, strict=False)))
    return rows


def record(text: str) -> dict[str, str]:
    """FIELD  VALUE lines of a natsctl record view."""
    pairs = {}
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.strip().partition("  ")
            pairs[name] = value.strip()
    return pairs


def read_lines_until(proc: subprocess.Popen, count: int, timeout: float = 30) -> list[bytes]:
    """Up to ``count`` lines of a running process's stdout (fewer at its end or after ``timeout``)."""
    lines = []
    deadline = time.monotonic() + timeout
    while len(lines) < count and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    return lines


# --- natsctl in-process -------------------------------------------------------------------------------------


class InProcessCLI:
    """natsctl's entry point (``natsctl.cli.main.main``) run inside the test process, its stdin, stdout,
    stderr and environment swapped by Typer's ``CliRunner``; the result looks like the ``cli`` fixture's
    (``returncode``, ``stdout`` and ``stderr`` bytes).

    For help, usage and usage-error checks, where starting a Python process is most of the cost. Anything
    about signals, pipes, real exit behaviour or start-up imports belongs to the ``cli`` fixture.
    Help is laid out for 80 columns (CliRunner's width), not the terminal's.
    """

    def run(
        self,
        *args: str,
        input: bytes | str | None = None,
        env: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess:
        from typer.testing import CliRunner

        from natsctl.cli.main import main

        # NATSCTL_DEBUG is set by --debug; listing it here makes CliRunner restore it afterwards.
        with CliRunner().isolation(input=input, env={"NATSCTL_DEBUG": None, **(env or {})}) as (out, err, _):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = int(exc.code or 0)
                else:
                    sys.stderr.write(f"{exc.code}\n")
                    code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr = out.getvalue(), err.getvalue()
        return subprocess.CompletedProcess(["natsctl", *args], code, stdout, stderr)


# --- nats-py clients kept connected in the background --------------------------------------------------


class ClientLoop:
    """nats-py clients living in a background event loop, so they stay connected while the test
    runs natsctl as a separate process."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


# --- a real HTTP server serving recorded responses --------------------------------------------------

Handler = Callable[[BaseHTTPRequestHandler, str, dict[str, list[str]]], None]


class RecordedServer:
    """A loopback HTTP server; ``routes`` maps a path to a handler(request, path, query)."""

    def __init__(self, routes: dict[str, Handler]) -> None:
        outer = self

        class Request(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                handler = outer.routes.get(parts.path)
                if handler is None:
                    send(self, 404, b"404 page not found\n", "text/plain; charset=utf-8")
                else:
                    handler(self, parts.path, parse_qs(parts.query))

            def log_message(self, *args: Any) -> None:
                pass

        self.routes = routes
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Request)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str = "application/json") -> None:
    request.send_response(status)
    request.send_header("Content-Type", content_type)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


def serve_file(path: Path, list_key: str | None = None) -> Handler:
    """Serve a recorded body; for paged endpoints an offset past the first page gets an empty page,
    as the real server answers."""

    def handler(request: BaseHTTPRequestHandler, _path: str, query: dict[str, list[str]]) -> None:
        body = path.read_bytes()
        if list_key and int(query.get("offset", ["0"])[0]) > 0:
            data = json.loads(body)
            data["offset"], data[list_key], data["count"] = int(query["offset"][0]), [], 0
            body = json.dumps(data).encode()
        send(request, 200, body)

    return handler


# --- NATS Streaming, as a plain client ------------------------------------------------------------------


async def stan_publish(client: Any, messages: list[tuple[str, bytes]], timeout: float = 60) -> None:
    """Publish ``(channel, payload)`` pairs as any NATS Streaming client does (PubMsg, each awaited by its
    PubAck), through natsctl's ``StanClient`` and nats-py's public ``publish``; raises on a refused one."""
    done = asyncio.Event()
    left = [len(messages)]
    errors: list[str] = []

    def confirmed(_token: int, error: str) -> None:
        if error:
            errors.append(error)
        left[0] -= 1
        if not left[0]:
            done.set()

    client.await_acks(confirmed)
    encoders: dict[str, Any] = {}
    for token, (channel, payload) in enumerate(messages):
        encoder = encoders.get(channel) or encoders.setdefault(channel, client.pub_encoder(channel))
        guid = encoder.prefix + b"%d" % token
        encoder.acks[guid] = token
        await client.nc.publish(
            encoder.subject.decode(), encoder.payload(guid, payload), reply=(encoder.reply + guid).decode()
        )
    if messages:
        await asyncio.wait_for(done.wait(), timeout)
    assert errors == [], errors
