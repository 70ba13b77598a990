"""Event contracts where events enter and leave the bus: the glue between `pub` / `sub` / `replay` /
`catalog` / `audit` and the library in ``natsctl/contracts``.

- the catalog a command uses (``--catalog``, NATSCTL_CATALOG, context, config, ./natsctl-catalog.yaml);
- ``pub``: from a file every message is checked before the first is sent; from a pipe publishing
  stops at the first invalid message, after what was sent before it is confirmed;
- ``sub`` / ``replay --validate``: each message is checked; JSON envelopes gain ``valid`` and
  ``errors``; ``--on-invalid skip|stop|dead-letter``;
- reading channels to their end for ``catalog check``, ``catalog infer`` and ``audit order``.

Nothing here is imported, and no validator is loaded, unless a catalog entry applies.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from natsctl.core.errors import Invalid, UsageError
from natsctl.core.model import Message

if TYPE_CHECKING:
    from natsctl.cli.pub import PublishPlan
    from natsctl.contracts.catalog import Catalog, Entry
    from natsctl.contracts.schema import Contract
    from natsctl.core.backend import Backend, Messages, Subscription
    from natsctl.core.model import OutgoingMessage, SubscribeSpec
    from natsctl.core.settings import Resolution

ON_INVALID = ("skip", "stop", "dead-letter")


class ContractViolation(UsageError):
    """Input to `pub` that breaks its channel's contract (exit 2: nothing, or nothing more, is published)."""


# -- the catalog -----------------------------------------------------------------------------------


def load_catalog(flag: str | None, *, required: bool = False, standalone: bool = False) -> Catalog | None:
    """The catalog the command uses; None when none is configured (``required``: say so instead).

    A command with connection flags finds the context and config its settings were resolved from;
    a ``standalone`` one (``catalog ls`` / ``show``) resolves them now, without flags."""
    from natsctl.cli.settings import last_resolution
    from natsctl.contracts.catalog import load, locate

    resolution: Resolution | None = last_resolution()
    if standalone:
        from natsctl.core.settings import resolve_full

        resolution = resolve_full({})
    source = locate(flag, resolution)
    if source is None:
        if required:
            raise UsageError(
                "no catalog: give --catalog FILE, set NATSCTL_CATALOG, add 'catalog' to the context or the "
                "config, or create ./natsctl-catalog.yaml"
            )
        return None
    return load(source)


def entry_for(flag: str | None, channel: str, *, required: bool = False, standalone: bool = False) -> Entry | None:
    catalog = load_catalog(flag, required=required, standalone=standalone)
    entry = catalog.entry_for(channel) if catalog is not None else None
    if entry is None and required:
        where = catalog.source.describe() if catalog is not None else "the catalog"
        raise UsageError(f"{where} has no entry for channel {channel!r}", hint="see 'natsctl catalog ls'")
    return entry


# -- pub ---------------------------------------------------------------------------------------------


def checked_input(
    plan: PublishPlan,
    entry: Entry,
    build: Callable[[PublishPlan, Callable[[str], None]], tuple[Messages, Any]],
    warn: Callable[[str], None],
) -> tuple[Messages, Any]:
    """The messages `pub` sends, checked against ``entry``'s schema.

    A file (or stdin redirected from a file) is checked whole before anything is sent; a pipe or a
    terminal is checked message by message and publishing stops at the first invalid one."""
    contract = entry.contract()
    if _from_pipe(plan):
        messages, handle = build(plan, warn)
        return guard(messages, contract, entry.pattern), handle
    rewind = _stdin_position(plan)
    if (plan.file or plan.lines) and not plan.envelope:
        from natsctl.core.inputs import open_input

        lines = open_input(plan.file) if plan.file else sys.stdin.buffer
        try:
            precheck_lines(lines, contract, entry.pattern)
        finally:
            if plan.file:
                lines.close()
    else:
        first, handle = build(plan, lambda _line: None)  # bad envelope lines are reported by the real pass
        try:
            assert not isinstance(first, AsyncIterable)  # a file gives a plain iterator
            precheck(iter(first), contract, entry.pattern)
        finally:
            if handle is not None:
                handle.close()
    if rewind is not None:
        sys.stdin.buffer.seek(rewind)
    return build(plan, warn)


