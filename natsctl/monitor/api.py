"""The monitoring reports: what runs behind the URL, then server, clients, channels, subscriptions,
routes and health as dataclasses. Pure data: no printing here."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.errors import NotFound, ServerError, Unsupported
from natsctl.monitor import parse
from natsctl.monitor.client import MonitorClient
from natsctl.monitor.models import (
    KIND_NATS,
    KIND_STAN,
    Channel,
    Connection,
    Health,
    RouteReport,
    ServerInfo,
    StreamingClient,
    Subscription,
)

PAGE_SIZE = 1024  # the servers' own default and usual maximum page
PAGE_OVERLAP = 16  # items each page re-reads of the one before, to notice a list that shifted meanwhile
MAX_REREADS = 20  # pages read again for shifts, at most, in one listing (a list churning without end)
MAX_ITEMS = 100_000  # items one listing reads at most (README); nats-server allows 64K connections by default
MAX_PAGES = 1_000  # pages one listing reads at most (more when a small --page-size needs them for MAX_ITEMS)
STAN_HEALTHY_STATES = {"STANDALONE", "CLUSTERED", "FT_ACTIVE", "FT_STANDBY"}
# The sort options nats-server 2.x accepts for /connz (anything else: 400 "invalid sorting option");
# stop and reason only for closed connections, which the server itself checks.
CONNZ_SORTS = (
    "cid",
    "start",
    "subs",
    "pending",
    "msgs_to",
    "msgs_from",
    "bytes_to",
    "bytes_from",
    "last",
    "idle",
    "uptime",
    "rtt",
    "stop",
    "reason",
)
JSZ_ALL = {"accounts": "true", "streams": "true", "consumers": "true", "config": "true"}


@dataclass(slots=True)
class Target:
    """What answers at the monitoring URL."""

    kind: str
    varz: dict[str, Any] = field(default_factory=dict)
    serverz: dict[str, Any] = field(default_factory=dict)


async def detect(client: MonitorClient) -> Target:
    """``/streaming/serverz`` answering 200 means NATS Streaming; otherwise ``/varz`` tells the rest."""
    reply = await client.first_answering("/streaming/serverz", ok=(404,))
    if reply.status == 200 and isinstance(reply.data, dict):
        client.kind = KIND_STAN
        varz = await _optional(client, "/varz")
        return Target(KIND_STAN, varz=varz, serverz=reply.data)
    varz = (await client.get("/varz")).data
    if not isinstance(varz, dict) or "server_id" not in varz:
        raise ServerError(f"{client.where('/varz')} is not a NATS server's /varz")
    if client.settings.cluster_id:
        raise NotFound(
            f"{client.where()} is a plain nats-server, not NATS Streaming (/streaming/serverz answered 404)",
            hint="drop --cluster-id / NATS_CLUSTER_ID to inspect it as JetStream",
        )
    client.kind = parse.server_info(client.base, varz).kind
    return Target(client.kind, varz=varz)


async def _optional(client: MonitorClient, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """An endpoint old servers may lack: absent means ``{}``."""
    reply = await client.get(path, params, ok=(404,))
    return reply.data if reply.status == 200 and isinstance(reply.data, dict) else {}


async def server(client: MonitorClient) -> ServerInfo:
    target = await detect(client)
    if target.kind == KIND_STAN:
        storez = await _optional(client, "/streaming/storez")
        return parse.stan_server_info(client.where(), target.serverz, storez, target.varz)
    info = parse.server_info(client.where(), target.varz)
    if info.jetstream is not None:
        parse.add_jsz_totals(info.jetstream, (await client.get("/jsz")).data or {})
    return info


async def paged(
    client: MonitorClient,
    path: str,
    params: Mapping[str, Any],
    list_key: str,
    key: Callable[[dict[str, Any]], Any],
    *,
    page_size: int = PAGE_SIZE,
    limit: int | None = None,
    convert: Callable[[dict[str, Any]], Any] = lambda item: item,
) -> list[Any]:
    """Every item of a paged list endpoint, each once (by ``key``), following offset/limit pages,
    as ``convert`` makes it.

    Offsets shift when items before them go away between two reads (connections closing), which
    would skip as many items. So consecutive pages overlap by a few items: a page sharing none of them
    with the one before means the list shifted further, and it is read again from earlier. The offset
    advances by what a page returned, so a server that caps the page size is still read to the end;
    items read twice are kept once.

    Bounded whatever the server claims: at most ``MAX_ITEMS`` items and ``max_pages`` pages, and a page
    adding nothing new (the server repeats itself) ends the listing. A listing cut short leaves a
    note in ``client.notes`` saying why.
    """
    listing = _Listing(client, path, list_key, key, convert, page_size, limit)
    while len(listing.found) < listing.wanted:
        if listing.pages >= listing.max_pages:
            listing.cut(f"after {listing.pages:,} pages, natsctl's limit for one listing")
            break
        data = (await client.get(path, {**params, "offset": listing.offset, "limit": page_size})).data
        if not listing.read(data):
            break
    return listing.found


@dataclass
class _Listing:
    """The state of one paged listing (see :func:`paged`)."""

    client: MonitorClient
    path: str
    list_key: str
    key: Callable[[dict[str, Any]], Any]
    convert: Callable[[dict[str, Any]], Any]
    page_size: int
    limit: int | None
    found: list[Any] = field(default_factory=list)
    seen: set[Any] = field(default_factory=set)
    offset: int = 0
    previous: set[Any] | None = None  # what the next page should start with
    rereads: int = 0
    pages: int = 0
    reread: bool = False  # the page now read is a re-read after a shift
    total: int = 0

    def __post_init__(self) -> None:
        self.overlap = min(PAGE_OVERLAP, self.page_size // 4)
        self.wanted = MAX_ITEMS if self.limit is None else min(self.limit, MAX_ITEMS)
        self.max_pages = max(MAX_PAGES, -(-MAX_ITEMS // max(1, self.page_size - self.overlap)) + MAX_REREADS)

    def read(self, data: Any) -> bool:
        """Take one page; False once the listing is complete or cut short."""
        self.pages += 1
        page = [item for item in parse.items(data, self.list_key) if isinstance(item, dict)]
        keys = [self.key(item) for item in page]
        if self._shifted(page, keys):
            self.offset, self.previous, self.rereads, self.reread = (
                max(0, self.offset - self.page_size),
                None,
                self.rereads + 1,
                True,
            )
            return True
        added, left_out = self._take(page, keys)
        self.total = parse.num(data if isinstance(data, dict) else {}, "total")
        ended = not page or self.offset + len(page) >= self.total
        if len(self.found) >= self.wanted and (left_out or not ended):
            if self.wanted == MAX_ITEMS:
                self.cut(f"{MAX_ITEMS:,} is natsctl's limit for one listing")
            return False
        if ended:
            return False
        if not added and not self.reread:
            self.cut(f"page {self.pages:,} (offset {self.offset:,}) repeated only what was read already")
            return False
        self._advance(page, keys)
        return True

    def _shifted(self, page: list[Any], keys: list[Any]) -> bool:
        """The page shares none of the overlap with the one before: the list moved further meanwhile."""
        return bool(
            self.previous and page and self.previous.isdisjoint(keys) and self.offset and self.rereads < MAX_REREADS
        )

    def _take(self, page: list[Any], keys: list[Any]) -> tuple[int, bool]:
        """(items added, whether some were left out at the limit); items read before are kept once."""
        added = 0
        for item_key, item in zip(keys, page, strict=True):
            if item_key in self.seen:
                continue
            if len(self.found) >= self.wanted:
                return added, True
            self.seen.add(item_key)
            self.found.append(self.convert(item))
            added += 1
        return added, False

    def _advance(self, page: list[Any], keys: list[Any]) -> None:
        self.reread = False
        step = len(page) - self.overlap if len(page) > self.overlap else len(page)
        self.previous = set(keys[step:])
        self.offset += step

    def cut(self, why: str) -> None:
        _cut(self.client, self.path, self.list_key, len(self.found), self.total, why)


def _cut(client: MonitorClient, path: str, what: str, got: int, total: int, why: str) -> None:
    client.notes.append(
        f"listing of {client.where(path)} cut short at {got:,} {what} (the server reports {total:,}): {why}"
    )


async def connections(
    client: MonitorClient,
    *,
    state: str = "open",
    sort: str | None = None,
    account: str | None = None,
    user: str | None = None,
    limit: int | None = None,
    subs: bool = False,
    page_size: int = PAGE_SIZE,
) -> list[Connection]:
    params = {"state": state, "sort": sort, "acc": account, "user": user, "subs": "detail" if subs else None}
    if account or user:
        params["auth"] = "true"  # the account and user fields are only filled with auth=true
    return await paged(
        client,
        "/connz",
        params,
        "connections",
        lambda c: c.get("cid"),
        page_size=page_size,
        limit=limit,
        convert=parse.connection,
    )


async def stan_channels(client: MonitorClient, page_size: int = PAGE_SIZE) -> list[Channel]:
    return await paged(
        client,
        "/streaming/channelsz",
        {"subs": 1},
        "channels",
        lambda c: c.get("name"),
        page_size=page_size,
        convert=parse.stan_channel,
    )


async def stan_clients(client: MonitorClient, page_size: int = PAGE_SIZE) -> list[StreamingClient]:
    last_seqs = {c.name: c.last_seq for c in await stan_channels(client, page_size)}
    return await paged(
        client,
        "/streaming/clientsz",
        {"subs": 1},
        "clients",
        lambda c: c.get("id"),
        page_size=page_size,
        convert=lambda c: parse.stan_client(c, last_seqs),
    )


async def jetstream_channels(client: MonitorClient, target: Target, account: str | None = None) -> list[Channel]:
    if target.kind == KIND_NATS:
        raise_jetstream_disabled(client)
    params = {**JSZ_ALL, "acc": account}
    jsz = (await client.get("/jsz", params)).data or {}
    if jsz.get("disabled"):
        raise_jetstream_disabled(client)
    return parse.streams(jsz)


def raise_jetstream_disabled(client: MonitorClient) -> None:
    raise ServerError(
        f"JetStream is not enabled on the server at {client.where()}: it has no streams or consumers",
        hint="start nats-server with -js (or a jetstream {} block)",
    )


async def channels(client: MonitorClient, account: str | None = None) -> list[Channel]:
    """Every channel, by account then name: /jsz lists streams in no stable order (a Go map), so
    two reads (the table, then ``-o csv``) would otherwise disagree."""
    target = await detect(client)
    if target.kind == KIND_STAN:
        found = await stan_channels(client)
    else:
        found = await jetstream_channels(client, target, account)
    return sorted(found, key=lambda c: (c.account, c.channel, c.name))


async def channel(client: MonitorClient, name: str) -> Channel:
    """The channel ``name`` stands for: a stream's name, or a subject one stream holds (``ticket:updated``)."""
    listed = await channels(client)
    return find_channel(listed, name, client.where(), client.kind == KIND_STAN)


