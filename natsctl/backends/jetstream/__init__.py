"""The JetStream backend: a channel is a stream whose subject is the channel name.

Publishing is pipelined: raw publishes whose reply subjects are ``<inbox>.<index>`` on one wildcard
subscription, a bounded window of acks in flight refilled in halves, acks parsed without per-message
futures. Consuming is a callback-driven pull: two next-requests in flight on one inbox, batches handed
to the caller as they arrive, metadata read from the reply subject.

- ``backend.py``: ``JetStreamBackend`` (connect, channels, the publish and subscribe entry points, close)
- ``admin.py``: streams and consumers looked up and created, their configs, API errors mapped
- ``publish.py``: the publish pipeline
- ``pull.py``: ``PullSubscription``, the reading side
- ``retry.py``: asking again within a deadline, for every call a cluster may not answer yet
"""

from __future__ import annotations

from natsctl.backends.jetstream.admin import jetstream_error
from natsctl.backends.jetstream.backend import JetStreamBackend, connect
from natsctl.backends.jetstream.publish import PublishPipeline
from natsctl.backends.jetstream.pull import PullSubscription, parse_ack_reply

__all__ = [
    "JetStreamBackend",
    "PublishPipeline",
    "PullSubscription",
    "connect",
    "jetstream_error",
    "parse_ack_reply",
]
