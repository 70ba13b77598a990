"""`sub --exec` when the handler fails: spaced redelivery, a bound, and parking in a dead-letter channel.

The order is the contract (core/deadletter.py): a message that ran out of deliveries is published to
the dead-letter channel; only once that is confirmed is the original terminated (JetStream) or acked
(NATS Streaming). Between the two steps natsctl may stop (crash, kill -9): the original then comes
once more and is parked again under the same message id, which the dead-letter stream drops as a
duplicate (JetStream). NATS Streaming does not de-duplicate: there, a crash in that window leaves two
copies with one id (`dead-letter ls` shows it once).

Fault-injection point (for tests and drills): with ``NATSCTL_FAULT=pause-after-park`` natsctl stops
between the confirmed parking and the terminate, says so on stderr, and waits until it is killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from natsctl.core.deadletter import DEFAULT_BACKOFF, NATSCTL_TERM_REASON, Redelivery, park
from natsctl.core.debug import FAULT_ENV
from natsctl.core.model import Message

STDERR_LINES = 5  # last lines of the handler's stderr kept for the reason
PAUSE_AFTER_PARK = "pause-after-park"


@dataclass(slots=True)
class Outcome:
    """How one run of the handler ended."""

    code: int  # exit status; -N: killed by signal N
    stderr_tail: list[str] = field(default_factory=list)

    def reason(self) -> str:
        """What the parking headers say: how it ended and the last lines of its stderr."""
        what = f"--exec killed by {self._signal()}" if self.code < 0 else f"--exec exit status {self.code}"
        if self.stderr_tail:
            what += ": " + " | ".join(self.stderr_tail)
        return what

    def short(self) -> str:
        """What the warning line says (its stderr was shown already)."""
        return f"--exec was killed by {self._signal()}" if self.code < 0 else f"--exec exited {self.code}"

    def _signal(self) -> str:
        import signal

        try:
            return signal.Signals(-self.code).name
        except ValueError:
            return f"signal {-self.code}"


async def run_handler(command: str, message: Message) -> Outcome:
    """Run CMD through sh with the payload on stdin; its stderr goes to ours, its last lines are kept."""
    env = {
        **os.environ,
        "NATSCTL_CHANNEL": message.channel,
        "NATSCTL_SUBJECT": message.subject,
        "NATSCTL_SEQ": str(message.sequence),
        "NATSCTL_REDELIVERED": "1" if message.redelivered else "0",
        "NATSCTL_DELIVERIES": str(message.deliveries),
    }
    sys.stdout.flush()
    process = await asyncio.create_subprocess_shell(
        command, stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    tail: deque[str] = deque(maxlen=STDERR_LINES)
    relay = asyncio.ensure_future(_relay_stderr(process.stderr, tail))
    stdin = process.stdin
    assert stdin is not None
    try:
        stdin.write(message.data)
        await stdin.drain()
        stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the command did not read its stdin: its exit status still decides
    await process.wait()
    await relay
    code = process.returncode if process.returncode is not None else 1
    return Outcome(code, list(tail))


async def _relay_stderr(stream: Any, tail: deque[str]) -> None:
    if stream is None:
        return
    out = sys.stderr.buffer
    while True:
        line = await stream.readline()
        if not line:
            return
        out.write(line)
        out.flush()
        text = line.decode("utf-8", "replace").strip()
        if text:
            tail.append(text)


class FailedMessages:
    """What `sub --exec` does with a delivery whose handler failed (or that came once too often)."""

    def __init__(self, backend: Any, subscription: Any, dead_letter: str, consumer: str) -> None:
        spec = subscription.spec
        self.backend = backend
        self.subscription = subscription
        self.dead_letter = dead_letter
        self.consumer = consumer
        self.policy: Redelivery = subscription.redelivery or Redelivery(
            max_deliver=spec.max_deliver, backoff=spec.backoff or DEFAULT_BACKOFF
        )
        self.jetstream = backend.kind == "jetstream"
        self.seen: dict[int, int] = {}  # NATS Streaming: deliveries counted by natsctl in this run
        self.parked = 0

    def count(self, message: Message) -> int:
        """The delivery count: the server's; on NATS Streaming at least natsctl's own count of this run."""
        if self.jetstream:
            return message.deliveries
        own = self.seen[message.sequence] = self.seen.get(message.sequence, 0) + 1
        message.deliveries = max(message.deliveries, own)
        return message.deliveries

    def spent(self, message: Message) -> bool:
        """A delivery past the bound: natsctl stopped before parking it last time; park it now."""
        return self.policy.max_deliver is not None and message.deliveries > self.policy.max_deliver

    async def failed(self, message: Message, reason: str, short: str | None = None) -> None:
        """The handler failed (``reason`` for the parking, ``short`` for the warning): redeliver, or park."""
        from natsctl.cli.run import warn

        deliveries = message.deliveries
        if self.policy.exhausted(deliveries) or self.spent(message):
            await self.give_up(message, reason)
            return
        bound = f" of {self.policy.max_deliver}" if self.policy.max_deliver else ""
        reason = short or reason
        if self.jetstream:
            delay = self.policy.delay(deliveries)
            warn(
                f"{reason} for sequence {message.sequence} (delivery {deliveries}{bound}); "
                f"it will be redelivered in {delay:g}s"
            )
            await self.subscription.nak(message, delay)
        else:
            warn(
                f"{reason} for sequence {message.sequence} (delivery {deliveries}{bound}); "
                f"it will be redelivered after --ack-wait ({self.subscription.spec.ack_wait:g}s)"
            )
            await self.subscription.nak(message)

    async def give_up(self, message: Message, reason: str) -> None:
        from natsctl.cli.run import note

        stored = await park(self.backend, self.dead_letter, message, reason=reason, consumer=self.consumer)
        if os.environ.get(FAULT_ENV) == PAUSE_AFTER_PARK:
            note(
                f"fault injection ({FAULT_ENV}={PAUSE_AFTER_PARK}): parked sequence {message.sequence}, not terminated"
            )
            await asyncio.Event().wait()  # until killed
        await self.subscription.terminate(message, NATSCTL_TERM_REASON)
        self.parked += 1
        again = "" if stored else " (it was parked before: the copy there stands)"
        note(
            f"sequence {message.sequence} failed {message.deliveries} deliveries: parked in {self.dead_letter!r}{again}"
        )


def consumer_label(spec: Any) -> str:
    """Who gave up on a message: the durable and/or queue group, as the parking headers name it."""
    parts = [p for p in (spec.durable, spec.queue) if p]
    return ":".join(parts) if parts else "-"
