"""JetStream deliveries kept as they came off the wire, a batch at a time.

A bulk read receives runs of MSG frames (natsctl.transport.fast.route_raw): three lists of bytes. A
``Deliveries`` batch keeps those lists and reads each message's metadata from its ack subject
(``$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ns>.<pending>``, or the form
with a domain and an account hash) into five columns of digits; a Message is built only when one is
asked for. The writers of a bulk read format the columns directly (natsctl.core.model.WireColumns).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import overload

from natsctl.core.model import Message, WireBatch, WireColumns

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The plain ack subject split on ".": $JS, ACK, stream, consumer, then the five numbers. Stream and
# consumer names hold no dot, so every plain subject has exactly nine tokens.
_PLAIN_TOKENS = 9
_NUMBERS_AT = 4  # where the numbers start: delivered, stream seq, consumer seq, timestamp, pending
_DOMAIN_NUMBERS_AT = 6  # $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<five>[.<random token>]


class Deliveries(WireBatch):
    """JetStream messages of one channel, column by column; ``headers`` None when none has any.

    ``delivered``, ``stream_seqs``, ``consumer_seqs``, ``stamps`` (ns) and ``pending`` hold each
    message's numbers as the ack subject spells them (decimal digits, checked)."""

    __slots__ = (
        "channel",
        "consumer_seqs",
        "delivered",
        "headers",
        "payloads",
        "pending",
        "replies",
        "stamps",
        "stream_seqs",
        "subjects",
    )

    def __init__(
        self,
        channel: str,
        subjects: list[bytes],
        replies: list[bytes],
        payloads: list[bytes],
        headers: list[dict[str, list[str]] | None] | None,
        numbers: tuple[list[bytes], list[bytes], list[bytes], list[bytes], list[bytes]],
    ) -> None:
        self.channel = channel
        self.subjects = subjects
        self.replies = replies  # each message's ack subject: its ack token
        self.payloads = payloads
        self.headers = headers
        self.delivered, self.stream_seqs, self.consumer_seqs, self.stamps, self.pending = numbers

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
        numbers = _plain_numbers(replies)
        if numbers is None:
            kept, numbers = _numbers_one_by_one(replies)
            if len(kept) < len(replies):
                subjects = [subjects[i] for i in kept]
                replies = [replies[i] for i in kept]
                payloads = [payloads[i] for i in kept]
                headers = [headers[i] for i in kept] if headers is not None else None
        return cls(channel, subjects, replies, payloads, headers, numbers)

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
                (
                    self.delivered[index],
                    self.stream_seqs[index],
                    self.consumer_seqs[index],
                    self.stamps[index],
                    self.pending[index],
                ),
            )
        return self._message(index)

    def __iter__(self) -> Iterator[Message]:
        return map(self._message, range(len(self.replies)))

    def _message(self, i: int) -> Message:
        deliveries = int(self.delivered[i])
        headers = self.headers[i] if self.headers is not None else None
        return Message(
            self.channel,
            self.subjects[i].decode(),
            int(self.stream_seqs[i]),
            _EPOCH + timedelta(microseconds=int(self.stamps[i]) // 1000),
            self.payloads[i],
            headers,
            deliveries > 1,
            deliveries,
            int(self.pending[i]),
            self.replies[i],
        )

    @property
    def last_pending(self) -> int:
        return int(self.pending[-1])

    def sequences(self) -> list[int]:
        return list(map(int, self.stream_seqs))

    def consumer_sequences(self) -> list[int]:
        return list(map(int, self.consumer_seqs))

    def columns(self) -> WireColumns | None:
        if self.headers is not None and any(self.headers):
            return None
        if self.stamps and min(map(len, self.stamps)) < 10:
            return None  # before 2001-09-09: the writers' second/fraction split needs 10 digits
        return WireColumns(self.channel, self.subjects, self.stream_seqs, self.stamps, self.delivered, self.payloads)


def _plain_numbers(
    replies: list[bytes],
) -> tuple[list[bytes], list[bytes], list[bytes], list[bytes], list[bytes]] | None:
    """The five number columns of a batch whose every reply is a plain ack subject, else None.

    One join and one split for the whole batch, then each column is a stride of the tokens: no
    Python bytecode per message. A reply with a token more or less shifts the strides, which the
    $JS / ACK columns and the digits check catch.
    """
    count = len(replies)
    tokens = b".".join(replies).split(b".")
    if len(tokens) != _PLAIN_TOKENS * count:
        return None
    if count and ({*tokens[0::_PLAIN_TOKENS]} != {b"$JS"} or {*tokens[1::_PLAIN_TOKENS]} != {b"ACK"}):
        return None
    columns = [tokens[_NUMBERS_AT + k :: _PLAIN_TOKENS] for k in range(5)]
    if count and not b"".join(b"".join(column) for column in columns).isdigit():
        return None
    delivered, stream_seqs, consumer_seqs, stamps, pending = columns
    return delivered, stream_seqs, consumer_seqs, stamps, pending


def _numbers_one_by_one(
    replies: list[bytes],
) -> tuple[list[int], tuple[list[bytes], list[bytes], list[bytes], list[bytes], list[bytes]]]:
    """The kept messages' indexes and their number columns, a reply at a time (any form)."""
    kept: list[int] = []
    columns: tuple[list[bytes], list[bytes], list[bytes], list[bytes], list[bytes]] = ([], [], [], [], [])
    for i, reply in enumerate(replies):
        numbers = ack_numbers(reply)
        if numbers is not None:
            kept.append(i)
            for column, number in zip(columns, numbers, strict=True):
                column.append(number)
    return kept, columns


def ack_numbers(reply: bytes) -> list[bytes] | None:
    """Delivered, stream sequence, consumer sequence, timestamp and pending of an ack subject (plain
    or domain form) as digits, or None when ``reply`` is no ack subject."""
    tokens = reply.split(b".")
    if len(tokens) < _PLAIN_TOKENS or tokens[0] != b"$JS" or tokens[1] != b"ACK":
        return None
    at = _NUMBERS_AT if len(tokens) == _PLAIN_TOKENS else _DOMAIN_NUMBERS_AT
    numbers = tokens[at : at + 5]
    return numbers if len(numbers) == 5 and all(token.isdigit() for token in numbers) else None


def consumer_sequence(reply: bytes) -> int | None:
    """The consumer sequence an ack subject carries (either form), or None."""
    numbers = ack_numbers(reply)
    return int(numbers[2]) if numbers is not None else None
