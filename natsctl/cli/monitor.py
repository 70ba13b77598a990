"""Monitoring commands: server, clients, channels, subs, routes, health (HTTP port 8222).

httpx and rich are imported inside the functions (through natsctl.monitor and natsctl.cli.render) so
that loading this module for ``--help`` stays cheap.
"""

# No "from __future__ import annotations": Typer reads these signatures through the options
# decorator, which needs real (not string) annotations.
import importlib.util
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.options import monitor_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.render import Renderable
    from natsctl.cli.run import Stop
    from natsctl.monitor.client import MonitorClient
    from natsctl.monitor.models import Health, RouteReport, ServerInfo, Subscription

Output = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="table|json|yaml|csv",
        help="Output format: table, json, yaml or csv [default: table]",
        show_default=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Short for -o json")]
Watch = Annotated[
    float | None,
    typer.Option(
        "--watch",
        "-w",
        min=0.2,
        metavar="SECONDS",
        help="Refresh every SECONDS with rates between refreshes; Ctrl-C stops",
        show_default=False,
    ),
]

GATES = "Gates (exit 13 when one fails)"
FailOnLag = Annotated[
    int | None,
    typer.Option(
        "--fail-on-lag",
        metavar="N",
        help="Exit 13 when a subscription has more than N messages not yet delivered",
        rich_help_panel=GATES,
        show_default=False,
    ),
]
FailOnUnacked = Annotated[
    int | None,
    typer.Option(
        "--fail-on-unacked",
        metavar="N",
        help="Exit 13 when a subscription holds more than N delivered, unacked messages",
        rich_help_panel=GATES,
        show_default=False,
    ),
]
FailOnStalled = Annotated[
    str | None,
    typer.Option(
        "--fail-on-stalled",
        metavar="DURATION",
        help="Read twice, DURATION apart; exit 13 when a subscription with pending work acked nothing between",
        rich_help_panel=GATES,
        show_default=False,
    ),
]

# A report of any of the commands (a dataclass, or a list of them) and what renders it as a table.
Fetch = Callable[["MonitorClient"], Awaitable[Any]]
TableOf = Callable[[Any, list[dict[str, str]] | None], "Renderable"]


# --- plumbing shared by the commands ------------------------------------------------------------


def _fmt(output: str | None, json_flag: bool) -> str:
    from natsctl.cli.render.tables import output_format

    return output_format(output, json_flag)


def _run(
    settings: Settings,
    fetch: Fetch,
    fmt: str,
    table: TableOf | None = None,
    watch: float | None = None,
    after: Callable[[Any], None] | None = None,
) -> None:
    from natsctl.cli import run
    from natsctl.core.timeparse import check_timeout

    if watch is not None:
        check_timeout(watch, what="--watch")  # nan, inf, 1e308: a refresh that never comes

    async def command(stop: "Stop") -> int:
        from natsctl.monitor.client import MonitorClient

        stop.handle()  # every fetch races the stop (unless_stopped); a watch ends with 0 on Ctrl-C
        async with MonitorClient(settings) as client:
            if watch:
                return await _watch(client, fetch, fmt, table, watch, stop)
            try:
                data = await unless_stopped(fetch(client), stop)
            finally:
                _tell(client, set())
            if data is STOPPED:
                return 0  # the runner exits 130 (Ctrl-C) or 143 (SIGTERM)
            _emit(data, fmt, table)
            if after is not None:
                after(data)
            return 0

    run.run(command)


STOPPED = object()  # what ``unless_stopped`` gives when Ctrl-C or SIGTERM came first
UNWIND_SECONDS = 1.0  # how long an abandoned request may take to close its socket


async def unless_stopped(work: Awaitable[Any], stop: "Stop") -> Any:
    """``await work``, or abandon it (cancelled) as soon as Ctrl-C or SIGTERM asks to stop and give
    ``STOPPED``: a monitoring request is bounded by --timeout, but a signal must not wait for it."""
    import asyncio

    task = asyncio.ensure_future(work)
    halt = asyncio.ensure_future(stop.event.wait())
    finished = False
    try:
        await asyncio.wait((task, halt), return_when=asyncio.FIRST_COMPLETED)
    finally:
        halt.cancel()
        finished = task.done()
        if not finished:
            task.cancel()
            await asyncio.wait((task,), timeout=UNWIND_SECONDS)
            if task.done() and not task.cancelled():
                task.exception()  # what an abandoned request raised on its way out is moot: retrieved, not shown
    return task.result() if finished else STOPPED


