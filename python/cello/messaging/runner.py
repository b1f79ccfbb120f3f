"""Run a decorated consumer: poll a batch, run the handlers, settle the batch.

Deliveries of one lane (a Kafka partition, an SQS FIFO group) run in order;
lanes run concurrently, at most ``concurrency`` handlers at once. When a
handler asks for a retry, the rest of its lane in the batch is returned as
skipped, so the Go core redelivers them after the retried one.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
from concurrent.futures import Executor
from typing import Any

from .. import _wire
from .client import Consumer
from .errors import ClosedError, MessagingError
from .message import RESULT_CODES, SKIPPED_CODE, Message, MessageResult
from .registry import ConsumerSpec

_log = logging.getLogger("cello.messaging")

_RESULTS_BY_VALUE = {r.value: r for r in MessageResult}
_RETRY = (MessageResult.NACK, MessageResult.REQUEUE)


def _decide(message: Message, returned: Any, handler_name: str) -> MessageResult:
    """Turn a handler's outcome into a result; an explicit ack()/nack() wins."""
    if message._decision is not None:
        return message._decision
    if returned is None:
        return MessageResult.ACK
    if isinstance(returned, MessageResult):
        return returned
    if isinstance(returned, str) and returned in _RESULTS_BY_VALUE:
        return _RESULTS_BY_VALUE[returned]
    message._reason = f"handler returned {type(returned).__name__}, not a MessageResult"
    _log.error(
        "handler %s returned %r for message %s on %s, expected a MessageResult or None; "
        "treating it as NACK",
        handler_name,
        returned if isinstance(returned, (str, int, float, bool)) else type(returned).__name__,
        message.id,
        message.topic,
    )
    return MessageResult.NACK


class ConsumerRunner:
    """Runs one ConsumerSpec until stopped."""

    def __init__(self, spec: ConsumerSpec, consumer: Consumer, executor: Executor | None) -> None:
        self.spec = spec
        self.consumer = consumer
        self.executor = executor
        self.name = getattr(spec.handler, "__qualname__", repr(spec.handler))
        self.is_async = inspect.iscoroutinefunction(spec.handler)
        self.semaphore = asyncio.Semaphore(spec.concurrency)
        self.stopping = asyncio.Event()
        self.handled = 0

    async def run(self, poll_timeout_ms: int = 500) -> None:
        """Poll and handle batches until stop() is called.

        A failed poll or settle is logged and retried with a backoff that
        doubles up to 30 s: the broker redelivers whatever was not settled,
        so the consumer keeps going rather than taking the app down.
        """
        backoff = 0.0
        while not self.stopping.is_set():
            try:
                deliveries = await self.consumer.poll_deliveries(poll_timeout_ms, 0)
                if deliveries:
                    settlements = await self.handle_batch(deliveries)
                    await self.consumer.settle(settlements)
                backoff = 0.0
            except ClosedError:
                return
            except MessagingError as exc:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                _log.error("consumer %s failed: %s; retrying in %.1f s", self.spec.describe(), exc, backoff)
                try:
                    await asyncio.wait_for(self.stopping.wait(), backoff)
                except asyncio.TimeoutError:
                    pass

    def stop(self) -> None:
        self.stopping.set()

    async def handle_batch(self, deliveries: list[_wire.Delivery]) -> list[tuple[int, int, str]]:
        """Run the handler on every delivery and return the settlements."""
        lanes: dict[int, list[_wire.Delivery]] = {}
        for d in deliveries:
            lanes.setdefault(d.lane, []).append(d)
        results = await asyncio.gather(*(self._run_lane(lane) for lane in lanes.values()))
        return [s for lane_result in results for s in lane_result]

    async def _run_lane(self, lane: list[_wire.Delivery]) -> list[tuple[int, int, str]]:
        out = []
        for i, d in enumerate(lane):
            message = Message._from_delivery(d)
            result = await self._handle(message)
            out.append((d.token, RESULT_CODES[result], message._reason))
            self.handled += 1
            if result in _RETRY:
                out.extend((rest.token, SKIPPED_CODE, "") for rest in lane[i + 1 :])
                break
        return out

    async def _handle(self, message: Message) -> MessageResult:
        async with self.semaphore:
            try:
                if self.is_async:
                    returned = await self.spec.handler(message)
                else:
                    loop = asyncio.get_running_loop()
                    call = functools.partial(contextvars.copy_context().run, self.spec.handler, message)
                    returned = await loop.run_in_executor(self.executor, call)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing handler must not stop the consumer
                message._reason = f"{type(exc).__name__}: {exc}"[:1000]
                _log.exception(
                    "handler %s failed on message %s from %s (attempt %d)",
                    self.name,
                    message.id,
                    message.topic,
                    message.attempt,
                )
                return message._decision or MessageResult.NACK
            return _decide(message, returned, self.name)
