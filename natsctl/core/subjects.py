"""Subject families: wildcard patterns (``orders.*``, ``orders.>``) and which subjects they cover.

A channel is one literal subject (:func:`natsctl.core.names.validate_channel`). Readers on JetStream
also take a pattern, when an existing stream covers every subject it matches; nothing here talks to a
server.
"""

from __future__ import annotations

from .errors import UsageError


def has_wildcard(name: str) -> bool:
    return "*" in name or ">" in name


def validate_pattern(pattern: str) -> str:
    """A subject with wildcards: ``*`` stands for one whole token, ``>`` for the rest (last token only)."""
    if not pattern:
        raise UsageError("the channel name is empty; give a name such as orders or ticket:created")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in pattern):
        raise UsageError(f"invalid subject pattern {pattern!r}: it contains whitespace or control characters")
    tokens = pattern.split(".")
    if any(token == "" for token in tokens):
        raise UsageError(f"invalid subject pattern {pattern!r}: empty token (leading, trailing or double dot)")
    for index, token in enumerate(tokens):
        if has_wildcard(token) and token not in ("*", ">"):
            raise UsageError(f"invalid subject pattern {pattern!r}: '*' and '>' stand for whole tokens (orders.*)")
        if token == ">" and index != len(tokens) - 1:
            raise UsageError(f"invalid subject pattern {pattern!r}: '>' may only be the last token")
    return pattern


def matches(subject: str, pattern: str) -> bool:
    """Whether the literal ``subject`` is one of the subjects ``pattern`` stands for."""
    return is_subset(subject, pattern)


def is_subset(inner: str, outer: str) -> bool:
    """Whether every subject ``inner`` stands for is also one ``outer`` stands for (both may be patterns)."""
    a, b = inner.split("."), outer.split(".")
    for index, token in enumerate(b):
        if token == ">":
            return len(a) > index  # '>' needs at least one token; it covers any, wildcards included
        if index >= len(a):
            return False
        mine = a[index]
        if token == "*":
            if mine == ">":
                return False
            continue
        if mine != token:  # a literal covers only itself, not '*' or '>'
            return False
    return len(a) == len(b)


def describe(subjects: tuple[str, ...] | list[str]) -> str:
    return ", ".join(subjects) if subjects else "no subjects"
