"""Run the NATS Streaming test double as a process: ``python -m tests.stan_double --nats-url URL ...``.

Prints one ready line on stdout once it serves the cluster id, then runs until SIGTERM / SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from tests.stan_double.monitor import MonitorPort
from tests.stan_double.server import VERSIONS, Config, StanDouble


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.stan_double")
    parser.add_argument("--nats-url", required=True)
    parser.add_argument("--cluster-id", default="test-cluster")
    parser.add_argument("--version", choices=VERSIONS, default="0.23.2")
    parser.add_argument("--hb-interval", type=float, default=30.0, help="seconds, like -hbi")
    parser.add_argument("--hb-timeout", type=float, default=10.0, help="seconds, like -hbt")
    parser.add_argument("--hb-fail-count", type=int, default=10, help="like -hbf")
    parser.add_argument(
        "--monitor-port", type=int, default=None, help="serve a monitoring port (0: a free one), like -m"
    )
    parser.add_argument(
        "--channel-max-msgs",
        action="append",
        default=[],
        metavar="CHANNEL=N",
        help="keep at most N messages in CHANNEL (the store's per-channel max_msgs limit)",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = Config(
        cluster_id=args.cluster_id,
        version=args.version,
        hb_interval=args.hb_interval,
        hb_timeout=args.hb_timeout,
        hb_fail_count=args.hb_fail_count,
        channel_max_msgs={k: int(v) for k, v in (item.rsplit("=", 1) for item in args.channel_max_msgs)},
    )
    double = await StanDouble(config).start(args.nats_url)
    monitor = None
    ready = f"stan-double ready cluster_id={config.cluster_id} version={config.version} url={args.nats_url}"
    if args.monitor_port is not None:
        monitor = MonitorPort(double)
        ready += f" monitor={await monitor.start(args.monitor_port)}"
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    print(ready, flush=True)
    await done.wait()
    if monitor is not None:
        await monitor.stop()
    await double.stop()


def main(argv: list[str] | None = None) -> int:
    try:
        asyncio.run(serve(parse(sys.argv[1:] if argv is None else argv)))
    except (OSError, RuntimeError) as exc:
        print(f"stan-double: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
