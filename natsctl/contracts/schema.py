"""A channel's JSON Schema (draft 2020-12), compiled once, and the check of one payload against it.

Errors read ``$.price: -3 is less than the minimum of 0``: the JSON path of the value, then the
validator's message. A payload that is not JSON (or not UTF-8) is invalid on a channel with a schema,
and said so. The compiled validator is jsonschema-rs (Rust); payloads are parsed with orjson, and
with the standard library only when orjson refuses (integers beyond 64 bits), so a fast path costs
about 2-3 microseconds per 6-field event.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from natsctl.core.errors import UsageError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
MAX_ERRORS = 5  # errors reported per event (the first ones; the count says how many more)


class SchemaError(UsageError):
    """A schema in the catalog that is not valid JSON Schema (the message names the catalog and the channel)."""


def json_path(parts: Any) -> str:
    """``['items', 0, 'price']`` -> ``$.items[0].price``; keys that are not plain names are quoted."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif isinstance(part, str) and part.isidentifier():
            out.append(f".{part}")
        else:
            out.append(f"[{json.dumps(str(part), ensure_ascii=False)}]")
    return "".join(out)


def check_schema(schema: object, where: str) -> None:
    """Raise SchemaError (naming ``where``) unless ``schema`` is a valid JSON Schema."""
    import jsonschema_rs

    if not isinstance(schema, (dict, bool)):
        raise SchemaError(f"{where}: the schema must be a JSON Schema object, not {type(schema).__name__}")
    if isinstance(schema, bool):
        return
    try:
        jsonschema_rs.meta.validate(schema)
    except jsonschema_rs.ValidationError as exc:
        raise SchemaError(
            f"{where}: not a valid JSON Schema: {json_path(exc.instance_path)}: {_first_line(exc.message)}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - an unknown $schema and the like: said in one line
        raise SchemaError(f"{where}: not a valid JSON Schema: {_first_line(str(exc))}") from None


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


class Contract:
    """A compiled schema: :meth:`check` gives the errors of one payload ([] when it is valid)."""

    def __init__(self, schema: object, where: str) -> None:
        import jsonschema_rs
        import orjson

        check_schema(schema, where)
        self.schema = schema
        self.where = where
        # Draft 2020-12 unless the schema names its own draft ($schema); never a download (offline).
        make = jsonschema_rs.validator_for if _declares_draft(schema) else jsonschema_rs.Draft202012Validator
        try:
            self.validator = make(schema, offline=True)  # type: ignore[arg-type]  # a dict or a bool (checked above)
        except jsonschema_rs.ValidationError as exc:
            raise SchemaError(f"{where}: cannot be compiled: {_first_line(exc.message)}") from None
        except Exception as exc:  # noqa: BLE001 - e.g. a $ref to a document that is not there
            raise SchemaError(f"{where}: cannot be compiled: {_first_line(str(exc))}") from None
        self._is_valid: Callable[[object], bool] = self.validator.is_valid
        self._many: Any = None  # the schema as the items of an array, compiled on first use
        self._loads: Callable[[bytes], object] = orjson.loads
        self._decode_error: type[Exception] = orjson.JSONDecodeError

    def parse(self, data: bytes) -> tuple[object, str | None]:
        """(value, None), or (None, why it is not JSON)."""
        try:
            return self._loads(data), None
        except self._decode_error:
            pass
        except RecursionError:
            return None, "not JSON (nested too deeply)"
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None, f"not JSON: a binary payload ({len(data)} bytes)"
        try:
            return json.loads(text, parse_constant=_no_constant), None
        except RecursionError:
            return None, "not JSON (nested too deeply)"
        except ValueError as exc:
            if not text.strip():
                return None, "not JSON: an empty payload"
            reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
            return None, f"not JSON ({reason})"

    def check(self, data: bytes) -> list[str]:
        """The errors of one payload, at most MAX_ERRORS (+ a count of the rest); [] when valid."""
        value, problem = self.parse(data)
        if problem is not None:
            return [problem]
        if self._is_valid(value):
            return []
        return self.errors_of(value)

    def all_valid(self, values: list[object]) -> bool:
        """Whether every value is valid, in one call to the validator (for checking many at once)."""
        if self._many is None:
            import jsonschema_rs

            # The same schema under "items" of an array: a $ref inside it is resolved against the
            # wrapper, so a schema with $ref / $id / $schema is checked one value at a time instead.
            text = json.dumps(self.schema)
            located = ("$ref", "$dynamicRef", "$recursiveRef", "$id", "$anchor", "$dynamicAnchor")
            if isinstance(self.schema, dict) and ("$schema" in self.schema or any(k in text for k in located)):
                self._many = False
            else:
                self._many = jsonschema_rs.Draft202012Validator({"type": "array", "items": self.schema}, offline=True)
        if self._many is False:
            return all(map(self._is_valid, values))
        return bool(self._many.is_valid(values))

    def check_value(self, value: object) -> list[str]:
        return [] if self._is_valid(value) else self.errors_of(value)

    def errors_of(self, value: object) -> list[str]:
        found: list[str] = []
        more = 0
        for error in self.validator.iter_errors(value):
            if len(found) < MAX_ERRORS:
                found.append(f"{json_path(error.instance_path)}: {_first_line(error.message)}")
            else:
                more += 1
        if more:
            found.append(f"... and {more} more errors")
        return found or ["invalid"]

    def groups_of(self, value: object) -> list[tuple[str, str]]:
        """(group, example message) per error: the group is the path (array indexes as [*]) and the keyword."""
        out = []
        for error in self.validator.iter_errors(value):
            path = json_path(["*" if isinstance(p, int) else p for p in error.instance_path]).replace('["*"]', "[*]")
            keyword = next((str(p) for p in reversed(list(error.schema_path)) if isinstance(p, str)), "")
            out.append((f"{path} {keyword}".strip(), f"{json_path(error.instance_path)}: {_first_line(error.message)}"))
        return out


def _declares_draft(schema: object) -> bool:
    return isinstance(schema, dict) and "$schema" in schema


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
