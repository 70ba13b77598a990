"""Turn command-line flags into Settings (flags > env > context > config > defaults)."""

from __future__ import annotations

from collections.abc import Mapping

from natsctl.core.errors import UsageError
from natsctl.core.settings import Settings, resolve


def load_settings(flags: Mapping[str, object]) -> Settings:
    settings = resolve(flags)
    if settings.timeout <= 0:
        raise UsageError(f"--timeout must be more than 0 seconds, not {settings.timeout:g}")
    return settings