def _tell(client: "MonitorClient", told: set[str]) -> None:
    """The monitoring layer's notes for the operator (a listing cut short, and why), each once, on stderr."""
    from natsctl.core.stderr import say

    for line in client.notes:
        if line not in told:
            told.add(line)
            say(line, "warning")
    client.notes.clear()


def _emit(data: Any, fmt: str, table: TableOf | None) -> None:
    from natsctl.cli.render.tables import emit

    if fmt == "table" and isinstance(data, list) and not data:
        from natsctl.core.stderr import say

        say("nothing to show")
        return
    emit(data, fmt, (lambda: table(data, None)) if table else None)


def _table_maker(table: TableOf | None, data: Any, rows: list[Any], extra: Any) -> Callable[[], Any]:
    """The table of one refresh, built only if the view shows a table."""
    from natsctl.cli.render.tables import build_table

    if table is not None:
        return lambda: table(data, extra)
    return lambda: build_table(rows, extra=extra)


async def _watch(
    client: "MonitorClient", fetch: Fetch, fmt: str, table: TableOf | None, every: float, stop: "Stop"
) -> int:
    """Refresh until Ctrl-C, which ends a watch normally (exit 0) rather than as an interruption."""
    import asyncio
    import time

    from natsctl.cli.render.tables import LiveView
    from natsctl.core.errors import ExitCode

    previous: list[Any] = []
    told: set[str] = set()
    before = time.monotonic()
    with LiveView(fmt) as view:
        while not stop.requested:
            try:
                data = await unless_stopped(fetch(client), stop)
            finally:
                _tell(client, told)
            if data is STOPPED:
                break
            now = time.monotonic()
            rows = data if isinstance(data, list) else [data]
            extra = _rate_cells(previous, rows, now - before if previous else 0.0)
            view.show(data, _table_maker(table, data, rows, extra))
            previous, before = rows, now
            try:
                await asyncio.wait_for(stop.event.wait(), every)
            except TimeoutError:
                pass
    if stop.exit_code == ExitCode.INTERRUPTED:
        stop.exit_code = ExitCode.OK
    return 0


def _rate_cells(previous: list[Any], rows: list[Any], seconds: float) -> list[dict[str, str]] | None:
    from natsctl.cli.render.tables import rate
    from natsctl.monitor.rates import rate_columns, rates

    if not rows or not rate_columns(type(rows[0])):
        return None
    values = rates(previous, rows, seconds)
    cells = [{k: rate(v, "bytes" if "bytes" in k else "") for k, v in row.items()} for row in values]
    if type(rows[0]).__name__ == "Subscription":
        from natsctl.monitor.gates import drain_cells

        for cell, drain in zip(cells, drain_cells(previous, rows, seconds), strict=True):
            cell["time to drain"] = drain
    return cells


# --- server ----------------------------------------------------------------------------------------


def server_pairs(info: "ServerInfo") -> list[tuple[str, str]]:
    from natsctl.cli.render.tables import human_bytes

    what = {"jetstream": "nats-server with JetStream", "nats": "nats-server (JetStream off)", "stan": "NATS Streaming"}
    pairs = [
        ("Server", f"{info.server_name or '-'} ({info.server_id or '-'})"),
        ("Kind", what.get(info.kind, info.kind)),
        ("Version", info.version + (f", {info.go}" if info.go else "")),
        ("Monitor", info.monitor_url),
        ("Client port", f"{info.host}:{info.port}" if info.port else "-"),
        ("Started", info.start or "-"),
        ("Uptime", info.uptime or "-"),
        (
            "Connections",
            str(info.connections)
            + (f" ({info.total_connections} since start)" if info.total_connections is not None else ""),
        ),
        ("Subscriptions", str(info.subscriptions)),
        ("Routes", str(info.routes)),
        ("Cluster", info.cluster_name or "-"),
        ("Messages in/out", f"{info.in_msgs} / {info.out_msgs}"),
        ("Bytes in/out", f"{human_bytes(info.in_bytes)} / {human_bytes(info.out_bytes)}"),
        ("Slow consumers", str(info.slow_consumers)),
        ("Memory", human_bytes(info.mem)),
        ("CPU", cpu_text(info.cpu, info.cores)),
    ]
    if info.jetstream is not None:
        pairs += _jetstream_pairs(info)
    if info.streaming is not None:
        pairs += _streaming_pairs(info)
    return pairs


