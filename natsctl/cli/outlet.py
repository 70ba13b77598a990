"""Where delivered messages leave the process, and how far the reader has really taken them.

``sub`` acks a message only once its bytes are out. "Out" is stricter than "write() returned": a
pipe can accept a short count, a reader can stop reading while natsctl is blocked on a full pipe, and
a reader can exit with bytes still in the pipe, which the kernel then throws away. So:

- every write is counted byte by byte (``accepted``), a short write included;
- on a pipe natsctl writes through a private non-blocking handle of its own (reopened from
  ``/proc/self/fd/1``, so the shell's handle stays blocking), waits for room in the event loop, and a
  signal stops the wait at once;
- on a pipe, bytes still sitting unread in it (``FIONREAD``) do not count as taken: ``consumed()``
  is what the reader has actually read. A reader that exits never read them, so they are never acked.

Elsewhere (a file, a terminal, ``/dev/null``, a socket, or a system without ``/proc``) accepted
bytes count as taken and writes block as usual.
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import itertools
import os
import select
import stat
import sys
import termios
from collections import deque
from collections.abc import Callable, Sequence
from typing import IO, TextIO

from natsctl.core.errors import NatsctlError
from natsctl.core.model import Message

DRAIN_POLL = 0.01  # seconds between looks at a pipe the reader is still emptying


class OutputFailed(NatsctlError):
    """stdout refused bytes for a reason other than its reader going away (disk full, I/O error)."""


class Outlet:
    """Writes to a file descriptor as it is (blocking, usually); what the OS accepted counts as taken."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.accepted = 0  # bytes the OS took, short writes included
        self.broken = False  # the reader went away (EPIPE)
        self.error: OSError | None = None  # any other write failure; nothing more is written

    async def write(self, data: bytes, stop: asyncio.Event) -> None:
        """Write ``data`` until all of it is accepted, the reader goes away, or ``stop`` is set."""
        view = memoryview(data)
        done = 0
        while done < len(view) and not (self.broken or self.error or stop.is_set()):
            written = self._write_once(view[done:])
            if written is None:
                await self._wait_for_room(stop)
            else:
                done += written

    def _write_once(self, view: memoryview) -> int | None:
        """Bytes accepted by one write(); None when the pipe is full (non-blocking handle)."""
        try:
            written = self._write(view)
        except BlockingIOError:
            return None
        except BrokenPipeError:
            self.broken = True
            return 0
        except OSError as exc:
            self.error = exc
            return 0
        self.accepted += written
        return written

    def _write(self, view: memoryview) -> int:
        return os.write(self.fd, view)

    async def _wait_for_room(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        room: asyncio.Future[object] = loop.create_future()
        loop.add_writer(self.fd, _settle, room)
        stopped: asyncio.Future[object] = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({room, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_writer(self.fd)
            stopped.cancel()

    def consumed(self) -> int:
        """Bytes the reader has taken."""
        return self.accepted

    def unread(self) -> int:
        """Bytes accepted but still waiting for the reader."""
        return 0

    def reader_gone(self) -> bool:
        return self.broken

    def close(self) -> None:
        """Nothing to close: fd 1 belongs to the process."""

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise OutputFailed(f"cannot write to stdout: {self.error.strerror or self.error}")


class PipeOutlet(Outlet):
    """A pipe written through a private non-blocking handle; unread bytes do not count as taken."""

    def consumed(self) -> int:
        return max(0, self.accepted - self.unread())  # others' unread bytes only make it smaller

    def unread(self) -> int:
        waiting = bytearray(4)
        try:
            fcntl.ioctl(self.fd, termios.FIONREAD, waiting)
        except OSError:
            return 0
        return int.from_bytes(waiting, sys.byteorder)

    def reader_gone(self) -> bool:
        if self.broken:
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        events = poller.poll(0)
        return bool(events and events[0][1] & select.POLLERR)

    def close(self) -> None:
        os.close(self.fd)


class StreamOutlet(Outlet):
    """``sys.stdout`` replaced by an object without a file descriptor (an embedding program, a test
    runner capturing output): what it takes counts as taken."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__(-1)
        self.stream = stream

    def _write(self, view: memoryview) -> int:
        data = bytes(view)
        binary: IO[bytes] | None = getattr(self.stream, "buffer", None)
        if binary is not None:
            written = binary.write(data)
            binary.flush()
            return len(data) if written is None else written
        self.stream.write(data.decode("utf-8", "replace"))  # a text-only stream takes it all or raises
        self.stream.flush()
        return len(data)


def _settle(room: asyncio.Future[object]) -> None:
    if not room.done():
        room.set_result(None)


def open_outlet(fd: int | None = None) -> Outlet:
    """The outlet for ``fd`` (stdout's): a pipe gets a private non-blocking handle where the system allows it."""
    sys.stdout.flush()  # anything Python buffered goes first, in order
    if fd is None:
        try:
            fd = sys.stdout.fileno()
        except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is both of the last two
            return StreamOutlet(sys.stdout)
    try:
        is_pipe = stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        is_pipe = False
    if is_pipe:
        try:
            private = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            pass  # no /proc, or the reader is already gone: plain blocking writes
        else:
            return PipeOutlet(private)
    return Outlet(fd)


async def wait_while_unread(outlet: Outlet, stop: asyncio.Event) -> None:
    """Let one poll interval pass while the reader still has bytes to take (or until ``stop``)."""
    try:
        await asyncio.wait_for(stop.wait(), DRAIN_POLL)
    except TimeoutError:
        pass


class AckLedger:
    """Written batches, in order, with their byte ranges: which messages the reader has taken.

    ``settle(consumed)`` hands out, once each and in order, the messages whose every byte lies within
    the first ``consumed`` bytes written. With ``whole_batches`` only complete batches are settled,
    which needs no per-message sizes (the hot path); the exact cut inside a batch is made at the end.
    """

    def __init__(self, sizes: Callable[[Sequence[Message]], list[int]]) -> None:
        self.sizes = sizes  # the encoded size of each message of a batch
        self.pending: deque[_Written] = deque()
        self.written = 0
        self.grown = asyncio.Event()  # set when a batch is added; cleared once all are settled

    def add(self, batch: Sequence[Message], size: int) -> None:
        self.pending.append(_Written(batch, self.written, self.written + size))
        self.written += size
        self.grown.set()

    def settle(self, consumed: int, *, whole_batches: bool = False) -> Sequence[Message]:
        chunks: list[Sequence[Message]] = []
        while self.pending:
            entry = self.pending[0]
            if entry.end <= consumed:
                chunks.append(entry.batch[entry.settled :])
                self.pending.popleft()
                continue
            if not whole_batches and consumed > entry.start:
                reached = entry.messages_within(consumed - entry.start, self.sizes)
                chunks.append(entry.batch[entry.settled : reached])
                entry.settled = max(entry.settled, reached)
            break
        if len(chunks) == 1:
            return chunks[0]  # the usual case: one batch, as it is (a backend's batch acks in bulk)
        return [message for chunk in chunks for message in chunk]

    def unsettled(self) -> int:
        return sum(len(entry.batch) - entry.settled for entry in self.pending)


class _Written:
    __slots__ = ("batch", "end", "ends", "settled", "start")

    def __init__(self, batch: Sequence[Message], start: int, end: int) -> None:
        self.batch, self.start, self.end = batch, start, end
        self.settled = 0  # messages of this batch already handed out
        self.ends: list[int] | None = None  # cumulative message ends, computed when first needed

    def messages_within(self, size: int, sizes: Callable[[Sequence[Message]], list[int]]) -> int:
        if self.ends is None:
            self.ends = list(itertools.accumulate(sizes(self.batch)))
        return bisect.bisect_right(self.ends, size)
