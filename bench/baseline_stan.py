"""Naive NATS Streaming baselines for bench/run.py: the protocol exchange done one step at a time.

    python bench/baseline_stan.py publish URL CLUSTER CHANNEL FILE       one PubMsg, await its PubAck, next
    python bench/baseline_stan.py replay URL CLUSTER CHANNEL COUNT OUT   subscribe from the first, ack each

The protobuf payloads come from natsctl's wire layer (natsctl.backends.stan.proto, encode/decode only);
everything else is plain nats-py, without pipelining.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import nats

from natsctl.backends.stan import proto


async def connect(url: str, cluster: str):
    nc = await nats.connect(url)
    client_id = f"base-{os.getpid()}"
    conn_id = uuid.uuid4().hex.encode()
    hb = nc.new_inbox()

    async def heartbeat(msg):
        if msg.reply:
            await nc.publish(msg.reply, b"")

    await nc.subscribe(hb, cb=heartbeat)
    request = proto.encode(
        "ConnectRequest",
        clientID=client_id,
        heartbeatInbox=hb,
        protocol=1,
        connID=conn_id,
        pingInterval=5,
        pingMaxOut=3,
    )
    reply = await nc.request(f"_STAN.discover.{cluster}", request, timeout=5)
    response = proto.decode("ConnectResponse", reply.data)
    if response.error:
        raise SystemExit(f"connect refused: {response.error}")
    return nc, client_id, conn_id, response


async def close(nc, client_id: str, response) -> None:
    await nc.request(response.closeRequests, proto.encode("CloseRequest", clientID=client_id), timeout=5)
    await nc.close()


async def publish(url: str, cluster: str, channel: str, path: str) -> int:
    nc, client_id, conn_id, response = await connect(url, cluster)
    subject = f"{response.pubPrefix}.{channel}"
    confirmed = sent = 0
    with open(path, "rb") as handle:
        for line in handle:
            guid = uuid.uuid4().hex
            payload = proto.encode(
                "PubMsg", clientID=client_id, guid=guid, subject=channel, data=line.rstrip(b"\n"), connID=conn_id
            )
            sent += 1
            ack = proto.decode("PubAck", (await nc.request(subject, payload, timeout=5)).data)
            confirmed += not ack.error
    await close(nc, client_id, response)
    print(f"published {confirmed} of {sent}")
    return 0 if confirmed == sent else 1


async def replay(url: str, cluster: str, channel: str, count: int, out: str) -> int:
    nc, client_id, _conn_id, response = await connect(url, cluster)
    inbox = nc.new_inbox()
    got = 0
    done = asyncio.Event()
    handle = open(out, "wb")  # noqa: SIM115 - closed below
    ack_inbox = ""
    ready = asyncio.Event()  # messages can arrive before the response naming the ack inbox

    async def on_msg(msg):
        nonlocal got
        if got >= count:
            return  # more in flight behind the last one wanted
        await ready.wait()
        m = proto.decode("MsgProto", msg.data)
        handle.write(m.data + b"\n")
        await nc.publish(ack_inbox, proto.encode("Ack", subject=channel, sequence=m.sequence))
        got += 1
        if got >= count:
            done.set()

    sub = await nc.subscribe(inbox, cb=on_msg)
    request = proto.encode(
        "SubscriptionRequest",
        clientID=client_id,
        subject=channel,
        inbox=inbox,
        maxInFlight=1024,
        ackWaitInSecs=30,
        startPosition=4,
    )
    sub_response = proto.decode(
        "SubscriptionResponse", (await nc.request(response.subRequests, request, timeout=5)).data
    )
    ack_inbox = sub_response.ackInbox
    ready.set()
    try:
        await asyncio.wait_for(done.wait(), 60)
    except TimeoutError:
        pass
    await sub.unsubscribe()
    handle.close()
    await close(nc, client_id, response)
    print(f"read {got}")
    return 0 if got >= count else 1


def main(argv: list[str]) -> int:
    what, url, cluster, channel, *rest = argv
    if what == "publish":
        return asyncio.run(publish(url, cluster, channel, rest[0]))
    if what == "replay":
        return asyncio.run(replay(url, cluster, channel, int(rest[0]), rest[1]))
    raise SystemExit(f"unknown baseline {what!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
