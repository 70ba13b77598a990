"""The bulk paths of both backends, and the only module that touches nats-py internals.

Every function here takes the fast path when this client's nats-py is shaped as probed, and the public
path (natsctl/transport/public.py: nats-py's documented API only) otherwise. The choice is made once
per client (``choose``, called by connect_nats before connecting; lazily for any other client) and
said in one ``--debug`` line. ``NATSCTL_PUBLIC_PATH=1`` forces the public path.

The internals, as nats-py 2.16 has them (any other release takes the public path; guarded by
tests/test_jetstream_internals.py):

- its parser hands every MSG to ``Client._process_msg(sid, subject, reply, payload, headers)`` (all
  bytes; ``headers`` is the raw NATS/1.0 block, parsed here so that a repeated key keeps every value),
  called through the instance, so an instance attribute replaces it; ``Subscription._id`` is the sid;
- ``Client._ps`` is the parser: ``parse(data)`` appends to its bytearray ``buf`` and works while
  ``state`` is AWAITING_CONTROL_LINE between frames (``reset()`` replaces ``buf``);
- ``Client._send_command(cmd)`` + ``Client._flush_pending()`` queue protocol bytes and wake the
  flusher (what ``Client.publish`` does after building its PUB line; natsctl builds its own lines);
- ``Client._pending`` / ``Client._pending_data_size`` are what is buffered for the server (dropped
  after a lost connection, so a reconnect does not send a publish's unconfirmed tail);
- ``Client._server_info`` is the server's INFO (TLS and auth flags, for checks and diagnosis).

Together they save a Msg object, a queue hop, a task switch and subject checks per message. The
public path pays those (3-4x the client CPU per message in bench/run.py) and keeps one value per header
key; everything else behaves the same (tests/test_jetstream_internals.py, the public-path run in .ci/run).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
from collections.abc import Awaitable, Callable, Iterable
from itertools import repeat
from operator import itemgetter
from typing import Any

from natsctl.core import debug

from . import public
from .frames import header_block, hpub_line, parse_header_block, pub_line  # noqa: F401 - the bulk API in one place

# (subject, reply, payload, headers): headers map each key to its values in order (see parse_header_block).
RawHandler = Callable[[bytes, bytes, bytes, "dict[str, list[str]] | None"], None]
# (subjects, replies, payloads): one run of header-less messages, an entry per message (see route_raw).
RunHandler = Callable[[list[bytes], list[bytes], list[bytes]], None]

FAST_SERIES = "2.16."  # the nats-py release whose internals the fast path was written and checked against
PUBLIC_ENV = "NATSCTL_PUBLIC_PATH"
_STATE = "_natsctl_transport"  # natsctl's own attribute on a client: its _Transport


class _Transport:
    """The path one client takes, and what that path keeps."""

    __slots__ = ("fast", "public", "reason", "routes")

    def __init__(self, fast: bool, reason: str) -> None:
        self.fast = fast
        self.reason = reason
        self.routes: _Routes | None = None  # fast path: sid -> handler, once installed
        self.public = public.PublicState()


# -- choosing the path ------------------------------------------------------------------------------


def choose(nc: Any, secrets: Iterable[str] = (), warn: Callable[[str], None] | None = None) -> bool:
    """Probe ``nc`` (connected or not) and fix its path; True for the fast path. Says which, and why."""
    reason = why_not_fast(nc)
    state = _Transport(reason is None, reason or f"nats-py {nats_py_version()} internals as expected")
    if warn is not None:
        state.public.warn = warn
    try:
        setattr(nc, _STATE, state)
    except AttributeError:  # a client that takes no attributes cannot keep routes either
        state = _Transport(False, "the client takes no attributes")
    debug.log(
        "bulk path: fast (" + state.reason + ")"
        if state.fast
        else "bulk path: public nats-py API (" + state.reason + ")",
        secrets,
    )
    return state.fast


def is_fast(nc: Any) -> bool:
    return _state(nc).fast


def path_reason(nc: Any) -> str:
    """Why this client takes its path (the text of the --debug line)."""
    return _state(nc).reason


def _state(nc: Any) -> _Transport:
    state = getattr(nc, _STATE, None)
    if state is None:
        choose(nc)
        state = getattr(nc, _STATE, None) or _Transport(False, "the client takes no attributes")
    return state


def nats_py_version() -> str:
    try:
        from nats.aio import client as client_module

        version = getattr(client_module, "__version__", "")
        if version and version != "0.0.0":
            return version
        import importlib.metadata

        return importlib.metadata.version("nats-py")
    except Exception:  # noqa: BLE001 - an unknown version just means the public path
        return "unknown"


def why_not_fast(nc: Any) -> str | None:
    """None when ``nc`` has every internal the fast path uses, shaped as it uses them; else the reason.

    Cheap checks only (attributes, types, signatures), no source reading: run at every connect.
    """
    if os.environ.get(PUBLIC_ENV, "") not in ("", "0"):
        return f"{PUBLIC_ENV}={os.environ[PUBLIC_ENV]}"
    version = nats_py_version()
    if not version.startswith(FAST_SERIES):
        return f"nats-py {version}: the fast path is checked against nats-py {FAST_SERIES}x only"
    try:
        from nats.aio.subscription import Subscription
        from nats.protocol import parser as parser_module
    except ImportError as exc:
        return f"nats-py internals not as expected: {exc}"
    checks: list[tuple[str, Callable[[], bool]]] = [
        (
            "Client._process_msg(sid, subject, reply, data, headers)",
            lambda: _coroutine_with(nc._process_msg, ["sid", "subject", "reply", "data", "headers"]),
        ),
        ("Client._send_command(cmd, ...)", lambda: _coroutine_with(nc._send_command, ["cmd"], prefix=True)),
        ("Client._flush_pending()", lambda: inspect.iscoroutinefunction(nc._flush_pending)),
        ("Client._pending list", lambda: isinstance(nc._pending, list)),
        ("Client._pending_data_size int", lambda: isinstance(nc._pending_data_size, int)),
        ("Client._server_info dict", lambda: isinstance(nc._server_info, dict)),
        ("Client._ps.parse(data)", lambda: _coroutine_with(nc._ps.parse, ["data"])),
        ("Client._ps.buf bytearray", lambda: isinstance(nc._ps.buf, bytearray)),
        ("Client._ps.state", lambda: isinstance(nc._ps.state, int)),
        ("parser AWAITING_CONTROL_LINE", lambda: isinstance(parser_module.AWAITING_CONTROL_LINE, int)),
        ("parser MAX_CONTROL_LINE_SIZE", lambda: isinstance(parser_module.MAX_CONTROL_LINE_SIZE, int)),
        (
            "Subscription(conn, id, ...)",
            lambda: list(inspect.signature(Subscription.__init__).parameters)[1:3] == ["conn", "id"],
        ),
    ]
    for name, check in checks:
        try:
            if not check():
                return f"nats-py internals not as expected: {name}"
        except (AttributeError, TypeError, ValueError):
            return f"nats-py internals not as expected: {name} is missing"
    return None


def _coroutine_with(function: Any, names: list[str], prefix: bool = False) -> bool:
    if not inspect.iscoroutinefunction(function):
        return False
    params = list(inspect.signature(function).parameters)  # bound: without self
    return params[: len(names)] == names if prefix else params == names


BULK_TRIES = 4  # bulk takes per read (see _more_of_the_run)

# -- delivery ---------------------------------------------------------------------------------------


class _Routes(dict):
    """sid -> handler, plus the run handlers of the routes that take whole runs of frames."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, RunHandler] = {}


