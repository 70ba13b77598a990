"""Fidelity of the NATS Streaming test double: every recorded scenario replayed against it, both versions.

All 26 replays run at once (each on its own nats-server and double) because most of their time is
recorded waiting (ack waits, heartbeats, pings); one test per scenario then reports its differences.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.servers import NatsServer
from tests.stan_double.replay import Outcome, Player, load, scenarios
from tests.stan_double.server import VERSIONS, Config, StanDouble

CASES = [(v, s) for v in VERSIONS for s in scenarios()]


def config_for(version: str, scenario: str) -> Config:
    if scenario.startswith("g7"):  # recorded with -hbi 1s -hbt 1s -hbf 2
        return Config(version=version, hb_interval=1, hb_timeout=1, hb_fail_count=2)
    return Config(version=version)


async def replay(version: str, scenario: str, server: NatsServer) -> Outcome:
    player = Player(load(version, scenario), version)
    double = await StanDouble(config_for(version, scenario)).start(server.url)
    try:
        await player.run(server.url)
    finally:
        await double.stop()
    return player.compare()


async def replay_all(servers: dict) -> dict:
    results = await asyncio.gather(*(replay(v, s, servers[(v, s)]) for v, s in CASES), return_exceptions=True)
    return dict(zip(CASES, results, strict=True))


@pytest.fixture(scope="module")
def outcomes():
    servers = {case: NatsServer(jetstream=False).start(wait=False) for case in CASES}
    try:
        for server in servers.values():
            server.wait_started()
        yield asyncio.run(replay_all(servers))
    finally:
        for server in servers.values():
            server.cleanup()


def test_every_scenario_is_covered():
    assert len(scenarios()) == 13


@pytest.mark.parametrize(("version", "scenario"), CASES, ids=[f"{v}-{s}" for v, s in CASES])
def test_replay_matches_recording(outcomes, version, scenario):
    outcome = outcomes[(version, scenario)]
    if isinstance(outcome, BaseException):
        raise outcome
    assert not outcome.problems, "\n".join(outcome.problems)
    if scenario != "g3_unknown_cluster":  # the unknown cluster id gets no answer at all, by design
        assert outcome.compared > 0
