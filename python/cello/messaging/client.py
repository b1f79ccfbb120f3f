"""Manual ``Producer`` and ``Consumer`` for every broker.

Both are opened with ``await X.connect(config)`` (or ``async with
X.connect(config) as x``) and closed with ``await x.close()``, which is safe
to call twice. Every broker call runs in the Go core; these classes only
encode arguments, await the completion and decode the result.
"""

from __future__ import annotations

import asyncio
import logging
import warnings
import weakref
from typing import Any, Awaitable, Generator, Generic, Iterable, Mapping, NamedTuple, Sequence, TypeVar

from .. import _native, _wire
from .config import BrokerConfig
from .errors import ClosedError, ConfigurationError, MessagingError
from .message import RESULT_CODES, Message, MessageResult, encode_headers, encode_key, encode_value

__all__ = ["Producer", "Consumer", "SendResult"]

_log = logging.getLogger("cello.messaging")

# Margin added to the broker-side timeout of a call, so the broker reports
# its own timeout (with its reason) before the Go call's deadline fires.
_DEADLINE_MARGIN_MS = 5000
# The maximum poll timeout: one hour.
_MAX_POLL_MS = 3_600_000
# Bound on close(): flushing or committing longer than this gives up.
DEFAULT_CLOSE_TIMEOUT_MS = 30000
# The header that carries an SQS FIFO message's deduplication id to the Go
# core, which sends it as the MessageDeduplicationId, not as an attribute.
_DEDUPLICATION_HEADER = "cello-deduplication-id"
_BATCH_FIELDS = {"topic", "queue", "value", "key", "headers", "deduplication_id"}

T = TypeVar("T")


class SendResult(NamedTuple):
    """The broker's acknowledgement of one sent message.

    ``topic`` is the destination as given to ``send``. On Kafka,
    ``message_id`` is "topic-partition-offset", the id a consumer sees as
    ``Message.id``. On SQS, it is the MessageId that SQS assigned, and
    ``partition`` and ``offset`` are 0 because SQS has neither.
    """

    topic: str
    partition: int
    offset: int
    message_id: str
    error: MessagingError | None = None


class _Connecting(Generic[T]):
    """The result of ``connect()``: await it, or use it with ``async with``."""

    def __init__(self, opener: Awaitable[T]) -> None:
        self._opener = opener
        self._client: Any = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._opener.__await__()

    async def __aenter__(self) -> T:
        self._client = await self._opener
        return self._client  # type: ignore[no-any-return]

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()


def _check_config(config: Any, what: str) -> BrokerConfig:
    if not isinstance(config, BrokerConfig):
        raise ConfigurationError(
            f"{what} needs a KafkaConfig, RabbitMQConfig or SqsConfig, got {type(config).__name__}"
        )
    return config


