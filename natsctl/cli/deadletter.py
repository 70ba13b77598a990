"""`natsctl dead-letter ls|redrive|collect`: parked messages looked at, sent back, and collected from
consumers natsctl did not create (the parking contract is in natsctl/core/deadletter.py)."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.monitor import JsonFlag, Output
from natsctl.cli.options import connection_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.core.deadletter import ParkedCopy

GROUP_HELP = """Dead letters: messages a handler could not process, parked with the reason.

`sub --exec CMD --max-deliver N` parks a message after N failed deliveries in the dead-letter
channel (default dead-letter.CHANNEL; JetStream: with Natsctl-Dl-* headers, NATS Streaming: in a
JSON wrapper); `collect` does the same for consumers natsctl did not create (JetStream); `ls` shows
what is parked; `redrive` sends it back (JetStream)."""

LS_HELP = """The messages parked for CHANNEL (the channel they came from): position in the dead-letter
channel (SEQ, what `redrive --seq` takes), original sequence, deliveries, consumer, reason, times, size.

JSON (-o json): a list of {"seq", "channel", "channel_seq", "subject", "deliveries", "consumer",
"reason", "published", "parked_at", "size", "id"}. A dead-letter channel that does not exist holds
nothing: an empty list. On NATS Streaming copies of one parking (natsctl stopped between parking and
ack) are shown once.

Examples:

\b
  natsctl dead-letter ls orders
  natsctl dead-letter ls orders -o json | jq '.[].reason'"""

REDRIVE_HELP = """Send parked messages of CHANNEL back: each is published again to the channel it came from
(or --to CHANNEL) with its payload and headers, confirmed by the server, and only then removed from
the dead-letter channel. JetStream only (NATS Streaming cannot remove a stored message).

Each republished message carries the message id natsctl-redrive:<dead-letter channel>:<seq>, so a
redrive interrupted at any point and run again sends nothing twice within the channel's duplicate
window (2 minutes by default); an original Nats-Msg-Id is replaced by it. A --seq that is not parked
fails before anything is sent (exit 7).

Examples:

\b
  natsctl dead-letter redrive orders --seq 4 --seq 9
  natsctl dead-letter redrive orders --all --to orders-retry"""

COLLECT_HELP = """Park the messages that consumers natsctl did not create gave up on (JetStream only): runs as
a sidecar, reads the server's max-deliveries and terminated advisories for the consumers of
CHANNEL's stream (or only --durable NAME ...), fetches each message by its stream sequence and parks
it in the dead-letter channel with the reason ("max deliveries" or the terminate's reason).

The advisories are captured in a stream natsctl creates on the first run
(NATSCTL_ADVISORIES_<stream>, kept 7 days) and read through a durable consumer: a collector that
stops and starts again resumes where it was and misses nothing published meanwhile. What the
consumers gave up before the first run was not captured: natsctl names the consumers with
redelivered messages, where to look. Messages natsctl's own `sub` parked are skipped (their
terminate says so); parking twice is prevented by the parking's message id.

Examples:

