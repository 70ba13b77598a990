"""``migrate durables``: each planned durable (and durable queue group) as the JetStream durable
``natsctl sub --durable NAME [--queue GROUP]`` uses, at the same position: what NATS Streaming had
acked is acked, what it had sent and not acked is delivered again first, the rest follows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.errors import NatsctlError, ServerError
from natsctl.core.migrate import ChannelPlan, DurablePlan, Plan, Source, Target
from natsctl.core.settings import Settings

from .plan import find_durable, survey

POSITIONED, EXISTS, CONNECTED, MISSING, FAILED = "positioned", "exists", "connected", "missing", "failed"


@dataclass(slots=True)
class DurableResult:
    channel: str
    durable: str  # "durable" or "durable:queue", as NATS Streaming names it
    consumer: str
    status: str  # positioned | exists | connected | missing | failed
    detail: str = ""
    last_sent: int = 0
    unacked: list[int] = field(default_factory=list)
    next_new: int = 0  # the first channel sequence the durable was never sent

    @property
    def ok(self) -> bool:
        return self.status in (POSITIONED, EXISTS)

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "durable": self.durable,
            "consumer": self.consumer,
            "status": self.status,
            "detail": self.detail,
            "last_sent": self.last_sent,
            "unacked": self.unacked,
            "next_new": self.next_new,
        }


async def migrate_durables(
    plan: Plan, source_settings: Settings, target_settings: Settings, on_result: Callable[[DurableResult], None]
) -> list[DurableResult]:
    from natsctl.opener import open_migration_source, open_migration_target

    found = await survey(source_settings)
    results: list[DurableResult] = []
    target: Target = await open_migration_target(target_settings)
    source: Source | None = None
    try:
        for durable in plan.active_durables():
            channel = plan.channel(durable.channel)
            assert channel is not None
            result = DurableResult(durable.channel, durable.label, durable.consumer, FAILED)
            now = find_durable(found, durable)
            if now is None:
                result.status = MISSING
                result.detail = "not on NATS Streaming any more (removed since the plan was made)"
            elif not now[2]:
                result.status = CONNECTED
                result.detail = (
                    "its client is connected: its unacked messages can only be read while it is disconnected; "
                    "stop the service holding it and run migrate durables again"
                )
            else:
                if source is None:
                    source = await open_migration_source(source_settings)
                try:
                    await _position(durable, channel, now[0], now[1], source, target, result)
                except NatsctlError as exc:
                    result.status, result.detail = FAILED, exc.message
            results.append(result)
            on_result(result)
    finally:
        if source is not None:
            await source.close()
        await target.close()
    return results


async def _position(
    durable: DurablePlan, channel: ChannelPlan, last_sent: int, pending: int, source: Source, target: Target, result
) -> None:
    state = await source.durable_state(durable, last_sent, pending)
    result.last_sent, result.unacked, result.next_new = last_sent, state.unacked, last_sent + 1
    copied = await target.last_copied(channel)
    if copied < last_sent:
        raise ServerError(
            f"channel {channel.channel!r} is copied up to sequence {copied}, the durable was sent up to {last_sent}: "
            "run migrate copy first"
        )
    first_open = min(state.unacked) if state.unacked else last_sent + 1
    if last_sent == 0:
        start: int | None = 1  # sent nothing yet: every message the stream holds is still to come
        offset = 0
    else:
        anchor = await target.stream_sequence_of(channel, last_sent)
        if anchor is None:
            raise ServerError(f"channel {channel.channel!r}: sequence {last_sent} is not in stream {channel.stream!r}")
        offset = anchor - last_sent
        start = first_open + offset
        if first_open <= last_sent and await target.stream_sequence_of(channel, first_open) != start:
            raise ServerError(
                f"channel {channel.channel!r}: stream {channel.stream!r} does not hold sequences "
                f"{first_open}-{last_sent} in a row; run migrate verify"
            )
    unacked = set(state.unacked)
    acked = [seq + offset for seq in range(first_open, last_sent + 1) if seq not in unacked]
    made = await target.position_durable(channel, durable, start, acked, [seq + offset for seq in state.unacked])
    result.status = POSITIONED if made else EXISTS
    if made:
        again = (
            f"{len(state.unacked)} unacked delivered again first ({_short(state.unacked)}), " if state.unacked else ""
        )
        result.detail = f"{again}then from sequence {last_sent + 1}"
    else:
        result.detail = f"consumer {durable.consumer!r} exists already on stream {channel.stream!r}: left as it is"


def _short(values: list[int]) -> str:
    shown = ", ".join(str(v) for v in values[:8])
    return shown + (", ..." if len(values) > 8 else "")
