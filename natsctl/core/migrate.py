"""`natsctl migrate`: the plan (a YAML document that is also the JSON schema), the migration headers,
and what the two sides of a migration offer (:class:`Source`, :class:`Target`).

Pure data: no NATS, no HTTP. The NATS Streaming side lives in ``natsctl.backends.stan.migrate``, the
JetStream side in ``natsctl.backends.jetstream.migrate``; ``natsctl.migrate`` runs the steps.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import UsageError
from .names import stream_name_for, validate_channel, validate_durable

PLAN_VERSION = 1
# The headers stan2js writes (decimal sequence, timestamp in nanoseconds since the epoch), so tools
# that read a stan2js migration read this one; plus the channel, and a message id for de-duplication.
CHANNEL_HEADER = "Nats-Streaming-Channel"
SEQUENCE_HEADER = "Nats-Streaming-Sequence"
TIMESTAMP_HEADER = "Nats-Streaming-Timestamp"
# Room a copied message needs on the target beyond its payload: the header block above and the id.
HEADER_ROOM = 512
_STREAM_NAME_BAD = (" ", "\t", ".", "*", ">", "/", "\\")


def message_id(channel: str, sequence: int) -> str:
    """The Nats-Msg-Id of a copied message: the same for the same channel and sequence, in every run."""
    return f"stan:{channel}:{sequence}"


@dataclass(slots=True)
class ChannelPlan:
    """One NATS Streaming channel and the stream it goes to (``stream`` and the shaping are editable)."""

    channel: str
    stream: str
    skip: bool = False
    replicas: int = 1
    max_age: str | None = None  # a duration (24h, 7d) or None: no limit
    max_msgs: int | None = None
    max_bytes: int | None = None
    # What the plan found (for the summary and the progress; copy reads the channel itself).
    msgs: int = 0
    bytes: int = 0
    first_seq: int = 0
    last_seq: int = 0


@dataclass(slots=True)
class DurablePlan:
    """A durable (or durable queue group) and the JetStream durable it becomes.

    ``to_durable`` / ``to_queue`` are what ``natsctl sub --durable TO_DURABLE [--queue TO_QUEUE]`` takes
    on JetStream; ``consumer`` is the consumer name that makes (for information).
    """

    channel: str
    durable: str
    queue: str = ""  # the queue group of a durable queue group, "" for a plain durable
    client_id: str = ""  # the client holding it (a plain durable is resumed with this id)
    to_durable: str = ""
    to_queue: str = ""
    consumer: str = ""
    skip: bool = False
    ack_wait: int = 30
    max_inflight: int = 1024
    last_sent: int = 0
    pending: int = 0
    offline: bool = True

    @property
    def label(self) -> str:
        return f"{self.durable}:{self.queue}" if self.queue else self.durable


@dataclass(slots=True)
class Plan:
    cluster_id: str
    server_version: str = ""
    channels: list[ChannelPlan] = field(default_factory=list)
    durables: list[DurablePlan] = field(default_factory=list)
    not_carried: list[str] = field(default_factory=list)  # what cannot be carried over, one line each

    def active_channels(self) -> list[ChannelPlan]:
        return [c for c in self.channels if not c.skip]

    def channel(self, name: str) -> ChannelPlan | None:
        return next((c for c in self.channels if c.channel == name), None)

    def active_durables(self) -> list[DurablePlan]:
        copied = {c.channel for c in self.active_channels()}
        return [d for d in self.durables if not d.skip and d.channel in copied]

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "source": {"cluster_id": self.cluster_id, "server_version": self.server_version},
            "channels": {c.channel: _without(asdict(c), "channel") for c in self.channels},
            "durables": [asdict(d) for d in self.durables],
            "not_carried": list(self.not_carried),
        }


def consumer_name(durable: str, queue: str) -> str:
    """The consumer ``natsctl sub --durable DURABLE [--queue QUEUE]`` reads through on JetStream."""
    if durable and queue and durable != queue:
        return f"{durable}_{queue}"
    return durable or queue


def check_stream_name(name: str, channel: str) -> str:
    """What JetStream refuses as a stream name, refused here before anything is created."""
    if not name or any(bad in name for bad in _STREAM_NAME_BAD) or any(ord(ch) < 32 for ch in name):
        raise UsageError(
            f"plan: channel {channel!r}: JetStream refuses the stream name {name!r} "
            "(it may not be empty or contain whitespace, '.', '*', '>', '/' or '\\')"
        )
    if len(name) > 255:
        raise UsageError(f"plan: channel {channel!r}: the stream name is longer than 255 characters")
    return name


# -- reading a plan -------------------------------------------------------------------------------


def _without(data: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _int(value: Any, where: str, *, minimum: int = 0, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"plan: {where} must be a whole number of at least {minimum} (got {value!r})")
    return value


def _text(value: Any, where: str, *, optional: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise UsageError(f"plan: {where} must be text (got {value!r})")
    return value


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"plan: {where} must be true or false (got {value!r})")
    return value


def _duration(value: Any, where: str) -> str | None:
    if value is None:
        return None
    from .timeparse import parse_duration

    try:
        parse_duration(str(value))
    except UsageError as exc:
        raise UsageError(f"plan: {where}: {exc.message}") from None
    return str(value)


def plan_from_dict(data: Any) -> Plan:
    """A plan as written by ``migrate plan`` (and maybe edited): every field checked, one line per mistake."""
    if not isinstance(data, dict):
        raise UsageError("plan: not a natsctl migration plan (expected a mapping with 'channels')")
    if data.get("version") != PLAN_VERSION:
        raise UsageError(f"plan: unknown version {data.get('version')!r} (this natsctl reads version {PLAN_VERSION})")
    source = data.get("source") or {}
    if not isinstance(source, dict):
        raise UsageError("plan: 'source' must be a mapping")
    plan = Plan(
        cluster_id=_text(source.get("cluster_id"), "source.cluster_id"),
        server_version=_text(source.get("server_version"), "source.server_version", optional=True),
    )
    channels = data.get("channels") or {}
    if not isinstance(channels, dict):
        raise UsageError("plan: 'channels' must be a mapping of channel name -> settings")
    streams: dict[str, str] = {}
    for name, entry in channels.items():
        plan.channels.append(_channel(str(name), entry or {}, streams))
    durables = data.get("durables") or []
    if not isinstance(durables, list):
        raise UsageError("plan: 'durables' must be a list")
    consumers: set[tuple[str, str]] = set()
    for index, entry in enumerate(durables):
        durable = _durable(entry, index, plan)
        key = (durable.channel, durable.consumer)
        if not durable.skip and key in consumers:
            raise UsageError(f"plan: two durables of channel {durable.channel!r} become consumer {durable.consumer!r}")
        consumers.add(key)
        plan.durables.append(durable)
    plan.not_carried = [str(x) for x in data.get("not_carried") or []]
    return plan


def _channel(name: str, entry: Any, streams: dict[str, str]) -> ChannelPlan:
    try:
        validate_channel(name)
    except UsageError as exc:
        raise UsageError(f"plan: {exc.message}") from None
    if not isinstance(entry, dict):
        raise UsageError(f"plan: channel {name!r} must be a mapping")
    where = f"channel {name!r}"
    known = {
        "stream",
        "skip",
        "replicas",
        "max_age",
        "max_msgs",
        "max_bytes",
        "msgs",
        "bytes",
        "first_seq",
        "last_seq",
    }
    unknown = sorted(set(entry) - known)
    if unknown:
        raise UsageError(f"plan: {where}: unknown key {unknown[0]!r}")
    stream = check_stream_name(_text(entry.get("stream", stream_name_for(name)), f"{where}.stream"), name)
    channel = ChannelPlan(
        channel=name,
        stream=stream,
        skip=_flag(entry.get("skip", False), f"{where}.skip"),
        replicas=_int(entry.get("replicas", 1), f"{where}.replicas", minimum=1),
        max_age=_duration(entry.get("max_age"), f"{where}.max_age"),
        max_msgs=_int(entry.get("max_msgs"), f"{where}.max_msgs", minimum=1, optional=True),
        max_bytes=_int(entry.get("max_bytes"), f"{where}.max_bytes", minimum=1, optional=True),
        msgs=_int(entry.get("msgs", 0), f"{where}.msgs"),
        bytes=_int(entry.get("bytes", 0), f"{where}.bytes"),
        first_seq=_int(entry.get("first_seq", 0), f"{where}.first_seq"),
        last_seq=_int(entry.get("last_seq", 0), f"{where}.last_seq"),
    )
    if not channel.skip:
        if stream in streams:
            raise UsageError(f"plan: channels {streams[stream]!r} and {name!r} both go to stream {stream!r}")
        streams[stream] = name
    return channel


def _durable(entry: Any, index: int, plan: Plan) -> DurablePlan:
    where = f"durables[{index}]"
    if not isinstance(entry, dict):
        raise UsageError(f"plan: {where} must be a mapping")
    channel = _text(entry.get("channel"), f"{where}.channel")
    if plan.channel(channel) is None:
        raise UsageError(f"plan: {where} reads channel {channel!r}, which is not in the plan's channels")
    durable = _text(entry.get("durable"), f"{where}.durable")
    queue = _text(entry.get("queue"), f"{where}.queue", optional=True)
    to_durable = _text(entry.get("to_durable") or durable, f"{where}.to_durable")
    to_queue = _text(entry.get("to_queue", queue), f"{where}.to_queue", optional=True)
    try:
        validate_durable(to_durable, "durable")
        if to_queue:
            validate_durable(to_queue, "queue group")
    except UsageError as exc:
        raise UsageError(f"plan: {where}: {exc.message}") from None
    return DurablePlan(
        channel=channel,
        durable=durable,
        queue=queue,
        client_id=_text(entry.get("client_id"), f"{where}.client_id", optional=True),
        to_durable=to_durable,
        to_queue=to_queue,
        consumer=consumer_name(to_durable, to_queue),
        skip=_flag(entry.get("skip", False), f"{where}.skip"),
        ack_wait=_int(entry.get("ack_wait", 30), f"{where}.ack_wait", minimum=1),
        max_inflight=_int(entry.get("max_inflight", 1024), f"{where}.max_inflight", minimum=1),
        last_sent=_int(entry.get("last_sent", 0), f"{where}.last_sent"),
        pending=_int(entry.get("pending", 0), f"{where}.pending"),
        offline=_flag(entry.get("offline", True), f"{where}.offline"),
    )


def read_plan(path: str) -> Plan:
    from pathlib import Path

    from .files import DocumentKind, load_document

    kind = DocumentKind(
        what="the migration plan",
        syntax="YAML",
        too_deep="a migration plan",
        too_deep_hint="write it with natsctl migrate plan",
        not_a_mapping="is not a natsctl migration plan (expected a mapping with 'channels')",
        error=UsageError,
        check=lambda _data, _path: None,
    )
    data = load_document(Path(path), kind)
    if data is None:
        raise UsageError(f"no migration plan at {path}", hint="write one with: natsctl migrate plan --out PLAN")
    return plan_from_dict(data)


def dump_plan(plan: Plan) -> str:
    import yaml

    head = (
        "# natsctl migration plan: NATS Streaming -> JetStream. Edit it, then run\n"
        "#   natsctl migrate copy PLAN, natsctl migrate durables PLAN, natsctl migrate verify PLAN\n"
        "# Per channel: stream (target name), skip, replicas, max_age (24h, 7d), max_msgs, max_bytes.\n"
        "# Per durable: to_durable / to_queue (natsctl sub --durable TO_DURABLE --queue TO_QUEUE), skip.\n"
        "# msgs, bytes, first_seq, last_seq, last_sent, pending, offline: what the plan found (information).\n"
    )
    return head + yaml.safe_dump(plan.as_dict(), sort_keys=False, allow_unicode=True, width=200)


# -- the two sides --------------------------------------------------------------------------------


@dataclass(slots=True)
class SourceMessage:
    sequence: int
    timestamp: int  # ns since the epoch, as NATS Streaming stored it
    data: bytes


@dataclass(slots=True)
class CopiedMessage:
    """A message read back from the target stream."""

    stream_sequence: int
    channel: str | None
    sequence: int | None  # Nats-Streaming-Sequence, None when the message has none
    timestamp: int | None
    data: bytes


@dataclass(slots=True)
class DurableState:
    """Where a NATS Streaming durable stands: every sequence up to ``last_sent`` but ``unacked`` was acked."""

    last_sent: int
    unacked: list[int]


class Source(abc.ABC):
    """The NATS Streaming side."""

    max_payload: int

    @abc.abstractmethod
    def read(self, channel: str, start: int, *, follow: bool) -> AsyncIterator[list[SourceMessage]]:
        """Batches of the channel's messages from ``start`` on; to its end, or (``follow``) until stopped."""

    @abc.abstractmethod
    def stop(self) -> None:
        """End every running ``read`` after the batch in hand."""

    @abc.abstractmethod
    async def durable_state(self, durable: DurablePlan, last_sent: int, pending: int) -> DurableState:
        """Read the durable's unacked messages (redelivered to a resumed durable) without acking them."""

    @abc.abstractmethod
    async def close(self) -> None: ...