def route_raw(nc: Any, sub: Any, handler: RawHandler, runs: RunHandler | None = None) -> None:
    """Hand the messages of ``sub`` (made without a callback) to ``handler(subject, reply, payload, headers)``.

    The handler runs synchronously, in arrival order, and must not raise. Fast path: straight from
    nats-py's parser. Public path: from a task reading ``sub.messages`` (see natsctl/transport/public.py).
    With ``runs``, consecutive header-less messages of one read are handed over together instead, as
    ``runs(subjects, replies, payloads)`` (three lists of bytes, one entry per message, in order); a
    message with headers, or one nats-py's parser delivers, still goes to ``handler``.
    """
    state = _state(nc)
    sid = getattr(sub, "_id", None) if state.fast else None
    if not isinstance(sid, int):
        public.route(state.public, sub, handler)
        return
    routes = state.routes
    if routes is None:
        routes = state.routes = _Routes()
        _install_routes(nc, routes)
    routes[sid] = handler
    if runs is not None:
        routes.runs[sid] = runs
    else:
        routes.runs.pop(sid, None)


def unroute(nc: Any, sub: Any) -> None:
    state = getattr(nc, _STATE, None)
    if state is None:
        return
    public.unroute(state.public, sub)
    if state.routes is not None:
        sid = getattr(sub, "_id", None)
        state.routes.pop(sid, None)
        state.routes.runs.pop(sid, None)


