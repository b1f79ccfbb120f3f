"""RabbitMQ through the Go core, against the real broker on 127.0.0.1:5672."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from cello import App, RabbitMQConfig
from cello.messaging import (
    ConfigurationError,
    Consumer,
    Message,
    MessageResult,
    NotFoundError,
    Producer,
    rabbitmq_consumer,
    rabbitmq_producer,
)
from conftest import RunningApp, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def rabbit_config() -> RabbitMQConfig:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not running on 127.0.0.1:5672 ({exc}); start it with 'make brokers'")
    return RabbitMQConfig.local(url="amqp://guest:guest@127.0.0.1:5672")


@pytest.fixture
def queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


async def declare(config: RabbitMQConfig, *queues: str) -> None:
    """Declare queues (subscribing declares them durable), so publishes are routed."""
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe(list(queues))


async def take(config: RabbitMQConfig, queue: str, expected: int, timeout: float = 20.0) -> list[Message]:
    """Consume and acknowledge up to ``expected`` messages of ``queue``."""
    out: list[Message] = []
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe([queue])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < expected and loop.time() < deadline:
            batch = await consumer.poll(timeout_ms=300)
            if batch:
                await consumer.commit(batch)
                out.extend(batch)
    return out


def _app(config: RabbitMQConfig) -> App:
    app = App(shutdown_timeout=10)
    app.enable_rabbitmq(config)
    return app


def test_spec_config_example() -> None:
    config = RabbitMQConfig(
        url="amqp://guest:guest@localhost:5672/",
        vhost="/",
        prefetch_count=10,
        heartbeat=60
    )
    assert config.prefetch_count == 10
    assert "vhost=/" in repr(config)
    local = RabbitMQConfig.local()
    assert "amqp://guest:***@localhost:5672" in repr(local)
    app = App()
    app.enable_rabbitmq(config)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"url": "http://localhost"}, "RabbitMQConfig.url"),
        ({"url": "amqp://localhost:99999"}, "RabbitMQConfig.url"),
        ({"url": ""}, "RabbitMQConfig.url"),
        ({"prefetch_count": 0}, "RabbitMQConfig.prefetch_count must be an integer from 1 to 65535, got 0"),
        ({"prefetch_count": "10"}, "RabbitMQConfig.prefetch_count must be an integer"),
        ({"heartbeat": -1}, "RabbitMQConfig.heartbeat"),
        ({"vhost": 5}, "RabbitMQConfig.vhost must be a string"),
        ({"tls_cert_file": "/nonexistent.pem"}, "RabbitMQConfig.tls_"),
    ],
)
def test_invalid_config(fields: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        RabbitMQConfig(**fields)
    assert expected in str(info.value)


def test_password_never_shown() -> None:
    config = RabbitMQConfig(url="amqp://svc:pa55-word@localhost:5672/")
    assert "pa55-word" not in repr(config)
    assert "pa55-word" not in str(config)
    with pytest.raises(AttributeError):
        _ = config.url
    with pytest.raises(ConfigurationError) as info:
        RabbitMQConfig(url="amqp://svc:pa55-word@localhost:99999/")
    assert "pa55-word" not in str(info.value)


async def test_round_trip_values_and_headers(rabbit_config: RabbitMQConfig, queue: str) -> None:
    await declare(rabbit_config, queue)
    async with Producer.connect(rabbit_config) as producer:
        r1 = await producer.send(queue, {"n": 1}, key="k-1", headers={"trace": "t1", "bin": b"\x00\xff"})
        await producer.send(queue, "text é")
        await producer.send(queue, b"\x00\x01\x02")
    got = await take(rabbit_config, queue, 3)
    assert [m.value for m in got] == [b'{"n":1}', "text é".encode(), b"\x00\x01\x02"]
    first = got[0]
    assert first.json() == {"n": 1}
    assert first.key == "k-1"
    assert first.headers == {"trace": b"t1", "bin": b"\x00\xff"}
    assert first.topic == queue
    assert first.id == r1.message_id
    assert first.attempt == 1
    assert got[1].key is None
    assert await take(rabbit_config, queue, 1, timeout=2) == []


async def test_send_batch_confirms_all(rabbit_config: RabbitMQConfig, queue: str) -> None:
    await declare(rabbit_config, queue)
    async with Producer.connect(rabbit_config) as producer:
        results = await producer.send_batch([{"topic": queue, "value": f"m{i}"} for i in range(50)])
    assert len(results) == 50
    assert all(r.error is None for r in results)
    got = await take(rabbit_config, queue, 50)
    assert [m.text for m in got] == [f"m{i}" for i in range(50)]


async def test_unroutable_send_is_not_found(rabbit_config: RabbitMQConfig, queue: str) -> None:
    async with Producer.connect(rabbit_config) as producer:
        with pytest.raises(NotFoundError, match=queue):
            await producer.send(queue + "-nobody", "lost?")


async def test_prefetch_honoured(rabbit_config: RabbitMQConfig, queue: str) -> None:
    await declare(rabbit_config, queue)
    async with Producer.connect(rabbit_config) as producer:
        await producer.send_batch([{"topic": queue, "value": str(i)} for i in range(10)])
    async with Consumer.connect(rabbit_config, prefetch_count=3) as consumer:
        await consumer.subscribe([queue])
        held: list[Message] = []
        for _ in range(6):
            held.extend(await consumer.poll(timeout_ms=300))
        assert len(held) == 3
        await consumer.commit(held)
        more = await consumer.poll(timeout_ms=2000)
        assert 1 <= len(more) <= 3
        await consumer.commit(more)


async def test_decorator_results(rabbit_config: RabbitMQConfig, queue: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every MessageResult under app.run(), checked by what the broker contains afterwards."""
    seen: list[tuple[str, int]] = []
    outcome = {
        "ack": MessageResult.ACK,
        "nack": MessageResult.NACK,
        "requeue-once": None,
        "reject": MessageResult.REJECT,
        "dead": MessageResult.DEAD_LETTER,
    }

    @rabbitmq_consumer(queue, max_retries=2, retry_backoff_ms=100)
    async def handle(message: Message) -> Any:
        seen.append((message.text, message.attempt))
        if message.text == "requeue-once":
            return MessageResult.REQUEUE if message.attempt == 1 else MessageResult.ACK
        return outcome[message.text]

    with caplog.at_level("WARNING", logger="cello"):
        async with RunningApp(_app(rabbit_config)):
            async with Producer.connect(rabbit_config) as producer:
                await producer.send_batch([{"topic": queue, "value": v} for v in outcome])
            await wait_for(lambda: ("nack", 3) in seen and ("requeue-once", 2) in seen, what="retries")
            dead = await take(rabbit_config, queue + ".dlq", 2)
    assert sorted(m.text for m in dead) == ["dead", "nack"]
    reasons = {m.text: m.headers.get("x-cello-dead-letter-reason") for m in dead}
    assert reasons["nack"] is not None and b"max retries" in reasons["nack"]
    assert reasons["dead"] == b"dead-lettered by the handler"
    assert [a for t, a in seen if t == "nack"] == [1, 2, 3]
    assert [a for t, a in seen if t == "ack"] == [1]
    assert [a for t, a in seen if t == "reject"] == [1]
    assert [a for t, a in seen if t == "requeue-once"] == [1, 2]
    assert await take(rabbit_config, queue, 1, timeout=2) == []
    assert any("reject" in r.getMessage().lower() and queue in r.getMessage() for r in caplog.records)


