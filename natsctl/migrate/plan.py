"""``migrate plan``: every channel and subscription the NATS Streaming monitoring port lists, as a plan."""

from __future__ import annotations

from dataclasses import dataclass

from natsctl.core.errors import ServerError
from natsctl.core.migrate import ChannelPlan, DurablePlan, Plan, consumer_name
from natsctl.core.names import stream_name_for
from natsctl.core.settings import Settings
from natsctl.monitor.models import Channel, Subscription


@dataclass(slots=True)
class Survey:
    """What the monitoring port says now (channels with their subscriptions)."""

    cluster_id: str
    version: str
    channels: list[Channel]
    clients: set[str]


async def survey(settings: Settings) -> Survey:
    from natsctl.monitor import api
    from natsctl.monitor.client import MonitorClient
    from natsctl.monitor.models import KIND_STAN

    async with MonitorClient(settings) as client:
        target = await api.detect(client)
        if target.kind != KIND_STAN:
            raise ServerError(f"{client.where()} is not a NATS Streaming monitoring port (no /streaming/serverz)")
        channels = await api.stan_channels(client)
        clients = {c.id for c in await api.stan_clients(client)}
        serverz = target.serverz
    return Survey(str(serverz.get("cluster_id") or ""), str(serverz.get("version") or ""), channels, clients)


def durable_key(sub: Subscription) -> tuple[str, str, str]:
    """(durable, queue, client id) of a durable subscription; the client id only matters without a queue."""
    if sub.queue and ":" in sub.queue:
        durable, queue = sub.queue.split(":", 1)
        return durable, queue, ""
    return sub.name, "", sub.client_id


def make_plan(found: Survey, cluster_id: str) -> Plan:
    plan = Plan(cluster_id=found.cluster_id or cluster_id, server_version=found.version)
    for channel in sorted(found.channels, key=lambda c: c.name):
        plan.channels.append(
            ChannelPlan(
                channel=channel.name,
                stream=stream_name_for(channel.name),
                msgs=channel.messages,
                bytes=channel.bytes,
                first_seq=channel.first_seq,
                last_seq=channel.last_seq,
            )
        )
        seen: dict[tuple[str, str, str], DurablePlan] = {}
        for sub in channel.subscriptions:
            if not sub.durable:
                what = f"queue group {sub.queue!r}" if sub.queue else "subscription"
                plan.not_carried.append(
                    f"{channel.name}: plain {what} of client {sub.client_id!r} (not durable: "
                    "it has no position to carry; it starts again wherever its service subscribes)"
                )
                continue
            durable, queue, client_id = durable_key(sub)
            key = (durable, queue, client_id)
            entry = seen.get(key)
            if entry is None:
                entry = DurablePlan(
                    channel=channel.name,
                    durable=durable,
                    queue=queue,
                    client_id=sub.client_id,
                    to_durable=durable,
                    to_queue=queue,
                    consumer=consumer_name(durable, queue),
                    ack_wait=int(sub.ack_wait_seconds or 30),
                    max_inflight=int(sub.max_inflight or 1024),
                    last_sent=sub.delivered_seq or 0,
                    pending=0,
                    offline=True,
                )
                seen[key] = entry
                plan.durables.append(entry)
            entry.pending += sub.unacked or 0  # a queue group's members share its position
            entry.offline = entry.offline and sub.offline
            entry.last_sent = max(entry.last_sent, sub.delivered_seq or 0)
    return plan


def find_durable(found: Survey, durable: DurablePlan) -> tuple[int, int, bool] | None:
    """(last_sent, pending, offline) of a planned durable now; None when it is gone."""
    result: tuple[int, int, bool] | None = None
    for channel in found.channels:
        if channel.name != durable.channel:
            continue
        for sub in channel.subscriptions:
            if not sub.durable:
                continue
            name, queue, client_id = durable_key(sub)
            if (name, queue) != (durable.durable, durable.queue) or (not queue and client_id != durable.client_id):
                continue
            last, pending, offline = result or (0, 0, True)
            result = (max(last, sub.delivered_seq or 0), pending + (sub.unacked or 0), offline and sub.offline)
    return result


def channel_now(found: Survey, name: str) -> Channel | None:
    return next((c for c in found.channels if c.name == name), None)
