"""`natsctl demo`: the main job end to end on a local server, in one command."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.options import monitor_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.core.backend import Backend
    from natsctl.core.model import Message, SubscribeSpec
    from natsctl.embedded import LocalServers

DEMO_HELP = """Show natsctl's main job on a local nats-server it starts and stops itself.

It publishes a few ticket:created events, runs two members of the durable queue group
orders-service that share them with manual acks, replays the channel from the start, then shows the
channels, subscriptions and clients tables of the monitoring port.

With --external it uses the server named by the connection settings instead (--server, NATS_URL, a
context; with --cluster-id a NATS Streaming server) and leaves its channel in place."""

CHANNEL = "ticket:created"
GROUP = "orders-service"


def register(app: typer.Typer) -> None:
    app.command("demo", help=DEMO_HELP)(demo)


@monitor_options
def demo(
    events: Annotated[
        int, typer.Option("--events", metavar="N", min=1, max=10000, help="How many events to publish")
    ] = 6,
    external: Annotated[
        bool, typer.Option("--external", help="Use the configured server instead of starting one")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print what happened as one JSON document")] = False,
    cluster: Annotated[
        int,
        typer.Option(
            "--cluster",
            metavar="N",
            min=1,
            max=5,
            help="Start this many clustered nodes; the channel gets up to 3 replicas",
        ),
    ] = 1,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run

    run(lambda stop: demo_command(settings, events, external, json_, cluster))


async def demo_command(settings: Settings, events: int, external: bool, json_out: bool, cluster: int = 1) -> int:
    import dataclasses
    import tempfile

    if external:
        return await _demo_on(settings, events, json_out, channel=f"{CHANNEL}")
    with tempfile.TemporaryDirectory(prefix="natsctl-demo-") as store:
        servers = _start_local(cluster, Path(store), json_out)
        try:
            nodes = servers.nodes
            local = dataclasses.replace(
                settings, servers=[n.url for n in nodes], monitor_urls=[n.monitor_url for n in nodes], cluster_id=None
            )
            code = await _demo_on(local, events, json_out, channel=CHANNEL, replicas=min(cluster, 3))
        finally:
            servers.stop()
        _say(json_out, "nats-server stopped")
    return code


def _start_local(cluster: int, store: Path, json_out: bool, attempts: int = 3) -> "LocalServers":
    """Start the demo's nodes on free ports; a port taken between picking and binding means new ones."""
    from natsctl import embedded

    for attempt in range(attempts):
        nodes = embedded.free_nodes(cluster, store, "natsctl-demo")
        for node in nodes:
            _say(json_out, f"starting nats-server {node.name} on {node.url} (monitoring {node.monitor_url})")
        try:
            return embedded.LocalServers(nodes).start()
        except embedded.PortInUse:
            if attempt == attempts - 1:
                raise
            _say(json_out, "a port was taken meanwhile; starting again on other ports")
    raise AssertionError("unreachable")


def _say(json_out: bool, text: str) -> None:
    # Narration goes to stderr with --json so stdout stays one JSON document.
    stream = sys.stderr if json_out else sys.stdout
    stream.write(f"{text}\n")
    stream.flush()


async def _demo_on(settings: Settings, events: int, json_out: bool, channel: str, replicas: int = 1) -> int:
    import dataclasses
    import json

    from natsctl.core.envelope import message_to_dict
    from natsctl.core.errors import Unconfirmed
    from natsctl.core.model import OutgoingMessage, StartKind, StartPosition, SubscribeSpec
    from natsctl.opener import open_backend

    report: dict[str, Any] = {"channel": channel}
    # Three connections at once: on NATS Streaming each needs its own (generated) client id.
    settings = dataclasses.replace(settings, client_id=None)
    publisher = await open_backend(settings)
    if replicas > 1:
        from natsctl.core.model import StreamOptions

        publisher.stream_options = StreamOptions(replicas=replicas)
    try:
        bodies = [
            json.dumps({"ticket": n, "title": f"ticket {n}", "price": 10 * n}).encode() for n in range(1, events + 1)
        ]
        summary = await publisher.publish(
            channel, [OutgoingMessage(b, source=f"event {i + 1}") for i, b in enumerate(bodies)]
        )
        if summary.failed:
            raise Unconfirmed(f"{len(summary.failed)} events not confirmed; first: {summary.failed[0]}")
        report["published"] = {
            "count": summary.confirmed,
            "first_seq": summary.first_sequence,
            "last_seq": summary.last_sequence,
            "stream": summary.stream,
        }
        _say(
            json_out,
            f"published {summary.confirmed} {channel} events (sequences {summary.first_sequence}-{summary.last_sequence})",
        )

        spec = SubscribeSpec(
            channel=channel,
            start=StartPosition(StartKind.ALL),
            durable=GROUP,
            queue=GROUP,
            ack_wait=5,
            max_in_flight=2,
            create=True,  # it exists: the events were just published to it
        )
        members = {
            name: await open_backend(dataclasses.replace(settings, connection_name=f"natsctl demo {GROUP} {name}"))
            for name in ("member-1", "member-2")
        }
        try:
            shares = await _share(members, spec, events)
            report["queue_group"] = {"group": GROUP, "members": shares}
            for member, seqs in shares.items():
                _say(json_out, f"{GROUP} {member} processed and acked sequences {seqs}")
            report["replay"] = await _replay(publisher, channel, json_out, message_to_dict)
            report["tables"] = await _tables(settings, json_out)
        finally:
            for backend in members.values():
                await backend.close()
    finally:
        await publisher.close()
    if json_out:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    return 0


