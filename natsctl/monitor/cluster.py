"""Every node of a cluster at once: each ``--monitor`` URL read on its own, in parallel.

One node that is down or hangs must not hide the others (that is when a cluster view matters), so
each node's failure becomes a line in its report instead of ending the command; only when no node
answers is it an error.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.errors import NatsctlError
from natsctl.core.settings import Settings, redact_url
from natsctl.monitor.client import MonitorClient, check_url

JSZ_DETAIL = {"streams": "true", "consumers": "true", "config": "true"}


@dataclass(slots=True)
class NodeReport:
    """What one monitoring URL said: /varz and /jsz (with streams, consumers, config), or why not."""

    url: str  # as shown: any password masked
    name: str = ""
    error: str = ""
    varz: dict[str, Any] = field(default_factory=dict)
    jsz: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(slots=True)
class ReplicaRow:
    """One copy of a channel (stream) on one node, as its leader sees it."""

    channel: str  # the stream's subject(s), as users name the channel
    node: str
    role: str  # leader | replica | unknown
    current: bool | None = None
    offline: bool = False
    lag: int | None = None  # raft operations behind the leader
    last_seen_ms: int | None = None  # since the leader last heard from this replica
    messages: int | None = None  # as that node reports it, when it answered
    last_seq: int | None = None
    stream: str = ""  # the stream's name


async def read_node(settings: Settings, url: str) -> NodeReport:
    one = dataclasses.replace(settings, monitor_urls=[url])
    report = NodeReport(url=redact_url(url))  # shown in tables, --json and warnings: no password
    try:
        async with MonitorClient(one) as client:
            report.varz = _dict((await client.get("/varz")).data)
            reply = await client.get("/jsz", JSZ_DETAIL, ok=(404,))
            report.jsz = _dict(reply.data) if reply.status == 200 else {}
    except NatsctlError as exc:
        report.error = exc.line()
    report.name = str(report.varz.get("server_name") or "")
    return report


async def read_nodes(settings: Settings) -> list[NodeReport]:
    """Every monitoring URL of ``settings`` (each bounded by --timeout), in the order given."""
    urls = [check_url(u).rstrip("/") for u in settings.derived_monitor_urls()]  # a bad URL is a usage error
    return list(await asyncio.gather(*(read_node(settings, url) for url in urls)))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def streams_of(node: NodeReport) -> list[dict[str, Any]]:
    found = []
    for account in node.jsz.get("account_details") or []:
        if isinstance(account, dict):
            found += [s for s in account.get("stream_detail") or [] if isinstance(s, dict)]
    return found


def replica_rows(nodes: list[NodeReport]) -> list[ReplicaRow]:
    """Leader, replicas, currency and lag of every stream any node reported, leader's view first."""
    views: dict[str, list[tuple[NodeReport, dict[str, Any]]]] = {}
    for node in nodes:
        for stream in streams_of(node):
            views.setdefault(str(stream.get("name") or "?"), []).append((node, stream))
    rows: list[ReplicaRow] = []
    for name in sorted(views):
        rows += _rows_for(name, views[name])
    return rows


def _rows_for(name: str, views: list[tuple[NodeReport, dict[str, Any]]]) -> list[ReplicaRow]:
    state_by_node = {node.name: stream.get("state") or {} for node, stream in views}
    leader_view = next((s for n, s in views if (s.get("cluster") or {}).get("leader") == n.name), views[0][1])
    cluster = leader_view.get("cluster") or {}
    leader = str(cluster.get("leader") or "")
    subjects = [s for s in (leader_view.get("config") or {}).get("subjects") or [] if isinstance(s, str)]
    channel = " ".join(subjects) or name

    def row(node: str, role: str, **extra: Any) -> ReplicaRow:
        state = state_by_node.get(node) or {}
        return ReplicaRow(
            channel, node, role, messages=state.get("messages"), last_seq=state.get("last_seq"), stream=name, **extra
        )

    rows = [row(leader, "leader", current=True, lag=0)] if leader else []
    for replica in cluster.get("replicas") or []:
        if isinstance(replica, dict):
            rows.append(
                row(
                    str(replica.get("name") or "?"),
                    "replica",
                    current=bool(replica.get("current")),
                    offline=bool(replica.get("offline")),
                    lag=replica.get("lag"),
                    last_seen_ms=_ms(replica.get("active")),
                )
            )
    if not rows:
        rows = [row(node.name, "unknown") for node, _ in views]
    return rows


def _ms(nanos: Any) -> int | None:
    return int(nanos) // 1_000_000 if isinstance(nanos, int) and nanos > 0 else None
