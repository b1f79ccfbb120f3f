"""Shared fixtures. Tests of delivery talk to the real brokers that
``scripts/brokers.sh up`` starts; a missing broker fails them, never skips."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from cello import App, KafkaConfig
from cello.messaging import Consumer, Producer
from cello.messaging.registry import registry

KAFKA = "127.0.0.1:9092"


def _require(host: str, port: int, name: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(f"{name} is not running on {host}:{port} ({exc}); start it with 'make brokers'")


@pytest.fixture
def kafka_config() -> KafkaConfig:
    _require("127.0.0.1", 9092, "Kafka")
    return KafkaConfig(brokers=KAFKA, group_id=f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def clean_registry() -> Any:
    """Give each test an empty decorator registry."""
    saved = (list(registry.consumers), dict(registry.configs), dict(registry.producers))
    registry.consumers.clear()
    registry.configs.clear()
    registry.producers.clear()
    yield
    registry.consumers[:] = saved[0]
    registry.configs.clear()
    registry.configs.update(saved[1])
    registry.producers.clear()
    registry.producers.update(saved[2])


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until predicate() is true, failing after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class RunningApp:
    """An App served on a free port inside the test's event loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningApp:
        self.task = asyncio.create_task(self.app.serve("127.0.0.1", 0, install_signal_handlers=False))
        await wait_for(lambda: self._ready(), 60, "the app to start")
        return self

    def _ready(self) -> bool:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # raises the startup error
        return self.app.started

    async def __aexit__(self, *exc: object) -> None:
        self.app.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


async def drain(config: KafkaConfig, topic: str, expected: int, timeout: float = 30.0,
                group: str | None = None) -> list[Any]:
    """Consume ``expected`` messages of ``topic`` with a fresh group and return them."""
    out: list[Any] = []
    async with Consumer.connect(config, group=group or f"drain-{uuid.uuid4().hex[:8]}") as consumer:
        await consumer.subscribe([topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < expected and loop.time() < deadline:
            batch = await consumer.poll(timeout_ms=500)
            out.extend(batch)
            if batch:
                await consumer.commit(batch)
    return out


async def produce(config: KafkaConfig, topic: str, values: list[Any], **kwargs: Any) -> None:
    async with Producer.connect(config) as producer:
        await producer.send_batch([{"topic": topic, "value": v, **kwargs} for v in values])
