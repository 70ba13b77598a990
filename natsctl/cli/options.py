"""Options shared by many commands, declared once.

``@connection_options`` adds the connection flags to a command's signature (so Typer shows them in the
command's own help, after the command name, as natscli users type them) and hands the command one
``Settings`` object resolved by :func:`natsctl.cli.settings.load_settings` instead of a dozen keyword
arguments.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Annotated, Any

import typer

CONNECTION = "Connection"

# name -> (annotation, default). The names are the Settings fields the flags set.
_CONNECTION_PARAMS: dict[str, tuple[Any, Any]] = {
    "servers": (
        Annotated[
            str | None,
            typer.Option(
                "--server",
                "-s",
                metavar="URL", help="NATS server URL(s), comma-separated [env NATS_URL; default nats://127.0.0.1:4222]",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "timeout": (
        Annotated[
            float | None,
            typer.Option(
                "--timeout",
                metavar="SECONDS", help="Seconds to wait for the server (connect, requests) [default 5]",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "context": (
        Annotated[
            str | None,
            typer.Option("--context", metavar="NAME", help="natscli context to use [env NATS_CONTEXT]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "user": (
        Annotated[str | None, typer.Option("--user", metavar="USER", help="User name [env NATS_USER]", rich_help_panel=CONNECTION)],
        None,
    ),
    "password": (
        Annotated[
            str | None,
            typer.Option("--password", metavar="PASSWORD", help="Password [env NATS_PASSWORD]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "token": (
        Annotated[str | None, typer.Option("--token", metavar="TOKEN", help="Token [env NATS_TOKEN]", rich_help_panel=CONNECTION)],
        None,
    ),
    "creds": (
        Annotated[
            str | None,
            typer.Option("--creds", metavar="FILE", help="Credentials file (JWT + seed) [env NATS_CREDS]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "nkey": (
        Annotated[
            str | None,
            typer.Option("--nkey", metavar="FILE", help="NKey seed file [env NATS_NKEY]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "tls_ca": (
        Annotated[
            str | None,
            typer.Option("--tlsca", metavar="FILE", help="CA certificate file [env NATS_CA]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "tls_cert": (
        Annotated[
            str | None,
            typer.Option("--tlscert", metavar="FILE", help="Client certificate file [env NATS_CERT]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "tls_key": (
        Annotated[
            str | None,
            typer.Option("--tlskey", metavar="FILE", help="Client private key file [env NATS_KEY]", rich_help_panel=CONNECTION),
        ],
        None,
    ),
    "tls_first": (
        Annotated[
            bool | None,
            typer.Option(
                "--tlsfirst/--no-tlsfirst",
                help="TLS handshake before the NATS protocol",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "tls_insecure": (
        Annotated[
            bool | None,
            typer.Option(
                "--tls-insecure",
                help="Do not verify the server's certificate (a warning says so)",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "cluster_id": (
        Annotated[
            str | None,
            typer.Option(
                "--cluster-id",
                metavar="ID", help="NATS Streaming cluster id: talk to a legacy NATS Streaming server [env NATS_CLUSTER_ID]",
                rich_help_panel=CONNECTION,
            ),
        ],
        None,
    ),
    "client_id": (
        Annotated[
            str | None,
            typer.Option(
                "--client-id",
                metavar="ID", help="NATS Streaming client id (resuming a durable needs the same one) [env NATS_CLIENT_ID]",
                rich_help_panel=CONNECTION,
            ),
        ],
        None,
    ),
}

MONITOR_PARAMS: dict[str, tuple[Any, Any]] = {
    "monitor_urls": (
        Annotated[
            str | None,
            typer.Option(
                "--monitor",
                "-m",
                metavar="URL", help="Monitoring URL(s), comma-separated [env NATS_MONITOR_URL; default http://<server host>:8222]",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "monitor_ca": (
        Annotated[
            str | None,
            typer.Option("--monitor-ca", metavar="FILE", help="CA certificate for an https monitoring port", rich_help_panel=CONNECTION),
        ],
        None,
    ),
}


def _with_params(
    params: dict[str, tuple[Any, Any]], keyword: str, build: Callable[[dict[str, Any]], Any]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add ``params`` to the wrapped command's signature; pass ``build(their values)`` as ``keyword``."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command)
        own = [p for name, p in signature.parameters.items() if name != keyword]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
            for name, (annotation, default) in params.items()
        ]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name, None) for name in params}
            kwargs[keyword] = build(values)
            return command(*args, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _load_settings(flags: dict[str, Any]) -> Any:
    from natsctl.cli.settings import load_settings

    return load_settings(flags)


connection_options = _with_params(_CONNECTION_PARAMS, "settings", _load_settings)
monitor_options = _with_params({**_CONNECTION_PARAMS, **MONITOR_PARAMS}, "settings", _load_settings)

CREATION = "Channel creation (JetStream, when natsctl creates the stream)"

_STREAM_PARAMS: dict[str, tuple[Any, Any]] = {
    "replicas": (
        Annotated[int | None, typer.Option("--replicas", metavar="N", min=1, max=5, help="Stream replicas [default 1]", rich_help_panel=CREATION)],
        None,
    ),
    "storage": (
        Annotated[str | None, typer.Option("--storage", metavar="file|memory", help="file or memory [default file]", rich_help_panel=CREATION)],
        None,
    ),
    "max_age": (
        Annotated[str | None, typer.Option("--max-age", metavar="DURATION", help="Drop messages older than this (e.g. 24h)", rich_help_panel=CREATION)],
        None,
    ),
    "max_msgs": (
        Annotated[int | None, typer.Option("--max-msgs", metavar="N", min=1, help="Keep at most this many messages", rich_help_panel=CREATION)],
        None,
    ),
    "max_bytes": (
        Annotated[int | None, typer.Option("--max-bytes", metavar="BYTES", min=1, help="Keep at most this many bytes", rich_help_panel=CREATION)],
        None,
    ),
    "discard": (
        Annotated[str | None, typer.Option("--discard", metavar="old|new", help="At a limit: drop old messages, or refuse new ones (old|new)", rich_help_panel=CREATION)],
        None,
    ),
    "dupe_window": (
        Annotated[str | None, typer.Option("--dupe-window", metavar="DURATION", help="De-duplication window for message ids (e.g. 2m)", rich_help_panel=CREATION)],
        None,
    ),
}


def _build_stream_options(values: dict[str, Any]) -> Any:
    from natsctl.core.errors import UsageError
    from natsctl.core.model import StreamOptions
    from natsctl.core.timeparse import parse_duration

    storage = values["storage"] or "file"
    if storage not in ("file", "memory"):
        raise UsageError(f"--storage must be file or memory, not {storage!r}")
    discard = values["discard"] or "old"
    if discard not in ("old", "new"):
        raise UsageError(f"--discard must be old or new, not {discard!r}")
    return StreamOptions(
        replicas=values["replicas"] or 1,
        storage=storage,
        max_age=parse_duration(values["max_age"], what="--max-age") if values["max_age"] else None,
        max_msgs=values["max_msgs"],
        max_bytes=values["max_bytes"],
        discard=discard,
        duplicate_window=parse_duration(values["dupe_window"], what="--dupe-window") if values["dupe_window"] else None,
    )


stream_options = _with_params(_STREAM_PARAMS, "stream_options", _build_stream_options)


def require_jetstream_for(backend: Any, stream_options: Any, create: bool) -> None:
    """Channel-creation flags mean something on JetStream only: say so instead of ignoring them."""
    from natsctl.core.errors import Unsupported
    from natsctl.core.model import StreamOptions

    if backend.kind == "jetstream":
        return
    if stream_options != StreamOptions():
        raise Unsupported(
            "--replicas, --storage, --max-age, --max-msgs, --max-bytes, --discard and --dupe-window shape "
            "JetStream streams only; NATS Streaming channel limits are set on its server"
        )
    if not create:
        raise Unsupported("--no-create exists on JetStream only: NATS Streaming creates a channel on first use")
