"""The client side of the NATS Streaming protocol over a nats-py connection.

Its messages are read and written without protobuf (see .wire: the same bytes, the same values).

Protocol facts this relies on (see tests/fixtures/stan-protocol/README.md): discovery on
``_STAN.discover.<cluster-id>``; every other request subject comes from the ConnectResponse; success
responses are often empty payloads; PubAcks come back on the reply subject of each PubMsg; MsgProto
arrives on our inbox with no reply and is acked by a plain publish to the subscription's ackInbox.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from nats import errors as nats_errors
from nats.aio.client import Client as NatsClient
from nats.nuid import NUID

from natsctl.core.errors import ConnectionFailed, NatsctlError, Timeout, UsageError
from natsctl.transport.fast import RawHandler, RunHandler, route_raw, send_raw, unroute, wake_flusher

from . import proto, wire
from .errors import ERR_REPLACED, server_error

CLIENT_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
DEFAULT_PING_INTERVAL = 5.0  # seconds, as the node and Go clients
DEFAULT_PING_MAX_OUT = 3
DEFAULT_PUB_WINDOW = 4096  # PubAcks outstanding at once


def check_channel(name: str) -> None:
    """A channel is a NATS subject without wildcards or empty tokens (the server says 'invalid subject')."""
    tokens = name.split(".")
    if not name or any(not t or t in ("*", ">") or any(c.isspace() for c in t) for t in tokens):
        raise UsageError(f"invalid channel name {name!r}: no wildcards ('*', '>'), spaces or empty tokens")


def check_client_id(client_id: str) -> None:
    if not CLIENT_ID.match(client_id):
        raise UsageError(f"invalid client id {client_id!r}: only letters, digits, '-' and '_' are allowed")


def is_no_responders(msg) -> bool:
    return bool(msg.headers) and msg.headers.get("Status") == "503"


@dataclass
class Subjects:
    """The request subjects a server returned in its ConnectResponse (never hard-coded)."""

    pub: str
    sub: str
    unsub: str
    subclose: str
    close: str
    ping: str


class StanClient:
    """One NATS Streaming client registration (cluster id + client id) on a nats-py connection."""

    def __init__(
        self,
        nc: NatsClient,
        cluster_id: str,
        client_id: str,
        *,
        timeout: float = 5.0,
        where: str = "",
        ping_interval: float = DEFAULT_PING_INTERVAL,
        ping_max_out: int = DEFAULT_PING_MAX_OUT,
    ) -> None:
        self.nc = nc
        self.cluster_id = cluster_id
        self.client_id = client_id
        self.timeout = timeout
        self.where = where or "the server"
        self.ping_interval = ping_interval
        self.ping_max_out = ping_max_out
        self.nuid = NUID()
        self.conn_id = self.nuid.next().decode()
        self.subjects: Subjects | None = None
        self.lost: NatsctlError | None = None
        self._lost_listeners: list[Callable[[NatsctlError], None]] = []
        self._pings_out = 0
        self._ping_task: asyncio.Task | None = None
        self._nats_subs: list = []
        # PubAcks awaited: guid -> the publisher's token; ``_ack_sink(token, error)`` hears of each (see publish.py).
        self._acks: dict[bytes, int] = {}
        self._ack_sink: Callable[[int, str], None] = _no_sink
        self._ack_prefix = ""

    # ---- connect / close

    async def connect(self) -> None:
        check_client_id(self.client_id)
        hb_inbox = self.nc.new_inbox()
        self._nats_subs.append(await self.nc.subscribe(hb_inbox, cb=self._on_heartbeat))
        request = wire.encode(
            "ConnectRequest",
            clientID=self.client_id,
            heartbeatInbox=hb_inbox,
            protocol=1,
            connID=self.conn_id.encode(),
            pingInterval=max(1, math.ceil(self.ping_interval)),  # whole seconds on the wire
            pingMaxOut=self.ping_max_out,
        )
        response = await self._discover(request)
        if response.error:
            await self._drop_subs()
            raise server_error(response.error, client_id=self.client_id)
        self.subjects = Subjects(
            response.pubPrefix,
            response.subRequests,
            response.unsubRequests,
            response.subCloseRequests,
            response.closeRequests,
            response.pingRequests,
        )
        await self._start_acks_and_pings()

    async def _discover(self, request: bytes):
        subject = f"_STAN.discover.{self.cluster_id}"
        try:
            msg = await self.nc.request(subject, request, timeout=self.timeout)
        except (TimeoutError, nats_errors.NoRespondersError, nats_errors.TimeoutError):
            await self._drop_subs()
            raise ConnectionFailed(
                f"no NATS Streaming server with cluster id {self.cluster_id!r} answered at {self.where}",
                hint="check --cluster-id / NATS_CLUSTER_ID (nats-streaming-server -cid) and --server",
            ) from None
        return self._decode("ConnectResponse", msg.data)

    async def _start_acks_and_pings(self) -> None:
        # One wildcard subscription for every PubAck of this client: no per-message subscription or future.
        # Routed raw, as JetStream's acks: no Msg object, queue or task per PubAck.
        self._ack_prefix = f"_STAN.acks.{self.nuid.next().decode()}"
        ack_sub = await self.nc.subscribe(self._ack_prefix + ".*")
        route_raw(self.nc, ack_sub, self._on_pub_ack)
        self._nats_subs.append(ack_sub)
        self._ping_inbox = self.nc.new_inbox()
        self._nats_subs.append(await self.nc.subscribe(self._ping_inbox, cb=self._on_ping_response))
        if self._subjects.ping:  # protocol-1 servers only
            self._ping_task = asyncio.get_running_loop().create_task(self._ping_loop())

    @property
    def _subjects(self) -> Subjects:  # also read by the subscription handles of this module
        """The server's protocol subjects, known once connected."""
        if self.subjects is None:
            raise ConnectionFailed(f"not connected to the NATS Streaming server at {self.where}")
        return self.subjects

    async def close(self) -> None:
        """Unregister with a CloseRequest (durables stay on the server); quiet if the client was already lost."""
        if self._ping_task:
            self._ping_task.cancel()
        try:
            if self.subjects and self.lost is None and not self.nc.is_closed:
                await self._request(self._subjects.close, wire.encode("CloseRequest", clientID=self.client_id))
        except NatsctlError:
            pass  # closing after a loss: nothing left to close
        finally:
            await self._drop_subs()

    async def _drop_subs(self) -> None:
        for sub in self._nats_subs:
            unroute(self.nc, sub)
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be gone already
                pass
        self._nats_subs.clear()

    # ---- liveness

    async def _on_heartbeat(self, msg) -> None:
        if msg.reply:  # an empty publish (no reply subject) answers the server's heartbeat
            await self.nc.publish(msg.reply, b"")

    async def _ping_loop(self) -> None:
        ping = wire.encode("Ping", connID=self.conn_id.encode())
        while self.lost is None:
            await asyncio.sleep(self.ping_interval)
            if self.nc.is_closed:
                return self._lose(ConnectionFailed(f"the connection to {self.where} was closed"))
            self._pings_out += 1
            if self._pings_out > self.ping_max_out:
                return self._lose(
                    ConnectionFailed(
                        f"lost the NATS Streaming server at {self.where}: {self.ping_max_out} pings went unanswered",
                    )
                )
            try:
                await self.nc.publish(self._subjects.ping, ping, reply=self._ping_inbox)
            except Exception:  # noqa: BLE001 - reconnecting: the missing answer counts
                pass

    async def _on_ping_response(self, msg) -> None:
        if is_no_responders(msg):
            return  # nobody serves the ping subject: not an answer
        response = self._decode("PingResponse", msg.data)
        if response.error:
            error = server_error(response.error, client_id=self.client_id)
            if response.error == ERR_REPLACED:
                error = ConnectionFailed(
                    f"the NATS Streaming server dropped client id {self.client_id!r}: '{ERR_REPLACED}'",
                    hint="another client connected with the same id, or heartbeats were missed",
                )
            return self._lose(error)
        self._pings_out = 0

    def on_lost(self, listener: Callable[[NatsctlError], None]) -> None:
        self._lost_listeners.append(listener)

    def _lose(self, error: NatsctlError) -> None:
        if self.lost is not None:
            return
        self.lost = error
        self.forget(error.message)
        for listener in self._lost_listeners:
            listener(error)

    def check(self) -> None:
        if self.lost is not None:
            raise self.lost

    # ---- helpers

    def _decode(self, name: str, data: bytes):
        try:
            return wire.decode(name, data)
        except proto.DecodeError:
            raise ConnectionFailed(f"{self.where} sent an invalid {name}: is it a NATS Streaming server?") from None

    async def _request(self, subject: str, payload: bytes, response: str = "CloseResponse"):
        self.check()
        try:
            msg = await self.nc.request(subject, payload, timeout=self.timeout)
        except nats_errors.NoRespondersError:
            raise ConnectionFailed(f"the NATS Streaming server at {self.where} is gone (no responders)") from None
        except (TimeoutError, nats_errors.TimeoutError):
            raise Timeout(
                f"the NATS Streaming server at {self.where} did not answer within {self.timeout:g}s"
            ) from None
        except nats_errors.ConnectionClosedError:
            raise ConnectionFailed(f"the connection to {self.where} was closed") from None
        return self._decode(response, msg.data)

    # ---- publish

    def pub_encoder(self, channel: str) -> PubEncoder:
        """What a publisher needs to build this client's PubMsgs to ``channel`` by itself (see PubEncoder)."""
        self.check()
        return PubEncoder(
            client_id=self.client_id,
            conn_id=self.conn_id,
            channel=channel,
            pub_prefix=self._subjects.pub,
            ack_prefix=self._ack_prefix,
            guid_prefix=bytes(self.nuid.next()[:12]),
            acks=self._acks,
            max_payload=self.nc.max_payload,
        )

    def await_acks(self, sink: Callable[[int, str], None]) -> None:
        """``sink(token, error)`` hears of every PubAck awaited (``error`` "" when stored), until ``forget``."""
        self._ack_sink = sink

    def forget(self, reason: str) -> None:
        """Give up on every PubAck still awaited (timed out, or the connection is lost)."""
        tokens = sorted(self._acks.values())
        self._acks.clear()  # in place: a publisher's PubEncoder keeps registering into this dict
        sink = self._ack_sink
        for token in tokens:
            sink(token, reason)

    @property
    def awaiting_acks(self) -> int:
        return len(self._acks)

    def _on_pub_ack(self, subject: bytes, _reply: bytes, payload: bytes, headers: dict[str, list[str]] | None) -> None:
        if headers and headers.get("Status") == ["503"]:
            return self._lose(ConnectionFailed(f"the NATS Streaming server at {self.where} is gone (no responders)"))
        error = pub_ack_error(payload)
        if error is None:
            return  # not a PubAck
        # The guid is the reply subject's last token (an error PubAck may carry no guid of its own).
        token = self._acks.pop(subject[len(self._ack_prefix) + 1 :], None)
        if token is not None:
            self._ack_sink(token, error)

    # ---- subscribe

    async def subscribe(
        self,
        request: dict,
        on_message: Callable[[bytes], None] | None = None,
        *,
        on_raw: RawHandler | None = None,
        on_run: RunHandler | None = None,
    ) -> StanSubscriptionHandle:
        """Open a subscription; ``request`` holds SubscriptionRequest fields other than clientID and inbox.

        ``on_message(payload)`` gets each MsgProto payload in order and must not raise: on the fast path
        straight from nats-py's parser, with no Msg object or task switch per message (natsctl/transport/fast.py).
        ``on_raw(subject, reply, payload, headers)`` instead is that route's handler itself (one call less),
        and ``on_run(subjects, replies, payloads)`` takes whole runs of messages of one read at once.
        """
        self.check()
        inbox = self.nc.new_inbox()
        # Ready to receive before the request goes out: messages may arrive right behind the response.
        nats_sub = await self.nc.subscribe(inbox, pending_msgs_limit=1_000_000)
        if on_raw is None:
            assert on_message is not None, "subscribe needs on_message or on_raw"
            deliver = on_message
            on_raw = lambda subject, reply, payload, headers: deliver(payload)  # noqa: E731
        route_raw(self.nc, nats_sub, on_raw, on_run)
        payload = wire.encode("SubscriptionRequest", clientID=self.client_id, inbox=inbox, **request)
        try:
            response = await self._request(self._subjects.sub, payload, "SubscriptionResponse")
        except NatsctlError:
            await _drop(self.nc, nats_sub)
            raise
        if response.error:
            await _drop(self.nc, nats_sub)
            raise server_error(
                response.error,
                client_id=self.client_id,
                channel=request.get("subject", ""),
                durable=request.get("durableName") or "",
            )
        return StanSubscriptionHandle(
            self, request["subject"], response.ackInbox, nats_sub, request.get("durableName") or ""
        )