def cpu_text(cpu: float, cores: int | None) -> str:
    """/varz ``cpu`` is the process's CPU use in percent of one core, as ps shows it (up to 100 x cores):
    the same number as ``--json``'s ``cpu``, never a share of all the cores."""
    return f"{cpu:.1f}% of one core" + (f" ({cores} cores)" if cores else "")


def _jetstream_pairs(info: "ServerInfo") -> list[tuple[str, str]]:
    from natsctl.cli.render.tables import count, human_bytes

    js = info.jetstream
    assert js is not None
    return [
        ("JetStream memory", f"{human_bytes(js.memory)} of {human_bytes(js.max_memory)}"),
        ("JetStream storage", f"{human_bytes(js.storage)} of {human_bytes(js.max_storage)}"),
        ("Streams", count(js.streams)),
        ("Consumers", count(js.consumers)),
        ("Stream messages", count(js.messages)),
        ("Stream bytes", human_bytes(js.bytes)),
        ("API requests/errors", f"{js.api_total} / {js.api_errors}"),
    ]


def _streaming_pairs(info: "ServerInfo") -> list[tuple[str, str]]:
    from natsctl.cli.render.tables import count, human_bytes

    st = info.streaming
    assert st is not None
    unlimited = lambda v: "unlimited" if not v else str(v)  # noqa: E731 - 0 means no limit in STAN
    return [
        ("Streaming version", st.version),
        ("Cluster id", st.cluster_id),
        ("State", st.state),
        ("Store", st.store_type or "-"),
        ("Channels", str(st.channels)),
        ("Clients", str(st.clients)),
        ("Streaming subscriptions", str(st.subscriptions)),
        ("Stored messages", f"{st.total_msgs} ({human_bytes(st.total_bytes)})"),
        ("Limit channels", count(st.max_channels)),
        ("Limit msgs/channel", count(st.max_msgs)),
        ("Limit bytes/channel", human_bytes(st.max_bytes) if st.max_bytes else "unlimited"),
        ("Limit age", unlimited(st.max_age_seconds and f"{st.max_age_seconds:g}s")),
        ("Limit subs/channel", count(st.max_subscriptions)),
    ]


def server_table(info: "ServerInfo", extra: list[dict[str, str]] | None) -> "Renderable":
    from natsctl.cli.render.tables import record_table

    pairs = server_pairs(info) + ([(k.capitalize(), v) for k, v in extra[0].items()] if extra else [])
    return record_table(pairs)


def server_command(
    ctx: typer.Context, output: Output = None, json_: JsonFlag = False, watch: Watch = None, *, settings: Settings
) -> None:
    """Server identity, version, traffic, memory, JetStream usage or NATS Streaming state."""
    if ctx.invoked_subcommand:
        return
    from natsctl.cli.cluster import audited
    from natsctl.monitor import api

    if watch:
        _run(settings, api.server, _fmt(output, json_), server_table, watch)
        return
    fetch, warn_after = audited(api.server, settings, _fmt(output, json_))  # durability audit (issue 7)
    _run(settings, fetch, _fmt(output, json_), server_table, after=warn_after)


# --- clients ---------------------------------------------------------------------------------------


