"""`natsctl durable ls|info|rm|reset|pause|resume`: JetStream consumers and NATS Streaming durables.

A durable is named as `sub` names it: its channel, the --durable name and, for a durable queue group,
--queue GROUP. NATS Streaming durables are listed by its monitoring port; one is removed by resuming
it under its client id and unsubscribing, which the server allows only while that client is away.
"""

# No "from __future__ import annotations": Typer reads these signatures through the options decorators.
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.manage_common import JsonFlag, Output, Yes, confirm, emit, output_format, run_admin, say
from natsctl.cli.options import connection_options, monitor_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.core.backend import Backend
    from natsctl.core.manage import ChannelAdmin, Durable, DurableRef

HELP = """Manage durables: ls, info, rm, reset, pause, resume.

JetStream: the consumers natsctl's `sub --durable NAME [--queue GROUP]` makes (and any other consumer).
NATS Streaming: durable subscriptions and durable queue groups; rm only while the durable's client is
not connected; reset and pause do not exist there."""

Channel = Annotated[str, typer.Argument(metavar="CHANNEL", help="Channel (subject) name")]
Name = Annotated[str, typer.Argument(metavar="NAME", help="Durable name (sub --durable NAME)")]
Queue = Annotated[
    str | None,
    typer.Option("--queue", "-q", metavar="GROUP", help="The durable's queue group (sub --durable NAME --queue GROUP)"),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="durable", help=HELP, no_args_is_help=True)
    group.command("ls")(monitor_options(ls))
    group.command("info", no_args_is_help=True)(monitor_options(info))
    group.command("rm", no_args_is_help=True)(monitor_options(rm))
    group.command("reset", no_args_is_help=True)(connection_options(reset))
    group.command("pause", no_args_is_help=True)(connection_options(pause))
    group.command("resume", no_args_is_help=True)(connection_options(resume))
    app.add_typer(group, name="durable")


def _ref(channel: str, name: str, queue: str | None) -> "DurableRef":
    from natsctl.core.manage import DurableRef

    return DurableRef(channel=channel, name=name, queue=queue)


# -- NATS Streaming: the monitoring port lists durables --------------------------------------------


async def _stan_durables(settings: Settings, channel: str | None) -> list["Durable"]:
    from natsctl.core.manage import Durable
    from natsctl.monitor import api
    from natsctl.monitor.client import MonitorClient

    async with MonitorClient(settings) as client:
        if channel is not None:
            await api.channel(client, channel)  # NotFound (7) for a channel the server does not have
        subs = await api.subscriptions(client, channel=channel, include_core=False)
    found = []
    for sub in subs:
        if not sub.durable:
            continue
        durable, _, queue = sub.queue.partition(":") if sub.queue else (sub.name, "", "")
        found.append(
            Durable(
                channel=sub.channel,
                stream="",
                name=durable or sub.name,
                queue=queue,
                client_id="" if queue else sub.client_id,
                online=not sub.offline,
                delivered_seq=sub.delivered_seq,
                pending=sub.lag,
                unacked=sub.unacked,
            )
        )
    # a durable queue group is listed once, online when any member is
    merged: dict[tuple[str, str, str, str], Durable] = {}
    for item in found:
        key = (item.channel, item.name, item.queue, item.client_id)
        if key in merged:
            merged[key].online = bool(merged[key].online or item.online)
        else:
            merged[key] = item
    return sorted(merged.values(), key=lambda d: (d.channel, d.name, d.queue, d.client_id))


async def _stan_durable(settings: Settings, ref: "DurableRef") -> "Durable":
    from natsctl.core.errors import NotFound

    found = [
        d
        for d in await _stan_durables(settings, ref.channel)
        if d.name == ref.name
        and d.queue == (ref.queue or "")
        and (ref.queue or not settings.client_id or d.client_id == settings.client_id)
    ]
    if not found:
        group = f" in queue group {ref.queue!r}" if ref.queue else ""
        owner = f" of client id {settings.client_id!r}" if settings.client_id and not ref.queue else ""
        raise NotFound(
            f"no durable {ref.name!r}{group}{owner} on channel {ref.channel!r}",
            hint=f"'natsctl durable ls {ref.channel}' lists them",
        )
    if len(found) > 1:
        from natsctl.core.errors import UsageError

        owners = ", ".join(d.client_id for d in found)
        raise UsageError(f"durable {ref.name!r} on {ref.channel!r} exists for client ids {owners}: pass --client-id")
    return found[0]


