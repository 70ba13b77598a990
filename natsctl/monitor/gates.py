"""Lag gates for cron jobs, CI and probes (`subs` / `channel` --fail-on-*), and the time-to-drain
column of `subs --watch`.

- ``--fail-on-lag N``: a subscription with more than N messages not yet delivered fails;
- ``--fail-on-unacked N``: more than N delivered and not acknowledged;
- ``--fail-on-stalled DURATION``: the subscriptions are read twice, DURATION apart; one with work
  pending in both reads (lag or unacked above 0) whose ack progress did not move fails.

Ack progress is the ack floor (JetStream) or, where acks come out of order (a queue group, a message
waiting for a delayed redelivery) and on NATS Streaming, the count of delivered-and-acked messages
(last delivered sequence minus unacked): either one growing is progress.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.errors import Lagging, UsageError
from natsctl.core.timeparse import check_timeout, parse_duration
from natsctl.monitor.models import Subscription

MAX_NAMED = 20  # subscriptions named in the error line


@dataclass(slots=True)
class Gates:
    lag: int | None = None
    unacked: int | None = None
    stalled: float | None = None  # seconds between the two reads
    before: list[Subscription] = field(default_factory=list)

    @property
    def on(self) -> bool:
        return self.lag is not None or self.unacked is not None or self.stalled is not None

    def gated(self, fetch: Callable[[Any], Awaitable[Any]], rows: Callable[[Any], list[Subscription]]) -> Any:
        """``fetch`` once, or (with --fail-on-stalled) twice, ``stalled`` seconds apart; the second read is shown."""
        if self.stalled is None:
            return fetch

        async def twice(client: Any) -> Any:
            first = await fetch(client)
            await asyncio.sleep(self.stalled or 0)  # the measuring window the user asked for
            second = await fetch(client)
            self.before = list(rows(first))
            return second

        return twice

    def check(self, subs: Sequence[Subscription]) -> None:
        """Raise Lagging naming every subscription over a gate."""
        failed = [f"{name_of(s)} ({', '.join(why)})" for s in subs if (why := self.reasons(s))]
        if failed:
            shown = "; ".join(failed[:MAX_NAMED]) + (
                f"; and {len(failed) - MAX_NAMED} more" if len(failed) > MAX_NAMED else ""
            )
            raise Lagging(f"{len(failed)} of {len(subs)} subscriptions failed the gates: {shown}")

    def reasons(self, sub: Subscription) -> list[str]:
        out = []
        if self.lag is not None and sub.lag is not None and sub.lag > self.lag:
            out.append(f"lag {sub.lag} > {self.lag}")
        if self.unacked is not None and sub.unacked is not None and sub.unacked > self.unacked:
            out.append(f"unacked {sub.unacked} > {self.unacked}")
        if self.stalled is not None:
            old = {key(s): s for s in self.before}.get(key(sub))
            if old is not None and pending(old) and pending(sub) and not progressed(old, sub):
                out.append(f"stalled: {pending(sub)} pending, no ack for {self.stalled:g}s")
        return out


def parse_gates(lag: int | None, unacked: int | None, stalled: str | None, watch: float | None) -> Gates:
    for flag, value in (("--fail-on-lag", lag), ("--fail-on-unacked", unacked)):
        if value is not None and value < 0:
            raise UsageError(f"{flag} must be 0 or more, not {value}")
    seconds = None
    if stalled is not None:
        seconds = parse_duration(stalled, what="--fail-on-stalled")
        if seconds <= 0:
            raise UsageError(f"--fail-on-stalled must be more than 0s, not {stalled}")
        check_timeout(seconds, what="--fail-on-stalled")
    gates = Gates(lag, unacked, seconds)
    if gates.on and watch is not None:
        raise UsageError("--fail-on-* gates read once and exit; they do not go with --watch")
    return gates


def key(sub: Subscription) -> Hashable:
    return (sub.kind, sub.channel, sub.name, sub.queue, sub.client_id, sub.cid)


def name_of(sub: Subscription) -> str:
    who = sub.name or sub.queue or sub.client_id or (str(sub.cid) if sub.cid is not None else "-")
    if sub.queue and sub.name and sub.queue != sub.name:
        who = f"{sub.name}:{sub.queue}"
    return f"{sub.channel}/{who}"


def pending(sub: Subscription) -> int:
    return (sub.lag or 0) + (sub.unacked or 0)


def acked_mark(sub: Subscription) -> int | None:
    if sub.delivered_seq is None:
        return None
    return sub.delivered_seq - (sub.unacked or 0)


def progressed(old: Subscription, new: Subscription) -> bool:
    if old.ack_floor_seq is not None and new.ack_floor_seq is not None and new.ack_floor_seq > old.ack_floor_seq:
        return True
    a, b = acked_mark(old), acked_mark(new)
    return a is not None and b is not None and b > a


# -- time to drain (--watch) -----------------------------------------------------------------------------


def drain_cells(previous: Sequence[Any], rows: Sequence[Any], seconds: float) -> list[str]:
    """Per row: how long until its pending work (lag + unacked) is acked at the ack rate seen since the last refresh."""
    before = {key(s): s for s in previous if isinstance(s, Subscription)}
    cells = []
    for sub in rows:
        old = before.get(key(sub)) if isinstance(sub, Subscription) else None
        cells.append(_drain(old, sub, seconds) if old is not None and seconds > 0 else "")
    return cells


def _drain(old: Subscription, new: Subscription, seconds: float) -> str:
    if new.lag is None and new.unacked is None:
        return ""
    work = pending(new)
    if work == 0:
        return "drained"
    a, b = acked_mark(old), acked_mark(new)
    floor_rate = 0.0
    if old.ack_floor_seq is not None and new.ack_floor_seq is not None:
        floor_rate = max(0, new.ack_floor_seq - old.ack_floor_seq) / seconds
    mark_rate = max(0, b - a) / seconds if a is not None and b is not None else 0.0
    rate = max(floor_rate, mark_rate)
    if rate <= 0:
        return "never"  # no ack since the last refresh
    return duration_text(work / rate)


def duration_text(seconds: float) -> str:
    if seconds < 1:
        return "<1s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
