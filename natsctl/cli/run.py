"""The one place commands run asyncio code and handle signals; what they raise becomes an exit status
in :func:`natsctl.cli.boundary.exit_status`, as it does for ``main()``.

Ctrl-C (SIGINT) and SIGTERM first ask the command to stop gracefully (``Stop.requested``; callbacks
registered with ``Stop.on_stop`` run, e.g. a subscription stops taking new messages, acks what was
written and drains), then the process exits 130 or 143. A second signal cancels the command outright.
Until a command says it handles a stop (``Stop.on_stop`` or ``Stop.handle``), there is nothing to
finish gracefully, so the first signal cancels it at once: connecting to a server that never answers
must not outlast Ctrl-C.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

from natsctl.cli.boundary import exit_status
from natsctl.core.errors import ExitCode
from natsctl.core.stderr import say


def warn(message: str) -> None:
    """``natsctl: warning: message`` on stderr (shorthand for ``say(message, "warning")``)."""
    say(message, "warning")


def note(message: str) -> None:
    """``natsctl: message`` on stderr (shorthand for ``say(message)``)."""
    say(message)


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


WIND_DOWN_SECONDS = 1.0  # how long tasks left behind (a library's connect in progress) may take to end


def run(command: Callable[[Stop], Awaitable[int | None]]) -> NoReturn:
    """Run ``command(stop)`` to completion and exit with the right status."""
    loop = asyncio.new_event_loop()
    try:
        code = loop.run_until_complete(_main(command))
    finally:
        _wind_down(loop)
    sys.stdout.flush()
    raise SystemExit(int(code))


def _wind_down(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel what the command left running and give it a moment, but never wait on it for long.

    ``asyncio.run`` waits for every left-over task without limit; a nats-py connect cancelled by
    Ctrl-C part-way through its handshake can take its time, and Ctrl-C must not hang on it.
    """
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.wait(leftovers, timeout=WIND_DOWN_SECONDS))
    loop.run_until_complete(loop.shutdown_asyncgens())
    if any(not task.done() for task in leftovers):
        # They end with the process; do not report them as "destroyed but pending" on the way out.
        loop.set_exception_handler(lambda _loop, _context: None)
    loop.close()


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
    except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - the one boundary decides what each means
        return exit_status(exc, stop.exit_code)  # one boundary for the runner and for main()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    if stop.exit_code is not None:
        return int(stop.exit_code)
    return int(result or 0)
