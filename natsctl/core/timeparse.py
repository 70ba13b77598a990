"""Durations (``90s``, ``1h30m``, ``500ms``) and points in time (RFC 3339, dates, or a duration ago)."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

from .errors import UsageError

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
# Servers take durations as int64 nanoseconds (~292 years); keep well inside that and datetime's range.
MAX_SECONDS = 100 * 365 * 86400
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d|w)")


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in ``text``: ``90s``, ``1h30m``, ``1.5h``, ``250ms``; a bare number means seconds."""
    value = (text or "").strip().lower()
    if not value:
        raise UsageError(f"empty {what}; use a duration such as 30s, 5m or 1h")
    try:
        seconds = float(value)
    except ValueError:
        pos, seconds = 0, 0.0
        for match in _PART.finditer(value):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _UNITS[match.group(2)]
            pos = match.end()
        if pos != len(value) or pos == 0:
            raise UsageError(f"invalid {what} {text!r}; use a duration such as 30s, 5m, 1h30m or 250ms") from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        raise UsageError(f"invalid {what} {text!r}: it must be a positive, finite duration")
    if seconds > MAX_SECONDS:
        raise UsageError(f"invalid {what} {text!r}: at most {MAX_SECONDS // 86400 // 365} years")
    return seconds


# --timeout bounds one wait (connect, a request, riding out a lost server): a day is far past any
# useful wait, and keeps every deadline computed from it finite.
MAX_TIMEOUT = 86400.0


def check_timeout(seconds: float, *, what: str = "--timeout") -> float:
    """``seconds`` when it is a usable timeout: finite, more than 0 and at most :data:`MAX_TIMEOUT`."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise UsageError(f"{what} must be a number of seconds, such as 5 or 0.5")
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise UsageError(f"{what} must be a finite number of seconds, not {seconds}")
    if seconds <= 0:
        raise UsageError(f"{what} must be more than 0 seconds, not {seconds:g}")
    if seconds > MAX_TIMEOUT:
        raise UsageError(f"{what} must be at most {MAX_TIMEOUT:g} seconds (a day), not {seconds:g}")
    return float(seconds)


def parse_time(text: str, *, what: str = "time", now: datetime | None = None) -> datetime:
    """An aware UTC datetime from RFC 3339 (``2026-11-28T10:00:00Z``), a date, or a duration ago (``90s``)."""
    value = (text or "").strip()
    if not value:
        raise UsageError(f"empty {what}; use a duration ago (90s, 1h) or a time (2026-11-28T10:00:00Z)")
    now = now or datetime.now(UTC)
    if value[0].isdigit() and not re.fullmatch(r"\d{4}-\d{2}-\d{2}.*", value):
        try:
            return now - timedelta(seconds=parse_duration(value, what=what))
        except UsageError:
            pass
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"invalid {what} {text!r}; use a duration ago (90s, 1h) or an RFC 3339 time (2026-11-28T10:00:00Z)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise UsageError(f"invalid {what} {text!r}: out of the range of dates") from None


def format_time(moment: datetime | None) -> str | None:
    """RFC 3339 in UTC with microseconds and a Z, the form natsctl prints and reads back."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
