"""Secrets stay out of logs, repr, str and errors, also when connecting fails.

Each test sets a Kafka SASL password, a RabbitMQ URL password or SQS keys to
new unique strings. It records every ``cello`` log record at DEBUG, with the
Go core's DEBUG records switched on, and collects the repr and str of the
configs, clients and exceptions involved. No secret may appear in any of them.
Config reprs and config errors, a failed Kafka producer connect and a
connected SQS producer are covered by test_kafka_config.py,
test_kafka_manual.py, test_rabbitmq.py and test_sqs.py.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
import urllib.parse
import uuid
from typing import Any, Iterator

import pytest

from cello import KafkaConfig, RabbitMQConfig, SqsConfig, _native
from cello.messaging import ConnectionError, Consumer, NotFoundError, Producer
from conftest import SqsAdmin


class LogRecords(logging.Handler):
    """Keeps the formatted text of every record, traceback included."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def debug_logs() -> Iterator[LogRecords]:
    """Record all cello logging at DEBUG, including the Go core's DEBUG records."""
    logger = logging.getLogger("cello")
    handler = LogRecords()
    saved_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    _native.set_log_level(logging.DEBUG)
    try:
        yield handler
    finally:
        # INFO is the core's level when cello's logger is not at DEBUG.
        _native.set_log_level(logging.INFO)
        logger.setLevel(saved_level)
        logger.removeHandler(handler)


def texts_of(*objects: Any) -> list[str]:
    """Return what a user could see of each object: str, repr and, for exceptions, the traceback."""
    out = []
    for obj in objects:
        out += [str(obj), repr(obj)]
        if isinstance(obj, BaseException):
            out.append("".join(traceback.format_exception(obj)))
    return out


def assert_hidden(secrets: list[str], texts: list[str]) -> None:
    for secret in secrets:
        for text in texts:
            assert secret not in text, f"secret {secret!r} shown in: {text[:2000]}"


async def settle_logs() -> None:
    """Give the core's last log records time to reach Python's logging."""
    await asyncio.sleep(0.3)


async def test_kafka_failed_connects_hide_secrets(debug_logs: LogRecords) -> None:
    """A SASL login to a plaintext listener fails for both clients without showing the passwords."""
    password = "sasl-" + uuid.uuid4().hex
    key_password = "key-" + uuid.uuid4().hex
    config = KafkaConfig(
        brokers="127.0.0.1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password=password,
        connect_timeout_ms=1500,
        # librdkafka's "all" debug contexts log the SASL handshake and dump the configuration.
        extra={"ssl.key.password": key_password, "debug": "all"},
    )
    outcomes = await asyncio.gather(Producer.connect(config), Consumer.connect(config), return_exceptions=True)
    await settle_logs()

    for outcome in outcomes:
        assert isinstance(outcome, ConnectionError)
        assert "no kafka broker responded at 127.0.0.1:9092" in str(outcome)
    assert any("Selected provider PLAIN" in line for line in debug_logs.lines)
    assert any("sasl.password = [redacted]" in line for line in debug_logs.lines)
    texts = texts_of(config, *outcomes) + debug_logs.lines
    assert_hidden([password, key_password], texts)


async def test_kafka_connected_clients_hide_secrets(kafka_config: KafkaConfig, topic: str,
                                                    debug_logs: LogRecords) -> None:
    """Clients connected with SASL credentials configured (unused on plaintext) never show them."""
    password = "sasl-" + uuid.uuid4().hex
    key_password = "key-" + uuid.uuid4().hex
    config = kafka_config.replace(
        sasl_username="svc",
        sasl_password=password,
        extra={"ssl.key.password": key_password, "debug": "conf,broker"},
    )
    async with Producer.connect(config) as producer, Consumer.connect(config) as consumer:
        result = await producer.send(topic, "x")
        await consumer.subscribe([topic])
        visible = texts_of(producer, consumer, result)
    await settle_logs()

    assert "sasl_password=***" in repr(producer)
    assert "ssl.key.password=***" in repr(consumer)
    assert any("sasl.password = [redacted]" in line for line in debug_logs.lines)
    assert_hidden([password, key_password], visible + texts_of(config) + debug_logs.lines)


