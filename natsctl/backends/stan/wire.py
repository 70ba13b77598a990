"""NATS Streaming's wire messages read and written without protobuf: the same bytes, the same values.

protobuf costs a reader twice: importing it and building the message classes at start-up (~50 ms of
CPU, a tenth of a 50,000-message read), and a Python object per MsgProto whose every field read
goes through it. This module reads proto.SCHEMA itself (the one source of field numbers and types)
and encodes and decodes with plain bytes operations:

- ``encode(name, **fields)`` is ``proto.encode``: proto3 leaves defaults off, fields in number order.
- ``decode(name, payload)`` is ``proto.decode``, with attributes for every field (defaults for those
  absent). Anything it does not take on itself (a group, an overlong varint, a field of the wrong wire
  type, a truncated or invalid payload) is handed to protobuf, which decides: the same result, or
  ``proto.DecodeError``, always.
- ``read_msg(payload, subject_field)`` reads a MsgProto as a tuple, with no object at all on the
  layout the servers send (sequence, subject, data, timestamp, then the redelivery fields).

tests/test_stan_wire.py holds all of it equal to protobuf: every recorded payload, and mutations of them.
"""

from __future__ import annotations

import struct
from functools import cache
from types import SimpleNamespace
from typing import Any, Final

from . import proto

_VARINT_KINDS = {"int32", "int64", "uint32", "uint64", "bool"}  # and enums
_MASK64 = (1 << 64) - 1
_MASK32 = (1 << 32) - 1


class _Unsure(Exception):
    """This module does not decide on the payload: protobuf does."""


@cache
def schema() -> dict[str, dict[int, tuple[str, str]]]:
    """Message name -> {field number: (field name, kind)}; kind is a scalar type or "enum"."""
    text = proto._strip_comments(proto.SCHEMA)
    blocks = proto._BLOCK.findall(text)
    enums = {name for kind, name, _ in blocks if kind == "enum"}
    out: dict[str, dict[int, tuple[str, str]]] = {}
    for kind, name, body in blocks:
        if kind == "message":
            out[name] = {
                int(number): (field, "enum" if type_name in enums else type_name)
                for type_name, field, number in proto._FIELD.findall(body)
            }
    return out


@cache
def _by_name(name: str) -> dict[str, tuple[int, str]]:
    return {field: (number, kind) for number, (field, kind) in schema()[name].items()}


@cache
def _defaults(name: str) -> dict[str, Any]:
    return {field: _default(kind) for field, kind in schema()[name].values()}


def _default(kind: str) -> Any:
    if kind == "string":
        return ""
    if kind == "bytes":
        return b""
    if kind == "bool":
        return False
    return 0


# ---- encoding


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative int below 2**64."""
    if value < 0x80:
        return bytes((value,))
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    if value < 0x200000:
        return bytes((value & 0x7F | 0x80, (value >> 7) & 0x7F | 0x80, value >> 14))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode(name: str, **fields: Any) -> bytes:
    """What ``proto.encode(name, **fields)`` gives: fields left out, None or default stay off the wire."""
    spec = _by_name(name)
    parts = []
    for field, value in fields.items():
        if value is None:
            continue
        try:
            number, kind = spec[field]
        except KeyError:
            raise ValueError(f"{name} has no field {field!r}") from None
        parts.append((number, kind, value))
    out = bytearray()
    for number, kind, value in sorted(parts, key=lambda part: part[0]):
        if kind == "string" or kind == "bytes":
            raw = value.encode() if kind == "string" else bytes(value)
            if raw:
                out += varint(number << 3 | 2) + varint(len(raw)) + raw
        elif value:
            value = int(value)
            low, high = _RANGES.get(kind, (0, 1))
            if not low <= value <= high:
                raise ValueError(f"value out of range for {name}.{field_name(name, number)}: {value}")
            out += varint(number << 3) + varint(value & _MASK64)  # negatives: 10 bytes, as protobuf
    return bytes(out)


_RANGES = {
    "int32": (-(1 << 31), (1 << 31) - 1),
    "enum": (-(1 << 31), (1 << 31) - 1),
    "int64": (-(1 << 63), (1 << 63) - 1),
    "uint32": (0, _MASK32),
    "uint64": (0, _MASK64),
}


def field_name(name: str, number: int) -> str:
    return schema()[name][number][0]


# ---- decoding


def _varint_at(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``i`` and where it ends; _Unsure when it is cut off or longer than protobuf reads."""
    result = 0
    shift = 0
    while True:
        if shift > 63:
            raise _Unsure
        byte = data[i]  # IndexError: cut off
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if shift == 63 and byte > 1:
                raise _Unsure  # bits past 64
            return result, i
        shift += 7


def _scalar(kind: str, value: int) -> Any:
    if kind == "bool":
        return value != 0
    if kind == "uint64":
        return value
    if kind == "uint32":
        return value & _MASK32
    if kind == "int64":
        return value - (1 << 64) if value >> 63 else value
    value &= _MASK32  # int32 and enums
    return value - (1 << 32) if value >> 31 else value


