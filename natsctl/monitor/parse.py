"""Monitoring JSON -> dataclasses.

Servers differ by version: fields appear and disappear (nats-server 2.1.4 inside NATS Streaming 0.17.0
has no ``kind``, ``jetstream`` or ``subs_count``), lists come back ``null`` (``/connz?acc=NOPE``), and
unknown fields are common. Every reader here therefore takes what exists and ignores the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from natsctl.monitor.models import (
    KIND_JETSTREAM,
    KIND_NATS,
    KIND_STAN,
    Channel,
    Connection,
    CoreSubscription,
    JetStreamUsage,
    Route,
    RouteReport,
    ServerInfo,
    StreamingClient,
    StreamingInfo,
    Subscription,
)

NANOS = 1_000_000_000


QUEUE_METADATA = "natsctl_queue"  # set by natsctl's JetStream backend on a queue group's consumer


def obj(data: Any, key: str) -> dict[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, dict) else {}


def items(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, list) else []


def num(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else default


def opt_num(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


def opt_text(data: Mapping[str, Any], key: str) -> str | None:
    return text(data, key) or None


def jetstream_enabled(varz: Mapping[str, Any]) -> bool:
    """``/varz`` holds a ``jetstream.config`` only when JetStream runs (``{}`` or absent otherwise)."""
    return bool(obj(obj(varz, "jetstream"), "config"))


def server_info(url: str, varz: Mapping[str, Any]) -> ServerInfo:
    cluster = obj(varz, "cluster")
    info = ServerInfo(
        monitor_url=url,
        kind=KIND_JETSTREAM if jetstream_enabled(varz) else KIND_NATS,
        server_id=text(varz, "server_id"),
        server_name=text(varz, "server_name"),
        version=text(varz, "version"),
        go=text(varz, "go"),
        host=text(varz, "host"),
        port=opt_num(varz, "port"),
        start=opt_text(varz, "start"),
        uptime=text(varz, "uptime"),
        connections=num(varz, "connections"),
        total_connections=opt_num(varz, "total_connections"),
        subscriptions=num(varz, "subscriptions"),
        routes=num(varz, "routes"),
        in_msgs=num(varz, "in_msgs"),
        out_msgs=num(varz, "out_msgs"),
        in_bytes=num(varz, "in_bytes"),
        out_bytes=num(varz, "out_bytes"),
        slow_consumers=num(varz, "slow_consumers"),
        mem=num(varz, "mem"),
        cpu=float(varz.get("cpu") or 0),
        cores=opt_num(varz, "cores"),
        cluster_name=opt_text(cluster, "name"),
        cluster_urls=[u for u in items(cluster, "urls") if isinstance(u, str)],
    )
    if info.kind == KIND_JETSTREAM:
        info.jetstream = jetstream_usage(obj(varz, "jetstream"))
    return info


def jetstream_usage(js: Mapping[str, Any]) -> JetStreamUsage:
    config, stats = obj(js, "config"), obj(js, "stats")
    api = obj(stats, "api")
    return JetStreamUsage(
        memory=num(stats, "memory"),
        storage=num(stats, "storage"),
        max_memory=opt_num(config, "max_memory"),
        max_storage=opt_num(config, "max_storage"),
        api_total=num(api, "total"),
        api_errors=num(api, "errors"),
        store_dir=opt_text(config, "store_dir"),
    )


def add_jsz_totals(usage: JetStreamUsage, jsz: Mapping[str, Any]) -> None:
    usage.streams = opt_num(jsz, "streams")
    usage.consumers = opt_num(jsz, "consumers")
    usage.messages = opt_num(jsz, "messages")
    usage.bytes = opt_num(jsz, "bytes")


def streaming_info(serverz: Mapping[str, Any], storez: Mapping[str, Any]) -> StreamingInfo:
    limits = obj(storez, "limits")
    return StreamingInfo(
        cluster_id=text(serverz, "cluster_id"),
        server_id=text(serverz, "server_id"),
        version=text(serverz, "version"),
        state=text(serverz, "state"),
        store_type=opt_text(storez, "type"),
        channels=num(serverz, "channels"),
        clients=num(serverz, "clients"),
        subscriptions=num(serverz, "subscriptions"),
        total_msgs=num(serverz, "total_msgs"),
        total_bytes=num(serverz, "total_bytes"),
        max_channels=opt_num(limits, "max_channels"),
        max_msgs=opt_num(limits, "max_msgs"),
        max_bytes=opt_num(limits, "max_bytes"),
        # storez reports these two in nanoseconds (ack_wait elsewhere is in seconds)
        max_age_seconds=_seconds(limits, "max_age"),
        max_subscriptions=opt_num(limits, "max_subscriptions"),
        max_inactivity_seconds=_seconds(limits, "max_inactivity"),
    )


def _seconds(data: Mapping[str, Any], key: str) -> float | None:
    value = opt_num(data, key)
    return None if value is None else value / NANOS


def stan_server_info(
    url: str, serverz: Mapping[str, Any], storez: Mapping[str, Any], varz: Mapping[str, Any]
) -> ServerInfo:
    """The embedded nats-server's /varz for traffic and memory, plus the streaming layer on top."""
    info = server_info(url, varz) if varz else ServerInfo(monitor_url=url, kind=KIND_STAN)
    info.kind = KIND_STAN
    info.jetstream = None
    info.streaming = streaming_info(serverz, storez)
    if not info.uptime:
        info.uptime = text(serverz, "uptime")
    return info


