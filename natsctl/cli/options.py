"""Options shared by many commands, declared once.

``@connection_options`` adds the connection flags to a command's signature (so Typer shows them in the
command's own help, after the command name, as natscli users type them) and hands the command one
``Settings`` object resolved by :func:`natsctl.cli.settings.load_settings` instead of a dozen keyword
arguments. The connection flags are declared once (``CONNECTION_FLAGS``): the same declarations give
the commands' options and the values ``natsctl context add`` writes to a context file
(``@context_options``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from natsctl.core.backend import Backend
    from natsctl.core.model import StreamOptions
    from natsctl.core.settings import Settings

CONNECTION = "Connection"

# A parameter added to a command's signature: (annotation, default).
Param = tuple[object, object]
Command = Callable[..., object]


@dataclass(frozen=True)
class Flag:
    """A connection flag, declared once: the commands' connection options and `context add` both use it."""

    field: str  # the Settings field it sets (and the keyword the command gets)
    names: tuple[str, ...]
    help: str
    metavar: str | None = None
    env: str | None = None  # the variable that sets it too (said in the commands' help)
    default: str | None = None  # the default, said in the commands' help
    secret: bool = False  # `context add` says where it is kept
    kind: type = str  # str, float or bool (a flag without a value)
    negatable: bool = False  # a bool the commands can also turn off (--no-...), over a context that sets it

    def option(self) -> Param:
        """As a command's connection option: unset (None) unless given, help naming env and default."""
        notes = "; ".join(n for n in (self.env and f"env {self.env}", self.default and f"default {self.default}") if n)
        names = (f"{self.names[0]}/--no-{self.names[0][2:]}", *self.names[1:]) if self.negatable else self.names
        option = typer.Option(
            *names,
            metavar=self.metavar,
            help=f"{self.help} [{notes}]" if notes else self.help,
            rich_help_panel=CONNECTION,
            show_default=False,
        )
        return Annotated[self.kind | None, option], None

    def stored(self) -> Param:
        """As a value `context add` writes to a context file: a bool is a plain flag, false unless given."""
        text = f"{self.help} (stored in the 0600 context file)" if self.secret else self.help
        if self.kind is bool:
            return Annotated[bool, typer.Option(*self.names, help=text)], False
        return Annotated[self.kind | None, typer.Option(*self.names, metavar=self.metavar, help=text)], None


CONNECTION_FLAGS: dict[str, Flag] = {
    flag.field: flag
    for flag in (
        Flag(
            "servers",
            ("--server", "-s"),
            "NATS server URL(s), comma-separated",
            "URL",
            env="NATS_URL",
            default="nats://127.0.0.1:4222",
        ),
        Flag(
            "timeout",
            ("--timeout",),
            "Seconds to wait for the server (connect, requests)",
            "SECONDS",
            default="5",
            kind=float,
        ),
        Flag("context", ("--context",), "natscli context to use", "NAME", env="NATS_CONTEXT"),
        Flag("user", ("--user",), "User name", "USER", env="NATS_USER"),
        Flag("password", ("--password",), "Password", "PASSWORD", env="NATS_PASSWORD", secret=True),
        Flag("token", ("--token",), "Token", "TOKEN", env="NATS_TOKEN", secret=True),
        Flag("creds", ("--creds",), "Credentials file (JWT + seed)", "FILE", env="NATS_CREDS"),
        Flag("nkey", ("--nkey",), "NKey seed file", "FILE", env="NATS_NKEY"),
        Flag("tls_ca", ("--tlsca",), "CA certificate file", "FILE", env="NATS_CA"),
        Flag("tls_cert", ("--tlscert",), "Client certificate file", "FILE", env="NATS_CERT"),
        Flag("tls_key", ("--tlskey",), "Client private key file", "FILE", env="NATS_KEY"),
        Flag("tls_first", ("--tlsfirst",), "TLS handshake before the NATS protocol", kind=bool, negatable=True),
        Flag(
            "tls_insecure", ("--tls-insecure",), "Do not verify the server's certificate (a warning says so)", kind=bool
        ),
        Flag(
            "cluster_id",
            ("--cluster-id",),
            "NATS Streaming cluster id: talk to a legacy NATS Streaming server",
            "ID",
            env="NATS_CLUSTER_ID",
        ),
        Flag(
            "client_id",
            ("--client-id",),
            "NATS Streaming client id (resuming a durable needs the same one)",
            "ID",
            env="NATS_CLIENT_ID",
        ),
    )
}

# What `context add` writes, in the order its help lists them.
CONTEXT_FIELDS = ("servers", "user", "password", "token", "creds", "nkey", "tls_cert", "tls_key", "tls_ca", "tls_first")

