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

    def describe(self) -> str:
        name = getattr(self.handler, "__qualname__", repr(self.handler))
        what = "topic" if self.broker == "kafka" else "queue"
        return f"{self.broker} {what} {', '.join(self.names)} with {name}"


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

    def producer_blocking(self, broker: str, what: str) -> Any:
        """Return the shared producer of a broker, connecting it on first use."""
        from .client import Producer

        with self.lock:
            producer = self.producers.get(broker)
            if producer is not None and not producer._closed:
                return producer
            config = self.config_for(broker, what)
            producer = Producer.connect_blocking(config)
            self.producers[broker] = producer
            return producer


registry = Registry()
