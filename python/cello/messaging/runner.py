"""Run a decorated consumer: poll a batch, run the handlers, settle the batch.

Deliveries of one lane (a Kafka partition, an SQS FIFO group) run in order;
lanes run concurrently, at most ``concurrency`` handlers at once. When a
handler requests a retry, the rest of its lane in the batch is returned as
skipped, so the Go core redelivers them after the retried one.

An SQS consumer long-polls for up to the config's ``wait_time_secs``; when
the runner is stopped during such a poll it returns at once, and closing the
consumer ends the poll and makes whatever it received visible again.
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
# The reason recorded, in the dead-letter copy and the logs, when a handler
# returns one of these results without one.
_DEFAULT_REASONS = {
    MessageResult.DEAD_LETTER: "dead-lettered by the handler",
    MessageResult.REJECT: "rejected by the handler",
}

# Poll timeout of the brokers whose poll returns as soon as messages arrive
# (Kafka, RabbitMQ); it bounds how long stop() waits for the loop.
_DEFAULT_POLL_TIMEOUT_MS = 500
# With wait_time_secs=0 every ReceiveMessage returns at once, so after an
# empty one the runner pauses this long instead of sending the next at once.
_SHORT_POLL_PAUSE_S = 1.0


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
        self.description = spec.describe(_default_queue(consumer))
        self.name = getattr(spec.handler, "__qualname__", repr(spec.handler))
        self.long_polls = spec.broker == "sqs"
        self.poll_timeout_ms = _DEFAULT_POLL_TIMEOUT_MS
        if self.long_polls:
            self.poll_timeout_ms = int(consumer.config.wait_time_secs) * 1000
        self.is_async = inspect.iscoroutinefunction(spec.handler)
        self.semaphore = asyncio.Semaphore(spec.concurrency)
        self.stopping = asyncio.Event()
        self.handled = 0

    async def run(self, poll_timeout_ms: int | None = None) -> None:
        """Poll and handle batches until stop() is called.

        ``poll_timeout_ms`` defaults to 500 ms, or to ``wait_time_secs`` for
        SQS. A failed poll or settle is logged and retried with a backoff
        that doubles up to 30 s: the broker redelivers whatever was not
        settled, so the consumer keeps going rather than taking the app down.
        """
        timeout_ms = self.poll_timeout_ms if poll_timeout_ms is None else poll_timeout_ms
        backoff = 0.0
        while not self.stopping.is_set():
            try:
                deliveries = await self._poll(timeout_ms)
                if deliveries is None:
                    return
                if deliveries:
                    settlements = await self.handle_batch(deliveries)
                    await self.consumer.settle(settlements)
                elif self.long_polls and timeout_ms < 1000:
                    await self._pause(_SHORT_POLL_PAUSE_S)
                backoff = 0.0
            except ClosedError:
                return
            except MessagingError as exc:
                backoff = min(max(backoff * 2, 0.5), 30.0)
                _log.error("consumer %s failed: %s; retrying in %.1f s", self.description, exc, backoff)
                await self._pause(backoff)

    async def _poll(self, timeout_ms: int) -> list[_wire.Delivery] | None:
        """Poll once; None means stop() was called during a long poll."""
        poll = self.consumer.poll_deliveries(timeout_ms, 0)
        if not self.long_polls:
            return await poll
        stopped = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if poll.done():
            return poll.result()
        # Closing the consumer ends this poll; its outcome is not needed.
        poll.add_done_callback(_discard_outcome)
        return None

    async def _pause(self, seconds: float) -> None:
        """Wait for ``seconds``, or less if stop() is called meanwhile."""
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
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
            if not message._reason and result in _DEFAULT_REASONS:
                message._reason = _DEFAULT_REASONS[result]
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


def _default_queue(consumer: Consumer) -> str | None:
    """Return the SQS config's queue_url, which an empty subscription reads."""
    if consumer.broker != "sqs":
        return None
    return str(consumer.config.queue_url)


def _discard_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