def _install_routes(nc: Any, routes: _Routes) -> None:
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

    nc._process_msg = process_msg
    _parse_routed_first(nc, routes)


def _parse_routed_first(nc: Any, routes: _Routes) -> None:
    """Deliver the routed MSGs at the head of each read before nats-py's parser sees the rest.

    nats-py's ``Parser.parse(data)`` appends to ``Parser.buf`` and, in state AWAITING_CONTROL_LINE,
    matches a regex, fills a dict and awaits ``_process_msg`` per message; a replay spends a third of
    its time there. Whole, header-less MSG frames of routed subscriptions are handed over here in one
    loop; anything else (another subscription, HMSG, PING, a frame cut by the read) stops the loop and
    nats-py parses it, in order.
    """
    from nats.protocol.parser import AWAITING_CONTROL_LINE, MAX_CONTROL_LINE_SIZE

    parser = nc._ps
    parse = parser.parse

    async def parse_routed_first(data: bytes = b"") -> None:
        buf = parser.buf  # replaced by Parser.reset() on reconnect: looked up every time
        buf.extend(data)
        if parser.state == AWAITING_CONTROL_LINE:
            done, wait = deliver_routed(buf, routes, MAX_CONTROL_LINE_SIZE, routes.runs)
            if done:
                del buf[:done]
            if wait:
                return  # a routed frame is cut by the read: the next read completes it
        await parse(b"")

    parser.parse = parse_routed_first


