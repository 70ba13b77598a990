"""Faster paths through nats-py for bulk traffic, shared by both backends (nats-py internals, guarded).

nats-py is pinned (<2.17). The hot paths use a few of its internals, each guarded by
tests/test_jetstream_internals.py: its parser hands every MSG to ``Client._process_msg(sid, subject,
reply, payload, headers)`` (all bytes; ``headers`` is the raw NATS/1.0 block, parsed here so that a
repeated key keeps every value), ``Subscription._id`` is the sid, ``Client._send_command(bytes)`` +
``Client._flush_pending()`` queue protocol bytes and wake the flusher (what ``Client.publish`` does
after building its PUB line; natsctl builds its own PUB and HPUB lines), and ``Client._ps`` is the
parser: ``parse(data)`` appends to its bytearray ``buf`` and works while ``state`` is
AWAITING_CONTROL_LINE between frames (``reset()`` replaces ``buf``).
Together they save a Msg object, a queue hop, a task switch and subject checks per message.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.protocol.parser import AWAITING_CONTROL_LINE
from nats.protocol.parser import MAX_CONTROL_LINE_SIZE as MAX_CONTROL_LINE

# (subject, reply, payload, headers): headers map each key to its values in order (see parse_header_block).
RawHandler = Callable[[bytes, bytes, bytes, "dict[str, list[str]] | None"], None]


def route_raw(nc: Client, sub: Any, handler: RawHandler) -> None:
    """Hand the MSGs of ``sub`` to ``handler(subject, reply, payload, headers)`` straight from the parser.

    The handler runs synchronously, in arrival order, and must not raise.
    """
    routes: dict[int, RawHandler] | None = getattr(nc, "_natsctl_routes", None)
    if routes is None:
        routes = {}
        original = nc._process_msg
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)

        def process_msg(sid: int, subject: bytes, reply: bytes, payload: bytes, headers: bytes | None) -> Any:
            # The parser awaits what this returns: a finished future costs less than a coroutine.
            handler = routes.get(sid)
            if handler is None:
                return original(sid, subject, reply, payload, headers)
            # nats-py's own header parsing keeps one value per key: ours keeps them all.
            handler(subject, reply, payload, parse_header_block(headers) if headers else None)
            return done

        nc._process_msg = process_msg  # type: ignore[method-assign]
        nc._natsctl_routes = routes  # type: ignore[attr-defined]
        _parse_routed_first(nc, routes)
    routes[sub._id] = handler


def _parse_routed_first(nc: Client, routes: dict[int, RawHandler]) -> None:
    """Deliver the routed MSGs at the head of each read before nats-py's parser sees the rest.

    nats-py's ``Parser.parse(data)`` appends to ``Parser.buf`` and, in state AWAITING_CONTROL_LINE,
    matches a regex, fills a dict and awaits ``_process_msg`` per message; a replay spends a third of
    its time there. Whole, header-less MSG frames of routed subscriptions are handed over here in one
    loop; anything else (another subscription, HMSG, PING, a frame cut by the read) stops the loop and
    nats-py parses it, in order.
    """
    parser = nc._ps
    parse = parser.parse

    async def parse_routed_first(data: bytes = b"") -> None:
        buf = parser.buf  # replaced by Parser.reset() on reconnect: looked up every time
        buf.extend(data)
        if parser.state == AWAITING_CONTROL_LINE:
            done, wait = deliver_routed(buf, routes)
            if done:
                del buf[:done]
            if wait:
                return  # a routed frame is cut by the read: the next read completes it
        await parse(b"")

    parser.parse = parse_routed_first  # type: ignore[method-assign]


def deliver_routed(buf: bytearray, routes: dict[int, RawHandler]) -> tuple[int, bool]:
    """Hand the leading complete ``MSG`` frames of routed sids to their handlers.

    Returns the bytes consumed, and whether what follows is the start of a routed frame still being
    received (then nothing is left for nats-py's parser to do yet).
    """
    pos = 0
    size = len(buf)
    try:
        while buf.startswith(b"MSG ", pos):
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return pos, size - pos < MAX_CONTROL_LINE
            args = bytes(buf[pos + 4 : eol]).split(b" ")
            if len(args) == 4:
                subject, sid, reply, length = args
            elif len(args) == 3:
                (subject, sid, length), reply = args, b""
            else:
                break
            handler = routes.get(int(sid))
            if handler is None:
                break
            start = eol + 2
            end = start + int(length)
            if end + 2 > size:
                return pos, True
            handler(subject, reply, bytes(buf[start:end]), None)
            pos = end + 2
    except ValueError:
        pass  # not a well-formed frame: nats-py's parser reports it
    return pos, False


def unroute(nc: Client, sub: Any) -> None:
    routes = getattr(nc, "_natsctl_routes", None)
    if routes is not None:
        routes.pop(sub._id, None)


async def send_raw(nc: Client, commands: bytes) -> None:
    """Queue ready-made protocol bytes (PUB lines); ``wake_flusher`` then sends them."""
    await nc._send_command(commands)


async def wake_flusher(nc: Client) -> None:
    await nc._flush_pending()


def spare_the_collector() -> None:
    """Move what exists now (modules, the connection) out of the cyclic collector's sight.

    A bulk run allocates a few objects per message; each full collection would otherwise walk every
    long-lived object again (~5% of a replay's CPU). They were going to live until exit anyway.
    """
    gc.freeze()


def pub_line(subject: bytes, reply: bytes, data: bytes) -> bytes:
    return b"PUB %s %s %d\r\n%s\r\n" % (subject, reply, len(data), data)


def hpub_line(subject: bytes, reply: bytes, header_block: bytes, data: bytes) -> bytes:
    """An HPUB: the server's max_payload applies to ``len(header_block) + len(data)``."""
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject, reply, len(header_block), len(header_block) + len(data), header_block, data
    )


_HEADER_LINE = b"NATS/1.0"
_NO_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " "})  # as nats-py: a value cannot end the block early


