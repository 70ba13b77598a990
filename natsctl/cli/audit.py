"""`natsctl audit order`: per-key version order across channels (repeats, go-backs, gaps, wrong starts)."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.options import connection_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.contracts.order import OrderReport

AUDIT_HELP = "Audits of the events stored on the bus."

ORDER_HELP = """Check that every key's versions go up by one, across CHANNEL(s), in publish order.

The channels are read from the start (or --since) to their end and merged by publish time (by
sequence within a channel). For each key (--key, a dotted path; default: the catalog's) the version
(--version; default: the catalog's) must start at --start and rise by one. Reported, with the channel
and sequence of each event: repeat (same version again), go-back (lower than the highest seen), gap
(versions skipped), wrong-start (a key's first version is not --start).

Memory stays flat per key: the highest version and where it was, ~200 bytes per key, whatever the
number of events; at most --max-findings findings are listed (all are counted).

Exit codes: 0 in order; 12 something found; 14 an event without the key or with a version that is not
an integer (or not JSON); 2 bad usage; 3/7/9 a channel could not be read.

Examples:

\b
  natsctl audit order ticket:created ticket:updated --key id --version version
  natsctl audit order ticket:updated --start 1 --json"""


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(name="audit", help=AUDIT_HELP, no_args_is_help=True)
    audit_app.command("order", help=ORDER_HELP, no_args_is_help=True)(audit_order)
    app.add_typer(audit_app, name="audit")


@connection_options
def audit_order(
    channels: Annotated[
        list[str], typer.Argument(metavar="CHANNEL...", help="Channels to read and merge", show_default=False)
    ],
    key: Annotated[
        str | None, typer.Option("--key", metavar="PATH", help="Key field (dotted path) [default: the catalog's]")
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", metavar="PATH", help="Version field (dotted path) [default: the catalog's]"),
    ] = None,
    start: Annotated[
        int, typer.Option("--start", metavar="N", min=0, help="The version a key's first event carries (0 or 1)")
    ] = 0,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", metavar="DURATION|TIME", help="Only events from this time (first versions are then not checked)"
        ),
    ] = None,
    max_findings: Annotated[
        int, typer.Option("--max-findings", metavar="N", min=0, help="List at most N findings (all are counted)")
    ] = 1000,
    catalog: Annotated[
        str | None,
        typer.Option(
            "--catalog", metavar="FILE", help="Event catalog [env NATSCTL_CATALOG; default ./natsctl-catalog.yaml]"
        ),
    ] = None,
    json_flag: Annotated[bool, typer.Option("--json", help="JSON output")] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run
    from natsctl.contracts.catalog import check_field_path
    from natsctl.core.errors import UsageError
    from natsctl.core.names import validate_channel

    for channel in channels:
        validate_channel(channel)
    if len(set(channels)) != len(channels):
        raise UsageError("a channel is named twice")
    key, version = _fields(channels, key, version, catalog)
    check_field_path(key, "--key")
    check_field_path(version, "--version")
    run(
        lambda stop: _audit(
            channels, key, version, None if since else start, since, max_findings, settings, json_flag, stop
        )
    )


def _fields(channels: list[str], key: str | None, version: str | None, catalog: str | None) -> tuple[str, str]:
    """--key / --version, else what the catalog says for the channels (they must agree)."""
    from natsctl.core.errors import UsageError

    if key is None or version is None:
        from natsctl.cli.contract_io import load_catalog

        found = load_catalog(catalog)
        for name, given in (("key", key), ("version", version)):
            if given is not None:
                continue
            values = set()
            if found is not None:
                for channel in channels:
                    entry = found.entry_for(channel)
                    values.add(getattr(entry, name) if entry is not None else None)
            if len(values) != 1 or None in values:
                raise UsageError(
                    f"give --{name}: the catalog does not name one {name} field for "
                    + ", ".join(repr(c) for c in channels)
                )
            if name == "key":
                key = values.pop()
            else:
                version = values.pop()
    assert key is not None and version is not None
    return key, version


class _Cursor:
    """One channel's events, a batch at a time, for the merge."""

    def __init__(self, index: int, subscription: Any) -> None:
        self.index = index
        self.batches = subscription.batches().__aiter__()
        self.batch: list[Any] = []
        self.at = 0
        self.head: Any = None

    async def advance(self) -> bool:
        """The next event in ``head``; False at the channel's end."""
        if self.at < len(self.batch):  # the common case: no await
            self.head = self.batch[self.at]
            self.at += 1
            return True
        while True:
            try:
                self.batch = await self.batches.__anext__()
            except StopAsyncIteration:
                self.head = None
                return False
            if self.batch:
                self.head = self.batch[0]
                self.at = 1
                return True

    def order(self) -> tuple[Any, int, int]:
        """Merge order: publish time, then the channel's place on the command line, then the sequence."""
        head = self.head
        return (head.time or _EPOCH, self.index, head.sequence)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def _merge(cursors: list[_Cursor], feed: Any) -> None:
    """Feed every event of every cursor in merge order; a run of one channel's events is fed without
    comparing each to the others' heads more than once."""
    live = [c for c in cursors if await c.advance()]
    while live:
        live.sort(key=_Cursor.order)
        cursor = live[0]
        bound = live[1].order() if len(live) > 1 else None
        index = cursor.index
        while True:
            head = cursor.head
            feed(index, head.sequence, head.time, head.data)
            if not await cursor.advance():
                live.pop(0)
                break
            if bound is not None and cursor.order() > bound:
                break


async def _audit(
    channels: list[str],
    key: str,
    version: str,
    start: int | None,
    since: str | None,
    max_findings: int,
    settings: Settings,
    json_flag: bool,
    stop: "Stop",
) -> int:
    from natsctl.cli.contract_io import read_spec
    from natsctl.contracts.order import OrderAudit
    from natsctl.core.errors import ExitCode
    from natsctl.core.timeparse import format_time
    from natsctl.opener import open_backend

    audit = OrderAudit(channels, key, version, start, max_findings)
    backend = await open_backend(settings)
    subscriptions: list[Any] = []
    try:
        for channel in channels:
            subscription = await backend.subscribe(read_spec(channel, since))
            subscriptions.append(subscription)
            stop.on_stop(subscription.stop)
        await _merge([_Cursor(i, s) for i, s in enumerate(subscriptions)], audit.feed)
    finally:
        for subscription in subscriptions:
            await subscription.close()
        await backend.close()
    report = audit.report
    for finding in report.findings:
        finding.time = format_time(finding.time) if finding.time is not None else None
    _print(report, json_flag)
    if not report.ok:
        from natsctl.core.stderr import say

        counts = ", ".join(f"{n} {kind}" for kind, n in report.counts.items() if n)
        say(f"{', '.join(channels)}: {counts} in {report.events} events of {report.keys} keys", "error")
        return ExitCode.MISMATCH
    return ExitCode.OK


def _print(report: "OrderReport", json_flag: bool) -> None:
    import json

    if json_flag:
        sys.stdout.write(json.dumps(report.as_dict(), default=str) + "\n")
        return
    counts = ", ".join(f"{kind} {n}" for kind, n in report.counts.items())
    lines = [
        f"channels {', '.join(report.channels)}: {report.events} events, {report.keys} keys "
        f"(key {report.key}, version {report.version}, start {report.start if report.start is not None else '-'})",
        f"{'OK: every key in order' if report.ok else 'FOUND: ' + counts}",
    ]
    out = "\n".join(lines) + "\n"
    if report.findings:
        rows = [["KIND", "KEY", "VERSION", "EXPECTED", "CHANNEL", "SEQ", "PREVIOUS"]] + [
            [
                f.kind,
                str(f.key),
                str(f.version),
                str(f.expected),
                f.channel,
                str(f.seq),
                f"{f.previous_channel} #{f.previous_seq} (v{f.previous_version})" if f.previous_channel else "-",
            ]
            for f in report.findings
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out += "".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows)
    if report.truncated:
        out += f"... and {report.truncated} more findings (raise --max-findings to list them)\n"
    sys.stdout.write(out)
    sys.stdout.flush()
