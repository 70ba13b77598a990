"""`natsctl catalog ls|show|check|infer`: the event catalog (channel -> JSON Schema, key, version)."""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from natsctl.cli.options import connection_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.cli.run import Stop

CATALOG_HELP = """The event catalog: channel name or wildcard -> JSON Schema (draft 2020-12), key and version fields.

The catalog is the first of: --catalog FILE, NATSCTL_CATALOG, the context's or the config's
'catalog' key, ./natsctl-catalog.yaml. `pub` checks messages against it (--no-validate skips);
`sub` / `replay --validate` check events as they are read; `audit order` takes key and version from it.

\b
  channels:
    ticket:created:
      schema: {type: object, required: [id, price], properties: {price: {type: number, minimum: 0}}}
      key: id
      version: version
    "orders.*":
      schema: schemas/order.json   # relative to the catalog file"""

CHECK_HELP = """Read CHANNEL (from the start, or --since) and report how many events break its contract, grouped by error.

Exit codes: 0 every event valid; 12 some are not (the report says which, how, and the first sequence
of each kind); 2 no catalog entry or an invalid schema; 3/7/9 the channel could not be read.

Examples:

\b
  natsctl catalog check ticket:created
  natsctl catalog check ticket:created --since 1h --json"""

INFER_HELP = """Infer a JSON Schema from the last N events of CHANNEL and print it, ready for the catalog.

Fields present in every event are required; a string field with few distinct values gets an enum.
Events that are not JSON are left out (a warning counts them).

Examples:

\b
  natsctl catalog infer ticket:created --last 500
  natsctl catalog infer ticket:created --yaml >> natsctl-catalog.yaml"""

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (same as -o json)")]
OutputOpt = Annotated[
    str | None,
    typer.Option("--output", "-o", metavar="table|json|yaml", help="Output format [default table]", show_default=False),
]
CatalogOpt = Annotated[
    str | None,
    typer.Option(
        "--catalog", metavar="FILE", help="Event catalog [env NATSCTL_CATALOG; default ./natsctl-catalog.yaml]"
    ),
]
ChannelArg = Annotated[str, typer.Argument(metavar="CHANNEL", help="Channel name", show_default=False)]


def register(app: typer.Typer) -> None:
    catalog_app = typer.Typer(name="catalog", help=CATALOG_HELP, no_args_is_help=True)
    catalog_app.command("ls", help="List the catalog's channels, their key and version fields and schema state.")(
        catalog_ls
    )
    catalog_app.command("show", help="Show the catalog entry that applies to CHANNEL, schema included.")(catalog_show)
    catalog_app.command("check", help=CHECK_HELP, no_args_is_help=True)(catalog_check)
    catalog_app.command("infer", help=INFER_HELP, no_args_is_help=True)(catalog_infer)
    app.add_typer(catalog_app, name="catalog")


def _format(output: str | None, json_flag: bool) -> str:
    from natsctl.core.errors import UsageError

    fmt = "json" if json_flag else (output or "table")
    if json_flag and output and output != "json":
        raise UsageError(f"--json contradicts -o {output}")
    if fmt not in ("table", "json", "yaml"):
        raise UsageError(f"unknown output format {output!r}: use table, json or yaml")
    return fmt


def _emit(data: Any, fmt: str, table: str) -> None:
    import json

    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(table)
    sys.stdout.flush()


def _columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n" for row in rows)


def catalog_ls(catalog: CatalogOpt = None, json_flag: JsonOpt = False, output: OutputOpt = None) -> None:
    """List the catalog's entries; every schema is compiled, so a broken one shows here."""
    from natsctl.cli.contract_io import load_catalog
    from natsctl.core.errors import NatsctlError

    fmt = _format(output, json_flag)
    found = load_catalog(catalog, required=True, standalone=True)
    assert found is not None
    rows: list[dict[str, Any]] = []
    broken = 0
    for entry in found.entries:
        problem = None
        try:
            entry.contract()
        except NatsctlError as exc:
            problem = exc.line()
            broken += 1
        rows.append(
            {
                "channel": entry.pattern,
                "key": entry.key,
                "version": entry.version,
                "schema_file": entry.schema_file,
                "valid_schema": problem is None,
                "error": problem,
            }
        )
    doc = {"catalog": str(found.source.path), "from": found.source.origin, "channels": rows}
    table = f"catalog {found.source.path} (from {found.source.origin})\n"
    if rows:
        table += _columns(
            [["CHANNEL", "KEY", "VERSION", "SCHEMA"]]
            + [
                [
                    r["channel"],
                    r["key"] or "-",
                    r["version"] or "-",
                    ("INVALID: " + r["error"]) if r["error"] else (r["schema_file"] or "inline"),
                ]
                for r in rows
            ]
        )
    else:
        table += "no channels\n"
    _emit(doc, fmt, table)
    if broken:
        from natsctl.contracts.schema import SchemaError

        first = next(r for r in rows if r["error"])
        raise SchemaError(f"{broken} of {len(rows)} schemas are not valid; first: {first['error']}")


