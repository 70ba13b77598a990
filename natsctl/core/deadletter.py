"""Failing messages: the redelivery policy, and the parking contract of dead-letter channels.

A message a handler cannot process is *parked*: published to a dead-letter channel with the facts an
operator needs (where it came from, how often it was tried, why it failed), and only once that
publish is confirmed is the original given up (JetStream ``+TERM``, NATS Streaming ack).

Parking API (for any feature that gives up on a message, e.g. a contract check)::

    await park(backend, dead_letter_channel, message, reason="exit status 3: ...", consumer="billing")

JetStream: the parked copy keeps the original payload and headers and adds the ``Natsctl-Dl-*``
headers below; it is published with the message id ``natsctl-dl:<channel>:<sequence>:<consumer>``,
so parking the same delivery again (a crash between the publish and the terminate) is a duplicate
the dead-letter stream drops within its duplicate window.

NATS Streaming has no headers: the parked copy is a JSON object, the *wrapper*::

    {"natsctl_dead_letter": 1, "channel", "subject", "sequence", "published", "deliveries",
     "consumer", "reason", "parked_at", "id", "data", "encoding": "utf-8" | "base64"}

with the same fields as the headers, ``id`` the message id above (NATS Streaming does not
de-duplicate: ``dead-letter ls`` shows copies of one id once), and the payload as in natsctl's envelope.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .envelope import decode_data, encode_data
from .errors import UsageError
from .model import Message, OutgoingMessage
from .names import validate_channel
from .timeparse import format_time, parse_duration

if TYPE_CHECKING:
    from .backend import Backend

# -- redelivery -------------------------------------------------------------------------------------

# The default spacing when a handler fails and neither --backoff nor the durable says otherwise:
# a second try soon (a passing glitch), then time for a failing dependency to come back, then at most
# twice a minute; never a hot loop.
DEFAULT_BACKOFF: tuple[float, ...] = (1.0, 5.0, 30.0)
DEFAULT_BACKOFF_TEXT = "1s,5s,30s"
MAX_BACKOFF_STEPS = 50


@dataclass(frozen=True, slots=True)
class Redelivery:
    """How a failed message comes back: at most ``max_deliver`` deliveries (None: no bound), spaced by ``backoff``."""

    max_deliver: int | None = None
    backoff: tuple[float, ...] = DEFAULT_BACKOFF

    def delay(self, deliveries: int) -> float:
        """Seconds to wait before the delivery after the ``deliveries``-th one (the last step repeats)."""
        steps = self.backoff or DEFAULT_BACKOFF
        return steps[min(max(deliveries, 1), len(steps)) - 1]

    def exhausted(self, deliveries: int) -> bool:
        return self.max_deliver is not None and deliveries >= self.max_deliver

    def text(self) -> str:
        bound = "no bound" if self.max_deliver is None else f"max deliver {self.max_deliver}"
        return f"{bound}, backoff {format_backoff(self.backoff)}"


def parse_backoff(text: str) -> tuple[float, ...]:
    """``1s,5s,30s`` -> (1.0, 5.0, 30.0): positive, increasing (or equal) steps; the last one repeats."""
    parts = [p.strip() for p in (text or "").split(",")]
    if not text or not text.strip() or any(not p for p in parts):
        raise UsageError(f"--backoff needs durations separated by commas, such as {DEFAULT_BACKOFF_TEXT}, not {text!r}")
    if len(parts) > MAX_BACKOFF_STEPS:
        raise UsageError(f"--backoff has {len(parts)} steps; at most {MAX_BACKOFF_STEPS} (the last one repeats)")
    steps: list[float] = []
    for part in parts:
        if part.startswith("-"):
            raise UsageError(f"--backoff steps must be positive, not {part!r}")
        seconds = parse_duration(part, what="--backoff step")
        if not 0 < seconds <= 86400 * 7:
            raise UsageError(f"--backoff steps must be between 1ms and 7 days, not {part!r}")
        if steps and seconds < steps[-1]:
            raise UsageError(f"--backoff steps must not decrease: {part} comes after {format_backoff((steps[-1],))}")
        steps.append(seconds)
    return tuple(steps)


def format_backoff(steps: tuple[float, ...]) -> str:
    return ",".join(f"{s:g}s" for s in steps)


def check_max_deliver(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise UsageError(f"--max-deliver must be 1 or more, not {value}")
    return value


# -- dead-letter channels ---------------------------------------------------------------------------

DEAD_LETTER_PREFIX = "dead-letter."


def default_dead_letter(channel: str) -> str:
    """``orders`` -> ``dead-letter.orders``: a prefix, so that no stream of ``orders.>`` captures it."""
    return DEAD_LETTER_PREFIX + channel


def dead_letter_for(channel: str, name: str | None) -> str:
    if name is None and any(token in ("*", ">") for token in channel.split(".")):
        raise UsageError(
            f"{channel!r} is a subject family: it has no default dead-letter channel; name one with --dead-letter CHANNEL"
        )
    dead = name if name is not None else default_dead_letter(channel)
    validate_channel(dead)
    if dead == channel:
        raise UsageError(f"the dead-letter channel must differ from the channel it serves ({channel!r})")
    return dead


H_CHANNEL = "Natsctl-Dl-Channel"
H_SUBJECT = "Natsctl-Dl-Subject"
H_SEQUENCE = "Natsctl-Dl-Sequence"
H_PUBLISHED = "Natsctl-Dl-Published"
H_DELIVERIES = "Natsctl-Dl-Deliveries"
H_CONSUMER = "Natsctl-Dl-Consumer"
H_REASON = "Natsctl-Dl-Reason"
H_PARKED_AT = "Natsctl-Dl-Parked-At"
H_MSG_ID = "Natsctl-Dl-Msg-Id"  # the original's Nats-Msg-Id, when it had one
PARKING_HEADERS = (H_CHANNEL, H_SUBJECT, H_SEQUENCE, H_PUBLISHED, H_DELIVERIES, H_CONSUMER, H_REASON, H_PARKED_AT)
WRAPPER_KEY = "natsctl_dead_letter"
REASON_MAX = 1000  # characters of a reason kept (stderr lines included)
MAX_DELIVERIES = "max deliveries"


def parking_id(channel: str, sequence: int, consumer: str) -> str:
    return f"natsctl-dl:{channel}:{sequence}:{consumer or '-'}"


def redrive_id(dead_letter: str, sequence: int) -> str:
    return f"natsctl-redrive:{dead_letter}:{sequence}"


def one_line(text: str) -> str:
    """A header value: no line breaks (the lines of stderr are joined with ' | '), bounded."""
    flat = " | ".join(part.strip() for part in text.replace("\r", "\n").split("\n") if part.strip())
    return flat if len(flat) <= REASON_MAX else flat[: REASON_MAX - 3] + "..."


@dataclass(slots=True)
class Parked:
    """One parked message as `dead-letter ls` shows it (and its JSON)."""

    seq: int  # position in the dead-letter channel: what `redrive --seq` takes
    channel: str
    channel_seq: int
    subject: str = ""
    deliveries: int = 0
    consumer: str = ""
    reason: str = ""
    published: str | None = None
    parked_at: str | None = None
    size: int = 0
    id: str = ""


@dataclass(slots=True)
class ParkedCopy:
    """A parked message with the original payload and headers (the parking headers taken off)."""

    parked: Parked
    data: bytes = b""
    headers: dict[str, list[str]] | None = None


def parked_message(
    dead_letter: str,
    message: Message,
    *,
    reason: str,
    consumer: str,
    headers_supported: bool,
    now: datetime | None = None,
) -> OutgoingMessage:
    """What is published to the dead-letter channel for ``message``."""
    parked_at = format_time(now or datetime.now(UTC)) or ""
    fields = {
        H_CHANNEL: message.channel,
        H_SUBJECT: message.subject,
        H_SEQUENCE: str(message.sequence),
        H_PUBLISHED: format_time(message.time) or "",
        H_DELIVERIES: str(message.deliveries),
        H_CONSUMER: consumer or "-",
        H_REASON: one_line(reason) or "-",
        H_PARKED_AT: parked_at,
    }
    msg_id = parking_id(message.channel, message.sequence, consumer)
    if headers_supported:
        headers = {k: list(v) for k, v in (message.headers or {}).items() if k not in PARKING_HEADERS}
        original_id = headers.pop("Nats-Msg-Id", None)
        if original_id:
            headers[H_MSG_ID] = original_id
        headers.update({k: [v] for k, v in fields.items()})
        return OutgoingMessage(data=message.data, headers=headers, msg_id=msg_id, source=f"sequence {message.sequence}")
    text, encoding = encode_data(message.data)
    wrapper = {
        WRAPPER_KEY: 1,
        "channel": message.channel,
        "subject": message.subject,
        "sequence": message.sequence,
        "published": fields[H_PUBLISHED] or None,
        "deliveries": message.deliveries,
        "consumer": consumer or "-",
        "reason": fields[H_REASON],
        "parked_at": parked_at,
        "id": msg_id,
        "data": text,
        "encoding": encoding,
    }
    return OutgoingMessage(data=json.dumps(wrapper, ensure_ascii=False).encode(), source=f"sequence {message.sequence}")


async def park(
    backend: Backend, dead_letter_channel: str, message: Message, *, reason: str, consumer: str = ""
) -> bool:
    """Publish ``message`` to ``dead_letter_channel`` and wait for the server's confirmation.

    True when it is stored now, False when the dead-letter channel already held this parking (a
    duplicate the server dropped). Raises ``Unconfirmed`` (or a connection error) when not confirmed:
    the caller must then leave the original alone, so that it comes again.
    """
    from .errors import Unconfirmed

    outgoing = parked_message(
        dead_letter_channel, message, reason=reason, consumer=consumer, headers_supported=backend.supports_headers
    )
    duplicate: list[bool] = []
    summary = await backend.publish(
        dead_letter_channel, [outgoing], create=True, on_ack=lambda ack: duplicate.append(ack.duplicate)
    )
    if summary.confirmed != 1:
        why = summary.failed[0] if summary.failed else "no confirmation"
        raise Unconfirmed(f"parking sequence {message.sequence} in {dead_letter_channel!r} was not confirmed: {why}")
    return not (duplicate and duplicate[0])


def read_parked(message: Message) -> ParkedCopy | None:
    """A message of a dead-letter channel as a Parked record (None: not a parked message)."""
    headers = message.headers or {}
    if H_CHANNEL in headers:

        def one(key: str) -> str:
            return (headers.get(key) or [""])[0]

        kept = {k: v for k, v in headers.items() if k not in PARKING_HEADERS and k != "Nats-Msg-Id"}
        if H_MSG_ID in kept:
            kept["Nats-Msg-Id"] = kept.pop(H_MSG_ID)
        parked = Parked(
            seq=message.sequence,
            channel=one(H_CHANNEL),
            channel_seq=_int(one(H_SEQUENCE)),
            subject=one(H_SUBJECT),
            deliveries=_int(one(H_DELIVERIES)),
            consumer=one(H_CONSUMER),
            reason=one(H_REASON),
            published=one(H_PUBLISHED) or None,
            parked_at=one(H_PARKED_AT) or None,
            size=len(message.data),
            id=(headers.get("Nats-Msg-Id") or [""])[0],
        )
        return ParkedCopy(parked, message.data, kept or None)
    try:
        wrapper = json.loads(message.data)
    except ValueError:
        return None
    if not isinstance(wrapper, dict) or wrapper.get(WRAPPER_KEY) != 1:
        return None
    try:
        data = decode_data(wrapper, f"dead letter {message.sequence}")
    except UsageError:
        return None
    parked = Parked(
        seq=message.sequence,
        channel=str(wrapper.get("channel", "")),
        channel_seq=_int(wrapper.get("sequence")),
        subject=str(wrapper.get("subject", "")),
        deliveries=_int(wrapper.get("deliveries")),
        consumer=str(wrapper.get("consumer", "")),
        reason=str(wrapper.get("reason", "")),
        published=wrapper.get("published"),
        parked_at=wrapper.get("parked_at"),
        size=len(data),
        id=str(wrapper.get("id", "")),
    )
    return ParkedCopy(parked, data)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


# -- JetStream advisories (dead-letter collect) -----------------------------------------------------

ADVISORY_MAX_DELIVERIES = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
ADVISORY_TERMINATED = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED"
NATSCTL_TERM_REASON = "natsctl parked"  # the +TERM reason of natsctl's own parking: collect skips those


@dataclass(frozen=True, slots=True)
class Advisory:
    kind: str  # "max_deliveries" | "terminated"
    stream: str
    consumer: str
    stream_seq: int
    deliveries: int
    reason: str = ""  # a terminate's reason (nats-server 2.11+)

    def parking_reason(self) -> str:
        if self.kind == "max_deliveries":
            return f"{MAX_DELIVERIES} ({self.deliveries}) reached on consumer {self.consumer}"
        why = f": {self.reason}" if self.reason else ""
        return f"terminated by consumer {self.consumer} after {self.deliveries} deliveries{why}"


def read_advisory(subject: str, data: bytes) -> Advisory | None:
    if subject.startswith(ADVISORY_MAX_DELIVERIES + "."):
        kind = "max_deliveries"
    elif subject.startswith(ADVISORY_TERMINATED + "."):
        kind = "terminated"
    else:
        return None
    try:
        body = json.loads(data)
        return Advisory(
            kind=kind,
            stream=str(body["stream"]),
            consumer=str(body["consumer"]),
            stream_seq=int(body["stream_seq"]),
            deliveries=int(body.get("deliveries") or 0),
            reason=str(body.get("reason") or ""),
        )
    except (ValueError, KeyError, TypeError):
        return None
