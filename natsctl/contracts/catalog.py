"""The channel catalog: channel name or wildcard -> JSON Schema (inline or a file), key and version fields.

    channels:
      ticket:created:
        schema: {type: object, required: [id, price], properties: {price: {type: number, minimum: 0}}}
        key: id                 # dotted path of the event's key (audit order)
        version: version        # dotted path of its version (an integer)
      "orders.*":
        schema: schemas/order.json   # relative to the catalog file (JSON or YAML)

Where it comes from, the first that names one: ``--catalog FILE``, ``NATSCTL_CATALOG``, the selected
context's ``catalog`` key, natsctl's config ``catalog`` key (per context, then top level), and
``./natsctl-catalog.yaml`` when present. A path from a context or config file is relative to that file.

Wildcards are NATS subject wildcards (``*`` one token, ``>`` the rest); a channel's own name wins over
a wildcard, then wildcards in the catalog's order. Loading checks the catalog's shape; a schema is
compiled only when its entry applies (``catalog ls`` / ``check`` compile every one).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from natsctl.core.errors import UsageError

if TYPE_CHECKING:
    from natsctl.core.settings import Resolution

    from .schema import Contract

DEFAULT_FILE = "natsctl-catalog.yaml"
ENTRY_KEYS = ("schema", "key", "version", "description")


class CatalogError(UsageError):
    """The catalog cannot be read or is not what natsctl expects (the message names the file and where in it)."""


@dataclass(frozen=True, slots=True)
class Source:
    path: Path
    origin: str  # "--catalog", "NATSCTL_CATALOG", "context NAME", "config", "./natsctl-catalog.yaml"

    def describe(self) -> str:
        return f"the catalog {self.path} (from {self.origin})"


def locate(
    flag: str | None, resolution: Resolution | None, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> Source | None:
    """The catalog file to use, or None when nothing names one and there is no ./natsctl-catalog.yaml."""
    env = os.environ if env is None else env
    if flag:
        return Source(Path(os.path.expanduser(flag)), "--catalog")
    value = env.get("NATSCTL_CATALOG")
    if value:
        return Source(Path(os.path.expanduser(value)), "NATSCTL_CATALOG")
    if resolution is not None:
        for name, layer in resolution.layers:
            if name in ("flag", "env"):
                continue
            given = layer.get("catalog")
            if not given:
                continue
            path = Path(os.path.expanduser(str(given)))
            base = resolution.context_path if name.startswith("context") else resolution.config_path
            if not path.is_absolute() and base is not None:
                path = base.parent / path
            return Source(path, name)
    here = (cwd or Path.cwd()) / DEFAULT_FILE
    if here.is_file():
        return Source(Path(DEFAULT_FILE), f"./{DEFAULT_FILE}")
    return None


@dataclass(slots=True)
class Entry:
    pattern: str
    schema: object  # the schema itself (a file reference is read on loading)
    schema_file: str | None = None  # the file it came from, when given as a path
    key: str | None = None
    version: str | None = None
    description: str | None = None
    where: str = ""  # "the catalog X (from Y): channel 'Z'", for errors
    _contract: Contract | None = field(default=None, repr=False)

    def contract(self) -> Contract:
        """The compiled schema (compiled once, on first use)."""
        if self._contract is None:
            from .schema import Contract

            self._contract = Contract(self.schema, self.where + " schema")
        return self._contract

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.pattern,
            "schema_file": self.schema_file,
            "key": self.key,
            "version": self.version,
            "description": self.description,
            "schema": self.schema,
        }


@dataclass(slots=True)
class Catalog:
    source: Source
    entries: list[Entry]

    def entry_for(self, channel: str) -> Entry | None:
        """The channel's own entry, else the first wildcard entry that matches it."""
        for entry in self.entries:
            if entry.pattern == channel:
                return entry
        for entry in self.entries:
            if is_wildcard(entry.pattern) and matches(entry.pattern, channel):
                return entry
        return None


def is_wildcard(pattern: str) -> bool:
    return any(token in ("*", ">") for token in pattern.split("."))


