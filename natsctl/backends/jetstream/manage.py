"""Channel and durable management on JetStream: streams and consumers through the JetStream API.

Features of newer servers are used only where the server's INFO says it has them: consumer pause
(nats-server 2.11) and consumer reset (2.14). Without reset a durable is moved by deleting it and
making it again with the same configuration at the new position (the result says which happened).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nats.js import api
from nats.js import errors as js_errors

from natsctl.backends.jetstream.admin import consumer_name
from natsctl.core.errors import NotFound, ServerError, Unsupported, UsageError
from natsctl.core.manage import (
    PAUSE_SINCE,
    RESET_SINCE,
    Change,
    ChannelAdmin,
    ChannelDetails,
    Durable,
    DurableRef,
    EditResult,
    PurgeResult,
    Removed,
    ResetResult,
    version_text,
)
from natsctl.core.model import ChannelRef, Message, StartKind, StartPosition, StreamOptions, SubscribeSpec
from natsctl.core.names import validate_durable
from natsctl.core.timeparse import format_time

if TYPE_CHECKING:
    from natsctl.backends.jetstream.backend import JetStreamBackend

# StreamOptions field -> (StreamConfig field, how the server's value reads as the option's)
EDITABLE = {
    "max_age": "max_age",
    "max_msgs": "max_msgs",
    "max_bytes": "max_bytes",
    "discard": "discard",
    "duplicate_window": "duplicate_window",
    "replicas": "num_replicas",
}


def plain(value: Any) -> Any:
    """A nats-py API object as JSON-ready values: enums by value, None fields left out."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return format_time(value)
    return value


def _option_value(name: str, config: api.StreamConfig) -> Any:
    value = getattr(config, EDITABLE[name])
    if name == "discard":
        return (value.value if value else "old").lower()
    if name in ("max_msgs", "max_bytes", "max_age") and (value is None or value <= 0):
        return None  # unlimited
    if name == "replicas":
        return value or 1
    return value


