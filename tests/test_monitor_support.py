"""Helpers for the monitoring tests (no tests here): table parsing, a background nats-py client
loop, the shared fixtures directory and a small real HTTP server for recorded responses."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "monitoring"


def fixtures_dir(name: str) -> Path:
    """The recorded responses; CI puts shared/ beside the repository. Missing is a failure, not a skip."""
    path = FIXTURES / name
    assert path.is_dir(), f"monitoring fixtures missing: {path} (shared/ must sit beside the repository)"
    return path


def table_rows(text: str) -> list[dict[str, str]]:
    """Rows of a plain (non-terminal) natsctl table: columns are separated by two spaces or more."""
    lines = [line for line in text.splitlines() if line.strip()]
    header_index = next(i for i, line in enumerate(lines) if re.fullmatch(r"[A-Z][A-Z ]*", re.split(r"\s{2,}", line.strip())[0]))
    headers = re.split(r"\s{2,}", lines[header_index].strip())
    rows = []
    for line in lines[header_index + 1 :]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(headers), f"cannot split {line!r} into {headers}"
        rows.append(dict(zip(headers, cells)))
    return rows


def record(text: str) -> dict[str, str]:
    """FIELD  VALUE lines of a natsctl record view."""
    pairs = {}
    for line in text.splitlines():
        if line.strip():
            name, _, value = line.strip().partition("  ")
            pairs[name] = value.strip()
    return pairs


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
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
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
