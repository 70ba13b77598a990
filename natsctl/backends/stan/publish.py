"""NATS Streaming bulk publishing: PubMsgs built by hand and queued in batches, PubAcks routed raw.

Per message: a PUB frame built from bytes prepared once (protocol.PubEncoder: a guid of a NUID prefix
and a counter, no protobuf object, no NUID), a dict entry for its PubAck; the frames go out many per
write. PubAcks come straight from the parser (transport.fast.route_raw) to ``_on_result``: no Msg
object, future, closure or semaphore per message. A window of PubAcks in flight is refilled in
halves; results are reported in input order.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from natsctl.core.backend import AckCallback, ErrorCallback, Messages, each_message
from natsctl.core.errors import ConnectionFailed, Unsupported
from natsctl.core.model import OutgoingMessage, PublishAck, PublishSummary
from natsctl.transport.fast import send_raw, spare_the_collector, wake_flusher

if TYPE_CHECKING:
    from .backend import StanBackend

SEND_BATCH = 256  # frames queued per write


def check_outgoing(message: OutgoingMessage) -> None:
    if message.headers:
        raise Unsupported("message headers exist on JetStream only: NATS Streaming messages have no headers")
    if message.msg_id:
        raise Unsupported("de-duplication ids (Nats-Msg-Id) exist on JetStream only, not on NATS Streaming")


class StanPublishRun:
    """Pipelined publishing with a bounded window; results reported in input order."""

    def __init__(self, backend: StanBackend, channel: str, on_ack: AckCallback | None, on_error: ErrorCallback | None):
        self.backend = backend
        self.client = backend.client
        self.channel = channel
        self.on_ack = on_ack
        self.on_error = on_error
        self.summary = PublishSummary(channel=channel, stream="")
        self.sent: dict[int, OutgoingMessage] = {}  # awaiting their PubAck
        self.results: dict[int, tuple[OutgoingMessage, str]] = {}  # finished out of turn (or failed), not reported
        self.next_report = 0
        self.wake_below = 0  # the waiting sender is woken once fewer than this are awaited
        self.progress = asyncio.Event()
        self.last_ack = time.monotonic()
        self.callback_error: Exception | None = None  # raised by on_ack / on_error, re-raised by send_all

    async def send_all(self, messages: Messages) -> None:
        client, nc = self.client, self.client.nc
        spare_the_collector()
        client.await_acks(self._on_result)
        encoder = client.pub_encoder(self.channel)
        window = self.backend.pub_window
        sent, summary = self.sent, self.summary
        frames: list[bytes] = []
        index = -1
        try:
            async for message in each_message(messages):
                index += 1
                check_outgoing(message)
                if self.callback_error is not None:
                    self._not_sent(index, message, "publishing stopped (a confirmation could not be reported)")
                    break
                if len(sent) >= window:
                    await self._send(frames)
                    await self._wait_until_below(window // 2)
                if client.lost is not None or nc.is_closed:
                    if client.lost is None:
                        client._lose(ConnectionFailed(f"the connection to {client.where} was lost while publishing"))
                    self._not_sent(index, message, client.lost.message if client.lost else "connection lost")
                    client.check()
                frame = encoder.frame(index, message.data)
                if isinstance(frame, str):
                    self.results[index] = (message, frame)  # refused here, reported in its turn
                    self._report()
                    continue
                sent[index] = message
                summary.published += 1
                frames.append(frame)
                if len(frames) >= SEND_BATCH:
                    await self._send(frames)
            await self._send(frames)
        except BaseException:
            if client.lost is None:
                await self._send(frames)  # what was built is awaited: it goes out, and is confirmed or given up
            else:
                frames.clear()  # given up already when the client was lost: never sent after being reported
            raise
        await self._wait_until_below(1)
        client.check()
        if self.callback_error is not None:
            raise self.callback_error

    async def _send(self, frames: list[bytes]) -> None:
        if frames:
            commands = b"".join(frames)
            frames.clear()
            await send_raw(self.client.nc, commands)

    def _not_sent(self, index: int, message: OutgoingMessage, reason: str) -> None:
        self.results[index] = (message, f"not sent: {reason}")
        self._report()

    def _on_result(self, index: int, error: str) -> None:
        """A PubAck (``error`` "" when stored), or a given-up message; runs inside the connection's reader."""
        message = self.sent.pop(index, None)
        if message is None:
            return
        self.last_ack = time.monotonic()
        if not error and index == self.next_report and not self.results:
            self.next_report += 1
            self._confirmed(index)
        else:
            self.results[index] = (message, error)
            self._report()
        if len(self.sent) < self.wake_below:
            self.progress.set()

    async def _wait_until_below(self, limit: int) -> None:
        """Until fewer than ``limit`` PubAcks are awaited; those that stall past the ack timeout fail."""
        sent = self.sent
        if len(sent) >= limit and not self.client.nc.is_closed:
            await wake_flusher(self.client.nc)  # what was queued goes out now
        while len(sent) >= limit:
            self.progress.clear()
            self.wake_below = limit
            deadline = self.last_ack + self.backend.pub_ack_timeout - time.monotonic()
            try:
                await asyncio.wait_for(self.progress.wait(), max(0.05, min(deadline, 1.0)))
            except TimeoutError:
                self.client.check()
                if time.monotonic() - self.last_ack >= self.backend.pub_ack_timeout:
                    self.client.forget(f"no confirmation from the server within {self.backend.pub_ack_timeout:g}s")
            finally:
                self.wake_below = 0

    def _confirmed(self, index: int) -> None:
        self.summary.confirmed += 1
        if self.on_ack:
            # Runs inside the connection's reader, which would swallow an exception (e.g. --record's
            # disk is full): it is kept, publishing stops, send_all raises it.
            try:
                self.on_ack(PublishAck(index=index, channel=self.channel, sequence=0))
            except Exception as exc:  # noqa: BLE001 - re-raised by send_all
                self._callback_failed(exc)

    def _report(self) -> None:
        """Call on_ack / on_error for the results that are next in input order."""
        results = self.results
        while self.next_report in results:
            index = self.next_report
            message, error = results.pop(index)
            self.next_report += 1
            if not error:
                self._confirmed(index)
                continue
            reason = error.removeprefix("stan: ")
            self.summary.failed.append(f"{message.source or f'message {index + 1}'}: {reason}")
            if self.on_error:
                try:
                    self.on_error(index, message, reason)
                except Exception as exc:  # noqa: BLE001 - re-raised by send_all
                    self._callback_failed(exc)

    def _callback_failed(self, exc: Exception) -> None:
        self.callback_error = self.callback_error or exc
        self.on_ack = self.on_error = None
