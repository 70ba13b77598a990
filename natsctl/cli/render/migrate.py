"""`natsctl migrate`: the copy's progress on stderr (a live table on a terminal, JSON lines
otherwise) and the reports' tables."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from natsctl.core.migrate import Plan

PROGRESS_EVERY = 0.5  # seconds between two JSON progress lines (a terminal redraws ten times a second)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class CopyProgress:
    """Per channel: copied, last sequence, lag, rate, ETA. ``copies`` are natsctl.migrate.copy.ChannelCopy."""

    def __init__(self, copies: list[Any], *, terminal: bool) -> None:
        self.copies = copies
        self.terminal = terminal
        self.live: Any = None
        self.next_draw = 0.0
        self.started = False  # nothing is shown before the copy starts (a bad plan: one error line only)
        if terminal:
            from rich.live import Live

            from . import stderr_console

            self.live = Live(console=stderr_console(), auto_refresh=False, transient=False)
            self.live.__enter__()

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, title="copying NATS Streaming -> JetStream", title_justify="left")
        for head in ("CHANNEL", "STREAM", "COPIED", "LAST SEQ", "CHANNEL END", "LAG", "RATE", "ETA", "STATE"):
            table.add_column(head)
        for c in self.copies:
            state = "done" if c.done else "copying"
            table.add_row(
                c.channel,
                c.stream,
                f"{c.copied:,}",
                f"{c.last_copied:,}",
                f"{c.end:,}",
                f"{c.lag:,}",
                f"{c.rate:,.0f}/s",
                _eta(c.eta),
                state,
            )
        return table

    def changed(self, milestone: bool = False, *, final: bool = False) -> None:
        """Redraw (a terminal) or print a JSON line per channel, at most every PROGRESS_EVERY seconds
        unless a channel just started or finished."""
        self.started = True
        now = time.monotonic()
        if not (final or milestone) and now < self.next_draw:
            return
        if self.live is not None:
            self.live.update(self._table(), refresh=True)
            self.next_draw = now + 0.1
            return
        self.next_draw = now + PROGRESS_EVERY
        for c in self.copies:
            sys.stderr.write(json.dumps({"progress": c.as_dict()}) + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.started:
            self.changed(final=True)
        if self.live is not None:
            self.live.__exit__(None, None, None)


def plan_summary(plan: Plan) -> Any:
    """The size of the work and what cannot be carried over (stderr)."""
    from rich.table import Table

    table = Table(box=None, title=f"migration plan: NATS Streaming cluster {plan.cluster_id}", title_justify="left")
    for head in ("CHANNEL", "STREAM", "MESSAGES", "BYTES", "SEQUENCES", "DURABLES"):
        table.add_column(head)
    from .tables import human_bytes

    total_msgs = total_bytes = 0
    for c in plan.channels:
        durables = [d.label for d in plan.durables if d.channel == c.channel]
        seqs = f"{c.first_seq}-{c.last_seq}" if c.msgs else "empty"
        table.add_row(
            c.channel + (" (skip)" if c.skip else ""),
            c.stream,
            f"{c.msgs:,}",
            human_bytes(c.bytes),
            seqs,
            ", ".join(durables) or "-",
        )
        if not c.skip:
            total_msgs += c.msgs
            total_bytes += c.bytes
    table.caption = (
        f"{len(plan.active_channels())} channels, {total_msgs:,} messages, {human_bytes(total_bytes)}; "
        f"{len(plan.active_durables())} durables"
    )
    table.caption_justify = "left"
    return table


def durables_table(results: list[Any]) -> Any:
    from rich.table import Table

    table = Table(box=None)
    for head in ("CHANNEL", "DURABLE", "CONSUMER", "STATUS", "DETAIL"):
        table.add_column(head)
    for r in results:
        table.add_row(r.channel, r.durable, r.consumer, r.status, r.detail)
    return table


def verify_table(report: Any) -> Any:
    from rich.table import Table

    table = Table(box=None)
    for head in (
        "CHANNEL",
        "STREAM",
        "RESULT",
        "MESSAGES",
        "MATCHED",
        "MISSING",
        "CHANGED",
        "DUPLICATED",
        "FIRST DIFFERENCE",
    ):
        table.add_column(head)
    for c in report.channels:
        table.add_row(
            c.channel,
            c.stream,
            "OK" if c.ok else "FAILED",
            f"{c.source_messages:,}",
            f"{c.matched:,}",
            str(c.missing),
            str(c.changed),
            str(c.duplicated + c.out_of_order),
            c.first_difference or "-",
        )
    if report.durables:
        table.add_section()
        for d in report.durables:
            table.add_row(
                d.channel,
                d.consumer,
                "OK" if d.ok else "FAILED",
                "",
                "",
                "",
                "",
                "",
                f"durable {d.durable}: {d.detail}",
            )
    return table
