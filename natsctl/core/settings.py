"""Connection settings, resolved in one place: flags > environment > context > config > defaults.

Each source is turned into a plain ``dict`` of field name -> value (only the fields it sets) and the
layers are merged here; nothing else in natsctl reads ``os.environ`` for connection settings.

The context is the natscli context named by ``--context``, else ``NATS_CONTEXT``, else the one selected
in ``<config home>/nats/context.txt`` (:mod:`natsctl.core.contexts`). The natsctl config
(:mod:`natsctl.core.config`) sits under it, its ``contexts.<name>`` section over its top level.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import UsageError

DEFAULT_SERVER = "nats://127.0.0.1:4222"
DEFAULT_TIMEOUT = 5.0
DEFAULT_MONITOR_PORT = 8222

# Environment variable -> settings field. natscli's and the services' conventions.
ENVIRONMENT = {
    "NATS_URL": "servers",
    "NATS_USER": "user",
    "NATS_PASSWORD": "password",
    "NATS_TOKEN": "token",
    "NATS_CREDS": "creds",
    "NATS_NKEY": "nkey",
    "NATS_CA": "tls_ca",
    "NATS_CERT": "tls_cert",
    "NATS_KEY": "tls_key",
    "NATS_CLUSTER_ID": "cluster_id",
    "NATS_CLIENT_ID": "client_id",
    "NATS_MONITOR_URL": "monitor_urls",
    "NATS_CONTEXT": "context",
}

LIST_FIELDS = {"servers", "monitor_urls"}
# Fields naming files: "~" is expanded whatever layer set them (natscli does the same for contexts).
PATH_FIELDS = ("creds", "nkey", "tls_ca", "tls_cert", "tls_key", "monitor_ca")


@dataclass(slots=True)
class Settings:
    servers: list[str] = field(default_factory=lambda: [DEFAULT_SERVER])
    timeout: float = DEFAULT_TIMEOUT
    connection_name: str = "natsctl"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds: str | None = None
    nkey: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_first: bool = False
    tls_insecure: bool = False
    inbox_prefix: str | None = None
    js_domain: str | None = None
    js_api_prefix: str | None = None
    cluster_id: str | None = None  # set: the server is NATS Streaming
    client_id: str | None = None
    monitor_urls: list[str] = field(default_factory=list)  # empty: derived from the servers
    monitor_ca: str | None = None
    context: str | None = None
    description: str | None = None
    output: str | None = None  # default output format from the natsctl config (table, json, yaml)

    @property
    def backend_kind(self) -> str:
        return "stan" if self.cluster_id else "jetstream"

    def secrets(self) -> list[str]:
        """Every secret value these settings hold, so output can be checked or scrubbed for them."""
        found = [s for s in (self.password, self.token) if s]
        for url in [*self.servers, *self.monitor_urls]:
            parts = urlsplit(url)
            if parts.password:
                found.append(parts.password)
            elif parts.username and not parts.password:
                found.append(parts.username)  # nats://TOKEN@host carries a token
        return found

    def redacted_servers(self) -> str:
        return ",".join(redact_url(u) for u in self.servers)

    def derived_monitor_urls(self) -> list[str]:
        """``--monitor`` when given, otherwise http://<host of each server>:8222."""
        if self.monitor_urls:
            return list(self.monitor_urls)
        urls: list[str] = []
        for server in self.servers:
            host = urlsplit(normalize_server_url(server)).hostname or "127.0.0.1"
            if ":" in host:
                host = f"[{host}]"
            url = f"http://{host}:{DEFAULT_MONITOR_PORT}"
            if url not in urls:
                urls.append(url)
        return urls


SERVER_SCHEMES = ("nats", "tls", "ws", "wss")


def normalize_server_url(url: str) -> str:
    """Accept ``host``, ``host:port`` and full URLs, as natscli does; refuse what cannot be a server."""
    url = url.strip()
    if "://" not in url:
        url = "nats://" + url
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"invalid server URL {shown}: {exc}", hint="use nats://host:port") from None
    if parts.scheme == "http":
        url = _http_as_nats(url, shown)
        parts = urlsplit(url)
    if parts.scheme not in SERVER_SCHEMES:
        raise UsageError(f"invalid server URL {shown}: the scheme must be one of {', '.join(SERVER_SCHEMES)}")
    if not parts.hostname:
        raise UsageError(f"invalid server URL {shown}: no host", hint="use nats://host:port")
    if port is not None and port < 1:
        raise UsageError(f"invalid server URL {shown}: port {port} is outside 1-65535")
    return url


def _http_as_nats(url: str, shown: str) -> str:
    """``http://host:4222`` (the seed's ``NATS_URL``) is a plain NATS connection, as the Go and Node clients take it."""
    from . import debug

    debug.log(f"server URL {shown}: http:// taken as a plain NATS connection (nats://), as the Go and Node clients do")
    return "nats://" + url.split("://", 1)[1]


