"""Start-up mechanics: build only the command that runs, and convert its values without pydantic.

Typer turns every registered command into a click object before it parses anything (~40 ms for all of
natsctl's), and Typer 0.29 converts every non-flag value through a pydantic ``TypeAdapter`` (importing
pydantic costs ~60 ms, each adapter more). So the root group here imports the command modules only
when a command is looked up (``--version`` imports none, ``pub`` only the first), and builds a
command's click object only when that command is invoked; listing commands (``--help``) uses a
parameterless summary. natsctl's values are plain str, int, float,
bool and lists of str, which are converted here with the same messages; anything else (a choice, a
path, a parser, ...) still goes through Typer's own conversion.

Only public names of Typer are used: ``Typer(cls=...)``, ``typer.main.get_command``, the ``typer.core``
classes, ``typer.models`` infos and the parameters' ``get_runtime_param`` / ``type_descriptor``.
:func:`usable` checks them before the lazy group is made (by name, and on a throwaway command built
the way natsctl's are); when a Typer release moved any of them, ``natsctl.cli.main.build_command``
builds the whole app the plain way instead: a slower start, never a broken CLI.
tests/test_startup.py checks that pydantic, rich, nats and httpx stay out of a command's start-up.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, Any, get_args

import typer
import typer.main
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption
from typer.models import CommandInfo, TyperInfo

Entry = CommandInfo | TyperInfo


class LazyGroup(TyperGroup):
    """The root group: command modules are imported, and their commands built, on first use."""

    listing = False  # while True, get_command returns summaries (name and help, no parameters)
    source: typer.Typer | None = None  # the app the command modules register on (see load_from)
    pending: list[str] = []  # noqa: RUF012 - replaced per instance by load_from, never mutated here
    known: dict[str, Entry] = {}  # noqa: RUF012

    def load_from(self, app: typer.Typer, modules: Sequence[str]) -> None:
        """Register ``modules`` (each with ``register(app)``) on ``app``, in order, only as far as needed."""
        self.source = app
        self.pending = list(modules)
        self.known: dict[str, Entry] = {}

    def entries(self, wanted: str | None = None) -> dict[str, Entry]:
        """The registered commands; with ``wanted``, modules are imported only until it is found."""
        assert self.source is not None, "load_from first"
        while self.pending and (wanted is None or wanted not in self.known):
            importlib.import_module(self.pending.pop(0)).register(self.source)
            self.known = _registered(self.source)
        return self.known

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.commands, *(name for name in self.entries() if name not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is not None:
            return command
        entry = self.entries(cmd_name).get(cmd_name)
        if entry is None:
            return None
        if self.listing:
            return summary(cmd_name, entry)
        command = self.commands[cmd_name] = build(cmd_name, entry, self.source)
        return command

    @contextmanager
    def summaries(self) -> Iterator[None]:
        self.listing = True
        try:
            yield
        finally:
            self.listing = False

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with self.summaries():
            super().format_commands(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        with self.summaries():
            return super().shell_complete(ctx, incomplete)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        # Typer suggests close names from the commands already built; here none are built yet.
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in self.entries(name) and not ctx.resilient_parsing:
            matches = difflib.get_close_matches(name, list(self.entries()))
            hint = f" Did you mean {', '.join(repr(m) for m in matches)}?" if matches else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)


def _registered(app: typer.Typer) -> dict[str, Entry]:
    found: dict[str, Entry] = {}
    for info in app.registered_commands:
        if info.name:
            found[info.name] = info
        elif info.callback is not None:
            found[typer.main.get_command_name(info.callback.__name__)] = info
    for group in app.registered_groups:
        found[_group_name(group)] = group
    return found


def _group_name(info: TyperInfo) -> str:
    for name in (info.name, info.typer_instance.info.name if info.typer_instance else None):
        if isinstance(name, str):
            return name
    raise RuntimeError("a command group added to natsctl needs a name")


def summary(name: str, entry: Entry) -> TyperCommand:
    """A command with the entry's name and help only: enough to list it."""
    if isinstance(entry, TyperInfo):
        resolved = typer.main.solve_typer_info_defaults(entry)
        text, short, hidden = resolved.help, None, resolved.hidden
    else:
        text, short, hidden = entry.help or inspect.getdoc(entry.callback) or "", entry.short_help, entry.hidden
    return TyperCommand(name, help=text, short_help=short, hidden=bool(hidden))


def build(name: str, entry: Entry, source: typer.Typer | None) -> Any:
    """The click object of one entry, built by Typer exactly as it would be inside the whole app."""
    holder = typer.Typer(
        add_completion=False,
        rich_markup_mode=source.rich_markup_mode if source else None,
        pretty_exceptions_enable=False,
    )
    holder.callback()(_holder)  # a group, so the entry keeps its own name and settings
    if isinstance(entry, TyperInfo):
        holder.registered_groups.append(entry)
    else:
        holder.registered_commands.append(entry)
    group = typer.main.get_command(holder)
    assert isinstance(group, TyperGroup)
    command = group.commands[name]
    plain_values(command)
    return command


def _holder() -> None:
    """natsctl"""


# -- is this Typer the one lazy.py was written for? -------------------------------------------------

