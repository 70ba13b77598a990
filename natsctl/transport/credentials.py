"""Credential files: NATS creds (user JWT + nkey seed) and nkey seed files, read and checked up front.

A bad file is named in a one-line usage error before any connection is tried; a seed is never echoed.
"""

from __future__ import annotations

import re

from natsctl.core.errors import NatsctlError, UsageError
from natsctl.core.settings import Settings


class CredentialsFileError(UsageError):
    """A creds or nkey seed file that cannot be read or holds no usable key (the message names the file)."""


_JWT_BLOCK = re.compile(r"-+BEGIN NATS USER JWT-+\s*\n\s*(\S+)\s*\n\s*-+END NATS USER JWT-+")
_SEED_BLOCK = re.compile(r"-+BEGIN USER NKEY SEED-+\s*\n\s*(\S+)\s*\n\s*-+END USER NKEY SEED-+")


def read_secret_file(path: str, kind: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8")
    except UnicodeDecodeError:
        raise CredentialsFileError(f"the {kind} {path} is not a text file") from None
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise CredentialsFileError(f"cannot read the {kind} {path}: {reason}") from None


def valid_seed(text: str) -> bool:
    import nkeys

    try:
        nkeys.from_seed(bytearray(text.encode())).wipe()
    except Exception:  # noqa: BLE001 - any failure means "not a seed"; its text could echo the seed
        return False
    return True


def read_nkey_seed(path: str) -> str:
    """The seed in an nkey file: a bare seed, or the first seed line of a decorated file."""
    text = read_secret_file(path, "nkey seed file")
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("S") and valid_seed(line):
            return line
    raise CredentialsFileError(f"the nkey seed file {path} holds no valid nkey seed")


def check_creds_file(path: str) -> None:
    """Fail early, naming the file, if a creds file lacks the user JWT or a valid seed."""
    text = read_secret_file(path, "creds file")
    jwt = _JWT_BLOCK.search(text)
    if not jwt or jwt.group(1).count(".") != 2:
        raise CredentialsFileError(f"the creds file {path} holds no NATS user JWT block")
    seed = _SEED_BLOCK.search(text)
    if not seed or not valid_seed(seed.group(1)):
        raise CredentialsFileError(f"the creds file {path} holds no valid user nkey seed block")


def creds_expiry(path: str) -> float | None:
    """The ``exp`` claim of the user JWT in a creds file (the JWT body is public, unlike the seed)."""
    import base64
    import json

    try:
        found = _JWT_BLOCK.search(read_secret_file(path, "creds file"))
        body = found.group(1).split(".")[1] if found else ""
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        exp = claims.get("exp")
    except (NatsctlError, ValueError, IndexError, AttributeError):
        return None
    return float(exp) if isinstance(exp, (int, float)) and exp > 0 else None


def has_credentials(settings: Settings) -> bool:
    from urllib.parse import urlsplit

    in_urls = any(urlsplit(u).username for u in settings.servers)
    return in_urls or any((settings.user, settings.password, settings.token, settings.creds, settings.nkey))


def auth_kind(settings: Settings) -> str:
    """How we authenticate, named without the secret."""
    for kind, present in (
        ("creds file", settings.creds),
        ("nkey", settings.nkey),
        ("token", settings.token),
        ("user/password", settings.user or settings.password),
    ):
        if present:
            return kind
    return "from the URL" if settings.secrets() else "none"
