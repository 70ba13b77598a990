"""`natsctl channel add|info|edit|purge|rm|get|rm-msg`: a channel's lifecycle.

``natsctl channel NAME`` is ``natsctl channel info NAME`` (the group inserts ``info`` when the first
word is no subcommand). On JetStream a channel is the stream that holds its subject; on NATS
Streaming the protocol can create a channel and read it, and the rest is server configuration.
"""

# No "from __future__ import annotations": Typer reads these signatures through the options decorators.
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.lazy import PlainGroup
from natsctl.cli.manage_common import JsonFlag, Output, Yes, confirm, emit, output_format, run_admin, say
from natsctl.cli.monitor import FailOnLag, FailOnStalled, FailOnUnacked
from natsctl.cli.options import _STREAM_PARAMS, _with_params, connection_options, monitor_options, stream_options
from natsctl.core.model import StreamOptions
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.core.backend import Backend
    from natsctl.core.manage import ChannelAdmin
    from natsctl.monitor.gates import Gates

HELP = """Manage a channel: add, info, edit, purge, rm, get, rm-msg.

`natsctl channel NAME` shows the channel (same as `channel info NAME`). Destructive subcommands
(edit, purge, rm, rm-msg) ask on a terminal; elsewhere they need --yes, and without it they say what
they would do and exit 2. NATS Streaming can add, show and read a channel; its limits, purges and
deletions are server settings (store_limits), which natsctl names when it refuses."""

Channel = Annotated[str, typer.Argument(metavar="CHANNEL", help="Channel (subject) name")]