def _check_name_encodes(name: str, what: str, broker: str) -> None:
    """Raise ConfigurationError for a topic or queue name that is not valid UTF-8 text."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigurationError(
            f"{what} name {name!r} cannot be encoded as UTF-8: it has a lone surrogate at index {exc.start}; "
            "pass valid text",
            broker=broker,
        ) from None


def _close_quietly(lib: Any, export: str, handle: int, broker: str) -> None:
    """Finalizer: close a handle that its owner forgot to close."""
    try:
        lib.start_blocking(export, handle, 1000, broker=broker)
    except Exception:  # noqa: BLE001 - finalizers must not raise; the process may be ending
        pass


class Producer:
    """Publishes messages and returns once the broker acknowledged them."""

    def __init__(self, config: BrokerConfig, handle: int) -> None:
        self.config = config
        self.broker = config.broker
        self._handle = handle
        self._lib = _native.library()
        self._closed = False
        self._send_timeout_ms = _send_timeout(config)
        self._finalizer = weakref.finalize(
            self, _close_quietly, self._lib, "cello_producer_close", handle, self.broker
        )

    @classmethod
    def connect(cls, config: BrokerConfig, *, timeout_ms: int | None = None) -> _Connecting[Producer]:
        """Open a producer and check that the broker responds."""
        return _Connecting(cls._open(_check_config(config, "Producer.connect"), timeout_ms))

    @classmethod
    async def _open(cls, config: BrokerConfig, timeout_ms: int | None) -> Producer:
        lib = _native.library()
        deadline = timeout_ms or _connect_timeout(config) + _DEADLINE_MARGIN_MS
        payload = await lib.start(
            "cello_producer_open", config.handle, deadline, broker=config.broker
        )
        return cls(config, int.from_bytes(payload, "little"))

    @classmethod
    def connect_blocking(cls, config: BrokerConfig, *, timeout_ms: int | None = None) -> Producer:
        """Open a producer from synchronous code, even inside a running event loop."""
        config = _check_config(config, "Producer.connect_blocking")
        lib = _native.library()
        deadline = timeout_ms or _connect_timeout(config) + _DEADLINE_MARGIN_MS
        future = lib.start_blocking("cello_producer_open", config.handle, deadline, broker=config.broker)
        return cls(config, int.from_bytes(future.result(), "little"))

    def _encode(self, messages: Iterable[Mapping[str, Any]]) -> tuple[list[str], bytes, int]:
        # Plain dicts of a non-empty str topic and a bytes or str value, the
        # usual batch, skip the general checks. Each is written as the
        # topic's cached prefix, the value's length and the value.
        out = [b""]
        topics: list[str] = []
        append = out.append
        length = _wire.bytes_length
        last_topic = None
        prefix = b""
        for i, m in enumerate(messages):
            if type(m) is dict and len(m) == 2:
                topic = m.get("topic")
                value = m.get("value")
                kind = type(value)
                if type(topic) is str and topic and (kind is bytes or kind is str):
                    try:
                        if topic != last_topic:
                            prefix = _wire.str_bytes(topic) + _wire.NO_BYTES
                            last_topic = topic
                        if kind is str:
                            value = value.encode("utf-8")
                    except UnicodeEncodeError:
                        pass  # a lone surrogate: the general path raises the error that names the item
                    else:
                        append(prefix + length(len(value)))
                        append(value)
                        append(_wire.NO_HEADERS)
                        topics.append(topic)
                        continue
            message = self._item(i, m)
            _wire.put_outgoing(out, message)
            topics.append(message.destination)
        out[0] = _wire.count(len(topics))
        return topics, b"".join(out), len(topics)

    def _item(self, i: int, m: Any) -> _wire.OutMessage:
        if not isinstance(m, Mapping):
            raise ConfigurationError(
                f"send_batch item {i} must be a dict with 'topic' and 'value', got {type(m).__name__}"
            )
        unknown = set(m) - _BATCH_FIELDS
        if unknown:
            raise ConfigurationError(
                f"send_batch item {i} has unknown field(s) {sorted(unknown)}; "
                "expected topic (or queue), value, key, headers, deduplication_id"
            )
        destination = m.get("topic", m.get("queue"))
        return self._message(
            destination, m.get("value"), m.get("key"), m.get("headers"), f"item {i}", m.get("deduplication_id")
        )

    def _message(
        self, destination: Any, value: Any, key: Any, headers: Any, where: str, deduplication_id: Any = None
    ) -> _wire.OutMessage:
        if not isinstance(destination, str) or (not destination and self.broker != "sqs"):
            raise ConfigurationError(
                f"{where}: topic must be a non-empty str, got {destination!r}", broker=self.broker
            )
        _check_name_encodes(destination, f"{where}: topic", self.broker)
        encoded_headers = encode_headers(headers)
        if deduplication_id is not None:
            encoded_headers.append(self._deduplication_header(deduplication_id, encoded_headers, where))
        return _wire.OutMessage(
            destination,
            encode_key(key),
            encode_value(value, f"{where} value"),  # type: ignore[arg-type]
            encoded_headers,
        )

    def _deduplication_header(self, value: Any, headers: list[tuple[str, bytes]], where: str) -> tuple[str, bytes]:
        if self.broker != "sqs":
            raise ConfigurationError(
                f"{where}: deduplication_id applies to SQS FIFO queues only, not to {self.broker}",
                broker=self.broker,
            )
        if not isinstance(value, str) or not value:
            raise ConfigurationError(
                f"{where}: deduplication_id must be a non-empty str, got {value!r}", broker=self.broker
            )
        if any(name == _DEDUPLICATION_HEADER for name, _ in headers):
            raise ConfigurationError(
                f"{where}: pass the deduplication id once, as deduplication_id or as the "
                f"{_DEDUPLICATION_HEADER} header, not both",
                broker=self.broker,
            )
        return (_DEDUPLICATION_HEADER, value.encode("utf-8"))

    async def send(
        self,
        topic: str,
        value: Any,
        key: str | bytes | None = None,
        headers: Mapping[str, str | bytes] | None = None,
        *,
        deduplication_id: str | None = None,
    ) -> SendResult:
        """Send one message and return once the broker acknowledged it.

        ``topic`` is a Kafka topic, a RabbitMQ routing key or an SQS queue
        name or URL. dict and list values are sent as JSON, str as UTF-8
        and bytes unchanged. On SQS, headers travel as message attributes;
        on a FIFO queue ``key`` is the message group and
        ``deduplication_id`` the MessageDeduplicationId (without one, no
        message is dropped as a duplicate).
        """
        self._check_open()
        buf = _wire.encode_outgoing([self._message(topic, value, key, headers, "send", deduplication_id)])
        (result,) = await self._send(buf, [topic])
        if result.error is not None:
            raise result.error
        return result

    async def send_batch(self, messages: Sequence[Mapping[str, Any]]) -> list[SendResult]:
        """Send many messages at once and return when all were acknowledged.

        Each item is a dict with ``topic`` (``queue`` also works) and
        ``value`` and optionally ``key``, ``headers`` and, for SQS FIFO
        queues, ``deduplication_id``. SQS messages go in SendMessageBatch
        calls of up to 10 per queue. If any message fails, the error of the
        first failure is raised with ``results`` set to every message's
        SendResult, so the caller can resend the failed ones.
        """
        self._check_open()
        topics, buf, n = self._encode(messages)
        if n == 0:
            return []
        results = await self._send(buf, topics)
        failed = [r.error for r in results if r.error is not None]
        if failed:
            first = failed[0]
            err = type(first)(
                f"{len(failed)} of {len(results)} messages failed; first: {first}",
                broker=self.broker,
                code=first.code,
            )
            err.results = results  # type: ignore[attr-defined]
            raise err from first
        return results

    def _send(self, buf: bytes, topics: list[str]) -> asyncio.Future[list[SendResult]]:
        return self._lib.start(
            "cello_producer_send",
            self._handle,
            buf,
            len(buf),
            self._send_timeout_ms + _DEADLINE_MARGIN_MS,
            broker=self.broker,
            decode=lambda payload: self._results(payload, topics),
        )

    def send_blocking(
        self, topic: str, value: Any, key: Any = None, headers: Any = None, *, deduplication_id: str | None = None
    ) -> SendResult:
        """Send one message from synchronous code and wait for the acknowledgement."""
        self._check_open()
        buf = _wire.encode_outgoing([self._message(topic, value, key, headers, "send", deduplication_id)])
        future = self._lib.start_blocking(
            "cello_producer_send",
            self._handle,
            buf,
            len(buf),
            self._send_timeout_ms + _DEADLINE_MARGIN_MS,
            broker=self.broker,
            decode=lambda payload: self._results(payload, [topic]),
        )
        (result,) = future.result()
        if result.error is not None:
            raise result.error
        return result

    def _results(self, payload: bytes, topics: list[str]) -> list[SendResult]:
        decoded = _wire.decode_send_results(payload)
        new = tuple.__new__
        out = [
            new(SendResult, (topic, partition, offset, id_, None))
            for topic, (_, partition, offset), id_ in zip(topics, decoded.fixed, decoded.ids)
        ]
        for i, message in decoded.errors.items():
            code, partition, offset = decoded.fixed[i]
            error = _native.error_for(code, message, self.broker)
            out[i] = SendResult(topics[i], partition, offset, decoded.ids[i], error)
        return out

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self.broker} producer is closed; connect a new one", broker=self.broker)

    async def close(self, timeout_ms: int = DEFAULT_CLOSE_TIMEOUT_MS) -> None:
        """Wait for unsent messages (up to ``timeout_ms``) and disconnect."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        await self._lib.start("cello_producer_close", self._handle, timeout_ms, broker=self.broker)

    async def __aenter__(self) -> Producer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self.broker} producer was never closed; call 'await producer.close()'",
                ResourceWarning,
                stacklevel=1,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Producer {self.broker} {state} {self.config!r}>"


