"""`natsctl sub` and `natsctl replay`: read a channel, write each message out, then ack it."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.families import StreamOpt
from natsctl.cli.options import connection_options, require_jetstream_for, stream_options
from natsctl.core.model import StreamOptions
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.core.model import StartPosition, SubscribeSpec

START = "Start position (choose one)"
MAX_SEQUENCE = 2**64 - 1  # sequences are unsigned 64-bit on both servers
OUTPUT = "Output"

SUB_HELP = """Subscribe to CHANNEL and write each message to stdout, acking it once written.

Start at --new (default), --all, --last, --seq N or --since (90s, 1h, 2026-11-28T10:00:00Z).
--durable NAME keeps the position across runs: a later run with the same name (and, on NATS
Streaming, the same --client-id) continues after the last acked message; a resumed durable keeps its
original start. --queue GROUP shares the messages among every subscriber of the group, each message
to one of them; with --durable too it is a durable queue group.

--exec CMD runs CMD (through sh) once per message with the payload on stdin and acks only when it
exits 0; otherwise the message comes again: on JetStream after the next --backoff step (default
1s,5s,30s, the last step repeating: a quick second try for a passing glitch, then time for a failing
dependency to come back, never a hot loop), on NATS Streaming after --ack-wait (it has no delayed
redelivery). After --max-deliver N deliveries (default: no bound) the message is parked in the
--dead-letter channel (default dead-letter.CHANNEL) with headers saying where it came from and why
(on NATS Streaming a JSON wrapper), then terminated; `natsctl dead-letter ls|redrive` shows it and
sends it back. CMD sees NATSCTL_CHANNEL, NATSCTL_SUBJECT, NATSCTL_SEQ, NATSCTL_REDELIVERED,
NATSCTL_DELIVERIES. natsctl takes one message at a time for --exec, so none waits for the handler
past --ack-wait; on JetStream a handler running longer than --ack-wait is kept alive with
in-progress acks, on NATS Streaming such a message is delivered again after --ack-wait.

On JetStream CHANNEL may also be a stream's name, or a wildcard (orders.*, orders.>) that an
existing stream covers; --stream NAME reads a whole stream. Each message keeps its own subject.

--validate checks each event against the channel's schema in the event catalog (JSON envelopes
gain "valid" and "errors"); --on-invalid skip|stop|dead-letter says what happens to an invalid one
(stop exits 14, before it, leaving it unacked).

Ctrl-C stops cleanly (what was written is acked) and exits 130; SIGTERM exits 143.

Examples:

\b
  natsctl sub ticket:created --all --exit-at-end --json
  natsctl sub orders --durable orders-service --queue orders-service --exec ./handle.sh
  natsctl sub orders --durable billing --exec ./bill.sh --max-deliver 5 --backoff 1s,10s,1m
  natsctl sub orders --since 1h --count 10"""

REPLAY_HELP = """Read CHANNEL from the start (or --seq / --since) to its end and exit; nothing is acked or kept.

Bound it with --until TIME or --to-seq N. Same output and --validate options as `sub`. On JetStream
CHANNEL may also be a stream's name or a wildcard a stream covers, and --stream NAME reads a whole stream.

On JetStream the server pushes to a consumer of this run alone, with flow control: while stdout takes
nothing the server waits (natsctl holds at most its window, up to 32 MB). A message lost on the way or
a consumer gone (a server restart) is noticed, said in one line on stderr, and the replay reads on
from the next message with a new consumer: every message once, in order.

Examples:

