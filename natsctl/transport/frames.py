"""NATS protocol frames natsctl builds and reads itself: PUB / HPUB lines and header blocks.

Pure functions on bytes (no nats-py). The fast path queues the lines as they are; the public path reads
natsctl's own lines back (``read_pub_frames``) and hands each message to ``nc.publish``.
"""

from __future__ import annotations

from collections.abc import Iterator

_HEADER_LINE = b"NATS/1.0"
_NO_LINE_BREAKS = str.maketrans({"\r": " ", "\n": " "})  # as nats-py: a value cannot end the block early


def pub_line(subject: bytes, reply: bytes, data: bytes) -> bytes:
    return b"PUB %s %s %d\r\n%s\r\n" % (subject, reply, len(data), data)


def hpub_line(subject: bytes, reply: bytes, header_block: bytes, data: bytes) -> bytes:
    """An HPUB: the server's max_payload applies to ``len(header_block) + len(data)``."""
    return b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
        subject,
        reply,
        len(header_block),
        len(header_block) + len(data),
        header_block,
        data,
    )


def header_block(headers: dict[str, list[str]] | None, msg_id: str | None = None) -> bytes:
    """The ``NATS/1.0`` header block for ``headers`` (+ ``Nats-Msg-Id``), b"" when there is none.

    One line per value, so a repeated key keeps every value in order (nats-py's publish takes one value
    per key). Names are checked where they are read (``-H``, envelopes); values are trimmed as nats-py
    does and receivers do. ``msg_id`` replaces any ``Nats-Msg-Id`` among ``headers``.
    """
    if not headers and not msg_id:
        return b""
    lines = [_HEADER_LINE + b"\r\n"]
    append = lines.append
    for key, values in (headers or {}).items():
        if msg_id and key == "Nats-Msg-Id":
            continue
        name = key.strip().encode("ascii")
        for value in values:
            append(b"%s: %s\r\n" % (name, _header_value(value)))
    if msg_id:
        append(b"Nats-Msg-Id: %s\r\n" % _header_value(msg_id))
    append(b"\r\n")
    return b"".join(lines)


def _header_value(value: str) -> bytes:
    return value.strip().translate(_NO_LINE_BREAKS).encode("utf-8", errors="surrogateescape")


def parse_header_block(raw: bytes) -> dict[str, list[str]] | None:
    """The headers of an HMSG, every value of a repeated key kept, in order; None when there are none.

    An inline status (``NATS/1.0 404 No Messages``) comes as ``Status`` and ``Description``, as nats-py
    gives them. Like nats-py: names with whitespace or non-ASCII bytes and lines without a colon are
    skipped, values are trimmed and decoded as UTF-8 with U+FFFD for bad bytes. Never raises.
    """
    lines = raw.split(b"\r\n")
    headers: dict[str, list[str]] = {}
    first = lines[0]
    if first.startswith(_HEADER_LINE) and len(first) > len(_HEADER_LINE):
        status, _, description = first[len(_HEADER_LINE) :].strip().partition(b" ")
        if status.isdigit():
            headers["Status"] = [status.decode("ascii")]
        description = description.strip()
        if description:
            headers["Description"] = [description.decode("utf-8", "replace")]
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            continue  # the empty lines that end the block, or a malformed line
        name = name.strip()
        if not name or not name.isascii() or any(c in name for c in b" \t\x0b\x0c"):
            continue
        headers.setdefault(name.decode("ascii"), []).append(value.strip().decode("utf-8", "replace"))
    return headers or None


class FrameError(ValueError):
    """Bytes handed to ``send_raw`` that are not PUB / HPUB frames as natsctl builds them."""


def read_pub_frames(commands: bytes) -> Iterator[tuple[bytes, bytes, bytes, bytes]]:
    """(subject, reply, header block, payload) of each ``PUB`` / ``HPUB`` frame in ``commands``, in order.

    Reads what pub_line, hpub_line and natsctl's ack batches build (``PUB <subject> [<reply>] <size>``,
    ``HPUB <subject> [<reply>] <header size> <total size>``); anything else raises FrameError.
    """
    view = memoryview(commands)
    pos, size = 0, len(commands)
    while pos < size:
        eol = commands.find(b"\r\n", pos)
        if eol < 0:
            raise FrameError(f"a frame without its line end at byte {pos}")
        op, *args = commands[pos:eol].split()
        try:
            if op == b"PUB" and len(args) in (2, 3):
                subject, reply, header_size, total = args[0], args[1] if len(args) == 3 else b"", 0, int(args[-1])
            elif op == b"HPUB" and len(args) in (3, 4):
                subject, reply = args[0], args[1] if len(args) == 4 else b""
                header_size, total = int(args[-2]), int(args[-1])
            else:
                raise FrameError(f"not a PUB or HPUB frame: {commands[pos:eol][:60]!r}")
        except ValueError as exc:
            raise FrameError(f"a malformed size in {commands[pos:eol][:60]!r}") from exc
        start = eol + 2
        end = start + total
        if header_size > total or commands[end : end + 2] != b"\r\n":
            raise FrameError(f"a frame whose size does not match its bytes: {commands[pos:eol][:60]!r}")
        yield subject, reply, bytes(view[start : start + header_size]), bytes(view[start + header_size : end])
        pos = end + 2
