"""The durability audit: what in this set-up could lose acknowledged messages, said in plain words.

Each finding names what could be lost and why. Sources (nats-server 2.15.1): /varz
``jetstream.config.sync_interval`` (nanoseconds) and ``sync_always`` (present and true only with
``sync_interval: always``); /varz ``cluster`` and ``routes``; /jsz with streams, consumers and config.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from natsctl.monitor.cluster import NodeReport, streams_of

FULL = 0.9  # share of a limit from which storage counts as nearly full
IDLE_SECONDS = 60.0  # a consumer with work waiting and no reader for this long is offline


@dataclass(slots=True)
class Finding:
    check: str  # fsync | single-node | one-replica | storage | channel-limit | consumer | replica | unreachable
    subject: str  # the node, channel or consumer concerned
    message: str

    def line(self) -> str:
        return self.message


def audit(nodes: list[NodeReport]) -> list[Finding]:
    answered = [n for n in nodes if n.ok]
    findings = [
        Finding("unreachable", n.url, f"{n.url} did not answer ({n.error}): its durability is unknown")
        for n in nodes
        if not n.ok
    ]
    with_js = [n for n in answered if _js_config(n)]
    if not with_js:
        return findings
    findings += fsync_findings(with_js)
    findings += topology_findings(with_js)
    findings += storage_findings(with_js)
    streams = _unique_streams(with_js)
    findings += limit_findings(streams)
    findings += consumer_findings(streams)
    return findings


def _js_config(node: NodeReport) -> dict[str, Any]:
    js = node.varz.get("jetstream")
    config = js.get("config") if isinstance(js, dict) else None
    return config if isinstance(config, dict) else {}


def fsync_findings(nodes: list[NodeReport]) -> list[Finding]:
    lazy: dict[str, list[str]] = {}
    for node in nodes:
        config = _js_config(node)
        if config.get("sync_always") is True:
            continue
        interval = config.get("sync_interval")
        lazy.setdefault(duration(interval) if isinstance(interval, int) else "2m (the default)", []).append(
            node.name or node.url
        )
    return [
        Finding(
            "fsync",
            ", ".join(names),
            (
                f"lazy fsync on {', '.join(names)}: JetStream writes reach the disk only every {every} (sync_interval), "
                f"not before a message is acknowledged, so a crash or power loss of the machine (on a cluster, of a majority "
                f"of nodes at once) can lose acknowledged messages of the last {every}, as Jepsen found with nats-server "
                f"2.12.1 (Dec 2025); set jetstream {{ sync_interval: always }} where that loss is not acceptable"
            ),
        )
        for every, names in lazy.items()
    ]


def _clustered(node: NodeReport) -> bool:
    cluster = node.varz.get("cluster")
    return bool(node.varz.get("routes")) or bool(isinstance(cluster, dict) and cluster.get("name"))


def topology_findings(nodes: list[NodeReport]) -> list[Finding]:
    if not any(_clustered(n) for n in nodes):
        name = nodes[0].name or nodes[0].url
        return [
            Finding(
                "single-node",
                name,
                (
                    f"single server {name}: every channel has one copy on one machine, so losing its disk loses every "
                    f"message, and while it is down nothing can be published or read; run a cluster of 3 with --replicas 3"
                ),
            )
        ]
    size = max(len(_peers(n)) for n in nodes)
    found = []
    for stream in _unique_streams(nodes).values():
        config = stream.get("config") or {}
        if config.get("num_replicas", 1) == 1:
            where = (stream.get("cluster") or {}).get("leader") or "one node"
            found.append(
                Finding(
                    "one-replica",
                    _label(stream),
                    (
                        f"channel {_label(stream)} keeps one copy, on {where}, in a cluster of {size}: if that node's disk "
                        f"fails its messages are lost, and while it is down the channel cannot be used; recreate it with --replicas 3"
                    ),
                )
            )
        found += _replica_findings(stream)
    return found


def _peers(node: NodeReport) -> set[str]:
    meta = node.jsz.get("meta_cluster") or {}
    names = {str(r.get("name")) for r in meta.get("replicas") or [] if isinstance(r, dict)}
    return names | {node.name} if meta else {node.name}


def _replica_findings(stream: dict[str, Any]) -> list[Finding]:
    found = []
    for replica in (stream.get("cluster") or {}).get("replicas") or []:
        if not isinstance(replica, dict) or (replica.get("current") and not replica.get("offline")):
            continue
        state = "offline" if replica.get("offline") else f"behind the leader by {replica.get('lag') or 0} operations"
        found.append(
            Finding(
                "replica",
                f"{_label(stream)}@{replica.get('name')}",
                (
                    f"the copy of channel {_label(stream)} on {replica.get('name')} is {state}: acknowledged messages rest on "
                    f"fewer nodes than configured, and one more failure can make them unavailable or lose them"
                ),
            )
        )
    return found


def storage_findings(nodes: list[NodeReport]) -> list[Finding]:
    found = []
    for node in nodes:
        config = _js_config(node)
        stats = (node.varz.get("jetstream") or {}).get("stats") or {}
        for kind, used_key, max_key in (("file", "storage", "max_storage"), ("memory", "memory", "max_memory")):
            used, limit = stats.get(used_key), config.get(max_key)
            if isinstance(used, int) and isinstance(limit, int) and limit > 0 and used >= FULL * limit:
                found.append(
                    Finding(
                        "storage",
                        node.name or node.url,
                        (
                            f"JetStream {kind} storage on {node.name or node.url} is {100 * used // limit}% full "
                            f"({used} of {limit} bytes): once full, new messages are refused and publishing fails"
                        ),
                    )
                )
    return found


def limit_findings(streams: dict[str, dict[str, Any]]) -> list[Finding]:
    found = []
    for stream in streams.values():
        config, state = stream.get("config") or {}, stream.get("state") or {}
        for what, used, limit in (
            ("messages", state.get("messages"), config.get("max_msgs")),
            ("bytes", state.get("bytes"), config.get("max_bytes")),
        ):
            if isinstance(used, int) and isinstance(limit, int) and limit > 0 and used >= FULL * limit:
                effect = (
                    "new messages will be refused"
                    if config.get("discard") == "new"
                    else "the oldest messages are dropped to make room, unread or not"
                )
                found.append(
                    Finding(
                        "channel-limit",
                        _label(stream),
                        (f"channel {_label(stream)} holds {used} of its {limit} max {what}: {effect}"),
                    )
                )
    return found


def consumer_findings(streams: dict[str, dict[str, Any]]) -> list[Finding]:
    found = []
    for stream in streams.values():
        for consumer in stream.get("consumer_detail") or []:
            if isinstance(consumer, dict):
                finding = _consumer_finding(stream, consumer)
                if finding is not None:
                    found.append(finding)
    return found


def _consumer_finding(stream: dict[str, Any], consumer: dict[str, Any]) -> Finding | None:
    name = f"{consumer.get('name')} on {_label(stream)}"
    now = _time(consumer.get("ts"))
    pending, unacked = consumer.get("num_pending") or 0, consumer.get("num_ack_pending") or 0
    delivered_age = _age(now, (consumer.get("delivered") or {}).get("last_active"))
    acked_age = _age(now, (consumer.get("ack_floor") or {}).get("last_active"))
    if unacked and acked_age is not None and acked_age >= IDLE_SECONDS:
        return Finding(
            "consumer",
            name,
            (
                f"consumer {name} is stalled: {unacked} delivered messages unacknowledged, none acknowledged for "
                f"{duration(int(acked_age * 1e9))}; they will be delivered again after the ack wait, so a reader that "
                f"finishes them late processes them twice"
            ),
        )
    if (
        pending
        and not consumer.get("num_waiting")
        and not consumer.get("push_bound")
        and (delivered_age is None or delivered_age >= IDLE_SECONDS)
    ):
        idle = f"for {duration(int(delivered_age * 1e9))}" if delivered_age is not None else "yet"
        return Finding(
            "consumer",
            name,
            (
                f"consumer {name} is offline: {pending} messages wait and no reader has fetched {idle}; the channel keeps "
                f"them, but its limits (max age, messages, bytes) can drop them before the reader returns, and then they are lost to it"
            ),
        )
    return None


def _unique_streams(nodes: list[NodeReport]) -> dict[str, dict[str, Any]]:
    """One view per stream, the leader's when a node reports itself as leader (its consumers are current)."""
    chosen: dict[str, dict[str, Any]] = {}
    for node in nodes:
        for stream in streams_of(node):
            name = str(stream.get("name"))
            leads = (stream.get("cluster") or {}).get("leader") == node.name
            if name not in chosen or leads:
                chosen[name] = stream
    return chosen


def _label(stream: dict[str, Any]) -> str:
    subjects = (stream.get("config") or {}).get("subjects") or []
    name = str(stream.get("name"))
    return f"{subjects[0]} (stream {name})" if len(subjects) == 1 and subjects[0] != name else name


def duration(nanos: int) -> str:
    seconds = nanos / 1e9
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            value = seconds / size
            return f"{value:g}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{seconds * 1000:g}ms"


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text or text.startswith("0001-"):
        return None
    head, _, rest = text.rstrip("Z").partition(".")
    fraction = "".join(ch for ch in rest if ch.isdigit())[:6]
    try:
        return datetime.fromisoformat(head + (f".{fraction}" if fraction else "") + "+00:00")
    except ValueError:
        return None


def _age(now: datetime | None, then: Any) -> float | None:
    moment = _time(then)
    if now is None or moment is None:
        return None
    return max(0.0, (now - moment).total_seconds())