def redact_url(url: str) -> str:
    """The URL with any password or token replaced by ``***``: safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid url>"
    if not (parts.username or parts.password):
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = host + (f":{port}" if port else "")
    # A bare user part in a NATS URL is a token (nats://TOKEN@host): hide it too.
    netloc = f"{parts.username}:***@{netloc}" if parts.password is not None else f"***@{netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def split_list(value: str | list[str]) -> list[str]:
    """``"a, b"`` or ``["a", "b,c"]`` -> the non-blank items, stripped."""
    items = value if isinstance(value, list) else [value]
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


# The flag that sets each list field, to name in errors.
LIST_FLAGS = {"servers": "--server", "monitor_urls": "--monitor"}


def names_nothing(name: str, key: str, value: object) -> UsageError:
    """A list setting that was given but holds only blanks and commas (a typo, or an unset variable)."""
    example = "http://host:8222" if key == "monitor_urls" else "nats://host:4222"
    what = "monitoring URL" if key == "monitor_urls" else "server"
    if name.startswith("-"):
        return UsageError(f"{name} {value!r} names no {what}", hint=f"give a URL such as {example}")
    return UsageError(
        f"{name} is {value!r}, which names no {what}", hint=f"set it to a URL such as {example}, or unset it"
    )


def from_environment(env: Mapping[str, str]) -> dict[str, object]:
    """Variables that are set and not empty (an empty one is unset, as natscli treats NATS_URL)."""
    layer: dict[str, object] = {}
    for name, key in ENVIRONMENT.items():
        value = env.get(name)
        if not value:
            continue
        if key in LIST_FIELDS:
            urls = split_list(value)
            if not urls:
                raise names_nothing(name, key, value)
            layer[key] = urls
        else:
            layer[key] = value
    return layer


def check_flags(flags: Mapping[str, object]) -> None:
    """A list flag given with nothing in it (``--server ""``, ``-s ,``) is a mistake, not the default."""
    for key, flag in LIST_FLAGS.items():
        value = flags.get(key)
        if value is not None and not split_list(value):  # type: ignore[arg-type]
            raise names_nothing(flag, key, value)


def merge(*layers: Mapping[str, object]) -> Settings:
    """Build Settings from layers, the first that sets a field wins. ``None`` means "not set"."""
    settings = Settings()
    known = {f.name for f in fields(Settings)}
    for layer in reversed(layers):
        for key, value in layer.items():
            if value is None or key not in known:
                continue
            if key in LIST_FIELDS:
                value = split_list(value)  # type: ignore[arg-type]
                if not value:
                    continue
            setattr(settings, key, value)
    settings.servers = [normalize_server_url(u) for u in settings.servers]
    return settings


@dataclass(slots=True)
class Resolution:
    """Resolved settings plus where they came from (for warnings and ``natsctl config show``)."""

    settings: Settings
    layers: list[tuple[str, dict[str, object]]]  # (source name, fields it sets), highest first
    context_path: Path | None = None
    config_path: Path | None = None

    def source_of(self, name: str) -> str:
        for source, layer in self.layers:
            if layer.get(name) not in (None, [], ""):
                return source
        return "default"


def selected_context(flags: Mapping[str, object], env: Mapping[str, str]) -> str | None:
    from natsctl.core import contexts

    name = flags.get("context") or env.get("NATS_CONTEXT")
    return str(name) if name else contexts.selected(env)


def resolve_full(flags: Mapping[str, object], env: Mapping[str, str] | None = None) -> Resolution:
    """Every layer, highest first: flags, environment, context, config per context, config."""
    from natsctl.core import config, contexts

    env = os.environ if env is None else env
    check_flags(flags)
    name = selected_context(flags, env)
    context_layer: dict[str, object] = {}
    context_file = None
    if name:
        context_file = contexts.context_path(name, env)
        context_layer = contexts.to_layer(contexts.read(name, env))
        context_layer["context"] = name
    document = config.load(env)
    layers = [
        ("flag", dict(flags)),
        ("env", from_environment(env)),
        (f"context {name}", context_layer),
        (f"config contexts.{name}", config.context_overrides(document, name)),
        ("config", config.to_layer(document)),
    ]
    settings = merge(*(layer for _, layer in layers))
    finish(settings)
    config_file = config.path(env)
    return Resolution(settings, layers, context_file, config_file if config_file.exists() else None)


def finish(settings: Settings) -> None:
    for name in PATH_FIELDS:
        value = getattr(settings, name)
        if value:
            setattr(settings, name, os.path.expanduser(value))
    if settings.monitor_ca is None:
        # An https monitoring port is usually signed by the same CA as the client port.
        settings.monitor_ca = settings.tls_ca


def resolve(flags: Mapping[str, object], env: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags over the environment over the context over the natsctl config."""
    return resolve_full(flags, env).settings
