"""Tables of ``natsctl channel`` and ``natsctl durable``: channel details, durables, edits."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType

from natsctl.core.manage import ChannelDetails, Durable, EditResult

from .tables import count, grid, human_bytes, record_table, when


def _limit(value: Any, unit: str = "") -> str:
    if value is None or value == -1 or value == 0:
        return "unlimited"
    if unit == "bytes":
        return human_bytes(value)
    if unit == "seconds":
        return f"{value:g}s"
    return str(value)


def details_table(details: ChannelDetails) -> RenderableType:
    """``channel info`` on JetStream: the stream's configuration and state, then its durables."""
    config = details.config
    pairs = [
        ("Channel", details.channel),
        ("Stream", details.stream),
        ("Subjects", " ".join(details.subjects) or "-"),
        ("Messages", str(details.messages)),
        ("Bytes", human_bytes(details.bytes)),
        ("First sequence", f"{details.first_seq}" + (f" at {when(details.first_time)}" if details.first_time else "")),
        ("Last sequence", f"{details.last_seq}" + (f" at {when(details.last_time)}" if details.last_time else "")),
        ("Durables", str(details.consumers)),
        ("Storage", str(config.get("storage", "-"))),
        ("Replicas", str(config.get("num_replicas") or 1)),
        ("Retention", str(config.get("retention", "-"))),
        ("Discard", str(config.get("discard", "-"))),
        ("Max messages", _limit(config.get("max_msgs"))),
        ("Max bytes", _limit(config.get("max_bytes"), "bytes")),
        ("Max age", _limit(config.get("max_age"), "seconds")),
        ("Max message size", _limit(config.get("max_msg_size"), "bytes")),
        ("Duplicate window", _limit(config.get("duplicate_window"), "seconds")),
    ]
    if config.get("description"):
        pairs.append(("Description", str(config["description"])))
    if not details.durables:
        return record_table(pairs)
    return Group(record_table(pairs), "", durables_table(details.durables))


def durables_table(durables: list[Durable]) -> RenderableType:
    headers = ["CHANNEL", "NAME", "QUEUE", "CLIENT", "DELIVERED", "ACK FLOOR", "PENDING", "UNACKED", "STATE"]
    rows = [
        [
            d.channel or "-",
            d.name,
            d.queue or "-",
            d.client_id or "-",
            count(d.delivered_seq),
            count(d.ack_floor_seq),
            count(d.pending),
            count(d.unacked),
            durable_state(d),
        ]
        for d in durables
    ]
    return grid("", headers, rows)


def durable_state(durable: Durable) -> str:
    if durable.paused:
        return f"paused until {when(durable.pause_until)}" if durable.pause_until else "paused"
    if durable.online is False:
        return "offline"
    if durable.online:
        return "online"
    return "active"


def durable_table(durable: Durable) -> RenderableType:
    config = durable.config
    pairs = [
        ("Channel", durable.channel),
        ("Stream", durable.stream or "-"),
        ("Durable", durable.name),
        ("Queue group", durable.queue or "-"),
        ("Consumer", durable.consumer or "-"),
        ("Client id", durable.client_id or "-"),
        ("State", durable_state(durable)),
        ("Start", durable.start or "-"),
        ("Delivered", count(durable.delivered_seq)),
        ("Ack floor", count(durable.ack_floor_seq)),
        ("Pending", count(durable.pending)),
        ("Unacked", count(durable.unacked)),
        ("Redelivered", count(durable.redelivered)),
    ]
    if config:
        pairs += [
            ("Ack policy", str(config.get("ack_policy", "-"))),
            ("Ack wait", _limit(config.get("ack_wait"), "seconds")),
            ("Max ack pending", _limit(config.get("max_ack_pending"))),
            ("Filter subject", str(config.get("filter_subject") or "-")),
        ]
    return record_table(pairs)


def edit_lines(result: EditResult) -> str:
    """One line per change: ``max_msgs: unlimited -> 100``."""
    if not result.changes:
        return f"channel {result.channel} (stream {result.stream}): nothing to change"
    return "\n".join(f"{c.field}: {_shown(c.before)} -> {_shown(c.after)}" for c in result.changes)


def _shown(value: Any) -> str:
    return "unlimited" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
