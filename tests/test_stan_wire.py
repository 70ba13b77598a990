"""natsctl/backends/stan/wire.py (NATS Streaming's messages without protobuf) against protobuf itself:
every recorded payload, payloads of every shape the schema allows, and random mutations of them."""

from __future__ import annotations

import base64
import random

import pytest

from natsctl.backends.stan import proto, wire
from natsctl.backends.stan.protocol import AckFrames
from tests.stan_wire_helpers import CHANNEL, msg_protos, mutations, recorded, typed

TYPED = typed(recorded())


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
