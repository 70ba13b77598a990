"""natscli contexts: ``<config home>/nats/context/<name>.json``, the selection in ``nats/context.txt``.

Files are read exactly as natscli writes them, so a user's existing contexts work with no set-up, and
files natsctl writes are ones natscli reads back. Secrets live in these files, so they are written
0600 in a 0700 folder, and errors name the file, never its content.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from natsctl.core.errors import NotFound, UsageError
from natsctl.core.files import DocumentKind, kind_of, load_document, parse_document

# natscli JSON key -> Settings field. Keys natscli has that natsctl does not use (nsc, socks_proxy,
# color_scheme, windows_cert_*...) are kept untouched when natsctl rewrites a file.
FIELDS = {
    "url": "servers",
    "user": "user",
    "password": "password",
    "token": "token",
    "creds": "creds",
    "nkey": "nkey",
    "cert": "tls_cert",
    "key": "tls_key",
    "ca": "tls_ca",
    "tls_first": "tls_first",
    "inbox_prefix": "inbox_prefix",
    "jetstream_domain": "js_domain",
    "jetstream_api_prefix": "js_api_prefix",
    "description": "description",
    "catalog": "catalog",  # natsctl's own key: the event catalog of this context (natsctl.contracts.catalog)
}

# Keys whose values are secrets; the files they point at (creds, nkey) are checked for their mode.
SECRET_KEYS = ("password", "token", "user_jwt")

# The order natscli writes keys in, so a file natsctl writes diffs cleanly against one natscli wrote.
NATSCLI_KEYS = (
    "description", "url", "socks_proxy", "token", "user", "password", "creds", "nkey", "cert", "key", "ca",
    "nsc", "jetstream_domain", "jetstream_api_prefix", "jetstream_event_prefix", "inbox_prefix",
    "user_jwt", "color_scheme", "tls_first",
)  # fmt: skip


class ContextFileError(UsageError):
    """A context file or the selection file cannot be read or parsed (the message names the file)."""


def config_home(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CONFIG_HOME``, else ``~/.config`` (natscli's rule on every platform natsctl targets)."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME")
    if xdg:
        return Path(xdg)
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".config"


def nats_dir(env: Mapping[str, str] | None = None) -> Path:
    return config_home(env) / "nats"


def context_dir(env: Mapping[str, str] | None = None) -> Path:
    return nats_dir(env) / "context"


def selection_file(env: Mapping[str, str] | None = None) -> Path:
    return nats_dir(env) / "context.txt"


def check_name(name: str) -> str:
    """A context name is one file name: no separators, so ``--context ../x`` cannot escape the folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise UsageError(f"invalid context name {name!r}: use letters, digits, '-', '_' or '.'")
    return name


def context_path(name: str, env: Mapping[str, str] | None = None) -> Path:
    return context_dir(env) / f"{check_name(name)}.json"


def names(env: Mapping[str, str] | None = None) -> list[str]:
    folder = context_dir(env)
    try:
        entries = sorted(p.stem for p in folder.glob("*.json") if p.is_file())
    except OSError as exc:
        raise ContextFileError(f"cannot read the context folder {folder}: {exc.strerror or exc}") from None
    return entries


def selected(env: Mapping[str, str] | None = None) -> str | None:
    """The name in context.txt (natscli's ``nats context select``), or None."""
    path = selection_file(env)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ContextFileError(f"cannot read the context selection file {path}: {_reason(exc)}") from None
    return text or None


def read(name: str, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The raw JSON object of context ``name``."""
    path = context_path(name, env)
    document = load_document(path, CONTEXT_FILE)
    if document is None:
        raise NotFound(f"no context named {name!r} (looked for {path})", hint="see 'natsctl context ls'")
    return document


def parse(raw: bytes, path: Path) -> dict[str, object]:
    return parse_document(raw, path, CONTEXT_FILE)


def check_values(data: Mapping[str, object], path: Path) -> None:
    """natscli's keys hold strings (``tls_first`` true or false); a url names at least one server."""
    for key, value in data.items():
        if key not in FIELDS or value is None:
            continue
        expected = bool if FIELDS[key] == "tls_first" else str
        if not isinstance(value, expected):
            kind = "true or false" if expected is bool else "a string"
            raise ContextFileError(f"the context file {path}: {key!r} must be {kind}, not {kind_of(value, 'JSON')}")
        if FIELDS[key] == "servers" and value != "" and not any(part.strip() for part in str(value).split(",")):
            raise ContextFileError(
                f"the context file {path}: 'url' is {value!r}, which names no server",
                hint='set it to a URL such as nats://host:4222, or to "" for none',
            )


CONTEXT_FILE = DocumentKind(
    what="the context file",
    syntax="JSON",
    too_deep="a natscli context",
    too_deep_hint="a context is one JSON object of strings and true/false; rewrite it with 'natsctl context add --force'",
    not_a_mapping="does not hold a JSON object",
    error=ContextFileError,
    check=check_values,
)


def to_layer(data: Mapping[str, object]) -> dict[str, object]:
    """Settings fields set by a context; empty strings (natscli writes every key) mean "not set"."""
    layer: dict[str, object] = {}
    for key, field_name in FIELDS.items():
        value = data.get(key)
        if value in (None, "", False):
            continue
        if field_name == "tls_first":
            value = bool(value)
        layer[field_name] = value
    return layer


def from_settings_fields(values: Mapping[str, object]) -> dict[str, object]:
    """The inverse of :func:`to_layer`: natscli keys from Settings-field values (``None`` skipped)."""
    by_field = {field_name: key for key, field_name in FIELDS.items()}
    out: dict[str, object] = {}
    for field_name, value in values.items():
        if value is None or field_name not in by_field:
            continue
        out[by_field[field_name]] = ",".join(value) if isinstance(value, list) else value
    return out


def natscli_document(data: Mapping[str, object]) -> dict[str, object]:
    """Every key natscli writes, in its order, then any extra keys kept as they were."""
    doc: dict[str, object] = {}
    for key in NATSCLI_KEYS:
        doc[key] = data.get(key, False if key == "tls_first" else "")
    for key, value in data.items():
        doc.setdefault(key, value)
    return doc


def write(name: str, data: Mapping[str, object], env: Mapping[str, str] | None = None) -> Path:
    """Write a context natscli can read: 0600 file in a 0700 folder, replaced atomically."""
    path = context_path(name, env)
    _private_dir(path.parent)
    text = json.dumps(natscli_document(data), indent=2) + "\n"
    _write_private(path, text)
    return path


def select(name: str | None, env: Mapping[str, str] | None = None) -> Path:
    """Write (or clear, with None) the selected context name in context.txt."""
    path = selection_file(env)
    _private_dir(path.parent)
    _write_private(path, name or "")
    return path


def remove(name: str, env: Mapping[str, str] | None = None) -> Path:
    path = context_path(name, env)
    try:
        path.unlink()
    except FileNotFoundError:
        raise NotFound(f"no context named {name!r} (looked for {path})") from None
    except OSError as exc:
        raise ContextFileError(f"cannot remove the context file {path}: {_reason(exc)}") from None
    return path


def _private_dir(folder: Path) -> None:
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder.chmod(0o700)
    except OSError as exc:
        raise ContextFileError(f"cannot create the folder {folder}: {_reason(exc)}") from None


def _write_private(path: Path, text: str) -> None:
    # Created 0600 from the start (no window where the secret is world-readable), then renamed over.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ContextFileError(f"cannot write {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return type(exc).__name__