def connection(data: Mapping[str, Any]) -> Connection:
    subs = [core_subscription(s) for s in items(data, "subscriptions_list_detail") if isinstance(s, dict)]
    if not subs:
        subs = [CoreSubscription(subject=s) for s in items(data, "subscriptions_list") if isinstance(s, str)]
    return Connection(
        cid=num(data, "cid"),
        name=text(data, "name"),
        ip=text(data, "ip"),
        port=opt_num(data, "port"),
        account=text(data, "account") or text(data, "name_tag"),
        user=text(data, "authorized_user"),
        lang=text(data, "lang"),
        version=text(data, "version"),
        subscriptions=num(data, "subscriptions"),
        pending_bytes=num(data, "pending_bytes"),
        in_msgs=num(data, "in_msgs"),
        out_msgs=num(data, "out_msgs"),
        in_bytes=num(data, "in_bytes"),
        out_bytes=num(data, "out_bytes"),
        rtt=text(data, "rtt"),
        uptime=text(data, "uptime"),
        idle=text(data, "idle"),
        start=opt_text(data, "start"),
        stop=opt_text(data, "stop"),
        reason=text(data, "reason"),
        tls_version=text(data, "tls_version"),
        subscriptions_list=subs,
    )


def core_subscription(data: Mapping[str, Any]) -> CoreSubscription:
    return CoreSubscription(
        subject=text(data, "subject"), queue=text(data, "qgroup"), sid=text(data, "sid"), msgs=num(data, "msgs")
    )


def stream(account: str, data: Mapping[str, Any]) -> Channel:
    config, state = obj(data, "config"), obj(data, "state")
    name = text(data, "name") or text(config, "name")
    subjects = [s for s in items(config, "subjects") if isinstance(s, str)]
    channel = stream_channel(name, subjects)
    return Channel(
        channel=channel,
        stream=name,
        name=name,
        kind="stream",
        subjects=subjects,
        messages=num(state, "messages"),
        bytes=num(state, "bytes"),
        first_seq=num(state, "first_seq"),
        last_seq=num(state, "last_seq"),
        first_time=_time(state, "first_ts"),
        last_time=_time(state, "last_ts"),
        consumers=num(state, "consumer_count"),
        storage=opt_text(config, "storage"),
        replicas=opt_num(config, "num_replicas"),
        account=account,
        created=opt_text(data, "created"),
        subscriptions=[
            consumer(account, name, c, channel) for c in items(data, "consumer_detail") if isinstance(c, dict)
        ],
    )


def stream_channel(name: str, subjects: list[str]) -> str:
    """A stream's channel as users name it: its subjects (one, for a stream natsctl made); no subjects: its name."""
    return " ".join(subjects) or name


def _time(data: Mapping[str, Any], key: str) -> str | None:
    value = text(data, key)
    # an empty stream reports the zero time of Go, which means "never"
    return None if not value or value.startswith("0001-01-01") else value


def consumer(account: str, stream_name: str, data: Mapping[str, Any], stream_channel: str = "") -> Subscription:
    """A consumer; its channel is what it reads: its filter subject(s), else its stream's channel."""
    config = obj(data, "config")
    delivered, ack_floor = obj(data, "delivered"), obj(data, "ack_floor")
    durable = text(config, "durable_name")
    ack_wait = opt_num(config, "ack_wait")
    stream = text(data, "stream_name") or stream_name
    filters = text(config, "filter_subject") or " ".join(
        s for s in items(config, "filter_subjects") if isinstance(s, str)
    )
    return Subscription(
        channel=filters or stream_channel or stream,
        stream=stream,
        kind="consumer",
        name=text(data, "name") or durable,
        # A push consumer names its deliver group; natsctl's pull consumers carry the group in metadata.
        queue=text(config, "deliver_group") or text(obj(config, "metadata"), QUEUE_METADATA),
        durable=bool(durable),
        lag=num(data, "num_pending"),
        unacked=num(data, "num_ack_pending"),
        redelivered=num(data, "num_redelivered"),
        waiting=num(data, "num_waiting"),
        delivered_seq=num(delivered, "stream_seq"),
        ack_floor_seq=num(ack_floor, "stream_seq"),
        last_active=opt_text(delivered, "last_active"),
        ack_wait_seconds=None if ack_wait is None else ack_wait / NANOS,
        max_inflight=opt_num(config, "max_ack_pending"),
        filter_subject=filters,
        account=account,
    )


