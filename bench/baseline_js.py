"""nats-py baselines for bench/run.py: the plain, documented nats-py patterns natsctl is compared with.

    python bench/baseline_js.py publish URL SUBJECT FILE        publish_async, window 1024, every ack checked
    python bench/baseline_js.py fetch URL SUBJECT COUNT OUT [--ack]
                                                                pull_subscribe + fetch(500), optional ack per message
    python bench/baseline_js.py minpub URL SUBJECT              one JetStream publish, ack awaited

Each creates what it needs (stream, consumer) the way a user of nats-py would; nothing is tuned.
"""

from __future__ import annotations

import asyncio
import sys

import nats
from nats.js import api

WINDOW = 1024
FETCH = 500


async def ensure_stream(js, subject: str) -> None:
    try:
        await js.find_stream_name_by_subject(subject)
    except nats.js.errors.NotFoundError:
        await js.add_stream(api.StreamConfig(name=subject.replace(".", "_"), subjects=[subject]))


async def publish(url: str, subject: str, path: str) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream(publish_async_max_pending=WINDOW)
    await ensure_stream(js, subject)
    futures = []
    with open(path, "rb") as handle:
        for line in handle:
            futures.append(await js.publish_async(subject, line.rstrip(b"\n")))
    await js.publish_async_completed()
    confirmed = sum(1 for f in futures if f.exception() is None and f.result().seq)
    await nc.close()
    print(f"published {confirmed} of {len(futures)}")
    return 0 if confirmed == len(futures) else 1


async def fetch(url: str, subject: str, count: int, out: str, ack: bool) -> int:
    nc = await nats.connect(url)
    js = nc.jetstream()
    name = f"base{nc.new_inbox().rsplit('.', 1)[-1]}"
    policy = api.AckPolicy.EXPLICIT if ack else api.AckPolicy.NONE
    config = api.ConsumerConfig(ack_policy=policy, deliver_policy=api.DeliverPolicy.ALL, max_ack_pending=-1)
    sub = await js.pull_subscribe(subject, durable=name, config=config)
    got = 0
    with open(out, "wb") as handle:
        while got < count:
            try:
                msgs = await sub.fetch(FETCH, timeout=5)
            except nats.errors.TimeoutError:
                break
            for msg in msgs:
                handle.write(msg.data + b"\n")
                if ack:
                    await msg.ack()
            got += len(msgs)
    await js.delete_consumer(await js.find_stream_name_by_subject(subject), name)
    await nc.close()
    print(f"read {got}")
    return 0 if got >= count else 1


async def minpub(url: str, subject: str) -> int:
    nc = await nats.connect(url)
    ack = await nc.jetstream().publish(subject, b"hello")
    await nc.close()
    return 0 if ack.seq else 1


def main(argv: list[str]) -> int:
    what, url, subject, *rest = argv
    if what == "publish":
        return asyncio.run(publish(url, subject, rest[0]))
    if what == "fetch":
        return asyncio.run(fetch(url, subject, int(rest[0]), rest[1], "--ack" in rest))
    if what == "minpub":
        return asyncio.run(minpub(url, subject))
    raise SystemExit(f"unknown baseline {what!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