def _from_pipe(plan: PublishPlan) -> bool:
    if plan.data is not None:
        return False
    try:
        fd = os.open(plan.file, os.O_RDONLY | os.O_NONBLOCK) if plan.file else sys.stdin.buffer.fileno()
    except OSError:
        return False  # build() reports the unreadable file
    try:
        return not stat.S_ISREG(os.fstat(fd).st_mode)
    except (OSError, ValueError):
        return True
    finally:
        if plan.file:
            os.close(fd)


def _stdin_position(plan: PublishPlan) -> int | None:
    if plan.data is not None or plan.file:
        return None
    return sys.stdin.buffer.tell()


CHUNK = 1 << 18  # bytes of lines checked at once by precheck_lines (their parsed values stay small)


def precheck_lines(handle: BinaryIO, contract: Contract, pattern: str) -> int:
    """:func:`precheck` for plain lines of a file, read as they are (the hot path of `pub --file`):
    the same lines as ``natsctl.core.inputs.file_lines`` makes messages of (blank ones skipped).

    Lines are parsed a chunk at a time and the chunk is validated in one call (the schema as the
    ``items`` of an array); a chunk with anything off is looked at line by line."""
    loads, all_valid = contract._loads, contract.all_valid
    total = bad = number = 0
    first: tuple[str, list[str]] | None = None
    while True:
        lines = handle.readlines(CHUNK)
        if not lines:
            break
        try:
            if all_valid(list(map(loads, lines))):
                total += len(lines)
                number += len(lines)
                continue
        except Exception:  # noqa: BLE001 - a line orjson refuses (or a blank one): looked at below
            pass
        for line in lines:
            number += 1
            if line.endswith(b"\n"):
                line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
            if not line.strip():
                continue
            total += 1
            errors = contract.check(line)
            if errors:
                bad += 1
                if first is None:
                    first = (f"line {number}", errors)
    _refuse(first, bad, total, pattern)
    return total


def _refuse(first: tuple[str, list[str]] | None, bad: int, total: int, pattern: str) -> None:
    if first is not None:
        source, errors = first
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise ContractViolation(
            f"{source}: {errors[0]}{more}; {bad} of {total} messages break the contract of {pattern!r}, "
            "nothing was published",
            hint="fix them or pass --no-validate",
        )


def precheck(messages: Iterator[OutgoingMessage], contract: Contract, pattern: str) -> int:
    """Check every message; raise ContractViolation naming the first invalid one and how many there are."""
    loads, is_valid = contract._loads, contract._is_valid
    total = bad = 0
    first: tuple[str, list[str]] | None = None
    for message in messages:
        total += 1
        try:
            if is_valid(loads(message.data)):
                continue
        except Exception:  # noqa: BLE001 - not JSON for orjson: check() says why (or takes a huge integer)
            pass
        errors = contract.check(message.data)
        if not errors:
            continue
        bad += 1
        if first is None:
            first = (message.source, errors)
    _refuse(first, bad, total, pattern)
    return total


def _messages(n: int) -> str:
    return f"{n} message" if n == 1 else f"{n} messages"


def guard(messages: Messages, contract: Contract, pattern: str) -> Messages:
    """Pass messages on until the first invalid one, which stops the input with ContractViolation."""
    sent = 0

    def check(message: OutgoingMessage) -> None:
        errors = contract.check(message.data)
        if errors:
            more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
            raise ContractViolation(
                f"{message.source}: {errors[0]}{more}; publishing stopped there: it breaks the contract of "
                f"{pattern!r}, and {_messages(sent)} before it {'was' if sent == 1 else 'were'} sent"
            )

    if isinstance(messages, AsyncIterable):
        source = messages

        async def checked_async() -> AsyncIterator[OutgoingMessage]:
            nonlocal sent
            async for message in source:
                check(message)
                sent += 1
                yield message

        return checked_async()

    def checked() -> Iterator[OutgoingMessage]:
        nonlocal sent
        for message in messages:
            check(message)
            sent += 1
            yield message

    return checked()


# -- sub / replay --validate -------------------------------------------------------------------------


@dataclass
class ReadChecks:
    """What `sub` / `replay` do with ``--validate`` (``entry`` None: no catalog entry, nothing checked)."""

    entry: Entry | None
    on_invalid: str | None = None  # None: write invalid events too, marked
    dead_letter: str | None = None  # the channel --on-invalid dead-letter publishes to

    @property
    def active(self) -> bool:
        return self.entry is not None


