"""Everything natsctl prints with rich lives in this package (the only place that imports rich).

Rules shared by every renderer: data goes to stdout, the rest to stderr; colour, live views and
terminal widths only when the stream is a terminal; never a pager, never a prompt (pipes and CI must
never block or receive escape codes).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.console import RenderableType as Renderable  # noqa: F401 - what a table function gives, for other modules' hints

# Off a terminal nothing should be cut or wrapped to fit: scripts read the whole line.
UNLIMITED_WIDTH = 100_000


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def stdout_is_terminal() -> bool:
    return is_terminal(sys.stdout)


def stderr_is_terminal() -> bool:
    return is_terminal(sys.stderr)


def _console(stream: TextIO) -> Console:
    from rich.console import Console

    terminal = is_terminal(stream)
    return Console(
        file=stream,
        force_terminal=terminal,
        no_color=not terminal,
        color_system="auto" if terminal else None,
        highlight=False,
        emoji=False,
        markup=False,
        width=None if terminal else UNLIMITED_WIDTH,
        soft_wrap=not terminal,
    )


def stdout_console() -> Console:
    return _console(sys.stdout)


def stderr_console() -> Console:
    return _console(sys.stderr)
