"""``natsctl context ls|show|use|add|rm`` and ``natsctl config path|show``.

Contexts are natscli's own files, so ``nats`` and ``natsctl`` share them. Secrets are masked in
everything printed here; the file-writing is in :mod:`natsctl.core.contexts`.
"""

# No "from __future__ import annotations": Typer reads these signatures through a wrapper (options.py).

import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, TypedDict

import typer

from natsctl.cli.options import context_options, monitor_options
from natsctl.core.settings import Settings

if TYPE_CHECKING:
    from natsctl.core.settings import Resolution

MASK = "***"
FORMATS = ("table", "json", "yaml")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (same as -o json)")]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", metavar="table|json|yaml", help="Output format: table, json or yaml", show_default=False
    ),
]


def register(app: typer.Typer) -> None:
    context_app = typer.Typer(
        name="context", help="natscli connection contexts: list, show, select, add, remove.", no_args_is_help=True
    )
    config_app = typer.Typer(
        name="config", help="natsctl's own config file (monitoring URL, cluster id, defaults).", no_args_is_help=True
    )
    for name, command in (
        ("ls", context_ls),
        ("show", context_show),
        ("use", context_use),
        ("add", context_add),
        ("rm", context_rm),
    ):
        context_app.command(name)(command)
    config_app.command("path")(config_path)
    config_app.command("show")(config_show)
    app.add_typer(context_app, name="context")
    app.add_typer(config_app, name="config")


# --- output ----------------------------------------------------------------------------------------


def output_format(json_flag: bool, output: str | None) -> str:
    from natsctl.core.errors import UsageError

    if json_flag:
        return "json"
    if output is None:
        from natsctl.core import config

        try:
            output = str(config.load().get("output") or "table")
        except Exception:  # noqa: BLE001 - a broken config is reported by the commands that need it
            output = "table"
    if output not in FORMATS:
        raise UsageError(f"unknown output format {output!r}: use table, json or yaml")
    return output


def emit(data: object, fmt: str, table: str) -> None:
    if fmt == "json":
        import json

        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif fmt == "yaml":
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False))
    else:
        sys.stdout.write(table)


def columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() + "\n" for row in rows)


def key_values(pairs: list[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "".join(f"{k.ljust(width)}  {'' if v is None else v}\n" for k, v in pairs)


# --- masking ---------------------------------------------------------------------------------------


def mask_context(data: Mapping[str, object]) -> dict[str, object]:
    """A context document safe to print: secrets masked, credentials in URLs redacted."""
    from natsctl.core.contexts import SECRET_KEYS
    from natsctl.core.settings import redact_url, split_list

    shown: dict[str, object] = {}
    for key, value in data.items():
        if key in SECRET_KEYS and value:
            value = MASK
        elif key == "url" and isinstance(value, str) and value:
            value = ",".join(redact_url(u) for u in split_list(value))
        shown[key] = value
    return shown


def mask_config(section: object) -> object:
    from natsctl.core.config import SECRET_KEYS
    from natsctl.core.settings import redact_url, split_list

    if not isinstance(section, dict):
        return section
    shown: dict[str, object] = {}
    for key, value in section.items():
        if key in SECRET_KEYS and value:
            value = MASK
        elif key in ("server", "servers", "monitor", "monitor_url", "monitor_urls") and value:
            value = [redact_url(u) for u in split_list(value)]
        elif isinstance(value, dict):
            value = {k: mask_config(v) for k, v in value.items()}
        shown[key] = value
    return shown


# --- context commands ------------------------------------------------------------------------------


@dataclass
class ContextRow:
    """One line of `context ls` (and one object of its JSON / YAML)."""

    name: str
    selected: bool
    description: str
    url: str  # credentials redacted
    path: str
    error: str | None  # why the file could not be read


def context_ls(json_flag: JsonOpt = False, output: OutputOpt = None) -> None:
    """List the natscli contexts; '*' marks the selected one."""
    from natsctl.core import contexts

    fmt = output_format(json_flag, output)
    current = contexts.selected()
    rows: list[ContextRow] = []
    for name in contexts.names():
        problem: str | None = None
        try:
            data = mask_context(contexts.read(name))
        except Exception as exc:  # noqa: BLE001 - one broken file must not hide the others
            data, problem = {}, getattr(exc, "message", type(exc).__name__)
        rows.append(
            ContextRow(name=name, selected=name == current, description=str(data.get("description") or ""),
                       url=str(data.get("url") or ""), path=str(contexts.context_path(name)), error=problem)
        )  # fmt: skip
    table = (
        columns(
            [["NAME", "URL", "DESCRIPTION"]]
            + [[("*" if r.selected else " ") + r.name, r.url or r.error or "", r.description] for r in rows]
        )
        if rows
        else "no contexts (add one with 'natsctl context add NAME --server URL')\n"
    )
    emit([asdict(r) for r in rows], fmt, table)


def context_show(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Context name [default: the selected one]", show_default=False)
    ] = None,
    json_flag: JsonOpt = False,
    output: OutputOpt = None,
) -> None:
    """Show a context (secrets masked) and the natsctl config overrides that apply to it."""
    from natsctl.core import config, contexts
    from natsctl.core.errors import UsageError

    fmt = output_format(json_flag, output)
    name = name or contexts.selected()
    if not name:
        raise UsageError("no context is selected", hint="name one, or select one with 'natsctl context use NAME'")
    data = mask_context(contexts.read(name))
    sections = config.load().get("contexts")  # a mapping when present (the config loader checks it)
    overrides = mask_config((sections.get(name) if isinstance(sections, dict) else None) or {})
    path, selected = str(contexts.context_path(name)), name == contexts.selected()
    doc = {"name": name, "path": path, "selected": selected, "context": data, "natsctl_overrides": overrides}
    pairs: list[tuple[str, object]] = [("Name", name), ("Path", path), ("Selected", "yes" if selected else "no")]
    pairs += [(k, v) for k, v in data.items() if v not in ("", None, False)]
    pairs += [(f"natsctl {k}", v) for k, v in (overrides.items() if isinstance(overrides, dict) else ())]
    emit(doc, fmt, key_values(pairs))


def context_use(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Context to select (written to nats/context.txt, shared with natscli)")
    ],
    json_flag: JsonOpt = False,
) -> None:
    """Select the context used when neither --context nor NATS_CONTEXT is given."""
    from natsctl.core import contexts
    from natsctl.core.stderr import say

    contexts.read(name)  # refuse a missing or broken context before selecting it
    path = contexts.select(name)
    if json_flag:
        emit({"selected": name, "path": str(path)}, "json", "")
    else:
        say(f"selected context {name!r}")


