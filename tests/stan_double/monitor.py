"""The double's monitoring port: the endpoints natsctl asks (replay's channel lookup, migrate plan).

- ``/streaming/serverz``: the server's identity, with the counters the recordings in
  tests/fixtures/monitoring/stan-*/serverz.json hold;
- ``/streaming/channelsz?channel=NAME``: one channel, with the keys of the recorded
  ``channelsz?channel=ticket:created`` body (``subs_count`` from 0.23.2 on), or a 404 plain-text
  ``Channel NAME not found`` for a missing channel (nats-streaming-server's handleOneChannel; the
  recordings only hold channels that exist).

- ``/streaming/channelsz`` (``names`` only, or with ``subs=1`` every channel and its subscriptions) and
  ``/streaming/clientsz`` (``subs=1``: subscriptions as a map channel -> list), paged by
  ``offset``/``limit`` (default 1024), with the keys of the recorded ``channelsz.json``,
  ``channelsz_names.json``, ``clientsz.json`` and ``clientsz_subs.json`` of each version (0.17.0: no
  ``subs_count``). A subscription lists ``queue_name`` (``durable:queue`` for a durable queue group)
  or ``durable_name`` only when it has one; an offline durable queue group is listed as its last member.

Anything else answers 404 ``404 page not found``, as Go's HTTP mux does. Opt-in (``--monitor-port``):
without it the double has no monitoring port, like a server whose port is not reachable.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

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
            return (
                200,
                self._json(self.one_channel(channel, subs="subs" in query and query["subs"][0] == "1")),
                ("application/json"),
            )
        subs = query.get("subs", ["0"])[0] == "1"
        if parts.path == "/streaming/channelsz":
            return 200, self._json(self.channelsz(query, subs)), "application/json"
        if parts.path == "/streaming/clientsz":
            return 200, self._json(self.clientsz(query, subs)), "application/json"
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

    def one_channel(self, channel, subs: bool = False) -> dict:
        body = {
            "name": channel.name,
            "msgs": len(channel.messages),
            "bytes": self._bytes(channel),
            "first_seq": channel.first_seq,
            "last_seq": channel.last_seq,
        }
        if self.double.config.version != "0.17.0":
            # Every subscription the server lists counts, offline durables too (channelsz_subs_after_close.json).
            body["subs_count"] = len(self._subs_of(channel))
        if subs:
            listed = [self.subscription(sub) for sub in self._subs_of(channel)]
            if listed:
                body["subscriptions"] = listed
        return body

    @staticmethod
    def _subs_of(channel) -> list:
        """Online plain subscriptions and durables, offline durables, queue members (or an offline group's last)."""
        found = list(channel.subs)
        found += [d for d in channel.durables.values() if d.offline and d not in found]
        for group in channel.groups.values():
            if group.members:
                found += group.members
            elif group.durable and group.last_member is not None:
                found.append(group.last_member)
        return found

    def subscription(self, sub) -> dict:
        group = sub.group
        body: dict = {"client_id": sub.client_id, "inbox": sub.inbox, "ack_inbox": sub.ack_inbox}
        if group is not None:
            body["queue_name"] = group.key
        elif sub.durable:
            body["durable_name"] = sub.durable
        offline = sub.offline if group is None else not group.members
        unacked = sub.unacked if group is None or group.members else group.orphans
        body.update(
            is_durable=bool(sub.durable),
            is_offline=offline,
            max_inflight=sub.max_inflight,
            ack_wait=int(sub.ack_wait),
            last_sent=sub.last_sent if group is None else group.last_sent,
            pending_count=len(unacked),
            is_stalled=len(unacked) >= sub.max_inflight,
        )
        return body

    def _page(self, query: dict, items: list) -> tuple[dict, list]:
        offset = max(int(query.get("offset", ["0"])[0] or 0), 0)
        limit = int(query.get("limit", ["1024"])[0] or 1024)
        limit = 1024 if limit <= 0 else limit
        page = items[offset : offset + limit]
        head = {
            "cluster_id": self.double.config.cluster_id,
            "server_id": self.serverz()["server_id"],
            "now": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "offset": offset,
            "limit": limit,
            "count": len(page),
            "total": len(items),
        }
        return head, page

    def channelsz(self, query: dict, subs: bool) -> dict:
        channels = sorted(self.double.channels.values(), key=lambda c: c.name)
        head, page = self._page(query, channels)
        if not subs:
            return {**head, "names": [c.name for c in page]}
        return {**head, "channels": [self.one_channel(c, subs=True) for c in page]}

    def clientsz(self, query: dict, subs: bool) -> dict:
        clients = list(self.double.clients.values())
        head, page = self._page(query, clients)
        listed = []
        for client in page:
            body: dict = {"id": client.id, "hb_inbox": client.hb_inbox}
            if self.double.config.version != "0.17.0":
                body["subs_count"] = len(client.subs)
            if subs and client.subs:
                by_channel: dict = {}
                for sub in client.subs:
                    by_channel.setdefault(sub.channel, []).append(self.subscription(sub))
                body["subscriptions"] = by_channel
            listed.append(body)
        return {**head, "clients": listed}

    @staticmethod
    def _bytes(channel) -> int:
        """What the store counts: the size of each stored MsgProto (kept as messages come and go)."""
        return channel.size

    @staticmethod
    def _json(data: dict) -> bytes:
        return (json.dumps(data, indent=2) + "\n").encode()
