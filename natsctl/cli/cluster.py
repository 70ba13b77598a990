"""`natsctl cluster`: every node of a cluster (one --monitor URL each), the leader and replicas of
each channel with their currency and lag, and the durability audit; also the audit hook of
`natsctl server` and `natsctl health`."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.options import monitor_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.monitor.audit import Finding
    from natsctl.monitor.client import MonitorClient
    from natsctl.monitor.cluster import NodeReport, ReplicaRow

# A monitoring fetch of `server` / `health`: one report dataclass (its type depends on the command).
Fetch = Callable[["MonitorClient"], Awaitable[Any]]

CLUSTER_HELP = """Read every node given with --monitor (comma-separated, one URL per node) and show, per
channel, its leader and replicas: current or not, how far behind (raft operations), when the leader
last heard from each, and the messages each node holds. A node that does not answer is listed, not
fatal; the command fails (exit 3 or 9) only when none answers.

Warnings on stderr (and "warnings" in --json) say what in the set-up could lose acknowledged
messages: lazy fsync, channels with one replica, a single server, storage near its limit, stalled or
offline consumers, replicas that are behind or offline.

Examples:

\b
  natsctl cluster -m http://127.0.0.1:8222,http://127.0.0.1:8223,http://127.0.0.1:8224
  natsctl cluster -m http://n1:8222,http://n2:8222,http://n3:8222 --json"""


def register(app: typer.Typer) -> None:
    app.command("cluster", help=CLUSTER_HELP)(monitor_options(cluster_command))


def cluster_command(
    json_out: Annotated[bool, typer.Option("--json", help="Print nodes, replicas and warnings as JSON")] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run

    run(lambda stop: _cluster(settings, json_out, stop))


async def _cluster(settings: Settings, json_out: bool, stop: "Stop") -> int:
    from natsctl.cli.monitor import STOPPED, unless_stopped
    from natsctl.monitor.audit import audit
    from natsctl.monitor.cluster import read_nodes, replica_rows

    nodes = await unless_stopped(read_nodes(settings), stop)
    if nodes is STOPPED:
        return 0  # the runner exits 130 (Ctrl-C) or 143 (SIGTERM)
    _fail_if_none_answered(nodes)
    rows, findings = replica_rows(nodes), audit(nodes)
    if json_out:
        _print_json(nodes, rows, findings)
    else:
        _print_tables(nodes, rows)
        print_warnings(findings)
    return 0


def _fail_if_none_answered(nodes: list["NodeReport"]) -> None:
    from natsctl.core.errors import ConnectionFailed, Timeout

    if any(n.ok for n in nodes):
        return
    first = nodes[0].error if nodes else "no monitoring URL"
    kind = Timeout if "no answer" in first else ConnectionFailed
    raise kind(f"no node answered: {first}" if len(nodes) > 1 else first)


def _node_dict(node: "NodeReport") -> dict[str, Any]:
    found = node.varz.get("cluster")
    cluster: dict[str, Any] = found if isinstance(found, dict) else {}
    meta = node.jsz.get("meta_cluster") or {}
    return {
        "url": node.url,
        "name": node.name,
        "ok": node.ok,
        "error": node.error,
        "version": node.varz.get("version"),
        "cluster": cluster.get("name"),
        "routes": node.varz.get("routes"),
        "meta_leader": meta.get("leader") if isinstance(meta, dict) else None,
    }


def _print_json(nodes: list["NodeReport"], rows: list["ReplicaRow"], findings: list["Finding"]) -> None:
    from natsctl.cli.render.tables import to_json

    sys.stdout.write(to_json({"nodes": [_node_dict(n) for n in nodes], "replicas": rows, "warnings": findings}) + "\n")


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def _print_tables(nodes: list["NodeReport"], rows: list["ReplicaRow"]) -> None:
    from natsctl.cli.render.tables import grid, print_table

    node_rows = []
    for node in nodes:
        d = _node_dict(node)
        node_rows.append(
            [
                d["name"] or "-",
                d["url"],
                d["version"] or "-",
                d["cluster"] or "-",
                str(d["routes"] or 0),
                d["meta_leader"] or "-",
                "ok" if node.ok else f"DOWN: {node.error}",
            ]
        )
    print_table(grid("Nodes", ("NODE", "URL", "VERSION", "CLUSTER", "ROUTES", "META LEADER", "STATE"), node_rows))
    if not rows:
        from natsctl.core.stderr import say

        say("no channels")
        return
    replica_rows = [
        [
            r.channel,
            r.stream or "-",
            r.node,
            r.role + (" (offline)" if r.offline else ""),
            _yes_no(r.current),
            "-" if r.lag is None else str(r.lag),
            f"{r.last_seen_ms}ms ago" if r.last_seen_ms is not None else "-",
            "-" if r.messages is None else str(r.messages),
            "-" if r.last_seq is None else str(r.last_seq),
        ]
        for r in rows
    ]
    headers = ("CHANNEL", "STREAM", "NODE", "ROLE", "CURRENT", "LAG", "LAST SEEN", "MESSAGES", "LAST SEQ")
    print_table(grid("Channel replicas", headers, replica_rows))


def print_warnings(findings: list["Finding"]) -> None:
    from natsctl.core.stderr import say

    for finding in findings:
        say(finding.line(), "warning")


async def durability_findings(settings: Settings) -> list["Finding"]:
    """The audit over every --monitor URL, for `server` and `health`; never fails the command."""
    from natsctl.monitor.audit import audit
    from natsctl.monitor.cluster import read_nodes

    return audit(await read_nodes(settings))


def audited(fetch: Fetch, settings: Settings, fmt: str) -> tuple[Fetch, Callable[[Any], None]]:
    """``fetch`` for `server` / `health` with the audit's findings added as ``warnings`` (JSON, YAML)
    or printed on stderr after the table; NATS Streaming has no JetStream to audit."""

    async def fetch_with_audit(client: "MonitorClient") -> Any:
        data = await fetch(client)
        if getattr(data, "kind", "") == "stan":
            return data
        return with_warnings(data, await durability_findings(settings))

    def after(data: Any) -> None:
        if fmt == "table":
            print_warnings(getattr(data, "warnings", []))

    return fetch_with_audit, after


def with_warnings(data: Any, findings: list["Finding"]) -> Any:
    """A copy of the report dataclass with a trailing ``warnings`` field (the models stay untouched)."""
    import dataclasses

    from natsctl.monitor.audit import Finding

    cls = _audited_classes.get(type(data))
    if cls is None:
        warnings: tuple[str, Any, Any] = (
            "warnings",
            list[Finding],
            dataclasses.field(default_factory=list),
        )  # typed: CSV leaves it out
        cls = dataclasses.make_dataclass(type(data).__name__, [warnings], bases=(type(data),), slots=True)
        _audited_classes[type(data)] = cls
    values = {f.name: getattr(data, f.name) for f in dataclasses.fields(data)}
    return cls(**values, warnings=findings)


_audited_classes: dict[type, type] = {}