async def _share(members: dict[str, "Backend"], spec: "SubscribeSpec", total: int) -> dict[str, list[int]]:
    """Both members read the durable queue group until every event was processed once."""
    import asyncio

    from natsctl.core.errors import Timeout

    shares: dict[str, list[int]] = {name: [] for name in members}
    done = asyncio.Event()
    subscriptions = {name: await backend.subscribe(spec) for name, backend in members.items()}

    async def work(name: str) -> None:
        subscription = subscriptions[name]
        async for batch in subscription.batches():
            for message in batch:
                await asyncio.sleep(0.05)  # "processing" the ticket, so the other member gets a turn
                shares[name].append(message.sequence)
                await subscription.ack([message])
            if sum(len(s) for s in shares.values()) >= total:
                done.set()
            if done.is_set():
                return

    tasks = [asyncio.create_task(work(name)) for name in subscriptions]
    try:
        await asyncio.wait_for(done.wait(), timeout=30)
    except TimeoutError:
        raise Timeout(f"the queue group processed {sum(map(len, shares.values()))} of {total} events in 30s") from None
    finally:
        for subscription in subscriptions.values():
            subscription.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        for subscription in subscriptions.values():
            await subscription.close()
    return {name: sorted(seqs) for name, seqs in shares.items()}


async def _replay(
    backend: "Backend", channel: str, json_out: bool, to_dict: Callable[["Message"], dict[str, Any]]
) -> list[dict[str, Any]]:
    from natsctl.core.model import StartKind, StartPosition, SubscribeSpec

    # create=True: the channel exists (the events were just published), so it is not looked up again
    spec = SubscribeSpec(channel=channel, start=StartPosition(StartKind.ALL), ack=False, stop_at_end=True, create=True)
    subscription = await backend.subscribe(spec)
    replayed: list[dict[str, Any]] = []
    try:
        async for batch in subscription.batches():
            replayed.extend(to_dict(m) for m in batch)
    finally:
        await subscription.close()
    _say(json_out, f"replayed {channel} from the start: {len(replayed)} messages")
    if not json_out:
        for item in replayed:
            _say(json_out, f"  #{item['seq']} {item['data']}")
    return replayed


async def _tables(settings: Settings, json_out: bool) -> dict[str, Any]:
    """The monitoring tables of the bus as it is now; a monitoring port that does not answer is noted."""
    from natsctl.core.errors import NatsctlError
    from natsctl.core.stderr import say

    try:
        return await _fetch_tables(settings, json_out)
    except NatsctlError as exc:
        say(f"no monitoring tables: {exc.line()}", "warning")
        return {"error": exc.line()}


async def _fetch_tables(settings: Settings, json_out: bool) -> dict[str, Any]:
    """The monitoring tables of the bus as it is now (the queue members are still connected)."""
    if not json_out:
        from natsctl.cli.monitor import print_overview

        await print_overview(settings)
        return {}
    from dataclasses import asdict

    from natsctl.monitor import api
    from natsctl.monitor.client import MonitorClient

    async with MonitorClient(settings) as client:
        return {
            "channels": [asdict(c) for c in await api.channels(client)],
            "subs": [asdict(s) for s in await api.subscriptions(client)],
            "clients": [asdict(c) for c in await api.clients(client)],
        }