async def test_rabbitmq_failed_connects_hide_password(debug_logs: LogRecords) -> None:
    """A rejected login and a refused connection show neither the password nor its URL-encoded form."""
    password = "pa$$/" + uuid.uuid4().hex
    encoded = urllib.parse.quote(password, safe="")
    wrong_login = RabbitMQConfig(url=f"amqp://guest:{encoded}@127.0.0.1:5672", connection_timeout_ms=8000)
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    no_listener = RabbitMQConfig(url=f"amqp://svc:{encoded}@127.0.0.1:1", connection_timeout_ms=2000)

    async def failure(opening: Any) -> BaseException:
        try:
            await opening
        except ConnectionError as exc:
            return exc
        raise AssertionError("the connect succeeded")

    # RabbitMQ responds to a failed login after about 3 s, so both clients try at once.
    errors = await asyncio.gather(
        failure(Producer.connect(wrong_login)),
        failure(Consumer.connect(wrong_login)),
        failure(Producer.connect(no_listener)),
    )
    await settle_logs()

    for error in errors[:2]:
        assert 'rabbitmq at 127.0.0.1:5672 rejected the login of user "guest"' in str(error)
    assert "cannot connect to rabbitmq at 127.0.0.1:1" in str(errors[2])
    texts = texts_of(wrong_login, no_listener, *errors) + debug_logs.lines
    assert_hidden([password, encoded, password.split("/")[1]], texts)


async def test_sqs_clients_hide_keys(sqs_config: SqsConfig, sqs_admin: SqsAdmin, debug_logs: LogRecords) -> None:
    """Keys and session token stay hidden in connected clients, failed connects and failed sends."""
    secrets = {
        "access_key_id": "AKIA" + uuid.uuid4().hex[:16].upper(),
        "secret_access_key": "secret-" + uuid.uuid4().hex,
        "session_token": "token-" + uuid.uuid4().hex,
    }
    config = sqs_config.replace(**secrets)
    missing = sqs_admin.queue_name("missing")
    missing_queue = config.replace(queue_url=sqs_admin.url(missing))
    no_listener = config.replace(queue_url="http://127.0.0.1:1/000000000000/q", endpoint_url=None,
                                 request_timeout_ms=2000)
    visible: list[str] = []

    # ElasticMQ checks no signatures, so these clients connect and work.
    async with Producer.connect(config) as producer, Consumer.connect(config) as consumer:
        result = await producer.send("", "hello", headers={"trace": "t-1"})
        with pytest.raises(NotFoundError, match=f'queue "{missing}" does not exist') as send_error:
            await producer.send(missing_queue.queue_url, "lost")
        await consumer.subscribe([])
        polled = await consumer.poll(timeout_ms=5000)
        await consumer.commit(polled)
        visible += texts_of(producer, consumer, result, send_error.value, *polled)
    assert [m.text for m in polled] == ["hello"]

    failures: list[BaseException] = []
    for client in (Producer, Consumer):
        with pytest.raises(NotFoundError, match=f'queue "{missing}" does not exist') as caught:
            await client.connect(missing_queue)
        failures.append(caught.value)
        with pytest.raises(ConnectionError, match="127.0.0.1:1") as refused:
            await client.connect(no_listener)
        failures.append(refused.value)
    await settle_logs()

    assert any("producer started" in line for line in debug_logs.lines)
    assert any("consumer started" in line for line in debug_logs.lines)
    texts = visible + texts_of(config, missing_queue, no_listener, *failures) + debug_logs.lines
    assert_hidden(list(secrets.values()), texts)
