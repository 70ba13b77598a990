"""natsctl against plain nats-py and Python baselines, side by side, on this machine (see bench/README.md).

    python bench/run.py                 # everything, ~6-8 minutes on 2 cores
    python bench/run.py --only startup  # one section: publish, replay, startup, memory, stan, migrate
    python bench/run.py --reps 3        # fewer repetitions (noisier)

Starts its own nats-server (free loopback port, temporary file store) and the NATS Streaming test
double, interleaves the two sides of every pair (A B A B ...), prints a table of medians and ratios and
writes bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PY = sys.executable
MESSAGE_SIZE = 128


@dataclass
class Run:
    seconds: float
    rss_mb: float
    code: int
    cpu: float = 0.0  # the child's user + system CPU seconds


def natsctl() -> list[str]:
    """The installed console script (what users run), else ``python -m natsctl``."""
    script = Path(PY).parent / "natsctl"
    return [str(script)] if script.exists() else [PY, "-m", "natsctl"]


def run(cmd: list[str], *, out: Path | None = None, env: dict | None = None, check: bool = True) -> Run:
    """Run ``cmd`` to the end; wall time and the child's own peak RSS (wait4, not the harness's)."""
    stdout = open(out, "wb") if out else subprocess.DEVNULL  # noqa: SIM115 - closed below, after the run
    errors = tempfile.TemporaryFile()  # noqa: SIM115 - read and closed below, after the run
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=stdout, stderr=errors, stdin=subprocess.DEVNULL, env=env, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if out:
        stdout.close()
    if check and code != 0:
        errors.seek(0)
        raise SystemExit(f"bench: {' '.join(cmd)} exited {code}: {errors.read().decode()[-600:]}")
    return Run(seconds, usage.ru_maxrss / 1024, code, usage.ru_utime + usage.ru_stime)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"bench: {what} exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"bench: {what} did not listen on {port}")


class Servers:
    """nats-server with JetStream on a temporary file store, plus the NATS Streaming double on demand."""

    def __init__(self, tmp: Path) -> None:
        binary = shutil.which("nats-server") or str(Path(PY).parent / "nats-server")
        port = free_port()
        self.url = f"nats://127.0.0.1:{port}"
        self.log = open(tmp / "nats-server.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(tmp / "store")],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_port(port, self.proc, "nats-server")
        self.version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
        self.stan: subprocess.Popen | None = None
        self.cluster_id = "bench-cluster"

    def start_stan(self) -> None:
        self.stan = subprocess.Popen(
            [PY, "-m", "tests.stan_double", "--nats-url", self.url, "--cluster-id", self.cluster_id],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=ROOT,
            text=True,
        )
        line = self.stan.stdout.readline() if self.stan.stdout else ""
        if "ready" not in line:
            raise SystemExit(f"bench: the NATS Streaming double did not start: {line!r}")

    def stop(self) -> None:
        for proc in (self.stan, self.proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.log.close()


def write_events(path: Path, count: int) -> Path:
    """``count`` JSON lines of exactly MESSAGE_SIZE bytes (newline excluded)."""
    if path.exists() and path.stat().st_size == count * (MESSAGE_SIZE + 1):
        return path
    with open(path, "wb") as handle:
        for i in range(count):
            head = b'{"id":%d,"type":"ticket:created","pad":"' % i
            handle.write(head + b"x" * (MESSAGE_SIZE - len(head) - 2) + b'"}\n')
    return path


async def _delete_streams(url: str, prefixes: tuple[str, ...]) -> None:
    import nats

    nc = await nats.connect(url)
    js = nc.jetstream()
    for name in await js.streams_info():
        if name.config.name.startswith(prefixes):
            await js.delete_stream(name.config.name)
    await nc.close()


def delete_streams(url: str, *prefixes: str) -> None:
    asyncio.run(_delete_streams(url, prefixes))


# -- results --------------------------------------------------------------------------------------


@dataclass
class Pair:
    name: str
    a_label: str
    b_label: str
    target: str  # e.g. ">= 1.8x"
    a: list[float] = field(default_factory=list)  # seconds per run
    b: list[float] = field(default_factory=list)
    a_rss: list[float] = field(default_factory=list)
    b_rss: list[float] = field(default_factory=list)
    a_zero: list[float] = field(default_factory=list)  # the same command moving no message
    b_zero: list[float] = field(default_factory=list)
    a_cpu: list[float] = field(default_factory=list)  # CPU seconds per run (user + system)
    b_cpu: list[float] = field(default_factory=list)
    a_zero_cpu: list[float] = field(default_factory=list)
    b_zero_cpu: list[float] = field(default_factory=list)
    messages: int = 0
    higher_is_better: bool = True  # throughput pairs; start-up pairs compare times (lower is better)
    cpu_row: bool = False  # also report each side's CPU per message (when a shared server bounds both)

    def median(self, values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    def net(self, side: str) -> float:
        """Median time of the bulk part: the run minus the same command moving nothing (start-up, connect)."""
        total, zero = (self.a, self.a_zero) if side == "a" else (self.b, self.b_zero)
        return max(self.median(total) - (self.median(zero) if zero else 0.0), 1e-6)

    def cpu_per_message_us(self, side: str) -> float:
        """Median CPU of the bulk part per message, in microseconds (the client's own work)."""
        total, zero = (self.a_cpu, self.a_zero_cpu) if side == "a" else (self.b_cpu, self.b_zero_cpu)
        net = self.median(total) - (self.median(zero) if zero else 0.0)
        return max(net, 0.0) / self.messages * 1e6

    def ratio(self) -> float:
        if self.higher_is_better:
            return self.net("b") / self.net("a")  # natsctl's throughput over the baseline's
        return self.median(self.a) / self.median(self.b)  # natsctl's time over the baseline's

    def met(self) -> bool | None:
        if not self.target:
            return None  # measured for the record, no target
        op, value = self.target.split()
        bound = float(value.rstrip("x"))
        return self.ratio() >= bound if op == ">=" else self.ratio() <= bound

    def summary(self) -> dict:
        data = asdict(self)
        data.update(ratio=round(self.ratio(), 3), met=self.met())
        if self.higher_is_better and self.messages:
            data.update(
                a_rate=round(self.messages / self.net("a")),
                b_rate=round(self.messages / self.net("b")),
                end_to_end_ratio=round(self.median(self.b) / self.median(self.a), 3),
            )
        if self.cpu_row:
            data.update(
                a_cpu_us_per_msg=round(self.cpu_per_message_us("a"), 2),
                b_cpu_us_per_msg=round(self.cpu_per_message_us("b"), 2),
            )
        return data


def interleave(pair: Pair, reps: int, a, b, *, zero_a=None, zero_b=None, zero_reps: int = 3) -> Pair:
    """Alternate the two sides; ``a(i)`` / ``b(i)`` run once and return a Run."""
    for i in range(reps):
        for side, fn in (("a", a), ("b", b)):
            result = fn(i)
            getattr(pair, side).append(result.seconds)
            getattr(pair, f"{side}_rss").append(result.rss_mb)
            getattr(pair, f"{side}_cpu").append(result.cpu)
        print(f"  {pair.name}: run {i + 1}/{reps}  {pair.a[-1]:.3f}s vs {pair.b[-1]:.3f}s", file=sys.stderr)
    for i in range(zero_reps if zero_a and zero_b else 0):
        for side, fn in (("a", zero_a), ("b", zero_b)):
            result = fn(i)
            getattr(pair, f"{side}_zero").append(result.seconds)
            getattr(pair, f"{side}_zero_cpu").append(result.cpu)
    return pair


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def expect_lines(path: Path, count: int, what: str) -> None:
    got = count_lines(path)
    if got != count:
        raise SystemExit(f"bench: {what} wrote {got} lines, expected {count}")


# -- sections -------------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, tmp: Path, servers: Servers) -> None:
        self.args = args
        self.tmp = tmp
        self.servers = servers
        self.url = servers.url
        self.n = args.messages
        self.events = write_events(tmp / "events.jsonl", self.n)
        self.empty = tmp / "empty.jsonl"
        self.empty.write_bytes(b"")
        self.pairs: list[Pair] = []
        self.memory: dict = {}
        self.replay_loaded = False

    def ctl(self, *args: str) -> list[str]:
        return [*natsctl(), *args, "-s", self.url]

    def base(self, *args: str) -> list[str]:
        return [PY, str(BENCH / "baseline_js.py"), args[0], self.url, *args[1:]]

    # (1) bulk publish
    def publish(self) -> None:
        reps = self.args.reps
        pair = Pair("bulk publish", "natsctl pub --file", "publish_async window 1024", ">= 1.8x", messages=self.n)

        def a(i: int) -> Run:
            result = run(self.ctl("pub", f"pubA{i}", "--file", str(self.events), "--quiet"))
            delete_streams(self.url, f"pubA{i}")
            return result

        def b(i: int) -> Run:
            result = run(self.base("publish", f"pubB{i}", str(self.events)))
            delete_streams(self.url, f"pubB{i}")
            return result

        zero_a = lambda i: run(self.ctl("pub", f"zeroA{i}", "--file", str(self.empty), "--quiet"))  # noqa: E731
        zero_b = lambda i: run(self.base("publish", f"zeroB{i}", str(self.empty)))  # noqa: E731
        self.pairs.append(interleave(pair, reps, a, b, zero_a=zero_a, zero_b=zero_b))
        delete_streams(self.url, "zero")

    def load_replay(self) -> None:
        if not self.replay_loaded:
            run(self.ctl("pub", "replay", "--file", str(self.events), "--quiet"))
            run(self.ctl("pub", "empty", "--file", str(self.empty), "--quiet"))
            self.replay_loaded = True

    # (2) and (3) replay
    def replay(self) -> None:
        self.load_replay()
        reps, n = self.args.reps, self.n
        out_a, out_b = self.tmp / "out-a.jsonl", self.tmp / "out-b.jsonl"

        def reader(args_for, baseline_flags: tuple[str, ...], channel: str, count: int, tag: str):
            def a(i: int) -> Run:
                result = run(self.ctl(*args_for(channel, f"{tag}{i}")), out=out_a)
                expect_lines(out_a, count, "natsctl")
                return result

            def b(i: int) -> Run:
                result = run(self.base("fetch", channel, str(count), str(out_b), *baseline_flags))
                expect_lines(out_b, count, "the baseline")
                return result

            return a, b

        durable = lambda ch, name: ("sub", ch, "--all", "--exit-at-end", "--json", "--durable", name, "--unsubscribe")  # noqa: E731
        queue = lambda ch, name: (*durable(ch, name), "--queue", name)  # noqa: E731
        no_ack = lambda ch, name: ("replay", ch, "--json")  # noqa: E731
        cases = [
            (
                "replay, acks (one durable)",
                "natsctl sub --durable --json",
                "fetch(500) + ack each",
                ">= 4x",
                durable,
                ("--ack",),
            ),
            (
                "replay, acks (queue member)",
                "natsctl sub --queue --json",
                "fetch(500) + ack each",
                ">= 3.5x",
                queue,
                ("--ack",),
            ),
            ("replay, no acks", "natsctl replay --json", "fetch(500), no ack", ">= 4.5x", no_ack, ()),
        ]
        for number, (name, a_label, b_label, target, args_for, flags) in enumerate(cases):
            pair = Pair(name, a_label, b_label, target, messages=n)
            a, b = reader(args_for, flags, "replay", n, f"r{number}x")
            zero_a, zero_b = reader(args_for, flags, "empty", 0, f"z{number}x")
            self.pairs.append(interleave(pair, reps, a, b, zero_a=zero_a, zero_b=zero_b))

    # (4) start-up
    def startup(self) -> None:
        reps = self.args.startup_reps
        env = dict(os.environ)
        commands = {
            "python -c pass": [PY, "-c", "pass"],
            "python -c 'import typer'": [PY, "-c", "import typer"],
            "nats-py minimal publish": self.base("minpub", "oneshot"),
            "natsctl --version": [*natsctl(), "--version"],
            "natsctl --help": [*natsctl(), "--help"],
            "natsctl pub (one message)": self.ctl("pub", "oneshot", "hello", "--quiet"),
        }
        completion, completion_kind = self.completion_command()
        commands[f"TAB completion ({completion_kind})"] = completion
        times: dict[str, list[float]] = {name: [] for name in commands}
        run(commands["natsctl pub (one message)"])  # creates the stream, warms the page cache
        for _ in range(reps):
            for name, cmd in commands.items():
                times[name].append(run(cmd, env=env).seconds)
        med = {name: statistics.median(values) for name, values in times.items()}
        self.startup_times = {name: round(value * 1000, 1) for name, value in med.items()}
        typer_name, pub_name = "python -c 'import typer'", "nats-py minimal publish"
        for name, base, target in (
            ("natsctl --version", typer_name, "<= 1.2x"),
            ("natsctl --help", typer_name, "<= 2.0x"),
            (f"TAB completion ({completion_kind})", typer_name, "<= 1.5x"),
            ("natsctl pub (one message)", pub_name, "<= 1.5x"),
        ):
            pair = Pair(f"start-up: {name}", name, base, target, higher_is_better=False)
            pair.a, pair.b = times[name], times[base]
            self.pairs.append(pair)

    def completion_command(self) -> tuple[list[str], str]:
        """The static bash script from completions/ when it exists (no Python), else Typer's request."""
        script = (
            next((p for p in (ROOT / "completions").glob("*bash*") if p.is_file()), None)
            if (ROOT / "completions").is_dir()
            else None
        )
        if script is not None:
            probe = (
                f"source {script}; spec=$(complete -p natsctl); fn=${{spec##*-F }}; fn=${{fn%% *}}; "
                "COMP_WORDS=(natsctl pub --); COMP_CWORD=2; COMP_LINE='natsctl pub --'; COMP_POINT=${#COMP_LINE}; "
                '$fn natsctl -- pub; echo "${COMPREPLY[@]}"'
            )
            return ["bash", "--norc", "-c", probe], "static bash script"
        env_cmd = ["env", "_NATSCTL_COMPLETE=complete_bash", "COMP_WORDS=natsctl pub --", "COMP_CWORD=2", *natsctl()]
        return env_cmd, "Typer's completion request"

    # (5) memory
    def memory_section(self) -> None:
        big = self.args.big
        big_events = write_events(self.tmp / "events-big.jsonl", big)
        rows = {}
        for count, path in ((self.n, self.events), (big, big_events)):
            pub = run(self.ctl("pub", f"mem{count}", "--file", str(path), "--quiet"))
            out = self.tmp / "mem-out.jsonl"
            replay = run(self.ctl("replay", f"mem{count}", "--json"), out=out)
            expect_lines(out, count, "natsctl replay")
            out.unlink()
            rows[count] = {
                "publish_rss_mb": round(pub.rss_mb, 1),
                "replay_rss_mb": round(replay.rss_mb, 1),
                "publish_seconds": round(pub.seconds, 2),
                "replay_seconds": round(replay.seconds, 2),
            }
            delete_streams(self.url, f"mem{count}")
            print(f"  memory at {count}: {rows[count]}", file=sys.stderr)
        publish_pair = next((p for p in self.pairs if p.name == "bulk publish"), None)
        if publish_pair:
            rows[f"baseline_publish_rss_mb_at_{self.n}"] = round(max(publish_pair.b_rss), 1)
        small, large = rows[self.n], rows[big]
        worst = max(large["publish_rss_mb"], large["replay_rss_mb"], small["publish_rss_mb"], small["replay_rss_mb"])
        growth = max(large["publish_rss_mb"] - small["publish_rss_mb"], large["replay_rss_mb"] - small["replay_rss_mb"])
        rows["peak_rss_mb"] = worst
        rows["growth_mb"] = round(growth, 1)
        rows["met"] = worst <= 40 and growth <= 4
        self.memory = rows

    # (6) NATS Streaming
    def stan(self) -> None:
        self.servers.start_stan()
        n, reps = self.args.stan_messages, self.args.stan_reps
        events = write_events(self.tmp / "events-stan.jsonl", n)
        cluster = self.servers.cluster_id
        base = lambda *a: [PY, str(BENCH / "baseline_stan.py"), a[0], self.url, cluster, *a[1:]]  # noqa: E731
        ctl = lambda *a: self.ctl(*a, "--cluster-id", cluster)  # noqa: E731
        pub = Pair(
            "NATS Streaming bulk publish", "natsctl pub --cluster-id", "one PubAck at a time", ">= 5x", messages=n
        )
        interleave(
            pub,
            reps,
            lambda i: run(ctl("pub", f"spa{i}", "--file", str(events), "--quiet")),
            lambda i: run(base("publish", f"spb{i}", str(events))),
            zero_a=lambda i: run(ctl("pub", f"sza{i}", "--file", str(self.empty), "--quiet")),
            zero_b=lambda i: run(base("publish", f"szb{i}", str(self.empty))),
        )
        self.pairs.append(pub)
        out_a, out_b = self.tmp / "stan-a.jsonl", self.tmp / "stan-b.jsonl"

        def reader(channel: str, count: int):
            def a(i: int) -> Run:
                result = run(ctl("replay", channel, "--json"), out=out_a)
                expect_lines(out_a, count, "natsctl (stan)")
                return result

            def b(i: int) -> Run:
                result = run(base("replay", channel, str(count), str(out_b)))
                expect_lines(out_b, count, "the naive stan baseline")
                return result

            return a, b

        # The fixed cost is measured on a channel of one message: on an empty one natsctl waits
        # PROBE_WAIT (0.25 s) for a last message that never comes, and the baseline for its count.
        run(ctl("pub", "stan-one", "hello", "--quiet"))
        a, b = reader("spa0", n)
        zero_a, zero_b = reader("stan-one", 1)
        # Both sides read as fast as the test double (a Python server) delivers: the wall-clock ratio
        # says little, so the clients' own CPU per message is reported too.
        replay = Pair(
            "NATS Streaming replay", "natsctl replay --cluster-id", "subscribe, ack each", "", messages=n, cpu_row=True
        )
        self.pairs.append(interleave(replay, reps, a, b, zero_a=zero_a, zero_b=zero_b))

    # (7) natsctl migrate copy
    def migrate(self) -> None:
        """``migrate copy`` of N messages against natsctl's own NATS Streaming replay and JetStream bulk
        publish of the same messages, in the same run; then its peak RSS at N and at ``--big``."""
        double, monitor = start_monitored_stan(self.url, "bench-migrate")
        try:
            self._migrate(monitor)
        finally:
            double.terminate()
            double.wait(10)

    def _migrate(self, monitor: str) -> None:
        n, reps = self.args.migrate_messages, self.args.migrate_reps
        stan = ["--cluster-id", "bench-migrate", "--timeout", "60"]  # the double (Python) answers slowly when busy
        env = {**os.environ, "NATS_MONITOR_URL": monitor}
        events = write_events(self.tmp / f"events-{n}.jsonl", n)
        run(self.ctl("pub", "mig", "--file", str(events), "--quiet", *stan), env=env)
        run(self.ctl("pub", "migone", "hello", "--quiet", *stan), env=env)
        out = self.tmp / "migrate-replay.jsonl"

        def copy(channel: str, count: int) -> Run:
            plan = self.tmp / f"plan-{channel}.yaml"
            run(self.ctl("migrate", "plan", *stan, "--out", str(plan)), env=env)
            plan.write_text(_only_channels(plan.read_text(), [channel], f"{channel}_copy"))
            result = run(self.ctl("migrate", "copy", str(plan), *stan, "--to-server", self.url), env=env)
            copied = stream_count(self.url, f"{channel}_copy")
            if copied != count:
                raise SystemExit(f"bench: migrate copy stored {copied} messages, expected {count}")
            delete_streams(self.url, f"{channel}_copy")
            return result

        def replay(channel: str, count: int) -> Run:
            result = run(self.ctl("replay", channel, "--json", *stan), out=out, env=env)
            expect_lines(out, count, "natsctl replay (stan)")
            return result

        def publish(i: int, path: Path) -> Run:
            result = run(self.ctl("pub", f"migjs{i}", "--file", str(path), "--quiet"))
            delete_streams(self.url, f"migjs{i}")
            return result

        rows: dict[str, list[Run]] = {"copy": [], "replay": [], "publish": []}
        zero: dict[str, list[Run]] = {"copy": [], "replay": [], "publish": []}
        for i in range(reps):
            rows["copy"].append(copy("mig", n))
            rows["replay"].append(replay("mig", n))
            rows["publish"].append(publish(i, events))
            print(
                f"  migrate: run {i + 1}/{reps}  copy {rows['copy'][-1].seconds:.2f}s, stan replay "
                f"{rows['replay'][-1].seconds:.2f}s, js publish {rows['publish'][-1].seconds:.2f}s",
                file=sys.stderr,
            )
            # The fixed cost (start-up, connects, plan checks) of each side, moving one message / none.
            zero["copy"].append(copy("migone", 1))
            zero["replay"].append(replay("migone", 1))
            zero["publish"].append(publish(i, self.empty))

        def median(runs: list[Run], what: str = "seconds") -> float:
            return statistics.median(getattr(r, what) for r in runs)

        net = {k: max(median(rows[k]) - median(zero[k]), 1e-6) for k in rows}
        rate = {k: n / net[k] for k in rows}
        slower = min(rate["replay"], rate["publish"])
        # Peak RSS of the copy at 100,000 and at --migrate-big messages.
        rss = {}
        for channel, count in (("mig100k", self.args.migrate_rss_small), ("migbig", self.args.migrate_big)):
            path = write_events(self.tmp / f"events-{count}.jsonl", count)
            run(self.ctl("pub", channel, "--file", str(path), "--quiet", *stan), env=env)
            rss[count] = copy(channel, count)
            print(
                f"  migrate: copy of {count:,}: {rss[count].seconds:.1f}s, {rss[count].rss_mb:.1f} MB", file=sys.stderr
            )
        small, big = (rss[k] for k in sorted(rss))
        self.migration = {
            "messages": n,
            "copy_rate": round(rate["copy"]),
            "stan_replay_rate": round(rate["replay"]),
            "js_publish_rate": round(rate["publish"]),
            "ratio_to_slower": round(rate["copy"] / slower, 3),
            "end_to_end_rates": {k: round(n / median(v)) for k, v in rows.items()},
            "end_to_end_ratio_to_slower": round(
                median(rows["copy"]) ** -1 / min(median(rows["replay"]) ** -1, median(rows["publish"]) ** -1), 3
            ),
            # the client's own CPU (user + system) per message of the bulk part: the double bounds the wall clock
            "cpu_us_per_msg": {
                k: round(max(median(rows[k], "cpu") - median(zero[k], "cpu"), 0) / n * 1e6, 1) for k in rows
            },
            "met": rate["copy"] / slower >= 0.7,
            "rss_mb": {str(k): round(v.rss_mb, 1) for k, v in sorted(rss.items())},
            "big_copy_rate": round(self.args.migrate_big / big.seconds),
            "rss_flat": big.rss_mb - small.rss_mb <= 4,
        }
        print(f"  migrate: {self.migration}", file=sys.stderr)


def start_monitored_stan(url: str, cluster_id: str) -> tuple[subprocess.Popen, str]:
    """A NATS Streaming double with a monitoring port (``migrate`` reads channelsz and clientsz)."""
    proc = subprocess.Popen(
        [PY, "-m", "tests.stan_double", "--nats-url", url, "--cluster-id", cluster_id, "--monitor-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    if "ready" not in line:
        raise SystemExit(f"bench: the NATS Streaming double did not start: {line!r}")
    return proc, next(w.split("=", 1)[1] for w in line.split() if w.startswith("monitor="))


def _only_channels(document: str, keep: list[str], stream: str) -> str:
    import yaml

    plan = yaml.safe_load(document)
    plan["channels"] = {name: {**entry, "stream": stream} for name, entry in plan["channels"].items() if name in keep}
    plan["durables"] = []
    return yaml.safe_dump(plan)


def stream_count(url: str, stream: str) -> int:
    async def count() -> int:
        import nats

        nc = await nats.connect(url)
        try:
            return (await nc.jetstream().stream_info(stream)).state.messages
        finally:
            await nc.close()

    return asyncio.run(count())


# -- report ---------------------------------------------------------------------------------------


def table(bench: Bench) -> str:
    lines = [
        "| measurement | natsctl | baseline | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for pair in bench.pairs:
        if pair.higher_is_better:
            a = f"{pair.messages / pair.net('a'):,.0f} msg/s"
            b = f"{pair.messages / pair.net('b'):,.0f} msg/s"
        else:
            a = f"{pair.median(pair.a) * 1000:.0f} ms"
            b = f"{pair.median(pair.b) * 1000:.0f} ms ({pair.b_label})"
        met = {True: "yes", False: "NO", None: "(no target)"}[pair.met()]
        lines.append(f"| {pair.name} | {a} | {b} | {pair.ratio():.2f}x | {pair.target or '-'} | {met} |")
        if pair.cpu_row:
            a_us, b_us = pair.cpu_per_message_us("a"), pair.cpu_per_message_us("b")
            ratio = f"{b_us / a_us:.2f}x" if a_us else "-"
            lines.append(
                f"| {pair.name}: client CPU per message | {a_us:.1f} us | {b_us:.1f} us | {ratio} | - | (no target) |"
            )
    memory = bench.memory
    if memory:
        n, big = bench.n, bench.args.big
        lines.append(
            f"| peak RSS, publish {n:,} / {big:,} | {memory[n]['publish_rss_mb']} / {memory[big]['publish_rss_mb']} MB | "
            f"{memory.get(f'baseline_publish_rss_mb_at_{n}', '-')} MB at {n:,} | - | <= 40 MB, flat | "
            f"{'yes' if memory['met'] else 'NO'} |"
        )
        lines.append(
            f"| peak RSS, replay {n:,} / {big:,} | {memory[n]['replay_rss_mb']} / {memory[big]['replay_rss_mb']} MB | - | - | "
            f"<= 40 MB, flat | {'yes' if memory['met'] else 'NO'} |"
        )
    migration = getattr(bench, "migration", None)
    if migration:
        n = migration["messages"]
        lines.append(
            f"| migrate copy {n:,} (vs the slower of NATS Streaming replay {migration['stan_replay_rate']:,} msg/s "
            f"and JetStream publish {migration['js_publish_rate']:,} msg/s) | {migration['copy_rate']:,} msg/s | "
            f"{min(migration['stan_replay_rate'], migration['js_publish_rate']):,} msg/s | "
            f"{migration['ratio_to_slower']:.2f}x | >= 0.7x | {'yes' if migration['met'] else 'NO'} |"
        )
        cpu = migration["cpu_us_per_msg"]
        lines.append(
            f"| migrate copy: client CPU per message | {cpu['copy']} us | "
            f"replay {cpu['replay']} us, publish {cpu['publish']} us | - | - | (no target) |"
        )
        sizes = " / ".join(f"{v} MB" for v in migration["rss_mb"].values())
        counts = " / ".join(f"{int(k):,}" for k in migration["rss_mb"])
        lines.append(
            f"| peak RSS, migrate copy {counts} | {sizes} | - | - | flat | {'yes' if migration['rss_flat'] else 'NO'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only", action="append", choices=["publish", "replay", "startup", "memory", "stan", "migrate"]
    )
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000, help="message count of the memory check's large run")
    parser.add_argument("--reps", type=int, default=5, help="runs per side of the bulk pairs")
    parser.add_argument("--startup-reps", type=int, default=15)
    parser.add_argument("--stan-messages", type=int, default=20_000)
    parser.add_argument("--stan-reps", type=int, default=3)
    parser.add_argument("--migrate-messages", type=int, default=200_000)
    parser.add_argument("--migrate-big", type=int, default=1_000_000, help="messages of migrate copy's memory run")
    parser.add_argument("--migrate-rss-small", type=int, default=100_000, help="the memory run it is compared with")
    parser.add_argument("--migrate-reps", type=int, default=3)
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json")
    args = parser.parse_args()
    sections = args.only or ["publish", "replay", "startup", "memory", "stan", "migrate"]
    started = time.time()
    # As installed packages are: compiled once. With PYTHONDONTWRITEBYTECODE set, an editable checkout
    # would otherwise recompile natsctl's modules on every run (~25 ms) while nats-py and Typer are cached.
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "natsctl")], check=True)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="natsctl-bench-") as tmpdir:
        servers = Servers(Path(tmpdir))
        try:
            bench = Bench(args, Path(tmpdir), servers)
            for section in sections:
                print(f"bench: {section}", file=sys.stderr)
                getattr(bench, "memory_section" if section == "memory" else section)()
        finally:
            servers.stop()
    report = table(bench)
    print(report)
    result = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "nats_server": servers.version,
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "messages": args.messages,
        "pairs": [pair.summary() for pair in bench.pairs],
        "startup_ms": getattr(bench, "startup_times", {}),
        "memory": {str(k): v for k, v in bench.memory.items()},
        "migrate": getattr(bench, "migration", {}),
        "table": report,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\nbench: {result['seconds']}s, load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}; wrote {args.json}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