def catalog_show(
    channel: ChannelArg, catalog: CatalogOpt = None, json_flag: JsonOpt = False, output: OutputOpt = None
) -> None:
    """Show the entry that applies to CHANNEL (its own, or the first matching wildcard)."""
    import json

    from natsctl.cli.contract_io import entry_for

    fmt = _format(output, json_flag)
    entry = entry_for(catalog, channel, required=True, standalone=True)
    assert entry is not None
    entry.contract()
    doc = {"requested": channel, **entry.as_dict()}
    table = (
        f"channel   {channel}" + (f" (entry {entry.pattern})" if entry.pattern != channel else "") + "\n"
        f"key       {entry.key or '-'}\nversion   {entry.version or '-'}\n"
        f"schema    {entry.schema_file or 'inline'}\n" + json.dumps(entry.schema, indent=2, ensure_ascii=False) + "\n"
    )
    _emit(doc, fmt, table)


@connection_options
def catalog_check(
    channel: ChannelArg,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="DURATION|TIME", help="From a time: a duration ago (90s, 1h) or RFC 3339"),
    ] = None,
    catalog: CatalogOpt = None,
    json_flag: JsonOpt = False,
    output: OutputOpt = None,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.contract_io import entry_for
    from natsctl.cli.run import run
    from natsctl.core.names import validate_channel

    validate_channel(channel)
    fmt = _format(output, json_flag)
    entry = entry_for(catalog, channel, required=True)
    assert entry is not None
    entry.contract()
    run(lambda stop: _check(channel, since, entry, settings, fmt, stop))


async def _check(channel: str, since: str | None, entry: Any, settings: Settings, fmt: str, stop: "Stop") -> int:
    from natsctl.cli.contract_io import messages_of, read_spec
    from natsctl.core.errors import ExitCode
    from natsctl.opener import open_backend

    spec = read_spec(channel, since)
    contract = entry.contract()
    groups: dict[str, dict[str, Any]] = {}
    total = invalid = 0
    backend = await open_backend(settings)
    try:
        subscription = await backend.subscribe(spec)
        stop.on_stop(subscription.stop)
        try:
            async for message in messages_of(subscription):
                total += 1
                value, problem = contract.parse(message.data)
                if problem is None and contract._is_valid(value):
                    continue
                invalid += 1
                found = [("not JSON", problem)] if problem is not None else contract.groups_of(value)
                for group, example in dict(found).items():
                    row = groups.setdefault(
                        group, {"error": group, "events": 0, "first_seq": message.sequence, "example": example}
                    )
                    row["events"] += 1
        finally:
            await subscription.close()
    finally:
        await backend.close()
    rows = sorted(groups.values(), key=lambda r: (-r["events"], r["first_seq"]))
    doc = {
        "channel": channel,
        "entry": entry.pattern,
        "events": total,
        "valid": total - invalid,
        "invalid": invalid,
        "errors": rows,
    }
    table = f"{channel}: {total} events, {total - invalid} valid, {invalid} invalid (contract {entry.pattern})\n"
    if rows:
        table += _columns(
            [["ERROR", "EVENTS", "FIRST SEQ", "EXAMPLE"]]
            + [[r["error"], str(r["events"]), str(r["first_seq"]), r["example"]] for r in rows]
        )
    _emit(doc, fmt, table)
    if invalid:
        from natsctl.core.stderr import say

        say(f"{invalid} of {total} events in {channel} break the contract of {entry.pattern!r}", "error")
        return ExitCode.MISMATCH
    return ExitCode.OK


@connection_options
def catalog_infer(
    channel: ChannelArg,
    last: Annotated[int, typer.Option("--last", metavar="N", min=1, help="Infer from the last N events stored")] = 1000,
    yaml_out: Annotated[
        bool, typer.Option("--yaml", help="Print a catalog entry (YAML) instead of the JSON schema")
    ] = False,
    *,
    settings: Settings,
) -> None:
    from natsctl.cli.run import run
    from natsctl.core.names import validate_channel

    validate_channel(channel)
    run(lambda stop: _infer(channel, last, yaml_out, settings, stop))


async def _infer(channel: str, last: int, yaml_out: bool, settings: Settings, stop: "Stop") -> int:
    import json
    from collections import deque

    from natsctl.cli.contract_io import messages_of, read_spec
    from natsctl.contracts.infer import Inference
    from natsctl.core.errors import NotFound
    from natsctl.core.stderr import say
    from natsctl.opener import open_backend

    kept: deque[bytes] = deque(maxlen=last)
    backend = await open_backend(settings)
    try:
        subscription = await backend.subscribe(read_spec(channel))
        stop.on_stop(subscription.stop)
        try:
            async for message in messages_of(subscription):
                kept.append(message.data)
        finally:
            await subscription.close()
    finally:
        await backend.close()
    inference = Inference()
    skipped = 0
    for data in kept:
        try:
            inference.add(json.loads(data))
        except (ValueError, RecursionError):
            skipped += 1
    if skipped:
        say(f"{skipped} of {len(kept)} events are not JSON and were left out", "warning")
    if not inference.count:
        raise NotFound(f"channel {channel!r} has no JSON events to infer a schema from")
    schema = inference.schema()
    if yaml_out:
        import yaml

        entry = {"channels": {channel: {"schema": schema}}}
        sys.stdout.write(yaml.safe_dump(entry, sort_keys=False, allow_unicode=True))
    else:
        sys.stdout.write(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
    say(f"inferred from {inference.count} events of {channel}")
    return 0