def deliver_routed(
    buf: bytearray,
    routes: dict[int, RawHandler],
    max_control_line: int = 4096,
    runs: dict[int, RunHandler] | None = None,
) -> tuple[int, bool]:
    """Hand the leading complete ``MSG`` and ``HMSG`` frames of routed sids to their handlers.

    Returns the bytes consumed, and whether what follows is the start of a routed frame still being
    received (then nothing is left for nats-py's parser to do yet). Pure: bytes in, handler calls out.
    A sid in ``runs`` gets each run of its consecutive header-less frames in one call; a frame with
    headers (a status: heartbeat, flow control; or a message with headers) goes to its handler, with
    the headers parsed (every value of a repeated key), after the run before it.
    """
    first = _whole_first_frame(buf, max_control_line)
    if first is not True:
        return 0, first
    # Whole frames are here: slice them out of one bytes copy (a bytearray slice is two copies).
    data = bytes(buf)
    find = data.find
    startswith = data.startswith
    size = len(data)
    runs = runs or {}
    pos = 0
    run: RunHandler | None = None
    handler: RawHandler | None = None
    last_sid = b""
    subjects: list[bytes] = []
    replies: list[bytes] = []
    payloads: list[bytes] = []
    waiting = False
    bulk_left = BULK_TRIES
    try:
        while True:
            headed = startswith(b"HMSG ", pos)
            if not headed and not startswith(b"MSG ", pos):
                break
            eol = find(b"\r\n", pos)
            if eol < 0:
                waiting = size - pos < max_control_line
                break
            args = data[pos + (5 if headed else 4) : eol].split(b" ")
            header_size = 0
            if headed:
                if len(args) == 5:
                    subject, sid, reply, header_length, length = args
                elif len(args) == 4:
                    (subject, sid, header_length, length), reply = args, b""
                else:
                    break
                header_size = int(header_length)
            elif len(args) == 4:
                subject, sid, reply, length = args
            elif len(args) == 3:
                (subject, sid, length), reply = args, b""
            else:
                break
            if sid != last_sid:
                if subjects and run is not None:
                    run(subjects, replies, payloads)
                    subjects, replies, payloads = [], [], []
                number = int(sid)
                handler = routes.get(number)
                if handler is None:
                    break
                run = runs.get(number)
                last_sid = sid
            start = eol + 2
            end = start + int(length)
            if end + 2 > size or not 0 <= header_size <= end - start:
                waiting = end + 2 > size
                break
            pos = end + 2
            if headed:
                if subjects and run is not None:
                    run(subjects, replies, payloads)  # the messages before it, first
                    subjects, replies, payloads = [], [], []
                if handler is not None:
                    headers = parse_header_block(data[start : start + header_size])
                    handler(subject, reply, data[start + header_size : end], headers)
            elif run is not None:
                subjects.append(subject)
                replies.append(reply)
                payloads.append(data[start:end])
                if bulk_left:  # a few times per read: a read that defeats it is not split again and again
                    bulk_left -= 1
                    pos = _more_of_the_run(data, pos, sid, subjects, replies, payloads)
            elif handler is not None:
                handler(subject, reply, data[start:end], None)
    except ValueError:
        pass  # not a well-formed frame: nats-py's parser reports it
    if subjects and run is not None:
        run(subjects, replies, payloads)
    return pos, waiting


def _more_of_the_run(
    data: bytes, pos: int, sid: bytes, subjects: list[bytes], replies: list[bytes], payloads: list[bytes]
) -> int:
    """Take the whole ``MSG <subject> <sid> <reply> <length>`` frames of ``sid`` that follow ``pos``
    into the run's lists, in bulk; returns where they end (``pos`` when none).

    Splitting the rest of the read on CRLF gives control lines and payloads alternately while no
    payload holds a CRLF; each payload's length is checked against its control line, so the first
    frame where that does not hold (a CRLF inside, HMSG, PING, another sid, a cut frame) ends the bulk
    part and the frame-by-frame loop goes on from there. About half the per-frame cost of that loop.
    """
    parts = data[pos:].split(b"\r\n")
    pairs = (len(parts) - 1) // 2
    if pairs <= 0:
        return pos
    lines = parts[0 : 2 * pairs : 2]
    bodies = parts[1 : 2 * pairs : 2]
    args = [line.split(b" ") for line in lines]
    good = _frames_that_hold(args, bodies, sid)
    if good < pairs:
        del lines[good:], bodies[good:], args[good:]
    if not good:
        return pos
    subjects += map(itemgetter(1), args)
    replies += map(itemgetter(3), args) if len(args[0]) == 5 else repeat(b"", good)  # 4 tokens: no reply
    payloads += bodies
    return pos + sum(map(len, lines)) + sum(map(len, bodies)) + 4 * good


def _frames_that_hold(args: list[list[bytes]], bodies: list[bytes], sid: bytes) -> int:
    """How many leading (control line tokens, payload) pairs are whole MSG frames of ``sid``, all with
    a reply subject (5 tokens) or all without (4: NATS Streaming's messages)."""
    width = len(args[0])
    if width not in (4, 5):
        return 0
    last = width - 1  # the length
    try:
        if (
            set(map(len, args)) == {width}
            and set(map(itemgetter(0), args)) == {b"MSG"}
            and set(map(itemgetter(2), args)) == {sid}
            and [int(tokens[last]) for tokens in args] == list(map(len, bodies))
        ):
            return len(args)  # the usual read: every pair at once
    except ValueError:
        pass
    good = 0
    for tokens, body in zip(args, bodies, strict=True):
        if len(tokens) != width or tokens[0] != b"MSG" or tokens[2] != sid or not tokens[last].isdigit():
            break
        if int(tokens[last]) != len(body):
            break
        good += 1
    return good


