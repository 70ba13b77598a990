"""Reading the settings files (natsctl's YAML config, natscli's JSON contexts): one loader, one set of errors.

Every problem is one line naming the file, never its content (a context or a config can hold a
password, and a parser's message quotes the offending line): missing or unreadable, not UTF-8, not
valid YAML / JSON (with the position only), nested too deeply, not a mapping, or a value of the wrong
type (said by the kind's own check, in the words of :func:`kind_of`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from .errors import UsageError

Syntax = Literal["YAML", "JSON"]
Document = dict[str, object]


@dataclass(frozen=True)
class DocumentKind:
    """What a kind of settings file is called in messages, how it is written, and how its values are checked."""

    what: str  # "the config file", "the context file"
    syntax: Syntax
    too_deep: str  # "... nests too deeply to be <too_deep>"
    too_deep_hint: str
    not_a_mapping: str  # "<what> <path> <not_a_mapping>"
    error: type[UsageError]
    check: Callable[[Document, Path], None]  # raises ``error`` for a value of the wrong type


def load_document(path: Path, kind: DocumentKind) -> Document | None:
    """The mapping in the file at ``path``; None when there is no such file (each caller says what that means)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise kind.error(f"cannot read {kind.what} {path}: {reason(exc)}") from None
    return parse_document(raw, path, kind)


def parse_document(raw: bytes, path: Path, kind: DocumentKind) -> Document:
    """The mapping ``raw`` holds, checked by ``kind.check``; an empty YAML document is an empty mapping."""
    try:
        data = _parse(raw.decode("utf-8"), kind.syntax)
    except UnicodeDecodeError:
        raise kind.error(f"{kind.what} {path} is not UTF-8 text") from None
    except RecursionError:
        raise kind.error(
            f"{kind.what} {path} nests too deeply to be {kind.too_deep}", hint=kind.too_deep_hint
        ) from None
    except _SyntaxProblem as exc:
        raise kind.error(f"{kind.what} {path} is not valid {kind.syntax}{exc.where}") from None
    if data is None and kind.syntax == "YAML":
        return {}
    if not isinstance(data, dict):
        raise kind.error(f"{kind.what} {path} {kind.not_a_mapping}")
    kind.check(data, path)
    return data


class _SyntaxProblem(Exception):
    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where  # " (line L, column C)", or "" when the parser does not say


def _parse(text: str, syntax: Syntax) -> object:
    # Never the parser's own message: it quotes the offending line, which may hold a password.
    if syntax == "JSON":
        import json

        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise _SyntaxProblem(f" (line {exc.lineno}, column {exc.colno})") from None
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _SyntaxProblem(f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else "") from None


def kind_of(value: object, syntax: Syntax) -> str:
    """What a value is, in the words of its file's syntax (never the value: it may be a secret)."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array" if syntax == "JSON" else "a list"
    if isinstance(value, dict):
        return "an object" if syntax == "JSON" else "a mapping"
    if value is None and syntax == "YAML":
        return "empty"
    return f"a {type(value).__name__}"


def reason(exc: OSError) -> str:
    """Why a file could not be read or written, in lower case ("permission denied")."""
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
