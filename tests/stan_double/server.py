"""A test double of the NATS Streaming server: its side of the protocol, in Python, over a real nats-server.

Faithful to what tests/fixtures/stan-protocol recorded from nats-streaming-server 0.17.0 and 0.23.2
(request subjects, error strings, durable and queue semantics, redelivery, max in flight, heartbeats,
duplicate client ids, pings). The store is in memory; a monitoring port (serverz and one channel's
channelsz only) is opt-in, see monitor.py.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import string
import time
from dataclasses import dataclass, field

import nats
from nats.nuid import NUID

from natsctl.backends.stan import proto

VERSIONS = ("0.17.0", "0.23.2")
CLIENT_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
TOKEN_CHARS = string.ascii_letters + string.digits

ERR_CLIENT_ID = "stan: invalid clientID: only alphanumeric and `-` or `_` characters allowed"
ERR_CONNECT = "stan: invalid connection request"
ERR_DUP_CLIENT = "stan: clientID already registered"
ERR_PUBLISH = "stan: invalid publish request"
ERR_SUB_REQUEST = "stan: invalid subscription request"
ERR_MISSING_CLIENT = "stan: clientID missing"
ERR_ACK_WAIT = "stan: invalid ack wait time, should be >= 1s"
ERR_MAX_INFLIGHT = "stan: invalid MaxInflight, should be >= 1"
ERR_START = "stan: invalid start position"
ERR_SUBJECT = "stan: invalid subject"
ERR_DURABLE_COLON = "stan: durable name of a durable queue subscriber can't contain the character ':'"
ERR_DUP_DURABLE = "stan: duplicate durable registration"
ERR_UNKNOWN_CLIENT = "stan: unknown clientID"
ERR_INVALID_SUB = "stan: invalid subscription"
ERR_UNSUB_REQUEST = "stan: invalid unsubscribe request"
ERR_CLOSE_REQUEST = "stan: invalid close request"
ERR_PING = "client has been replaced or is no longer registered"


@dataclass
class Config:
    cluster_id: str = "test-cluster"
    version: str = "0.23.2"
    hb_interval: float = 30.0  # -hbi
    hb_timeout: float = 10.0  # -hbt
    hb_fail_count: int = 10  # -hbf
    dup_cid_timeout: float = 0.5  # defaultCheckDupCIDTimeout
    redelivery_tick: float = 0.02
    channel_max_msgs: dict[str, int] = field(default_factory=dict)  # per-channel max_msgs (store limits)


@dataclass
class Client:
    id: str
    hb_inbox: str
    conn_id: bytes
    subs: list[Sub] = field(default_factory=list)
    hb_task: asyncio.Task | None = None


@dataclass
class Stored:
    sequence: int
    data: bytes
    timestamp: int  # ns


@dataclass(eq=False)
class Sub:
    client_id: str
    channel: str
    inbox: str
    ack_inbox: str
    max_inflight: int
    ack_wait: float
    durable: str = ""
    group: QueueGroup | None = None
    last_sent: int = 0  # plain subscriptions; queue members share the group's
    unacked: dict[int, list[float]] = field(default_factory=dict)  # seq -> [redeliveries, deadline]
    offline: bool = False
    nats_sub: object | None = None


@dataclass(eq=False)
class QueueGroup:
    key: str  # "queue", or "durable:queue" for a durable queue group
    durable: bool
    members: list[Sub] = field(default_factory=list)
    last_sent: int = 0
    next_index: int = 0
    orphans: dict[int, list[float]] = field(default_factory=dict)  # unacked of members that left
    last_member: Sub | None = None  # an offline durable queue group is listed as its last member


@dataclass
class Channel:
    name: str
    messages: list[Stored] = field(default_factory=list)
    subs: list[Sub] = field(default_factory=list)  # online plain subscriptions
    durables: dict[tuple[str, str], Sub] = field(default_factory=dict)  # (client id, durable) -> sub
    groups: dict[str, QueueGroup] = field(default_factory=dict)

    dropped: int = 0  # messages removed from the front by the channel's limits
    max_msgs: int = 0
    size: int = 0  # what the store counts (channelsz "bytes"): the encoded size of each stored MsgProto

    @property
    def last_seq(self) -> int:
        return self.messages[-1].sequence if self.messages else self.dropped

    @property
    def first_seq(self) -> int:
        return self.messages[0].sequence if self.messages else (self.dropped + 1 if self.dropped else 0)

    def at(self, seq: int) -> Stored | None:
        index = seq - self.dropped - 1
        return self.messages[index] if 0 <= index < len(self.messages) else None

    def store(self, data: bytes) -> None:
        stored = Stored(self.last_seq + 1, data, time.time_ns())
        self.messages.append(stored)
        self.size += self.stored_size(stored)
        if self.max_msgs and len(self.messages) > self.max_msgs:
            self.size -= self.stored_size(self.messages.pop(0))
            self.dropped += 1

    def stored_size(self, stored: Stored) -> int:
        """len(MsgProto(sequence, subject, data, timestamp)), counted without encoding it."""
        subject = len(self.name.encode())
        data = len(stored.data)
        size = 1 + _varint_len(stored.sequence) + 1 + _varint_len(subject) + subject + 1 + _varint_len(stored.timestamp)
        return size + (1 + _varint_len(data) + data if data else 0)


def _varint_len(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def valid_channel(name: str) -> bool:
    """No wildcard, no empty token: what the server accepts as a channel name."""
    if not name:
        return False
    return all(token and token not in ("*", ">") for token in name.split("."))


class StanDouble:
    def __init__(self, config: Config) -> None:
        if config.version not in VERSIONS:
            raise ValueError(f"version must be one of {VERSIONS}")
        self.config = config
        self.nc: nats.aio.client.Client | None = None
        self.nuid = NUID()
        self.clients: dict[str, Client] = {}
        self.by_conn_id: dict[bytes, str] = {}
        self.channels: dict[str, Channel] = {}
        self.by_ack_inbox: dict[str, Sub] = {}
        self.answer_pings = True
        self._hb_prefix = ""
        self._probes: dict[str, asyncio.Future] = {}
        self._tasks: set[asyncio.Task] = set()
        self._redelivery: asyncio.Task | None = None
        tag = config.cluster_id if config.version == "0.23.2" else self._new_nuid()
        self.subjects = {kind: f"_STAN.{kind}.{tag}" for kind in ("pub", "sub", "unsub", "subclose", "close")}
        self.discover = f"_STAN.discover.{config.cluster_id}"
        self.pings = f"{self.discover}.pings"

    def _new_nuid(self) -> str:
        return self.nuid.next().decode()

    # ---- lifecycle

    async def start(self, nats_url: str) -> StanDouble:
        self.nc = await nats.connect(nats_url, name=f"_NSS-{self.config.cluster_id}-double", max_reconnect_attempts=-1)
        await self._check_no_other_server()
        self._hb_prefix = f"_INBOX.{self._new_nuid()}"
        nc = self.nc
        await nc.subscribe(f"{self._hb_prefix}.*", cb=self._on_probe_reply)
        await nc.subscribe(self.discover, cb=self._on_connect)
        await nc.subscribe(self.pings, cb=self._on_ping)
        await nc.subscribe(self.subjects["pub"] + ".>", cb=self._on_publish)
        await nc.subscribe(self.subjects["sub"], cb=self._on_subscribe)
        await nc.subscribe(self.subjects["unsub"], cb=self._on_unsub)
        await nc.subscribe(self.subjects["subclose"], cb=self._on_subclose)
        await nc.subscribe(self.subjects["close"], cb=self._on_close)
        await nc.flush()
        self._redelivery = asyncio.get_running_loop().create_task(self._redelivery_loop())
        return self

    async def _check_no_other_server(self) -> None:
        """The real server probes its own discover subject at startup; an answer means a clash."""
        probe = proto.encode("ConnectRequest", clientID=self.config.cluster_id, heartbeatInbox=self.nc.new_inbox())
        try:
            await self.nc.request(self.discover, probe, timeout=0.2)
        except Exception:  # noqa: BLE001 - no responders or timeout: nobody else serves this cluster id
            return
        raise RuntimeError(f"discovered another streaming server with cluster ID {self.config.cluster_id!r}")

    async def stop(self) -> None:
        for task in [self._redelivery, *self._tasks, *(c.hb_task for c in self.clients.values())]:
            if task:
                task.cancel()
        if self.nc and not self.nc.is_closed:
            await self.nc.close()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, reply: str, name: str, **fields) -> None:
        if reply:
            await self.nc.publish(reply, proto.encode(name, **fields))

    # ---- connect, close, heartbeats, pings

    async def _on_connect(self, msg) -> None:
        try:
            req = proto.decode("ConnectRequest", msg.data)
        except proto.DecodeError:
            return await self._reply(msg.reply, "ConnectResponse", error=ERR_CONNECT)
        if req.clientID == self.config.cluster_id and not req.connID:
            return  # our own startup probe (or another server's): never answered
        if not CLIENT_ID.match(req.clientID):
            return await self._reply(msg.reply, "ConnectResponse", error=ERR_CLIENT_ID)
        if not req.heartbeatInbox:
            return await self._reply(msg.reply, "ConnectResponse", error=ERR_CONNECT)
        if req.clientID in self.clients:
            return self._spawn(self._connect_duplicate(msg, req))
        await self._register(msg, req)

    async def _connect_duplicate(self, msg, req) -> None:
        old = self.clients[req.clientID]
        if await self._probe(old.hb_inbox, self.config.dup_cid_timeout):
            return await self._reply(msg.reply, "ConnectResponse", error=ERR_DUP_CLIENT)
        if self.clients.get(req.clientID) is old:
            self._drop_client(old)  # replaced: it did not answer
        await self._register(msg, req)

    async def _register(self, msg, req) -> None:
        client = Client(req.clientID, req.heartbeatInbox, bytes(req.connID))
        self.clients[client.id] = client
        if client.conn_id:
            self.by_conn_id[client.conn_id] = client.id
        client.hb_task = asyncio.get_running_loop().create_task(self._heartbeats(client))
        fields = dict(
            pubPrefix=self.subjects["pub"],
            subRequests=self.subjects["sub"],
            unsubRequests=self.subjects["unsub"],
            closeRequests=self.subjects["close"],
            subCloseRequests=self.subjects["subclose"],
            protocol=1,  # both versions answer 1, even to protocol 0
        )
        if req.protocol >= 1:  # ping fields only for protocol-1 clients, values echoed
            fields.update(pingRequests=self.pings, pingInterval=req.pingInterval, pingMaxOut=req.pingMaxOut)
        await self._reply(msg.reply, "ConnectResponse", **fields)

    async def _on_close(self, msg) -> None:
        try:
            req = proto.decode("CloseRequest", msg.data)
        except proto.DecodeError:
            return await self._reply(msg.reply, "CloseResponse", error=ERR_CLOSE_REQUEST)
        client = self.clients.get(req.clientID)
        if client is None:
            return await self._reply(msg.reply, "CloseResponse", error=ERR_UNKNOWN_CLIENT)
        self._drop_client(client)
        await self._reply(msg.reply, "CloseResponse")

    def _drop_client(self, client: Client) -> None:
        """Close, replaced or timed out: durables stay (offline), everything else goes."""
        if self.clients.get(client.id) is client:
            del self.clients[client.id]
        self.by_conn_id.pop(client.conn_id, None)
        if client.hb_task and client.hb_task is not asyncio.current_task():
            client.hb_task.cancel()
        for sub in list(client.subs):
            self._remove_sub(sub, delete=False)

    async def _heartbeats(self, client: Client) -> None:
        cfg = self.config
        failures = 0
        while True:
            await asyncio.sleep(cfg.hb_interval)
            if await self._probe(client.hb_inbox, cfg.hb_timeout):
                failures = 0
                continue
            failures += 1
            if failures > cfg.hb_fail_count:
                self._drop_client(client)  # "[Client:x] Timed out on heartbeats"
                return

    async def _probe(self, inbox: str, timeout: float) -> bool:
        """An empty request to a heartbeat inbox: True when the client answered in time."""
        token = "".join(secrets.choice(TOKEN_CHARS) for _ in range(8))
        future = asyncio.get_running_loop().create_future()
        self._probes[token] = future
        try:
            await self.nc.publish(inbox, b"", reply=f"{self._hb_prefix}.{token}")
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        finally:
            self._probes.pop(token, None)

    async def _on_probe_reply(self, msg) -> None:
        future = self._probes.get(msg.subject.rsplit(".", 1)[-1])
        if future is None or future.done():
            return
        no_responders = bool(msg.headers) and msg.headers.get("Status") == "503"
        if not no_responders:
            future.set_result(True)
        elif self.config.version == "0.23.2":
            # 0.23.2 runs on a headers-capable server: its request fails at once; 0.17.0 waits it out
            future.set_result(False)

    async def _on_ping(self, msg) -> None:
        if not msg.data or not self.answer_pings:
            return  # an empty Ping is silently ignored
        try:
            req = proto.decode("Ping", msg.data)
        except proto.DecodeError:
            return
        if bytes(req.connID) in self.by_conn_id:
            await self._reply(msg.reply, "PingResponse")
        else:
            await self._reply(msg.reply, "PingResponse", error=ERR_PING)

    # ---- publish

    async def _on_publish(self, msg) -> None:
        try:
            req = proto.decode("PubMsg", msg.data)
        except proto.DecodeError:
            return await self._reply(msg.reply, "PubAck", error=ERR_PUBLISH)
        if not self._publisher_known(req) or not req.guid or not valid_channel(req.subject):
            return await self._reply(msg.reply, "PubAck", guid=req.guid, error=ERR_PUBLISH)
        channel = self._channel(req.subject)  # PubMsg.subject, not the NATS subject, names the channel
        channel.store(bytes(req.data))
        await self._reply(msg.reply, "PubAck", guid=req.guid)
        await self._deliver(channel)

    def _publisher_known(self, req) -> bool:
        if req.connID:  # validated by connID only
            return bytes(req.connID) in self.by_conn_id
        return req.clientID in self.clients

    def _channel(self, name: str) -> Channel:
        if name not in self.channels:
            self.channels[name] = Channel(name, max_msgs=self.config.channel_max_msgs.get(name, 0))
        return self.channels[name]

    # ---- subscribe

    def _subscribe_error(self, req) -> str:
        if not req.clientID:
            return ERR_MISSING_CLIENT
        if req.ackWaitInSecs <= 0:
            return ERR_ACK_WAIT
        if req.maxInFlight <= 0:
            return ERR_MAX_INFLIGHT
        if req.startPosition not in proto.START_POSITIONS.values():
            return ERR_START
        if not valid_channel(req.subject):
            return ERR_SUBJECT
        if req.qGroup and ":" in req.durableName:
            return ERR_DURABLE_COLON
        if req.clientID not in self.clients:
            return ERR_UNKNOWN_CLIENT if self.config.version == "0.23.2" else f"can't find clientID: {req.clientID}"
        return ""

    async def _on_subscribe(self, msg) -> None:
        try:
            req = proto.decode("SubscriptionRequest", msg.data)
        except proto.DecodeError:
            return await self._reply(msg.reply, "SubscriptionResponse", error=ERR_SUB_REQUEST)
        error = self._subscribe_error(req)
        sub = None
        if not error:
            sub, error = self._attach(req)
        if error:
            return await self._reply(msg.reply, "SubscriptionResponse", error=error)
        sub.nats_sub = await self.nc.subscribe(sub.ack_inbox, cb=self._on_ack)
        await self._reply(msg.reply, "SubscriptionResponse", ackInbox=sub.ack_inbox)
        # A resumed durable's (or a joining member's inherited) pending come first, in order, then new
        # messages: nats-streaming-server's performDurableRedelivery runs before sendAvailableMessages.
        messages = self.channels[sub.channel].messages
        for seq in sorted(seq for seq, (_, deadline) in sub.unacked.items() if deadline == 0.0):
            await self._send(sub, messages[seq - 1], sub.unacked[seq][0] + 1)
        await self._deliver(self.channels[sub.channel])

    def _attach(self, req) -> tuple[Sub | None, str]:
        """Create the subscription, or resume the durable / join the queue group it names."""
        channel = self._channel(req.subject)
        sub = Sub(
            client_id=req.clientID,
            channel=channel.name,
            inbox=req.inbox,
            ack_inbox=f"_INBOX.{self._new_nuid()}",
            max_inflight=req.maxInFlight,
            ack_wait=float(req.ackWaitInSecs),
            durable=req.durableName,
        )
        if req.qGroup:
            error = self._join_group(channel, sub, req)
        elif req.durableName:
            error = self._resume_durable(channel, sub, req)
        else:
            sub.last_sent = self._start_after(channel, req)
            channel.subs.append(sub)
            error = ""
        if error:
            return None, error
        self.clients[req.clientID].subs.append(sub)
        self.by_ack_inbox[sub.ack_inbox] = sub
        return sub, ""

    def _resume_durable(self, channel: Channel, sub: Sub, req) -> str:
        key = (req.clientID, req.durableName)
        old = channel.durables.get(key)
        if old is not None and not old.offline:
            return ERR_DUP_DURABLE
        if old is not None:  # resume: the start position is ignored, pending come back at once
            sub.last_sent = old.last_sent
            sub.unacked = {seq: [n, 0.0] for seq, (n, _) in old.unacked.items()}
        else:
            sub.last_sent = self._start_after(channel, req)
        channel.durables[key] = sub
        channel.subs.append(sub)
        return ""

    def _join_group(self, channel: Channel, sub: Sub, req) -> str:
        key = f"{req.durableName}:{req.qGroup}" if req.durableName else req.qGroup
        group = channel.groups.get(key)
        if group is None:
            group = QueueGroup(key, durable=bool(req.durableName), last_sent=self._start_after(channel, req))
            channel.groups[key] = group
        sub.group = group
        sub.unacked = {seq: [n, 0.0] for seq, (n, _) in group.orphans.items()}  # redelivered at once
        group.orphans = {}
        group.members.append(sub)
        return ""

    def _start_after(self, channel: Channel, req) -> int:
        """The sequence a new subscription starts after."""
        last = channel.last_seq
        pos = req.startPosition
        if pos == proto.START_POSITIONS["LastReceived"]:
            return max(last - 1, 0)
        if pos == proto.START_POSITIONS["First"]:
            return channel.dropped
        if pos == proto.START_POSITIONS["SequenceStart"]:
            if 0 < req.startSequence <= last:
                return max(req.startSequence - 1, channel.dropped)
            return channel.dropped if req.startSequence == 0 else last
        if pos == proto.START_POSITIONS["TimeDeltaStart"]:
            since = time.time_ns() - req.startTimeDelta
            first = next((m.sequence for m in channel.messages if m.timestamp >= since), last + 1)
            return first - 1
        return last  # NewOnly

    # ---- unsubscribe / close a subscription

    async def _on_unsub(self, msg) -> None:
        await self._on_unsubscribe(msg, delete=True)

    async def _on_subclose(self, msg) -> None:
        await self._on_unsubscribe(msg, delete=False)

    async def _on_unsubscribe(self, msg, *, delete: bool) -> None:
        try:
            req = proto.decode("UnsubscribeRequest", msg.data)
        except proto.DecodeError:
            return await self._reply(msg.reply, "SubscriptionResponse", error=ERR_UNSUB_REQUEST)
        sub = self.by_ack_inbox.get(req.inbox)
        if req.subject not in self.channels or sub is None or sub.channel != req.subject:
            return await self._reply(msg.reply, "SubscriptionResponse", error=ERR_INVALID_SUB)
        if sub.client_id != req.clientID:
            return await self._reply(msg.reply, "SubscriptionResponse", error=ERR_UNKNOWN_CLIENT)
        self._remove_sub(sub, delete=delete)
        await self._reply(msg.reply, "SubscriptionResponse")
        await self._deliver(self.channels[sub.channel])

    def _remove_sub(self, sub: Sub, *, delete: bool) -> None:
        channel = self.channels[sub.channel]
        self.by_ack_inbox.pop(sub.ack_inbox, None)
        client = self.clients.get(sub.client_id)
        if client and sub in client.subs:
            client.subs.remove(sub)
        if sub.nats_sub is not None:
            self._spawn(sub.nats_sub.unsubscribe())
        if sub.group is not None:
            return self._leave_group(channel, sub, delete)
        if sub in channel.subs:
            channel.subs.remove(sub)
        key = (sub.client_id, sub.durable)
        if sub.durable and channel.durables.get(key) is sub:
            if delete:
                del channel.durables[key]
            else:
                sub.offline = True

    def _leave_group(self, channel: Channel, sub: Sub, delete: bool) -> None:
        group = sub.group
        group.members.remove(sub)
        group.last_member = sub
        for seq, (n, _) in sub.unacked.items():  # another member (or a later one) gets them
            target = min(group.members, key=lambda m: len(m.unacked)) if group.members else None
            (target.unacked if target else group.orphans)[seq] = [n, 0.0]
        if group.members:
            return
        if not group.durable or delete:
            del channel.groups[group.key]

    # ---- delivery, acks, redelivery

    async def _deliver(self, channel: Channel) -> None:
        for sub in list(channel.subs):
            while sub.last_sent < channel.last_seq and len(sub.unacked) < sub.max_inflight:
                sub.last_sent = max(sub.last_sent + 1, channel.dropped + 1)
                await self._send(sub, channel.at(sub.last_sent))
        for group in list(channel.groups.values()):
            while group.last_sent < channel.last_seq:
                member = self._next_member(group)
                if member is None:
                    break
                group.last_sent = max(group.last_sent + 1, channel.dropped + 1)
                await self._send(member, channel.at(group.last_sent))

    def _next_member(self, group: QueueGroup) -> Sub | None:
        """Rotate among the members with the fewest unacked messages (and room for one more)."""
        free = [m for m in group.members if len(m.unacked) < m.max_inflight]
        if not free:
            return None
        fewest = min(len(m.unacked) for m in free)
        count = len(group.members)
        for step in range(count):
            member = group.members[(group.next_index + step) % count]
            if member in free and len(member.unacked) == fewest:
                group.next_index = (group.members.index(member) + 1) % count
                return member
        return None

    async def _send(self, sub: Sub, stored: Stored, redeliveries: int = 0) -> None:
        sub.unacked[stored.sequence] = [redeliveries, time.monotonic() + sub.ack_wait]
        if not sub.inbox:
            return  # an empty inbox is accepted, nothing can be delivered to it
        payload = proto.encode(
            "MsgProto",
            sequence=stored.sequence,
            subject=sub.channel,
            data=stored.data,
            timestamp=stored.timestamp,
            redelivered=redeliveries > 0,
            redeliveryCount=redeliveries,
        )
        await self.nc.publish(sub.inbox, payload)

    async def _on_ack(self, msg) -> None:
        sub = self.by_ack_inbox.get(msg.subject)
        try:
            ack = proto.decode("Ack", msg.data)
        except proto.DecodeError:
            return
        if sub is None or sub.unacked.pop(ack.sequence, None) is None:
            return
        await self._deliver(self.channels[sub.channel])

    async def _redelivery_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.redelivery_tick)
            now = time.monotonic()
            for sub in list(self.by_ack_inbox.values()):
                due = sorted(seq for seq, (_, deadline) in sub.unacked.items() if deadline <= now)
                channel = self.channels[sub.channel]
                for seq in due:
                    if seq in sub.unacked and sub.ack_inbox in self.by_ack_inbox:
                        stored = channel.at(seq)
                        if stored is None:  # removed by the channel's limits meanwhile: never again
                            sub.unacked.pop(seq, None)
                            continue
                        await self._send(sub, stored, sub.unacked[seq][0] + 1)

    # ---- test hooks

    def durable_names(self, channel: str) -> list[str]:
        found = self.channels.get(channel)
        if not found:
            return []
        names = [d for (_, d) in found.durables]
        return names + [k for k, g in found.groups.items() if g.durable]