class StanSubscriptionHandle:
    """The protocol side of one subscription: acks and leaving."""

    def __init__(self, client: StanClient, channel: str, ack_inbox: str, nats_sub, durable: str) -> None:
        self.client = client
        self.channel = channel
        self.ack_inbox = ack_inbox
        self.nats_sub = nats_sub
        self.durable = durable
        self.closed = False

        self._ack_frames = AckFrames(ack_inbox, channel)

    async def ack(self, sequence: int) -> None:
        await self.ack_many([sequence])

    async def ack_many(self, sequences: list[int]) -> None:
        """One Ack per sequence, written out together (one PUB each, as the protocol wants)."""
        if not sequences:
            return
        nc = self.client.nc
        if nc.is_closed:
            raise nats_errors.ConnectionClosedError
        await send_raw(nc, self._ack_frames.frames(sequences))
        await wake_flusher(nc)

    async def close(self, *, unsubscribe: bool) -> None:
        """``unsubscribe`` deletes a durable (unsubRequests); otherwise it stays (subCloseRequests)."""
        if self.closed:
            return
        self.closed = True
        client = self.client
        subject = client._subjects.unsub if unsubscribe else client._subjects.subclose
        payload = wire.encode(
            "UnsubscribeRequest",
            clientID=client.client_id,
            subject=self.channel,
            inbox=self.ack_inbox,
            durableName=self.durable or None,
        )
        try:
            if client.lost is None and not client.nc.is_closed:
                response = await client._request(subject, payload, "SubscriptionResponse")
                if response.error:
                    raise server_error(
                        response.error, client_id=client.client_id, channel=self.channel, durable=self.durable
                    )
        finally:
            await _drop(client.nc, self.nats_sub)


