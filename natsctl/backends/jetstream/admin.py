"""The JetStream API natsctl uses: streams and consumers looked up and created, their configs, and
nats-py's API failures mapped to natsctl errors.

Lookups and creations are idempotent, so a cluster electing a leader is waited out within --timeout
(``Admin.while_electing``): a request sent while no leader exists is dropped, sending it again once
one is elected gets an answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from nats import errors as nats_errors
from nats.aio.client import Client
from nats.js import api
from nats.js import errors as js_errors
from nats.js.client import JetStreamContext

from natsctl.backends.jetstream.redelivery import consumer_max_deliver, redelivery_metadata
from natsctl.backends.jetstream.retry import NotYet, retry_within
from natsctl.core.errors import (
    ConnectionFailed,
    NatsctlError,
    NotFound,
    PermissionDenied,
    ServerError,
    Timeout,
    UsageError,
)
from natsctl.core.model import ChannelRef, StartKind, StreamOptions, SubscribeSpec
from natsctl.core.names import stream_name_for
from natsctl.core.settings import Settings
from natsctl.transport.connect import permission_errors, raise_permission_error

T = TypeVar("T")

QUEUE_INACTIVE = 300.0  # a queue group without --durable is removed after this long without members
EPHEMERAL_INACTIVE = 30.0

# What a leader election looks like to a client: no answer in time, or a 503.
ELECTING = (nats_errors.TimeoutError, asyncio.TimeoutError, js_errors.ServiceUnavailableError)


def api_prefix(settings: Settings) -> str:
    """The subject prefix of the JetStream API: a domain's, the one asked for, or ``$JS.API``."""
    if settings.js_domain is not None:
        return f"$JS.{settings.js_domain}.API"
    return settings.js_api_prefix or api.DEFAULT_PREFIX


def jetstream_error(exc: BaseException, settings: Settings, doing: str, client: Client | None = None) -> NatsctlError:
    """Map a nats-py JetStream API failure while ``doing`` something to a natsctl error.

    A request the server refused for lack of permission only times out on the client: the
    connection's reported permission violation is the real reason, so it wins.
    """
    if isinstance(exc, NatsctlError):
        return exc
    denied = permission_errors(client) if client is not None else []
    if denied:
        return PermissionDenied(denied[0])
    where = settings.redacted_servers()
    if isinstance(exc, (js_errors.ServiceUnavailableError, nats_errors.NoRespondersError)):
        return ServerError(
            f"JetStream is not enabled on the server at {where} (no answer to {doing})",
            hint="start nats-server with -js, or pass --cluster-id for a NATS Streaming server",
        )
    if isinstance(exc, (nats_errors.TimeoutError, asyncio.TimeoutError)):
        return Timeout(f"JetStream did not answer {doing} within {settings.timeout:g}s at {where}")
    if isinstance(exc, js_errors.NotFoundError):
        return NotFound(f"{doing}: {exc.description or 'not found'}")
    if isinstance(exc, js_errors.APIError):
        return ServerError(f"{doing} failed: {exc.description or exc}")
    if isinstance(exc, (nats_errors.ConnectionClosedError, nats_errors.StaleConnectionError)):
        return ConnectionFailed(f"connection to {where} lost while {doing}")
    return ServerError(f"{doing} failed: {exc}")


# -- configs --------------------------------------------------------------------------------------


def stream_config(channel: str, opts: StreamOptions) -> api.StreamConfig:
    return api.StreamConfig(
        name=stream_name_for(channel),
        subjects=[channel],
        storage=api.StorageType.MEMORY if opts.storage == "memory" else api.StorageType.FILE,
        num_replicas=opts.replicas,
        max_age=opts.max_age,
        max_msgs=opts.max_msgs,
        max_bytes=opts.max_bytes,
        discard=api.DiscardPolicy.NEW if opts.discard == "new" else api.DiscardPolicy.OLD,
        duplicate_window=opts.duplicate_window,  # type: ignore[arg-type]  # None: the server's default
        description=f"natsctl channel {channel}",
    )


def consumer_name(spec: SubscribeSpec) -> str | None:
    """A durable queue group is identified by both names, as on NATS Streaming (``durable:queue``)."""
    durable, queue = spec.durable, spec.queue
    if durable and queue and durable != queue:
        return f"{durable}_{queue}"
    return durable or queue


def wanted_policy(spec: SubscribeSpec) -> api.AckPolicy:
    if not spec.ack:
        return api.AckPolicy.NONE
    if spec.durable or spec.queue or spec.exclusive_acks:
        # Anyone may attach to a durable: an ack-all from one reader would ack what another
        # reader holds but has not written out yet. Every message is acked on its own.
        return api.AckPolicy.EXPLICIT
    return api.AckPolicy.ALL  # a private (ephemeral) consumer: one ack per written batch