@context_options
def context_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Context name")],
    inbox_prefix: Annotated[
        str | None, typer.Option("--inbox-prefix", metavar="PREFIX", help="Custom inbox prefix")
    ] = None,
    js_domain: Annotated[str | None, typer.Option("--js-domain", metavar="DOMAIN", help="JetStream domain")] = None,
    js_api_prefix: Annotated[
        str | None, typer.Option("--js-api-prefix", metavar="PREFIX", help="JetStream API prefix")
    ] = None,
    description: Annotated[str | None, typer.Option("--description", metavar="TEXT", help="A description")] = None,
    select: Annotated[bool, typer.Option("--select", help="Also select it")] = False,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing context of that name")] = False,
    json_flag: JsonOpt = False,
    *,
    connection: dict[str, object],
) -> None:
    """Write a natscli-compatible context file (mode 0600, folder 0700)."""
    from natsctl.core import contexts
    from natsctl.core.errors import UsageError
    from natsctl.core.settings import check_flags
    from natsctl.core.stderr import say

    check_flags({"servers": connection["servers"]})  # -s "" or -s , would write a context that names no server
    path = contexts.context_path(name)
    if path.exists() and not force:
        raise UsageError(f"a context named {name!r} exists ({path})", hint="pass --force to replace it")
    values = {**connection, "tls_first": connection["tls_first"] or None, "inbox_prefix": inbox_prefix,
              "js_domain": js_domain, "js_api_prefix": js_api_prefix, "description": description}  # fmt: skip
    written = contexts.write(name, contexts.from_settings_fields(values))
    if select:
        contexts.select(name)
    if json_flag:
        emit(
            {"name": name, "path": str(written), "selected": select, "context": mask_context(contexts.read(name))},
            "json",
            "",
        )
    else:
        say(f"wrote context {name!r} to {written}" + (" and selected it" if select else ""))


def context_rm(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Context to remove")],
    json_flag: JsonOpt = False,
) -> None:
    """Remove a context file (and its selection, if it was selected)."""
    from natsctl.core import contexts
    from natsctl.core.stderr import say

    path = contexts.remove(name)
    was_selected = contexts.selected() == name
    if was_selected:
        contexts.select(None)
    if json_flag:
        emit({"removed": name, "path": str(path), "was_selected": was_selected}, "json", "")
    else:
        say(f"removed context {name!r} ({path})")


# --- config commands -------------------------------------------------------------------------------


def config_path(json_flag: JsonOpt = False) -> None:
    """Print where natsctl's config file is (or would be)."""
    from natsctl.core import config

    where = config.path()
    emit({"path": str(where), "exists": where.exists()}, "json" if json_flag else "table", f"{where}\n")


@monitor_options
def config_show(*, settings: Settings, json_flag: JsonOpt = False, output: OutputOpt = None) -> None:
    """Show the config file (masked) and the effective settings with where each one came from."""
    from natsctl.cli.settings import last_resolution
    from natsctl.core import config

    fmt = output_format(json_flag, output)
    resolution = last_resolution()
    where = config.path()
    effective = effective_settings(settings, resolution)
    doc = {"path": str(where), "exists": where.exists(), "config": mask_config(config.load()), "effective": effective}
    pairs: list[tuple[str, object]] = [("Config file", f"{where}{'' if where.exists() else ' (none)'}")]
    pairs += [
        (k, f"{v['value']}  ({v['source']})") for k, v in effective.items() if v["value"] not in (None, [], False)
    ]
    emit(doc, fmt, key_values(pairs))


class Effective(TypedDict):
    """A setting in `config show --json`: its value (secrets masked) and the layer it came from."""

    value: object
    source: str


def effective_settings(settings: Settings, resolution: "Resolution | None") -> dict[str, Effective]:
    from dataclasses import fields

    from natsctl.core.settings import redact_url

    out: dict[str, Effective] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name in ("password", "token") and value:
            value = MASK
        elif f.name in ("servers", "monitor_urls"):
            value = [redact_url(u) for u in value]
        source = resolution.source_of(f.name) if resolution else "default"
        if f.name == "monitor_ca" and source == "default" and value:
            source = f"tls_ca ({resolution.source_of('tls_ca')})" if resolution else "tls_ca"
        out[f.name] = {"value": value, "source": source}
    return out