# -- ls / info -------------------------------------------------------------------------------------


def ls(
    channel: Annotated[str | None, typer.Argument(metavar="[CHANNEL]", help="Only this channel's durables")] = None,
    output: Output = None,
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    """List the durables of CHANNEL, or of every channel."""
    fmt = output_format(output, json_)

    def show(durables: list["Durable"]) -> None:
        from natsctl.cli.render.manage import durables_table

        if fmt == "table" and not durables:
            say("no durables")
            return
        emit(durables, fmt, lambda: durables_table(durables))

    _show_read(settings, lambda: _stan_durables(settings, channel), lambda admin: admin.durables(channel), show)


def info(
    channel: Channel,
    name: Name,
    queue: Queue = None,
    output: Output = None,
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    """Show one durable: its position, what it has pending and unacked, its configuration."""
    fmt = output_format(output, json_)
    ref = _ref(channel, name, queue)

    def show(durable: "Durable") -> None:
        from natsctl.cli.render.manage import durable_table

        emit(durable, fmt, lambda: durable_table(durable))

    _show_read(settings, lambda: _stan_durable(settings, ref), lambda admin: admin.durable(ref), show)


def _show_read(
    settings: Settings,
    from_stan: Callable[[], Awaitable[Any]],
    from_admin: Callable[["ChannelAdmin"], Awaitable[Any]],
    show: Callable[[Any], None],
) -> None:
    """Read what ls/info show: on NATS Streaming from its monitoring port, on JetStream from the server's API."""
    if settings.cluster_id:
        from natsctl.cli import run

        async def command(stop: Any) -> int:
            show(await from_stan())
            return 0

        run.run(command)  # exits with the command's status
        return

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        show(await from_admin(admin))
        return 0

    run_admin(settings, body)


# -- rm --------------------------------------------------------------------------------------------


def rm(
    channel: Channel, name: Name, queue: Queue = None, yes: Yes = False, json_: JsonFlag = False, *, settings: Settings
) -> None:
    """Delete a durable without consuming from it (its position and unacked messages are gone).

    NATS Streaming: only while the durable's client is not connected; natsctl connects with that
    client id (from the monitoring port, or --client-id), resumes the durable and unsubscribes."""
    ref = _ref(channel, name, queue)
    if settings.cluster_id:
        return _stan_rm(settings, ref, yes, json_)

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        durable = await admin.durable(ref)
        confirm(
            f"delete durable {durable.name}{_group(durable)} of channel {durable.channel} "
            f"(consumer {durable.consumer}, {durable.unacked or 0} unacked, {durable.pending or 0} pending)",
            yes,
        )
        _done(await admin.remove_durable(ref), json_)
        return 0

    run_admin(settings, body)


def _group(durable: "Durable") -> str:
    return f" (queue group {durable.queue})" if durable.queue else ""


def _done(removed: Any, json_: bool) -> None:
    if json_:
        emit(removed, "json")
    else:
        say(f"durable {removed.name} of channel {removed.channel} deleted")


def _stan_rm(settings: Settings, ref: "DurableRef", yes: bool, json_: bool) -> None:
    from natsctl.cli import run
    from natsctl.core.errors import UsageError

    async def command(stop: Any) -> int:
        from natsctl.opener import open_backend

        durable = await _stan_durable(settings, ref)
        holder = f"client id {durable.client_id!r}" if durable.client_id else "a member"
        if durable.online:
            raise UsageError(
                f"durable {ref.name!r}{_group(durable)} on {ref.channel!r} is in use by {holder}: NATS Streaming "
                "removes a durable only while its client is not connected; stop that client, then run this again"
            )
        confirm(f"delete durable {durable.name}{_group(durable)} of channel {durable.channel}", yes)
        own = (
            settings
            if ref.queue or not durable.client_id
            else dataclasses.replace(settings, client_id=durable.client_id)
        )
        try:
            backend = await open_backend(own)
        except UsageError as exc:
            if "already connected" in exc.message:
                raise UsageError(
                    f"durable {ref.name!r} on {ref.channel!r}: its client id {own.client_id!r} is connected, and "
                    "NATS Streaming removes a durable only while its client is not; stop that client, then run this again"
                ) from None
            raise
        try:
            _done(await backend.manager().remove_durable(ref), json_)
        finally:
            await backend.close()
        return 0

    run.run(command)


# -- reset / pause / resume -------------------------------------------------------------------------


def reset(
    channel: Channel,
    name: Name,
    queue: Queue = None,
    seq: Annotated[int | None, typer.Option("--seq", metavar="N", min=1, help="Deliver from sequence N next")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION|TIME", help="Deliver from this time next (90s, 1h, RFC 3339)"),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Deliver from the first stored message next")] = False,
    last: Annotated[bool, typer.Option("--last", help="Deliver from the last message next")] = False,
    yes: Yes = False,
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    """Move a durable: the next message delivered is the one at --seq N, --since, --all or --last.

    Uses the server's consumer reset (nats-server 2.14+); on older servers the durable is deleted and
    made again with the same configuration, starting there (the output says which)."""
    from natsctl.core.errors import UsageError
    from natsctl.core.model import StartKind, StartPosition
    from natsctl.core.timeparse import parse_time

    given = [
        flag for flag, on in (("--seq", seq is not None), ("--since", since), ("--all", all_), ("--last", last)) if on
    ]
    if len(given) != 1:
        raise UsageError(
            "give one of --seq N, --since DURATION|TIME, --all or --last"
            + (f" ({' and '.join(given)} contradict each other)" if given else "")
        )
    if seq is not None:
        start = StartPosition(StartKind.SEQUENCE, sequence=seq)
    elif since:
        start = StartPosition(StartKind.TIME, time=parse_time(since, what="--since"))
    else:
        start = StartPosition(StartKind.ALL if all_ else StartKind.LAST)
    ref = _ref(channel, name, queue)

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        if backend.kind == "stan":
            await admin.reset_durable(ref, start)  # the refusal
        durable = await admin.durable(ref)
        confirm(f"move durable {durable.name}{_group(durable)} of channel {durable.channel} to {given[0]}", yes)
        result = await admin.reset_durable(ref, start)
        if json_:
            emit(result, "json")
        else:
            how = "reset by the server" if result.how == "reset" else "deleted and made again (no consumer reset API)"
            say(
                f"durable {name} of channel {result.durable.channel} {how}: next delivery from sequence {result.sequence}"
            )
        return 0

    run_admin(settings, body)


def _until(text: str) -> datetime:
    from datetime import UTC, timedelta

    from natsctl.core.errors import UsageError
    from natsctl.core.timeparse import parse_duration, parse_time

    if text[:1].isdigit() and "-" not in text:
        try:
            return datetime.now(UTC) + timedelta(seconds=parse_duration(text, what="--until"))
        except UsageError:
            pass
    moment = parse_time(text, what="--until")
    if moment <= datetime.now(UTC):
        raise UsageError(f"--until {text!r} is in the past; give a later time or a duration such as 10m")
    return moment


def pause(
    channel: Channel,
    name: Name,
    queue: Queue = None,
    until: Annotated[
        str, typer.Option("--until", metavar="TIME|DURATION", help="Until this time (RFC 3339) or for this long (10m)")
    ] = "",
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    """Stop deliveries of a durable until a time (JetStream consumer pause, nats-server 2.11+)."""
    from natsctl.core.errors import UsageError

    if not until:
        raise UsageError("give --until TIME|DURATION (e.g. --until 10m)")
    moment = _until(until)
    _pause(settings, _ref(channel, name, queue), moment, json_)


def resume(channel: Channel, name: Name, queue: Queue = None, json_: JsonFlag = False, *, settings: Settings) -> None:
    """Resume deliveries of a paused durable (JetStream, nats-server 2.11+)."""
    _pause(settings, _ref(channel, name, queue), None, json_)


def _pause(settings: Settings, ref: "DurableRef", moment: datetime | None, json_: bool) -> None:
    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        durable = await admin.pause_durable(ref, moment)
        if json_:
            emit(durable, "json")
        elif durable.paused:
            say(f"durable {ref.name} of channel {durable.channel} paused until {durable.pause_until}")
        else:
            say(f"durable {ref.name} of channel {durable.channel} resumed")
        return 0

    run_admin(settings, body)
