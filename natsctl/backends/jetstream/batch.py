"""JetStream deliveries kept as they came off the wire, a batch at a time.

A bulk read receives runs of MSG frames (natsctl.transport.fast.route_raw): three lists of bytes. A
``Deliveries`` batch keeps those lists and reads each message's metadata from its ack subject
(``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>``, or the form
with a domain and an account hash) in one pass; a Message is built only when one is asked for. The
writers of a bulk read format the columns directly (natsctl.core.model.WireColumns).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import chain
from operator import itemgetter
from typing import overload

from natsctl.core.model import Message, WireBatch, WireColumns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# An ack subject is read as its five numbers split off the right (``reply.rsplit(b".", 5)``: six
# objects, not the nine of a whole split): the prefix $JS.ACK.<stream>.<consumer>, then delivered,
# stream sequence, consumer sequence, timestamp, pending. A domain-form subject is normalised to it.
PREFIX, DELIVERED, STREAM_SEQ, CONSUMER_SEQ, STAMP, PENDING = range(6)
_PLAIN_PREFIX_DOTS = 3  # $JS.ACK.<stream>.<consumer>
_NUMBERS = slice(DELIVERED, PENDING + 1)
# Fetchers for C-level maps over a batch (no Python bytecode per message).
_NUMBER_TOKENS = itemgetter(_NUMBERS)
_STAMP, _STREAM_SEQ, _DELIVERED = itemgetter(STAMP), itemgetter(STREAM_SEQ), itemgetter(DELIVERED)
_PREFIX = itemgetter(PREFIX)


class Deliveries(WireBatch):
    """JetStream messages of one channel, column by column; ``headers`` None when none has any."""

    __slots__ = ("channel", "headers", "metas", "payloads", "replies", "subjects")

    def __init__(
        self,
        channel: str,
        subjects: list[bytes],
        replies: list[bytes],
        payloads: list[bytes],
        headers: list[dict[str, list[str]] | None] | None,
        metas: list[list[bytes]],
    ) -> None:
        self.channel = channel
        self.subjects = subjects
        self.replies = replies  # each message's ack subject: its ack token
        self.payloads = payloads
        self.headers = headers
        self.metas = metas  # each ack subject as its prefix and five numbers (see PREFIX..PENDING)

    @classmethod
    def take(
        cls,
        channel: str,
        subjects: list[bytes],
        replies: list[bytes],
        payloads: list[bytes],
        headers: list[dict[str, list[str]] | None] | None = None,
    ) -> Deliveries:
        """A batch of what was received; a message whose reply is not a JetStream ack subject is
        dropped (nothing may raise into the parser that delivered it, and it cannot be acked)."""
        metas = [reply.rsplit(b".", 5) for reply in replies]
        if not _all_plain(metas):
            kept = [i for i, meta in enumerate(metas) if _normalise(meta)]
            if len(kept) < len(metas):
                subjects = [subjects[i] for i in kept]
                replies = [replies[i] for i in kept]
                payloads = [payloads[i] for i in kept]
                headers = [headers[i] for i in kept] if headers is not None else None
                metas = [metas[i] for i in kept]
        return cls(channel, subjects, replies, payloads, headers, metas)

    def __len__(self) -> int:
        return len(self.replies)

    @overload
    def __getitem__(self, index: int) -> Message: ...

    @overload
    def __getitem__(self, index: slice) -> Deliveries: ...

    def __getitem__(self, index: int | slice) -> Message | Deliveries:
        if isinstance(index, slice):
            return Deliveries(
                self.channel,
                self.subjects[index],
                self.replies[index],
                self.payloads[index],
                self.headers[index] if self.headers is not None else None,
                self.metas[index],
            )
        return self._message(index)

    def __iter__(self) -> Iterator[Message]:
        return map(self._message, range(len(self.replies)))

    def _message(self, i: int) -> Message:
        meta = self.metas[i]
        deliveries = int(meta[DELIVERED])
        headers = self.headers[i] if self.headers is not None else None
        return Message(
            self.channel,
            self.subjects[i].decode(),
            int(meta[STREAM_SEQ]),
            _EPOCH + timedelta(microseconds=int(meta[STAMP]) // 1000),
            self.payloads[i],
            headers,
            deliveries > 1,
            deliveries,
            int(meta[PENDING]),
            self.replies[i],
        )

    @property
    def last_pending(self) -> int:
        return int(self.metas[-1][PENDING])

    def sequences(self) -> list[int]:
        return [int(meta[STREAM_SEQ]) for meta in self.metas]

    def consumer_sequences(self) -> list[int]:
        return [int(meta[CONSUMER_SEQ]) for meta in self.metas]

    def columns(self) -> WireColumns | None:
        if self.headers is not None and any(self.headers):
            return None
        metas = self.metas
        stamps = list(map(_STAMP, metas))
        if stamps and min(map(len, stamps)) < 10:
            return None  # before 2001-09-09: the writers' second/fraction split needs 10 digits
        return WireColumns(
            self.channel,
            self.subjects,
            list(map(_STREAM_SEQ, metas)),
            stamps,
            list(map(_DELIVERED, metas)),
            self.payloads,
        )


def consumer_sequence(reply: bytes) -> int | None:
    """The consumer sequence an ack subject carries (either form), or None."""
    meta = reply.rsplit(b".", 5)
    if len(meta) != PENDING + 1 or not (_plain_prefix(meta[PREFIX]) or _normalise(meta)):
        return None
    return int(meta[CONSUMER_SEQ]) if meta[CONSUMER_SEQ].isdigit() else None


def _all_plain(metas: list[list[bytes]]) -> bool:
    """Every reply has the plain form with decimal numbers (the common case, checked in bulk)."""
    if not metas:
        return True
    if set(map(len, metas)) != {PENDING + 1} or not all(map(_plain_prefix, set(map(_PREFIX, metas)))):
        return False
    return b"".join(chain.from_iterable(map(_NUMBER_TOKENS, metas))).isdigit()


def _plain_prefix(prefix: bytes) -> bool:
    return prefix.startswith(b"$JS.ACK.") and prefix.count(b".") == _PLAIN_PREFIX_DOTS


def _normalise(meta: list[bytes]) -> bool:
    """Make ``meta`` (one reply split off the right) the plain form's prefix and five numbers; False
    when the reply is no ack subject at all. In place.

    The domain form, ``$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<five numbers>`` and, from
    nats-server 2.10, a random token after them, has its numbers at tokens 6 to 10 of a whole split."""
    tokens = b".".join(meta).split(b".")
    if len(tokens) >= 11 and tokens[0] == b"$JS" and tokens[1] == b"ACK":
        meta[:] = [b".".join(tokens[:6]), *tokens[6:11]]
    elif len(tokens) != _PLAIN_PREFIX_DOTS + 6 or tokens[0] != b"$JS" or tokens[1] != b"ACK":
        return False
    return all(token.isdigit() for token in meta[_NUMBERS])
