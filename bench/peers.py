"""natsctl against the clients services use: nats.js, node-nats-streaming and the Go client (bench/README.md).

    python bench/peers.py                          # every workload, 7 interleaved rounds
    python bench/peers.py --rounds 3 --only js     # fewer rounds / only JetStream (js, or js-reads without
                                                   # its publish rows) or NATS Streaming (stan)
    python bench/peers.py --stan-server PATH       # a real nats-streaming-server instead of the test double

Set-up (done here when missing): ``npm install`` in bench/peers (nats 2.29.x, node-nats-streaming
0.3.2; node_modules is git-ignored) and, when a Go toolchain and Debian's golang-github-nats-io-go-nats-dev
are present, ``go build`` of bench/peers/go into bench/peers/bin (git-ignored). Without them the Go
column is skipped, with a line saying so.

Every round runs each contender once (the order rotates per round); a round's ratio is the peer's
wall time over natsctl's (above 1: natsctl is faster), whole processes, start-up included; the table
gives the median of the per-round ratios, and the same for each process's own CPU (user + system,
every thread: the work done, which a busy machine moves less than wall time). Every run's work is checked: the stream's message count or the
NATS Streaming channel's (monitoring port) after a publish, the lines written after a read, and for a
JetStream durable its ack floor on the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import PY, ROOT, Run, Servers, count_lines, free_port, natsctl, run, wait_port, write_events

PEERS = ROOT / "bench" / "peers"
GO_SOURCE = "/usr/share/gocode"  # Debian's golang-github-nats-io-go-nats-dev


def node_ready() -> str | None:
    """None when the Node peers can run, else why not (after trying ``npm install``)."""
    if not shutil.which("node") or not shutil.which("npm"):
        return "node or npm is not installed"
    if not (PEERS / "node_modules" / "nats").is_dir() or not (PEERS / "node_modules" / "node-nats-streaming").is_dir():
        done = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=PEERS, capture_output=True, text=True)
        if done.returncode != 0:
            return f"npm install failed: {done.stderr.strip()[-300:]}"
    return None


def go_ready() -> str | None:
    binary = PEERS / "bin" / "peer"
    if binary.exists() and binary.stat().st_mtime >= (PEERS / "go" / "main.go").stat().st_mtime:
        return None
    if not shutil.which("go"):
        return "no Go toolchain (apt-get install golang-go golang-github-nats-io-go-nats-dev)"
    if not Path(GO_SOURCE, "src/github.com/nats-io/nats.go").is_dir():
        return "no nats.go sources (apt-get install golang-github-nats-io-go-nats-dev)"
    binary.parent.mkdir(exist_ok=True)
    env = dict(os.environ, GO111MODULE="off", GOPATH=GO_SOURCE, GOFLAGS="", GOCACHE=str(PEERS / "bin" / ".cache"))
    done = subprocess.run(
        ["go", "build", "-o", str(binary), "main.go"], cwd=PEERS / "go", env=env, capture_output=True, text=True
    )
    return None if done.returncode == 0 else f"go build failed: {done.stderr.strip()[-300:]}"


# -- server state (the check of every run) ----------------------------------------------------------


async def _js(url: str, op: str, *args: str):
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        args = (await js.find_stream_name_by_subject(args[0]), *args[1:])  # the channel's stream
        if op == "msgs":
            return (await js.stream_info(args[0])).state.messages
        if op == "ack_floor":
            info = await js.consumer_info(args[0], args[1])
            return info.ack_floor.stream_seq, info.num_ack_pending
        if op == "delete_consumer":
            await js.delete_consumer(args[0], args[1])
        if op == "delete_stream":
            await js.delete_stream(args[0])
    finally:
        await nc.close()


def js(url: str, op: str, *args: str):
    return asyncio.run(_js(url, op, *args))


def stan_msgs(monitor: str, channel: str) -> int:
    with urllib.request.urlopen(f"{monitor}/streaming/channelsz?channel={channel}", timeout=5) as answer:
        return json.load(answer).get("msgs", -1)


class Stan:
    """The NATS Streaming server for the stan workloads: a real binary by path, or the test double."""

    def __init__(self, servers: Servers, tmp: Path, binary: str | None) -> None:
        self.cluster = "bench-cluster"
        self.proc: subprocess.Popen
        mport = free_port()
        self.monitor = f"http://127.0.0.1:{mport}"
        if binary:
            port = free_port()
            self.url = f"nats://127.0.0.1:{port}"
            self.proc = subprocess.Popen(
                [
                    binary,
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-m",
                    str(mport),
                    "-cid",
                    self.cluster,
                    "-store",
                    "file",
                    "-dir",
                    str(tmp / "stan-store"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait_port(port, self.proc, "nats-streaming-server")
            wait_port(mport, self.proc, "nats-streaming-server monitoring")
            version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
            self.what = f"a real server: {version or binary}"
        else:
            self.url = servers.url
            self.proc = subprocess.Popen(
                [
                    PY,
                    "-m",
                    "tests.stan_double",
                    "--nats-url",
                    servers.url,
                    "--cluster-id",
                    self.cluster,
                    "--monitor-port",
                    str(mport),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                cwd=ROOT,
                text=True,
            )
            line = self.proc.stdout.readline() if self.proc.stdout else ""
            if "ready" not in line:
                raise SystemExit(f"bench: the NATS Streaming double did not start: {line!r}")
            self.what = "the Python test double (tests/stan_double): it bounds both sides, use --stan-server"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- workloads --------------------------------------------------------------------------------------


def lines_written(path: Path, count: int, who: str) -> None:
    got = count_lines(path)
    if got != count:
        raise SystemExit(f"bench: {who} wrote {got} lines, expected {count}")


class Peers:
    def __init__(self, args: argparse.Namespace, tmp: Path, servers: Servers) -> None:
        self.args, self.tmp, self.servers, self.url = args, tmp, servers, servers.url
        self.node = node_ready()
        self.go = go_ready()
        self.rows: list[dict] = []
        self.failures: list[str] = []
        self.out = tmp / "out.jsonl"
        # natsctl itself, and other checkouts of it run side by side (--also LABEL=DIR, e.g. the code before a change)
        self.builds: dict[str, dict | None] = {"natsctl": None}
        for spec in args.also or []:
            label, _, where = spec.partition("=")
            self.builds[f"natsctl-{label}"] = dict(os.environ, PYTHONPATH=str(Path(where).resolve()))

    def mine(self, factory, cmd) -> dict:
        return {label: factory(label, cmd) for label in self.builds}

    def ctl(self, *args: str, url: str | None = None) -> list[str]:
        return [*natsctl(), *args, "-s", url or self.url]

    def rounds(self, name: str, count: int, contenders: dict) -> None:
        """``contenders``: label -> fn(round) returning a checked Run; natsctl first."""
        labels = [label for label, fn in contenders.items() if fn is not None]
        times: dict[str, list[float]] = {label: [] for label in labels}
        cpu: dict[str, list[float]] = {label: [] for label in labels}
        for i in range(self.args.rounds):
            order = labels[i % len(labels) :] + labels[: i % len(labels)]
            for label in order:
                result = contenders[label](i)
                times[label].append(result.seconds)
                cpu[label].append(result.cpu)
            line = "  ".join(f"{label} {times[label][-1]:.2f}s" for label in labels)
            print(f"  {name}: round {i + 1}/{self.args.rounds}  {line}", file=sys.stderr)
        row = {"workload": name, "messages": count, "seconds": {}, "cpu_us_per_msg": {}, "ratio": {}, "cpu_ratio": {}}
        for label in labels:
            row["seconds"][label] = round(statistics.median(times[label]), 3)
            row["cpu_us_per_msg"][label] = round(statistics.median(cpu[label]) / max(count, 1) * 1e6, 1)
            if label != "natsctl":
                ratios = [peer / mine for peer, mine in zip(times[label], times["natsctl"], strict=True)]
                row["ratio"][label] = round(statistics.median(ratios), 2)
                cpus = [peer / max(mine, 1e-9) for peer, mine in zip(cpu[label], cpu["natsctl"], strict=True)]
                row["cpu_ratio"][label] = round(statistics.median(cpus), 2)
        self.rows.append(row)

    # JetStream
    def jetstream(self, reads_only: bool = False) -> None:
        n = self.args.js_messages
        events = write_events(self.tmp / f"events-{n}.jsonl", n)
        node = self.node is None
        go = self.go is None

        def published(stream: str, who: str) -> None:
            got = js(self.url, "msgs", stream)
            js(self.url, "delete_stream", stream)
            if got != n:
                raise SystemExit(f"bench: {who} published {got} messages, expected {n}")

        def pub(label: str, cmd) -> object:
            def one(i: int) -> Run:
                stream = f"pp{label}{i}"
                result = run(cmd(stream), env=self.builds.get(label))
                published(stream, label)
                return result

            return one

        if not reads_only:
            self.rounds(
                "JetStream bulk publish, every message confirmed",
                n,
                {
                    **self.mine(pub, lambda s: self.ctl("pub", s, "--file", str(events), "--quiet")),
                    "go": pub("go", lambda s: [str(PEERS / "bin" / "peer"), "publish", self.url, s, str(events)])
                    if go
                    else None,
                    "node": pub("node", lambda s: ["node", str(PEERS / "js.js"), "publish", self.url, s, str(events)])
                    if node
                    else None,
                },
            )
        stream = "peerread"
        run(self.ctl("pub", stream, "--file", str(events), "--quiet"))

        def durable(label: str, cmd) -> object:
            def one(i: int) -> Run:
                name = f"d{label}{i}"
                result = run(cmd(name), out=self.out if label in self.builds else None, env=self.builds.get(label))
                lines_written(self.out, n, label)
                floor, pending = js(self.url, "ack_floor", stream, name)
                js(self.url, "delete_consumer", stream, name)
                if floor != n or pending:
                    raise SystemExit(f"bench: {label}'s durable has ack floor {floor} and {pending} pending")
                return result

            return one

        out = str(self.out)
        self.rounds(
            "JetStream read, an ack per message (durable)",
            n,
            {
                **self.mine(
                    durable, lambda d: self.ctl("sub", stream, "--all", "--exit-at-end", "--json", "--durable", d)
                ),
                "go": durable(
                    "go", lambda d: [str(PEERS / "bin" / "peer"), "durable", self.url, stream, d, str(n), out]
                )
                if go
                else None,
                "node": durable(
                    "node", lambda d: ["node", str(PEERS / "js.js"), "durable", self.url, stream, d, str(n), out]
                )
                if node
                else None,
            },
        )

        def ordered(label: str, cmd) -> object:
            def one(i: int) -> Run:
                result = run(cmd(), out=self.out if label in self.builds else None, env=self.builds.get(label))
                lines_written(self.out, n, label)
                return result

            return one

        peers = {
            "go": ordered("go", lambda: [str(PEERS / "bin" / "peer"), "ordered", self.url, stream, str(n), out])
            if go
            else None,
            "node": ordered("node", lambda: ["node", str(PEERS / "js.js"), "ordered", self.url, stream, str(n), out])
            if node
            else None,
        }
        # natsctl writes JSON envelopes (more bytes, more work) and, in a second row, the payloads
        # alone (--raw): what the peers write.
        self.rounds(
            "JetStream read, no acks (natsctl replay --json / ordered consumer)",
            n,
            {**self.mine(ordered, lambda: self.ctl("replay", stream, "--json")), **peers},
        )
        self.rounds(
            "JetStream read, no acks, payloads only (natsctl replay --raw / ordered consumer)",
            n,
            {**self.mine(ordered, lambda: self.ctl("replay", stream, "--raw")), **peers},
        )
        js(self.url, "delete_stream", stream)

    # NATS Streaming
    def stan(self) -> None:
        if self.node is not None:
            print(f"bench: NATS Streaming skipped: {self.node}", file=sys.stderr)
            return
        server = Stan(self.servers, self.tmp, self.args.stan_server)
        self.stan_server = server.what
        print(f"bench: NATS Streaming measured against {server.what}", file=sys.stderr)
        try:
            self._stan(server)
        finally:
            server.stop()

    def _stan(self, server: Stan) -> None:
        n = self.args.stan_messages
        events = write_events(self.tmp / f"events-{n}.jsonl", n)
        cluster, url = server.cluster, server.url
        node = ["node", str(PEERS / "stan.js")]
        os.environ["NATS_MONITOR_URL"] = server.monitor  # natsctl replay / sub ask it whether a channel exists
        ctl = lambda *a: self.ctl(*a, "--cluster-id", cluster, url=url)  # noqa: E731

        def pub(label: str, cmd) -> object:
            def one(i: int) -> Run:
                channel = f"sp{label}{i}"
                result = run(cmd(channel), env=self.builds.get(label))
                got = stan_msgs(server.monitor, channel)
                if got != n:
                    raise SystemExit(f"bench: {label} published {got} NATS Streaming messages, expected {n}")
                return result

            return one

        self.rounds(
            "NATS Streaming bulk publish",
            n,
            {
                **self.mine(pub, lambda ch: ctl("pub", ch, "--file", str(events), "--quiet")),
                "node": pub("node", lambda ch: [*node, "publish", url, cluster, ch, str(events)]),
            },
        )
        channel = "spread"
        run(ctl("pub", channel, "--file", str(events), "--quiet"))
        out = str(self.out)

        def durable(label: str, cmd) -> object:
            def one(i: int) -> Run:
                result = run(
                    cmd(f"d{label}{i}"), out=self.out if label in self.builds else None, env=self.builds.get(label)
                )
                lines_written(self.out, n, label)
                return result

            return one

        self.rounds(
            "NATS Streaming replay with acks (durable)",
            n,
            {
                **self.mine(
                    durable,
                    lambda d: ctl("sub", channel, "--all", "--exit-at-end", "--json", "--durable", d, "--unsubscribe"),
                ),
                "node": durable("node", lambda d: [*node, "durable", url, cluster, channel, d, str(n), out]),
            },
        )


def table(peers: Peers) -> str:
    lines = [
        "| workload | natsctl | vs Go nats.go | vs Node | CPU per message: natsctl / Go / Node |",
        "|---|---|---|---|---|",
    ]
    for row in peers.rows:
        secs, ratio, cpu = row["seconds"], row["ratio"], row["cpu_us_per_msg"]
        rate = f"{row['messages'] / secs['natsctl']:,.0f} msg/s"
        cpus = " / ".join(f"{cpu[k]:.1f}" if k in cpu else "-" for k in ("natsctl", "go", "node"))
        cpu_ratio = row["cpu_ratio"]
        go = f"{ratio['go']:.2f}x (CPU {cpu_ratio['go']:.2f}x)" if "go" in ratio else "-"
        node = f"{ratio['node']:.2f}x (CPU {cpu_ratio['node']:.2f}x)" if "node" in ratio else "-"
        others = "".join(f"; {k} {v:.2f}x" for k, v in ratio.items() if k.startswith("natsctl-"))
        lines.append(f"| {row['workload']}, {row['messages']:,} | {rate}{others} | {go} | {node} | {cpus} us |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only",
        action="append",
        choices=["js", "js-reads", "stan"],
        help="js-reads: JetStream without its publish rows",
    )
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--js-messages", type=int, default=200_000)
    parser.add_argument("--stan-messages", type=int, default=50_000)
    parser.add_argument("--stan-server", help="path of a nats-streaming-server binary (default: the test double)")
    parser.add_argument(
        "--also",
        action="append",
        metavar="LABEL=DIR",
        help="also run the natsctl checkout in DIR (e.g. before a change)",
    )
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "peers.json")
    args = parser.parse_args()
    started = time.time()
    for where in [ROOT] + [Path(spec.partition("=")[2]) for spec in args.also or []]:
        subprocess.run([PY, "-m", "compileall", "-q", str(where / "natsctl")], check=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="natsctl-peers-") as tmpdir:
        servers = Servers(Path(tmpdir))
        try:
            peers = Peers(args, Path(tmpdir), servers)
            for why, what in ((peers.node, "Node"), (peers.go, "Go")):
                if why:
                    print(f"bench: {what} peers skipped: {why}", file=sys.stderr)
            for section in args.only or ["js", "stan"]:
                try:
                    if section == "stan":
                        peers.stan()
                    else:
                        peers.jetstream(reads_only=section == "js-reads")
                except SystemExit as exc:  # a contender failed its check: the rest still runs, and it is said
                    print(f"bench: {section} stopped: {exc}", file=sys.stderr)
                    peers.failures.append(f"{section}: {exc}")
        finally:
            servers.stop()
    report = table(peers)
    print(report)
    stan_note = getattr(peers, "stan_server", None)
    if stan_note:
        print(f"\nNATS Streaming rows measured against {stan_note}.")
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "public_path": os.environ.get("NATSCTL_PUBLIC_PATH", ""),
        "stan_server": stan_note,
        "go": peers.go or "ok",
        "node": peers.node or "ok",
        "rows": peers.rows,
        "failures": peers.failures,
        "table": report,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if peers.failures else 0


if __name__ == "__main__":
    sys.exit(main())
