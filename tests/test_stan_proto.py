"""The protobuf layer against every payload recorded between real NATS Streaming servers and a client."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from natsctl.backends.stan import proto

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "stan-protocol"
EMPTY_TYPES = {"Heartbeat", "HeartbeatResponse"}


def recorded() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(FIXTURES.glob("*/*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines()):
            record = json.loads(line)
            if record["raw_b64"] is not None:
                found.append((f"{path.parent.name}/{path.stem}:{n}", record))
    return found


RECORDS = recorded()
TYPED = [(i, r) for i, r in RECORDS if r["type"] in proto.messages()]


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