def clients_command(
    output: Output = None,
    json_: JsonFlag = False,
    watch: Watch = None,
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            metavar="KEY",
            help=(
                "Server-side sort (nats-server): cid, start, subs, pending, msgs_to, msgs_from, bytes_to, bytes_from, "
                "last, idle, uptime, rtt; stop and reason with --state closed"
            ),
        ),
    ] = None,
    state: Annotated[str, typer.Option("--state", metavar="open|closed|all", help="open, closed or all")] = "open",
    account: Annotated[
        str | None, typer.Option("--account", metavar="ACCOUNT", help="Only this account's connections")
    ] = None,
    user_filter: Annotated[
        str | None, typer.Option("--user-filter", metavar="USER", help="Only connections of this user")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", metavar="N", min=1, help="At most N connections")] = None,
    page_size: Annotated[int, typer.Option("--page-size", metavar="N", min=1, max=1024, hidden=True)] = 1024,
    *,
    settings: Settings,
) -> None:
    """Client connections (/connz, every page), or the NATS Streaming clients and their subscriptions."""
    from natsctl.core.errors import UsageError
    from natsctl.monitor import api

    if state not in ("open", "closed", "all"):
        raise UsageError(f"--state must be open, closed or all, not {state!r}")
    if sort is not None and sort not in api.CONNZ_SORTS:
        raise UsageError(f"--sort must be one of {', '.join(api.CONNZ_SORTS)}, not {sort!r}")
    options = dict(state=state, sort=sort, account=account, user=user_filter, limit=limit, page_size=page_size)

    async def fetch(client: "MonitorClient") -> Any:
        return await api.clients(client, **options)

    _run(settings, fetch, _fmt(output, json_), None, watch)


# --- channels --------------------------------------------------------------------------------------


def channels_command(
    output: Output = None,
    json_: JsonFlag = False,
    watch: Watch = None,
    account: Annotated[
        str | None, typer.Option("--account", metavar="ACCOUNT", help="JetStream: only this account's streams")
    ] = None,
    *,
    settings: Settings,
) -> None:
    """Channels: JetStream streams (/jsz) or NATS Streaming channels (/streaming/channelsz)."""
    from natsctl.monitor import api

    async def fetch(client: "MonitorClient") -> Any:
        return await api.channels(client, account)

    _run(settings, fetch, _fmt(output, json_), None, watch)


# --- subscriptions ---------------------------------------------------------------------------------

SUB_SORTS = ("channel", "lag", "unacked", "name")


def sort_subscriptions(subs: list["Subscription"], key: str) -> list["Subscription"]:
    if key == "lag":
        return sorted(subs, key=lambda s: (s.lag is None, -(s.lag or 0), s.channel, s.name))
    if key == "unacked":
        return sorted(subs, key=lambda s: (s.unacked is None, -(s.unacked or 0), s.channel, s.name))
    if key == "name":
        return sorted(subs, key=lambda s: (s.name, s.channel))
    return sorted(subs, key=lambda s: (s.channel, s.kind, s.name, s.queue))


def subs_command(
    output: Output = None,
    json_: JsonFlag = False,
    watch: Watch = None,
    channel: Annotated[str | None, typer.Option("--channel", "-c", metavar="CHANNEL", help="Only this channel")] = None,
    min_lag: Annotated[
        int | None, typer.Option("--min-lag", metavar="N", min=0, help="Only those lagging N messages or more")
    ] = None,
    sort: Annotated[str, typer.Option("--sort", metavar="KEY", help="channel, lag, unacked or name")] = "channel",
    core: Annotated[
        bool, typer.Option("--core/--no-core", help="nats-server: include plain core subscriptions")
    ] = True,
    account: Annotated[
        str | None, typer.Option("--account", metavar="ACCOUNT", help="JetStream: only this account")
    ] = None,
    fail_on_lag: FailOnLag = None,
    fail_on_unacked: FailOnUnacked = None,
    fail_on_stalled: FailOnStalled = None,
    *,
    settings: Settings,
) -> None:
    """Subscriptions and consumers with their lag (undelivered), unacked and redelivered counts.

    Gates for cron jobs, CI and probes: --fail-on-lag N and --fail-on-unacked N exit 13 when a
    subscription is over N; --fail-on-stalled DURATION reads twice, DURATION apart, and exits 13 when
    a subscription with pending work acked nothing in between. The error line names every subscription
    that failed; the table (or JSON) is printed first. --watch adds a "time to drain" column: pending
    work (lag + unacked) divided by the ack rate seen between refreshes ("never": no ack since the last).

    QUEUE is the group whose members share the messages, as each server records it. Core NATS: the
    subscription's queue group. JetStream: a push consumer's deliver group; a pull consumer shows "-"
    because the consumer itself is the group (every natsctl member fetching from it shares its
    messages) and its config names no group. NATS Streaming: the queue group, "durable:queue" for a
    durable queue group.
    """
    from natsctl.core.errors import UsageError
    from natsctl.monitor import api

    if sort not in SUB_SORTS:
        raise UsageError(f"--sort must be one of {', '.join(SUB_SORTS)}, not {sort!r}")

    from natsctl.monitor.gates import parse_gates

    gates = parse_gates(fail_on_lag, fail_on_unacked, fail_on_stalled, watch)

    async def fetch(client: "MonitorClient") -> Any:
        subs = await api.subscriptions(client, channel=channel, include_core=core, account=account)
        if min_lag is not None:
            subs = [s for s in subs if s.lag is not None and s.lag >= min_lag]
        return sort_subscriptions(subs, sort)

    after = gates.check if gates.on else None
    _run(settings, gates.gated(fetch, lambda data: data), _fmt(output, json_), None, watch, after)


