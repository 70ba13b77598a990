"""The JetStream side of `natsctl migrate`: streams made for channels, messages copied with the
migration headers through natsctl's publish pipeline, the copy read back, durables positioned."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from collections.abc import AsyncIterator, Callable

from nats.js import api
from nats.js import errors as js_errors

from natsctl.core.errors import NatsctlError, NotFound, PublishInterrupted, ServerError, Timeout, UsageError
from natsctl.core.migrate import (
    CHANNEL_HEADER,
    HEADER_ROOM,
    SEQUENCE_HEADER,
    TIMESTAMP_HEADER,
    ChannelPlan,
    CopiedMessage,
    DurablePlan,
    SourceMessage,
    Target,
    message_id,
)
from natsctl.core.model import (
    Message,
    OutgoingMessage,
    PublishAck,
    StartKind,
    StartPosition,
    StreamOptions,
    SubscribeSpec,
)
from natsctl.core.settings import Settings
from natsctl.core.timeparse import parse_duration

from .admin import consumer_config, stream_config
from .backend import JetStreamBackend, connect

MARK = "natsctl_migrate"  # consumer metadata: "positioning" until every ack is in, then "positioned"
SCAN_BACK = 10_000  # messages looked at from the end of a stream for the last copied one


def _header(headers: dict[str, list[str]] | None, key: str) -> str | None:
    values = (headers or {}).get(key)
    return values[0] if values else None


def _number(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class JetStreamTarget(Target):
    def __init__(self, backend: JetStreamBackend) -> None:
        self.backend = backend
        self.js = backend.js
        self.admin = backend.admin
        self.max_payload = backend.max_payload

    @classmethod
    async def open(cls, settings: Settings) -> JetStreamTarget:
        return cls(await connect(settings))

    def _failed(self, exc: BaseException, doing: str) -> NatsctlError:
        return self.admin._failed(exc, doing)

    # -- streams ----------------------------------------------------------------------------------

    async def _info(self, stream: str) -> api.StreamInfo | None:
        try:
            return await self.admin.while_electing(lambda: self.js.stream_info(stream))
        except js_errors.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"looking up stream {stream!r}") from None

    async def check_stream(self, channel: ChannelPlan) -> bool:
        info = await self._info(channel.stream)
        if info is None:
            holder = await self.admin.stream_for_subject(channel.channel)
            if holder:
                raise UsageError(
                    f"channel {channel.channel!r}: stream {holder!r} already holds that subject on the target; "
                    f"name it as the channel's stream in the plan, or remove it"
                )
            return False
        subjects = list(info.config.subjects or [])
        if subjects != [channel.channel]:
            raise UsageError(
                f"channel {channel.channel!r}: stream {channel.stream!r} exists on the target with other subjects "
                f"({', '.join(subjects) or 'none'}); pick another stream name in the plan"
            )
        return True

    async def create_stream(self, channel: ChannelPlan, first_seq: int) -> None:
        options = StreamOptions(
            replicas=channel.replicas,
            max_age=parse_duration(channel.max_age) if channel.max_age else None,
            max_msgs=channel.max_msgs,
            max_bytes=channel.max_bytes,
        )
        config = stream_config(channel.channel, options)
        config.name = channel.stream
        config.description = f"natsctl migration of NATS Streaming channel {channel.channel}"
        # Stream sequences equal channel sequences from the start (JetStream's first_seq).
        config.first_seq = first_seq if first_seq > 1 else None
        try:
            await self.admin.add_stream_asking_again(config)
        except js_errors.BadRequestError as exc:
            raise ServerError(
                f"channel {channel.channel!r}: JetStream refused stream {channel.stream!r}: {exc.description}"
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"creating stream {channel.stream!r}") from None

    async def _message(self, stream: str, seq: int) -> api.RawStreamMsg | None:
        try:
            return await self.js.get_msg(stream, seq)
        except js_errors.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"reading message {seq} of stream {stream!r}") from None

    async def _channel_seq_at(self, stream: str, seq: int) -> int | None:
        msg = await self._message(stream, seq)
        return None if msg is None else _number(_header(_raw_headers(msg), SEQUENCE_HEADER))

    async def last_copied(self, channel: ChannelPlan) -> int:
        info = await self._info(channel.stream)
        if info is None or not info.state.messages:
            return 0
        first, last = info.state.first_seq, info.state.last_seq
        # Messages published straight to JetStream (a service moved already) carry no header: look past them.
        for seq in range(last, max(first, last - SCAN_BACK) - 1, -1):
            found = await self._channel_seq_at(channel.stream, seq)
            if found is not None:
                return found
        raise ServerError(
            f"channel {channel.channel!r}: stream {channel.stream!r} holds messages but none copied by natsctl migrate "
            f"among its last {SCAN_BACK:,}"
        )

    async def stream_sequence_of(self, channel: ChannelPlan, sequence: int) -> int | None:
        info = await self._info(channel.stream)
        if info is None or not info.state.messages:
            return None
        low, high = info.state.first_seq, info.state.last_seq
        if low <= sequence <= high and await self._channel_seq_at(channel.stream, sequence) == sequence:
            return sequence  # the stream was created with the channel's sequences (the usual case)
        while low <= high:  # channel sequences grow with stream sequences: a binary search
            middle = (low + high) // 2
            found = await self._channel_seq_at(channel.stream, middle)
            if found is None:
                return None
            if found == sequence:
                return middle
            if found < sequence:
                low = middle + 1
            else:
                high = middle - 1
        return None

    # -- copying ----------------------------------------------------------------------------------

    async def publish(
        self, channel: ChannelPlan, batches: AsyncIterator[list[SourceMessage]], on_confirmed: Callable[[int], None]
    ) -> int:
        sent: deque[int] = deque()
        name = channel.channel
        # The header block in frames.header_block's layout, made with one format per message: the
        # three migration headers, then the message id (stan:CHANNEL:SEQ).
        head = b"NATS/1.0\r\n%s: %s\r\n%s: " % (CHANNEL_HEADER.encode(), name.encode(), SEQUENCE_HEADER.encode())
        middle = TIMESTAMP_HEADER.encode() + b": "
        id_prefix = message_id(name, 0)[:-1]
        tail = b"Nats-Msg-Id: " + id_prefix.encode()
        limit = self.max_payload
        count = 0

        async def messages() -> AsyncIterator[OutgoingMessage]:
            async for batch in batches:
                for m in batch:
                    if len(m.data) + HEADER_ROOM > limit:
                        raise ServerError(
                            f"channel {name!r} sequence {m.sequence}: {len(m.data):,} bytes plus the migration headers "
                            f"do not fit the target's max_payload of {limit:,} bytes",
                            hint=f"raise max_payload on the target to at least {len(m.data) + HEADER_ROOM:,}",
                        )
                    sent.append(m.sequence)
                    block = b"%s%d\r\n%s%d\r\n%s%d\r\n\r\n" % (head, m.sequence, middle, m.timestamp, tail, m.sequence)
                    # With a msg_id the pipeline sends the message with its headers: the block, which holds it.
                    yield _Ready(data=m.data, msg_id=f"{id_prefix}{m.sequence}", block=block)

        def on_ack(ack: PublishAck) -> None:
            nonlocal count
            count += 1
            on_confirmed(sent.popleft())

        def on_error(_index: int, message: OutgoingMessage, reason: str) -> None:
            sequence = message.block.split(b"\r\n")[2].split(b": ")[1].decode() if isinstance(message, _Ready) else "?"
            raise ServerError(f"channel {name!r} sequence {sequence}: not copied: {reason}")

        try:
            await self.backend.publish(name, messages(), create=False, on_ack=on_ack, on_error=on_error)
        except PublishInterrupted as exc:
            raise exc.cause from None
        return count

    async def read(self, channel: ChannelPlan) -> AsyncIterator[list[CopiedMessage]]:
        info = await self._info(channel.stream)
        if info is None:
            raise NotFound(
                f"channel {channel.channel!r}: no stream {channel.stream!r} on the target (run migrate copy)"
            )
        if not info.state.messages:
            return
        spec = SubscribeSpec(
            channel=channel.channel, start=StartPosition(StartKind.ALL), ack=False, stop_at_end=True, create=False
        )
        subscription = await self.backend.subscribe(spec)
        try:
            async for batch in subscription.batches():
                yield [
                    CopiedMessage(
                        stream_sequence=m.sequence,
                        channel=_header(m.headers, CHANNEL_HEADER),
                        sequence=_number(_header(m.headers, SEQUENCE_HEADER)),
                        timestamp=_number(_header(m.headers, TIMESTAMP_HEADER)),
                        data=m.data,
                    )
                    for m in batch
                ]
        finally:
            await subscription.close()

    # -- durables ---------------------------------------------------------------------------------

    def _spec(self, channel: ChannelPlan, durable: DurablePlan, start: int | None, room: int) -> SubscribeSpec:
        return SubscribeSpec(
            channel=channel.channel,
            start=StartPosition(StartKind.SEQUENCE, sequence=start) if start else StartPosition(StartKind.NEW),
            durable=durable.to_durable,
            queue=durable.to_queue or None,
            ack_wait=float(max(durable.ack_wait, 30)),
            max_in_flight=max(durable.max_inflight, room),
            create=False,
        )

    async def _consumer(self, stream: str, name: str) -> api.ConsumerInfo | None:
        try:
            return await self.admin.while_electing(lambda: self.js.consumer_info(stream, name))
        except js_errors.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"looking up durable {name!r} on {stream!r}") from None

    async def position_durable(
        self, channel: ChannelPlan, durable: DurablePlan, start: int | None, acked: list[int], unacked: list[int]
    ) -> bool:
        existing = await self._consumer(channel.stream, durable.consumer)
        if existing is not None:
            mark = (existing.config.metadata or {}).get(MARK)
            if mark != "positioning":
                return False  # positioned by an earlier run, or made by someone else: left as it is
            await self.admin.delete_consumer(channel.stream, durable.consumer, quietly=False)  # half-done: again
        walk = len(acked) + len(unacked)
        spec = self._spec(channel, durable, start, len(unacked) + 64)
        config = consumer_config(spec, durable.consumer)
        config.metadata = {**(config.metadata or {}), MARK: "positioning" if walk else "positioned"}
        try:
            await self.admin.while_electing(lambda: self.js.add_consumer(channel.stream, config))
        except js_errors.BadRequestError as exc:
            raise ServerError(
                f"durable {durable.label!r}: JetStream refused consumer {durable.consumer!r}: {exc.description}"
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"creating durable {durable.consumer!r}") from None
        if not walk:
            return True
        # Take the messages from the start up to the last one the durable was sent; ack what NATS
        # Streaming had acked, then ask again for the rest, so they are delivered again first.
        wanted_acks = set(acked)
        held: list[Message] = []
        subscription = await self.backend.subscribe(dataclasses.replace(spec, max_messages=walk))
        limit = max(10.0, self.backend.settings.timeout * 2)
        taken = 0
        try:
            try:
                async with asyncio.timeout(limit):
                    async for batch in subscription.batches():
                        taken += len(batch)
                        done = [m for m in batch if m.sequence in wanted_acks]
                        held.extend(m for m in batch if m.sequence not in wanted_acks)
                        await subscription.ack(done)
            except TimeoutError:
                raise Timeout(
                    f"durable {durable.label!r}: {taken} of {walk} messages came from stream {channel.stream!r} "
                    f"within {limit:g}s; run migrate durables again"
                ) from None
            for message in held:
                await subscription.nak(message)
            await self.backend.nc.flush()
        finally:
            await subscription.close()
        config.metadata = {**config.metadata, MARK: "positioned"}
        try:
            await self.admin.while_electing(lambda: self.js.add_consumer(channel.stream, config))
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"marking durable {durable.consumer!r} positioned") from None
        return True

    async def durable_position(self, channel: ChannelPlan, durable: DurablePlan) -> tuple[int, int, int, str] | None:
        info = await self._consumer(channel.stream, durable.consumer)
        if info is None:
            return None
        floor = info.ack_floor.stream_seq if info.ack_floor else 0
        delivered = info.delivered.stream_seq if info.delivered else 0
        mark = (info.config.metadata or {}).get(MARK, "")
        return floor or 0, delivered or 0, info.num_ack_pending or 0, mark

    async def close(self) -> None:
        await self.backend.close()


@dataclasses.dataclass(slots=True)
class _Ready(OutgoingMessage):
    """A copied message with its header block made already (the publish pipeline takes it as it is)."""

    block: bytes = b""


def _raw_headers(msg: api.RawStreamMsg) -> dict[str, list[str]]:
    return {key: [value] for key, value in (msg.headers or {}).items()}


async def open_target(settings: Settings) -> JetStreamTarget:
    return await JetStreamTarget.open(settings)
