"""The one place commands run asyncio code, turn errors into exit codes and handle signals.

Ctrl-C (SIGINT) and SIGTERM first ask the command to stop gracefully (``Stop.requested``; callbacks
registered with ``Stop.on_stop`` run, e.g. a subscription stops taking new messages, acks what was
written and drains), then the process exits 130 or 143. A second signal cancels the command outright.
Until a command says it handles a stop (``Stop.on_stop`` or ``Stop.handle``), there is nothing to
finish gracefully, so the first signal cancels it at once: connecting to a server that never answers
must not outlast Ctrl-C.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

from natsctl.core.errors import ExitCode, NatsctlError

PROG = "natsctl"


def error_line(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {message}\n")
    sys.stderr.flush()


def warn(message: str) -> None:
    sys.stderr.write(f"{PROG}: warning: {message}\n")
    sys.stderr.flush()


def note(message: str) -> None:
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


class Stop:
    """Graceful-stop requests, shared between the signal handlers and the running command."""

    def __init__(self) -> None:
        self.exit_code: ExitCode | None = None
        self._callbacks: list[Callable[[], None]] = []
        self.event = asyncio.Event()
        self.handled = False  # the command has work in hand that a stop should let it finish

    def handle(self) -> None:
        """From now on the command watches ``requested`` / ``event`` and ends by itself."""
        self.handled = True

    @property
    def requested(self) -> bool:
        return self.exit_code is not None

    def on_stop(self, callback: Callable[[], None]) -> None:
        self.handled = True
        self._callbacks.append(callback)
        if self.requested:
            callback()

    def request(self, code: ExitCode) -> None:
        first = not self.requested
        self.exit_code = code if first else self.exit_code
        self.event.set()
        if first:
            for callback in list(self._callbacks):
                callback()


def run(command: Callable[[Stop], Awaitable[int | None]]) -> NoReturn:
    """Run ``command(stop)`` to completion and exit with the right status."""
    code = asyncio.run(_main(command))
    sys.stdout.flush()
    raise SystemExit(int(code))


async def _main(command: Callable[[Stop], Awaitable[int | None]]) -> int:
    loop = asyncio.get_running_loop()
    stop = Stop()
    task = asyncio.current_task()
    assert task is not None
    signals = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}

    def on_signal(code: ExitCode) -> None:
        if stop.requested or not stop.handled:
            stop.request(code)
            task.cancel()  # a second signal, or nothing in hand to finish: stop now
        else:
            stop.request(code)

    for sig, code in signals.items():
        loop.add_signal_handler(sig, on_signal, code)
    try:
        result = await command(stop)
    except NatsctlError as exc:
        error_line(exc.line())
        return int(exc.exit_code)
    except asyncio.CancelledError:
        return int(stop.exit_code or ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # The reader of our stdout went away (e.g. `| head`): not an error for a CLI.
        _silence_stdout()
        return int(stop.exit_code or ExitCode.OK)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a traceback
        if os.environ.get("NATSCTL_DEBUG"):
            raise
        error_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)")
        return int(ExitCode.ERROR)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    if stop.requested:
        return int(stop.exit_code)  # type: ignore[arg-type]
    return int(result or 0)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
