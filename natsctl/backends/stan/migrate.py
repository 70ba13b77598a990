"""The NATS Streaming side of `natsctl migrate`: channels read in order (natsctl's replay path, with
the exact timestamps), and a durable's unacked messages read without acking them."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

from natsctl.core.errors import ConnectionFailed, NatsctlError, Timeout, UsageError
from natsctl.core.migrate import DurablePlan, DurableState, Source, SourceMessage
from natsctl.core.model import StartKind, StartPosition, SubscribeSpec
from natsctl.core.settings import Settings

from . import proto, wire
from .backend import STOP, StanBackend, StanSubscription, generated_client_id

READ_IN_FLIGHT = 1024  # messages the server may send a copy reader ahead of its acks (as natsctl replay)


class _Reader(StanSubscription):
    """natsctl's replay subscription (acks on receipt, stops at the channel's end unless following),
    handing out (sequence, timestamp to the nanosecond, payload) without building a Message each."""

    def _accept(self, items: list) -> list:
        batch: list[SourceMessage] = []
        end = self.end_sequence if self.spec.stop_at_end else None
        for item in items:
            if item is STOP:
                self.done = True
                break
            sequence, data, timestamp = item[0], item[1], item[2]  # a wire.read_msg tuple
            batch.append(SourceMessage(sequence, timestamp, data))
            if end is not None and sequence >= end:
                self.done = True
                break
        self.delivered += len(batch)
        return batch


class StanSource(Source):
    def __init__(self, backend: StanBackend, settings: Settings) -> None:
        self.backend = backend
        self.settings = settings
        self.max_payload = backend.nc.max_payload
        self.readers: list[_Reader] = []
        self.stopped = False

    @classmethod
    async def open(cls, settings: Settings) -> StanSource:
        return cls(await StanBackend.open(settings), settings)

    async def read(self, channel: str, start: int, *, follow: bool) -> AsyncIterator[list[SourceMessage]]:
        spec = SubscribeSpec(
            channel=channel,
            start=StartPosition(StartKind.SEQUENCE, sequence=max(start, 1)),
            ack=False,
            stop_at_end=not follow,
            create=False,
            max_in_flight=READ_IN_FLIGHT,
        )
        reader = _Reader(self.backend, spec)
        await reader.start()
        self.readers.append(reader)
        if self.stopped:
            reader.stop()
        try:
            async for batch in reader.batches():
                yield batch  # type: ignore[misc]  # SourceMessages (see _Reader._accept)
        finally:
            self.readers.remove(reader)
            await reader.close()

    def stop(self) -> None:
        self.stopped = True
        for reader in list(self.readers):
            reader.stop()

    async def durable_state(self, durable: DurablePlan, last_sent: int, pending: int) -> DurableState:
        if not pending:
            return DurableState(last_sent=last_sent, unacked=[])
        # Resuming the durable redelivers every unacked message at once; with one in flight the
        # server sends nothing new. Nothing is acked, and the durable is closed (kept), not removed.
        client_id = generated_client_id() if durable.queue else durable.client_id
        if not client_id:
            raise UsageError(f"durable {durable.label!r} on {durable.channel!r}: the plan names no client id")
        settings = dataclasses.replace(self.settings, client_id=client_id)
        try:
            backend = await StanBackend.open(settings)
        except NatsctlError as exc:
            if "already registered" in exc.message:
                raise ConnectionFailed(
                    f"durable {durable.label!r} on {durable.channel!r}: its client {client_id!r} is connected"
                ) from None
            raise
        seen: dict[int, None] = {}
        arrived = asyncio.Event()

        subject = wire.subject_field(durable.channel)

        def on_msg(payload: bytes) -> None:
            fields = wire.read_msg(payload, subject)
            if fields is None:
                return
            sequence = fields[wire.SEQUENCE]
            if sequence <= last_sent:
                seen[sequence] = None
            arrived.set()

        request = {
            "subject": durable.channel,
            "qGroup": durable.queue or None,
            "durableName": durable.durable,
            "maxInFlight": 1,
            "ackWaitInSecs": max(1, durable.ack_wait),
            "startPosition": proto.START_POSITIONS["First"],
        }
        try:
            handle = await backend.client.subscribe(request, on_msg)
            try:
                deadline = time.monotonic() + self.settings.timeout
                while len(seen) < pending:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Timeout(
                            f"durable {durable.label!r} on {durable.channel!r}: {len(seen)} of its {pending} unacked "
                            f"messages came back within {self.settings.timeout:g}s"
                        )
                    arrived.clear()
                    try:
                        await asyncio.wait_for(arrived.wait(), left)
                    except TimeoutError:
                        continue
            finally:
                await handle.close(unsubscribe=False)
        finally:
            await backend.close()
        return DurableState(last_sent=last_sent, unacked=sorted(seen))

    async def close(self) -> None:
        await self.backend.close()


async def open_source(settings: Settings) -> StanSource:
    return await StanSource.open(settings)
