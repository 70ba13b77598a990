"""The NATS Streaming wire messages: natsctl's own .proto, turned into protobuf classes at runtime.

The schema text below is the single source of truth (no protoc, no generated module, nothing to keep
in sync): a small parser reads it into a ``FileDescriptorProto`` and ``message_factory`` builds the
classes. Field numbers are the published protocol's; the tests check every recorded payload decodes
and re-encodes byte for byte.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.message import Message

SCHEMA = """\
// NATS Streaming (STAN) client <-> server messages, written for natsctl.
// Field numbers are those of the published protocol; names follow it so the
// recorded transcripts in tests/fixtures/stan-protocol decode field by field.
// natsctl does not run protoc: natsctl/backends/stan/proto.py reads this file
// at runtime and builds the message classes with descriptor_pb2.
syntax = "proto3";
package natsctl.stan;

// Client -> server on <pubPrefix>.<channel>; the PubAck goes to the reply subject.
message PubMsg {
  string clientID = 1;
  string guid = 2;
  string subject = 3; // the channel: the server stores by this, not by the NATS subject
  string reply = 4;
  bytes data = 5;
  bytes connID = 6;
  bytes sha256 = 10;
}

message PubAck {
  string guid = 1;
  string error = 2;
}

// Server -> subscriber inbox, no reply subject.
message MsgProto {
  uint64 sequence = 1;
  string subject = 2;
  string reply = 3;
  bytes data = 4;
  int64 timestamp = 5; // ns since the epoch
  bool redelivered = 6;
  uint32 redeliveryCount = 7;
  uint32 CRC32 = 10;
}

// Client -> the subscription's ackInbox, no reply subject.
message Ack {
  string subject = 1;
  uint64 sequence = 2;
}

message ConnectRequest {
  string clientID = 1;
  string heartbeatInbox = 2;
  int32 protocol = 3;
  bytes connID = 4;
  int32 pingInterval = 5; // seconds
  int32 pingMaxOut = 6;
}

message ConnectResponse {
  string pubPrefix = 1;
  string subRequests = 2;
  string unsubRequests = 3;
  string closeRequests = 4;
  string error = 5;
  string subCloseRequests = 6;
  string pingRequests = 7;
  int32 pingInterval = 8;
  int32 pingMaxOut = 9;
  int32 protocol = 10;
  string publicKey = 100;
}

message Ping {
  bytes connID = 1;
}

message PingResponse {
  string error = 1;
}

enum StartPosition {
  NewOnly = 0;
  LastReceived = 1;
  TimeDeltaStart = 2;
  SequenceStart = 3;
  First = 4;
}

message SubscriptionRequest {
  string clientID = 1;
  string subject = 2;
  string qGroup = 3;
  string inbox = 4;
  int32 maxInFlight = 5;
  int32 ackWaitInSecs = 6;
  string durableName = 7;
  StartPosition startPosition = 10;
  uint64 startSequence = 11;
  int64 startTimeDelta = 12; // ns before now
}

message SubscriptionResponse {
  string ackInbox = 2;
  string error = 3;
}

// Sent on unsubRequests (deletes a durable) or subCloseRequests (keeps it).
message UnsubscribeRequest {
  string clientID = 1;
  string subject = 2;
  string inbox = 3; // the ackInbox of the subscription
  string durableName = 4;
}

message CloseRequest {
  string clientID = 1;
}

message CloseResponse {
  string error = 1;
}
"""

_SCALARS = {
    "string": 9,  # FieldDescriptorProto.TYPE_STRING
    "bytes": 12,
    "bool": 8,
    "int32": 5,
    "int64": 3,
    "uint32": 13,
    "uint64": 4,
}
_TYPE_ENUM = 14
_BLOCK = re.compile(r"(message|enum)\s+(\w+)\s*\{([^}]*)\}", re.S)
_FIELD = re.compile(r"^\s*(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", re.M)
_VALUE = re.compile(r"^\s*(\w+)\s*=\s*(\d+)\s*;", re.M)
PACKAGE = "natsctl.stan"


def _strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", "", text)


def _file_descriptor() -> Any:
    from google.protobuf import descriptor_pb2

    fdp = descriptor_pb2.FileDescriptorProto(name="natsctl_stan.proto", package=PACKAGE, syntax="proto3")
    blocks = _BLOCK.findall(_strip_comments(SCHEMA))
    enums = {name for kind, name, _ in blocks if kind == "enum"}
    for kind, name, body in blocks:
        if kind == "enum":
            enum = fdp.enum_type.add(name=name)
            for value_name, number in _VALUE.findall(body):
                enum.value.add(name=value_name, number=int(number))
            continue
        message = fdp.message_type.add(name=name)
        for type_name, field_name, number in _FIELD.findall(body):
            field = message.field.add(name=field_name, number=int(number), label=1)  # LABEL_OPTIONAL
            if type_name in enums:
                field.type = _TYPE_ENUM
                field.type_name = f".{PACKAGE}.{type_name}"
            else:
                field.type = _SCALARS[type_name]
    return fdp


@cache
def messages() -> dict[str, type[Message]]:
    """Message name -> protobuf class, built once per process."""
    from google.protobuf import descriptor_pool, message_factory

    pool = descriptor_pool.DescriptorPool()
    fd = pool.Add(_file_descriptor())
    file_desc = pool.FindFileByName(fd.name)
    return {name: message_factory.GetMessageClass(desc) for name, desc in file_desc.message_types_by_name.items()}


def message_class(name: str) -> type[Message]:
    return messages()[name]


def encode(name: str, **fields: Any) -> bytes:
    """Serialize a message; fields left out (or None) stay off the wire, as proto3 does for defaults."""
    cls = message_class(name)
    return cls(**{k: v for k, v in fields.items() if v is not None}).SerializeToString()


def decode(name: str, payload: bytes) -> Any:
    """Parse ``payload``; raises ``DecodeError`` (a ValueError) on garbage."""
    msg = message_class(name)()
    try:
        msg.ParseFromString(payload)
    except Exception as exc:  # noqa: BLE001 - google.protobuf's DecodeError and whatever a bad field raises
        raise DecodeError(f"invalid {name} payload: {exc}") from None
    return msg


class DecodeError(ValueError):
    pass


START_POSITIONS = {"NewOnly": 0, "LastReceived": 1, "TimeDeltaStart": 2, "SequenceStart": 3, "First": 4}


def to_fields(msg: Any) -> dict[str, Any]:
    """The fields present on the wire, JSON-friendly: bytes as base64, enums by name (the fixtures' form)."""
    import base64

    out: dict[str, Any] = {}
    for desc, value in msg.ListFields():
        if desc.type == 12:  # bytes
            value = base64.b64encode(value).decode()
        elif desc.type == _TYPE_ENUM:
            known = desc.enum_type.values_by_number.get(value)
            value = known.name if known else value
        out[desc.name] = value
    return out


def from_fields(name: str, fields: dict[str, Any]) -> Any:
    """The inverse of :func:`to_fields`."""
    import base64

    cls = message_class(name)
    values: dict[str, Any] = {}
    for key, value in fields.items():
        desc = cls.DESCRIPTOR.fields_by_name[key]
        if desc.type == 12:
            value = base64.b64decode(value)
        elif desc.type == _TYPE_ENUM and isinstance(value, str):
            value = desc.enum_type.values_by_name[value].number
        values[key] = value
    return cls(**values)