def _fields(name: str, data: bytes) -> dict[str, Any]:
    spec = schema()[name]
    values = dict(_defaults(name))
    size = len(data)
    i = 0
    value: Any
    try:
        while i < size:
            tag, i = _varint_at(data, i)
            number, wire = tag >> 3, tag & 7
            if number == 0 or tag > _MASK32:
                raise _Unsure  # not a field number protobuf takes
            if wire == 0:
                value, i = _varint_at(data, i)
            elif wire == 2:
                length, i = _varint_at(data, i)
                if i + length > size:
                    raise _Unsure
                value, i = data[i : i + length], i + length
            elif wire == 1 or wire == 5:
                i += 8 if wire == 1 else 4
                if i > size:
                    raise _Unsure
                value = None
            else:
                raise _Unsure  # groups, and wire types that do not exist
            known = spec.get(number)
            if known is None:
                continue  # an unknown field: skipped, as protobuf does
            field, kind = known
            if kind == "string" or kind == "bytes":
                if wire != 2:
                    raise _Unsure
                values[field] = value.decode() if kind == "string" else bytes(value)
            else:
                if wire != 0:
                    raise _Unsure
                values[field] = _scalar(kind, value)
    except (IndexError, UnicodeDecodeError):
        raise _Unsure from None
    return values


def decode(name: str, payload: bytes) -> Any:
    """``proto.decode(name, payload)``'s values as attributes; raises ``proto.DecodeError`` as it does."""
    try:
        return SimpleNamespace(**_fields(name, payload))
    except _Unsure:
        return proto.decode(name, payload)


# ---- MsgProto, the message a subscriber gets

# read_msg's tuple, by index
SEQUENCE: Final = 0
DATA: Final = 1
TIMESTAMP: Final = 2
REDELIVERED: Final = 3
REDELIVERY_COUNT: Final = 4


def subject_field(channel: str) -> bytes:
    """MsgProto's subject field as the server writes it for ``channel`` (see ``read_msg``)."""
    subject = channel.encode()
    return b"\x12" + varint(len(subject)) + subject if subject else b""


def read_msg(payload: bytes, subject: bytes) -> tuple[int, bytes, int, bool, int] | None:
    """A MsgProto as (sequence, data, timestamp, redelivered, redeliveryCount); None when it is none.

    ``subject`` is ``subject_field(channel)``. The usual layout (fields 1, 2, 4, 5 in order, then 6
    and 7 when redelivered; a timestamp of nine bytes, any time from 1970 to 2262) is read inline, the
    subject compared, not decoded; anything else field by field (``decode``).
    """
    try:
        if payload[0] != 0x08:
            raise _Unsure
        sequence = payload[1]
        if sequence < 0x80:
            i = 2
        else:
            byte = payload[2]
            if byte < 0x80:
                sequence = sequence & 0x7F | byte << 7
                i = 3
            elif payload[3] < 0x80:
                sequence = sequence & 0x7F | (byte & 0x7F) << 7 | payload[3] << 14
                i = 4
            else:
                sequence, i = _varint_at(payload, 1)
        if not payload.startswith(subject, i):
            raise _Unsure
        i += len(subject)
        if payload[i] == 0x22:
            length = payload[i + 1]
            if length < 0x80:
                i += 2
            else:
                byte = payload[i + 2]
                if byte > 0x7F:
                    raise _Unsure
                length = length & 0x7F | byte << 7
                i += 3
            end = i + length
            data = payload[i:end]
            i = end
        else:
            data = b""
        if payload[i] != 0x28:
            raise _Unsure
        b0, b1, b2, b3, b4, b5, b6, b7, b8 = unpack_nine(payload, i + 1)  # struct.error when cut off
        if b8 > 0x7F or (b0 & b1 & b2 & b3 & b4 & b5 & b6 & b7) < 0x80:
            raise _Unsure  # not a nine-byte varint
        timestamp = (
            b0 + (b1 << 7) + (b2 << 14) + (b3 << 21) + (b4 << 28) + (b5 << 35) + (b6 << 42) + (b7 << 49) + (b8 << 56)
        ) - NINE_CONTINUATIONS
        i += 10
        if i == len(payload):
            return sequence, data, timestamp, False, 0
        redelivered = False
        count = 0
        if payload[i] == 0x30 and payload[i + 1] < 0x80:
            redelivered = payload[i + 1] != 0
            i += 2
        if i < len(payload) and payload[i] == 0x38:
            count, i = _varint_at(payload, i + 1)
            count &= _MASK32
        if i != len(payload):
            raise _Unsure
        return sequence, data, timestamp, redelivered, count
    except (_Unsure, IndexError, struct.error):
        pass
    try:
        fields = _fields("MsgProto", payload)
    except _Unsure:
        try:
            msg = proto.decode("MsgProto", payload)
        except proto.DecodeError:
            return None
        return msg.sequence, bytes(msg.data), msg.timestamp, msg.redelivered, msg.redeliveryCount
    return (
        fields["sequence"],
        fields["data"],
        fields["timestamp"],
        fields["redelivered"],
        fields["redeliveryCount"],
    )


unpack_nine = struct.Struct("<9B").unpack_from
NINE_CONTINUATIONS = sum(0x80 << (7 * n) for n in range(8))  # the high bits of a nine-byte varint's first eight bytes
