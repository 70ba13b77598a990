"""The connection flags before the command too: ``natsctl -s nats://h:4222 --cluster-id x pub ...``.

natscli, kubectl and docker users put them there. The root group declares the same flags as the
commands (``options.CONNECTION_FLAGS`` and the monitoring ones, declared once in natsctl/cli/options.py);
a command's settings take each flag from after the command when given there, else from before it
(after wins), and then resolve as always (flags > env > context > defaults, natsctl/core/settings.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Command = Callable[..., object]


def global_options(root: Command) -> Command:
    """Give the root callback the connection and monitoring flags (it does nothing with them itself:
    the commands read them back through :func:`before_command`)."""
    from natsctl.cli.options import _CONNECTION_PARAMS, MONITOR_PARAMS, _with_params

    return _with_params({**_CONNECTION_PARAMS, **MONITOR_PARAMS}, "global_flags", _remember)(root)


# What the root callback was given in this run (it runs before every command).
_BEFORE: dict[str, Any] = {}


def _remember(values: dict[str, Any]) -> dict[str, Any]:
    _BEFORE.clear()
    _BEFORE.update((name, value) for name, value in values.items() if value is not None)
    return dict(_BEFORE)


def before_command() -> dict[str, Any]:
    """The connection flags given before the command (by Settings field)."""
    return dict(_BEFORE)


def with_global(flags: dict[str, Any], unset: tuple[object, ...] = (None,)) -> dict[str, Any]:
    """``flags`` (the command's own) with each one it did not get taken from before the command."""
    before = before_command()
    if not before:
        return flags
    return {
        name: before[name] if name in before and any(value is u for u in unset) else value
        for name, value in flags.items()
    }