# --- routes and health -----------------------------------------------------------------------------


def routes_table(report: "RouteReport", extra: list[dict[str, str]] | None = None) -> "Renderable":
    from natsctl.cli.render.tables import build_table
    from natsctl.monitor.models import Route

    title = (
        f"{report.server_name or report.server_id}: {report.num_routes} routes in cluster {report.cluster_name or '-'}"
    )
    return build_table(report.routes, row_type=Route, title=title)


def routes_command(output: Output = None, json_: JsonFlag = False, *, settings: Settings) -> None:
    """Cluster routes of the server (/routez)."""
    from natsctl.monitor import api

    _run(settings, api.routes, _fmt(output, json_), routes_table)


def health_table(health: "Health", extra: list[dict[str, str]] | None = None) -> "Renderable":
    from natsctl.cli.render.tables import record_table

    pairs = [("Status", health.status), ("Healthy", "yes" if health.healthy else "no"), ("Monitor", health.monitor_url)]
    if health.streaming_state:
        pairs.append(("Streaming state", health.streaming_state))
    if health.error:
        pairs.append(("Error", health.error))
    return record_table(pairs)


def _fail_unhealthy(health: "Health") -> None:
    from natsctl.core.errors import Unhealthy

    if not health.healthy:
        raise Unhealthy(f"{health.monitor_url} is unhealthy: {health.error or health.status}")


def health_command(output: Output = None, json_: JsonFlag = False, *, settings: Settings) -> None:
    """Health check (/healthz): exit 0 when healthy, 11 otherwise (for probes and CI gates)."""
    from natsctl.cli.cluster import audited
    from natsctl.monitor import api

    fetch, warn_after = audited(api.health, settings, _fmt(output, json_))  # durability audit (issue 7)

    def after(health: "Health") -> None:
        warn_after(health)
        _fail_unhealthy(health)

    _run(settings, fetch, _fmt(output, json_), health_table, after=after)


# --- for other commands (natsctl demo) -------------------------------------------------------------


async def print_overview(settings: Settings, reports: tuple[str, ...] = ("channels", "subs", "clients")) -> None:
    """Print the channels, subscriptions and clients tables of the bus ``settings`` point at (stdout),
    each under a title line; an empty report prints a note on stderr instead."""
    from natsctl.cli.render.tables import build_table, print_table
    from natsctl.core.stderr import say
    from natsctl.monitor import api
    from natsctl.monitor.client import MonitorClient

    fetchers: dict[str, tuple[str, Fetch]] = {
        "channels": ("Channels", api.channels),
        "subs": ("Subscriptions", api.subscriptions),
        "clients": ("Clients", api.clients),
    }
    async with MonitorClient(settings) as client:
        for name in reports:
            title, fetch = fetchers[name]
            rows = await fetch(client)
            _tell(client, set())
            if name == "subs":
                rows = sort_subscriptions(rows, "channel")
            if rows:
                print_table(build_table(rows, title=title))
            else:
                say(f"no {title.lower()}")


# --- registration ----------------------------------------------------------------------------------


def register(app: typer.Typer) -> None:
    server_group = typer.Typer(name="server", help="Show the server (monitoring port); subcommands manage one.")
    server_group.callback(invoke_without_command=True)(monitor_options(server_command))
    if importlib.util.find_spec("natsctl.cli.server_run") is not None:
        from natsctl.cli import server_run

        server_run.register(server_group)
    app.add_typer(server_group, name="server")
    app.command("clients")(monitor_options(clients_command))
    app.command("channels")(monitor_options(channels_command))
    app.command("subs")(monitor_options(subs_command))
    app.command("routes")(monitor_options(routes_command))
    app.command("health")(monitor_options(health_command))
