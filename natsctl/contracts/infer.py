"""A schema inferred from stored events, ready to paste into the catalog.

genson builds the structure (types, properties, required fields: those present in every event); on
top, a string field whose values come from a small set gets an ``enum`` (at most
``ENUM_MAX`` distinct values, each seen on average ``ENUM_MIN_REPEATS`` times or more, in ``ENUM_MIN_EVENTS`` events or more), so a
status field is pinned down while ids and titles are not.
"""

from __future__ import annotations

from typing import Any

from .schema import DRAFT_2020_12

ENUM_MAX = 10
ENUM_MIN_REPEATS = 3
ENUM_MIN_EVENTS = 20  # fewer events than this: no enum (too little to tell a closed set)


class Inference:
    """Feed parsed events with :meth:`add`; :meth:`schema` gives the result."""

    def __init__(self) -> None:
        from genson import SchemaBuilder

        self.builder = SchemaBuilder(schema_uri=DRAFT_2020_12)
        self.count = 0
        # path (tuple of property names) -> distinct scalar values seen there (None once too many)
        self.values: dict[tuple[str, ...], set[object] | None] = {}
        self.seen: dict[tuple[str, ...], int] = {}

    def add(self, value: object) -> None:
        self.builder.add_object(value)
        self.count += 1
        self._collect(value, ())

    def _collect(self, value: object, path: tuple[str, ...]) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                self._collect(item, (*path, str(key)))
            return
        if not path or isinstance(value, (list, float, bool)) or value is None:
            return
        self.seen[path] = self.seen.get(path, 0) + 1
        known = self.values.get(path, set())
        if known is None:
            return
        known.add(value)
        self.values[path] = known if len(known) <= ENUM_MAX else None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = self.builder.to_schema()
        for path, values in self.values.items():
            if values is None or self.seen[path] < max(ENUM_MIN_EVENTS, ENUM_MIN_REPEATS * len(values)):
                continue
            node = _node_at(schema, path)
            if node is not None and node.get("type") == "string" and all(isinstance(v, str) for v in values):
                node["enum"] = sorted(str(v) for v in values)
        return schema


def _node_at(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = schema
    for name in path:
        if not isinstance(node, dict) or node.get("type") != "object":
            return None
        node = node.get("properties", {}).get(name)
    return node if isinstance(node, dict) else None
