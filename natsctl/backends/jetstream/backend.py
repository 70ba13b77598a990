"""The JetStream backend: a channel is a stream whose subject is the channel name."""

from __future__ import annotations

from nats.aio.client import Client
from nats.js import api

from natsctl.backends.jetstream.admin import Admin, api_prefix, stream_config
from natsctl.backends.jetstream.deadletter import DeadLetterOps
from natsctl.backends.jetstream.publish import PublishPipeline
from natsctl.backends.jetstream.pull import PullSubscription
from natsctl.backends.jetstream.push import PushReplay, pushes
from natsctl.backends.jetstream.resolve import resolve_name, resolve_stream
from natsctl.core.backend import (
    AckCallback,
    Backend,
    ErrorCallback,
    Messages,
    Subscription,
)
from natsctl.core.errors import NotFound
from natsctl.core.manage import ChannelAdmin
from natsctl.core.model import ChannelRef, PublishSummary, StreamOptions, SubscribeSpec
from natsctl.core.names import validate_durable
from natsctl.core.settings import Settings
from natsctl.core.subjects import has_wildcard
from natsctl.transport.connect import Notify, close_quietly, connect_nats, stderr_notify

# A missing channel met by a reader that never creates one (replay, verify).
READER_MISSING_HINT = "check the name ('natsctl channels' lists the channels there); reading a channel never creates it"
# ... by pub or sub --no-create.
NO_CREATE_HINT = "drop --no-create to let natsctl create it, or create a stream for that subject"


async def connect(settings: Settings, notify: Notify = stderr_notify) -> JetStreamBackend:
    client = await connect_nats(settings, notify=notify)
    return JetStreamBackend(client, settings)


class JetStreamBackend(DeadLetterOps, Backend):
    kind = "jetstream"
    supports_headers = True

    def __init__(self, client: Client, settings: Settings, stream_options: StreamOptions | None = None) -> None:
        self.nc = client
        self.settings = settings
        self.stream_options = stream_options or StreamOptions()
        self.api_prefix = api_prefix(settings)  # next-requests are sent under it, as the API calls are
        self.js = client.jetstream(prefix=self.api_prefix, timeout=settings.timeout)
        self.admin = Admin(client, self.js, settings)
        self._channels: dict[str, ChannelRef] = {}

    @property
    def max_payload(self) -> int:
        return self.nc.max_payload

    async def close(self) -> None:
        await close_quietly(self.nc)

    def manager(self) -> ChannelAdmin:
        from natsctl.backends.jetstream.manage import JetStreamAdmin

        return JetStreamAdmin(self)

    # Stream creation as tests/test_jetstream_backend.py drives it, without a channel lookup first.
    def _stream_config(self, channel: str) -> api.StreamConfig:
        return stream_config(channel, self.stream_options)

    async def _add_stream_asking_again(self, config: api.StreamConfig) -> None:
        await self.admin.add_stream_asking_again(config)

    async def resolve_channel(self, channel: str, *, create: bool) -> ChannelRef:
        """A channel (subject), a stream's name or a pattern a stream covers (natsctl/backends/jetstream/resolve.py)."""
        known = self._channels.get(channel)
        if known:
            return known
        ref = await resolve_name(self.admin, channel, create=create, options=self.stream_options)
        self._channels[channel] = ref
        return ref

    async def resolve_stream(self, name: str) -> ChannelRef:
        """``--stream NAME``: the whole stream of that name."""
        return await resolve_stream(self.admin, name)

    async def publish(
        self,
        channel: str,
        messages: Messages,
        *,
        create: bool = True,
        on_ack: AckCallback | None = None,
        on_error: ErrorCallback | None = None,
    ) -> PublishSummary:
        """Publish ``messages``; an error on the way comes out as ``PublishInterrupted`` (with what was confirmed)."""
        try:
            ref = await self.resolve_channel(channel, create=create)
        except NotFound as exc:
            raise NotFound(exc.message, hint=exc.hint if create or has_wildcard(channel) else NO_CREATE_HINT) from None
        if ref.created:
            await self.admin.until_stream_listens(ref)
        pipeline = PublishPipeline(self, ref, on_ack, on_error)
        return await pipeline.run(messages)

    async def subscribe(self, spec: SubscribeSpec) -> Subscription:
        try:
            if spec.whole_stream:
                ref = await self.resolve_stream(spec.channel)
            else:
                ref = await self.resolve_channel(spec.channel, create=spec.create)
        except NotFound as exc:
            if spec.whole_stream or has_wildcard(spec.channel):
                raise  # its hint says what to do
            # sub --no-create: drop it; replay and verify never create a channel: no flag of theirs would help
            raise NotFound(exc.message, hint=NO_CREATE_HINT if spec.ack else READER_MISSING_HINT) from None
        for name, what in ((spec.durable, "durable"), (spec.queue, "queue group")):
            if name is not None:
                validate_durable(name, what)
        reader = PushReplay if pushes(spec) else PullSubscription
        subscription = reader(self, spec, ref)
        await subscription.start()
        return subscription
