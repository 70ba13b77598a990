"""The double's monitoring port: the two endpoints natsctl's backend asks before a replay.

- ``/streaming/serverz``: the server's identity, with the counters the recordings in
  tests/fixtures/monitoring/stan-*/serverz.json hold;
- ``/streaming/channelsz?channel=NAME``: one channel, with the keys of the recorded
  ``channelsz?channel=ticket:created`` body (``subs_count`` from 0.23.2 on), or a 404 plain-text
  ``Channel NAME not found`` for a missing channel (nats-streaming-server's handleOneChannel; the
  recordings only hold channels that exist).

Anything else answers 404 ``404 page not found``, as Go's HTTP mux does. Opt-in (``--monitor-port``):
without it the double has no monitoring port, like a server whose port is not reachable.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from natsctl.backends.stan import proto

if TYPE_CHECKING:
    from tests.stan_double.server import StanDouble


class MonitorPort:
    def __init__(self, double: StanDouble) -> None:
        self.double = double
        self.server: asyncio.AbstractServer | None = None
        self.started = datetime.now(UTC)
        self.requests: list[str] = []  # paths asked, in order (tests check what natsctl asked)

    async def start(self, port: int = 0) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, target, _ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            self.requests.append(target)
            status, body, kind = self.answer(target) if method == "GET" else (405, b"", "text/plain")
            head = (
                f"HTTP/1.1 {status} {'OK' if status == 200 else 'Not Found'}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, ConnectionError):
            pass
        finally:
            writer.close()

    def answer(self, target: str) -> tuple[int, bytes, str]:
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        if parts.path == "/streaming/serverz":
            return 200, self._json(self.serverz()), "application/json"
        if parts.path == "/streaming/channelsz" and "channel" in query:
            name = query["channel"][0]  # parse_qs has decoded it
            channel = self.double.channels.get(name)
            if channel is None:
                return 404, f"Channel {name} not found\n".encode(), "text/plain; charset=utf-8"
            return 200, self._json(self.one_channel(channel, subs="subs" in query)), "application/json"
        if parts.path == "/streaming/channelsz":  # the listing (subs=1: with subscriptions), as recorded
            return 200, self._json(self.channel_list(query)), "application/json"
        return 404, b"404 page not found\n", "text/plain; charset=utf-8"

    def serverz(self) -> dict:
        double = self.double
        channels = double.channels.values()
        now = datetime.now(UTC)
        return {
            "cluster_id": double.config.cluster_id,
            "server_id": double.subjects["pub"].rsplit(".", 1)[-1],
            "version": double.config.version,
            "go": "go1.19.8",
            "state": "STANDALONE",
            "now": now.isoformat().replace("+00:00", "Z"),
            "start_time": self.started.isoformat().replace("+00:00", "Z"),
            "uptime": f"{int((now - self.started).total_seconds())}s",
            "clients": len(double.clients),
            "subscriptions": sum(len(c.subs) for c in double.clients.values()),
            "channels": len(double.channels),
            "total_msgs": sum(len(c.messages) for c in channels),
            "total_bytes": sum(self._bytes(c) for c in channels),
        }

    def channel_list(self, query: dict) -> dict:
        names = sorted(self.double.channels)
        offset = int(query.get("offset", ["0"])[0])
        limit = int(query.get("limit", ["1024"])[0])
        page = names[offset : offset + limit]
        return {
            "cluster_id": self.double.config.cluster_id,
            "server_id": self.double.subjects["pub"].rsplit(".", 1)[-1],
            "now": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "offset": offset,
            "limit": limit,
            "count": len(page),
            "total": len(names),
            "channels": [self.one_channel(self.double.channels[n], subs="subs" in query) for n in page],
        }

    def subscriptions(self, channel) -> list[dict]:
        """Online subscriptions, offline durables and durable queue groups left by their last member."""
        found = []
        for sub in channel.subs:
            found.append(self._sub(sub, sub.durable, "", False, sub.last_sent))
        for sub in channel.durables.values():
            if sub.offline:
                found.append(self._sub(sub, sub.durable, "", True, sub.last_sent))
        for key, group in channel.groups.items():
            for member in group.members:
                found.append(self._sub(member, "", key, False, group.last_sent))
            if not group.members and group.durable and group.last_member is not None:
                found.append(self._sub(group.last_member, "", key, True, group.last_sent))
        return found

    @staticmethod
    def _sub(sub, durable: str, queue: str, offline: bool, last_sent: int) -> dict:
        entry = {"client_id": sub.client_id, "inbox": sub.inbox, "ack_inbox": sub.ack_inbox}
        if durable:
            entry["durable_name"] = durable
        if queue:
            entry["queue_name"] = queue
        entry.update(
            is_durable=bool(durable) or ":" in queue,
            is_offline=offline,
            max_inflight=sub.max_inflight,
            ack_wait=int(sub.ack_wait),
            last_sent=last_sent,
            pending_count=len(sub.unacked),
            is_stalled=False,
        )
        return entry

    def one_channel(self, channel, subs: bool = False) -> dict:
        body = {
            "name": channel.name,
            "msgs": len(channel.messages),
            "bytes": self._bytes(channel),
            "first_seq": channel.messages[0].sequence if channel.messages else 0,
            "last_seq": channel.last_seq,
        }
        if self.double.config.version != "0.17.0":
            online = [s for s in channel.subs if not s.offline]
            body["subs_count"] = len(online) + sum(len(g.members) for g in channel.groups.values())
        if subs:
            body["subscriptions"] = self.subscriptions(channel)
        return body

    @staticmethod
    def _bytes(channel) -> int:
        """What the store counts: the size of each stored MsgProto."""
        return sum(
            len(proto.encode("MsgProto", sequence=m.sequence, subject=channel.name, data=m.data, timestamp=m.timestamp))
            for m in channel.messages
        )

    @staticmethod
    def _json(data: dict) -> bytes:
        return (json.dumps(data, indent=2) + "\n").encode()