async def _drop(nc: NatsClient, nats_sub) -> None:
    unroute(nc, nats_sub)
    try:
        await nats_sub.unsubscribe()
    except Exception:  # noqa: BLE001 - the connection may be gone
        pass


varint = wire.varint  # protobuf's base-128 varint of a non-negative int


class AckFrames:
    """The PUB frames of a subscription's Acks, built from bytes prepared once per varint length.

    Each frame's payload is ``ack_head(channel) + varint(sequence)``: what ``proto.encode("Ack", ...)``
    gives (tests/test_stan_proto.py).
    """

    __slots__ = ("head", "heads", "inbox")

    def __init__(self, ack_inbox: str, channel: str) -> None:
        self.inbox = ack_inbox.encode()
        self.head = ack_head(channel)
        # The frame up to the sequence's varint, for varints of 1 to 10 bytes (all a uint64 needs).
        self.heads = [b""] + [b"PUB %s %d\r\n%s" % (self.inbox, len(self.head) + n, self.head) for n in range(1, 11)]

    def frames(self, sequences: list[int]) -> bytes:
        heads = self.heads
        parts: list[bytes] = []
        append = parts.append
        for sequence in sequences:
            if sequence < 0x4000:
                if sequence < 0x80:
                    append(heads[1] + bytes((sequence, 13, 10)))
                else:
                    append(heads[2] + bytes((sequence & 0x7F | 0x80, sequence >> 7, 13, 10)))
            elif sequence < 0x200000:
                append(
                    heads[3] + bytes((sequence & 0x7F | 0x80, (sequence >> 7) & 0x7F | 0x80, sequence >> 14, 13, 10))
                )
            else:
                tail = varint(sequence)
                append(heads[len(tail)] + tail + b"\r\n")
        return b"".join(parts)


