"""natsctl's own YAML config: what natscli contexts have no place for.

Path: ``$NATSCTL_CONFIG``, else ``<XDG config home>/natsctl/config.yaml``. Example::

    monitor: https://nats.internal:8222      # monitoring URL(s), a string or a list
    monitor_ca: /etc/ssl/nats-ca.pem
    cluster_id: ticketing                    # set: the server is NATS Streaming
    client_id: alice-laptop
    output: json                             # default output format of commands that have -o
    catalog: natsctl-catalog.yaml            # the event catalog (relative to this file)
    contexts:                                # per natscli context, over the keys above
      staging:
        monitor: http://127.0.0.1:18222
        cluster_id: staging-cluster

Connection keys (server, timeout, user, password, token, creds, nkey, tlsca, tlscert, tlskey, tlsfirst,
inbox_prefix, js_domain, js_api_prefix) are accepted too, under a context's flags, env and context file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from natsctl.core.contexts import config_home
from natsctl.core.errors import UsageError
from natsctl.core.files import DocumentKind, kind_of, load_document, parse_document
from natsctl.core.settings import LIST_FIELDS, split_list
from natsctl.core.timeparse import check_timeout

# config key -> Settings field; the field names themselves are accepted as well.
KEYS = {
    "server": "servers",
    "servers": "servers",
    "timeout": "timeout",
    "user": "user",
    "password": "password",
    "token": "token",
    "creds": "creds",
    "nkey": "nkey",
    "tlsca": "tls_ca",
    "tlscert": "tls_cert",
    "tlskey": "tls_key",
    "tlsfirst": "tls_first",
    "tls_ca": "tls_ca",
    "tls_cert": "tls_cert",
    "tls_key": "tls_key",
    "tls_first": "tls_first",
    "inbox_prefix": "inbox_prefix",
    "js_domain": "js_domain",
    "js_api_prefix": "js_api_prefix",
    "monitor": "monitor_urls",
    "monitor_url": "monitor_urls",
    "monitor_urls": "monitor_urls",
    "monitor_ca": "monitor_ca",
    "cluster_id": "cluster_id",
    "client_id": "client_id",
    "output": "output",
    "connection_name": "connection_name",
    "catalog": "catalog",  # the event catalog (natsctl.contracts.catalog), not a connection setting
}

SECRET_KEYS = ("password", "token")
OUTPUT_FORMATS = ("table", "json", "yaml")

_TYPES: dict[str, tuple[type, ...]] = {
    "timeout": (int, float),
    "tls_first": (bool,),
    "servers": (str, list),
    "monitor_urls": (str, list),
}


class ConfigFileError(UsageError):
    """natsctl's config file cannot be read or is not what natsctl expects (the message names the file)."""


def path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    explicit = env.get("NATSCTL_CONFIG")
    if explicit:
        return Path(explicit)
    return config_home(env) / "natsctl" / "config.yaml"


def load(env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The parsed config document (``{}`` when there is no file)."""
    document = load_document(path(env), CONFIG_FILE)
    return {} if document is None else document


def parse(raw: bytes, where: Path) -> dict[str, object]:
    return parse_document(raw, where, CONFIG_FILE)


def validate(data: Mapping[str, object], where: Path) -> None:
    for key, value in data.items():
        if key == "contexts":
            _validate_contexts(value, where)
        else:
            _validate_key(str(key), value, where, "")


def _validate_contexts(value: object, where: Path) -> None:
    if not isinstance(value, dict):
        raise ConfigFileError(f"the config file {where}: 'contexts' must map context names to settings")
    for name, overrides in value.items():
        if not isinstance(overrides, dict):
            raise ConfigFileError(f"the config file {where}: 'contexts.{name}' must be a mapping")
        for key, item in overrides.items():
            _validate_key(str(key), item, where, f"contexts.{name}.")


def _validate_key(key: str, value: object, where: Path, prefix: str) -> None:
    if key not in KEYS:
        known = ", ".join(sorted({*KEYS, "contexts"}))
        raise ConfigFileError(f"the config file {where} has an unknown key '{prefix}{key}' (known: {known})")
    field_name = KEYS[key]
    expected = _TYPES.get(field_name, (str,))
    if value is not None and (not isinstance(value, expected) or (bool in expected) != isinstance(value, bool)):
        raise ConfigFileError(
            f"the config file {where}: '{prefix}{key}' must be {_kinds(expected)}, not {kind_of(value, 'YAML')}"
        )
    if value is None:
        return
    if field_name in LIST_FIELDS:
        _validate_urls(key, value, where, prefix)
    if field_name == "timeout":
        try:
            check_timeout(value, what=f"the config file {where}: '{prefix}{key}'")  # type: ignore[arg-type]
        except UsageError as exc:
            raise ConfigFileError(exc.message) from None
    if field_name == "output" and value not in (None, *OUTPUT_FORMATS):
        raise ConfigFileError(f"the config file {where}: '{prefix}output' must be one of {', '.join(OUTPUT_FORMATS)}")


def _validate_urls(key: str, value: object, where: Path, prefix: str) -> None:
    """A string or a list of strings naming at least one URL ("" alone means "not set")."""
    if isinstance(value, list):
        wrong = next((item for item in value if not isinstance(item, str)), None)
        if wrong is not None:
            raise ConfigFileError(
                f"the config file {where}: '{prefix}{key}' must list URLs as strings, not {kind_of(wrong, 'YAML')}"
            )
    elif value == "":
        return
    if not split_list(value):  # type: ignore[arg-type]
        example = "http://host:8222" if KEYS[key] == "monitor_urls" else "nats://host:4222"
        raise ConfigFileError(
            f"the config file {where}: '{prefix}{key}' names no URL",
            hint=f"give one such as {example}, or remove the key",
        )


def _kinds(expected: tuple[type, ...]) -> str:
    names = {str: "a string", int: "a number", float: "a number", bool: "true or false", list: "a list of strings"}
    return " or ".join(dict.fromkeys(names[t] for t in expected))


CONFIG_FILE = DocumentKind(
    what="the config file",
    syntax="YAML",
    too_deep="natsctl's config",
    too_deep_hint="it maps keys (server, timeout, monitor, cluster_id...) to plain values, and 'contexts' to such mappings",
    not_a_mapping="must hold a mapping of keys to values",
    error=ConfigFileError,
    check=validate,
)


def to_layer(section: Mapping[str, object]) -> dict[str, object]:
    """Settings fields from the top level of the config, or from one ``contexts.<name>`` section."""
    return {KEYS[k]: v for k, v in section.items() if k in KEYS and v is not None}


def context_overrides(data: Mapping[str, object], name: str | None) -> dict[str, object]:
    if not name:
        return {}
    contexts = data.get("contexts") or {}
    section = contexts.get(name) if isinstance(contexts, dict) else None
    return to_layer(section) if isinstance(section, dict) else {}