def header_block(headers: dict[str, list[str]] | None, msg_id: str | None = None) -> bytes:
    """The ``NATS/1.0`` header block for ``headers`` (+ ``Nats-Msg-Id``), b"" when there is none.

    One line per value, so a repeated key keeps every value in order (nats-py's publish takes one value
    per key). Names are checked where they are read (``-H``, envelopes); values are trimmed as nats-py
    does and receivers do. ``msg_id`` replaces any ``Nats-Msg-Id`` among ``headers``.
    """
    if not headers and not msg_id:
        return b""
    lines = [_HEADER_LINE + b"\r\n"]
    append = lines.append
    for key, values in (headers or {}).items():
        if msg_id and key == "Nats-Msg-Id":
            continue
        name = key.strip().encode("ascii")
        for value in values:
            append(b"%s: %s\r\n" % (name, _header_value(value)))
    if msg_id:
        append(b"Nats-Msg-Id: %s\r\n" % _header_value(msg_id))
    append(b"\r\n")
    return b"".join(lines)


def _header_value(value: str) -> bytes:
    return value.strip().translate(_NO_LINE_BREAKS).encode("utf-8", errors="surrogateescape")


def parse_header_block(raw: bytes) -> dict[str, list[str]] | None:
    """The headers of an HMSG, every value of a repeated key kept, in order; None when there are none.

    An inline status (``NATS/1.0 404 No Messages``) comes as ``Status`` and ``Description``, as nats-py
    gives them. Like nats-py: names with whitespace or non-ASCII bytes and lines without a colon are
    skipped, values are trimmed and decoded as UTF-8 with U+FFFD for bad bytes. Never raises.
    """
    lines = raw.split(b"\r\n")
    headers: dict[str, list[str]] = {}
    first = lines[0]
    if first.startswith(_HEADER_LINE) and len(first) > len(_HEADER_LINE):
        status, _, description = first[len(_HEADER_LINE) :].strip().partition(b" ")
        if status.isdigit():
            headers["Status"] = [status.decode("ascii")]
        description = description.strip()
        if description:
            headers["Description"] = [description.decode("utf-8", "replace")]
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # the empty lines that end the block, or a malformed line
        name = name.strip()
        if not name or not name.isascii() or any(c in name for c in b" \t\x0b\x0c"):
            continue
        headers.setdefault(name.decode("ascii"), []).append(value.strip().decode("utf-8", "replace"))
    return headers or None