def ack_head(channel: str) -> bytes:
    """An Ack's bytes up to its sequence: field 1 (subject), then field 2's tag (varint).

    What ``proto.encode("Ack", subject=channel, sequence=n)`` gives is this plus ``varint(n)`` (for
    n > 0, the only sequences there are); tests/test_stan_proto.py holds them equal.
    """
    subject = channel.encode()
    return (b"\x0a" + varint(len(subject)) + subject if subject else b"") + b"\x10"


def _no_sink(token: int, error: str) -> None:
    return None


def pub_ack_error(payload: bytes) -> str | None:
    """A PubAck's error ("" for none), read without protobuf on the usual shape; None when it is no PubAck."""
    size = len(payload)
    if not size:
        return ""
    if payload[0] == 0x0A and size > 1 and payload[1] < 0x80 and size == 2 + payload[1]:
        return ""  # the guid alone: stored
    try:
        return wire.decode("PubAck", payload).error
    except proto.DecodeError:
        return None


class PubEncoder:
    """Builds PUB frames of PubMsgs by hand: the same bytes as ``proto.encode("PubMsg", ...)`` with
    fields clientID, guid, subject, data, connID (tests/test_stan_proto.py holds them equal).

    Guids are this client's random NUID prefix plus a counter: unique, and no NUID per message.
    """

    __slots__ = ("acks", "channel", "head", "max_payload", "middle", "prefix", "reply", "subject", "tail")

    def __init__(
        self,
        *,
        client_id: str,
        conn_id: str,
        channel: str,
        pub_prefix: str,
        ack_prefix: str,
        guid_prefix: bytes,
        acks: dict[bytes, int],
        max_payload: int,
    ) -> None:
        self.channel = channel
        self.subject = f"{pub_prefix}.{channel}".encode()
        self.reply = f"{ack_prefix}.".encode()
        self.prefix = guid_prefix
        self.head = _field(1, client_id.encode())
        self.middle = _field(3, channel.encode())
        self.tail = _field(6, conn_id.encode())
        self.acks = acks
        self.max_payload = max_payload

    def payload(self, guid: bytes, data: bytes) -> bytes:
        data_field = b"\x2a" + varint(len(data)) + data if data else b""
        return self.head + _field(2, guid) + self.middle + data_field + self.tail

    def frame(self, token: int, data: bytes) -> bytes | str:
        """The PUB frame of message ``token`` (its PubAck is then awaited), or why it cannot be sent."""
        guid = self.prefix + b"%d" % token
        payload = self.payload(guid, data)
        if len(payload) > self.max_payload:
            # Refused locally, as nats-server would: the PubMsg envelope counts against max_payload too.
            return (
                f"payload of {len(data)} bytes is over the server's max_payload of {self.max_payload} bytes"
                f" (NATS Streaming adds {len(payload) - len(data)} bytes of envelope)"
            )
        self.acks[guid] = token
        return b"PUB %s %s%s %d\r\n%s\r\n" % (self.subject, self.reply, guid, len(payload), payload)


def _field(number: int, value: bytes) -> bytes:
    """A length-delimited protobuf field; nothing for an empty value (proto3 leaves defaults off)."""
    return bytes((number << 3 | 2,)) + varint(len(value)) + value if value else b""
