"""``migrate verify``: every NATS Streaming message once, in order, with the same payload, in its
stream; the durables there and positioned. Both sides are read in order and compared as they come."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.migrate import ChannelPlan, CopiedMessage, Plan, Source, SourceMessage, Target
from natsctl.core.settings import Settings

from .plan import channel_now, find_durable, survey


@dataclass(slots=True)
class ChannelCheck:
    channel: str
    stream: str
    source_messages: int = 0
    source_first: int = 0
    source_last: int = 0
    matched: int = 0
    missing: int = 0
    changed: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    kept_only_in_stream: int = 0  # copied, since removed from NATS Streaming by its limits
    other_messages: int = 0  # in the stream without the migration headers (published to JetStream)
    first_difference: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.duplicated or self.out_of_order)

    def differ(self, text: str) -> None:
        if not self.first_difference:
            self.first_difference = text

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "stream": self.stream,
            "ok": self.ok,
            "source_messages": self.source_messages,
            "source_first_seq": self.source_first,
            "source_last_seq": self.source_last,
            "matched": self.matched,
            "missing": self.missing,
            "changed": self.changed,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "kept_only_in_stream": self.kept_only_in_stream,
            "other_messages": self.other_messages,
            "first_difference": self.first_difference or None,
        }


@dataclass(slots=True)
class DurableCheck:
    channel: str
    durable: str
    consumer: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "durable": self.durable,
            "consumer": self.consumer,
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass(slots=True)
class VerifyReport:
    channels: list[ChannelCheck] = field(default_factory=list)
    durables: list[DurableCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.channels) and all(d.ok for d in self.durables)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "channels": [c.as_dict() for c in self.channels],
            "durables": [d.as_dict() for d in self.durables],
        }


class _Cursor:
    """One message at a time out of batches."""

    def __init__(self, batches: AsyncIterator[list[Any]]) -> None:
        self.batches = batches
        self.batch: list[Any] = []
        self.index = 0
        self.ended = False

    async def peek(self) -> Any:
        while self.index >= len(self.batch):
            if self.ended:
                return None
            try:
                self.batch, self.index = await self.batches.__anext__(), 0
            except StopAsyncIteration:
                self.ended = True
                return None
        return self.batch[self.index]

    async def take(self) -> Any:
        item = await self.peek()
        self.index += 1
        return item

    async def close(self) -> None:
        close = getattr(self.batches, "aclose", None)
        if close is not None:
            await close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _copied(cursor: _Cursor, check: ChannelCheck, end: int, state: dict[str, int]) -> CopiedMessage | None:
    """The next copied message of the channel up to sequence ``end``; duplicates and reorderings counted."""
    while True:
        item: CopiedMessage | None = await cursor.peek()
        if item is None:
            return None
        if item.sequence is None or (item.channel is not None and item.channel != check.channel):
            check.other_messages += 1
            await cursor.take()
            continue
        if item.sequence > end:
            return None
        last = state["last"]
        if item.sequence <= last:
            await cursor.take()
            if item.sequence == last:
                check.duplicated += 1
                check.differ(f"sequence {item.sequence}: copied twice (stream sequence {item.stream_sequence})")
            else:
                check.out_of_order += 1
                check.differ(
                    f"sequence {item.sequence}: out of order (stream sequence {item.stream_sequence}, after {last})"
                )
            continue
        return item


async def check_channel(channel: ChannelPlan, end: int, source: Source, target: Target) -> ChannelCheck:
    check = ChannelCheck(channel.channel, channel.stream)
    src = _Cursor(source.read(channel.channel, 1, follow=False))
    dst = _Cursor(target.read(channel))
    state = {"last": 0}
    try:
        while True:
            message: SourceMessage | None = await src.peek()
            if message is None or message.sequence > end:
                break
            await src.take()
            check.source_messages += 1
            check.source_first = check.source_first or message.sequence
            check.source_last = message.sequence
            copied = await _copied(dst, check, end, state)
            while copied is not None and copied.sequence is not None and copied.sequence < message.sequence:
                check.kept_only_in_stream += 1  # removed from NATS Streaming since it was copied
                state["last"] = copied.sequence
                await dst.take()
                copied = await _copied(dst, check, end, state)
            if copied is None or copied.sequence != message.sequence:
                check.missing += 1
                check.differ(f"sequence {message.sequence}: missing from stream {channel.stream!r}")
                continue
            await dst.take()
            state["last"] = message.sequence
            if _sha(copied.data) != _sha(message.data):
                check.changed += 1
                check.differ(
                    f"sequence {message.sequence}: payload changed (stream sequence {copied.stream_sequence}, "
                    f"sha256 {_sha(copied.data)[:12]} instead of {_sha(message.data)[:12]})"
                )
            else:
                check.matched += 1
        while await _copied(dst, check, end, state) is not None:  # the rest: duplicates / reorderings only
            item = await dst.take()
            state["last"] = max(state["last"], item.sequence)
    finally:
        await src.close()
        await dst.close()
    return check


async def verify(
    plan: Plan, source_settings: Settings, target_settings: Settings, *, durables: bool = True
) -> VerifyReport:
    from natsctl.opener import open_migration_source, open_migration_target

    from .copy import check_channels

    found = await survey(source_settings)
    check_channels(plan, found)
    report = VerifyReport()
    target: Target = await open_migration_target(target_settings)
    try:
        source = await open_migration_source(source_settings)
        try:
            for channel in plan.active_channels():
                now = channel_now(found, channel.channel)
                end = now.last_seq if now else 0
                report.channels.append(await check_channel(channel, end, source, target))
        finally:
            await source.close()
        for durable in plan.active_durables() if durables else []:
            planned = plan.channel(durable.channel)
            assert planned is not None
            channel = planned
            position = await target.durable_position(channel, durable)
            label = durable.label
            if position is None:
                report.durables.append(
                    DurableCheck(
                        channel.channel, label, durable.consumer, False, "missing on JetStream (run migrate durables)"
                    )
                )
                continue
            floor, delivered, pending, mark = position
            if mark == "positioning":
                detail = "positioning was interrupted (run migrate durables again)"
                report.durables.append(DurableCheck(channel.channel, label, durable.consumer, False, detail))
                continue
            stan = find_durable(found, durable)
            ok, detail = True, f"ack floor {floor}, delivered up to {delivered}, {pending} awaiting an ack"
            if stan is not None and stan[0] and delivered:
                sent = await target.stream_sequence_of(channel, stan[0])
                if sent is not None and delivered < sent:
                    ok = False
                    detail = f"delivered up to stream sequence {delivered}, NATS Streaming had sent up to {stan[0]}"
            report.durables.append(DurableCheck(channel.channel, label, durable.consumer, ok, detail))
    finally:
        await target.close()
    return report
