"""Bounded, spaced redelivery on JetStream: the consumer's max_deliver, NAK with delay, +TERM.

natsctl stores the policy of `sub --max-deliver N --backoff ...` on the consumer it creates:

- ``max_deliver`` is N + 1: the N-th failed delivery is parked and terminated by natsctl; the one
  spare delivery only comes when natsctl stopped (crash, kill -9) between a last failure and the
  terminate, and is then parked at once (the parking's message id makes a second copy a duplicate).
- the metadata ``natsctl_max_deliver`` (N) and ``natsctl_backoff`` (seconds, comma-separated): a
  resumed durable keeps them.

The spacing is applied with a delayed NAK (``-NAK {"delay": ns}``), not with the consumer's own
``backoff``: the server's backoff also replaces the ack wait of a delivery still being handled, which
would redeliver a handler that runs longer than the first step. A consumer made by another tool with
a ``backoff`` (and max_deliver) of its own is read with those.
"""

from __future__ import annotations

import json

from nats.js import api

from natsctl.core.deadletter import DEFAULT_BACKOFF, Redelivery, format_backoff
from natsctl.core.model import SubscribeSpec
from natsctl.core.stderr import say

META_MAX_DELIVER = "natsctl_max_deliver"
META_BACKOFF = "natsctl_backoff"


def consumer_max_deliver(spec: SubscribeSpec) -> int:
    return spec.max_deliver + 1 if spec.max_deliver else -1


def redelivery_metadata(spec: SubscribeSpec) -> dict[str, str]:
    meta: dict[str, str] = {}
    if spec.max_deliver:
        meta[META_MAX_DELIVER] = str(spec.max_deliver)
    if spec.backoff:
        meta[META_BACKOFF] = ",".join(f"{s:g}" for s in spec.backoff)
    return meta


def _durable_policy(config: api.ConsumerConfig) -> tuple[int | None, tuple[float, ...] | None]:
    meta = config.metadata or {}
    max_deliver: int | None = None
    backoff: tuple[float, ...] | None = None
    try:
        if META_MAX_DELIVER in meta:
            max_deliver = int(meta[META_MAX_DELIVER])
        if META_BACKOFF in meta:
            backoff = tuple(float(s) for s in meta[META_BACKOFF].split(","))
    except ValueError:
        max_deliver, backoff = None, None
    if max_deliver is None and config.max_deliver and config.max_deliver > 0:
        max_deliver = config.max_deliver
    if backoff is None and config.backoff:
        backoff = tuple(float(s) for s in config.backoff)
    return max_deliver, backoff


def effective_redelivery(spec: SubscribeSpec, config: api.ConsumerConfig, name: str) -> Redelivery:
    """The policy in force: the consumer's own; a durable made with other values keeps them (said in one line)."""
    max_deliver, backoff = _durable_policy(config)
    differs = []
    if spec.max_deliver is not None and spec.max_deliver != max_deliver:
        differs.append(f"--max-deliver {spec.max_deliver}")
    if spec.backoff and backoff is not None and tuple(spec.backoff) != backoff:
        differs.append(f"--backoff {format_backoff(spec.backoff)}")
    policy = Redelivery(max_deliver=max_deliver, backoff=backoff or spec.backoff or DEFAULT_BACKOFF)
    if differs:
        say(
            f"durable {name!r} was created with {policy.text()}; keeping the durable's, not {' and '.join(differs)} "
            "(delete the durable to change them)",
            "warning",
        )
    return policy


def nak_payload(delay: float | None) -> bytes:
    if not delay or delay <= 0:
        return b"-NAK"
    return b"-NAK " + json.dumps({"delay": int(delay * 1e9)}).encode()


def term_payload(reason: str) -> bytes:
    return b"+TERM " + reason.encode() if reason else b"+TERM"
