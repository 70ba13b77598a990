"""Asking again within a deadline: the one retry loop of the JetStream backend.

A JetStream cluster is silent or refuses for a while when it elects a leader, places a new stream or
spreads a stream's interest; a request sent meanwhile is dropped, not queued. Each caller says what
counts as "not yet" (``retryable``), how long to pause between attempts, how long one attempt may take
(``per_attempt``), and what to raise once the deadline (or the number of tries) is used up (``final``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class NotYet(Exception):
    """Raised by an attempt that worked but did not find what it waits for yet: ask again."""


async def retry_within(
    attempt: Callable[[], Awaitable[T]],
    deadline: float,
    *,
    retryable: Callable[[Exception], bool],
    pause: float,
    margin: float = 0.0,
    per_attempt: float | None = None,
    tries: int | None = None,
    give_up: Callable[[], bool] | None = None,
    final: Callable[[Exception], Exception] | None = None,
) -> T:
    """``attempt()`` until it returns, asked again after ``pause`` seconds while it fails in a retryable way.

    Another attempt is made only while more than ``margin`` seconds are left before ``deadline`` (a
    ``time.monotonic()`` value; ``math.inf`` for none), fewer than ``tries`` were made and ``give_up()``
    is false. With ``per_attempt``, an attempt is cut off after that many seconds (the last one when the
    deadline comes, but never under 0.1s). Giving up raises ``final(last error)``, by default the last
    error itself; any error that is not retryable is raised at once.
    """
    tried = 0
    while True:
        tried += 1
        try:
            if per_attempt is None:
                return await attempt()
            cut = max(0.1, min(per_attempt, deadline - time.monotonic()))
            return await asyncio.wait_for(attempt(), timeout=cut)
        except Exception as exc:
            if not retryable(exc):
                raise
            if time.monotonic() + margin >= deadline or tried == tries or (give_up is not None and give_up()):
                error = exc if final is None else final(exc)
                if error is exc:
                    raise
                raise error from None
        await asyncio.sleep(pause)
