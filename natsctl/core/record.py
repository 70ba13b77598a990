"""The publish record (`pub --record FILE`) and its check against a channel (`natsctl verify`).

One JSON object per confirmed message, in input order:
``{"line": 17, "seq": 4711, "stream": "orders", "sha256": "<hex of the payload>"}`` plus
``"duplicate": true`` when the server recognised the message id of an earlier copy (``seq`` is then
that copy's). ``line`` is the input line ("line N" sources), else the message's position from 1.
The payload digest lets verify tell a stored message from another one at the same sequence.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from .errors import UsageError
from .model import OutgoingMessage, PublishAck

_LINE = re.compile(r"^line (\d+)$")
SHOWN = 20  # line numbers listed per problem in the report


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def line_of(source: str, position: int) -> int:
    found = _LINE.match(source or "")
    return int(found.group(1)) if found else position


class Recorder:
    """Remembers each message's line and digest as it is handed to the backend, writes each ack.

    The backend's ack index is the position in the message stream it was given, so the record is
    made from the same stream: entries are dropped as their ack arrives and memory stays small.
    """

    def __init__(self, handle: IO[str]) -> None:
        self.handle = handle
        self.sent: dict[int, tuple[int, str]] = {}
        self.count = 0

    async def wrap(self, messages: Any) -> AsyncIterator[OutgoingMessage]:
        async for message in messages:
            self.sent[self.count] = (line_of(message.source, self.count + 1), digest(message.data))
            self.count += 1
            yield message

    def on_ack(self, ack: PublishAck) -> None:
        line, sha = self.sent.pop(ack.index, (ack.index + 1, ""))
        entry: dict[str, Any] = {"line": line, "seq": ack.sequence, "stream": ack.stream}
        if sha:
            entry["sha256"] = sha
        if ack.duplicate:
            entry["duplicate"] = True
        self.handle.write(json.dumps(entry) + "\n")


@dataclass(slots=True)
class Entry:
    line: int
    seq: int
    sha256: str = ""
    duplicate: bool = False


def read_record(lines: Iterable[str], name: str) -> list[Entry]:
    """Parse a record file; a bad line is a usage error naming it."""
    entries = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            item = json.loads(text)
            entry = Entry(
                int(item["line"]), int(item["seq"]), str(item.get("sha256") or ""), bool(item.get("duplicate"))
            )
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
            # OverflowError: a number such as 1e999 (infinite); RecursionError: arrays nested thousands deep
            raise UsageError(f"{name} line {number} is not a natsctl pub --record entry") from None
        if entry.seq == 0:
            # NATS Streaming confirms a publish without its sequence, so there is nothing to look up.
            raise UsageError(
                f"{name} line {number} has no sequence (NATS Streaming does not confirm with one): verify needs a JetStream channel"
            )
        if entry.seq < 0 or entry.line < 1:
            raise UsageError(f"{name} line {number}: line and seq must be positive")
        entries.append(entry)
    return entries


@dataclass(slots=True)
class Report:
    """What verify found; ``ok`` only when nothing was lost, changed, duplicated or reordered."""

    channel: str
    recorded: int = 0  # distinct input lines in the record
    present: int = 0  # of those, found once at their sequence with their payload
    missing: list[int] = field(default_factory=list)  # lines whose sequence is not in the channel
    changed: list[int] = field(default_factory=list)  # lines whose sequence holds another payload
    duplicated: list[int] = field(default_factory=list)  # lines stored more than once
    out_of_order: list[int] = field(default_factory=list)  # lines stored before an earlier line
    extra_copies: int = 0  # stored copies beyond one per line
    first_seq: int | None = None
    last_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.duplicated or self.out_of_order)

    def as_dict(self) -> dict[str, Any]:
        lists = {k: getattr(self, k) for k in ("missing", "changed", "duplicated", "out_of_order")}
        return {
            "channel": self.channel,
            "ok": self.ok,
            "recorded": self.recorded,
            "present": self.present,
            **{f"{k}_count": len(v) for k, v in lists.items()},
            **{f"{k}_lines": v[:SHOWN] for k, v in lists.items()},
            "extra_copies": self.extra_copies,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
        }


def check(channel: str, entries: list[Entry], stored: dict[int, str]) -> Report:
    """Compare the record with ``stored`` (sequence -> payload digest, from the first recorded sequence on)."""
    report = Report(channel)
    by_line: dict[int, set[int]] = defaultdict(set)
    digest_of_line: dict[int, str] = {}
    for entry in entries:
        by_line[entry.line].add(entry.seq)
        if entry.sha256:
            digest_of_line[entry.line] = entry.sha256
    report.recorded = len(by_line)
    if entries:
        report.first_seq = min(e.seq for e in entries)
        report.last_seq = max(e.seq for e in entries)
    _check_presence(report, by_line, digest_of_line, stored)
    _check_copies(report, by_line, digest_of_line, stored)
    _check_order(report, by_line)
    return report


def _check_presence(
    report: Report, by_line: dict[int, set[int]], digests: dict[int, str], stored: dict[int, str]
) -> None:
    for line in sorted(by_line):
        seqs = by_line[line]
        found = [s for s in seqs if s in stored]
        if not found:
            report.missing.append(line)
        elif line in digests and all(stored[s] != digests[line] for s in found):
            report.changed.append(line)
        else:
            report.present += 1


def _check_copies(
    report: Report, by_line: dict[int, set[int]], digests: dict[int, str], stored: dict[int, str]
) -> None:
    """A line is duplicated when it was confirmed at two sequences, or when the channel holds its
    payload more often than the record has lines with that payload."""
    lines_per_digest = Counter(digests.values())
    copies = Counter(stored.values())
    duplicated = set()
    for line, seqs in by_line.items():
        if len({s for s in seqs if s in stored}) > 1:
            duplicated.add(line)
    extra_by_digest = {d: copies[d] - n for d, n in lines_per_digest.items() if copies[d] > n}
    for line, sha in digests.items():
        if sha in extra_by_digest:
            duplicated.add(line)
    report.duplicated = sorted(duplicated)
    undigested = sum(
        max(0, len({s for s in seqs if s in stored}) - 1) for line, seqs in by_line.items() if line not in digests
    )
    report.extra_copies = sum(extra_by_digest.values()) + undigested


def _check_order(report: Report, by_line: dict[int, set[int]]) -> None:
    """Sequences must grow with line numbers: a later line stored before an earlier one is reordered."""
    highest = 0
    for line in sorted(by_line):
        seq = min(by_line[line])
        if seq < highest:
            report.out_of_order.append(line)
        highest = max(highest, seq)