def _whole_first_frame(buf: bytearray, max_control_line: int) -> bool:
    """True when ``buf`` starts with a whole MSG or HMSG frame; else whether a frame is still arriving.

    Checked on the bytearray itself, so that a large payload arriving over many reads is not copied
    on every read.
    """
    headed = buf.startswith(b"HMSG ")
    if not headed and not buf.startswith(b"MSG "):
        return False
    eol = buf.find(b"\r\n")
    if eol < 0:
        return len(buf) < max_control_line
    args = buf[5 if headed else 4 : eol].split(b" ")
    try:
        length = int(args[-1])
    except ValueError:
        return False
    return True if eol + 2 + length + 2 <= len(buf) else len(args) in ((4, 5) if headed else (3, 4))


# -- publishing -------------------------------------------------------------------------------------


def send_raw(nc: Any, commands: bytes) -> Awaitable[None]:
    """Queue natsctl's own PUB / HPUB lines (``pub_line``, ``hpub_line``, ack batches); await the result.

    Fast path: queued as they are, sent once ``wake_flusher`` runs (or the buffer fills). Public path:
    each message through ``nc.publish``, which flushes by itself.
    """
    state = getattr(nc, _STATE, None) or _state(nc)
    if state.fast:
        return nc._send_command(commands)
    return public.send_frames(nc, state.public, commands)


def wake_flusher(nc: Any) -> Awaitable[Any]:
    state = getattr(nc, _STATE, None) or _state(nc)
    if state.fast:
        return nc._flush_pending()
    return _nothing()


async def _nothing() -> None:
    return None


def publish_many(nc: Any, items: Iterable[tuple[bytes, bytes, bytes]]) -> Awaitable[None]:
    """Publish ``(subject, reply, payload)`` messages, in order, and send them now.

    Fast path: one queued write and a wake of the flusher. Public path: ``nc.publish`` each.
    """
    state = _state(nc)
    if not state.fast:
        return public.publish_many(nc, state.public, items)
    lines = b"".join(
        b"PUB %s %s %d\r\n%s\r\n" % (subject, reply, len(data), data)
        if reply
        else b"PUB %s %d\r\n%s\r\n" % (subject, len(data), data)
        for subject, reply, data in items
    )
    return _send_and_flush(nc, lines)


async def _send_and_flush(nc: Any, lines: bytes) -> None:
    if lines:
        await nc._send_command(lines)
        await nc._flush_pending()


# -- connection state -------------------------------------------------------------------------------


async def settle_deliveries(nc: Any, timeout: float = 1.0) -> None:
    """Let every message received so far reach its route's handler (the connection just dropped).

    The fast path hands messages over as the parser reads them: nothing to wait for. The public path's
    delivery tasks may still hold some (see public.settle).
    """
    state = getattr(nc, _STATE, None)
    if state is not None and not state.fast:
        await public.settle(state.public, timeout)


def drop_unsent(nc: Any) -> int | None:
    """Forget the commands still buffered for a lost server; how many, or None on the public path
    (nats-py's public API cannot forget them: the caller closes the connection instead)."""
    if not _state(nc).fast:
        return None
    dropped = len(nc._pending)
    nc._pending = []
    nc._pending_data_size = 0
    return dropped


def server_info(nc: Any) -> dict | None:
    """The server's INFO as nats-py keeps it (fast path), or None: the public path reads it itself."""
    if not _state(nc).fast:
        return None
    info = nc._server_info
    return info if isinstance(info, dict) else None


def spare_the_collector() -> None:
    """Move what exists now (modules, the connection) out of the cyclic collector's sight.

    A bulk run allocates a few objects per message; each full collection would otherwise walk every
    long-lived object again (~5% of a replay's CPU). They were going to live until exit anyway.
    """
    gc.freeze()
