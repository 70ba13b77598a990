"""Replay a recorded NATS Streaming scenario against the test double and compare what comes back.

The player sends every recorded client->server message (same clients, inboxes, guids, payloads; in
recorded time, and never before the server messages recorded ahead of it have arrived) and listens
on every subject the recording shows the server publishing to. Server-made names (request subjects,
ack inboxes, heartbeat reply subjects) are learned from the live answers and substituted on the way.
Then each subject's live messages are compared with the recorded ones: types, fields and errors;
ids and timestamps are normalised away.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from dataclasses import dataclass, field

import nats

from natsctl.backends.stan import proto
from tests.helpers import fixtures_dir

FIXTURES = fixtures_dir("stan-protocol")  # recordings of real 0.17.0 and 0.23.2 servers
NUID = re.compile(r"[A-Za-z0-9]{22}")
HB_REPLY = re.compile(r"^_INBOX\.[A-Za-z0-9]{22}\.[A-Za-z0-9]{8}$")
EMPTY_TYPES = {"Heartbeat", "HeartbeatResponse"}
RESPONSES = {"ConnectResponse", "SubscriptionResponse", "CloseResponse", "PingResponse"}
WAIT_FOR_SERVER = 4.0  # seconds a client message waits for the server messages recorded before it


def load(version: str, scenario: str) -> list[dict]:
    path = FIXTURES / version / f"{scenario}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def scenarios() -> list[str]:
    found = sorted(p.stem for p in (FIXTURES / "0.23.2").glob("*.jsonl"))
    if not found:
        raise FileNotFoundError(f"no recorded scenarios in {FIXTURES / '0.23.2'}")
    return found


def has_empty_token(subject: str) -> bool:
    return "" in subject.split(".")


@dataclass
class Live:
    subject: str
    reply: str | None
    data: bytes
    order: int


@dataclass
class Outcome:
    problems: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    compared: int = 0


class Player:
    def __init__(self, records: list[dict], version: str) -> None:
        net = [r for r in records if r["dir"] != "observed"]
        self.version = version
        self.skipped: list[str] = []
        skip = self._undeliverable(net)
        self.clients = [r for r in net if r["dir"] == "client->server" and id(r) not in skip]
        self.expected = [r for r in net if r["dir"] == "server->client" and id(r) not in skip]
        self.by_subject: dict[str, list[dict]] = {}
        for record in self.expected:
            self.by_subject.setdefault(record["subject"], []).append(record)
        self.live: dict[str, list[Live]] = {s: [] for s in self.by_subject}
        self.mapping: dict[str, str] = {}
        self.counter = 0
        self.arrived = asyncio.Event()

    def _undeliverable(self, net: list[dict]) -> set[int]:
        """Records the underlying nats-server cannot reproduce, with the replies they caused.

        A PUB whose subject has an empty token (``_STAN.pub.X.foo..bar``) was delivered by the
        nats-server 2.1.4 embedded in 0.17.0, but nats-server 2.x here (like 2.6.5 in 0.23.2) drops it.
        """
        skip: set[int] = set()
        for record in net:
            if record["dir"] != "client->server":
                continue
            if record.get("nats_delivered") is False or has_empty_token(record["subject"]):
                skip.add(id(record))
                self.skipped.append(f"{record['type']} on {record['subject']!r} (not deliverable on nats-server 2.x)")
                guid = record["fields"].get("guid")
                for other in net:
                    if (
                        other["dir"] == "server->client"
                        and other["subject"] == record["reply"]
                        and other["fields"].get("guid") == guid
                    ):
                        skip.add(id(other))
        return skip

    # ---- receiving

    async def on_message(self, msg) -> None:
        subject = msg.subject
        live = self.live.setdefault(subject, [])
        recorded = self.by_subject.get(subject, [])
        if len(live) < len(recorded):
            self._learn(recorded[len(live)], msg)
        self.counter += 1
        live.append(Live(subject, msg.reply or None, msg.data, self.counter))
        self.arrived.set()

    def _learn(self, record: dict, msg) -> None:
        """Pair server-made names in the recording with the live ones."""
        if record["reply"] and msg.reply:
            self.mapping[record["reply"]] = msg.reply
        if record["type"] in ("ConnectResponse", "SubscriptionResponse"):
            try:
                fields = proto.to_fields(proto.decode(record["type"], msg.data))
            except proto.DecodeError:
                return
            for key, value in record["fields"].items():
                if isinstance(value, str) and isinstance(fields.get(key), str):
                    self.mapping[value] = fields[key]

    # ---- sending

    def translate(self, name: str) -> str:
        if name in self.mapping:
            return self.mapping[name]
        for recorded, live in self.mapping.items():
            if name.startswith(recorded + "."):
                return live + name[len(recorded) :]
        return name

    def payload(self, record: dict) -> bytes:
        if record["type"] in EMPTY_TYPES or record["type"] == "Undecodable":
            return base64.b64decode(record["raw_b64"] or "")
        fields = {k: self.translate(v) if isinstance(v, str) else v for k, v in record["fields"].items()}
        return proto.from_fields(record["type"], fields).SerializeToString()

    def server_messages_due(self, t_ms: float) -> bool:
        for subject, records in self.by_subject.items():
            due = sum(1 for r in records if r["t_ms"] < t_ms)
            if len(self.live.get(subject, [])) < due:
                return False
        return True

    async def wait_due(self, t_ms: float, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.server_messages_due(t_ms) and time.monotonic() < deadline:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                break

    async def run(self, nats_url: str) -> None:
        nc = await nats.connect(nats_url, name="replay")
        try:
            for subject in self.by_subject:
                await nc.subscribe(subject, cb=self.on_message)
            await nc.flush()
            t0 = self.clients[0]["t_ms"] if self.clients else 0.0
            start = time.monotonic()
            for record in self.clients:
                await self.wait_due(record["t_ms"], WAIT_FOR_SERVER)
                delay = start + (record["t_ms"] - t0) / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await nc.publish(
                    self.translate(record["subject"]), self.payload(record), reply=self.translate(record["reply"] or "")
                )
            await nc.flush()
            await self.wait_due(float("inf"), WAIT_FOR_SERVER)
            await asyncio.sleep(0.3)  # room for anything unexpected to show up
        finally:
            await nc.close()

    # ---- comparing

    def compare(self) -> Outcome:
        outcome = Outcome(skipped=list(self.skipped))
        for subject in self.by_subject.keys() | self.live.keys():
            self._compare_subject(subject, outcome)
        self._compare_response_order(outcome)
        self._compare_sub_before_messages(outcome)
        return outcome

    def _compare_subject(self, subject: str, outcome: Outcome) -> None:
        recorded = self.by_subject.get(subject, [])
        live = self.live.get(subject, [])
        for n, record in enumerate(recorded):
            if n >= len(live):
                outcome.problems.append(f"{subject}: missing #{n + 1} {record['type']} {record['fields']}")
                continue
            outcome.compared += 1
            want = normalise(record["type"], record["fields"], record["reply"])
            got = normalise(record["type"], decoded(record["type"], live[n].data), live[n].reply)
            if want != got:
                outcome.problems.append(f"{subject}: #{n + 1} expected {want}, got {got}")
        kind = recorded[-1]["type"] if recorded else "?"
        for extra in live[len(recorded) :]:
            outcome.problems.append(f"{subject}: unexpected {kind} {decoded(kind, extra.data)}")

    def _live_responses(self) -> list[tuple[int, str, str]]:
        found = []
        for subject, records in self.by_subject.items():
            for record, live in zip(records, self.live.get(subject, []), strict=False):
                if record["type"] in RESPONSES:
                    fields = decoded(record["type"], live.data)
                    found.append((live.order, record["type"], fields.get("error", "")))
        return [(t, e) for _, t, e in sorted(found)]

    def _compare_response_order(self, outcome: Outcome) -> None:
        """Request/response pairs happen one after another in every recording: same order live."""
        want = [(r["type"], r["fields"].get("error", "")) for r in self.expected if r["type"] in RESPONSES]
        got = self._live_responses()
        if want != got:
            outcome.problems.append(f"response order differs: expected {want}, got {got}")

    def _compare_sub_before_messages(self, outcome: Outcome) -> None:
        """A SubscriptionResponse always precedes the first MsgProto of its subscription."""
        for record in self.clients:
            if record["type"] != "SubscriptionRequest" or not record["fields"].get("inbox"):
                continue
            messages = self.live.get(record["fields"]["inbox"], [])
            reply_live = self.live.get(record["reply"], [])
            if messages and reply_live and not any(r.order < messages[0].order for r in reply_live):
                outcome.problems.append(f"MsgProto on {record['fields']['inbox']} before its SubscriptionResponse")


def decoded(kind: str, data: bytes) -> dict:
    if kind in EMPTY_TYPES:
        return {"raw": base64.b64encode(data).decode()} if data else {}
    try:
        return proto.to_fields(proto.decode(kind, data))
    except proto.DecodeError:
        return {"undecodable": base64.b64encode(data).decode()}


def normalise(kind: str, fields: dict, reply: str | None) -> tuple:
    fields = dict(fields)
    if kind == "MsgProto":
        fields["timestamp"] = "<set>" if fields.get("timestamp", 0) > 0 else "<missing>"
    for key, value in fields.items():
        if isinstance(value, str) and kind in ("ConnectResponse", "SubscriptionResponse"):
            fields[key] = NUID.sub("<nuid>", value)
    shape = None
    if reply is not None:
        shape = "<hb-reply>" if HB_REPLY.match(reply) else "<reply>"
    return kind, tuple(sorted(fields.items())), shape
