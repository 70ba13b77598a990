"""The JetStream backend against answers a healthy server cannot be made to give on demand.

A plain nats-server (JetStream off) carries the requests; the test answers the JetStream API subject
itself, with the error strings nats-server sends. Everything else is the real client and wire.
"""

from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.js import errors as js_errors

from natsctl.core.settings import merge
from natsctl.opener import open_backend
from tests.servers import NatsServer

PEER_OFFLINE = {"code": 400, "err_code": 10005, "description": "no suitable peers for placement, peer offline"}
NO_RESOURCES = {"code": 400, "err_code": 10023, "description": "insufficient resources"}


@pytest.fixture
def plain():
    srv = NatsServer(jetstream=False).start()
    yield srv
    srv.cleanup()


def created(name: str, subject: str) -> dict:
    return {
        "type": "io.nats.jetstream.api.v1.stream_create_response",
        "config": {"name": name, "subjects": [subject], "num_replicas": 3},
        "created": "2026-11-28T06:00:00Z",
        "state": {"messages": 0, "bytes": 0, "first_seq": 0, "last_seq": 0, "consumer_count": 0},
    }


async def create_with(url: str, errors: list[dict | None]) -> tuple[list[str], Exception | None]:
    """Answer STREAM.CREATE with ``errors`` in turn (None: no answer at all), then success."""
    responder = await nats.connect(url)
    calls: list[str] = []

    async def answer(msg) -> None:
        calls.append(msg.subject)
        name = msg.subject.rsplit(".", 1)[1]
        if len(calls) <= len(errors) and errors[len(calls) - 1] is None:
            return  # as a request meeting a leader election: dropped
        body = {"error": errors[len(calls) - 1]} if len(calls) <= len(errors) else created(name, "orders")
        await msg.respond(json.dumps(body).encode())

    await responder.subscribe("$JS.API.STREAM.CREATE.>", cb=answer)
    await responder.flush()
    backend = await open_backend(merge({"servers": [url], "timeout": 3}))
    failure = None
    try:
        await backend._add_stream_asking_again(backend._stream_config("orders"))
    except Exception as exc:  # noqa: BLE001 - returned for the test to inspect
        failure = exc
    finally:
        await backend.close()
        await responder.close()
    return calls, failure


def test_stream_creation_asks_again_while_a_peer_is_offline(plain):
    calls, failure = asyncio.run(create_with(plain.url, [PEER_OFFLINE, PEER_OFFLINE]))
    assert failure is None
    assert len(calls) == 3


def test_any_other_placement_refusal_is_final_at_once(plain):
    calls, failure = asyncio.run(create_with(plain.url, [NO_RESOURCES]))
    assert isinstance(failure, js_errors.BadRequestError) and failure.description == "insufficient resources"
    assert len(calls) == 1


def test_a_peer_that_stays_offline_ends_within_the_timeout(plain):
    calls, failure = asyncio.run(create_with(plain.url, [PEER_OFFLINE] * 1000))
    assert isinstance(failure, js_errors.BadRequestError) and "peer offline" in failure.description
    assert 5 <= len(calls) <= 20  # every 0.25 s for the 3 s timeout


def test_stream_creation_asked_again_when_a_request_goes_unanswered(plain):
    """--timeout 3: the first request is given 2 s, then sent again; the second is answered."""
    calls, failure = asyncio.run(create_with(plain.url, [None]))
    assert failure is None
    assert len(calls) == 2
