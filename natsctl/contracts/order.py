"""The per-key version audit: events of one or more channels, merged by publish time, checked per key.

For every key (the event's key field) the versions must start at ``start`` and go up by one. Each
event that breaks it is a finding:

- ``repeat``: the same version as the key's last event;
- ``go-back``: a version lower than the highest seen for the key;
- ``gap``: a version more than one above the highest seen (the versions in between are missing);
- ``wrong-start``: the key's first event does not carry ``start``.

Memory is flat per key: for each key the audit keeps its highest version and where that event was
(channel index and sequence) -- one small tuple in a dict, about 200 bytes per key in CPython,
whatever the number of events -- plus at most ``max_findings`` findings in detail (the rest counted).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from natsctl.core.errors import Invalid

KINDS = ("repeat", "go-back", "gap", "wrong-start")
MAX_FINDINGS = 1000


class UnreadableEvent(Invalid):
    """An event the audit cannot read: not JSON, no key at the key path, a version that is not an integer."""


@dataclass(slots=True)
class Finding:
    kind: str
    key: object
    version: int
    expected: int  # the version that should have come
    channel: str
    seq: int
    time: Any  # when it was published (a datetime; the CLI formats it)
    previous_channel: str | None = None  # the key's event with the highest version before this one
    previous_seq: int | None = None
    previous_version: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class OrderReport:
    channels: list[str]
    key: str
    version: str
    start: int | None
    events: int = 0
    keys: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    findings: list[Finding] = field(default_factory=list)
    truncated: int = 0  # findings counted but not kept in detail

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "channels": self.channels,
            "key": self.key,
            "version": self.version,
            "start": self.start,
            "events": self.events,
            "keys": self.keys,
            "counts": self.counts,
            "findings": [f.as_dict() for f in self.findings],
            "findings_not_listed": self.truncated,
        }


def field_getter(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


class OrderAudit:
    """Feed events in merged order with :meth:`feed`; :attr:`report` holds the result."""

    def __init__(
        self, channels: list[str], key: str, version: str, start: int | None, max_findings: int = MAX_FINDINGS
    ) -> None:
        import orjson

        self._loads = orjson.loads
        self.key_path = field_getter(key)
        self.version_path = field_getter(version)
        self.start = start
        self.max_findings = max_findings
        self.channels = channels
        self.report = OrderReport(channels, key, version, start)
        # key -> (highest version, channel index, sequence) of the key's event with that version
        self.last: dict[object, tuple[int, int, int]] = {}

    def parse(self, data: bytes, channel: str, seq: int) -> Any:
        try:
            return self._loads(data)
        except Exception:  # noqa: BLE001 - orjson refuses what json would take only for huge integers
            import json

            try:
                return json.loads(data)
            except (ValueError, RecursionError):
                raise UnreadableEvent(
                    f"{channel} sequence {seq}: the event is not JSON, so it has no key or version"
                ) from None

    def feed(self, index: int, seq: int, time: Any, data: bytes) -> None:
        # The hot path of the audit (once per event): plain lookups first, the careful checks only
        # when something is off.
        try:
            event = self._loads(data)
        except Exception:  # noqa: BLE001 - orjson refuses what json would take only for huge integers
            event = self.parse(data, self.channels[index], seq)
        try:
            key = event[self.key_path[0]] if len(self.key_path) == 1 else _get(event, self.key_path)
            version = event[self.version_path[0]] if len(self.version_path) == 1 else _get(event, self.version_path)
        except (KeyError, TypeError, IndexError):
            channel = self.channels[index]
            key = _dig(event, self.key_path, channel, seq, "key")
            version = _dig(event, self.version_path, channel, seq, "version")
        if type(version) is not int:
            version = _version(version, self.channels[index], seq, self.version_path)
        if type(key) is not str and (isinstance(key, (dict, list)) or key is None):
            raise UnreadableEvent(
                f"{self.channels[index]} sequence {seq}: the key at {'.'.join(self.key_path)!r} is not a single value"
            )
        report = self.report
        report.events += 1
        last = self.last.get(key)
        if last is None:
            report.keys += 1
            self.last[key] = (version, index, seq)
            if self.start is not None and version != self.start:
                self._found("wrong-start", key, version, self.start, self.channels[index], seq, time, None)
            return
        high = last[0]
        if version == high + 1:
            self.last[key] = (version, index, seq)
            return
        channel = self.channels[index]
        if version == high:
            self._found("repeat", key, version, high + 1, channel, seq, time, last)
        elif version < high:
            self._found("go-back", key, version, high + 1, channel, seq, time, last)
        else:
            self._found("gap", key, version, high + 1, channel, seq, time, last)
            self.last[key] = (version, index, seq)

    def _found(
        self,
        kind: str,
        key: object,
        version: int,
        expected: int,
        channel: str,
        seq: int,
        time: Any,
        last: tuple[int, int, int] | None,
    ) -> None:
        report = self.report
        report.counts[kind] += 1
        if len(report.findings) >= self.max_findings:
            report.truncated += 1
            return
        finding = Finding(kind, key, version, expected, channel, seq, time)
        if last is not None:
            finding.previous_version, finding.previous_channel, finding.previous_seq = (
                last[0],
                self.channels[last[1]],
                last[2],
            )
        report.findings.append(finding)


def _get(event: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        event = event[part]
    return event


def _dig(event: Any, path: tuple[str, ...], channel: str, seq: int, what: str) -> Any:
    node = event
    for part in path:
        if not isinstance(node, dict) or part not in node:
            raise UnreadableEvent(
                f"{channel} sequence {seq}: the {what} path {'.'.join(path)!r} is missing from the event",
                hint=f"pass --{what} with the field that holds it",
            )
        node = node[part]
    return node


def _version(value: Any, channel: str, seq: int, path: tuple[str, ...]) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        shown = "a string" if isinstance(value, str) else type(value).__name__ if value is not None else "null"
        raise UnreadableEvent(f"{channel} sequence {seq}: the version at {'.'.join(path)!r} is {shown}, not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise UnreadableEvent(
                f"{channel} sequence {seq}: the version at {'.'.join(path)!r} is {value}, not an integer"
            )
        return int(value)
    return value