def find_channel(listed: list[Channel], name: str, where: str, stan: bool = False) -> Channel:
    """By name first (a stream or NATS Streaming channel), then by subject; a name that is both is refused."""
    from natsctl.core.errors import UsageError

    by_name = [c for c in listed if c.name == name]
    from natsctl.core.subjects import is_subset

    by_subject = [c for c in listed if c.name != name and any(is_subset(name, s) for s in c.subjects)]
    if by_name and by_subject:
        raise UsageError(
            f"{name!r} is ambiguous at {where}: it is the name of stream {by_name[0].name!r} and a subject of "
            f"stream {by_subject[0].name!r}",
            hint="rename one of them",
        )
    for found in (*by_name, *by_subject):
        return found
    what = "channel" if stan else "stream"
    raise NotFound(f"no {what} named {name!r} at {where}", hint="'natsctl channels' lists them")


async def subscriptions(
    client: MonitorClient,
    *,
    channel: str | None = None,
    include_core: bool = True,
    account: str | None = None,
) -> list[Subscription]:
    """Consumers / streaming subscriptions with their lag, and (nats-server) plain core subscriptions."""
    target = await detect(client)
    if target.kind == KIND_STAN:
        subs = [s for c in await stan_channels(client) for s in c.subscriptions]
    else:
        subs = (
            []
            if target.kind == KIND_NATS
            else [s for c in await jetstream_channels(client, target, account) for s in c.subscriptions]
        )
        if include_core:
            subs.extend(await core_subscriptions(client, account))
    return [s for s in subs if channel is None or channel in (s.channel, s.stream) or channel in s.channel.split(" ")]


