"""What `natsctl channel` and `natsctl durable` share: running against an admin, confirming, output flags."""

# No "from __future__ import annotations": Typer reads the option annotations below.
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.core.backend import Backend
    from natsctl.core.manage import ChannelAdmin

JsonFlag = Annotated[bool, typer.Option("--json", help="Output JSON")]
Yes = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Do it without asking (required when stdin is not a terminal)"),
]
Output = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", metavar="table|json|yaml|csv", help="Output format: table, json, yaml or csv [default: table]"
    ),
]


def run_admin(settings: Settings, body: Callable[["ChannelAdmin", "Backend"], Awaitable[Any]]) -> None:
    """Connect, run ``body(admin, backend)``, close; errors become one line and an exit status."""
    from natsctl.cli import run

    async def command(stop: Any) -> int:
        from natsctl.opener import open_backend

        backend = await open_backend(settings)
        try:
            result = await body(backend.manager(), backend)
        finally:
            await backend.close()
        return int(result or 0)

    run.run(command)


def confirm(action: str, yes: bool) -> None:
    """Go on with ``action`` (e.g. "purge all 10 messages of channel orders"), or stop with exit 2.

    Never asks when stdin is not a terminal: there ``--yes`` is required, and without it the error
    line says what would have been done.
    """
    from natsctl.core.errors import UsageError

    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError(f"would {action}; pass --yes to do it (stdin is not a terminal, so natsctl does not ask)")
    sys.stderr.write(f"natsctl: {action}? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise UsageError(f"not confirmed: did not {action}")


def output_format(output: str | None, json_: bool) -> str:
    from natsctl.cli.render.tables import output_format as resolve

    return resolve(output, json_)


def emit(data: Any, fmt: str, table: Callable[[], Any] | None = None) -> None:
    from natsctl.cli.render.tables import emit as show

    show(data, fmt, table)


def say(text: str) -> None:
    from natsctl.core.stderr import say as tell

    tell(text)
