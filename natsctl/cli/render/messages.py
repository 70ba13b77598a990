"""How delivered messages are written to stdout: readable, ``--json`` envelopes, or ``--raw`` payloads.

Each writer takes a whole batch and makes one ``write()`` of it, then flushes, so that what is acked
afterwards has really left the process.
"""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

from natsctl.core.envelope import message_to_json
from natsctl.core.model import Message
from natsctl.core.timeparse import format_time

from . import stdout_is_terminal


class MessageWriter:
    def __init__(self, out: BinaryIO | None = None) -> None:
        self.out = out or sys.stdout.buffer

    def write_batch(self, batch: list[Message]) -> None:
        self.out.write(self.encode(batch))
        self.out.flush()

    def encode(self, batch: list[Message]) -> bytes:
        raise NotImplementedError


class JsonWriter(MessageWriter):
    def encode(self, batch: list[Message]) -> bytes:
        return ("\n".join(map(message_to_json, batch)) + "\n").encode("utf-8")


class RawWriter(MessageWriter):
    def encode(self, batch: list[Message]) -> bytes:
        return b"".join(m.data + b"\n" for m in batch)


def _marker(message: Message) -> str:
    if not message.redelivered:
        return ""
    return f" (redelivered, delivery {message.deliveries})" if message.deliveries > 1 else " (redelivered)"


def _body_text(data: bytes, pretty: bool) -> str:
    text = data.decode("utf-8", errors="replace")
    if pretty and text[:1] in "{[":
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return text


def readable(message: Message, pretty: bool) -> tuple[str, list[str], str]:
    head = f"[#{message.sequence}] {format_time(message.time) or '-'} {message.subject}{_marker(message)}"
    headers = [f"  {k}: {v}" for k, values in (message.headers or {}).items() for v in values]
    return head, headers, _body_text(message.data, pretty)


class PlainWriter(MessageWriter):
    """The readable form without colour, for pipes and files."""

    def encode(self, batch: list[Message]) -> bytes:
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

    def write_batch(self, batch: list[Message]) -> None:
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
