"""Event contracts on this machine (see bench/README.md, "Event contracts"):

1. bulk publish with validation against a realistic 6-field schema vs the same publish with
   --no-validate, interleaved in one run, compared on the bulk part (target >= 0.7x);
2. `audit order` over 1,000,000 events (two channels, 100,000 keys): events per second and peak RSS,
   with a 100,000-event run (10,000 keys) beside it to show memory grows with keys, not events.

    python bench/contracts.py                     # ~2 minutes on 2 cores
    python bench/contracts.py --reps 3 --audit-events 200000

Uses bench/run.py's server, runner (wall time + the child's peak RSS from wait4) and pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import BENCH, PY, ROOT, Pair, Servers, delete_streams, interleave, natsctl, run

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "price", "userId", "version", "createdAt"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{24}$"},
        "title": {"type": "string", "minLength": 1, "maxLength": 200},
        "price": {"type": "number", "minimum": 0},
        "userId": {"type": "string", "minLength": 1},
        "version": {"type": "integer", "minimum": 0},
        "createdAt": {"type": "string", "format": "date-time"},
    },
}


def ticket(n: int, version: int = 0, key: int | None = None) -> bytes:
    key = n if key is None else key
    return (
        b'{"id":"%024x","title":"Concert tickets, row %d","price":%d.%02d,"userId":"%024x","version":%d,'
        b'"createdAt":"2026-11-28T10:%02d:%02d.%03dZ"}\n'
        % (key, n % 40, n % 300, n % 100, n % 9973, version, n // 60 % 60, n % 60, n % 1000)
    )


def write(path: Path, lines) -> Path:
    with open(path, "wb") as handle:
        handle.writelines(lines)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "contracts.json")
    args = parser.parse_args()
    subprocess.run([PY, "-m", "compileall", "-q", str(ROOT / "natsctl")], check=True)
    started, load_before = time.time(), os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="natsctl-bench-contracts-") as tmpdir:
        tmp = Path(tmpdir)
        servers = Servers(tmp)
        try:
            result = measure(args, tmp, servers.url)
        finally:
            servers.stop()
    result.update(
        when=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        seconds=round(time.time() - started, 1),
        load_before=load_before,
        load_after=os.getloadavg(),
        nats_server=servers.version,
    )
    print(result["table"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nbench: {result['seconds']}s, load {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return 0


def measure(args: argparse.Namespace, tmp: Path, url: str) -> dict:
    ctl = lambda *a: [*natsctl(), *a, "-s", url]  # noqa: E731
    n = args.messages
    catalog = tmp / "catalog.yaml"
    catalog.write_text(
        "channels:\n"
        f"  'tickets.*':\n    schema: {json.dumps(SCHEMA)}\n    key: id\n    version: version\n"
        f"  'ticket:created':\n    schema: {{type: object}}\n    key: id\n    version: version\n"
        f"  'ticket:updated':\n    schema: {{type: object}}\n    key: id\n    version: version\n"
    )
    events = write(tmp / "tickets.jsonl", (ticket(i) for i in range(n)))
    empty = write(tmp / "empty.jsonl", [])
    pub = lambda name, path, *flags: run(ctl("pub", name, "--file", str(path), "-q", "--catalog", str(catalog), *flags))  # noqa: E731

    pair = Pair(
        "bulk publish, validated (6-field schema)",
        "pub (validated)",
        "pub --no-validate",
        ">= 0.7x",
        messages=n,
        cpu_row=True,
    )

    def a(i: int):
        result = pub(f"tickets.va{i}", events)
        delete_streams(url, f"tickets_va{i}")
        return result

    def b(i: int):
        result = pub(f"tickets.nv{i}", events, "--no-validate")
        delete_streams(url, f"tickets_nv{i}")
        return result

    interleave(
        pair,
        args.reps,
        a,
        b,
        zero_a=lambda i: pub(f"tickets.za{i}", empty),
        zero_b=lambda i: pub(f"tickets.zb{i}", empty, "--no-validate"),
    )
    delete_streams(url, "tickets")
    print(f"  validated publish: {pair.ratio():.2f}x", file=sys.stderr)

    audits = {}
    for total, keys in (
        (args.audit_events // 10, args.audit_events // 100),
        (args.audit_events, args.audit_events // 10),
    ):
        per_key = total // keys  # versions 0 .. per_key-1: 0 in ticket:created, the rest in ticket:updated
        created = write(tmp / "created.jsonl", (ticket(k, 0) for k in range(keys)))
        updated = write(
            tmp / "updated.jsonl", (ticket(v * keys + k, v, key=k) for v in range(1, per_key) for k in range(keys))
        )
        tag = f"{total}"
        run(ctl("pub", f"ticket:created.{tag}", "--file", str(created), "-q", "--no-validate"))
        run(ctl("pub", f"ticket:updated.{tag}", "--file", str(updated), "-q", "--no-validate"))
        cmd = ctl(
            "audit",
            "order",
            f"ticket:created.{tag}",
            f"ticket:updated.{tag}",
            "--key",
            "id",
            "--version",
            "version",
            "--json",
        )
        out = tmp / "audit.json"
        runs = [run(cmd, out=out) for _ in range(3)]
        report = json.loads(out.read_text())
        if report["events"] != keys * per_key or not report["ok"]:
            raise SystemExit(f"bench: audit order read {report['events']} events, ok={report['ok']}")
        best = min(runs, key=lambda r: r.seconds)
        audits[total] = {
            "events": report["events"],
            "keys": keys,
            "seconds": round(best.seconds, 2),
            "events_per_s": round(report["events"] / best.seconds),
            "cpu_us_per_event": round(min(r.cpu for r in runs) / report["events"] * 1e6, 2),
            "peak_rss_mb": round(max(r.rss_mb for r in runs), 1),
        }
        print(f"  audit order {total}: {audits[total]}", file=sys.stderr)
        delete_streams(url, "ticket_")
    lines = [
        "| measurement | validated | --no-validate | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| {pair.name}, {n:,} messages | {n / pair.net('a'):,.0f} msg/s | {n / pair.net('b'):,.0f} msg/s | "
        f"{pair.ratio():.2f}x | >= 0.7x | {'yes' if pair.met() else 'NO'} |",
        f"| client CPU per message (bulk part) | {pair.cpu_per_message_us('a'):.1f} us | "
        f"{pair.cpu_per_message_us('b'):.1f} us | - | - | (no target) |",
        f"| peak RSS | {max(pair.a_rss):.1f} MB | {max(pair.b_rss):.1f} MB | - | - | (no target) |",
        "",
        "| audit order | events | keys | time (best of 3) | events/s | client CPU per event | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in audits.values():
        lines.append(
            f"| 2 channels | {row['events']:,} | {row['keys']:,} | {row['seconds']} s | {row['events_per_s']:,} | "
            f"{row['cpu_us_per_event']} us | {row['peak_rss_mb']} MB |"
        )
    return {"publish": pair.summary(), "audit": audits, "table": "\n".join(lines)}


if __name__ == "__main__":
    sys.exit(main())
