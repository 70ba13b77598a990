"""Shared by the NATS Streaming wire tests (test_stan_proto, test_stan_wire, test_stan_render): the
recorded payloads, MsgProtos of every shape, and random mutations of payloads."""

from __future__ import annotations

import json
import random

from natsctl.backends.stan import proto
from tests.helpers import fixtures_dir

FIXTURES = fixtures_dir("stan-protocol")
CHANNEL = "ticket:created"


def recorded() -> list[tuple[str, dict]]:
    """(id, record) of every recorded payload."""
    found = []
    for path in sorted(FIXTURES.glob("*/*.jsonl")):
        for n, line in enumerate(path.read_text().splitlines()):
            record = json.loads(line)
            if record["raw_b64"] is not None:
                found.append((f"{path.parent.name}/{path.stem}:{n}", record))
    if not found:
        raise FileNotFoundError(f"no recorded payloads in {FIXTURES}/*/*.jsonl")
    return found


def typed(records: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """The records of a message type of the schema."""
    return [(i, r) for i, r in records if r["type"] in proto.messages()]


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


def mutations(payload: bytes, rng: random.Random, count: int) -> list[bytes]:
    """``count`` copies of ``payload`` with bytes changed, cut, inserted or removed."""
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
