"""`natsctl --debug`: connection steps on stderr, with every secret the settings hold masked."""

from __future__ import annotations

import os
from collections.abc import Iterable

from .stderr import say

# Fault-injection points (tests and drills) are named in this variable: see cli/failures.py,
# cli/deadletter.py and backends/jetstream/push.py.
FAULT_ENV = "NATSCTL_FAULT"


def fault(name: str) -> bool:
    return os.environ.get(FAULT_ENV) == name


def enabled() -> bool:
    return bool(os.environ.get("NATSCTL_DEBUG"))


def mask(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def log(message: str, secrets: Iterable[str] = ()) -> None:
    if enabled():
        say(mask(message, secrets), "debug")
