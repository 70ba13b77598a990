"""natsctl/backends/stan/wire.py (NATS Streaming's messages without protobuf) against protobuf itself:
every recorded payload, payloads of every shape the schema allows, and random mutations of them."""

from __future__ import annotations

import base64
import random

import pytest

from natsctl.backends.stan import proto, wire
from natsctl.backends.stan.protocol import AckFrames
from tests.test_stan_proto import TYPED

CHANNEL = "ticket:created"


def protobuf_values(name: str, payload: bytes) -> dict | str:
    """Every field's value as protobuf decodes it, or "error"."""
    try:
        msg = proto.decode(name, payload)
    except proto.DecodeError:
        return "error"
    return {desc.name: getattr(msg, desc.name) for desc in msg.DESCRIPTOR.fields}


def wire_values(name: str, payload: bytes) -> dict | str:
    try:
        msg = wire.decode(name, payload)
    except proto.DecodeError:
        return "error"
    return {field: getattr(msg, field) for field, _ in wire.schema()[name].values()}


def read_as_protobuf(payload: bytes, channel: str = CHANNEL):
    values = protobuf_values("MsgProto", payload)
    if values == "error":
        return None
    assert isinstance(values, dict)
    return (
        values["sequence"],
        values["data"],
        values["timestamp"],
        values["redelivered"],
        values["redeliveryCount"],
    )


def test_the_schema_is_protobufs():
    classes = proto.messages()
    assert set(wire.schema()) == set(classes)
    for name, fields in wire.schema().items():
        descriptor = classes[name].DESCRIPTOR
        assert {number: field for number, (field, _) in fields.items()} == {
            desc.number: desc.name for desc in descriptor.fields
        }


@pytest.mark.parametrize("record", [r for _, r in TYPED], ids=[i for i, _ in TYPED])
def test_recorded_payloads_decode_and_encode_as_protobuf(record):
    name, raw = record["type"], base64.b64decode(record["raw_b64"])
    assert wire_values(name, raw) == protobuf_values(name, raw)
    msg = proto.from_fields(name, record["fields"])
    values = {desc.name: getattr(msg, desc.name) for desc in msg.DESCRIPTOR.fields}
    assert wire.encode(name, **values) == msg.SerializeToString() == raw
    if name == "MsgProto":
        subject = wire.subject_field(record["fields"].get("subject", ""))
        assert wire.read_msg(raw, subject) == read_as_protobuf(raw)


def msg_protos() -> list[bytes]:
    """MsgProtos of every shape: the servers' layout and what the schema allows besides."""
    cases = [
        dict(sequence=1, subject=CHANNEL, data=b"x", timestamp=1796615535562382000),
        dict(sequence=300, subject=CHANNEL, data=b"y" * 200, timestamp=1796615535562382001),
        dict(sequence=2**64 - 1, subject=CHANNEL, data=b"\x00\xff", timestamp=2**63 - 1),
        dict(sequence=5, subject=CHANNEL, timestamp=17),  # no data
        dict(sequence=5, subject=CHANNEL, data=b"z"),  # no timestamp
        dict(sequence=5, subject=CHANNEL, data=b"z", timestamp=-1),  # before 1970
        dict(sequence=7, subject=CHANNEL, data=b"r", timestamp=99, redelivered=True),
        dict(sequence=7, subject=CHANNEL, data=b"r", timestamp=99, redelivered=True, redeliveryCount=3),
        dict(sequence=7, subject=CHANNEL, data=b"r", timestamp=99, redeliveryCount=2**32 - 1),
        dict(sequence=8, subject=CHANNEL, reply="_INBOX.r", data=b"q", timestamp=5),
        dict(sequence=9, subject=CHANNEL, data=b"c", timestamp=5, CRC32=12345),
        dict(sequence=10, subject="other", data=b"o", timestamp=5),
        dict(subject=CHANNEL, data=b"no sequence", timestamp=5),
        dict(),
    ]
    built = [proto.encode("MsgProto", **case) for case in cases]
    first = built[0]
    built += [
        first + b"\x08\x09",  # a field repeated: the last one counts
        first + b"\x58\x01",  # an unknown varint field (11)
        first + b"\x62\x02ab",  # an unknown length-delimited field (12)
        first + b"\x6d\x01\x02\x03\x04",  # an unknown fixed32 field (13)
        first + b"\x71" + bytes(8),  # an unknown fixed64 field (14)
        first + b"\x30\x02",  # redelivered as 2: true
        first + b"\x30\x80\x01",  # redelivered in two bytes
        first + b"\x38\x80\x80\x80\x80\x10",  # a redelivery count past 32 bits: cut
        first + b"\x0b\x0c",  # a group
        first[:-1],  # cut off
        b"\x12\x02\xff\xfe",  # a subject that is not UTF-8
        b"\x08" + b"\xff" * 10 + b"\x01",  # an overlong varint
        b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",  # ten bytes, bits past 64
        b"\x22\x05abc",  # data longer than the payload
        b"\x0a\x01x",  # sequence with the wrong wire type
        b"\x00\x01",  # field 0
    ]
    return built