# Names used above and below, besides the ``typer.core`` / ``typer.models`` classes imported by name.
_RELIED_ON: tuple[tuple[object, tuple[str, ...]], ...] = (
    (typer.main, ("get_command", "get_command_name", "solve_typer_info_defaults")),
    (TyperOption, ("get_runtime_param",)),
    (TyperArgument, ("get_runtime_param",)),
    (
        TyperGroup,
        ("get_params", "list_commands", "get_command", "format_commands", "shell_complete", "resolve_command"),
    ),
    (TyperCommand, ("get_params",)),
)


def usable() -> bool:
    """Whether the installed Typer still has what this module relies on.

    The names are looked up, then a throwaway app (a command with a ranged int option and a str
    argument, and a named group) goes through ``summary`` and ``build`` as natsctl's commands do, and
    its values must get plain converters that convert. Anything missing or raising means no.
    """
    try:
        if not all(hasattr(owner, name) for owner, names in _RELIED_ON for name in names):
            return False
        return _trial()
    except Exception:  # noqa: BLE001 - whatever moved, the answer is "build the plain way"
        return False


def _trial() -> bool:
    app = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
    app.command("probe", help="probe")(_probe)
    app.add_typer(typer.Typer(name="group", help="group"), name="group")
    entries = _registered(app)
    if summary("group", entries["group"]).help != "group" or summary("probe", entries["probe"]).help != "probe":
        return False
    command = build("probe", entries["probe"], app)
    ctx = typer.Context(command, info_name="probe")
    values = {}
    for param in command.get_params(ctx):
        if param.name in ("count", "word"):
            runtime = param.get_runtime_param()
            if not isinstance(runtime, PlainConverter):
                return False
            values[param.name] = runtime.coerce("3", param, ctx)
    return values == {"count": 3, "word": "3"}


def _probe(
    word: Annotated[str, typer.Argument()] = "x",
    count: Annotated[int, typer.Option("--count", min=1)] = 1,
) -> None:
    """probe"""


# -- values ---------------------------------------------------------------------------------------


def _runtime_param(param: TyperOption | TyperArgument, typer_runtime_param: Callable[[], Any]) -> Any:
    plain = plain_converter(param.type_descriptor)
    return plain if plain is not None else typer_runtime_param()


# Direct subclasses without new state: a built parameter can take one of these classes.
class PlainOption(TyperOption):
    def get_runtime_param(self) -> Any:
        return _runtime_param(self, super().get_runtime_param)


class PlainArgument(TyperArgument):
    def get_runtime_param(self) -> Any:
        return _runtime_param(self, super().get_runtime_param)


def _plain(params: list[Any]) -> list[Any]:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = PlainOption
        elif type(param) is TyperArgument:
            param.__class__ = PlainArgument
    return params


class PlainCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))  # includes the help option click makes on demand


class PlainGroup(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


def plain_values(command: Any) -> None:
    """Let ``command`` and its subcommands convert plain values without pydantic."""
    if type(command) is TyperCommand:
        command.__class__ = PlainCommand
    elif type(command) is TyperGroup:
        command.__class__ = PlainGroup
    for sub in getattr(command, "commands", {}).values():
        plain_values(sub)


def _to_str(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _to_int(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("Input should be a valid integer, unable to parse string as an integer") from None


def _to_float(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        raise ValueError("Input should be a valid number, unable to parse string as a number") from None


_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def _to_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError("Input should be a valid boolean, unable to interpret input")


_CONVERTERS: dict[type, Callable[[object], Any]] = {str: _to_str, int: _to_int, float: _to_float, bool: _to_bool}


class PlainConverter:
    """Typer's runtime-parameter contract (``coerce``) for a plain type with an optional range."""

    def __init__(self, kind: type, minimum: float | None, maximum: float | None) -> None:
        self.convert = _CONVERTERS[kind]
        self.minimum = minimum
        self.maximum = maximum

    def coerce(self, value: Any, param: Any, ctx: Any) -> Any:
        multiple = param.multiple or param.nargs == -1
        if value is None:
            return () if multiple else None
        try:
            if multiple:
                if isinstance(value, str):
                    raise ValueError("Value must be an iterable.")
                return [self.one(item) for item in value]
            return self.one(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), ctx=ctx, param=param) from None

    def one(self, value: Any) -> Any:
        result = self.convert(value)
        if self.minimum is not None and result < self.minimum:
            raise ValueError(f"Input should be greater than or equal to {self.minimum}")
        if self.maximum is not None and result > self.maximum:
            raise ValueError(f"Input should be less than or equal to {self.maximum}")
        return result


def plain_converter(descriptor: Any) -> PlainConverter | None:
    """A converter for str/int/float/bool (or a list of one) without parser, choices, paths or clamping."""
    info = descriptor.parameter_info
    special = info.parser is not None or getattr(info, "clamp", False) or descriptor.is_file or descriptor.is_path
    if special or descriptor.is_choice or descriptor.is_datetime or descriptor.is_tuple:
        return None
    kind = descriptor.annotation
    if descriptor.is_list:
        args = get_args(kind)
        kind = args[0] if len(args) == 1 else None
    if kind not in _CONVERTERS:
        return None
    return PlainConverter(kind, info.min, info.max)
