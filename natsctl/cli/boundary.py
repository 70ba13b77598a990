"""The error boundary: the one place an exception becomes what the user sees and an exit status.

Both ends of a command go through :func:`exit_status`: ``natsctl.cli.main.main`` for what happens
while parsing (usage errors, a NatsctlError raised by a check before anything runs), and the asyncio
runner in ``natsctl.cli.run`` for what the command itself raises. Never a traceback, unless --debug
asks for one of an unexpected error.
"""

from __future__ import annotations

import asyncio
import os
import sys

import typer

from natsctl.core.errors import ExitCode, NatsctlError, PublishInterrupted
from natsctl.core.stderr import say


def exit_status(exc: BaseException, stopped: int | None = None) -> int:
    """Say what ``exc`` means (one line on stderr; the help on stdout for a bare command) and give the
    exit status. ``stopped`` is the status a signal asked for (130 for Ctrl-C, 143 for SIGTERM), if one came.

    Under --debug (``NATSCTL_DEBUG``) an unexpected exception is raised again, for its traceback; so is
    anything that is not an ``Exception`` and not an interruption (``SystemExit`` above all).
    """
    if isinstance(exc, PublishInterrupted):
        return exit_status(exc.cause, stopped)  # the summary was reported where it was caught
    if isinstance(exc, NatsctlError):
        say(exc.line(), "error")
        return int(exc.exit_code)
    if isinstance(exc, typer.TyperException):  # click's usage errors
        text = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # `natsctl` or `natsctl pub` alone: the help, as --help
            sys.stdout.write(text + "\n")
            return int(ExitCode.OK)
        say(f"{text.splitlines()[0] if text else str(exc)} (see 'natsctl --help')", "error")
        return int(getattr(exc, "exit_code", ExitCode.USAGE))
    if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError, typer.Abort)):
        return int(stopped or ExitCode.INTERRUPTED)
    if isinstance(exc, BrokenPipeError):
        # The reader of our stdout went away (e.g. `| head`): not an error for a CLI.
        _silence_stdout()
        return int(stopped or ExitCode.OK)
    if not isinstance(exc, Exception) or os.environ.get("NATSCTL_DEBUG"):
        raise exc
    say(f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)", "error")
    return int(ExitCode.ERROR)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so flushing what is left at exit does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