class ChannelGroup(PlainGroup):
    """`channel NAME ...` runs `channel info NAME ...` when NAME is no subcommand (values converted
    without pydantic, as natsctl/cli/lazy.py does for every group)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["info", *args]
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="channel", help=HELP, cls=ChannelGroup, no_args_is_help=True)
    group.command("add", no_args_is_help=True)(stream_options(connection_options(add)))
    group.command("info", no_args_is_help=True)(monitor_options(info))
    group.command("edit", no_args_is_help=True)(edit_options(connection_options(edit)))
    group.command("purge", no_args_is_help=True)(connection_options(purge))
    group.command("rm", no_args_is_help=True)(connection_options(rm))
    group.command("get", no_args_is_help=True)(connection_options(get))
    group.command("rm-msg", no_args_is_help=True)(connection_options(rm_msg))
    app.add_typer(group, name="channel")


# -- add / info ------------------------------------------------------------------------------------


def add(channel: Channel, json_: JsonFlag = False, *, settings: Settings, stream_options: StreamOptions) -> None:
    """Create CHANNEL without publishing (JetStream: a stream for it, shaped by the creation flags).

    On NATS Streaming a channel exists once something subscribes or publishes to it: natsctl
    subscribes for new messages and leaves, which creates it. An existing channel is left as it is."""

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        details = await admin.add_channel(channel, stream_options)
        if json_:
            emit(details, "json")
            return 0
        where = f" (stream {details.stream})" if details.stream else ""
        if details.created:
            say(f"channel {channel}{where} created")
        elif details.kind == "channel":
            say(f"channel {channel} is there (NATS Streaming creates a channel when it is first used)")
        else:
            say(f"channel {channel}{where} exists already, left as it is")
        return 0

    run_admin(settings, body)


def info(
    channel: Channel,
    output: Output = None,
    json_: JsonFlag = False,
    fail_on_lag: FailOnLag = None,
    fail_on_unacked: FailOnUnacked = None,
    fail_on_stalled: FailOnStalled = None,
    *,
    settings: Settings,
) -> None:
    """Show CHANNEL: JetStream: the stream's configuration, state and durables; NATS Streaming: its
    monitoring view (messages, subscriptions and their lag).

    Pointed at a monitoring port only (-m URL, no -s), the monitoring view is shown on JetStream too.
    --fail-on-lag, --fail-on-unacked and --fail-on-stalled read the monitoring view and exit 13 naming
    every subscription of the channel over them (see `natsctl subs --help`)."""
    from natsctl.monitor.gates import parse_gates

    fmt = output_format(output, json_)
    gates = parse_gates(fail_on_lag, fail_on_unacked, fail_on_stalled, None)
    if settings.cluster_id or _monitor_only(settings) or gates.on:
        return _monitoring_view(channel, fmt, settings, gates)

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        from natsctl.cli.render.manage import details_table

        details = await admin.channel_details(channel)
        emit(details, fmt, lambda: details_table(details))
        return 0

    run_admin(settings, body)


def _monitor_only(settings: Settings) -> bool:
    from natsctl.core.settings import DEFAULT_SERVER

    return bool(settings.monitor_urls) and settings.servers == [DEFAULT_SERVER]


def _monitoring_view(channel: str, fmt: str, settings: Settings, gates: "Gates") -> None:
    from natsctl.cli.monitor import _run
    from natsctl.cli.render.tables import channel_table
    from natsctl.monitor import api

    async def fetch(client: Any) -> Any:
        return await api.channel(client, channel)

    after = (lambda data: gates.check(data.subscriptions)) if gates.on else None
    _run(settings, gates.gated(fetch, lambda data: data.subscriptions), fmt, channel_table, after=after)


# -- edit ------------------------------------------------------------------------------------------

# The creation flags that a stream can change (not --storage), given or not.
edit_options = _with_params({k: v for k, v in _STREAM_PARAMS.items() if k != "storage"}, "limits", dict)


def _changes(limits: dict[str, Any]) -> dict[str, Any]:
    from natsctl.core.errors import UsageError
    from natsctl.core.timeparse import parse_duration

    changes: dict[str, Any] = {}
    for name in ("replicas", "max_msgs", "max_bytes"):
        if limits.get(name) is not None:
            changes[name] = limits[name]
    if limits.get("max_age") is not None:
        changes["max_age"] = parse_duration(limits["max_age"], what="--max-age")
    if limits.get("dupe_window") is not None:
        changes["duplicate_window"] = parse_duration(limits["dupe_window"], what="--dupe-window")
    if limits.get("discard") is not None:
        if limits["discard"] not in ("old", "new"):
            raise UsageError(f"--discard must be old or new, not {limits['discard']!r}")
        changes["discard"] = limits["discard"]
    if not changes:
        raise UsageError(
            "nothing to change: give --max-msgs, --max-bytes, --max-age, --discard, --dupe-window or --replicas"
        )
    return changes


def edit(
    channel: Channel,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the difference, change nothing")] = False,
    yes: Yes = False,
    json_: JsonFlag = False,
    *,
    settings: Settings,
    limits: dict[str, Any],
) -> None:
    """Change CHANNEL's limits or replicas (JetStream), showing the difference first (--dry-run: only that)."""
    changes = _changes(limits)

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        from natsctl.cli.render.manage import edit_lines
        from natsctl.cli.render.tables import write

        plan = await admin.edit_channel(channel, changes, apply=False)
        if dry_run or not plan.changes:
            emit(plan, "json") if json_ else write(edit_lines(plan))
            return 0
        listed = edit_lines(plan).replace("\n", ", ")
        confirm(f"change {listed} of channel {plan.channel} (stream {plan.stream})", yes)
        result = await admin.edit_channel(channel, changes, apply=True)
        if json_:
            emit(result, "json")
        else:
            write(edit_lines(result))
            say(f"channel {result.channel} (stream {result.stream}) changed")
        return 0

    run_admin(settings, body)


# -- purge / rm ------------------------------------------------------------------------------------