class Target(abc.ABC):
    """The JetStream side."""

    max_payload: int

    @abc.abstractmethod
    async def check_stream(self, channel: ChannelPlan) -> bool:
        """True when the stream exists (holding exactly the channel's subject); raise when it cannot be used."""

    @abc.abstractmethod
    async def create_stream(self, channel: ChannelPlan, first_seq: int) -> None: ...

    @abc.abstractmethod
    async def last_copied(self, channel: ChannelPlan) -> int:
        """The channel sequence of the last message copied into the stream (0: none)."""

    @abc.abstractmethod
    async def publish(self, channel: ChannelPlan, batches: AsyncIterator[list[SourceMessage]], on_confirmed) -> int:
        """Copy every message; ``on_confirmed(sequence)`` for each confirmed one, in order. Returns the count."""

    @abc.abstractmethod
    def read(self, channel: ChannelPlan) -> AsyncIterator[list[CopiedMessage]]:
        """The stream's messages, first to last."""

    @abc.abstractmethod
    async def stream_sequence_of(self, channel: ChannelPlan, sequence: int) -> int | None:
        """The stream sequence holding channel ``sequence`` (None: not copied)."""

    @abc.abstractmethod
    async def position_durable(
        self, channel: ChannelPlan, durable: DurablePlan, start: int | None, acked: list[int], unacked: list[int]
    ) -> bool:
        """Create the consumer at stream sequence ``start`` (None: new messages only) and ack ``acked``
        (stream sequences), leaving ``unacked`` to be delivered again. False when it exists already."""

    @abc.abstractmethod
    async def durable_position(self, channel: ChannelPlan, durable: DurablePlan) -> tuple[int, int, int, str] | None:
        """(ack floor, delivered, pending acks in stream sequences, migration mark) of the consumer; None: missing."""

    @abc.abstractmethod
    async def close(self) -> None: ...


# -- the target's connection settings -------------------------------------------------------------


def target_settings(to_server: str | None, to_context: str | None, source: Any) -> Any:
    """Settings of the JetStream target: ``--to-server URL[,URL]`` or ``--to-context NAME`` (a natscli
    context), resolved like any other (settings.py), without the source's environment (NATS_URL,
    NATS_CLUSTER_ID...) or cluster id; the timeout is the source's."""
    import os

    from .settings import ENVIRONMENT, resolve_full

    if not to_server and not to_context:
        raise UsageError("say where JetStream is: --to-server URL[,URL] or --to-context NAME")
    env = {k: v for k, v in os.environ.items() if k not in ENVIRONMENT}
    flags: dict[str, object] = {"servers": to_server, "timeout": source.timeout}
    if to_context:
        flags["context"] = to_context
    resolution = resolve_full(flags, env)
    settings = resolution.settings
    if not to_context:
        settings.context = None
    settings.cluster_id = None
    settings.client_id = None
    settings.connection_name = "natsctl migrate"
    return settings
