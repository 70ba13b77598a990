"""natsctl's JSON envelope: one JSON object per message, binary-safe, readable back by ``pub --envelope``.

    {"channel": "orders", "subject": "orders", "seq": 7, "time": "2026-11-28T10:00:00.123456Z",
     "redelivered": false, "deliveries": 1, "headers": {"K": ["v"]} | null,
     "data": "<text>", "encoding": "utf-8" | "base64"}

``data`` holds the payload as text when it is valid UTF-8, otherwise base64 with ``encoding`` saying so.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from .errors import UsageError
from .model import Message, OutgoingMessage
from .names import validate_header_name, validate_header_value
from .timeparse import format_time


def encode_data(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def message_to_dict(message: Message) -> dict[str, Any]:
    text, encoding = encode_data(message.data)
    return {
        "channel": message.channel,
        "subject": message.subject,
        "seq": message.sequence,
        "time": format_time(message.time),
        "redelivered": message.redelivered,
        "deliveries": message.deliveries,
        "headers": message.headers or None,
        "data": text,
        "encoding": encoding,
    }


def message_to_json(message: Message) -> str:
    return json.dumps(message_to_dict(message), ensure_ascii=False, separators=(",", ":"))


def decode_data(envelope: dict[str, Any], source: str) -> bytes:
    data = envelope.get("data")
    if data is None:
        return b""
    if not isinstance(data, str):
        raise UsageError(f"{source}: envelope field 'data' must be a string")
    encoding = envelope.get("encoding", "utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError(f"{source}: envelope 'data' is not valid base64") from None
    if encoding not in ("utf-8", "utf8"):
        raise UsageError(f"{source}: unknown envelope encoding {encoding!r} (use utf-8 or base64)")
    return data.encode("utf-8")


def decode_headers(envelope: dict[str, Any], source: str) -> dict[str, list[str]] | None:
    headers = envelope.get("headers")
    if not headers:
        return None
    if not isinstance(headers, dict):
        raise UsageError(f"{source}: envelope field 'headers' must be an object")
    result: dict[str, list[str]] = {}
    for key, values in headers.items():
        if isinstance(values, str):
            values = [values]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise UsageError(f"{source}: header {key!r} must be a string or a list of strings")
        name = validate_header_name(str(key), f"{source}: ")
        result[name] = [validate_header_value(name, value, f"{source}: ") for value in values]
    return result


def decode_subject(envelope: dict[str, Any], source: str) -> str:
    """``pub --keep-subject``: the envelope's subject, a literal NATS subject."""
    from .names import validate_channel

    subject = envelope.get("subject")
    if not isinstance(subject, str) or not subject:
        raise UsageError(f"{source}: --keep-subject needs the envelope field 'subject' (a string)")
    try:
        return validate_channel(subject)
    except UsageError as exc:
        raise UsageError(f"{source}: envelope 'subject': {exc.message}") from None


def outgoing_from_envelope(line: bytes | str, source: str, *, keep_subject: bool = False) -> OutgoingMessage:
    """Parse one envelope line (as written by ``sub --json``) into a message to publish; with
    ``keep_subject`` it goes to the envelope's own subject."""
    try:
        envelope = json.loads(line)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"{source}: not a JSON envelope ({exc.__class__.__name__})") from None
    except RecursionError:
        raise UsageError(f"{source}: not a JSON envelope (nested too deeply)") from None
    if not isinstance(envelope, dict):
        raise UsageError(f"{source}: a JSON envelope must be an object")
    return OutgoingMessage(
        data=decode_data(envelope, source),
        headers=decode_headers(envelope, source),
        source=source,
        subject=decode_subject(envelope, source) if keep_subject else None,
    )
