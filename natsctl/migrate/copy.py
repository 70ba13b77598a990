"""``migrate copy [--follow]``: every planned channel into its stream, resumable from what the stream holds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.errors import NotFound
from natsctl.core.migrate import ChannelPlan, Plan, Source, Target
from natsctl.core.settings import Settings

from .plan import Survey, channel_now, survey

LAG_EVERY = 2.0  # seconds between two looks at the channels' last sequences while following


@dataclass(slots=True)
class ChannelCopy:
    """One channel's copy, as the progress shows it and the report says it (also the JSON shape)."""

    channel: str
    stream: str
    created: bool = False
    resumed_after: int = 0  # the last sequence the stream held before this run (0: nothing)
    start: int = 0  # the first sequence this run asked for
    end: int = 0  # the channel's last sequence when looked at last
    copied: int = 0  # messages confirmed by JetStream in this run
    last_copied: int = 0  # channel sequence of the last confirmed message
    done: bool = False
    skipped_by_limits: str = ""  # sequences the source dropped (limits) before they were copied
    began: float = field(default_factory=time.monotonic, repr=False)

    @property
    def rate(self) -> float:
        """Messages per second in this run."""
        elapsed = time.monotonic() - self.began
        return self.copied / elapsed if elapsed > 0 and self.copied else 0.0

    @property
    def lag(self) -> int:
        return max(self.end - self.last_copied, 0)

    @property
    def eta(self) -> float | None:
        return self.lag / self.rate if self.rate > 0 and self.lag else (0.0 if not self.lag else None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "stream": self.stream,
            "created": self.created,
            "resumed_after": self.resumed_after,
            "copied": self.copied,
            "last_copied": self.last_copied,
            "channel_last_seq": self.end,
            "lag": self.lag,
            "rate": round(self.rate, 1),
            "eta_seconds": None if self.eta is None else round(self.eta, 1),
            "done": self.done,
            **({"skipped_by_limits": self.skipped_by_limits} if self.skipped_by_limits else {}),
        }


def check_channels(plan: Plan, found: Survey) -> None:
    """A planned channel the source does not have stops everything before anything is created."""
    for channel in plan.active_channels():
        if channel_now(found, channel.channel) is None:
            raise NotFound(
                f"plan: channel {channel.channel!r} is not on NATS Streaming cluster {plan.cluster_id!r}",
                hint="remove it from the plan or set 'skip: true'",
            )


class Copier:
    def __init__(
        self, plan: Plan, source_settings: Settings, target_settings: Settings, *, follow: bool = False
    ) -> None:
        self.plan = plan
        self.source_settings = source_settings
        self.target_settings = target_settings
        self.follow = follow
        self.copies = [ChannelCopy(c.channel, c.stream) for c in plan.active_channels()]
        self.source: Source | None = None
        self.stopped = False
        # Called as the copy moves; ``milestone`` (a channel's first copied message, a channel done) asks
        # for the progress to be shown now rather than at its next turn.
        self.on_change: Callable[..., None] = lambda milestone=False: None
        self.on_note: Callable[[str], None] = lambda _text: None

    def stop(self) -> None:
        self.stopped = True
        if self.source is not None:
            self.source.stop()

    async def run(self) -> list[ChannelCopy]:
        from natsctl.opener import open_migration_source, open_migration_target

        found = await survey(self.source_settings)
        check_channels(self.plan, found)
        target: Target = await open_migration_target(self.target_settings)
        try:
            exists = {c.channel: await target.check_stream(c) for c in self.plan.active_channels()}
            self.source = await open_migration_source(self.source_settings)
            if self.stopped:
                self.source.stop()
            try:
                watcher = asyncio.ensure_future(self._watch_lag()) if self.follow else None
                try:
                    await asyncio.gather(
                        *(
                            self._copy(channel, copy, target, found, exists[channel.channel])
                            for channel, copy in zip(self.plan.active_channels(), self.copies, strict=True)
                        )
                    )
                finally:
                    if watcher is not None:
                        watcher.cancel()
            finally:
                await self.source.close()
        finally:
            await target.close()
        return self.copies

    async def _copy(self, channel: ChannelPlan, copy: ChannelCopy, target: Target, found: Survey, exists: bool) -> None:
        assert self.source is not None
        now = channel_now(found, channel.channel)
        first, last = (now.first_seq, now.last_seq) if now else (0, 0)
        copy.end = last
        if not exists:
            await target.create_stream(channel, first if now and now.messages else last + 1)
            copy.created = True
        copy.resumed_after = copy.last_copied = await target.last_copied(channel)
        start = copy.resumed_after + 1 if copy.resumed_after else max(first, 1)
        if copy.resumed_after and now and now.messages and first > start:
            copy.skipped_by_limits = f"{start}-{first - 1}"
            self.on_note(
                f"channel {channel.channel!r}: sequences {start}-{first - 1} were removed by the server's limits "
                "before they were copied"
            )
            start = first
        copy.start = start
        copy.began = time.monotonic()

        def confirmed(sequence: int) -> None:
            copy.copied += 1
            copy.last_copied = sequence
            if sequence > copy.end:
                copy.end = sequence
            self.on_change(copy.copied == 1)

        if not self.stopped:
            await target.publish(channel, self.source.read(channel.channel, start, follow=self.follow), confirmed)
        copy.done = True
        self.on_change(True)

    async def _watch_lag(self) -> None:
        """While following: the channels' last sequences, for the lag (a failed look is tried again)."""
        while True:
            await asyncio.sleep(LAG_EVERY)
            try:
                found = await survey(self.source_settings)
            except Exception:  # noqa: BLE001 - the lag shown is older for a moment, the copy goes on
                continue
            for copy in self.copies:
                now = channel_now(found, copy.channel)
                if now is not None:
                    copy.end = max(copy.end, now.last_seq)
            self.on_change()
