"""@kafka_consumer and @kafka_producer run by App against the real broker.

Each MessageResult is checked by what the broker contains afterwards: committed
offsets (a new consumer of the group gets nothing), redeliveries, and the
contents of <topic>.dlq.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from typing import Any

import pytest

from cello import App, KafkaConfig
from cello.messaging import Message, MessageResult, kafka_consumer, kafka_producer
from conftest import RunningApp, drain, produce, wait_for


def _app(config: KafkaConfig) -> App:
    app = App(shutdown_timeout=10)
    app.enable_messaging(config)
    return app


async def test_ack_commits(kafka_config: KafkaConfig, topic: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    @kafka_consumer(topic=topic, group=group)
    async def handle(message: Message) -> MessageResult:
        seen.append(message.text)
        return MessageResult.ACK

    await produce(kafka_config, topic, [f"m{i}" for i in range(20)])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: len(seen) >= 20, what="20 messages")
    assert sorted(seen) == sorted(f"m{i}" for i in range(20))
    assert await drain(kafka_config, topic, 1, timeout=5, group=group) == []


async def test_auto_commit_off_commits_per_batch(kafka_config: KafkaConfig, topic: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    @kafka_consumer(topic=topic, group=group, auto_commit=False)
    async def handle(message: Message) -> None:
        seen.append(message.text)

    await produce(kafka_config, topic, [f"m{i}" for i in range(10)])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: len(seen) >= 10, what="10 messages")
    assert await drain(kafka_config, topic, 1, timeout=5, group=group) == []


async def test_nack_retries_then_dead_letters(kafka_config: KafkaConfig, topic: str) -> None:
    attempts: list[tuple[str, int]] = []

    @kafka_consumer(topic=topic, max_retries=2, retry_backoff_ms=100)
    async def handle(message: Message) -> MessageResult:
        attempts.append((message.text, message.attempt))
        if message.text == "bad":
            return MessageResult.NACK
        return MessageResult.ACK

    # One key, so all three share a partition and must be handled in order.
    await produce(kafka_config, topic, ["first", "bad", "after"], key="k")
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: ("after", 1) in attempts, what="the record after the failing one")
    bad = [a for t, a in attempts if t == "bad"]
    assert bad == [1, 2, 3]
    order = [t for t, _ in attempts]
    assert order.index("after") > len(order) - 2, f"'after' ran before the retries ended: {order}"
    assert order.count("first") == 1
    assert order.count("after") == 1

    dead = await drain(kafka_config, topic + ".dlq", 1)
    assert [m.text for m in dead] == ["bad"]
    assert dead[0].key == "k"
    assert dead[0].headers["cello-dead-letter-reason"] == b"max retries exceeded"
    assert dead[0].headers["cello-original-topic"] == topic.encode()


async def test_exception_is_nack_with_reason(kafka_config: KafkaConfig, topic: str) -> None:
    calls = Counter[str]()

    @kafka_consumer(topic=topic, max_retries=1, retry_backoff_ms=50)
    def handle(message: Message) -> None:
        calls[message.text] += 1
        raise RuntimeError("boom " + message.text)

    await produce(kafka_config, topic, ["x"])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: calls["x"] >= 2, what="the retry")
        dead = await drain(kafka_config, topic + ".dlq", 1)
    assert calls["x"] == 2
    assert [m.text for m in dead] == ["x"]
    assert dead[0].headers["cello-dead-letter-reason"] == b"RuntimeError: boom x"


async def test_requeue_redelivers_at_once(kafka_config: KafkaConfig, topic: str) -> None:
    attempts: list[int] = []

    @kafka_consumer(topic=topic, retry_backoff_ms=60000)
    async def handle(message: Message) -> MessageResult:
        attempts.append(message.attempt)
        return MessageResult.REQUEUE if message.attempt == 1 else MessageResult.ACK

    await produce(kafka_config, topic, ["r"])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: attempts == [1, 2], timeout=20, what="the requeued delivery")
    assert await drain(kafka_config, topic + ".dlq", 1, timeout=3) == []


async def test_reject_drops_without_dead_letter(kafka_config: KafkaConfig, topic: str, caplog: pytest.LogCaptureFixture) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    @kafka_consumer(topic=topic, group=group)
    async def handle(message: Message) -> str:
        seen.append(message.text)
        return "reject"

    await produce(kafka_config, topic, ["poison"])
    with caplog.at_level("WARNING", logger="cello"):
        async with RunningApp(_app(kafka_config)):
            await wait_for(lambda: seen == ["poison"], what="the rejected message")
    assert await drain(kafka_config, topic, 1, timeout=5, group=group) == []
    assert await drain(kafka_config, topic + ".dlq", 1, timeout=3) == []
    assert any("rejected" in r.getMessage() and topic in r.getMessage() for r in caplog.records)


async def test_dead_letter_keeps_key_value_headers(kafka_config: KafkaConfig, topic: str) -> None:
    group = f"g-{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    @kafka_consumer(topic=topic, group=group)
    async def handle(message: Message) -> MessageResult:
        seen.append(message.text)
        return MessageResult.DEAD_LETTER

    await produce(kafka_config, topic, [{"id": 7}], key="order-7", headers={"trace": "abc"})
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: len(seen) == 1, what="the message")
    dead = await drain(kafka_config, topic + ".dlq", 1)
    assert len(dead) == 1
    assert dead[0].json() == {"id": 7}
    assert dead[0].key == "order-7"
    assert dead[0].headers["trace"] == b"abc"
    assert dead[0].headers["cello-original-topic"] == topic.encode()
    assert await drain(kafka_config, topic, 1, timeout=5, group=group) == []


async def test_explicit_ack_wins_over_return(kafka_config: KafkaConfig, topic: str) -> None:
    attempts: list[int] = []

    @kafka_consumer(topic=topic, max_retries=1, retry_backoff_ms=50)
    async def handle(message: Message) -> MessageResult:
        attempts.append(message.attempt)
        message.ack()
        return MessageResult.NACK

    await produce(kafka_config, topic, ["a"])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: attempts == [1], what="the message")
        assert await drain(kafka_config, topic + ".dlq", 1, timeout=3) == []
    assert attempts == [1]


async def test_garbage_return_is_nack(kafka_config: KafkaConfig, topic: str) -> None:
    attempts: list[int] = []

    @kafka_consumer(topic=topic, max_retries=1, retry_backoff_ms=50)
    async def handle(message: Message) -> Any:
        attempts.append(message.attempt)
        return 42

    await produce(kafka_config, topic, ["g"])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: len(attempts) >= 2, what="the retry")
        dead = await drain(kafka_config, topic + ".dlq", 1)
    assert dead[0].headers["cello-dead-letter-reason"] == b"handler returned int, not a MessageResult"


async def test_sync_handler_runs_in_thread_pool(kafka_config: KafkaConfig, topic: str) -> None:
    threads: list[str] = []

    @kafka_consumer(topic=topic)
    def handle(message: Message) -> None:
        threads.append(threading.current_thread().name)

    await produce(kafka_config, topic, ["s1", "s2"])
    async with RunningApp(_app(kafka_config)):
        await wait_for(lambda: len(threads) >= 2, what="two messages")
    assert all(name.startswith("cello-handler") for name in threads)


async def test_decorated_function_stays_callable(kafka_config: KafkaConfig, topic: str) -> None:
    @kafka_consumer(topic=topic)
    async def handle(message: Message) -> str:
        return message.text.upper()

    assert await handle(Message(value="hi")) == "HI"


async def test_producer_decorator_sync_and_async(kafka_config: KafkaConfig, topic: str) -> None:
    app = _app(kafka_config)

    @kafka_producer(topic=topic)
    def make_event(n: int) -> dict[str, int] | None:
        return {"n": n} if n else None

    @kafka_producer(topic=topic)
    async def make_event_async(n: int) -> dict[str, int]:
        return {"n": n}

    async with RunningApp(app):
        assert await asyncio.to_thread(make_event, 1) == {"n": 1}
        assert await make_event_async(2) == {"n": 2}
        assert await asyncio.to_thread(make_event, 0) is None
    # Ask for one more than expected: the None result must not have published.
    got = await drain(kafka_config, topic, 3, timeout=8)
    assert sorted(m.json()["n"] for m in got) == [1, 2]