async def test_producer_decorator_under_http(rabbit_config: RabbitMQConfig, queue: str) -> None:
    app = _app(rabbit_config)
    handled: list[dict[str, Any]] = []

    @app.post("/signup")
    @rabbitmq_producer(queue)
    def signup(request: Any) -> dict[str, Any]:
        return {"user": request.json()["user"]}

    @rabbitmq_consumer(queue)
    def on_signup(message: Message) -> None:
        handled.append(message.json())

    async with RunningApp(app):
        import urllib.request

        request = urllib.request.Request(f"http://{app.address}/signup", data=b'{"user": "ada"}', method="POST")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=30).read())
        assert body == b'{"user": "ada"}'
        await wait_for(lambda: handled == [{"user": "ada"}], what="the published signup")


async def test_broker_restart_loses_nothing_acknowledged(rabbit_config: RabbitMQConfig, queue: str) -> None:
    """Restart RabbitMQ mid-stream: every send that returned is consumed afterwards."""
    handled: set[str] = set()

    @rabbitmq_consumer(queue)
    async def record(message: Message) -> None:
        handled.add(message.text)

    sent: list[str] = []
    async with RunningApp(_app(rabbit_config)):
        async with Producer.connect(rabbit_config.replace(send_timeout_ms=3000)) as producer:
            for i in range(100):
                await producer.send(queue, f"before-{i}")
                sent.append(f"before-{i}")
            await wait_for(lambda: len(handled) >= 50, what="the first half")
            restart = await asyncio.to_thread(
                subprocess.run, [str(ROOT / "scripts" / "brokers.sh"), "restart", "rabbitmq"],
                capture_output=True, text=True, timeout=180)
            assert restart.returncode == 0, restart.stdout + restart.stderr
            loop = asyncio.get_running_loop()
            start = loop.time()
            for i in range(100):
                while True:
                    try:
                        await producer.send(queue, f"after-{i}")
                        sent.append(f"after-{i}")
                        break
                    except Exception:  # noqa: BLE001 - reconnecting; the send did not return success
                        assert loop.time() - start < 60, "the producer did not recover within 60 s"
                        await asyncio.sleep(0.2)
            await wait_for(lambda: set(sent) <= handled, timeout=60, what="every sent message handled")
    assert set(sent) <= handled


async def test_exchange_binding_and_producer(rabbit_config: RabbitMQConfig, queue: str) -> None:
    """A consumer bound to a topic exchange gets what a producer publishes there."""
    exchange = f"ex-{uuid.uuid4().hex[:8]}"
    app = _app(rabbit_config)
    handled: list[str] = []

    @rabbitmq_consumer(queue, exchange=exchange, routing_key="orders.*")
    async def on_order(message: Message) -> None:
        handled.append(message.text)

    @rabbitmq_producer(exchange=exchange, routing_key="orders.created")
    async def created(n: int) -> str:
        return f"order {n}"

    async with RunningApp(app):
        assert await created(1) == "order 1"
        assert await created(2) == "order 2"
        await wait_for(lambda: sorted(handled) == ["order 1", "order 2"], what="both orders")


def test_routing_key_without_exchange_rejected() -> None:
    with pytest.raises(ConfigurationError, match="routing_key needs an exchange"):
        rabbitmq_consumer("q", routing_key="a.b")
