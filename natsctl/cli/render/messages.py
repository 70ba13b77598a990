"""How delivered messages are written to stdout: readable, ``--json`` envelopes, or ``--raw`` payloads.

Each writer encodes a whole batch into one bytes object; ``sub`` hands it to an outlet
(``natsctl.cli.outlet``) that counts what the reader really took, and acks only that. On a terminal
the readable form is printed with rich instead (a terminal takes what it is given).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses for a str
from operator import itemgetter
from typing import BinaryIO

from natsctl.core.envelope import message_to_json
from natsctl.core.model import Message, WireBatch, WireColumns
from natsctl.core.timeparse import format_time

from . import stdout_is_terminal


class MessageWriter:
    def __init__(self, out: BinaryIO | None = None) -> None:
        self.out = out or sys.stdout.buffer

    def write_batch(self, batch: Sequence[Message]) -> None:
        self.out.write(self.encode(batch))
        self.out.flush()

    def encode(self, batch: Sequence[Message]) -> bytes:
        raise NotImplementedError

    def sizes(self, batch: Sequence[Message]) -> list[int]:
        """The encoded size of each message (what a short write is cut against)."""
        return [len(self.encode([message])) for message in batch]


_ZERO = timedelta(0)
_ONE_SECOND = timedelta(seconds=1)


class JsonWriter(MessageWriter):
    """``message_to_json`` per message, byte for byte, written without building a dict per message.

    The common message (UTF-8 data, no headers, a UTC time) is formatted directly; the names and the
    time down to the second are encoded once and reused. Anything else goes through the envelope code.
    """

    MAX_NAMES = 1024  # a wildcard channel has many subjects: cache a bounded number of them

    def __init__(self, out: BinaryIO | None = None) -> None:
        super().__init__(out)
        self.names: dict[str, str] = {}
        self.second = datetime(1970, 1, 1, tzinfo=UTC)  # the second second_text spells
        self.second_text = "1970-01-01T00:00:00"

    def encode(self, batch: Sequence[Message]) -> bytes:
        if isinstance(batch, WireBatch):
            columns = batch.columns()
            if columns is not None:
                try:
                    return self._encode_text_columns(columns)
                except UnicodeDecodeError:  # a payload that is no UTF-8 text: the Messages, as below
                    pass
        return self._encode_messages(batch)

    def _encode_text_columns(self, columns: WireColumns) -> bytes:
        """``_encode_messages`` for a batch whose payloads are all UTF-8 text, from its wire columns.

        Every field comes from a C-level ``map`` and each line is one ``%`` of the envelope's template:
        no Python bytecode runs per message.
        """
        from orjson import dumps  # escapes a str exactly as json.dumps(ensure_ascii=False) does (tested)

        # Lazily, line by line: orjson's result keeps a buffer of ~4 KB whatever its length, so a list
        # of them would cost megabytes per batch. A UnicodeDecodeError reaches the caller.
        texts = map(dumps, map(bytes.decode, columns.payloads))
        seconds = list(map(_SECONDS, columns.stamps))
        second_texts = {second: b'"time":"' + _utc_second(int(second)).encode() for second in set(seconds)}
        subject_texts = {subject: self.name(subject.decode()).encode() for subject in set(columns.subjects)}
        redelivered = {deliveries: _REDELIVERED[deliveries == b"1"] for deliveries in set(columns.deliveries)}
        line = (
            b'{"channel":' + self.name(columns.channel).encode() + b',"subject":%s,"seq":%s,%s.%sZ",'
            b'"redelivered":%s,"deliveries":%s,"headers":null,"data":%s,"encoding":"utf-8"}\n'
        )
        fields = zip(
            map(subject_texts.__getitem__, columns.subjects),
            columns.sequences,
            map(second_texts.__getitem__, seconds),
            map(_MICROSECONDS, columns.stamps),
            map(redelivered.__getitem__, columns.deliveries),
            columns.deliveries,
            texts,
            strict=True,
        )
        return b"".join(map(line.__mod__, fields))

    def _encode_messages(self, batch: Sequence[Message]) -> bytes:
        # One loop, inlined: this runs for every message of a replay and each call costs.
        parts: list[str] = []
        append = parts.append
        channel = subject = None  # the last names seen, by identity (a batch shares its str objects)
        channel_text = subject_text = ""
        for message in batch:
            moment = message.time
            if message.headers or moment is None or moment.tzinfo is not UTC:
                append(message_to_json(message) + "\n")
                continue
            try:
                text = message.data.decode("utf-8")
            except UnicodeDecodeError:
                append(message_to_json(message) + "\n")
                continue
            if message.channel is not channel:
                channel, channel_text = message.channel, self.name(message.channel)
            if message.subject is not subject:
                subject, subject_text = message.subject, self.name(message.subject)
            if not _ZERO <= moment - self.second < _ONE_SECOND:  # cheaper than replace() per message
                self.second = moment.replace(microsecond=0)
                self.second_text = self.second.isoformat()[:19]
            append(
                f'{{"channel":{channel_text},"subject":{subject_text},"seq":{message.sequence},'
                f'"time":"{self.second_text}.{moment.microsecond:06d}Z",'
                f'"redelivered":{"true" if message.redelivered else "false"},"deliveries":{message.deliveries},'
                f'"headers":null,"data":{encode_basestring(text)},"encoding":"utf-8"}}\n'
            )
        return "".join(parts).encode("utf-8")

    def name(self, name: str) -> str:
        encoded = self.names.get(name)
        if encoded is None:
            encoded = encode_basestring(name)
            if len(self.names) < self.MAX_NAMES:
                self.names[name] = encoded
        return encoded


def _utc_second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()[:19]


_REDELIVERED = (b"true", b"false")  # indexed by "a first delivery"
_SECONDS = itemgetter(slice(None, -9))  # of a nanosecond stamp's digits
_MICROSECONDS = itemgetter(slice(-9, -3))  # the fraction, to the microsecond (truncated, as format_time does)


class RawWriter(MessageWriter):
    def encode(self, batch: Sequence[Message]) -> bytes:
        if isinstance(batch, WireBatch):
            return b"\n".join(batch.payloads) + b"\n" if len(batch) else b""
        return b"".join(m.data + b"\n" for m in batch)

    def sizes(self, batch: Sequence[Message]) -> list[int]:
        return [len(m.data) + 1 for m in batch]


def _marker(message: Message) -> str:
    if not message.redelivered:
        return ""
    return f" (redelivered, delivery {message.deliveries})" if message.deliveries > 1 else " (redelivered)"


def _body_text(data: bytes, pretty: bool) -> str:
    text = data.decode("utf-8", errors="replace")
    if pretty and text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except (ValueError, RecursionError):  # not JSON, or nested too deep to pretty-print: as it is
            pass
    return text


def readable(message: Message, pretty: bool) -> tuple[str, list[str], str]:
    head = f"[#{message.sequence}] {format_time(message.time) or '-'} {message.subject}{_marker(message)}"
    headers = [f"  {k}: {v}" for k, values in (message.headers or {}).items() for v in values]
    return head, headers, _body_text(message.data, pretty)


class PlainWriter(MessageWriter):
    """The readable form without colour, for pipes and files."""

    def encode(self, batch: Sequence[Message]) -> bytes:
        parts = []
        for message in batch:
            head, headers, body = readable(message, pretty=False)
            parts.append("\n".join([head, *headers, body, ""]) + "\n")
        return "".join(parts).encode("utf-8")


class TerminalWriter(MessageWriter):
    """The readable form with colour and pretty JSON bodies."""

    def __init__(self) -> None:
        super().__init__()
        from . import stdout_console

        self.console = stdout_console()

    def write_batch(self, batch: Sequence[Message]) -> None:
        from rich.text import Text

        for message in batch:
            head, headers, body = readable(message, pretty=True)
            self.console.print(Text(head, style="bold cyan"))
            for line in headers:
                self.console.print(Text(line, style="magenta"))
            self.console.print(Text(body))
            self.console.print()
        self.console.file.flush()


def writer_for(output: str) -> MessageWriter:
    """``json``, ``raw`` or ``text`` (readable; coloured on a terminal)."""
    if output == "json":
        return JsonWriter()
    if output == "raw":
        return RawWriter()
    return TerminalWriter() if stdout_is_terminal() else PlainWriter()
