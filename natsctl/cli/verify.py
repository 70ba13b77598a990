"""`natsctl verify CHANNEL --against FILE`: is every message `pub --record` confirmed still there?"""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from natsctl.cli.families import StreamOpt
from natsctl.cli.options import connection_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.core.record import Entry, Report

VERIFY_HELP = """Check that CHANNEL holds every message a `natsctl pub --record FILE` run confirmed:
each recorded line present exactly once, at its sequence, with its payload (sha256), in input order.

The channel is read from the first recorded sequence to its end; nothing is acked or kept. A
payload stored more often than the record has lines with it counts as duplicated, so verify a
channel that only the recorded publishes wrote to from that sequence on.

Exit codes: 0 all present once and in order; 12 something lost, changed, duplicated or out of
order (the report says which lines); 2 an unreadable record; 3/7/9 the channel could not be read.

Examples:

\b
  natsctl pub orders --file events.txt --msg-id '{{Count}}' --record orders.rec
  natsctl verify orders --against orders.rec
  natsctl verify orders --against orders.rec --json"""


def register(app: typer.Typer) -> None:
    app.command("verify", help=VERIFY_HELP, no_args_is_help=True)(verify)


@connection_options
def verify(
    channel: Annotated[
        str | None,
        typer.Argument(
            metavar="CHANNEL",
            help="Channel the record was published to (or a stream's name, or a wildcard a stream covers)",
            show_default=False,
        ),
    ] = None,
    stream: StreamOpt = None,
    against: Annotated[
        str | None,
        typer.Option("--against", metavar="FILE", help="Record file written by pub --record", show_default=False),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.families import read_target
    from natsctl.cli.run import run
    from natsctl.core.errors import UsageError

    name, whole_stream = read_target(channel, stream)
    if against is None:
        raise UsageError("verify needs --against FILE (a record written by pub --record)")
    entries = _load(against)
    run(lambda stop: verify_command(name, entries, settings, json_out, stop, whole_stream))


def _load(path: str) -> list["Entry"]:
    from natsctl.core.errors import UsageError
    from natsctl.core.record import read_record

    try:
        with open(path, encoding="utf-8", errors="strict") as handle:
            return read_record(handle, path)
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not a natsctl pub --record file (not UTF-8 text)") from None
    except OSError as exc:
        raise UsageError(f"cannot read --against {path}: {(exc.strerror or type(exc).__name__).lower()}") from None


async def verify_command(
    channel: str, entries: list["Entry"], settings: Settings, json_out: bool, stop: "Stop", whole_stream: bool = False
) -> int:
    from natsctl.core.errors import ExitCode
    from natsctl.core.record import check

    start = min((e.seq for e in entries), default=1)
    stored = await read_channel(channel, start, settings, stop, whole_stream)
    report = check(channel, entries, stored)
    _print(report, json_out)
    if not report.ok:
        from natsctl.core.stderr import say

        say(_summary_line(report), "error")
        return ExitCode.MISMATCH
    return ExitCode.OK


async def read_channel(
    channel: str, start: int, settings: Settings, stop: "Stop", whole_stream: bool = False
) -> dict[int, str]:
    """sequence -> payload digest for the channel from ``start`` to its end."""
    from natsctl.core.model import StartKind, StartPosition, SubscribeSpec
    from natsctl.core.record import digest
    from natsctl.opener import open_backend

    spec = SubscribeSpec(
        channel=channel,
        start=StartPosition(StartKind.SEQUENCE, sequence=start),
        ack=False,
        stop_at_end=True,
        create=False,
        whole_stream=whole_stream,
    )
    stored: dict[int, str] = {}
    backend = await open_backend(settings)
    try:
        subscription = await backend.subscribe(spec)
        stop.on_stop(subscription.stop)
        try:
            async for batch in subscription.batches():
                for message in batch:
                    stored[message.sequence] = digest(message.data)
        finally:
            await subscription.close()
    finally:
        await backend.close()
    return stored


def _summary_line(report: "Report") -> str:
    parts = []
    for what, lines in (
        ("missing", report.missing),
        ("changed", report.changed),
        ("duplicated", report.duplicated),
        ("out of order", report.out_of_order),
    ):
        if lines:
            parts.append(f"{len(lines)} {what} (first: line {lines[0]})")
    return f"{report.channel}: " + ", ".join(parts) + f" of {report.recorded} recorded lines"


def _print(report: "Report", json_out: bool) -> None:
    import json

    if json_out:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
        return
    from natsctl.cli.render.tables import print_table, record_table

    def lines(values: list[int]) -> str:
        shown = ", ".join(str(v) for v in values[:10])
        return f"{len(values)}" + (f" (lines {shown}{', ...' if len(values) > 10 else ''})" if values else "")

    pairs = [
        ("Channel", report.channel),
        ("Result", "OK: every recorded message present once, in order" if report.ok else "FAILED"),
        ("Recorded lines", str(report.recorded)),
        ("Present", str(report.present)),
        ("Missing", lines(report.missing)),
        ("Changed", lines(report.changed)),
        (
            "Duplicated",
            lines(report.duplicated) + (f", {report.extra_copies} extra copies" if report.extra_copies else ""),
        ),
        ("Out of order", lines(report.out_of_order)),
        ("Sequences", f"{report.first_seq}-{report.last_seq}" if report.first_seq else "-"),
    ]
    print_table(record_table(pairs))