\b
  natsctl replay orders --json > orders.jsonl
  natsctl replay orders --since 2026-11-28T10:00:00Z --until 2026-11-28T11:00:00Z --raw
  natsctl replay --stream ORDERS --json > orders.jsonl"""


def register(app: typer.Typer) -> None:
    app.command("sub", help=SUB_HELP, no_args_is_help=True)(sub)
    app.command("replay", help=REPLAY_HELP, no_args_is_help=True)(replay)


FAILING = "When the --exec handler fails"
MaxDeliverOpt = Annotated[
    int | None,
    typer.Option(
        "--max-deliver",
        metavar="N",
        help="Park a message in the dead-letter channel after N failed deliveries [default: no bound]",
        rich_help_panel=FAILING,
        show_default=False,
    ),
]
BackoffOpt = Annotated[
    str | None,
    typer.Option(
        "--backoff",
        metavar="DURATIONS",
        help="JetStream: wait before each redelivery, e.g. 1s,5s,30s (the last repeats) [default: 1s,5s,30s]",
        rich_help_panel=FAILING,
        show_default=False,
    ),
]
ChannelArg = Annotated[
    str | None,
    typer.Argument(
        metavar="CHANNEL",
        help="Channel (subject) to read; also a stream's name, or a wildcard (orders.*, orders.>) a stream covers",
        show_default=False,
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="From the first message stored", rich_help_panel=START)]
NewOpt = Annotated[
    bool, typer.Option("--new", help="Only messages published from now on (default)", rich_help_panel=START)
]
LastOpt = Annotated[bool, typer.Option("--last", help="The last message, then new ones", rich_help_panel=START)]
SeqOpt = Annotated[
    int | None,
    typer.Option("--seq", metavar="N", help="From this channel sequence", rich_help_panel=START, show_default=False),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="DURATION|TIME",
        help="From a time: a duration ago (90s, 1h) or RFC 3339",
        rich_help_panel=START,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="One JSON envelope per message (binary-safe)", rich_help_panel=OUTPUT)
]
RawOpt = Annotated[bool, typer.Option("--raw", help="Payloads only, one per line", rich_help_panel=OUTPUT)]
CountOpt = Annotated[
    int | None,
    typer.Option("--count", "-c", metavar="N", min=1, help="Stop after this many messages", show_default=False),
]
UntilOpt = Annotated[
    str | None, typer.Option("--until", metavar="TIME", help="Stop before the first message after this time")
]
ToSeqOpt = Annotated[
    int | None, typer.Option("--to-seq", metavar="N", help="Stop after this sequence", show_default=False)
]
NoCreateOpt = Annotated[bool, typer.Option("--no-create", help="Fail instead of creating a missing channel")]
CONTRACT = "Event contract (catalog)"
ValidateOpt = Annotated[
    bool,
    typer.Option(
        "--validate", help="Check each event against the channel's schema in the catalog", rich_help_panel=CONTRACT
    ),
]
OnInvalidOpt = Annotated[
    str | None,
    typer.Option(
        "--on-invalid",
        metavar="skip|stop|dead-letter",
        help="With --validate, an invalid event is skipped, stops the read (exit 14) or is parked [default: written, marked]",
        rich_help_panel=CONTRACT,
    ),
]
DeadLetterOpt = Annotated[
    str | None,
    typer.Option(
        "--dead-letter",
        metavar="CHANNEL",
        help="Where messages are parked: out of deliveries (--exec, --max-deliver) or invalid (--on-invalid dead-letter) [default: dead-letter.CHANNEL]",
        rich_help_panel=FAILING,
        show_default=False,
    ),
]
CatalogOpt = Annotated[
    str | None,
    typer.Option(
        "--catalog",
        metavar="FILE",
        help="Event catalog [env NATSCTL_CATALOG; default ./natsctl-catalog.yaml]",
        rich_help_panel=CONTRACT,
    ),
]


@stream_options
@connection_options
def sub(
    channel: ChannelArg = None,
    stream: StreamOpt = None,
    all_: AllOpt = False,
    new: NewOpt = False,
    last: LastOpt = False,
    seq: SeqOpt = None,
    since: SinceOpt = None,
    durable: Annotated[
        str | None,
        typer.Option("--durable", "-d", metavar="NAME", help="Durable name: resume where the last run acked"),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option("--queue", "-q", metavar="GROUP", help="Queue group: share messages with its other members"),
    ] = None,
    ack_wait: Annotated[
        str,
        typer.Option("--ack-wait", metavar="DURATION", help="Redeliver a message not acked within this time (>= 1s)"),
    ] = "30s",
    max_in_flight: Annotated[
        int, typer.Option("--max-in-flight", metavar="N", min=1, help="Messages delivered but not yet acked, at most")
    ] = 1024,
    exec_: Annotated[
        str | None,
        typer.Option("--exec", metavar="CMD", help="Run CMD per message (payload on stdin); ack when it exits 0"),
    ] = None,
    count: CountOpt = None,
    exit_at_end: Annotated[
        bool, typer.Option("--exit-at-end", "-e", help="Exit once the channel is caught up")
    ] = False,
    until: UntilOpt = None,
    to_seq: ToSeqOpt = None,
    json_: JsonOpt = False,
    raw: RawOpt = False,
    unsubscribe: Annotated[
        bool, typer.Option("--unsubscribe", help="On exit delete the durable instead of keeping it")
    ] = False,
    no_create: NoCreateOpt = False,
    max_deliver: MaxDeliverOpt = None,
    backoff: BackoffOpt = None,
    dead_letter: DeadLetterOpt = None,
    validate: ValidateOpt = False,
    on_invalid: OnInvalidOpt = None,
    catalog: CatalogOpt = None,
    *,
    settings: Settings,
    stream_options: StreamOptions,
) -> None:
    from natsctl.cli.contract_io import read_checks
    from natsctl.cli.families import read_target
    from natsctl.cli.run import run

    name, whole_stream = read_target(channel, stream)
    request = ReadRequest(
        channel=name,
        whole_stream=whole_stream,
        start_flags=StartFlags(all_, new, last, seq, since),
        durable=durable,
        queue=queue,
        ack_wait=ack_wait,
        max_in_flight=max_in_flight,
        exec_cmd=exec_,
        count=count,
        stop_at_end=exit_at_end,
        until=until,
        to_seq=to_seq,
        output=_output(json_, raw),
        ack=True,
        unsubscribe=unsubscribe,
        create=not no_create,
        max_deliver=max_deliver,
        backoff=backoff,
        dead_letter=dead_letter,
        # --dead-letter also serves failing --exec handlers: read_checks sees it only when it parks invalid events
        checks=read_checks(
            name, validate, on_invalid, dead_letter if exec_ is None or on_invalid == "dead-letter" else None, catalog
        ),
    )
    spec = request.spec()
    run(lambda stop: read_command(request, spec, settings, stream_options, stop))


@connection_options
def replay(
    channel: ChannelArg = None,
    stream: StreamOpt = None,
    seq: SeqOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    to_seq: ToSeqOpt = None,
    count: CountOpt = None,
    json_: JsonOpt = False,
    raw: RawOpt = False,
    validate: ValidateOpt = False,
    on_invalid: OnInvalidOpt = None,
    dead_letter: DeadLetterOpt = None,
    catalog: CatalogOpt = None,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.contract_io import read_checks
    from natsctl.cli.families import read_target
    from natsctl.cli.run import run

    name, whole_stream = read_target(channel, stream)
    request = ReadRequest(
        channel=name,
        whole_stream=whole_stream,
        start_flags=StartFlags(seq is None and since is None, False, False, seq, since),
        count=count,
        stop_at_end=True,
        until=until,
        to_seq=to_seq,
        output=_output(json_, raw),
        ack=False,
        create=False,
        checks=read_checks(name, validate, on_invalid, dead_letter, catalog),
    )
    spec = request.spec()
    run(lambda stop: read_command(request, spec, settings, StreamOptions(), stop))


def _output(json_: bool, raw: bool) -> str:
    from natsctl.core.errors import UsageError

    if json_ and raw:
        raise UsageError("choose one of --json and --raw")
    return "json" if json_ else "raw" if raw else "text"


@dataclass
class StartFlags:
    all_: bool
    new: bool
    last: bool
    seq: int | None
    since: str | None

    def position(self) -> "StartPosition":
        from natsctl.core.errors import UsageError
        from natsctl.core.model import StartKind, StartPosition
        from natsctl.core.timeparse import parse_time

        chosen = [
            n
            for n, on in (
                ("--all", self.all_),
                ("--new", self.new),
                ("--last", self.last),
                ("--seq", self.seq is not None),
                ("--since", self.since is not None),
            )
            if on
        ]
        if len(chosen) > 1:
            raise UsageError(f"choose one start position, not {' and '.join(chosen)}")
        if self.seq is not None:
            if not 1 <= self.seq <= MAX_SEQUENCE:
                raise UsageError(
                    f"--seq must be 1 or more, not {self.seq}"
                    if self.seq < 1
                    else f"--seq {self.seq} is past the largest sequence"
                )
            return StartPosition(StartKind.SEQUENCE, sequence=self.seq)
        if self.since is not None:
            return StartPosition(StartKind.TIME, time=parse_time(self.since, what="--since"))
        if self.all_:
            return StartPosition(StartKind.ALL)
        if self.last:
            return StartPosition(StartKind.LAST)
        return StartPosition(StartKind.NEW)


@dataclass
class ReadRequest:
    channel: str
    start_flags: StartFlags
    output: str
    ack: bool
    create: bool
    durable: str | None = None
    queue: str | None = None
    ack_wait: str = "30s"
    max_in_flight: int = 1024
    exec_cmd: str | None = None
    count: int | None = None
    stop_at_end: bool = False
    until: str | None = None
    to_seq: int | None = None
    unsubscribe: bool = False
    max_deliver: int | None = None
    backoff: str | None = None
    dead_letter: str | None = None
    whole_stream: bool = False  # --stream NAME
    checks: Any = None  # --validate: natsctl.cli.contract_io.ReadChecks

    def spec(self) -> "SubscribeSpec":
        from natsctl.cli.settings import last_resolution
        from natsctl.core.errors import UsageError
        from natsctl.core.limits import check_subscription
        from natsctl.core.model import SubscribeSpec
        from natsctl.core.names import validate_durable
        from natsctl.core.timeparse import parse_duration, parse_time

        for name, what in ((self.durable, "durable"), (self.queue, "queue group")):
            if name is not None:
                validate_durable(name, what)
        ack_wait = parse_duration(self.ack_wait, what="--ack-wait")
        if ack_wait < 1:
            raise UsageError(f"--ack-wait must be at least 1s, not {self.ack_wait}")
        # The server kind is known from the settings (resolved before this runs): its wire limits
        # are checked now, before connecting.
        resolution = last_resolution()
        kind = resolution.settings.backend_kind if resolution is not None else "jetstream"
        check_subscription(kind, ack_wait=ack_wait, max_in_flight=self.max_in_flight, ack_wait_text=self.ack_wait)
        if self.to_seq is not None and not 1 <= self.to_seq <= MAX_SEQUENCE:
            raise UsageError(f"--to-seq must be between 1 and {MAX_SEQUENCE}, not {self.to_seq}")
        if self.exec_cmd is not None and self.output != "text":
            raise UsageError("--exec hands each payload to the command; it does not go with --json or --raw")
        if self.unsubscribe and not self.durable:
            raise UsageError("--unsubscribe deletes a durable: it needs --durable")
        if self.exec_cmd is not None and not self.exec_cmd.strip():
            raise UsageError("--exec needs a command")
        failing = self.failing_flags(kind)
        return SubscribeSpec(
            channel=self.channel,
            start=self.start_flags.position(),
            durable=self.durable,
            queue=self.queue,
            ack_wait=ack_wait,
            max_in_flight=self.max_in_flight,
            create=self.create,
            ack=self.ack,
            stop_at_end=self.stop_at_end,
            to_sequence=self.to_seq,
            until=parse_time(self.until, what="--until") if self.until else None,
            unsubscribe=self.unsubscribe,
            max_messages=None if self.exec_cmd else self.count,
            exclusive_acks=self.exec_cmd is not None,
            hold=1 if self.exec_cmd else None,
            max_deliver=failing[0],
            backoff=failing[1],
            whole_stream=self.whole_stream,
        )

    def failing_flags(self, kind: str) -> tuple[int | None, tuple[float, ...]]:
        """--max-deliver, --backoff and --dead-letter checked (they need --exec)."""
        from natsctl.core.errors import UsageError

        given = [n for n, v in (("--max-deliver", self.max_deliver), ("--backoff", self.backoff)) if v is not None]
        parks_invalid = self.checks is not None and self.checks.on_invalid == "dead-letter"
        if self.dead_letter is not None and not parks_invalid:
            given.append("--dead-letter")
        if given and self.exec_cmd is None:
            raise UsageError(f"{' and '.join(given)} decide what happens when the --exec handler fails: add --exec CMD")
        if not given and self.exec_cmd is None:
            return None, ()  # nothing to check: the dead-letter module stays unimported (start-up)
        from natsctl.core.deadletter import check_max_deliver, dead_letter_for, parse_backoff

        max_deliver = check_max_deliver(self.max_deliver)
        steps = parse_backoff(self.backoff) if self.backoff is not None else ()
        if self.exec_cmd is not None:
            self.dead_letter = dead_letter_for(self.channel, self.dead_letter)
        if steps and kind == "stan":
            from natsctl.core.stderr import say

            say(
                "NATS Streaming has no delayed redelivery: --backoff is not used, a failed message comes back after --ack-wait",
                "warning",
            )
        return max_deliver, steps


async def read_command(
    request: ReadRequest, spec: "SubscribeSpec", settings: Settings, stream_options: StreamOptions, stop: "Stop"
) -> int:
    from natsctl.core.stderr import say
    from natsctl.opener import open_backend

    backend = await open_backend(settings)
    try:
        require_jetstream_for(backend, stream_options, spec.create or not request.ack)
        backend.stream_options = stream_options
        subscription = await backend.subscribe(spec)
        if getattr(backend, "client_id_generated", False) and spec.durable:  # NATS Streaming only
            client_id = getattr(backend, "client_id", "")
            say(f"client id {client_id} was generated; resume durable {spec.durable!r} with --client-id {client_id}")
        stop.on_stop(subscription.stop)
        checked = writer = None
        if request.checks is not None:
            from natsctl.cli.contract_io import checked_subscription

            checked, writer = checked_subscription(subscription, request, backend)
        try:
            if request.exec_cmd:
                await _consume_with_exec(checked or subscription, request, stop, backend)
            else:
                await _consume_to_stdout(checked or subscription, request.output, stop, writer=writer)
        finally:
            await subscription.close()
        if checked is not None:
            await checked.finish()  # --on-invalid stop: exit 14
    finally:
        await backend.close()
    return 0


async def _consume_to_stdout(subscription: Any, output: str, stop: Any, outlet: Any = None, writer: Any = None) -> None:
    """Write each batch out, and ack exactly the messages the reader has taken (nothing more)."""
    import asyncio

    from natsctl.cli.outlet import AckLedger, open_outlet
    from natsctl.cli.render.messages import TerminalWriter, writer_for

    rendered = _rendered_batches(subscription) if writer is None and output == "json" else None
    if rendered is not None:  # JSON envelopes the subscription wrote itself: the same bytes, sooner
        batches, encode, ack, sizes = rendered, _data_of, subscription.ack_rendered, _sizes_of
    else:
        writer = writer or writer_for(output)
        if isinstance(writer, TerminalWriter):  # a terminal shows what it is given
            async for batch in subscription.batches():
                writer.write_batch(batch)
                await subscription.ack(batch)
            return
        batches, encode, ack, sizes = subscription.batches(), writer.encode, subscription.ack, writer.sizes
    outlet = outlet or open_outlet()
    ledger = AckLedger(sizes)
    follower = asyncio.ensure_future(_ack_as_read(ack, outlet, ledger))
    try:
        ended = await _write_batches(subscription, batches, encode, ack, outlet, ledger, stop.event)
        if ended:
            await _wait_for_reader(outlet, stop.event)
        follower.cancel()
        await ack(ledger.settle(outlet.consumed()))
        _tell_what_was_not_taken(subscription, outlet, ledger)
        outlet.raise_if_failed()
    finally:
        follower.cancel()
        outlet.close()


def _rendered_batches(subscription: Any) -> Any:
    """The subscription's own JSON envelope batches, or None (then a Message each, and JsonWriter).

    Looked up on the class: a wrapper that checks messages (--validate) forwards attributes to the
    subscription it wraps, and must not have its checks skipped.
    """
    render = getattr(type(subscription), "rendered_batches", None)
    return render(subscription) if render is not None else None


def _data_of(batch: Any) -> bytes:
    return batch.data


def _sizes_of(batch: Any) -> list[int]:
    return batch.sizes()


async def _write_batches(
    subscription: Any, batches: Any, encode: Any, ack: Any, outlet: Any, ledger: Any, stop: Any
) -> bool:
    """True when the subscription ended by itself; False when the reader, an error or a signal cut it."""
    async for batch in batches:
        data = encode(batch)
        ledger.add(batch, len(data))
        await outlet.write(data, stop)
        await ack(ledger.settle(outlet.consumed(), whole_batches=True))
        if outlet.broken or outlet.error or stop.is_set():
            subscription.stop()
            return False
    return True


async def _ack_as_read(ack: Any, outlet: Any, ledger: Any) -> None:
    """While written messages wait in the pipe, ack them as the reader takes them.

    Without it they would stay unacked while the subscription waits for more, and a reader that is
    caught up would see them again after the ack wait.
    """
    import asyncio

    from natsctl.cli.outlet import DRAIN_POLL

    while True:
        await ledger.grown.wait()
        await asyncio.sleep(DRAIN_POLL)
        taken = ledger.settle(outlet.consumed(), whole_batches=True)
        if not ledger.pending:
            ledger.grown.clear()
        if taken:
            await ack(taken)


async def _wait_for_reader(outlet: Any, stop: Any) -> None:
    """At the end, let the reader empty the pipe, unless it leaves or a signal comes."""
    from natsctl.cli.outlet import wait_while_unread

    while outlet.unread() and not outlet.reader_gone() and not stop.is_set():
        await wait_while_unread(outlet, stop)


def _tell_what_was_not_taken(subscription: Any, outlet: Any, ledger: Any) -> None:
    from natsctl.cli.run import note

    left = ledger.unsettled()
    if left and subscription.spec.durable and (outlet.broken or outlet.error):
        note(
            f"stdout stopped taking messages (its reader went away): {left} messages it did not read stay unacked and will be delivered again"
        )


async def _consume_with_exec(subscription: Any, request: ReadRequest, stop: Any, backend: Any = None) -> None:
    from natsctl.cli.failures import FailedMessages, consumer_label

    failures = FailedMessages(backend, subscription, request.dead_letter or "", consumer_label(subscription.spec))
    done = 0
    async for batch in subscription.batches():
        for message in batch:
            if stop.requested:
                return
            failures.count(message)
            if failures.spent(message):
                await failures.give_up(
                    message, "max deliveries reached (natsctl stopped before it parked this message)"
                )
                continue
            outcome = await _handle(subscription, request.exec_cmd or "", message)
            code = outcome.code
            if code == 0:
                await subscription.ack([message])
                done += 1
                if request.count is not None and done >= request.count:
                    subscription.stop()
                    return
            else:
                await failures.failed(message, outcome.reason(), outcome.short())


async def _handle(subscription: Any, command: str, message: Any) -> Any:
    """Run the handler; while it runs past half the ack wait, tell the server it is still at work."""
    import asyncio

    handler = asyncio.ensure_future(_run_exec(command, message))
    while not handler.done():
        await asyncio.wait({handler}, timeout=subscription.spec.ack_wait / 2)
        if not handler.done():
            await subscription.in_progress(message)
    return handler.result()


async def _run_exec(command: str, message: Any) -> Any:
    from natsctl.cli.failures import run_handler

    return await run_handler(command, message)