@pytest.mark.parametrize("payload", msg_protos())
def test_msg_protos_of_every_shape_read_as_protobuf(payload):
    assert wire.read_msg(payload, wire.subject_field(CHANNEL)) == read_as_protobuf(payload)
    assert wire_values("MsgProto", payload) == protobuf_values("MsgProto", payload)


def test_the_servers_layout_is_read_without_protobuf(monkeypatch):
    """What the servers send never reaches protobuf (the point of the module)."""

    def no_protobuf(name, payload):
        raise AssertionError("protobuf was asked")

    payloads = [
        proto.encode("MsgProto", sequence=n, subject=CHANNEL, data=b"d%d" % n, timestamp=1796615535562382000 + n)
        for n in (1, 127, 128, 16384, 2**21, 2**40)
    ]
    payloads.append(
        proto.encode(
            "MsgProto", sequence=3, subject=CHANNEL, data=b"x", timestamp=5, redelivered=True, redeliveryCount=2
        )
    )
    expected = [read_as_protobuf(p) for p in payloads]
    monkeypatch.setattr(proto, "decode", no_protobuf)
    assert [wire.read_msg(p, wire.subject_field(CHANNEL)) for p in payloads] == expected


def mutations(payload: bytes, rng: random.Random, count: int) -> list[bytes]:
    out = []
    for _ in range(count):
        data = bytearray(payload)
        for _ in range(rng.randint(1, 3)):
            what = rng.random()
            if what < 0.4 and data:
                data[rng.randrange(len(data))] = rng.randrange(256)
            elif what < 0.6 and data:
                del data[rng.randrange(len(data)) :]
            elif what < 0.8:
                data.insert(rng.randrange(len(data) + 1), rng.choice([0x08, 0x12, 0x22, 0x28, 0x30, 0x38, 0x80, 0xFF]))
            elif data:
                del data[rng.randrange(len(data))]
        out.append(bytes(data))
    return out


def test_mutated_payloads_decode_as_protobuf():
    """Whatever the bytes, the same values or the same DecodeError as protobuf."""
    rng = random.Random(14)
    samples = [(r["type"], base64.b64decode(r["raw_b64"])) for _, r in TYPED]
    rng.shuffle(samples)
    checked = 0
    for name, raw in samples[:150] + [("MsgProto", p) for p in msg_protos()]:
        for mutated in mutations(raw, rng, 20):
            assert wire_values(name, mutated) == protobuf_values(name, mutated), (name, mutated)
            if name == "MsgProto":
                assert wire.read_msg(mutated, wire.subject_field(CHANNEL)) == read_as_protobuf(mutated), mutated
            checked += 1
    assert checked > 3000


@pytest.mark.parametrize(
    "name,fields",
    [
        ("ConnectRequest", dict(clientID="c", heartbeatInbox="_INBOX.h", protocol=1, connID=b"\x00id", pingInterval=5)),
        ("ConnectRequest", dict(clientID="c", protocol=0, pingInterval=-1, pingMaxOut=2**31 - 1)),
        (
            "SubscriptionRequest",
            dict(
                clientID="natsctl-x",
                subject="é.ü",
                qGroup="q",
                inbox="_INBOX.i",
                maxInFlight=1024,
                ackWaitInSecs=30,
                durableName="d",
                startPosition=2,
                startSequence=2**64 - 1,
                startTimeDelta=2**63 - 1,
            ),
        ),
        ("SubscriptionRequest", dict(clientID="c", subject="s", startPosition=0, durableName=None, startTimeDelta=-5)),
        ("UnsubscribeRequest", dict(clientID="c", subject="s", inbox="_STAN.ack", durableName="d")),
        ("CloseRequest", dict(clientID="c")),
        ("Ping", dict(connID=b"abc")),
        ("Ack", dict(subject=CHANNEL, sequence=2**40)),
    ],
)
def test_requests_encode_as_protobuf(name, fields):
    assert wire.encode(name, **fields) == proto.encode(name, **fields)


@pytest.mark.parametrize(
    "name,fields",
    [("SubscriptionRequest", dict(maxInFlight=2**31)), ("Ack", dict(sequence=-1)), ("Ack", dict(sequence=2**64))],
)
def test_values_out_of_range_are_refused_as_protobuf_does(name, fields):
    with pytest.raises(ValueError):
        proto.encode(name, **fields)
    with pytest.raises(ValueError):
        wire.encode(name, **fields)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**35, 2**64 - 1])
def test_varints_are_protobufs(value):
    expected = proto.encode("Ack", sequence=value)[1:] if value else b"\x00"  # after the tag byte
    assert wire.varint(value) == expected


@pytest.mark.parametrize("channel", ["orders", "é.ü", "a" * 200])
def test_ack_frames_are_pubs_of_the_schemas_acks(channel):
    sequences = [1, 127, 128, 16383, 16384, 2**21 - 1, 2**21, 2**28, 2**35, 2**64 - 1]
    inbox = "_STAN.ack.abc"
    expected_frames = b"".join(
        b"PUB %s %d\r\n%s\r\n" % (inbox.encode(), len(p), p)
        for p in (proto.encode("Ack", subject=channel, sequence=n) for n in sequences)
    )
    assert AckFrames(inbox, channel).frames(sequences) == expected_frames
