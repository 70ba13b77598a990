"""`natsctl pub`: publish one or many messages to a channel, every one confirmed by the server."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import json
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Annotated, BinaryIO, Protocol

import typer

from natsctl.cli.options import connection_options, require_jetstream_for, stream_options
from natsctl.core.model import StreamOptions
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.core.backend import Messages
    from natsctl.core.errors import NatsctlError
    from natsctl.core.model import OutgoingMessage, PublishAck, PublishSummary

PUB_HELP = """Publish to CHANNEL, every message confirmed by the server.

DATA comes from the argument, or from stdin when absent (all of stdin is one message, or one message
per line with --lines). --file PATH reads one message per line from a file. --count N repeats DATA
with templates: {{Count}}, {{ID}} (unique), {{Time}}, {{Unix}}, {{UnixNano}} (natscli's {{.Count}}
style works too). --envelope reads natsctl's JSON envelopes (from `sub --json`) back, binary data
and headers included: an export/import of a channel. With --keep-subject each envelope goes to its
own subject (an export of a stream of several subjects, `replay --stream X --json`): CHANNEL then
names the stream (or a channel or wildcard) every subject must be in.

On JetStream a missing stream for the channel is created (see the creation options) unless
--no-create is given. Exits 10 when any message was not confirmed, naming the first one.

When the event catalog (--catalog, NATSCTL_CATALOG, the context or config, ./natsctl-catalog.yaml)
has a schema for CHANNEL, every message is checked against it (--no-validate skips): from a file
all of them before the first is sent, from a pipe up to the first invalid one; an invalid message
exits 2 naming its line.

Examples:

