"""What a NATS Streaming reader needs to write natsctl's JSON envelopes without a Message each.

``StanSubscription._render`` formats the usual message (UTF-8 data, a time) itself; this holds what it
prepares once per channel (the envelope's head) and once per second (the time's text).
tests/test_stan_render.py holds its lines equal to ``core.envelope.message_to_json``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) writes for a str

__all__ = ["Envelopes", "encode_basestring"]


class Envelopes:
    """The envelope's head for one channel, and the text of the last second seen."""

    __slots__ = ("head", "second", "second_text")

    def __init__(self, channel: str) -> None:
        name = encode_basestring(channel)
        self.head = f'{{"channel":{name},"subject":{name},"seq":'  # a STAN message's subject is its channel
        self.second: int | None = None
        self.second_text = ""

    @staticmethod
    def second_of(seconds: int) -> str:
        """``YYYY-MM-DDTHH:MM:SS`` in UTC, as core.timeparse.format_time writes it."""
        return datetime.fromtimestamp(seconds, UTC).isoformat()[:19]
