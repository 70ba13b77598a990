"""Where published messages come from: an argument, stdin, a file, lines, envelopes, templates.

Line readers are lazy (memory stays flat for any file size). A pipe is read in a thread with
``os.read`` so that a slow producer (``tail -f | natsctl pub --lines``) never blocks the event loop
that confirms what was already sent.
"""

from __future__ import annotations

import asyncio
import os
import re
import stat
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from .envelope import outgoing_from_envelope
from .errors import UsageError
from .model import OutgoingMessage
from .names import validate_header_name, validate_header_value

CHUNK = 1 << 16

_TEMPLATE = re.compile(r"\{\{\s*\.?(\w+)\s*\}\}")
TEMPLATE_NAMES = ("Count", "ID", "Time", "TimeStamp", "Unix", "UnixNano")


def render_template(text: str, count: int, now: datetime | None = None) -> str:
    """Expand ``{{Count}}``, ``{{ID}}``, ``{{Time}}`` (also natscli's ``{{.Count}}``, ``{{.TimeStamp}}``...)."""
    if "{{" not in text:
        return text
    moment = now or datetime.now(UTC)

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "Count":
            return str(count)
        if name == "ID":
            return uuid.uuid4().hex
        if name in ("Time", "TimeStamp"):
            return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")
        if name == "Unix":
            return str(int(moment.timestamp()))
        if name == "UnixNano":
            return str(int(moment.timestamp() * 1e9))
        raise UsageError(
            f"unknown template {match.group(0)}; known: " + ", ".join(f"{{{{{n}}}}}" for n in TEMPLATE_NAMES)
        )

    return _TEMPLATE.sub(value, text)


def parse_header(text: str) -> tuple[str, str]:
    key, sep, value = text.partition(":")
    key = key.strip()
    if not sep or not key:
        raise UsageError(f"invalid header {text!r}; use -H KEY:VALUE")
    validate_header_name(key)
    return key, validate_header_value(key, value.strip())


def parse_headers(items: list[str]) -> dict[str, list[str]] | None:
    headers: dict[str, list[str]] = {}
    for item in items:
        key, value = parse_header(item)
        headers.setdefault(key, []).append(value)
    return headers or None


def templated_messages(data: bytes, headers: dict[str, list[str]] | None, count: int) -> Iterator[OutgoingMessage]:
    """``count`` messages from one DATA with its templates expanded per message."""
    text = data.decode("utf-8", errors="surrogateescape")
    has_template = "{{" in text or any("{{" in v for vs in (headers or {}).values() for v in vs)
    for n in range(1, count + 1):
        if has_template:
            body = render_template(text, n).encode("utf-8", errors="surrogateescape")
            hdrs = {k: [render_template(v, n) for v in vs] for k, vs in headers.items()} if headers else None
        else:
            body, hdrs = data, headers
        yield OutgoingMessage(data=body, headers=hdrs, source=f"message {n}")


def open_input(path: str) -> BinaryIO:
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    except FileNotFoundError:
        raise UsageError(f"cannot read --file {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"cannot read --file {path}: it is a directory") from None
    except PermissionError:
        raise UsageError(f"cannot read --file {path}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"cannot read --file {path}: {exc.strerror}") from None
    if stat.S_ISDIR(os.fstat(handle.fileno()).st_mode):
        handle.close()
        raise UsageError(f"cannot read --file {path}: it is a directory")
    return handle


def is_pipe_or_tty(handle: BinaryIO) -> bool:
    try:
        mode = os.fstat(handle.fileno()).st_mode
    except (OSError, ValueError):
        return False
    return not stat.S_ISREG(mode)


LineMaker = Callable[[bytes, int], OutgoingMessage | None]


def line_maker(
    *,
    envelope: bool,
    headers: dict[str, list[str]] | None,
    skip_bad: bool,
    on_skip: Callable[[str], None],
    keep_subject: bool = False,
) -> LineMaker:
    """Turn line ``number`` into a message; blank lines are skipped, bad envelopes reported."""

    def plain(line: bytes, number: int) -> OutgoingMessage | None:
        if not line.strip():
            return None
        return OutgoingMessage(data=line, headers=headers, source=f"line {number}")

    def parsed(line: bytes, number: int) -> OutgoingMessage | None:
        if not line.strip():
            return None
        try:
            message = outgoing_from_envelope(line, f"line {number}", keep_subject=keep_subject)
        except UsageError as exc:
            if not skip_bad:
                raise UsageError(exc.message, hint="fix the line or pass --skip-bad-lines") from None
            on_skip(exc.message)
            return None
        if headers:
            message.headers = {**(message.headers or {}), **headers}
        return message

    return parsed if envelope else plain


def _strip_eol(line: bytes) -> bytes:
    if line.endswith(b"\n"):
        line = line[:-1]
        if line.endswith(b"\r"):
            line = line[:-1]
    return line


def file_lines(handle: BinaryIO, make: LineMaker) -> Iterator[OutgoingMessage]:
    """Messages from a regular file, one per line, read lazily."""
    for number, line in enumerate(handle, start=1):
        message = make(_strip_eol(line), number)
        if message is not None:
            yield message


async def pipe_lines(handle: BinaryIO, make: LineMaker) -> AsyncIterator[OutgoingMessage]:
    """Messages from a pipe or terminal, read in a thread so the event loop keeps confirming."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[list[bytes] | BaseException | None] = asyncio.Queue(maxsize=64)
    fd = handle.fileno()

    def reader() -> None:
        # The pieces of a line not ended yet: kept as they came and joined once, at its newline, so a
        # long line costs linear time (re-joining a leftover with each chunk made it quadratic).
        rest: list[bytes] = []
        try:
            while True:
                chunk = os.read(fd, CHUNK)
                if not chunk:
                    break
                if b"\n" not in chunk:
                    rest.append(chunk)
                    continue
                lines = chunk.split(b"\n")
                if rest:
                    rest.append(lines[0])
                    lines[0] = b"".join(rest)
                tail = lines.pop()
                rest = [tail] if tail else []
                asyncio.run_coroutine_threadsafe(queue.put(lines), loop).result()
            if rest:
                asyncio.run_coroutine_threadsafe(queue.put([b"".join(rest)]), loop).result()
            asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop to report
            try:
                asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()
            except RuntimeError:
                pass  # the loop is gone: the command already ended

    threading.Thread(target=reader, name="natsctl-stdin", daemon=True).start()
    number = 0
    while True:
        item = await queue.get()
        if item is None:
            return
        if isinstance(item, BaseException):
            raise UsageError(f"cannot read the input: {item}")
        for line in item:
            number += 1
            message = make(line[:-1] if line.endswith(b"\r") else line, number)
            if message is not None:
                yield message
