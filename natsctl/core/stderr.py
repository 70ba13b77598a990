"""natsctl's own lines on stderr: ``natsctl: error: ...``, ``natsctl: warning: ...``, ``natsctl: ...``.

The one place the ``natsctl:`` prefix is written. It lives in core so that every layer (the CLI, the
connection notes of the transport, ``--debug`` logging) can say something in the same form.
"""

from __future__ import annotations

import sys
from typing import Literal

PROG = "natsctl"

Level = Literal["error", "warning", "debug"]


def say(message: str, level: Level | None = None) -> None:
    """One line on stderr, flushed at once: ``natsctl: [level: ]message``."""
    sys.stderr.write(f"{PROG}: {level}: {message}\n" if level else f"{PROG}: {message}\n")
    sys.stderr.flush()