_CONNECTION_PARAMS: dict[str, Param] = {name: flag.option() for name, flag in CONNECTION_FLAGS.items()}

MONITOR_PARAMS: dict[str, Param] = {
    "monitor_urls": (
        Annotated[
            str | None,
            typer.Option(
                "--monitor",
                "-m",
                metavar="URL",
                help="Monitoring URL(s), comma-separated [env NATS_MONITOR_URL; default http://<server host>:8222]",
                rich_help_panel=CONNECTION,
                show_default=False,
            ),
        ],
        None,
    ),
    "monitor_ca": (
        Annotated[
            str | None,
            typer.Option(
                "--monitor-ca",
                metavar="FILE",
                help="CA certificate for an https monitoring port",
                rich_help_panel=CONNECTION,
            ),
        ],
        None,
    ),
}


def _with_params(
    params: dict[str, Param], keyword: str, build: Callable[[dict[str, Any]], object], after: str | None = None
) -> Callable[[Command], Command]:
    """Add ``params`` to the wrapped command's signature (at its end, or right after parameter
    ``after``); pass ``build(their values)`` as ``keyword``."""

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command)
        own = [p for name, p in signature.parameters.items() if name != keyword]
        added = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
            for name, (annotation, default) in params.items()
        ]
        at = [p.name for p in own].index(after) + 1 if after else len(own)
        listed = [*own[:at], *added, *own[at:]]
        # Typer passes every value by keyword: whatever follows a keyword-only parameter becomes one too.
        first = next(i for i, p in enumerate(listed) if p.kind is inspect.Parameter.KEYWORD_ONLY)
        listed[first:] = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in listed[first:]]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> object:
            values = {name: kwargs.pop(name, None) for name in params}
            kwargs[keyword] = build(values)
            return command(*args, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=listed)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _load_settings(flags: dict[str, Any]) -> Settings:
    from natsctl.cli.globalflags import with_global
    from natsctl.cli.settings import load_settings

    return load_settings(with_global(flags))  # flags before the command count too; after wins


def _stored_flags(values: dict[str, Any]) -> dict[str, Any]:
    from natsctl.cli.globalflags import with_global

    return with_global(values, unset=(None, False))  # `context add` stores flags given before the command too


connection_options = _with_params(_CONNECTION_PARAMS, "settings", _load_settings)
monitor_options = _with_params({**_CONNECTION_PARAMS, **MONITOR_PARAMS}, "settings", _load_settings)
# `context add`: the connection flags a context file holds, right after NAME; the command gets their
# values (Settings field -> value) as ``connection``.
context_options = _with_params(
    {name: CONNECTION_FLAGS[name].stored() for name in CONTEXT_FIELDS}, "connection", _stored_flags, after="name"
)

CREATION = "Channel creation (JetStream, when natsctl creates the stream)"

_STREAM_PARAMS: dict[str, Param] = {
    "replicas": (
        Annotated[
            int | None,
            typer.Option(
                "--replicas", metavar="N", min=1, max=5, help="Stream replicas [default 1]", rich_help_panel=CREATION
            ),
        ],
        None,
    ),
    "storage": (
        Annotated[
            str | None,
            typer.Option(
                "--storage", metavar="file|memory", help="file or memory [default file]", rich_help_panel=CREATION
            ),
        ],
        None,
    ),
    "max_age": (
        Annotated[
            str | None,
            typer.Option(
                "--max-age",
                metavar="DURATION",
                help="Drop messages older than this (e.g. 24h)",
                rich_help_panel=CREATION,
            ),
        ],
        None,
    ),
    "max_msgs": (
        Annotated[
            int | None,
            typer.Option(
                "--max-msgs", metavar="N", min=1, help="Keep at most this many messages", rich_help_panel=CREATION
            ),
        ],
        None,
    ),
    "max_bytes": (
        Annotated[
            int | None,
            typer.Option(
                "--max-bytes", metavar="BYTES", min=1, help="Keep at most this many bytes", rich_help_panel=CREATION
            ),
        ],
        None,
    ),
    "discard": (
        Annotated[
            str | None,
            typer.Option(
                "--discard",
                metavar="old|new",
                help="At a limit: drop old messages, or refuse new ones (old|new)",
                rich_help_panel=CREATION,
            ),
        ],
        None,
    ),
    "dupe_window": (
        Annotated[
            str | None,
            typer.Option(
                "--dupe-window",
                metavar="DURATION",
                help="De-duplication window for message ids (e.g. 2m)",
                rich_help_panel=CREATION,
            ),
        ],
        None,
    ),
}


def _build_stream_options(values: dict[str, Any]) -> StreamOptions:
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


def require_jetstream_for(backend: Backend, stream_options: StreamOptions, create: bool) -> None:
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
