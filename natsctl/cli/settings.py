"""Turn command-line flags into Settings (flags > env > context > config > defaults), with warnings.

Warnings (one line each, on stderr): a file holding secrets that other users can read (context,
config, creds, nkey), and TLS verification turned off.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from natsctl.core.settings import Resolution, Settings, resolve_full
from natsctl.core.timeparse import check_timeout

_LAST: list[Resolution] = []


def last_resolution() -> Resolution | None:
    """The layers behind the Settings the running command got (``natsctl config show`` prints them)."""
    return _LAST[-1] if _LAST else None


def load_settings(flags: Mapping[str, object]) -> Settings:
    resolution = resolve_full(flags)
    _LAST[:] = [resolution]
    settings = resolution.settings
    source = resolution.source_of("timeout")
    check_timeout(settings.timeout, what="--timeout" if source in ("flag", "default") else f"'timeout' ({source})")
    warn_about(resolution)
    return settings


def warn_about(resolution: Resolution) -> None:
    from natsctl.core.stderr import say

    for message in warnings_for(resolution):
        say(message, "warning")


def warnings_for(resolution: Resolution) -> list[str]:
    settings = resolution.settings
    files: list[tuple[str, Path | str | None]] = [
        ("context file", resolution.context_path),
        ("config file", resolution.config_path),
        ("creds file", settings.creds),
        ("nkey seed file", settings.nkey),
    ]
    messages = [m for kind, path in files if path and (m := exposed_file(kind, Path(path)))]
    if settings.tls_insecure:
        messages.append("TLS certificate verification is off (--tls-insecure): the server is not authenticated")
    return messages


def exposed_file(kind: str, path: Path) -> str | None:
    """A warning if ``path`` can be read by users other than its owner (a missing file is reported later)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        return f"the {kind} {path} is readable by other users (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
    return None