_DELIVER_POLICIES = {
    StartKind.NEW: api.DeliverPolicy.NEW,
    StartKind.ALL: api.DeliverPolicy.ALL,
    StartKind.LAST: api.DeliverPolicy.LAST,
    StartKind.SEQUENCE: api.DeliverPolicy.BY_START_SEQUENCE,
    StartKind.TIME: api.DeliverPolicy.BY_START_TIME,
}


def _inactive_threshold(spec: SubscribeSpec, name: str | None) -> float | None:
    if name is None:
        return EPHEMERAL_INACTIVE
    if not spec.durable:
        return max(QUEUE_INACTIVE, spec.ack_wait * 2)
    return None


def filter_of(spec: SubscribeSpec, ref: ChannelRef | None) -> str | None:
    """The subject (or pattern) a consumer filters on; None reads the whole stream (``--stream``)."""
    return ref.filter_subject if ref is not None else spec.channel


def consumer_config(spec: SubscribeSpec, name: str | None, ref: ChannelRef | None = None) -> api.ConsumerConfig:
    """The pull consumer ``spec`` reads through: named (a durable or a queue group) or, without a name, ephemeral."""
    start = spec.start
    ack_policy = wanted_policy(spec)
    acked = ack_policy != api.AckPolicy.NONE
    return api.ConsumerConfig(
        durable_name=name if spec.durable else None,
        name=name,
        deliver_policy=_DELIVER_POLICIES[start.kind],
        opt_start_seq=start.sequence if start.kind == StartKind.SEQUENCE else None,
        # The server takes RFC 3339 text; nats-py's annotation says datetime but it sends the value as is.
        opt_start_time=_rfc3339(start.time) if start.kind == StartKind.TIME else None,  # type: ignore[arg-type]
        ack_policy=ack_policy,
        ack_wait=spec.ack_wait if acked else None,
        max_ack_pending=spec.max_in_flight if acked else None,
        filter_subject=filter_of(spec, ref),
        inactive_threshold=_inactive_threshold(spec, name),
        max_deliver=consumer_max_deliver(spec),
        mem_storage=True if name is None else None,
        # The monitoring port shows pull consumers without a group: say which queue group this is.
        metadata=({"natsctl_queue": spec.queue} if spec.queue else {}) | redelivery_metadata(spec) or None,
        num_replicas=1 if name is None else None,
    )


@dataclass(frozen=True)
class PushTo:
    """Where an ephemeral push consumer delivers, and from where (after a reset: past what was read)."""

    inbox: str
    heartbeat: float  # seconds between idle heartbeats
    resume_after: int | None = None  # a stream sequence read already; None: the spec's own start

    def config(self, config: api.ConsumerConfig) -> api.ConsumerConfig:
        # Flow control: the server waits for an answer every so many bytes, so a reader that writes
        # slowly holds a bounded window, and heartbeats tell a lost consumer from an idle one.
        pushed = dataclasses.replace(
            config, deliver_subject=self.inbox, flow_control=True, idle_heartbeat=self.heartbeat
        )
        if self.resume_after is None:
            return pushed
        return dataclasses.replace(
            pushed,
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.resume_after + 1,
            opt_start_time=None,
        )


def check_compatible(
    spec: SubscribeSpec, stream: str, name: str, config: api.ConsumerConfig, ref: ChannelRef | None = None
) -> None:
    """A durable made for one use must not be silently used in a way that loses acks."""
    subject = config.filter_subject
    wanted = filter_of(spec, ref)
    if subject and subject != wanted:
        what = repr(wanted) if wanted else "the whole stream"
        raise UsageError(f"durable {name!r} on stream {stream!r} reads {subject!r}, not {what}; use another name")
    if config.ack_policy == api.AckPolicy.ALL and (spec.queue or spec.exclusive_acks):
        use = "a queue group" if spec.queue else "--exec"
        raise UsageError(
            f"durable {name!r} acknowledges all-at-once (it was made for a single reader) and cannot serve {use}; "
            f"use another --durable name or delete it first"
        )
    if config.ack_policy == api.AckPolicy.NONE and spec.ack:
        raise UsageError(f"consumer {name!r} takes no acks; use another --durable name")
    if spec.durable and not config.durable_name and config.inactive_threshold:
        raise UsageError(
            f"{name!r} is a queue group without --durable (the server removes it when idle); use another --durable name"
        )


# -- the API calls --------------------------------------------------------------------------------


