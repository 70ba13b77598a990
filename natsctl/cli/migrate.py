"""`natsctl migrate plan|copy|durables|verify`: from NATS Streaming to JetStream (natsctl/migrate does the work)."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from natsctl.cli.options import monitor_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop
    from natsctl.core.migrate import Plan

SOURCE_NOTE = """The source is the NATS Streaming server of the usual flags (-s, --cluster-id, -m, --context);
its monitoring port must answer (-m / NATS_MONITOR_URL, default http://<server host>:8222)."""

TARGET = "Target (JetStream)"
PLAN_HELP = f"""Write a migration plan: every channel (messages, bytes, sequences) and every durable and durable
queue group (client, last sent, unacked, offline or connected) the NATS Streaming monitoring port lists.

The plan is YAML on stdout (or --out FILE); edit it: per channel the target stream name, replicas,
max_age, max_msgs, max_bytes, skip; per durable the JetStream durable/queue names (to_durable,
to_queue) and skip. A summary goes to stderr: the size of the work and what cannot be carried over
(plain, non-durable subscriptions). The plan needs nothing local: run the next steps anywhere.

{SOURCE_NOTE}

Examples:

\b
  natsctl migrate plan -s nats://stan:4222 --cluster-id ticketing --out plan.yaml
  natsctl migrate plan --cluster-id ticketing -o json"""

COPY_HELP = f"""Copy every message of every planned channel into its stream: payload byte for byte, with the
headers Nats-Streaming-Channel, Nats-Streaming-Sequence, Nats-Streaming-Timestamp (decimal, as stan2js
writes them) and Nats-Msg-Id stan:CHANNEL:SEQ. A missing stream is created (first sequence = the
channel's, so stream and channel sequences match). Resumable: a rerun (after Ctrl-C, kill -9, a lost
server) continues after the last message the stream holds, with no gap and no duplicate.

Progress on stderr: a table on a terminal, otherwise one JSON line per channel every half second (and
when a channel starts or finishes). --follow
keeps copying what is still published to NATS Streaming, with the lag per channel, until Ctrl-C
(exit 0 once everything read is confirmed) or SIGTERM (143).

Exit codes: 0 copied; 2 bad plan or a target stream that cannot be used (nothing created); 7 a
planned channel missing on NATS Streaming (nothing created); 3/8/9 a server failed (rerun to go on).

{SOURCE_NOTE}

Examples:

\b
  natsctl migrate copy plan.yaml --cluster-id ticketing --to-server nats://js:4222
  natsctl migrate copy plan.yaml --cluster-id ticketing --to-context js-prod --follow"""

DURABLES_HELP = f"""Create, for each planned durable and durable queue group, the JetStream durable that
`natsctl sub CHANNEL --durable TO_DURABLE [--queue TO_QUEUE]` uses, at the same position: messages NATS
Streaming had acknowledged are not delivered again, messages it had sent and not acknowledged are
delivered again first, then the ones it was never sent.

The unacked messages are read by resuming the durable without acknowledging anything, which needs
its client disconnected: a durable whose client is connected is skipped with one line (stop that
service and run again). A durable positioned already is left as it is; one whose positioning was
interrupted is made again. Run it after `migrate copy`.

Exit codes: 0 every durable positioned (or there already); 1 some skipped or failed (each says why;
the others are done, a rerun finishes the rest); 2/7 as for copy.

{SOURCE_NOTE}

Example:

\b
  natsctl migrate durables plan.yaml --cluster-id ticketing --to-server nats://js:4222"""

VERIFY_HELP = f"""Check the migration: every NATS Streaming message of every planned channel present once, in
order, with the same payload (sha256) in its stream, counts per channel; every planned durable there
and not behind its NATS Streaming position. Messages published to the stream directly (no migration
headers) and messages NATS Streaming has removed since they were copied are counted, not errors.

Exit codes: 0 all there; 12 a difference (the first one of each channel is named); 2/7 as for copy.

{SOURCE_NOTE}

Examples:

\b
  natsctl migrate verify plan.yaml --cluster-id ticketing --to-server nats://js:4222
  natsctl migrate verify plan.yaml --cluster-id ticketing --to-server nats://js:4222 -o json"""

PlanArg = Annotated[str, typer.Argument(metavar="PLAN", help="Plan file written by migrate plan", show_default=False)]
ToServer = Annotated[
    str | None,
    typer.Option(
        "--to-server",
        metavar="URL[,URL]",
        help="JetStream server URL(s) to migrate to",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
ToContext = Annotated[
    str | None,
    typer.Option(
        "--to-context",
        metavar="NAME",
        help="natscli context of the JetStream server to migrate to",
        rich_help_panel=TARGET,
        show_default=False,
    ),
]
Output = Annotated[
    str | None,
    typer.Option("--output", "-o", metavar="table|json", help="Report format: table or json [default: table]"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Short for -o json")]


def register(app: typer.Typer) -> None:
    migrate_app = typer.Typer(
        name="migrate",
        help="Move NATS Streaming channels and durables to JetStream: plan, copy (--follow), durables, verify.",
        no_args_is_help=True,
    )
    migrate_app.command("plan", help=PLAN_HELP)(migrate_plan)
    migrate_app.command("copy", help=COPY_HELP, no_args_is_help=True)(migrate_copy)
    migrate_app.command("durables", help=DURABLES_HELP, no_args_is_help=True)(migrate_durables)
    migrate_app.command("verify", help=VERIFY_HELP, no_args_is_help=True)(migrate_verify)
    app.add_typer(migrate_app, name="migrate")


def _source(settings: Settings) -> Settings:
    from natsctl.core.errors import UsageError

    if not settings.cluster_id:
        raise UsageError(
            "the migration source is NATS Streaming: give its --cluster-id (or NATS_CLUSTER_ID, or a context with it)"
        )
    return settings


def _format(output: str | None, json_flag: bool) -> str:
    from natsctl.core.errors import UsageError

    chosen = "json" if json_flag else (output or "table").lower()
    if chosen not in ("table", "json") or (json_flag and output and output.lower() != "json"):
        raise UsageError(f"unknown or contradicting output format {output!r}: use -o table or -o json")
    return chosen


# --- plan ------------------------------------------------------------------------------------------


@monitor_options
def migrate_plan(
    out: Annotated[
        str | None,
        typer.Option("--out", metavar="FILE", help="Write the plan to FILE instead of stdout", show_default=False),
    ] = None,
    output: Annotated[
        str | None, typer.Option("--output", "-o", metavar="yaml|json", help="Plan format [default: yaml]")
    ] = None,
    json_flag: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run

    source = _source(settings)
    fmt = "json" if json_flag else (output or "yaml").lower()
    if fmt not in ("yaml", "json"):
        from natsctl.core.errors import UsageError

        raise UsageError(f"unknown plan format {output!r}: use -o yaml or -o json")
    run(lambda stop: _plan(source, out, fmt))


async def _plan(settings: Settings, out: str | None, fmt: str) -> int:
    import json

    from natsctl.cli.render import stderr_console
    from natsctl.cli.render.migrate import plan_summary
    from natsctl.core.migrate import dump_plan
    from natsctl.migrate.plan import make_plan, survey

    plan = make_plan(await survey(settings), settings.cluster_id or "")
    text = json.dumps(plan.as_dict(), indent=2) + "\n" if fmt == "json" else dump_plan(plan)
    if out:
        _write_file(out, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
    stderr_console().print(plan_summary(plan))
    from natsctl.core.stderr import say

    for line in plan.not_carried:
        say(f"not carried over: {line}", "warning")
    if out:
        say(f"plan written to {out}")
    return 0


def _write_file(path: str, text: str) -> None:
    import os

    from natsctl.core.errors import UsageError

    try:
        temporary = f"{path}.tmp{os.getpid()}"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as exc:
        raise UsageError(f"cannot write --out {path}: {(exc.strerror or type(exc).__name__).lower()}") from None


def _load(path: str, settings: Settings) -> "Plan":
    from natsctl.core.errors import UsageError
    from natsctl.core.migrate import read_plan

    plan = read_plan(path)
    if settings.cluster_id and plan.cluster_id and plan.cluster_id != settings.cluster_id:
        raise UsageError(
            f"the plan is for NATS Streaming cluster {plan.cluster_id!r}, not {settings.cluster_id!r} (--cluster-id)"
        )
    return plan


def _target(to_server: str | None, to_context: str | None, source: Settings) -> Settings:
    from natsctl.core.migrate import target_settings

    return target_settings(to_server, to_context, source)


# --- copy ------------------------------------------------------------------------------------------


@monitor_options
def migrate_copy(
    plan_file: PlanArg,
    to_server: ToServer = None,
    to_context: ToContext = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep copying new messages until Ctrl-C, showing the lag")
    ] = False,
    json_flag: Annotated[bool, typer.Option("--json", help="Print the final report as JSON")] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run

    plan, source, target = _sides(plan_file, to_server, to_context, settings)
    run(lambda stop: _copy(plan, source, target, follow, json_flag, stop))


async def _copy(plan: "Plan", source: Settings, target: Settings, follow: bool, json_flag: bool, stop: "Stop") -> int:
    from natsctl.cli.render import stderr_is_terminal
    from natsctl.cli.render.migrate import CopyProgress
    from natsctl.cli.render.tables import build_table, print_table, write_json
    from natsctl.core.errors import ExitCode
    from natsctl.core.stderr import say
    from natsctl.migrate.copy import Copier

    copier = Copier(plan, source, target, follow=follow)
    progress = CopyProgress(copier.copies, terminal=stderr_is_terminal())
    copier.on_change = progress.changed
    copier.on_note = lambda text: say(text, "warning")
    stop.on_stop(copier.stop)
    try:
        copies = await copier.run()
    finally:
        progress.close()
    total = sum(c.copied for c in copies)
    say(f"copied {total:,} messages of {len(copies)} channels, every one confirmed by JetStream")
    rows = [c.as_dict() for c in copies]
    if json_flag:
        write_json(rows)
    else:
        print_table(build_table(rows))
    if follow and stop.exit_code == ExitCode.INTERRUPTED:
        stop.exit_code = ExitCode.OK  # Ctrl-C is how --follow ends
    return 0


def _sides(
    plan_file: str, to_server: str | None, to_context: str | None, settings: Settings
) -> tuple["Plan", Settings, Settings]:
    """The plan, checked against the source, and both sides' settings: what copy, durables and verify start from."""
    source = _source(settings)
    plan = _load(plan_file, source)
    return plan, source, _target(to_server, to_context, source)


# --- durables --------------------------------------------------------------------------------------


@monitor_options
def migrate_durables(
    plan_file: PlanArg,
    to_server: ToServer = None,
    to_context: ToContext = None,
    output: Output = None,
    json_flag: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run

    fmt = _format(output, json_flag)
    plan, source, target = _sides(plan_file, to_server, to_context, settings)
    run(lambda stop: _durables(plan, source, target, fmt))


async def _durables(plan: "Plan", source: Settings, target: Settings, fmt: str) -> int:
    from natsctl.cli.render.migrate import durables_table
    from natsctl.cli.render.tables import print_table, write_json
    from natsctl.core.errors import ExitCode
    from natsctl.core.stderr import say
    from natsctl.migrate.durables import migrate_durables

    def line(result) -> None:
        text = f"durable {result.durable!r} on {result.channel!r} -> {result.consumer!r}: {result.status}"
        say(f"{text}: {result.detail}" if result.detail else text, None if result.ok else "error")

    results = await migrate_durables(plan, source, target, line)
    if fmt == "json":
        write_json([r.as_dict() for r in results])
    else:
        print_table(durables_table(results))
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.ERROR


# --- verify ----------------------------------------------------------------------------------------


@monitor_options
def migrate_verify(
    plan_file: PlanArg,
    to_server: ToServer = None,
    to_context: ToContext = None,
    no_durables: Annotated[
        bool, typer.Option("--no-durables", help="Check the channels only (before migrate durables)")
    ] = False,
    output: Output = None,
    json_flag: JsonFlag = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run

    fmt = _format(output, json_flag)
    plan, source, target = _sides(plan_file, to_server, to_context, settings)
    run(lambda stop: _verify(plan, source, target, fmt, not no_durables))


async def _verify(plan: "Plan", source: Settings, target: Settings, fmt: str, durables: bool) -> int:
    from natsctl.cli.render.migrate import verify_table
    from natsctl.cli.render.tables import print_table, write_json
    from natsctl.core.errors import ExitCode
    from natsctl.core.stderr import say
    from natsctl.migrate.verify import verify

    report = await verify(plan, source, target, durables=durables)
    if fmt == "json":
        write_json(report.as_dict())
    else:
        print_table(verify_table(report))
    for check in report.channels:
        if not check.ok:
            say(f"{check.channel}: {check.first_difference}", "error")
    for durable in report.durables:
        if not durable.ok:
            say(f"durable {durable.durable!r} on {durable.channel!r}: {durable.detail}", "error")
    return ExitCode.OK if report.ok else ExitCode.MISMATCH
