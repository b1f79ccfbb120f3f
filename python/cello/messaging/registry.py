"""The decorators' registry: consumers to run and the configs to run them with.

Decorators only register; ``App.run()`` (or ``App.serve()``) connects.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import BrokerConfig
from .errors import ConfigurationError


@dataclass
class ConsumerSpec:
    """One decorated consumer handler and its subscription."""

    broker: str
    handler: Callable[..., Any]
    names: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    concurrency: int = 1

    def describe(self, default_queue: str | None = None) -> str:
        """Return a one-line description of the subscription for logs.

        ``default_queue`` replaces an empty list of names, which subscribes
        to the SQS config's queue_url.
        """
        name = getattr(self.handler, "__qualname__", repr(self.handler))
        what = "topic" if self.broker == "kafka" else "queue"
        names = self.names or [default_queue or "queue_url of the SqsConfig"]
        return f"{self.broker} {what} {', '.join(names)} with {name}"


class Registry:
    """Registered consumers, enabled configs and the shared producers."""

    def __init__(self) -> None:
        self.consumers: list[ConsumerSpec] = []
        self.configs: dict[str, BrokerConfig] = {}
        self.producers: dict[str, Any] = {}
        self.lock = threading.Lock()

    def config_for(self, broker: str, what: str) -> BrokerConfig:
        config = self.configs.get(broker)
        if config is None:
            enable = {"kafka": "enable_messaging(KafkaConfig(...))",
                      "rabbitmq": "enable_rabbitmq(RabbitMQConfig(...))",
                      "sqs": "enable_sqs(SqsConfig(...))"}[broker]
            raise ConfigurationError(f"{what} needs a {broker} config; call app.{enable} first", broker=broker)
        return config

    @staticmethod
    def producer_key(broker: str, exchange: str | None = None) -> str:
        """Name a shared producer: one per broker, and one per RabbitMQ exchange."""
        return f"{broker}:{exchange}" if exchange else broker

    def producer_blocking(self, broker: str, what: str, exchange: str | None = None) -> Any:
        """Return a shared producer, connecting it on first use.

        ``exchange`` (RabbitMQ) selects a producer that publishes to that
        exchange instead of the config's.
        """
        from .client import Producer

        key = self.producer_key(broker, exchange)
        with self.lock:
            producer = self.producers.get(key)
            if producer is not None and not producer._closed:
                return producer
            config = self.config_for(broker, what)
            if exchange:
                config = config.replace(exchange=exchange)
            producer = Producer.connect_blocking(config)
            self.producers[key] = producer
            return producer


registry = Registry()