def purge(
    channel: Channel,
    seq: Annotated[
        int | None, typer.Option("--seq", metavar="N", min=1, help="Purge the messages below sequence N")
    ] = None,
    keep: Annotated[int | None, typer.Option("--keep", metavar="N", min=0, help="Keep the last N messages")] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", metavar="SUBJECT", help="Only the messages of this subject")
    ] = None,
    yes: Yes = False,
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    """Remove messages from CHANNEL: all of them, those below --seq N, all but the last --keep N, or
    only those of --subject (JetStream; NATS Streaming drops messages by its store limits)."""
    from natsctl.core.errors import UsageError

    if seq is not None and keep is not None:
        raise UsageError("--seq and --keep contradict each other: give one")

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        if backend.kind == "stan":
            await admin.purge_channel(channel)  # the refusal, naming the server settings
        details = await admin.channel_details(channel)
        which = (
            f"the messages below sequence {seq}"
            if seq is not None
            else f"all but the last {keep} messages"
            if keep is not None
            else f"all {details.messages} messages"
        )
        if subject is not None:
            which += f" of subject {subject}"
        confirm(f"purge {which} of channel {details.channel} (stream {details.stream})", yes)
        result = await admin.purge_channel(channel, below=seq, keep=keep, subject=subject)
        if json_:
            emit(result, "json")
        else:
            say(
                f"purged {result.purged} messages of channel {result.channel}; {result.messages} left "
                f"(first sequence {result.first_seq}, last {result.last_seq})"
            )
        return 0

    run_admin(settings, body)


def rm(channel: Channel, yes: Yes = False, json_: JsonFlag = False, *, settings: Settings) -> None:
    """Delete CHANNEL and every message in it (JetStream: its stream, with its durables)."""

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        if backend.kind == "stan":
            await admin.remove_channel(channel)
        details = await admin.channel_details(channel)
        subjects = ", ".join(details.subjects)
        confirm(
            f"delete channel {details.channel}: stream {details.stream} (subjects {subjects}) with its "
            f"{details.messages} messages and {details.consumers} durables",
            yes,
        )
        removed = await admin.remove_channel(channel)
        if json_:
            emit(removed, "json")
        else:
            say(f"channel {removed.channel} deleted (stream {removed.stream})")
        return 0

    run_admin(settings, body)


# -- messages --------------------------------------------------------------------------------------


def get(
    channel: Channel,
    seq: Annotated[int | None, typer.Option("--seq", metavar="N", min=1, help="The message at sequence N")] = None,
    last_for: Annotated[
        str | None, typer.Option("--last-for", metavar="SUBJECT", help="The last message of SUBJECT")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="A JSON envelope, as `sub --json` writes")] = False,
    raw: Annotated[bool, typer.Option("--raw", help="The payload only")] = False,
    *,
    settings: Settings,
) -> None:
    """Write one message of CHANNEL to stdout, as `sub` writes it: --seq N, or --last-for SUBJECT."""
    from natsctl.core.errors import UsageError

    if (seq is None) == (last_for is None):
        raise UsageError("give one of --seq N or --last-for SUBJECT")
    if json_ and raw:
        raise UsageError("--json and --raw contradict each other: give one")

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        from natsctl.cli.render.messages import writer_for

        message = await admin.get_message(channel, sequence=seq, last_for=last_for)
        writer_for("json" if json_ else "raw" if raw else "text").write_batch([message])
        return 0

    run_admin(settings, body)


def rm_msg(
    channel: Channel,
    seq: Annotated[int, typer.Argument(metavar="SEQ", min=1, help="Sequence of the message to delete")],
    yes: Yes = False,
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    """Delete the message at sequence SEQ of CHANNEL (JetStream)."""

    async def body(admin: "ChannelAdmin", backend: "Backend") -> int:
        if backend.kind == "stan":
            await admin.remove_message(channel, seq)
        message = await admin.get_message(channel, sequence=seq)  # NotFound (7) when there is none
        confirm(f"delete message {message.sequence} of channel {channel}", yes)
        removed = await admin.remove_message(channel, seq)
        if json_:
            emit(removed, "json")
        else:
            say(f"message {seq} of channel {removed.channel} deleted")
        return 0

    run_admin(settings, body)