def _server_value(name: str, value: Any) -> Any:
    if name == "discard":
        return api.DiscardPolicy.NEW if value == "new" else api.DiscardPolicy.OLD
    return value


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class JetStreamAdmin(ChannelAdmin):
    def __init__(self, backend: JetStreamBackend) -> None:
        self.backend = backend
        self.nc = backend.nc
        self.js = backend.js
        self.settings = backend.settings

    # -- plumbing ------------------------------------------------------------------------------------

    def version(self) -> tuple[int, int, int]:
        found = self.nc.connected_server_version
        return (found.major, found.minor, found.patch)

    def _needs(self, since: tuple[int, int, int], what: str) -> None:
        have = self.version()
        if have < since:
            raise Unsupported(
                f"{what} needs nats-server {version_text(since)} or later; "
                f"the server at {self.settings.redacted_servers()} runs {version_text(have)}"
            )

    def _failed(self, exc: BaseException, doing: str) -> Exception:
        return self.backend.admin._failed(exc, doing)

    async def _request(self, subject: str, body: dict[str, Any] | None, doing: str) -> dict[str, Any]:
        """A raw JetStream API request (for what nats-py has no call for); an error answer raised as ours."""
        try:
            reply = await self.nc.request(
                f"{self.backend.api_prefix}.{subject}",
                json.dumps(body).encode() if body is not None else b"",
                timeout=self.settings.timeout,
            )
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise self._failed(exc, doing) from None
        answer = json.loads(reply.data or b"{}")
        error = answer.get("error")
        if error:
            text = f"{doing}: {error.get('description') or error}"
            raise NotFound(text) if error.get("code") == 404 else ServerError(text)
        return answer

    async def _ref(self, channel: str) -> ChannelRef:
        try:
            return await self.backend.resolve_channel(channel, create=False)
        except NotFound as exc:
            raise NotFound(
                exc.message, hint="'natsctl channels' lists the channels; 'natsctl channel add' creates one"
            ) from None

    async def _stream_info(self, ref: ChannelRef) -> api.StreamInfo:
        try:
            return await self.backend.admin.while_electing(lambda: self.js.stream_info(ref.stream))
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"reading stream {ref.stream!r}") from None

    def _details(self, ref: ChannelRef, info: api.StreamInfo, created: bool = False) -> ChannelDetails:
        state = info.state
        raw_state = plain(state)
        return ChannelDetails(
            channel=ref.channel,
            stream=ref.stream,
            kind="stream",
            subjects=list(info.config.subjects or []),
            messages=state.messages,
            bytes=state.bytes,
            first_seq=state.first_seq,
            last_seq=state.last_seq,
            first_time=raw_state.get("first_ts"),
            last_time=raw_state.get("last_ts"),
            consumers=state.consumer_count,
            created=created,
            config=plain(info.config),
            state=raw_state,
        )

    # -- channels ------------------------------------------------------------------------------------

    async def _times(self, details: ChannelDetails) -> ChannelDetails:
        """The first and last message times (nats-py's StreamState leaves them out): from the raw answer."""
        if details.messages:
            state = (await self._request(f"STREAM.INFO.{details.stream}", None, "reading the stream")).get("state", {})
            details.first_time = state.get("first_ts")
            details.last_time = state.get("last_ts")
            details.state.update(first_ts=details.first_time, last_ts=details.last_time)
        return details

    async def add_channel(self, channel: str, options: StreamOptions) -> ChannelDetails:
        self.backend.stream_options = options
        ref = await self.backend.resolve_channel(channel, create=True)
        return await self._times(self._details(ref, await self._stream_info(ref), created=ref.created))

    async def channel_details(self, channel: str) -> ChannelDetails:
        ref = await self._ref(channel)
        details = await self._times(self._details(ref, await self._stream_info(ref)))
        details.durables = [self._durable(ref, c) for c in await self._consumers(ref.stream)]
        return details

    async def edit_channel(self, channel: str, changes: dict[str, Any], *, apply: bool) -> EditResult:
        ref = await self._ref(channel)
        config = (await self._stream_info(ref)).config
        result = EditResult(channel=ref.channel, stream=ref.stream)
        updated = config
        for name, value in changes.items():
            before = _option_value(name, config)
            if value == before:
                continue
            result.changes.append(Change(name, before, value))
            updated = dataclasses.replace(updated, **{EDITABLE[name]: _server_value(name, value)})
        if apply and result.changes:
            try:
                await self.js.update_stream(updated)
            except js_errors.BadRequestError as exc:
                raise ServerError(
                    f"the server refused the change to stream {ref.stream!r}: {exc.description}"
                ) from None
            except Exception as exc:  # noqa: BLE001
                raise self._failed(exc, f"updating stream {ref.stream!r}") from None
            result.applied = True
        return result

    async def purge_channel(
        self, channel: str, *, below: int | None = None, keep: int | None = None, subject: str | None = None
    ) -> PurgeResult:
        ref = await self._ref(channel)
        body: dict[str, Any] = {}
        if below is not None:
            body["seq"] = below
        if keep is not None:
            body["keep"] = keep
        if subject is not None:
            body["filter"] = subject
        answer = await self._request(f"STREAM.PURGE.{ref.stream}", body or None, f"purging stream {ref.stream!r}")
        state = (await self._stream_info(ref)).state
        return PurgeResult(
            channel=ref.channel,
            stream=ref.stream,
            purged=int(answer.get("purged", 0)),
            messages=state.messages,
            first_seq=state.first_seq,
            last_seq=state.last_seq,
        )

    async def remove_channel(self, channel: str) -> Removed:
        ref = await self._ref(channel)
        await self._request(f"STREAM.DELETE.{ref.stream}", None, f"deleting stream {ref.stream!r}")
        self.backend._channels.pop(channel, None)
        return Removed(channel=ref.channel, stream=ref.stream, what="channel")

    async def get_message(self, channel: str, *, sequence: int | None = None, last_for: str | None = None) -> Message:
        ref = await self._ref(channel)
        what = f"message {sequence}" if sequence is not None else f"last message of {last_for!r}"
        try:
            if sequence is not None:
                raw = await self.js.get_msg(ref.stream, seq=sequence)
            else:
                raw = await self.js.get_msg(ref.stream, subject=last_for)
        except js_errors.NotFoundError:
            raise NotFound(f"no {what} in channel {ref.channel!r} (stream {ref.stream!r})") from None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"reading {what} of stream {ref.stream!r}") from None
        headers = {k: [v] for k, v in (raw.headers or {}).items()} or None
        return Message(
            channel=ref.channel,
            subject=raw.subject or ref.channel,
            sequence=raw.seq or 0,
            time=_moment(raw.time),
            data=raw.data or b"",
            headers=headers,
        )

    async def remove_message(self, channel: str, sequence: int) -> Removed:
        ref = await self._ref(channel)
        await self._request(
            f"STREAM.MSG.DELETE.{ref.stream}", {"seq": sequence}, f"deleting message {sequence} of {ref.stream!r}"
        )
        return Removed(channel=ref.channel, stream=ref.stream, what="message", sequence=sequence)

    # -- durables ------------------------------------------------------------------------------------

    def _durable(self, ref: ChannelRef, info: api.ConsumerInfo) -> Durable:
        config = info.config
        queue = (config.metadata or {}).get("natsctl_queue", "")
        name = config.durable_name or info.name
        if queue and name.endswith(f"_{queue}"):
            name = name[: -len(queue) - 1]
        raw = plain(config)
        return Durable(
            channel=config.filter_subject or ref.channel,
            stream=ref.stream,
            name=name,
            queue=queue,
            consumer=info.name,
            start=raw.get("deliver_policy", ""),
            delivered_seq=info.delivered.stream_seq if info.delivered else None,
            ack_floor_seq=info.ack_floor.stream_seq if info.ack_floor else None,
            pending=info.num_pending,
            unacked=info.num_ack_pending,
            redelivered=info.num_redelivered,
            waiting=info.num_waiting,
            paused=bool(info.paused),
            pause_until=raw.get("pause_until") if info.paused else None,
            config=raw,
        )

    async def _consumers(self, stream: str) -> list[api.ConsumerInfo]:
        try:
            return await self.backend.admin.while_electing(lambda: self.js.consumers_info(stream))
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"listing the consumers of {stream!r}") from None

    async def durables(self, channel: str | None) -> list[Durable]:
        if channel is not None:
            ref = await self._ref(channel)
            found = [self._durable(ref, c) for c in await self._consumers(ref.stream)]
            return [d for d in found if d.channel == ref.channel]
        try:
            streams = await self.js.streams_info()
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, "listing the streams") from None
        result: list[Durable] = []
        for stream in sorted(streams, key=lambda s: s.config.name or ""):
            subjects = stream.config.subjects or []
            ref = ChannelRef(channel=subjects[0] if len(subjects) == 1 else "", stream=stream.config.name or "")
            result += [self._durable(ref, c) for c in await self._consumers(ref.stream)]
        return sorted(result, key=lambda d: (d.channel, d.name, d.queue))

    async def _consumer(self, ref: DurableRef) -> tuple[ChannelRef, api.ConsumerInfo]:
        validate_durable(ref.name)
        if ref.queue is not None:
            validate_durable(ref.queue, "queue group")
        channel = await self._ref(ref.channel)
        name = consumer_name(SubscribeSpec(channel=ref.channel, durable=ref.name, queue=ref.queue)) or ref.name
        try:
            info = await self.backend.admin.while_electing(lambda: self.js.consumer_info(channel.stream, name))
        except js_errors.NotFoundError:
            group = f" in queue group {ref.queue!r}" if ref.queue else ""
            raise NotFound(
                f"no durable {ref.name!r}{group} on channel {ref.channel!r} (stream {channel.stream!r})",
                hint=f"'natsctl durable ls {ref.channel}' lists them",
            ) from None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"reading consumer {name!r}") from None
        return channel, info

    async def durable(self, ref: DurableRef) -> Durable:
        channel, info = await self._consumer(ref)
        return self._durable(channel, info)

    async def remove_durable(self, ref: DurableRef) -> Removed:
        channel, info = await self._consumer(ref)
        await self._request(f"CONSUMER.DELETE.{channel.stream}.{info.name}", None, f"deleting consumer {info.name!r}")
        return Removed(channel=channel.channel, stream=channel.stream, what="durable", name=info.name)

    async def reset_durable(self, ref: DurableRef, start: StartPosition) -> ResetResult:
        channel, info = await self._consumer(ref)
        sequence = await self._start_sequence(channel, info, start)
        if self.version() >= RESET_SINCE:
            await self._request(
                f"CONSUMER.RESET.{channel.stream}.{info.name}",
                {"seq": sequence},
                f"resetting consumer {info.name!r}",
            )
            how = "reset"
        else:
            await self._recreate(channel, info, sequence)
            how = "recreated"
        _, after = await self._consumer(ref)
        return ResetResult(durable=self._durable(channel, after), sequence=sequence, how=how)

    async def _start_sequence(self, channel: ChannelRef, info: api.ConsumerInfo, start: StartPosition) -> int:
        state = (await self._stream_info(channel)).state
        subject = info.config.filter_subject
        if start.kind is StartKind.SEQUENCE:
            return start.sequence or 1
        if start.kind is StartKind.ALL:
            return max(state.first_seq, 1)
        if start.kind is StartKind.LAST:
            if not subject:
                return max(state.last_seq, 1)
            try:
                return (await self.js.get_msg(channel.stream, subject=subject)).seq or state.last_seq + 1
            except js_errors.NotFoundError:
                return state.last_seq + 1
        if start.kind is StartKind.TIME and start.time is not None:
            return await self._sequence_at(channel, subject, start.time)
        raise UsageError("a durable is reset to --seq N, --since DURATION|TIME, --all or --last")

    async def _sequence_at(self, channel: ChannelRef, subject: str | None, moment: datetime) -> int:
        """The first sequence at or after ``moment``: where a throwaway consumer starting there stands."""
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_TIME,
            opt_start_time=_rfc3339(moment),  # type: ignore[arg-type]  # the server takes RFC 3339 text
            ack_policy=api.AckPolicy.NONE,
            filter_subject=subject,
            mem_storage=True,
            inactive_threshold=10.0,
            num_replicas=1,
        )
        try:
            probe = await self.js.add_consumer(channel.stream, config)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, "finding the first message at that time") from None
        try:
            return (probe.delivered.stream_seq if probe.delivered else 0) + 1
        finally:
            await self.backend.admin.delete_consumer(channel.stream, probe.name, quietly=True)

    async def _recreate(self, channel: ChannelRef, info: api.ConsumerInfo, sequence: int) -> None:
        config = info.config
        metadata = {k: v for k, v in (config.metadata or {}).items() if not k.startswith("_nats.")} or None
        again = dataclasses.replace(
            config,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=sequence,
            opt_start_time=None,
            metadata=metadata,
        )
        await self._request(f"CONSUMER.DELETE.{channel.stream}.{info.name}", None, f"deleting consumer {info.name!r}")
        try:
            await self.js.add_consumer(channel.stream, again)
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"making consumer {info.name!r} again (it was deleted)") from None

    async def pause_durable(self, ref: DurableRef, until: datetime | None) -> Durable:
        self._needs(PAUSE_SINCE, "pausing a durable (the consumer pause API)")
        channel, info = await self._consumer(ref)
        body = {"pause_until": _rfc3339(until)} if until is not None else None
        doing = f"{'pausing' if until else 'resuming'} consumer {info.name!r}"
        await self._request(f"CONSUMER.PAUSE.{channel.stream}.{info.name}", body, doing)
        _, after = await self._consumer(ref)
        return self._durable(channel, after)


def _moment(value: Any) -> datetime | None:
    """nats-py gives the stored time as a datetime (newer) or RFC 3339 text with nanoseconds (older)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    if not value:
        return None
    from natsctl.core.timeparse import parse_time

    try:
        head, _, rest = str(value).partition(".")
        if rest:  # Python's datetime keeps microseconds
            digits = "".join(ch for ch in rest if ch.isdigit())
            value = f"{head}.{digits[:6]}{rest[len(digits) :]}"
        return parse_time(str(value))
    except Exception:  # noqa: BLE001 - a time the server wrote oddly: shown as unknown
        return None