def read_checks(
    channel: str, validate: bool, on_invalid: str | None, dead_letter: str | None, catalog: str | None
) -> ReadChecks | None:
    """Check the flags (before connecting); None when nothing is validated."""

    if on_invalid is not None and on_invalid not in ON_INVALID:
        raise UsageError(f"--on-invalid must be one of {', '.join(ON_INVALID)}, not {on_invalid!r}")
    if on_invalid and not validate:
        raise UsageError("--on-invalid goes with --validate")
    if dead_letter is not None and on_invalid != "dead-letter":
        raise UsageError(
            "--dead-letter names where messages are parked: add --exec CMD (failing handlers) "
            "or --validate --on-invalid dead-letter (invalid events)"
        )
    if not validate:
        return None
    entry = entry_for(catalog, channel, required=True)
    assert entry is not None
    entry.contract()  # an invalid schema fails now, before connecting
    if on_invalid == "dead-letter":
        from natsctl.core.deadletter import dead_letter_for

        dead_letter = dead_letter_for(channel, dead_letter)
    return ReadChecks(entry, on_invalid, dead_letter)


Park = Callable[[Message, str], Awaitable[None]]


def publishing_park(backend: Backend, dead_letter: str, consumer: str = "") -> Park:
    """Park a message the way failing handlers' messages are parked (natsctl.core.deadletter.park):
    published to ``dead_letter`` with headers (JetStream) or in a JSON wrapper (NATS Streaming) saying
    where it came from and why, and confirmed; the caller acks the original only after that."""
    from natsctl.core.deadletter import park as park_message

    async def park(message: Message, reason: str) -> None:
        await park_message(backend, dead_letter, message, reason=reason, consumer=consumer)

    return park


def one_line(errors: list[str]) -> str:
    return "; ".join(e.replace("\n", " ") for e in errors)


class CheckedMessage(Message):
    """A delivered message with its verdict: ``errors`` ([] when valid) and ``drop`` (not written out)."""

    __slots__ = ("drop", "errors")
    drop: bool
    errors: list[str]

    @classmethod
    def of(cls, message: Message, errors: list[str]) -> CheckedMessage:
        checked = cls(
            message.channel,
            message.subject,
            message.sequence,
            message.time,
            message.data,
            message.headers,
            message.redelivered,
            message.deliveries,
            message.pending,
            message.ack_token,
        )
        checked.errors = errors
        checked.drop = False
        return checked


class CheckedSubscription:
    """A subscription whose batches come checked. Invalid messages are, per ``--on-invalid``:

    - (none): delivered, marked (the JSON envelope says ``"valid": false`` and the errors);
    - ``skip``: acked, not written (a warning on stderr names each);
    - ``dead-letter``: parked (published to the dead-letter channel, confirmed), then acked, not written;
    - ``stop``: the messages before it are delivered, it is not acked, and the command exits 14.

    With ``exclusive`` (``--exec``) dropped messages leave the batches and are acked at once;
    otherwise they stay in the batch, marked ``drop``, so that the writer writes nothing for them and
    they are acked in order with the rest.
    """

    def __init__(self, inner: Subscription, checks: ReadChecks, park: Park | None, exclusive: bool) -> None:
        assert checks.entry is not None
        self.inner = inner
        self.contract = checks.entry.contract()
        self.pattern = checks.entry.pattern
        self.on_invalid = checks.on_invalid
        self.park = park
        self.exclusive = exclusive
        self.failure: Invalid | None = None
        self.invalid = 0

    async def finish(self) -> None:
        """After the subscription is closed: ``--on-invalid stop`` exits 14. The invalid message and
        what was delivered after it stay unacked: a durable gets them again (NATS Streaming at once
        when it resumes; JetStream redelivers them after --ack-wait, so newer messages may come first)."""
        if self.failure is not None:
            raise self.failure

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def batches(self) -> AsyncIterator[list[Message]]:
        from natsctl.cli.run import warn

        async for batch in self.inner.batches():
            out: list[Message] = []
            dropped: list[Message] = []
            for message in batch:
                checked = CheckedMessage.of(message, self.contract.check(message.data))
                if checked.errors:
                    self.invalid += 1
                    where = f"{message.channel} sequence {message.sequence}"
                    if self.on_invalid == "stop":
                        self.failure = Invalid(
                            f"{where} breaks the contract of {self.pattern!r}: {one_line(checked.errors)}; "
                            "stopped before it (it stays unacked)"
                        )
                        if out:
                            yield out
                        self.inner.stop()
                        return
                    if self.on_invalid == "skip":
                        warn(f"skipped {where}: {one_line(checked.errors)}")
                        checked.drop = True
                    elif self.on_invalid == "dead-letter" and self.park is not None:
                        await self.park(message, "contract: " + one_line(checked.errors))
                        warn(f"parked {where} in the dead-letter channel: {one_line(checked.errors)}")
                        checked.drop = True
                if checked.drop and self.exclusive:
                    dropped.append(checked)
                else:
                    out.append(checked)
            if dropped:
                await self.inner.ack(dropped)
            if out:
                yield out