\b
  natsctl dead-letter collect orders
  natsctl dead-letter collect orders --durable billing --durable shipping
  natsctl dead-letter collect orders --exit-at-end --json"""

ChannelArg = Annotated[
    str, typer.Argument(metavar="CHANNEL", help="The channel the messages came from", show_default=False)
]
DeadLetterOpt = Annotated[
    str | None,
    typer.Option(
        "--dead-letter",
        metavar="NAME",
        help="Dead-letter channel [default: dead-letter.CHANNEL]",
        show_default=False,
    ),
]


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="dead-letter", help=GROUP_HELP, no_args_is_help=True)
    group.command("ls", help=LS_HELP, no_args_is_help=True)(dead_letter_ls)
    group.command("redrive", help=REDRIVE_HELP, no_args_is_help=True)(dead_letter_redrive)
    group.command("collect", help=COLLECT_HELP, no_args_is_help=True)(dead_letter_collect)
    app.add_typer(group, name="dead-letter")


# --- ls ----------------------------------------------------------------------------------------------


@connection_options
def dead_letter_ls(
    channel: ChannelArg,
    dead_letter: DeadLetterOpt = None,
    output: Output = None,
    json_: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.render.tables import output_format
    from natsctl.cli.run import run
    from natsctl.core.deadletter import dead_letter_for
    from natsctl.core.names import validate_channel

    validate_channel(channel)
    dead = dead_letter_for(channel, dead_letter)
    fmt = output_format(output, json_)

    async def command(stop: "Stop") -> int:
        copies = await read_parked(dead, settings, stop)
        rows = [c.parked for c in copies if not dead_letter or c.parked.channel in (channel, "")]
        _emit_parked(rows, fmt)
        return 0

    run(command)


async def read_parked(dead_letter: str, settings: Settings, stop: "Stop") -> list["ParkedCopy"]:
    """Every message of the dead-letter channel that natsctl parked, in order (none: the channel is missing)."""
    from natsctl.core.deadletter import read_parked as parse
    from natsctl.core.errors import NotFound
    from natsctl.core.model import StartKind, StartPosition, SubscribeSpec
    from natsctl.opener import open_backend

    spec = SubscribeSpec(
        channel=dead_letter, start=StartPosition(StartKind.ALL), ack=False, stop_at_end=True, create=False
    )
    copies: list[ParkedCopy] = []
    ids: set[str] = set()
    backend = await open_backend(settings)
    try:
        try:
            subscription = await backend.subscribe(spec)
        except NotFound:
            return []
        stop.on_stop(subscription.stop)
        try:
            async for batch in subscription.batches():
                for message in batch:
                    copy = parse(message)
                    if copy is None or (copy.parked.id and copy.parked.id in ids):
                        continue
                    ids.add(copy.parked.id)
                    copies.append(copy)
        finally:
            await subscription.close()
    finally:
        await backend.close()
    return copies


def _emit_parked(rows: list[Any], fmt: str) -> None:
    from natsctl.cli.render.tables import VIEWS, Column, count, emit, human_bytes
    from natsctl.core.deadletter import Parked

    VIEWS.setdefault(
        Parked,
        [
            Column("SEQ", lambda p: str(p.seq), numeric=True),
            Column("CHANNEL", lambda p: p.channel),
            Column("CHANNEL SEQ", lambda p: str(p.channel_seq), numeric=True),
            Column("DELIVERIES", lambda p: count(p.deliveries), numeric=True),
            Column("CONSUMER", lambda p: p.consumer or "-"),
            Column("REASON", lambda p: p.reason if len(p.reason) <= 60 else p.reason[:57] + "..."),
            Column("PARKED AT", lambda p: p.parked_at or "-"),
            Column("SIZE", lambda p: human_bytes(p.size), numeric=True),
        ],
    )
    if fmt == "table" and not rows:
        from natsctl.core.stderr import say

        say("nothing parked")
        return
    emit(rows, fmt)


# --- redrive -----------------------------------------------------------------------------------------


@connection_options
def dead_letter_redrive(
    channel: ChannelArg,
    seq: Annotated[
        list[str] | None,
        typer.Option("--seq", metavar="N", help="The parked message at SEQ (as `ls` shows it); repeatable"),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every message parked for CHANNEL")] = False,
    to: Annotated[
        str | None,
        typer.Option("--to", metavar="CHANNEL", help="Publish here instead of the channel each came from"),
    ] = None,
    dead_letter: DeadLetterOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print what was sent back as JSON")] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run
    from natsctl.core.deadletter import dead_letter_for
    from natsctl.core.errors import UsageError
    from natsctl.core.names import validate_channel

    validate_channel(channel)
    dead = dead_letter_for(channel, dead_letter)
    if to is not None:
        validate_channel(to)
        if to == dead:
            raise UsageError("--to names the dead-letter channel itself: give the channel to send the messages to")
    wanted = sorted({_sequence(text) for text in seq or []})
    if bool(wanted) == all_:
        raise UsageError("choose --seq N (repeatable) or --all")
    if any(n < 1 for n in wanted):
        raise UsageError(f"--seq must be 1 or more, not {min(wanted)}")
    if settings.backend_kind == "stan":
        from natsctl.core.errors import Unsupported

        raise Unsupported(
            "redrive exists on JetStream only: NATS Streaming cannot remove a stored message "
            "('dead-letter ls -o json' gives the payloads to publish again)"
        )
    run(lambda stop: redrive_command(channel, dead, wanted, to, settings, json_, stop))


def _fault_point(sent: int) -> None:
    """``NATSCTL_FAULT=pause-after-redrive``: stop after the republish, before the parked copies are removed."""
    import os
    import time

    if os.environ.get("NATSCTL_FAULT") == "pause-after-redrive":
        from natsctl.core.stderr import say

        say(f"fault injection (NATSCTL_FAULT=pause-after-redrive): {sent} sent back, none removed yet")
        while True:
            time.sleep(3600)  # until killed


def _sequence(text: str) -> int:
    from natsctl.core.errors import UsageError

    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--seq takes a sequence number, not {text!r}") from None
    if value < 1:
        raise UsageError(f"--seq must be 1 or more, not {value}")
    return value


async def redrive_command(
    channel: str, dead: str, wanted: list[int], to: str | None, settings: Settings, json_: bool, stop: "Stop"
) -> int:
    import json
    import sys

    from natsctl.core.deadletter import redrive_id
    from natsctl.core.errors import NotFound, Unconfirmed
    from natsctl.core.model import OutgoingMessage, PublishAck
    from natsctl.core.stderr import say
    from natsctl.opener import open_backend

    stop.handle()
    copies = [c for c in await read_parked(dead, settings, stop) if c.parked.channel == channel]
    if wanted:
        by_seq = {c.parked.seq: c for c in copies}
        missing = [n for n in wanted if n not in by_seq]
        if missing:
            shown = ", ".join(str(n) for n in missing[:10])
            raise NotFound(
                f"nothing parked for {channel!r} at {'sequence' if len(missing) == 1 else 'sequences'} {shown} of {dead!r}",
                hint=f"'natsctl dead-letter ls {channel}' lists what is parked; nothing was sent",
            )
        copies = [by_seq[n] for n in wanted]
    done: list[dict[str, Any]] = []
    backend = await open_backend(settings)
    try:
        by_target: dict[str, list[ParkedCopy]] = {}
        for copy in copies:
            by_target.setdefault(to or copy.parked.channel, []).append(copy)
        for target, group in by_target.items():
            if stop.requested:
                break
            acks: list[PublishAck] = []
            outgoing = [
                OutgoingMessage(
                    data=c.data, headers=c.headers, msg_id=redrive_id(dead, c.parked.seq), source=f"seq {c.parked.seq}"
                )
                for c in group
            ]
            summary = await backend.publish(target, outgoing, create=False, on_ack=acks.append)
            _fault_point(len(acks))
            for ack in acks:
                parked = group[ack.index].parked
                await backend.delete_stored(dead, parked.seq)
                done.append(
                    {
                        "seq": parked.seq,
                        "channel": target,
                        "channel_seq": ack.sequence,
                        "original_seq": parked.channel_seq,
                        "duplicate": ack.duplicate,
                    }
                )
            if summary.failed:
                raise Unconfirmed(
                    f"{len(summary.failed)} parked messages were not confirmed by {target!r} and stay parked "
                    f"(first: {summary.failed[0]}); {len(done)} were sent back"
                )
    finally:
        await backend.close()
    if json_:
        sys.stdout.write(json.dumps({"dead_letter": dead, "redriven": done}) + "\n")
    targets = sorted({d["channel"] for d in done})
    say(
        f"sent {len(done)} parked messages back to {', '.join(repr(t) for t in targets) or repr(channel)}; removed from {dead!r}"
    )
    return 0


# --- collect -----------------------------------------------------------------------------------------


@connection_options
def dead_letter_collect(
    channel: ChannelArg,
    durable: Annotated[
        list[str] | None,
        typer.Option("--durable", "-d", metavar="NAME", help="Only this consumer's (repeatable) [default: all]"),
    ] = None,
    dead_letter: DeadLetterOpt = None,
    exit_at_end: Annotated[
        bool, typer.Option("--exit-at-end", "-e", help="Exit once every captured advisory is handled")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="One JSON object per parked message on stdout")] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run
    from natsctl.core.deadletter import dead_letter_for
    from natsctl.core.names import validate_channel, validate_durable

    validate_channel(channel)
    dead = dead_letter_for(channel, dead_letter)
    for name in durable or []:
        validate_durable(name)
    if settings.backend_kind == "stan":
        from natsctl.core.errors import Unsupported

        raise Unsupported(
            "dead-letter collect exists on JetStream only: NATS Streaming has no advisories "
            "(use 'sub --exec CMD --max-deliver N', which parks on both)"
        )
    run(lambda stop: collect_command(channel, dead, list(durable or []), exit_at_end, json_, settings, stop))


async def collect_command(
    channel: str, dead: str, durables: list[str], exit_at_end: bool, json_: bool, settings: Settings, stop: "Stop"
) -> int:
    import json
    import sys

    from natsctl.core.deadletter import NATSCTL_TERM_REASON, park, read_advisory
    from natsctl.core.errors import NotFound
    from natsctl.core.stderr import say
    from natsctl.core.timeparse import format_time
    from natsctl.opener import open_backend

    backend: Any = await open_backend(settings)
    parked = skipped = gone = 0
    try:
        feed = await backend.advisory_feed(channel, durables, exit_at_end=exit_at_end)
        subscription = feed.subscription
        stop.on_stop(subscription.stop)
        if feed.created:
            states = [s for s in await backend.consumer_states(feed.stream) if not durables or s.name in durables]
            behind = [
                f"{s.name} ({s.redelivered} redelivered, {s.ack_pending} unacked)" for s in states if s.redelivered
            ]
            say(
                f"capturing the advisories of stream {feed.stream!r} from now on (stream {feed.advisory_stream}); "
                "what its consumers gave up before was not captured"
                + (
                    f": consumers with redelivered messages: {', '.join(behind)}"
                    if behind
                    else ": no consumer has redelivered messages"
                )
            )
        else:
            say(f"resuming: advisories of stream {feed.stream!r} are captured since {format_time(feed.since)}")
        try:
            async for batch in subscription.batches():
                for message in batch:
                    advisory = read_advisory(message.subject, message.data)
                    if (
                        advisory is None
                        or (durables and advisory.consumer not in durables)
                        or (advisory.kind == "terminated" and advisory.reason.startswith(NATSCTL_TERM_REASON))
                    ):
                        skipped += 1
                        await subscription.ack([message])
                        continue
                    try:
                        original = await backend.stored_message(channel, advisory.stream_seq)
                    except NotFound:
                        gone += 1
                        say(
                            f"sequence {advisory.stream_seq} ({advisory.parking_reason()}) is no longer in the stream: not parked",
                            "warning",
                        )
                        await subscription.ack([message])
                        continue
                    original.deliveries = advisory.deliveries
                    original.redelivered = advisory.deliveries > 1
                    stored = await park(
                        backend, dead, original, reason=advisory.parking_reason(), consumer=advisory.consumer
                    )
                    await subscription.ack([message])
                    parked += 1
                    if json_:
                        line = {
                            "channel": channel,
                            "channel_seq": advisory.stream_seq,
                            "consumer": advisory.consumer,
                            "deliveries": advisory.deliveries,
                            "reason": advisory.parking_reason(),
                            "dead_letter": dead,
                            "duplicate": not stored,
                        }
                        sys.stdout.write(json.dumps(line) + "\n")
                        sys.stdout.flush()
                    else:
                        say(f"parked sequence {advisory.stream_seq} in {dead!r}: {advisory.parking_reason()}")
        finally:
            await subscription.close()
    finally:
        await backend.close()
    say(f"collected {parked} dead letters into {dead!r}" + (f"; {gone} were gone from the stream" if gone else ""))
    return 0
