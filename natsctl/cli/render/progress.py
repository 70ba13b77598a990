"""A progress line on stderr while many messages are published (terminals only)."""

from __future__ import annotations

import time


class PublishProgress:
    """Counts confirmations; redraws at most ten times a second so it costs nothing per message."""

    def __init__(self, channel: str) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from . import stderr_console

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TextColumn("{task.completed:,} confirmed"),
            TimeElapsedColumn(),
            console=stderr_console(),
            transient=True,
        )
        self.task = self.progress.add_task(f"publishing to {channel}", total=None)
        self.progress.start()
        self.count = 0
        self.shown = 0
        self.next_draw = 0.0

    def advance(self) -> None:
        self.count += 1
        now = time.monotonic()
        if now >= self.next_draw:
            self.progress.update(self.task, completed=self.count)
            self.next_draw = now + 0.1

    def close(self) -> None:
        self.progress.update(self.task, completed=self.count)
        self.progress.stop()
