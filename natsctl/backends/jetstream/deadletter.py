"""JetStream's part of dead letters: one stored message read or deleted by sequence, and the feed of
the server's max-deliveries and terminated advisories that `natsctl dead-letter collect` reads.

Advisories are plain NATS subjects, gone when nobody listens: the collector first makes a stream that
captures them (``NATSCTL_ADVISORIES_<stream>``, kept 7 days), then reads it through a durable
consumer. A collector that stops and starts again resumes at the first advisory it did not ack;
advisories published while it was down are waiting in that stream. What happened before the stream
existed is not captured: the consumers' redelivered counts say where to look.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from nats.js import api
from nats.js import errors as js_errors

from natsctl.core.deadletter import ADVISORY_MAX_DELIVERIES, ADVISORY_TERMINATED
from natsctl.core.errors import NotFound
from natsctl.core.model import ChannelRef, Message, StartKind, StartPosition, SubscribeSpec
from natsctl.transport.frames import parse_header_block

if TYPE_CHECKING:
    from natsctl.backends.jetstream.backend import JetStreamBackend
    from natsctl.backends.jetstream.pull import PullSubscription

ADVISORY_STREAM_PREFIX = "NATSCTL_ADVISORIES_"
ADVISORY_MAX_AGE = 7 * 86400.0
COLLECTOR = "natsctl-collect"
_HEADER_LINE = len(b"NATS/1.0")


@dataclass(frozen=True, slots=True)
class AdvisoryFeed:
    """The advisories of one stream's consumers, captured in a stream since ``since``."""

    subscription: PullSubscription
    stream: str  # the channel's stream
    advisory_stream: str
    since: datetime | None
    created: bool  # made by this run: nothing before now was captured


@dataclass(frozen=True, slots=True)
class ConsumerState:
    name: str
    redelivered: int
    ack_pending: int
    max_deliver: int


class DeadLetterOps:
    """Mixed into JetStreamBackend."""

    async def stored_message(self: JetStreamBackend, channel: str, sequence: int) -> Message:  # type: ignore[misc]
        ref = await self.resolve_channel(channel, create=False)
        subject = f"{self.api_prefix}.STREAM.MSG.GET.{ref.stream}"
        try:
            reply = await self.nc.request(
                subject, json.dumps({"seq": sequence}).encode(), timeout=self.settings.timeout
            )
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise self.admin._failed(exc, f"reading sequence {sequence} of {channel!r}") from None
        body = json.loads(reply.data or b"{}")
        if "error" in body:
            error = body["error"]
            if error.get("code") == 404 or error.get("err_code") == 10037:
                raise NotFound(f"channel {channel!r} has no message at sequence {sequence}")
            raise self.admin._failed(
                js_errors.APIError(description=error.get("description")), f"reading sequence {sequence}"
            )
        raw = body["message"]
        headers = None
        if raw.get("hdrs"):
            headers = parse_header_block(base64.b64decode(raw["hdrs"]))
        when = raw.get("time")
        return Message(
            channel=channel,
            subject=raw.get("subject", channel),
            sequence=int(raw["seq"]),
            time=datetime.fromisoformat(_seconds_precision(when)) if when else None,
            data=base64.b64decode(raw.get("data") or ""),
            headers=headers,
        )

    async def delete_stored(self: JetStreamBackend, channel: str, sequence: int) -> None:  # type: ignore[misc]
        ref = await self.resolve_channel(channel, create=False)
        try:
            await self.js.delete_msg(ref.stream, sequence)
        except js_errors.NotFoundError:
            raise NotFound(f"channel {channel!r} has no message at sequence {sequence}") from None
        except js_errors.BadRequestError as exc:
            if exc.err_code == 10057 or "not found" in (exc.description or "").lower():
                raise NotFound(f"channel {channel!r} has no message at sequence {sequence}") from None
            raise self.admin._failed(exc, f"deleting sequence {sequence} of {channel!r}") from None
        except Exception as exc:  # noqa: BLE001
            raise self.admin._failed(exc, f"deleting sequence {sequence} of {channel!r}") from None

    async def advisory_feed(  # type: ignore[misc]
        self: JetStreamBackend, channel: str, durables: list[str], *, exit_at_end: bool
    ) -> AdvisoryFeed:
        from natsctl.backends.jetstream.pull import PullSubscription

        ref = await self.resolve_channel(channel, create=False)
        name = ADVISORY_STREAM_PREFIX + ref.stream
        since, created = await self._advisory_stream(name, ref.stream)
        collector = COLLECTOR
        if durables:
            joined = "_".join(sorted(set(durables)))
            collector += "-" + (joined if len(joined) <= 64 else hashlib.sha1(joined.encode()).hexdigest()[:12])
        spec = SubscribeSpec(
            channel=f"$JS.EVENT.ADVISORY.CONSUMER.*.{ref.stream}.*",
            start=StartPosition(StartKind.ALL),
            durable=collector,
            ack_wait=30.0,
            max_in_flight=64,
            create=False,
            stop_at_end=exit_at_end,
            exclusive_acks=True,
        )
        subscription = PullSubscription(self, spec, ChannelRef(channel=spec.channel, stream=name))
        await subscription.start()
        return AdvisoryFeed(subscription, ref.stream, name, since, created)

    async def _advisory_stream(self: JetStreamBackend, name: str, stream: str) -> tuple[datetime | None, bool]:  # type: ignore[misc]
        try:
            info = await self.admin.while_electing(lambda: self.js.stream_info(name))
            return info.created, False
        except js_errors.NotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001
            raise self.admin._failed(exc, f"looking up stream {name!r}") from None
        config = api.StreamConfig(
            name=name,
            subjects=[f"{ADVISORY_MAX_DELIVERIES}.{stream}.*", f"{ADVISORY_TERMINATED}.{stream}.*"],
            storage=api.StorageType.FILE,
            max_age=ADVISORY_MAX_AGE,
            description=f"natsctl dead-letter collect: advisories of the consumers of {stream}",
        )
        try:
            await self.admin.add_stream_asking_again(config)
            info = await self.js.stream_info(name)
        except Exception as exc:  # noqa: BLE001
            raise self.admin._failed(exc, f"creating stream {name!r} for the advisories") from None
        return info.created, True

    async def consumer_states(self: JetStreamBackend, stream: str) -> list[ConsumerState]:  # type: ignore[misc]
        try:
            infos = await self.js.consumers_info(stream)
        except Exception as exc:  # noqa: BLE001
            raise self.admin._failed(exc, f"listing the consumers of {stream!r}") from None
        return [
            ConsumerState(i.name, i.num_redelivered or 0, i.num_ack_pending or 0, i.config.max_deliver or -1)
            for i in infos
        ]


def _seconds_precision(text: str) -> str:
    """RFC 3339 with nanoseconds -> what datetime.fromisoformat takes (microseconds)."""
    text = text.replace("Z", "+00:00")
    if "." in text:
        head, rest = text.split(".", 1)
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    return text
