"""Reports as tables (people) or JSON / YAML / CSV (machines), from natsctl's dataclasses.

The machine formats are derived from the dataclasses themselves, so ``--json`` always carries every
field; tables show a chosen subset (``VIEWS``) formatted for reading.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from natsctl.cli.render import stdout_console, stdout_is_terminal
from natsctl.core.errors import UsageError
from natsctl.monitor.models import Channel, Connection, Route, StreamingClient, Subscription

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live
    from rich.table import Table

FORMATS = ("table", "json", "yaml", "csv")


def output_format(output: str | None, json_flag: bool) -> str:
    """``--json`` is short for ``-o json``; giving both with different values is a usage error."""
    chosen = (output or "table").lower()
    if chosen not in FORMATS:
        raise UsageError(f"unknown output format {output!r}: use one of {', '.join(FORMATS)}")
    if json_flag:
        if output and chosen != "json":
            raise UsageError(f"--json contradicts -o {output}")
        return "json"
    return chosen


# --- plain data ---------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """Dataclasses -> dicts/lists of JSON types, field order kept."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value


def flat(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """One CSV row: nested objects become dotted columns, lists of scalars space-joined, lists of
    objects left out (they are rows of their own report)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = prefix + key
        if isinstance(value, dict):
            out.update(flat(value, name + "."))
        elif isinstance(value, list):
            if all(not isinstance(v, dict | list) for v in value):
                out[name] = " ".join(str(v) for v in value)
        else:
            out[name] = "" if value is None else value
    return out


def to_json(data: Any, *, compact: bool = False) -> str:
    if compact:
        return json.dumps(plain(data), ensure_ascii=False, separators=(",", ":"))
    return json.dumps(plain(data), ensure_ascii=False, indent=2)


def to_yaml(data: Any) -> str:
    import yaml

    return yaml.safe_dump(plain(data), sort_keys=False, allow_unicode=True, default_flow_style=False)


def record_lists(cls: type) -> frozenset[str]:
    """The fields of dataclass ``cls`` declared as lists of dataclasses (the channel's subscriptions, a
    connection's subscriptions_list): CSV leaves them out whether this row's list is empty or not."""
    import typing

    if cls not in _record_lists:
        try:
            hints = typing.get_type_hints(cls)
        except (NameError, TypeError):
            hints = {}
        _record_lists[cls] = frozenset(
            name
            for name, hint in hints.items()
            if typing.get_origin(hint) is list and any(dataclasses.is_dataclass(a) for a in typing.get_args(hint))
        )
    return _record_lists[cls]


_record_lists: dict[type, frozenset[str]] = {}


def csv_record(value: Any) -> Any:
    """``plain(value)`` without the nested lists of records (those are rows of their own report)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skip = record_lists(type(value))
        return {f.name: csv_record(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in skip}
    return plain(value)


def to_csv(data: Any) -> str:
    rows = [flat(csv_record(r)) for r in (data if isinstance(data, list) else [data])]
    header: list[str] = []
    for row in rows:
        header.extend(k for k in row if k not in header)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


# --- human formatting ---------------------------------------------------------------------------


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"


def count(n: int | None) -> str:
    return "-" if n is None else str(n)


def when(value: str | None) -> str:
    """RFC 3339 from the server, shortened to the second (UTC)."""
    if not value:
        return "-"
    return value.replace("T", " ")[:19] + "Z" if "T" in value else value


def rate(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if unit == "bytes":
        return human_bytes(value) + "/s"
    return f"{value:.1f}/s" if value % 1 else f"{int(value)}/s"


def state_of(sub: Subscription) -> str:
    if sub.offline:
        return "offline"
    if sub.stalled:
        return "stalled"
    return "online" if sub.kind == "subscription" else "-"


# --- table views --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    cell: Callable[[Any], str]
    optional: bool = False  # shown only when some row has a value in it
    numeric: bool = False


def _address(row: Any) -> str:
    return f"{row.ip}:{row.port}" if row.port else row.ip or "-"


def _stan_subs(client: StreamingClient) -> str:
    return ", ".join(f"{s.channel}[{s.queue or s.name or 'plain'}]" for s in client.subscriptions) or "-"


VIEWS: dict[type, list[Column]] = {
    Connection: [
        Column("CID", lambda c: str(c.cid), numeric=True),
        Column("NAME", lambda c: c.name or "-"),
        Column("ADDRESS", _address),
        Column("ACCOUNT", lambda c: c.account, optional=True),
        Column("USER", lambda c: c.user, optional=True),
        Column("LANG", lambda c: f"{c.lang} {c.version}".strip() or "-"),
        Column("SUBS", lambda c: str(c.subscriptions), numeric=True),
        Column("PENDING", lambda c: human_bytes(c.pending_bytes), numeric=True),
        Column("MSGS IN", lambda c: str(c.in_msgs), numeric=True),
        Column("MSGS OUT", lambda c: str(c.out_msgs), numeric=True),
        Column("BYTES IN", lambda c: human_bytes(c.in_bytes), numeric=True),
        Column("BYTES OUT", lambda c: human_bytes(c.out_bytes), numeric=True),
        Column("RTT", lambda c: c.rtt or "-"),
        Column("UPTIME", lambda c: c.uptime or "-"),
        Column("IDLE", lambda c: c.idle or "-"),
        Column("REASON", lambda c: c.reason, optional=True),
    ],
    StreamingClient: [
        Column("CLIENT ID", lambda c: c.id),
        Column("SUBS", lambda c: str(c.subs_count), numeric=True),
        Column("SUBSCRIPTIONS", _stan_subs),
    ],
    Channel: [
        Column("CHANNEL", lambda c: c.channel or c.name),
        Column("STREAM", lambda c: c.stream, optional=True),
        Column("ACCOUNT", lambda c: c.account if c.account not in ("", "$G") else "", optional=True),
        Column("MSGS", lambda c: str(c.messages), numeric=True),
        Column("BYTES", lambda c: human_bytes(c.bytes), numeric=True),
        Column("FIRST", lambda c: str(c.first_seq), numeric=True),
        Column("LAST", lambda c: str(c.last_seq), numeric=True),
        Column("FIRST TIME", lambda c: when(c.first_time) if c.first_time else "", optional=True),
        Column("LAST TIME", lambda c: when(c.last_time) if c.last_time else "", optional=True),
        Column("SUBS", lambda c: str(c.consumers), numeric=True),
    ],
    Subscription: [
        Column("CHANNEL", lambda s: s.channel),
        Column("STREAM", lambda s: s.stream, optional=True),
        Column("KIND", lambda s: s.kind),
        Column("NAME", lambda s: s.name or "-"),
        Column("QUEUE", lambda s: s.queue or "-"),
        Column("CLIENT", lambda s: s.client_id or (str(s.cid) if s.cid is not None else "-")),
        Column("LAG", lambda s: count(s.lag), numeric=True),
        Column("UNACKED", lambda s: count(s.unacked), numeric=True),
        Column("REDELIVERED", lambda s: count(s.redelivered), numeric=True, optional=True),
        Column("DELIVERED", lambda s: count(s.delivered_seq), numeric=True),
        Column("STATE", state_of),
        Column("LAST ACTIVE", lambda s: when(s.last_active) if s.last_active else "", optional=True),
        Column("FILTER", lambda s: s.filter_subject, optional=True),
    ],
    Route: [
        Column("RID", lambda r: str(r.rid), numeric=True),
        Column("REMOTE", lambda r: r.remote_name or "-"),
        Column("REMOTE ID", lambda r: r.remote_id or "-"),
        Column("ADDRESS", _address),
        Column("ACCOUNT", lambda r: r.account, optional=True),
        Column("SUBS", lambda r: str(r.subscriptions), numeric=True),
        Column("MSGS IN", lambda r: str(r.in_msgs), numeric=True),
        Column("MSGS OUT", lambda r: str(r.out_msgs), numeric=True),
        Column("BYTES IN", lambda r: human_bytes(r.in_bytes), numeric=True),
        Column("BYTES OUT", lambda r: human_bytes(r.out_bytes), numeric=True),
        Column("RTT", lambda r: r.rtt or "-"),
        Column("UPTIME", lambda r: r.uptime or "-"),
    ],
}


def build_table(
    rows: Sequence[Any],
    *,
    row_type: type | None = None,
    title: str | None = None,
    extra: Sequence[dict[str, str]] | None = None,
) -> RenderableType:
    """A rich Table of ``rows`` with the view of their type; ``extra`` adds per-row columns (rates)."""
    from rich import box
    from rich.table import Table

    kind = row_type or (type(rows[0]) if rows else None)
    if kind is None:
        from rich.text import Text

        return Text(f"{title}: nothing to show" if title else "nothing to show")
    columns = [c for c in VIEWS.get(kind, []) if not c.optional or any(c.cell(r) for r in rows)]
    terminal = stdout_is_terminal()
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD if terminal else None,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2) if not terminal else (0, 1),
        header_style="bold" if terminal else "",
        title_justify="left",
    )
    extra_headers = list(extra[0]) if extra else []
    for column in columns:
        table.add_column(column.header, justify="right" if column.numeric else "left", no_wrap=not terminal)
    for header in extra_headers:
        table.add_column(header.upper(), justify="right", no_wrap=True)
    for index, row in enumerate(rows):
        cells = [c.cell(row) or "-" for c in columns]
        cells += [extra[index][h] for h in extra_headers] if extra else []
        table.add_row(*cells)
    return table


def record_table(pairs: Sequence[tuple[str, str]], title: str | None = None) -> Table:
    """A two-column FIELD / VALUE table for one object (server, health)."""
    from rich import box
    from rich.table import Table

    terminal = stdout_is_terminal()
    table = Table(
        title=title,
        box=box.SIMPLE if terminal else None,
        show_header=False,
        show_edge=False,
        pad_edge=False,
        padding=(0, 2),
        title_justify="left",
    )
    table.add_column("FIELD", style="bold" if terminal else "", no_wrap=True)
    table.add_column("VALUE")
    for name, value in pairs:
        table.add_row(name, value)
    return table


def channel_table(channel: Channel, extra: list[dict[str, str]] | None = None) -> RenderableType:
    """``natsctl channel NAME``: the channel's fields, then its subscriptions (if any) below."""
    from rich.console import Group

    pairs = [
        ("Channel", channel.channel or channel.name),
        *([("Stream", channel.stream)] if channel.stream else []),
        ("Kind", "JetStream stream" if channel.kind == "stream" else "NATS Streaming channel"),
        ("Subjects", " ".join(channel.subjects) or "-"),
        ("Messages", str(channel.messages)),
        ("Bytes", human_bytes(channel.bytes)),
        ("First sequence", f"{channel.first_seq}" + (f" at {when(channel.first_time)}" if channel.first_time else "")),
        ("Last sequence", f"{channel.last_seq}" + (f" at {when(channel.last_time)}" if channel.last_time else "")),
        ("Subscriptions", str(channel.consumers)),
    ]
    if channel.storage:
        pairs += [("Storage", channel.storage), ("Replicas", str(channel.replicas or 1))]
    if channel.account:
        pairs.append(("Account", channel.account))
    if not channel.subscriptions:
        return record_table(pairs)
    return Group(record_table(pairs), "", build_table(channel.subscriptions, row_type=Subscription))


def grid(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    """A titled table of ready-made cells, no borders (``natsctl cluster``'s nodes and replicas)."""
    from rich.table import Table

    table = Table(title=title, box=None, title_justify="left")
    for head in headers:
        table.add_column(head)
    for row in rows:
        table.add_row(*row)
    return table


# --- output -------------------------------------------------------------------------------------


def write(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()


def write_json(data: Any) -> None:
    """``write(to_json(data))``, written as it is encoded: json.dumps with an indent joins millions of
    small pieces for a long listing (100,000 connections: ~500 MB); here at most 64 KiB wait at once."""
    pending: list[str] = []
    size = 0
    for piece in json.JSONEncoder(ensure_ascii=False, indent=2).iterencode(plain(data)):
        pending.append(piece)
        size += len(piece)
        if size >= 65536:
            sys.stdout.write("".join(pending))
            pending.clear()
            size = 0
    pending.append("\n")
    sys.stdout.write("".join(pending))
    sys.stdout.flush()


def print_table(renderable: RenderableType) -> None:
    console = stdout_console()
    if stdout_is_terminal():
        console.print(renderable)
        return
    # off a terminal rich pads every line to the table width: strip for clean pipes
    with console.capture() as capture:
        console.print(renderable)
    write("\n".join(line.rstrip() for line in capture.get().splitlines()))


def emit(data: Any, fmt: str, table: Callable[[], RenderableType] | None = None) -> None:
    """Print ``data`` in ``fmt``; ``table`` builds the human view (default: the rows' view)."""
    if fmt == "json":
        write_json(data)
    elif fmt == "yaml":
        write(to_yaml(data))
    elif fmt == "csv":
        sys.stdout.write(to_csv(data))
        sys.stdout.flush()
    else:
        print_table(table() if table else build_table(data if isinstance(data, list) else [data]))


class LiveView:
    """``--watch``: a table refreshed in place on a terminal; elsewhere one snapshot after another
    (tables separated by a blank line, JSON one compact document per line)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.fmt == "table" and stdout_is_terminal():
            from rich.live import Live

            self.live = Live(console=stdout_console(), auto_refresh=False, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def show(self, data: Any, table: Callable[[], RenderableType]) -> None:
        if self.live is not None:
            self.live.update(table(), refresh=True)
        elif self.fmt == "table":
            print_table(table())
            write("")
        elif self.fmt == "json":
            write(to_json(data, compact=True))
        else:
            emit(data, self.fmt)