def checked_writer(output: str) -> Any:
    """The writer for ``output`` that leaves dropped messages out and adds valid/errors to JSON envelopes."""
    from natsctl.cli.render import stdout_is_terminal
    from natsctl.cli.render.messages import JsonWriter, PlainWriter, RawWriter, TerminalWriter

    class Checked:
        def encode(self, batch: Sequence[Message]) -> bytes:
            kept = [m for m in batch if not getattr(m, "drop", False)]
            return super().encode(kept)  # type: ignore[misc]

        def sizes(self, batch: Sequence[Message]) -> list[int]:
            return [len(self.encode([m])) for m in batch]

    class CheckedJson(Checked, JsonWriter):
        def encode(self, batch: Sequence[Message]) -> bytes:
            import json

            kept = [m for m in batch if not getattr(m, "drop", False)]
            if not kept:
                return b""
            lines = JsonWriter.encode(self, kept).split(b"\n")
            out = []
            for message, line in zip(kept, lines, strict=False):
                errors = getattr(message, "errors", [])
                extra = (
                    ',"valid":'
                    + ("false" if errors else "true")
                    + ',"errors":'
                    + json.dumps(errors, ensure_ascii=False)
                )
                out.append(line[:-1] + extra.encode("utf-8") + b"}\n")
            return b"".join(out)

    class CheckedRaw(Checked, RawWriter):
        pass

    class CheckedPlain(Checked, PlainWriter):
        def encode(self, batch: Sequence[Message]) -> bytes:
            parts = []
            for message in batch:
                if getattr(message, "drop", False):
                    continue
                text = PlainWriter.encode(self, [message])
                errors = getattr(message, "errors", [])
                if errors:
                    text = text.replace(b"\n", ("\n  INVALID: " + one_line(errors) + "\n").encode(), 1)
                parts.append(text)
            return b"".join(parts)

    class CheckedTerminal(TerminalWriter):
        def write_batch(self, batch: Sequence[Message]) -> None:
            from natsctl.cli.run import warn

            kept = [m for m in batch if not getattr(m, "drop", False)]
            for message in kept:
                errors = getattr(message, "errors", [])
                if errors:
                    warn(f"sequence {message.sequence} is invalid: {one_line(errors)}")
            super().write_batch(kept)

    if output == "json":
        return CheckedJson()
    if output == "raw":
        return CheckedRaw()
    return CheckedTerminal() if stdout_is_terminal() else CheckedPlain()


# -- reading channels to their end -------------------------------------------------------------------


def read_spec(channel: str, since: str | None = None, sequence: int | None = None) -> SubscribeSpec:
    from natsctl.core.model import StartKind, StartPosition, SubscribeSpec
    from natsctl.core.timeparse import parse_time

    if since is not None:
        start = StartPosition(StartKind.TIME, time=parse_time(since, what="--since"))
    elif sequence is not None:
        start = StartPosition(StartKind.SEQUENCE, sequence=sequence)
    else:
        start = StartPosition(StartKind.ALL)
    return SubscribeSpec(channel=channel, start=start, ack=False, stop_at_end=True, create=False)


async def messages_of(subscription: Subscription) -> AsyncIterator[Message]:
    async for batch in subscription.batches():
        for message in batch:
            yield message


def checked_subscription(subscription: Subscription, request: Any, backend: Backend) -> tuple[CheckedSubscription, Any]:
    """`sub` / `replay --validate`: the checked subscription and the writer for it."""
    checks: ReadChecks = request.checks
    from natsctl.cli.failures import consumer_label

    park = (
        publishing_park(backend, checks.dead_letter, consumer_label(subscription.spec)) if checks.dead_letter else None
    )
    checked = CheckedSubscription(subscription, checks, park, exclusive=request.exec_cmd is not None)
    return checked, None if request.exec_cmd else checked_writer(request.output)