def streams(jsz: Mapping[str, Any]) -> list[Channel]:
    found: list[Channel] = []
    for account in items(jsz, "account_details"):
        if not isinstance(account, dict):
            continue
        name = text(account, "name") or text(account, "id")
        found.extend(stream(name, s) for s in items(account, "stream_detail") if isinstance(s, dict))
    return found


def stan_subscription(channel: str, last_seq: int | None, data: Mapping[str, Any]) -> Subscription:
    """Lag is ``channel.last_seq - last_sent``: what the server has not sent this subscription yet."""
    queue = text(data, "queue_name")
    durable_name = text(data, "durable_name") or (queue.split(":", 1)[0] if ":" in queue else "")
    last_sent = num(data, "last_sent")
    return Subscription(
        channel=channel,
        kind="subscription",
        name=durable_name,
        queue=queue,
        client_id=text(data, "client_id"),
        durable=bool(data.get("is_durable")),
        offline=bool(data.get("is_offline")),
        stalled=bool(data.get("is_stalled")),
        lag=None if last_seq is None else max(last_seq - last_sent, 0),
        unacked=num(data, "pending_count"),
        delivered_seq=last_sent,
        ack_wait_seconds=opt_num(data, "ack_wait"),
        max_inflight=opt_num(data, "max_inflight"),
    )


def stan_channel(data: Mapping[str, Any]) -> Channel:
    name, last_seq = text(data, "name"), num(data, "last_seq")
    subs = [stan_subscription(name, last_seq, s) for s in items(data, "subscriptions") if isinstance(s, dict)]
    return Channel(
        channel=name,
        name=name,
        kind="channel",
        subjects=[name],
        messages=num(data, "msgs"),
        bytes=num(data, "bytes"),
        first_seq=num(data, "first_seq"),
        last_seq=last_seq,
        # 0.17.0 has no subs_count: count the listed subscriptions instead
        consumers=num(data, "subs_count", len(subs)),
        subscriptions=subs,
    )


def stan_client(data: Mapping[str, Any], last_seqs: Mapping[str, int]) -> StreamingClient:
    """``subscriptions`` is a map channel -> list here; lag needs the channels' last sequences."""
    subs: list[Subscription] = []
    for channel, listed in obj(data, "subscriptions").items():
        if isinstance(listed, list):
            last = last_seqs.get(channel)
            subs.extend(stan_subscription(channel, last, s) for s in listed if isinstance(s, dict))
    return StreamingClient(
        id=text(data, "id"),
        hb_inbox=text(data, "hb_inbox"),
        subs_count=num(data, "subs_count", len(subs)),
        subscriptions=subs,
    )


def route(data: Mapping[str, Any]) -> Route:
    return Route(
        rid=num(data, "rid"),
        remote_id=text(data, "remote_id"),
        remote_name=text(data, "remote_name"),
        ip=text(data, "ip"),
        port=opt_num(data, "port"),
        configured=bool(data.get("is_configured")),
        solicited=bool(data.get("did_solicit")),
        account=text(data, "account"),
        subscriptions=num(data, "subscriptions"),
        pending_size=num(data, "pending_size"),
        in_msgs=num(data, "in_msgs"),
        out_msgs=num(data, "out_msgs"),
        in_bytes=num(data, "in_bytes"),
        out_bytes=num(data, "out_bytes"),
        rtt=text(data, "rtt"),
        uptime=text(data, "uptime"),
    )


def route_report(routez: Mapping[str, Any], varz: Mapping[str, Any]) -> RouteReport:
    routes = sorted(
        (route(r) for r in items(routez, "routes") if isinstance(r, dict)), key=lambda r: (r.remote_name, r.rid)
    )
    return RouteReport(
        server_id=text(routez, "server_id"),
        server_name=text(routez, "server_name") or text(varz, "server_name"),
        cluster_name=opt_text(obj(varz, "cluster"), "name"),
        num_routes=num(routez, "num_routes", len(routes)),
        routes=routes,
    )


__all__ = ["KIND_JETSTREAM", "KIND_NATS", "KIND_STAN"]
