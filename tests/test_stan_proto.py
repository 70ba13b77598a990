"""The protobuf layer against every payload recorded between real NATS Streaming servers and a client."""

from __future__ import annotations

import base64

import pytest

from natsctl.backends.stan import proto
from natsctl.backends.stan.protocol import PubEncoder, ack_head, pub_ack_error, varint
from tests.stan_wire_helpers import recorded, typed

EMPTY_TYPES = {"Heartbeat", "HeartbeatResponse"}


RECORDS = recorded()
TYPED = typed(RECORDS)


def test_fixtures_are_there():
    # a silently empty parametrization would prove nothing
    assert len(TYPED) > 500
    assert {r["type"] for _, r in TYPED} == set(proto.messages())


@pytest.mark.parametrize("record", [r for _, r in TYPED], ids=[i for i, _ in TYPED])
def test_decode_matches_recorded_fields(record):
    msg = proto.decode(record["type"], base64.b64decode(record["raw_b64"]))
    assert proto.to_fields(msg) == record["fields"]


@pytest.mark.parametrize("record", [r for _, r in TYPED], ids=[i for i, _ in TYPED])
def test_encode_is_byte_for_byte(record):
    encoded = proto.from_fields(record["type"], record["fields"]).SerializeToString()
    assert encoded == base64.b64decode(record["raw_b64"])


def test_encode_helper_leaves_defaults_off_the_wire():
    raw = proto.encode("SubscriptionRequest", clientID="c", subject="s", startPosition=0, durableName=None)
    assert proto.to_fields(proto.decode("SubscriptionRequest", raw)) == {"clientID": "c", "subject": "s"}


def test_undecodable_payloads_raise():
    garbage = [r for _, r in RECORDS if r["type"] == "Undecodable"]
    assert garbage
    for record in garbage:
        with pytest.raises(proto.DecodeError):
            proto.decode(record["expected_type"], base64.b64decode(record["raw_b64"]))


def test_empty_payloads_are_the_empty_types():
    empties = [r for _, r in RECORDS if r["type"] in EMPTY_TYPES]
    assert empties and all(r["raw_b64"] == "" for r in empties)
    # a zero-length success response decodes to "no error"
    assert proto.decode("CloseResponse", b"").error == ""
    assert proto.decode("PingResponse", b"").error == ""


def test_start_positions_match_the_schema():
    enum = proto.message_class("SubscriptionRequest").DESCRIPTOR.fields_by_name["startPosition"].enum_type
    assert {v.name: v.number for v in enum.values} == proto.START_POSITIONS


@pytest.mark.parametrize("channel", ["orders", "ticket:created", "a" * 200, "é.ü"])
@pytest.mark.parametrize("sequence", [1, 127, 128, 300, 16383, 16384, 2**32 + 5, 2**63 - 1, 2**64 - 1])
def test_hand_encoded_acks_are_the_schemas_bytes(channel, sequence):
    """The subscriber's fast path writes Acks without protobuf objects: the same bytes, always."""
    assert ack_head(channel) + varint(sequence) == proto.encode("Ack", subject=channel, sequence=sequence)


def test_recorded_acks_are_what_the_fast_path_writes():
    acks = [r for _, r in TYPED if r["type"] == "Ack"]
    assert len(acks) > 5, "the recordings hold Acks"
    for record in acks:
        fields = record["fields"]
        raw = base64.b64decode(record["raw_b64"])
        assert ack_head(fields["subject"]) + varint(int(fields["sequence"])) == raw


def encoder(channel: str = "orders", max_payload: int = 1 << 20) -> PubEncoder:
    return PubEncoder(
        client_id="natsctl-abc",
        conn_id="CONNID123",
        channel=channel,
        pub_prefix="_STAN.pub.x",
        ack_prefix="_STAN.acks.y",
        guid_prefix=b"PFX",
        acks={},
        max_payload=max_payload,
    )


@pytest.mark.parametrize("channel", ["orders", "ticket:created", "a" * 200, "é.ü"])
@pytest.mark.parametrize("data", [b"", b"x", b"y" * 127, b"z" * 128, b"\x00\xff" * 40000])
def test_hand_encoded_pub_msgs_are_the_schemas_bytes(channel, data):
    """The publisher's fast path builds PubMsgs without protobuf objects: the same bytes, always."""
    built = encoder(channel).payload(b"PFX7", data)
    expected = proto.encode(
        "PubMsg", clientID="natsctl-abc", guid="PFX7", subject=channel, data=data, connID=b"CONNID123"
    )
    assert built == expected


def test_pub_frames_await_their_ack_and_refuse_what_is_too_large():
    enc = encoder(max_payload=200)
    frame = enc.frame(41, b"hello")
    payload = enc.payload(b"PFX41", b"hello")
    assert frame == b"PUB _STAN.pub.x.orders _STAN.acks.y.PFX41 %d\r\n%s\r\n" % (len(payload), payload)
    assert enc.acks == {b"PFX41": 41}
    refused = enc.frame(42, b"x" * 200)
    assert isinstance(refused, str) and "over the server's max_payload of 200 bytes" in refused
    assert b"PFX42" not in enc.acks


def test_recorded_pub_acks_read_without_protobuf():
    acks = [r for _, r in TYPED if r["type"] == "PubAck"]
    assert len(acks) > 3, "the recordings hold PubAcks"
    for record in acks:
        raw = base64.b64decode(record["raw_b64"])
        assert pub_ack_error(raw) == record["fields"].get("error", "")
    assert pub_ack_error(proto.encode("PubAck", guid="g" * 200)) == ""
    assert pub_ack_error(proto.encode("PubAck", guid="g", error="stan: boom")) == "stan: boom"
    assert pub_ack_error(b"\xff\xff\xff") is None
