"""Decorators that register consumers and publish handlers' return values."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any, Callable, TypeVar

from .errors import ConfigurationError
from .registry import ConsumerSpec, registry

__all__ = [
    "kafka_consumer",
    "kafka_producer",
    "rabbitmq_consumer",
    "rabbitmq_producer",
    "sqs_consumer",
    "sqs_producer",
]

F = TypeVar("F", bound=Callable[..., Any])


def _check_name(value: Any, what: str, decorator: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"@{decorator}: {what} must be a non-empty str, got {value!r}")
    return value


def _check_int(value: Any, what: str, decorator: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigurationError(f"@{decorator}: {what} must be an int from {low} to {high}, got {value!r}")
    return value


def _register(broker: str, decorator: str, names: list[str], options: dict[str, Any], concurrency: int) -> Callable[[F], F]:
    _check_int(concurrency, "concurrency", decorator, 1, 10000)
    if "max_retries" in options:
        _check_int(options["max_retries"], "max_retries", decorator, 0, 1000)
    if "retry_backoff_ms" in options:
        _check_int(options["retry_backoff_ms"], "retry_backoff_ms", decorator, 0, 3_600_000)

    def decorate(func: F) -> F:
        if not callable(func):
            raise ConfigurationError(f"@{decorator} must decorate a function, got {type(func).__name__}")
        opts = {k: v for k, v in options.items() if v is not None}
        registry.consumers.append(ConsumerSpec(broker, func, names, opts, concurrency))
        return func

    return decorate


def kafka_consumer(
    topic: str,
    group: str = "default",
    auto_commit: bool = True,
    *,
    max_retries: int = 3,
    retry_backoff_ms: int = 500,
    dead_letter_topic: str | None = None,
    concurrency: int = 1,
) -> Callable[[F], F]:
    """Register an async or sync handler for a Kafka topic.

    The handler gets a ``Message`` and returns a ``MessageResult`` (None
    means ACK; an exception means NACK). Records of one partition are
    handled in order; ``concurrency`` bounds handlers running at once
    across partitions. After ``max_retries`` failed retries a record goes to
    ``dead_letter_topic`` (default ``<topic>.dlq``). The function stays
    callable directly.
    """
    _check_name(topic, "topic", "kafka_consumer")
    _check_name(group, "group", "kafka_consumer")
    if not isinstance(auto_commit, bool):
        raise ConfigurationError(f"@kafka_consumer: auto_commit must be True or False, got {auto_commit!r}")
    options = {
        "group": group,
        "auto_commit": auto_commit,
        "max_retries": max_retries,
        "retry_backoff_ms": retry_backoff_ms,
        "dead_letter": dead_letter_topic,
    }
    return _register("kafka", "kafka_consumer", [topic], options, concurrency)


def rabbitmq_consumer(
    queue: str,
    exchange: str | None = None,
    routing_key: str | None = None,
    *,
    exchange_type: str = "topic",
    prefetch_count: int | None = None,
    max_retries: int = 3,
    retry_backoff_ms: int = 500,
    dead_letter_queue: str | None = None,
    concurrency: int = 10,
) -> Callable[[F], F]:
    """Register an async or sync handler for a RabbitMQ queue.

    The queue is declared durable, with ``<queue>.dlq`` beside it (or
    ``dead_letter_queue``). With ``exchange``, the exchange is declared
    durable as ``exchange_type`` and the queue is bound to it with
    ``routing_key`` (default: the queue's name). ``prefetch_count``
    overrides the config's; up to ``concurrency`` handlers run at once.
    """
    _check_name(queue, "queue", "rabbitmq_consumer")
    if exchange is not None:
        _check_name(exchange, "exchange", "rabbitmq_consumer")
    if routing_key is not None and not isinstance(routing_key, str):
        raise ConfigurationError(f"@rabbitmq_consumer: routing_key must be a str, got {routing_key!r}")
    if routing_key is not None and exchange is None:
        raise ConfigurationError("@rabbitmq_consumer: routing_key needs an exchange to bind the queue to")
    if exchange_type not in ("direct", "topic", "fanout", "headers"):
        raise ConfigurationError(
            f"@rabbitmq_consumer: exchange_type must be direct, topic, fanout or headers, got {exchange_type!r}"
        )
    if prefetch_count is not None:
        _check_int(prefetch_count, "prefetch_count", "rabbitmq_consumer", 1, 65535)
    options = {
        "prefetch_count": prefetch_count,
        "max_retries": max_retries,
        "retry_backoff_ms": retry_backoff_ms,
        "dead_letter": dead_letter_queue,
        "exchange": exchange,
        "exchange_type": exchange_type if exchange else None,
        "routing_key": routing_key,
    }
    return _register("rabbitmq", "rabbitmq_consumer", [queue], options, concurrency)


def sqs_consumer(
    queue_url: str | None = None,
    *,
    max_retries: int = 3,
    retry_backoff_ms: int = 1000,
    visibility_timeout_secs: int | None = None,
    dead_letter_queue_url: str | None = None,
    concurrency: int = 10,
) -> Callable[[F], F]:
    """Register an async or sync handler for an SQS queue.

    ``queue_url`` is a queue URL or name; None means the ``queue_url`` of
    the SqsConfig given to ``app.enable_sqs``. A received message stays
    hidden for ``visibility_timeout_secs`` (default: the config's), extended
    while its handler runs. A NACK hides it again for a backoff that doubles
    from ``retry_backoff_ms`` (rounded up to whole seconds, as SQS counts).
    After ``max_retries`` retries, counted by SQS's receive count, the next
    NACK or REQUEUE sends it to ``dead_letter_queue_url`` (default: the
    config's ``dead_letter_queue_url``, else a queue named ``<queue>-dlq``,
    created if missing). Messages of one FIFO message group are handled in
    order.
    """
    if queue_url is not None:
        _check_name(queue_url, "queue_url", "sqs_consumer")
    if visibility_timeout_secs is not None:
        _check_int(visibility_timeout_secs, "visibility_timeout_secs", "sqs_consumer", 1, 43200)
    if dead_letter_queue_url is not None:
        _check_name(dead_letter_queue_url, "dead_letter_queue_url", "sqs_consumer")
    options = {
        "max_retries": max_retries,
        "retry_backoff_ms": retry_backoff_ms,
        "visibility_timeout_secs": visibility_timeout_secs,
        "dead_letter": dead_letter_queue_url,
    }
    return _register("sqs", "sqs_consumer", [queue_url] if queue_url else [], options, concurrency)


def _producer(broker: str, decorator: str, destination: str, key: Any = None,
              exchange: str | None = None) -> Callable[[F], F]:
    def decorate(func: F) -> F:
        if not callable(func):
            raise ConfigurationError(f"@{decorator} must decorate a function, got {type(func).__name__}")
        what = f"@{decorator} on {getattr(func, '__qualname__', func)!r}"

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def publish_async(*args: Any, **kwargs: Any) -> Any:
                result = await func(*args, **kwargs)
                if result is not None:
                    producer = await _async_producer(broker, what, exchange)
                    await producer.send(destination, _payload(result), key=key)
                return result

            return publish_async  # type: ignore[return-value]

        @functools.wraps(func)
        def publish(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            if result is not None:
                producer = registry.producer_blocking(broker, what, exchange)
                producer.send_blocking(destination, _payload(result), key=key)
            return result

        return publish  # type: ignore[return-value]

    return decorate


def _payload(result: Any) -> Any:
    # An HTTP handler may return (body, status); publish the body.
    if isinstance(result, tuple) and len(result) in (2, 3) and isinstance(result[1], int):
        return result[0]
    return result


async def _async_producer(broker: str, what: str, exchange: str | None = None) -> Any:
    producer = registry.producers.get(registry.producer_key(broker, exchange))
    if producer is not None and not producer._closed:
        return producer
    return await asyncio.get_running_loop().run_in_executor(
        None, registry.producer_blocking, broker, what, exchange
    )


def kafka_producer(topic: str, *, key: str | bytes | None = None) -> Callable[[F], F]:
    """Publish the function's return value to a Kafka topic, then return it.

    Works on sync and async functions; a None result publishes nothing. The
    message is acknowledged by the broker before the function returns.
    """
    _check_name(topic, "topic", "kafka_producer")
    return _producer("kafka", "kafka_producer", topic, key)


def rabbitmq_producer(
    queue: str | None = None,
    *,
    exchange: str | None = None,
    routing_key: str | None = None,
    key: str | bytes | None = None,
) -> Callable[[F], F]:
    """Publish the function's return value to RabbitMQ, then return it.

    Give a ``queue`` to publish through the default exchange, or an
    ``exchange`` and a ``routing_key``. The broker confirms each message
    before the function returns; a message that reaches no queue raises
    NotFoundError.
    """
    if exchange is None:
        _check_name(queue, "queue", "rabbitmq_producer")
        return _producer("rabbitmq", "rabbitmq_producer", queue, key)  # type: ignore[arg-type]
    _check_name(exchange, "exchange", "rabbitmq_producer")
    destination = routing_key if routing_key is not None else queue
    if not isinstance(destination, str):
        raise ConfigurationError("@rabbitmq_producer: with an exchange, give a routing_key (or a queue name)")
    return _producer("rabbitmq", "rabbitmq_producer", destination, key, exchange=exchange)


def sqs_producer(queue_url: str, *, key: str | bytes | None = None) -> Callable[[F], F]:
    """Publish the function's return value to an SQS queue (name or URL), then return it.

    ``key`` travels as the ``cello-key`` attribute and, on a FIFO queue, is
    the message group.
    """
    _check_name(queue_url, "queue_url", "sqs_producer")
    return _producer("sqs", "sqs_producer", queue_url, key)
