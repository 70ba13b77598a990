"""Wire limits of the servers that flags can pass, checked before connecting.

A value past one of them would otherwise fail while the request is encoded (a protobuf range error)
or come back as the server's refusal; here it is a usage error naming the flag and the limit.
"""

from __future__ import annotations

import math

from .errors import UsageError

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

# NATS Streaming's SubscriptionRequest: maxInFlight and ackWaitInSecs are int32 (whole seconds).
STAN_MAX_IN_FLIGHT = INT32_MAX
STAN_MAX_ACK_WAIT = INT32_MAX  # seconds, about 68 years
# JetStream's consumer config: max_ack_pending is a Go int (64-bit on every server platform).
JETSTREAM_MAX_ACK_PENDING = INT64_MAX


def check_subscription(kind: str, *, ack_wait: float, max_in_flight: int, ack_wait_text: str | None = None) -> None:
    """``--ack-wait`` and ``--max-in-flight`` within what the server kind (``stan`` / ``jetstream``) takes."""
    if kind == "stan":
        if max_in_flight > STAN_MAX_IN_FLIGHT:
            raise UsageError(
                f"--max-in-flight {max_in_flight} is more than NATS Streaming takes (at most {STAN_MAX_IN_FLIGHT})"
            )
        if math.ceil(ack_wait) > STAN_MAX_ACK_WAIT:
            shown = ack_wait_text or f"{ack_wait:g}s"
            raise UsageError(
                f"--ack-wait {shown} is more than NATS Streaming takes (at most {STAN_MAX_ACK_WAIT}s, about 68 years)"
            )
    elif max_in_flight > JETSTREAM_MAX_ACK_PENDING:
        raise UsageError(
            f"--max-in-flight {max_in_flight} is more than JetStream takes (at most {JETSTREAM_MAX_ACK_PENDING})"
        )