def _peer_offline(exc: Exception) -> bool:
    return isinstance(exc, js_errors.BadRequestError) and "peer offline" in (exc.description or "")


class Admin:
    """Streams and consumers of one connection, looked up, created and deleted through its JetStream API."""

    def __init__(self, client: Client, js: JetStreamContext, settings: Settings) -> None:
        self.nc = client
        self.js = js
        self.settings = settings

    async def while_electing(self, call: Callable[[], Awaitable[T]], *, deadline: float | None = None) -> T:
        """``call()``, tried again while a JetStream leader election makes the API time out or answer 503.

        After a node of a cluster is lost, the meta, stream and consumer leaders are re-elected; the API
        is silent meanwhile. Within --timeout that is waited out; then the last error is raised.
        """
        if deadline is None:
            deadline = time.monotonic() + self.settings.timeout
        # A request sent while no leader exists is dropped, not queued: waiting longer for its answer
        # is useless, sending it again once a leader is elected gets one. So each try gets a slice of
        # the timeout. Only idempotent calls (lookups, creating a stream or consumer that may exist) come here.
        return await retry_within(
            call,
            deadline,
            retryable=lambda exc: isinstance(exc, ELECTING),
            pause=0.25,
            margin=0.1,
            per_attempt=max(2.0, self.settings.timeout / 3),
            give_up=lambda: self.nc.is_closed,
            final=_as_nats_error,
        )

    def _failed(self, exc: BaseException, doing: str) -> NatsctlError:
        return jetstream_error(exc, self.settings, doing, self.nc)

    # -- streams ----------------------------------------------------------------------------------

    async def stream_for_subject(self, channel: str) -> str | None:
        try:
            return await self.while_electing(lambda: self.js.find_stream_name_by_subject(channel))
        except js_errors.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise self._failed(exc, f"looking up the stream of {channel!r}") from None

    async def stream_named(self, name: str) -> api.StreamInfo | None:
        """The stream called ``name``, or None."""
        try:
            return await self.while_electing(lambda: self.js.stream_info(name))
        except js_errors.NotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise self._failed(exc, f"looking up stream {name!r}") from None

    async def streams_overlapping(self, pattern: str) -> list[api.StreamInfo]:
        """The streams holding some subject ``pattern`` matches (the server's STREAM.LIST subject filter)."""
        from natsctl.backends.jetstream.resolve import parse_stream_list

        subject = f"{api_prefix(self.settings)}.STREAM.LIST"
        body = json.dumps({"subject": pattern}).encode()

        async def ask() -> list[api.StreamInfo]:
            reply = await self.nc.request(subject, body, timeout=self.settings.timeout)
            return parse_stream_list(reply.data)

        try:
            return await self.while_electing(ask)
        except Exception as exc:  # noqa: BLE001 - mapped to a typed error
            raise self._failed(exc, f"looking up the streams of {pattern!r}") from None

    async def create_stream(self, channel: str, options: StreamOptions) -> ChannelRef:
        config = stream_config(channel, options)
        try:
            await self.add_stream_asking_again(config)
        except js_errors.BadRequestError as exc:
            # Another natsctl may have created it a moment ago: use what is there now.
            name = await self.stream_for_subject(channel)
            if name:
                return ChannelRef(channel=channel, stream=name)
            raise ServerError(f"cannot create a stream for channel {channel!r}: {exc.description}") from None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"creating a stream for {channel!r}") from None
        stream = config.name or ""  # _stream_config always names it
        if (config.num_replicas or 1) > 1:
            await self._wait_for_stream_leader(stream)
        return ChannelRef(channel=channel, stream=stream, created=True)

    async def add_stream_asking_again(self, config: api.StreamConfig) -> None:
        """``add_stream``, asked again within --timeout while a cluster cannot answer it yet.

        A cluster that has just formed (or a node that is restarting) is placed on only once the meta
        leader has heard from every peer; until then placement answers "no suitable peers for
        placement, peer offline". A request that meets a leader election gets no answer at all. Both
        are asked again (creating the same stream twice is harmless); any other refusal (too few
        nodes, no resources) is final at once.
        """
        deadline = time.monotonic() + self.settings.timeout

        async def create() -> None:
            # Past the deadline the last answer, rather than our own timeout, says why.
            await retry_within(
                lambda: self.js.add_stream(config), deadline, retryable=_peer_offline, pause=0.25, margin=0.35
            )

        await self.while_electing(create, deadline=deadline)

    async def _wait_for_stream_leader(self, stream: str) -> None:
        """A replicated stream answers publishes only once its replicas elected a leader."""

        async def elected() -> None:
            cluster = (await self.js.stream_info(stream)).cluster
            replicas = (cluster.replicas or []) if cluster is not None else []
            if cluster is None or not cluster.leader or not all(r.current for r in replicas):
                raise NotYet

        not_yet = (NotYet, nats_errors.TimeoutError, js_errors.ServiceUnavailableError, js_errors.NotFoundError)
        await retry_within(
            elected,
            time.monotonic() + self.settings.timeout,
            retryable=lambda exc: isinstance(exc, not_yet),
            pause=0.05,
            margin=0.05,
            final=lambda _: Timeout(f"stream {stream!r} elected no leader within {self.settings.timeout:g}s"),
        )

    async def until_stream_listens(self, ref: ChannelRef) -> None:
        """Wait until a stream natsctl just created receives what is published to its channel.

        On a cluster the stream leader's interest in the subject reaches the other nodes a moment after
        the leader is elected; a publish through another node meanwhile gets "no responders". The probe
        names a stream that cannot exist (a space), so the stream refuses it without storing anything.
        Past --timeout the publish goes ahead and reports what happens.
        """
        deadline = time.monotonic() + self.settings.timeout
        probe = {"Nats-Expected-Stream": "natsctl interest probe"}
        unheard = (nats_errors.NoRespondersError, nats_errors.TimeoutError)

        async def ask() -> None:
            try:
                await self.nc.request(
                    ref.channel, b"", timeout=max(0.1, min(1.0, deadline - time.monotonic())), headers=probe
                )
            except unheard:
                raise_permission_error(self.nc)  # the probe was refused: so would every message be
                raise

        try:
            # An answer at all (the stream's refusal of the probe) means it listens.
            await retry_within(ask, deadline, retryable=lambda exc: isinstance(exc, unheard), pause=0.05, margin=0.05)
        except PermissionDenied:
            raise
        except Exception:  # noqa: BLE001 - not heard within --timeout, or anything else: let the publish report it
            return

    # -- consumers --------------------------------------------------------------------------------

    async def ensure_consumer(
        self, spec: SubscribeSpec, stream: str, ref: ChannelRef | None = None, push: PushTo | None = None
    ) -> tuple[api.ConsumerInfo, bool]:
        """The consumer ``spec`` reads through, and whether it is ephemeral (made for this reader alone).

        A named one (a durable or a queue group) is looked up, made if missing, and checked for fitting ``spec``.
        With ``push`` an ephemeral one pushes to an inbox instead of waiting for requests (see push.py).
        """
        name = consumer_name(spec)
        try:
            if name:
                info = await self._named_consumer(spec, stream, name, ref)
            else:
                config = consumer_config(spec, None, ref)
                info = await self.js.add_consumer(stream, push.config(config) if push else config)
        except NatsctlError:
            raise
        except js_errors.BadRequestError as exc:
            shown = ref.channel if ref is not None else spec.channel
            raise UsageError(f"cannot subscribe to {shown!r}: {exc.description}") from None
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, f"creating a consumer on {stream!r}") from None
        check_compatible(spec, stream, info.name, info.config, ref)
        return info, not name

    async def _named_consumer(
        self, spec: SubscribeSpec, stream: str, name: str, ref: ChannelRef | None = None
    ) -> api.ConsumerInfo:
        info = await self.while_electing(lambda: self._existing_consumer(stream, name))
        if info is None:
            config = consumer_config(spec, name, ref)
            info = await self.while_electing(lambda: self.js.add_consumer(stream, config))
        return info

    async def _existing_consumer(self, stream: str, name: str) -> api.ConsumerInfo | None:
        try:
            return await self.js.consumer_info(stream, name)
        except js_errors.NotFoundError:
            return None

    async def consumer_info(self, stream: str, consumer: str) -> api.ConsumerInfo:
        """The consumer's state; a leader election in progress is waited out within --timeout."""
        try:
            return await self.while_electing(lambda: self.js.consumer_info(stream, consumer))
        except Exception as exc:  # noqa: BLE001
            raise self._failed(exc, "reading the consumer's position") from None

    async def delete_consumer(self, stream: str, consumer: str, *, quietly: bool) -> None:
        """Delete a consumer that is gone already or not; ``quietly``: whatever else happens, too."""
        try:
            await self.js.delete_consumer(stream, consumer)
        except js_errors.NotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001
            if not quietly:
                raise self._failed(exc, f"deleting durable {consumer!r}") from None


def _as_nats_error(exc: Exception) -> Exception:
    """nats-py's own errors as they are; our slice running out is the same as nats-py's timeout."""
    if isinstance(exc, (nats_errors.Error, js_errors.Error)):
        return exc
    return nats_errors.TimeoutError()


def _rfc3339(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