def matches(pattern: str, channel: str) -> bool:
    """NATS subject matching: ``*`` is one token, a last ``>`` one or more tokens."""
    want = pattern.split(".")
    have = channel.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return i == len(want) - 1 and len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(have) == len(want)


def load(source: Source) -> Catalog:
    """Read and check the catalog's shape (schemas are read from their files, compiled later)."""
    from natsctl.core.files import DocumentKind, load_document

    kind = DocumentKind(
        what="the catalog",
        syntax="YAML",
        too_deep="a catalog",
        too_deep_hint="keep schemas in files (schema: schemas/x.json)",
        not_a_mapping=f"(from {source.origin}) must hold a mapping with a 'channels' key",
        error=CatalogError,
        check=lambda _doc, _path: None,
    )
    document = load_document(source.path, kind)
    if document is None:
        raise CatalogError(f"{source.describe()}: no such file")
    where = source.describe()
    unknown = [str(k) for k in document if k != "channels"]
    if unknown:
        raise CatalogError(f"{where}: unknown top-level key {unknown[0]!r} (a catalog has 'channels')")
    channels = document.get("channels")
    if channels is None:
        return Catalog(source, [])
    if not isinstance(channels, dict):
        raise CatalogError(f"{where}: 'channels' must map channel names (or wildcards) to entries")
    entries = [_entry(source, str(name), value) for name, value in channels.items()]
    return Catalog(source, entries)


def _entry(source: Source, pattern: str, value: object) -> Entry:
    where = f"{source.describe()}: channel {pattern!r}"
    _check_pattern(pattern, where)
    if not isinstance(value, dict):
        raise CatalogError(f"{where} must be a mapping with 'schema' (and optionally 'key', 'version')")
    unknown = [str(k) for k in value if k not in ENTRY_KEYS]
    if unknown:
        raise CatalogError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(ENTRY_KEYS)})")
    if "schema" not in value:
        raise CatalogError(f"{where}: no 'schema'")
    schema = value["schema"]
    schema_file = None
    if isinstance(schema, str):
        schema_file = schema
        schema = _read_schema_file(source, schema, where)
    elif not isinstance(schema, (dict, bool)):
        raise CatalogError(f"{where}: 'schema' must be a JSON Schema (a mapping) or a file path")
    fields: dict[str, str | None] = {}
    for name in ("key", "version", "description"):
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            raise CatalogError(f"{where}: {name!r} must be a string")
        if name != "description" and item is not None:
            check_field_path(item, f"{where}: {name!r}")
        fields[name] = item
    return Entry(pattern, schema, schema_file, fields["key"], fields["version"], fields["description"], where)


def _check_pattern(pattern: str, where: str) -> None:
    tokens = pattern.split(".")
    if not pattern or any(not t for t in tokens) or any(c.isspace() for c in pattern):
        raise CatalogError(f"{where}: not a channel name or wildcard")
    if ">" in tokens[:-1] or any(("*" in t or ">" in t) and t not in ("*", ">") for t in tokens):
        raise CatalogError(f"{where}: a wildcard is a whole token: '*' for one, a last '>' for the rest")


def _read_schema_file(source: Source, reference: str, where: str) -> object:
    from natsctl.core.files import DocumentKind, load_document

    path = Path(os.path.expanduser(reference))
    if not path.is_absolute():
        path = source.path.parent / path
    syntax: Literal["YAML", "JSON"] = "JSON" if path.suffix.lower() == ".json" else "YAML"
    kind = DocumentKind(
        what=f"{where}: the schema file",
        syntax=syntax,
        too_deep="a schema",
        too_deep_hint="flatten it with $defs and $ref",
        not_a_mapping="must hold a JSON Schema object",
        error=CatalogError,
        check=lambda _doc, _path: None,
    )
    document = load_document(path, kind)
    if document is None:
        raise CatalogError(f"{where}: the schema file {path} does not exist (paths are relative to the catalog file)")
    return document


def check_field_path(path: str, where: str) -> list[str]:
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise CatalogError(f"{where}: {path!r} is not a dotted field path (such as id or ticket.id)")
    return parts
