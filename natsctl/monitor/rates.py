"""Rates between two snapshots of a report (``--watch``): counters that grew, per second."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from natsctl.monitor.models import Channel, Connection, ServerInfo, StreamingClient, Subscription

# row type -> (identity of a row across snapshots, counter field -> rate column name)
RATE_FIELDS: dict[type, tuple[Callable[[Any], Hashable], dict[str, str]]] = {
    ServerInfo: (
        lambda s: s.server_id,
        {"in_msgs": "in msgs/s", "out_msgs": "out msgs/s", "in_bytes": "in bytes/s", "out_bytes": "out bytes/s"},
    ),
    Connection: (
        lambda c: c.cid,
        {"in_msgs": "in msgs/s", "out_msgs": "out msgs/s", "in_bytes": "in bytes/s", "out_bytes": "out bytes/s"},
    ),
    Channel: (lambda c: (c.account, c.name), {"last_seq": "msgs/s", "bytes": "bytes/s"}),
    Subscription: (
        lambda s: (s.kind, s.channel, s.name, s.queue, s.client_id, s.cid),
        {"delivered_seq": "delivered/s"},
    ),
    StreamingClient: (lambda c: c.id, {}),
}


def rate_columns(row_type: type) -> list[str]:
    return list(RATE_FIELDS.get(row_type, (None, {}))[1].values())


def rates(previous: Sequence[Any], current: Sequence[Any], seconds: float) -> list[dict[str, float | None]]:
    """One dict of rate column -> value per ``current`` row; ``None`` where there is nothing to compare."""
    if not current:
        return []
    key, counters = RATE_FIELDS.get(type(current[0]), (lambda r: id(r), {}))
    before = {key(row): row for row in previous}
    return [_row_rates(before.get(key(row)), row, counters, seconds) for row in current]


def _row_rates(old: Any, new: Any, counters: dict[str, str], seconds: float) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for name, column in counters.items():
        a, b = (getattr(old, name, None) if old is not None else None), getattr(new, name, None)
        if a is None or b is None or seconds <= 0 or b < a:  # a counter reset (restart) is not a rate
            out[column] = None
        else:
            out[column] = (b - a) / seconds
    return out