\b
  natsctl pub ticket:created '{"id": 1}'
  natsctl pub orders --count 100 'order {{Count}} at {{Time}}'
  natsctl pub orders --file events.jsonl
  natsctl replay orders --json > dump.jsonl && natsctl pub orders-copy --file dump.jsonl --envelope
  natsctl replay --stream ORDERS --json > orders.jsonl && natsctl pub ORDERS --envelope --keep-subject -f orders.jsonl"""


def register(app: typer.Typer) -> None:
    app.command("pub", help=PUB_HELP, no_args_is_help=True)(pub)


@stream_options
@connection_options
def pub(
    channel: Annotated[
        str, typer.Argument(metavar="CHANNEL", help="Channel (subject) to publish to", show_default=False)
    ],
    data: Annotated[
        str | None, typer.Argument(metavar="DATA", help="Payload; read from stdin when absent", show_default=False)
    ] = None,
    lines: Annotated[bool, typer.Option("--lines", help="One message per input line (stdin)")] = False,
    file: Annotated[
        str | None, typer.Option("--file", "-f", metavar="FILE", help="Read messages from a file, one per line")
    ] = None,
    envelope: Annotated[bool, typer.Option("--envelope", help="Input lines are natsctl JSON envelopes")] = False,
    keep_subject: Annotated[
        bool,
        typer.Option(
            "--keep-subject",
            help="With --envelope: publish each to its envelope's subject, which must be in CHANNEL (JetStream)",
        ),
    ] = False,
    skip_bad_lines: Annotated[
        bool, typer.Option("--skip-bad-lines", help="Report bad envelope lines and go on")
    ] = False,
    count: Annotated[int, typer.Option("--count", "-c", metavar="N", min=1, help="Publish DATA this many times")] = 1,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", metavar="KEY:VALUE", help="Header KEY:VALUE (repeatable; JetStream only)"),
    ] = None,
    msg_id: Annotated[
        str | None,
        typer.Option(
            "--msg-id", metavar="TEMPLATE", help="Message id template for de-duplication, e.g. '{{Count}}' (JetStream)"
        ),
    ] = None,
    record: Annotated[
        str | None,
        typer.Option(
            "--record", metavar="FILE", help="Write every confirmation (line, sequence) as JSON lines to this file"
        ),
    ] = None,
    no_create: Annotated[bool, typer.Option("--no-create", help="Fail instead of creating a missing stream")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing on success")] = False,
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog",
            metavar="FILE",
            help="Event catalog (channel -> JSON Schema) [env NATSCTL_CATALOG; default ./natsctl-catalog.yaml]",
        ),
    ] = None,
    no_validate: Annotated[
        bool, typer.Option("--no-validate", help="Do not check messages against the channel's schema")
    ] = False,
    *,
    settings: Settings,
    stream_options: StreamOptions,
) -> None:
    from natsctl.cli.run import run

    plan = PublishPlan(
        channel=channel,
        data=data,
        lines=lines,
        file=file,
        envelope=envelope,
        keep_subject=keep_subject,
        skip_bad_lines=skip_bad_lines,
        count=count,
        headers=header or [],
        msg_id=msg_id,
        record=record,
        create=not no_create and not keep_subject,  # --keep-subject: into a stream that exists
        json_out=json_out,
        quiet=quiet,
        catalog=catalog,
        no_validate=no_validate,
    )
    plan.validate()
    run(lambda stop: publish_command(plan, settings, stream_options, stop))


@dataclass
class PublishPlan:
    """What `pub` was asked to do, from its arguments; :meth:`validate` checks it before connecting."""

    channel: str
    data: str | None = None  # DATA, when given as an argument
    lines: bool = False  # one message per stdin line
    file: str | None = None  # --file: one message per line
    envelope: bool = False
    skip_bad_lines: bool = False
    count: int = 1
    headers: list[str] = field(default_factory=list)  # -H KEY:VALUE, as given
    msg_id: str | None = None  # --msg-id template
    record: str | None = None  # --record file
    create: bool = True
    json_out: bool = False
    quiet: bool = False
    keep_subject: bool = False  # --keep-subject: each envelope to its own subject
    catalog: str | None = None  # --catalog: the event catalog (natsctl.contracts.catalog)
    no_validate: bool = False  # --no-validate: no contract check even where the catalog has one

    def validate(self) -> None:
        from natsctl.cli.families import publish_target
        from natsctl.core.errors import UsageError

        publish_target(self.channel, self.keep_subject, self.envelope)
        sources = [self.data is not None, self.file is not None, self.lines]
        if sum(sources) > 1:
            raise UsageError("give DATA, --file or --lines, not more than one of them")
        if self.count > 1 and (self.file or self.lines):
            raise UsageError("--count repeats DATA; it does not go with --file or --lines")
        if self.envelope and not (self.file or self.lines):
            self.lines = True  # envelopes always come one per line
        if self.skip_bad_lines and not self.envelope:
            raise UsageError("--skip-bad-lines goes with --envelope (plain lines are never bad)")


def build_messages(plan: PublishPlan, warn: Callable[[str], None]) -> tuple["Messages", BinaryIO | None]:
    """The messages to publish, lazily, plus the input handle to close afterwards."""
    from natsctl.core.inputs import (
        file_lines,
        is_pipe_or_tty,
        line_maker,
        open_input,
        parse_headers,
        pipe_lines,
        render_template,
        templated_messages,
    )
    from natsctl.core.model import OutgoingMessage

    headers = parse_headers(plan.headers)
    messages: Messages
    source_handle: BinaryIO | None
    if plan.file or plan.lines:
        make = line_maker(
            envelope=plan.envelope,
            headers=headers,
            skip_bad=plan.skip_bad_lines,
            on_skip=warn,
            keep_subject=plan.keep_subject,
        )
        handle = open_input(plan.file) if plan.file else sys.stdin.buffer
        messages = pipe_lines(handle, make) if is_pipe_or_tty(handle) else file_lines(handle, make)
        source_handle = handle if plan.file else None
    elif plan.data is not None:
        messages = templated_messages(plan.data.encode("utf-8", errors="surrogateescape"), headers, plan.count)
        source_handle = None
    else:
        body = sys.stdin.buffer.read()
        messages = (
            templated_messages(body, headers, plan.count)
            if plan.count > 1
            else iter([OutgoingMessage(data=body, headers=headers, source="stdin")])
        )
        source_handle = None
    if plan.msg_id:
        messages = with_msg_ids(messages, plan.msg_id, render_template)
    return messages, source_handle


def with_msg_ids(messages: "Messages", template: str, render: Callable[[str, int], str]) -> "Messages":
    if isinstance(messages, AsyncIterable):
        source = messages

        async def numbered_async() -> AsyncIterator["OutgoingMessage"]:
            n = 0
            async for message in source:
                n += 1
                message.msg_id = render(template, n)
                yield message

        return numbered_async()

    def numbered() -> Iterator["OutgoingMessage"]:
        for n, message in enumerate(messages, start=1):
            message.msg_id = render(template, n)
            yield message

    return numbered()


async def publish_command(plan: PublishPlan, settings: Settings, stream_options: StreamOptions, stop: "Stop") -> int:
    from natsctl.core.errors import ExitCode, NotFound, PublishInterrupted, Unsupported
    from natsctl.core.stderr import say
    from natsctl.opener import open_backend

    entry = None
    if not plan.no_validate:
        from natsctl.cli.contract_io import entry_for

        entry = entry_for(plan.catalog, plan.channel)  # a stat when no catalog is configured
    if entry is None:
        messages, handle = build_messages(plan, lambda line: say(line, "warning"))  # bad input fails before connecting
    else:
        from natsctl.cli.contract_io import checked_input

        messages, handle = checked_input(plan, entry, build_messages, lambda line: say(line, "warning"))
    record = _open_record(plan.record)
    try:
        backend = await open_backend(settings)
    except BaseException:
        _close_all(handle, record)
        raise
    stop.handle()  # connected: a signal now ends the input and lets what was sent be confirmed
    progress = _progress_for(plan)
    try:
        if (plan.headers or plan.msg_id) and not backend.supports_headers:
            raise Unsupported("headers (-H, --msg-id) exist on JetStream only; NATS Streaming messages have none")
        require_jetstream_for(backend, stream_options, plan.create)
        backend.stream_options = stream_options
        source: Messages = _StopInput(messages, stop)
        recorder = None
        if record is not None:
            from natsctl.core.record import Recorder

            recorder = Recorder(record)
            source = recorder.wrap(source)

        def on_ack(ack: "PublishAck") -> None:
            if recorder is not None:
                try:
                    recorder.on_ack(ack)
                except OSError as exc:
                    raise _record_error(plan.record, exc) from None
            progress.advance()

        try:
            summary = await backend.publish(plan.channel, source, create=plan.create, on_ack=on_ack)
            if record is not None:
                try:
                    record.close()  # the last entries are written now: a full disk shows here
                except OSError as exc:
                    raise PublishInterrupted(_record_error(plan.record, exc), summary) from None
        except NotFound as exc:
            if plan.keep_subject:
                raise NotFound(
                    exc.message, hint="--keep-subject imports into a stream that exists: create it first"
                ) from None
            raise
        except PublishInterrupted as exc:
            # Whatever stopped the publish: say first what the server confirmed before it. The runner
            # then handles exc.cause as it would have without a publish in progress.
            _report_partial(plan, exc.summary, exc.cause, backend.supports_headers)
            raise
    finally:
        progress.close()
        _close_all(handle, record)
        await backend.close()
    _print_summary(plan, summary)
    if summary.failed:
        more = f" (and {len(summary.failed) - 1} more)" if len(summary.failed) > 1 else ""
        say(
            f"{len(summary.failed)} of {summary.published + _unsent(summary)} messages not confirmed; first: {summary.failed[0]}{more}{_rerun_hint(plan, summary.failed, backend.supports_headers)}",
            "error",
        )
        return ExitCode.UNCONFIRMED
    return ExitCode.OK


def _open_record(path: str | None) -> IO[str] | None:
    from natsctl.core.errors import UsageError

    if not path:
        return None
    try:
        return open(path, "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write --record {path}: {exc.strerror}") from None


def _close_all(*handles: IO[str] | IO[bytes] | None) -> None:
    for handle in handles:
        if handle is not None:
            try:
                handle.close()
            except OSError:
                pass  # the record's last write is checked on success; here it must not hide the error


def _record_error(path: str | None, exc: OSError) -> "NatsctlError":
    from natsctl.core.errors import NatsctlError

    return NatsctlError(f"cannot write --record {path}: {exc.strerror or exc}")


def _report_partial(plan: PublishPlan, partial: "PublishSummary", error: BaseException, msg_ids: bool) -> None:
    """A publish that failed after the server confirmed messages: what is stored, and where it stopped."""
    from natsctl.core.errors import ConnectionFailed, Timeout, UsageError
    from natsctl.core.stderr import say

    if not partial.confirmed:
        return
    _print_summary(plan, partial)
    if isinstance(error, UsageError) and not partial.failed:
        return  # the error names the bad input line; every message before it is confirmed
    first = ""
    if partial.failed:
        in_doubt = isinstance(error, (ConnectionFailed, Timeout))
        first = (
            f"; first unconfirmed: {partial.failed[0]}{_rerun_hint(plan, partial.failed, msg_ids) if in_doubt else ''}"
        )
    many = "messages" if partial.confirmed != 1 else "message"
    say(f"{partial.confirmed} {many} confirmed before the error{first}", "warning")


def _unsent(summary: "PublishSummary") -> int:
    # Messages refused before sending (over max_payload) are failed but were never "published".
    return max(0, len(summary.failed) + summary.confirmed - summary.published)


# Failures after which the server may hold messages natsctl could not confirm, and publishing stopped.
_IN_DOUBT = (
    "connection lost",
    "no confirmation",
    "publishing stopped",
    "no stream answered",
    "was lost",
    "is gone",
    "lost the NATS Streaming server",  # NATS Streaming
)


def _rerun_hint(plan: PublishPlan, failed: list[str], msg_ids: bool = True) -> str:
    if not any(marker in reason for reason in failed for marker in _IN_DOUBT):
        return ""  # refused messages (too large, over a limit) are simply not stored
    if not msg_ids:
        return "; an unconfirmed message may still be stored (NATS Streaming cannot drop a copy on a rerun)"
    if plan.msg_id:
        return "; rerun the same command: the server drops the copies its --msg-id window already holds"
    return "; an unconfirmed message may still be stored: publish with --msg-id to make a rerun safe"


class _StopInput:
    """Stops reading input once Ctrl-C/SIGTERM arrives; what was sent is still confirmed."""

    def __init__(self, messages: "Messages", stop: "Stop") -> None:
        self.messages = messages
        self.stop = stop

    def __aiter__(self) -> AsyncIterator["OutgoingMessage"]:
        return self._run()

    async def _run(self) -> AsyncIterator["OutgoingMessage"]:
        if isinstance(self.messages, AsyncIterable):
            async for message in self.messages:
                if self.stop.requested:
                    return
                yield message
        else:
            for message in self.messages:
                if self.stop.requested:
                    return
                yield message


class Progress(Protocol):
    def advance(self) -> None: ...

    def close(self) -> None: ...


class _NoProgress:
    def advance(self) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_for(plan: PublishPlan) -> Progress:
    from natsctl.cli.render import stderr_is_terminal

    many = plan.count > 1 or plan.file or plan.lines
    if not many or plan.quiet or not stderr_is_terminal():
        return _NoProgress()
    from natsctl.cli.render.progress import PublishProgress

    return PublishProgress(plan.channel)


def _print_summary(plan: PublishPlan, summary: "PublishSummary") -> None:
    if plan.json_out:
        from dataclasses import asdict

        sys.stdout.write(json.dumps(asdict(summary)) + "\n")
        return
    if plan.quiet or not summary.confirmed:
        return
    where = f"stream {summary.stream}, " if summary.stream else ""
    if summary.confirmed == 1:
        seq = f"sequence {summary.last_sequence}" if summary.last_sequence else "confirmed"
        sys.stdout.write(f"published 1 message to {summary.channel} ({where}{seq})\n")
    else:
        seqs = (
            f"sequences {summary.first_sequence}-{summary.last_sequence}" if summary.last_sequence else "all confirmed"
        )
        dupes = f", {summary.duplicates} duplicates ignored" if summary.duplicates else ""
        sys.stdout.write(f"published {summary.confirmed} messages to {summary.channel} ({where}{seqs}{dupes})\n")