def _send_timeout(config: BrokerConfig) -> int:
    """Return the config's bound on one send: send_timeout_ms, or SQS's request_timeout_ms."""
    for name in ("send_timeout_ms", "request_timeout_ms"):
        try:
            value = getattr(config, name)
        except AttributeError:
            continue
        if isinstance(value, int) and value > 0:
            return value
    return 30000


def _connect_timeout(config: BrokerConfig) -> int:
    for name in ("connect_timeout_ms", "connection_timeout_ms", "request_timeout_ms"):
        try:
            value = getattr(config, name)
        except AttributeError:
            continue
        if isinstance(value, int):
            return value
    return 10000


class Consumer:
    """Receives messages in batches; ``commit(msg)`` acknowledges them.

    Messages are redelivered until committed or acknowledged, so a crash
    loses nothing that was not committed.
    """

    def __init__(self, config: BrokerConfig, handle: int, options: Mapping[str, Any]) -> None:
        self.config = config
        self.broker = config.broker
        self._handle = handle
        self._lib = _native.library()
        self._closed = False
        self._options = dict(options)
        self._inflight_poll: asyncio.Future[list[_wire.Delivery]] | None = None
        # Whether a poll() awaits _inflight_poll, which then belongs to it.
        self._poll_waiting = False
        # On Kafka, poll() starts the next poll before it returns, so the Go
        # core fetches the next batch while the caller handles and commits
        # this one. _prefetch is that poll until a poll() takes it over.
        self._prefetch: asyncio.Future[list[_wire.Delivery]] | None = None
        # Deliveries beyond a poll's max_records, returned by the next poll.
        self._surplus: list[_wire.Delivery] = []
        self._finalizer = weakref.finalize(
            self, _close_quietly, self._lib, "cello_consumer_close", handle, self.broker
        )

    @classmethod
    def connect(
        cls,
        config: BrokerConfig,
        *,
        group: str | None = None,
        auto_commit: bool | None = None,
        max_retries: int = 3,
        retry_backoff_ms: int = 500,
        max_retry_backoff_ms: int = 30000,
        dead_letter: str | None = None,
        prefetch_count: int | None = None,
        exchange: str | None = None,
        exchange_type: str | None = None,
        routing_key: str | None = None,
        visibility_timeout_secs: int | None = None,
        timeout_ms: int | None = None,
    ) -> _Connecting[Consumer]:
        """Open a consumer and check that the broker responds.

        ``group`` and ``auto_commit`` override the config's (Kafka);
        ``max_retries`` and the backoff decide how nacked messages are
        retried before they go to the dead-letter destination. On RabbitMQ,
        ``exchange`` binds each subscribed queue to that exchange with
        ``routing_key`` (default: the queue's name).
        """
        options = {
            "group": group,
            "auto_commit": auto_commit,
            "max_retries": max_retries,
            "retry_backoff_ms": retry_backoff_ms,
            "max_retry_backoff_ms": max_retry_backoff_ms,
            "dead_letter": dead_letter,
            "prefetch_count": prefetch_count,
            "exchange": exchange,
            "exchange_type": exchange_type,
            "routing_key": routing_key,
            "visibility_timeout_secs": visibility_timeout_secs,
        }
        options = {k: v for k, v in options.items() if v is not None}
        return _Connecting(cls._open(_check_config(config, "Consumer.connect"), options, timeout_ms))

    @classmethod
    async def _open(cls, config: BrokerConfig, options: dict[str, Any], timeout_ms: int | None) -> Consumer:
        import json

        lib = _native.library()
        data = json.dumps(options).encode("utf-8")
        deadline = timeout_ms or _connect_timeout(config) + _DEADLINE_MARGIN_MS
        payload = await lib.start(
            "cello_consumer_open", config.handle, data, len(data), deadline, broker=config.broker
        )
        return cls(config, int.from_bytes(payload, "little"), options)

    async def subscribe(self, topics: Sequence[str] | str) -> None:
        """Subscribe to topics (Kafka) or queues (RabbitMQ, SQS)."""
        self._check_open()
        names = [topics] if isinstance(topics, str) else list(topics)
        bad = [t for t in names if not isinstance(t, str)]
        if bad or (not names and self.broker != "sqs"):
            raise ConfigurationError(
                f"subscribe needs a list of topic or queue names as str, got {topics!r}", broker=self.broker
            )
        for name in names:
            _check_name_encodes(name, "subscribe", self.broker)
        buf = _wire.encode_strings(names)
        await self._lib.start(
            "cello_consumer_subscribe", self._handle, buf, len(buf), 60000, broker=self.broker
        )

    async def poll(self, timeout_ms: int = 1000, max_records: int | None = None) -> list[Message]:
        """Wait up to ``timeout_ms`` for messages and return those that arrived.

        Returns at most ``max_records`` (default: the config's
        ``max_poll_records``, or ``max_messages`` for SQS); an empty list
        means none arrived in time.
        """
        self._check_open()
        if not isinstance(timeout_ms, int) or isinstance(timeout_ms, bool) or not 0 <= timeout_ms <= _MAX_POLL_MS:
            raise ConfigurationError(f"poll timeout_ms must be an int from 0 to {_MAX_POLL_MS}, got {timeout_ms!r}")
        if max_records is not None and (
            not isinstance(max_records, int) or isinstance(max_records, bool) or max_records < 1
        ):
            raise ConfigurationError(f"poll max_records must be an int >= 1 or None, got {max_records!r}")
        deliveries = await self._take_deliveries(timeout_ms, max_records)
        messages = [Message._from_delivery(d) for d in deliveries]
        for m in messages:
            m._settler = self._settle_one
            m._owner = self._handle
        return messages

    async def _take_deliveries(self, timeout_ms: int, max_records: int | None) -> list[_wire.Delivery]:
        if self._surplus:
            deliveries = self._surplus[: max_records or len(self._surplus)]
            del self._surplus[: len(deliveries)]
            return deliveries

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        # The Go poll goes on if this await is cancelled, by a wait_for
        # timeout for example. Its deliveries are kept for the next poll,
        # because nothing could settle them otherwise. A poll() that starts
        # while another one waits lets that one take the deliveries, then
        # polls again, so concurrent callers never get the same message.
        while True:
            inflight = self._inflight_poll
            if inflight is None:
                remaining_ms = max(0, round((deadline - loop.time()) * 1000))
                inflight = self._inflight_poll = self.poll_deliveries(remaining_ms, max_records or 0)
            elif self._poll_waiting:
                await asyncio.wait([inflight])
                self._check_open()
                continue
            prefetched = inflight is self._prefetch
            self._poll_waiting = True
            try:
                if prefetched and not inflight.done():
                    # Started by the previous poll() with that call's
                    # timeout: wait no longer than this call's.
                    await asyncio.wait([inflight], timeout=max(0.0, deadline - loop.time()))
                    if not inflight.done():
                        return []
                deliveries = await asyncio.shield(inflight)
            finally:
                self._poll_waiting = False
                if inflight.done() and self._inflight_poll is inflight:
                    self._inflight_poll = None
                    self._prefetch = None
            if not deliveries and prefetched and loop.time() < deadline:
                continue  # it ended before this call began: poll for the rest of its timeout
            break

        if max_records is not None and len(deliveries) > max_records:
            self._surplus = deliveries[max_records:]
            deliveries = deliveries[:max_records]

        if deliveries and self.broker == "kafka" and self._inflight_poll is None and not self._surplus:
            self._prefetch = self._inflight_poll = self.poll_deliveries(timeout_ms, max_records or 0)
            # Close() may end it with ClosedError that no poll() awaits.
            self._prefetch.add_done_callback(_retrieve_outcome)
        return deliveries

    def poll_deliveries(self, timeout_ms: int, max_records: int) -> asyncio.Future[list[_wire.Delivery]]:
        """Poll and return the raw deliveries; the decorator runner uses this."""
        return self._lib.start(
            "cello_consumer_poll",
            self._handle,
            timeout_ms,
            max_records,
            broker=self.broker,
            decode=_wire.decode_deliveries,
        )

    async def commit(self, message: Message | Sequence[Message]) -> None:
        """Acknowledge messages and, on Kafka, commit their offsets synchronously."""
        self._check_open()
        if not isinstance(message, (Message, list, tuple)):
            raise ConfigurationError(
                f"commit needs a Message or a list of them from this consumer's poll(), got {type(message).__name__}",
                broker=self.broker,
            )
        messages = [message] if isinstance(message, Message) else list(message)
        for m in messages:
            # A token names a delivery of one consumer only, so another
            # consumer's message would settle an unrelated delivery here.
            if not isinstance(m, Message) or not m._token or m._owner != self._handle:
                raise ConfigurationError(
                    f"commit needs messages returned by this consumer's poll(), got {m!r}", broker=self.broker
                )
        for m in messages:
            m._settler = None
        buf = _wire.encode_tokens([m._token for m in messages])
        await self._lib.start("cello_consumer_commit", self._handle, buf, len(buf), 60000, broker=self.broker)

    def settle(self, items: Sequence[tuple[int, int, str]]) -> asyncio.Future[Any]:
        """Apply results (token, result code, reason) to deliveries."""
        self._check_open()
        buf = _wire.encode_settlements(items)
        return self._lib.start("cello_consumer_settle", self._handle, buf, len(buf), 60000, broker=self.broker)

    def _settle_one(self, message: Message, result: MessageResult) -> None:
        """Apply ack() or nack() of a polled message without waiting."""
        if self._closed:
            return
        buf = _wire.encode_settlements([(message._token, RESULT_CODES[result], message._reason)])
        future = self._lib.start_blocking(
            "cello_consumer_settle", self._handle, buf, len(buf), 60000, broker=self.broker
        )
        future.add_done_callback(_log_settle_failure)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"{self.broker} consumer is closed; connect a new one", broker=self.broker)

    async def close(self, timeout_ms: int = DEFAULT_CLOSE_TIMEOUT_MS) -> None:
        """Commit what was acknowledged, leave the group and disconnect."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        await self._lib.start("cello_consumer_close", self._handle, timeout_ms, broker=self.broker)

    async def __aenter__(self) -> Consumer:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(
                f"{self.broker} consumer was never closed; call 'await consumer.close()'",
                ResourceWarning,
                stacklevel=1,
            )

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Consumer {self.broker} {state} {self.config!r}>"


def _retrieve_outcome(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen, so asyncio does not report it unread."""
    if not future.cancelled():
        future.exception()


def _log_settle_failure(future: Any) -> None:
    exc = future.exception()
    if exc is not None:
        _log.error("settling a message failed: %s", exc)