async def core_subscriptions(client: MonitorClient, account: str | None = None) -> list[Subscription]:
    """Client subscriptions from ``/connz?subs=detail``, without request-reply inboxes (noise)."""
    found: list[Subscription] = []
    for conn in await connections(client, subs=True, account=account):
        for sub in conn.subscriptions_list:
            if sub.subject.startswith("_INBOX."):
                continue
            found.append(
                Subscription(
                    channel=sub.subject,
                    kind="core",
                    queue=sub.queue,
                    client_id=conn.name,
                    account=conn.account,
                    cid=conn.cid,
                    delivered_seq=None,
                )
            )
    return found


async def clients(client: MonitorClient, **options: Any) -> list[Connection] | list[StreamingClient]:
    target = await detect(client)
    if target.kind == KIND_STAN:
        return await stan_clients(client, options.get("page_size", PAGE_SIZE))
    return await connections(client, **options)


async def routes(client: MonitorClient) -> RouteReport:
    target = await detect(client)
    if target.kind == KIND_STAN and not target.varz:
        raise Unsupported(f"the NATS Streaming server at {client.where()} does not report routes")
    routez = (await client.get("/routez")).data or {}
    return parse.route_report(routez, target.varz)


async def health(client: MonitorClient) -> Health:
    target = await detect(client)
    reply = await client.get("/healthz", ok=(404, 503, 500))
    if reply.status == 404 and target.kind != KIND_STAN:
        raise NotFound(f"{client.where('/healthz')} answered 404: this nats-server is too old for /healthz")
    data = reply.data if isinstance(reply.data, dict) else {}
    status = parse.text(data, "status") or ("ok" if reply.status == 200 else "")
    result = Health(
        monitor_url=client.where(),  # any password masked
        healthy=reply.status == 200 and status == "ok",
        status=status or f"HTTP {reply.status}",
        error=parse.text(data, "error"),
        kind=target.kind,
    )
    if target.kind == KIND_STAN:
        stan_health(result, target.serverz, reply.status == 404)
    return result


def stan_health(result: Health, serverz: Mapping[str, Any], no_healthz: bool) -> None:
    """0.17.0's embedded nats-server has no /healthz: the streaming state alone decides then."""
    state = parse.text(serverz, "state")
    result.streaming_state = state
    state_ok = state in STAN_HEALTHY_STATES
    result.healthy = state_ok and (no_healthz or result.healthy)
    if no_healthz:
        result.status = "ok" if state_ok else "unavailable"
    if not state_ok:
        result.error = f"NATS Streaming state is {state or 'unknown'}"
