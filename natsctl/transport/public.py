"""The bulk paths through nats-py's public API only.

Used when the fast path cannot be (another nats-py release, internals not shaped as probed, or
``NATSCTL_PUBLIC_PATH=1``): slower, and every step is something nats-py documents.

- Delivery: one task per routed subscription takes its messages with ``sub.next_msg()`` and calls
  the handler with the fast path's arguments: ``(subject, reply, data, headers)``, bytes, headers as
  ``{key: [value]}``. nats-py's ``Msg.headers`` holds one value per key (the last
  one of a repeated key), so on this path a repeated key arrives with that one value only.
- Publishing: natsctl's own PUB / HPUB lines (``send_raw``) are read back and each message goes
  through ``nc.publish``, which flushes by itself. nats-py's publish takes one value per header key:
  a repeated key is sent with its last value, and the first time that happens a warning says so.
- Commands for a connection that is closed or whose reconnect buffer is full are dropped, as the fast
  path's queue drops them; the callers notice through the connection's state and their own timeouts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from nats import errors as nats_errors

from natsctl.core import debug
from natsctl.core.stderr import say

from .frames import parse_header_block, read_pub_frames

_DROPPED = (nats_errors.ConnectionClosedError, nats_errors.OutboundBufferLimitError)


def stderr_warning(message: str) -> None:
    say(message, "warning")


class PublicState:
    """What the public path keeps per connection: its delivery tasks and one-time warnings."""

    def __init__(self) -> None:
        self.routes: dict[int, _Route] = {}  # id(sub) -> its route
        self.warn: Callable[[str], None] = stderr_warning
        self.warned_headers = False
        self.noted_drop = False


class _Route:
    """One routed subscription: the task delivering its messages, and how many it holds undelivered."""

    __slots__ = ("holding", "sub", "task")

    def __init__(self, sub: Any) -> None:
        self.sub = sub
        self.holding = 0
        self.task: asyncio.Task | None = None

    def busy(self) -> bool:
        if self.task is None or self.task.done():
            return False
        return bool(self.holding or self.sub.pending_msgs)


def route(state: PublicState, sub: Any, handler: Callable[..., None]) -> None:
    """Deliver the messages of ``sub`` (made without a callback) to ``handler`` from a task."""
    sub.messages  # noqa: B018 - raises at once for a subscription made with a callback
    unroute(state, sub)
    found = state.routes[id(sub)] = _Route(sub)
    found.task = asyncio.get_running_loop().create_task(_deliver(found, handler))


HAND_OVER_MAX = 1024  # messages collected before the handler gets them, at most


async def _deliver(found: _Route, handler: Callable[..., None]) -> None:
    """Take the subscription's messages and hand each queued run of them over at once.

    As on the fast path (a whole read at a time, see fast.route_raw), the handler's reader then wakes
    once per run and takes it as one batch (one write, one flush, one ack write), not one per message.
    ``sub.next_msg``, not ``sub.messages``: cancelling a task waiting in next_msg cancels its queue read
    too (unroute), where the iterator of nats-py < 2.16 leaves a reader behind that takes a message.
    """
    sub = found.sub
    held: list[Any] = []
    try:
        while True:
            try:
                held.append(await sub.next_msg(timeout=None))
                found.holding = 1
                while sub.pending_msgs and len(held) < HAND_OVER_MAX:
                    held.append(await sub.next_msg(timeout=None))
            except nats_errors.Error:
                return  # the connection closed
            _hand_over(held, handler)
            held = []
            found.holding = 0
    finally:
        _hand_over(held, handler)  # taken before a cancel (unroute) or a close: still delivered
        found.holding = 0


async def settle(state: PublicState, timeout: float) -> None:
    """Wait (at most ``timeout``) until every message received so far went to its handler.

    Called when the connection drops: nothing more arrives, and what did arrive (a publish's acks)
    must reach the handlers before anyone concludes it never came, as on the fast path where the
    parser hands everything over as it reads it.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while any(found.busy() for found in state.routes.values()):
        if asyncio.get_running_loop().time() > deadline:
            debug.log("public path: deliveries still queued when the connection dropped")
            return
        await asyncio.sleep(0)


def _hand_over(messages: list[Any], handler: Callable[..., None]) -> None:
    for msg in messages:
        headers = msg.headers
        try:
            handler(
                msg.subject.encode(),
                (msg.reply or "").encode(),
                msg.data,
                {key: [value] for key, value in headers.items()} if headers else None,
            )
        except Exception as exc:  # noqa: BLE001 - handlers must not raise; one that does loses only this message
            debug.log(f"a delivery handler raised {type(exc).__name__}: {exc}")


def unroute(state: PublicState, sub: Any) -> None:
    found = state.routes.pop(id(sub), None)
    if found is not None and found.task is not None:
        found.task.cancel()


async def send_frames(nc: Any, state: PublicState, commands: bytes) -> None:
    """Publish each message of natsctl's own PUB / HPUB lines with ``nc.publish``, in order."""
    for subject, reply, block, payload in read_pub_frames(commands):
        await _publish(nc, state, subject, reply, payload, _one_value_per_key(state, block) if block else None)


async def publish_many(nc: Any, state: PublicState, items: Iterable[tuple[bytes, bytes, bytes]]) -> None:
    for subject, reply, payload in items:
        await _publish(nc, state, subject, reply, payload, None)


async def _publish(
    nc: Any, state: PublicState, subject: bytes, reply: bytes, payload: bytes, headers: dict[str, str] | None
) -> None:
    try:
        await nc.publish(subject.decode(), payload, reply=reply.decode(), headers=headers)
    except _DROPPED as exc:
        if not state.noted_drop:
            state.noted_drop = True
            debug.log(f"public path: commands dropped, the connection cannot take them ({type(exc).__name__})")


def _one_value_per_key(state: PublicState, block: bytes) -> dict[str, str] | None:
    parsed = parse_header_block(block)
    if not parsed:
        return None
    repeated = [key for key, values in parsed.items() if len(values) > 1]
    if repeated and not state.warned_headers:
        state.warned_headers = True
        state.warn(
            f"header {repeated[0]!r} has several values: nats-py's public API sends one value per key, so only "
            "the last is sent (the fast path, used with nats-py 2.16, sends every value)"
        )
    return {key: values[-1] for key, values in parsed.items()}
