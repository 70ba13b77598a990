"""Channel and durable management on NATS Streaming, as far as its protocol goes.

The protocol can create a channel (a subscription creates it), read one message (a subscription that
starts at it) and delete a durable (resume it, then unsubscribe: only while its client is not
connected). Everything else is server configuration; each refusal names the setting that does it.
Listing channels and durables is the monitoring port's job (natsctl's monitoring layer).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from natsctl.core.errors import NotFound, Unsupported, UsageError
from natsctl.core.manage import (
    ChannelAdmin,
    ChannelDetails,
    Durable,
    DurableRef,
    EditResult,
    PurgeResult,
    Removed,
    ResetResult,
)
from natsctl.core.model import Message, StartKind, StartPosition, StreamOptions, SubscribeSpec

from . import proto
from .protocol import check_channel

if TYPE_CHECKING:
    from .backend import StanBackend

NO_PURGE = (
    "NATS Streaming cannot purge a channel: its server drops old messages by the store limits "
    "max_msgs, max_bytes and max_age (store_limits, or per channel under channels)"
)
NO_EDIT = (
    "NATS Streaming channel limits are server configuration: set max_msgs, max_bytes, max_age and max_subs "
    "in store_limits (or per channel under channels) and restart the server"
)
NO_DELETE = (
    "NATS Streaming has no channel delete: the server deletes a channel without subscriptions and new "
    "messages for max_inactivity (store_limits, or per channel under channels)"
)
NO_DELETE_MESSAGE = (
    "NATS Streaming cannot delete one message: its server drops messages only by the store limits "
    "max_msgs, max_bytes and max_age"
)
NO_RESET = (
    "NATS Streaming cannot move a durable: remove it ('natsctl durable rm') and subscribe again with "
    "--durable and --seq, --since, --all or --last"
)
NO_PAUSE = "NATS Streaming has no pause: stop the durable's subscribers (its position is kept while they are away)"
NO_LISTING = "NATS Streaming lists channels and durables through its monitoring port"


class StanAdmin(ChannelAdmin):
    def __init__(self, backend: StanBackend) -> None:
        self.backend = backend
        self.client = backend.client

    async def _exists(self, channel: str) -> bool | None:
        from .lookup import channel_exists

        if self.backend.settings is None:
            return None
        return (await asyncio.to_thread(channel_exists, self.backend.settings, channel)).exists

    async def add_channel(self, channel: str, options: StreamOptions) -> ChannelDetails:
        """A subscription creates a missing channel: subscribe for new messages only, then leave."""
        check_channel(channel)
        if options != StreamOptions():
            raise Unsupported(
                "--replicas, --storage, --max-age, --max-msgs, --max-bytes, --discard and --dupe-window shape "
                "JetStream streams only; NATS Streaming channel limits are set on its server (store_limits)"
            )
        existed = await self._exists(channel)
        request = dict(
            subject=channel,
            maxInFlight=1,
            ackWaitInSecs=30,
            startPosition=proto.START_POSITIONS["NewOnly"],
        )
        handle = await self.client.subscribe(request, lambda payload: None)
        await handle.close(unsubscribe=True)
        return ChannelDetails(channel=channel, stream="", kind="channel", created=existed is False)

    async def channel_details(self, channel: str) -> ChannelDetails:
        raise Unsupported(NO_LISTING)

    async def edit_channel(self, channel: str, changes: dict[str, Any], *, apply: bool) -> EditResult:
        raise Unsupported(NO_EDIT)

    async def purge_channel(
        self, channel: str, *, below: int | None = None, keep: int | None = None, subject: str | None = None
    ) -> PurgeResult:
        raise Unsupported(NO_PURGE)

    async def remove_channel(self, channel: str) -> Removed:
        raise Unsupported(NO_DELETE)

    async def get_message(self, channel: str, *, sequence: int | None = None, last_for: str | None = None) -> Message:
        """A subscription that starts at the message (or at the last one), read to the channel's end."""
        if last_for is not None and last_for != channel:
            raise UsageError(
                f"--last-for {last_for!r}: a NATS Streaming channel has one subject, its name ({channel!r})"
            )
        start = (
            StartPosition(StartKind.SEQUENCE, sequence=sequence)
            if sequence is not None
            else StartPosition(StartKind.LAST)
        )
        spec = SubscribeSpec(
            channel=channel, start=start, ack=False, create=False, stop_at_end=True, max_messages=1, max_in_flight=1
        )
        subscription = await self.backend.subscribe(spec)
        found: Message | None = None
        try:
            async for batch in subscription.batches():
                if batch:
                    found = batch[0]
                    break
        finally:
            await subscription.close()
        if found is None or (sequence is not None and found.sequence != sequence):
            what = f"message {sequence}" if sequence is not None else "message"
            raise NotFound(f"no {what} in channel {channel!r}")
        return found

    async def remove_message(self, channel: str, sequence: int) -> Removed:
        raise Unsupported(NO_DELETE_MESSAGE)

    async def durables(self, channel: str | None) -> list[Durable]:
        raise Unsupported(NO_LISTING)

    async def durable(self, ref: DurableRef) -> Durable:
        raise Unsupported(NO_LISTING)

    async def remove_durable(self, ref: DurableRef) -> Removed:
        """Resume the durable under its client id, then unsubscribe: the server deletes it.

        The server refuses the client id while the durable's client is connected ("clientID already
        registered", raised when connecting); a durable queue group is deleted when its last member leaves.
        """
        check_channel(ref.channel)
        request = dict(
            subject=ref.channel,
            qGroup=ref.queue or None,
            durableName=ref.name,
            maxInFlight=1,
            ackWaitInSecs=30,
            startPosition=proto.START_POSITIONS["NewOnly"],
        )
        handle = await self.client.subscribe(request, lambda payload: None)
        await handle.close(unsubscribe=True)
        return Removed(channel=ref.channel, stream="", what="durable", name=ref.name)

    async def reset_durable(self, ref: DurableRef, start: StartPosition) -> ResetResult:
        raise Unsupported(NO_RESET)

    async def pause_durable(self, ref: DurableRef, until: datetime | None) -> Durable:
        raise Unsupported(NO_PAUSE)
