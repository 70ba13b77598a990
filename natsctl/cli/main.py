"""The natsctl command: one Typer app, one module per command group.

Command modules import their heavy dependencies (nats, rich, httpx) inside the command functions so that
``--version``, ``--help`` and completion stay fast. Every module registers its commands on one Typer app
(``build_app``), but natsctl runs a lazy root group (``build_command``, natsctl/cli/lazy.py) that turns
only the invoked command into a click object and converts its values without pydantic.
"""

from __future__ import annotations

import os
import sys

import typer
import typer.main
from typer.core import TyperGroup

from natsctl import __version__

HELP = """The command line for a NATS event bus: publish events to channels, subscribe to them (live, durable,
in queue groups, replaying from any point, with manual acks) and inspect the bus through the
server's monitoring port. Works on NATS JetStream and on the legacy NATS Streaming server."""

# Command-group modules, each with a ``register(app)``.
COMMAND_MODULES: tuple[str, ...] = (
    "natsctl.cli.pub",
    "natsctl.cli.sub",
    "natsctl.cli.monitor",
    "natsctl.cli.channel",
    "natsctl.cli.durable",
    "natsctl.cli.demo",
    "natsctl.cli.context",
    "natsctl.cli.verify",
    "natsctl.cli.deadletter",
    "natsctl.cli.cluster",
    "natsctl.cli.completion",
    "natsctl.cli.catalog",
    "natsctl.cli.audit",
    "natsctl.cli.migrate",
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"natsctl {__version__}\n")
        raise typer.Exit()


def _debug(value: bool) -> None:
    if value:
        os.environ["NATSCTL_DEBUG"] = "1"  # read by natsctl.core.debug in every layer


def _new_app(cls: type | None = None) -> typer.Typer:
    app = typer.Typer(
        name="natsctl",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,  # static scripts: `natsctl completion SHELL`
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
        cls=cls,
    )

    from natsctl.cli.globalflags import global_options

    @app.callback()
    @global_options
    def root(
        version: bool = typer.Option(
            False, "--version", "-V", help="Show the version and exit.", callback=_version, is_eager=True
        ),
        debug: bool = typer.Option(
            False,
            "--debug",
            help="Log connection steps on stderr (secrets masked); tracebacks for unexpected errors.",
            callback=_debug,
            is_eager=True,
        ),
        **global_flags: object,
    ) -> None:
        """natsctl"""

    return app


def build_app() -> typer.Typer:
    """The whole app, every command registered (what tools walking the command tree use)."""
    import importlib

    app = _new_app()
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def build_command() -> TyperGroup:
    """The root click group natsctl runs: lazy (natsctl/cli/lazy.py), it builds only the command that is
    invoked. When the installed Typer lacks what lazy.py relies on, or building the lazy group fails,
    the whole app is built instead: a slower start, never a broken CLI."""
    try:
        from natsctl.cli import lazy

        if lazy.usable():
            group = typer.main.get_command(_new_app(cls=lazy.LazyGroup))
            if isinstance(group, lazy.LazyGroup):
                group.load_from(_new_app(), COMMAND_MODULES)
                return group
    except Exception:  # noqa: BLE001 - Typer's internals moved: the plain build below still works
        pass
    whole = typer.main.get_command(build_app())
    assert isinstance(whole, TyperGroup)
    return whole


def main(argv: list[str] | None = None) -> None:
    try:
        result = build_command().main(args=argv, prog_name="natsctl", standalone_mode=False)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the boundary turns anything into a line and a status
        from natsctl.cli.boundary import exit_status

        raise SystemExit(exit_status(exc)) from None
    raise SystemExit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
