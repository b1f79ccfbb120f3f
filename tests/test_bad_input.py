"""Bad input and misuse on every broker, each checked for its exact error class.

Config cases need only the library. The others run against the local
brokers (Kafka on 127.0.0.1:9092, RabbitMQ on 5672, ElasticMQ on 4566),
each on a topic or queue of its own. They check what the broker contains
afterwards, so an error raised after part of a batch was sent is caught.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import select
import signal
import socket
import threading
import uuid
from collections import Counter
from typing import Any, AsyncIterator, Callable

import pytest

from cello import App, KafkaConfig, RabbitMQConfig, SqsConfig
from cello.messaging import (
    ClosedError,
    ConfigurationError,
    Consumer,
    InternalError,
    Message,
    MessageTooLargeError,
    NotFoundError,
    Producer,
    SerializationError,
    kafka_consumer,
    rabbitmq_consumer,
    sqs_consumer,
)
from cello.messaging.config import BrokerConfig
from conftest import RunningApp, SqsAdmin, drain, wait_for

BROKERS = ["kafka", "rabbitmq", "sqs"]
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672"
LOCAL_QUEUE = "http://localhost:4566/000000000000/q"
# Kafka sends of these tests use one key, so that they share a partition
# and a marker record's offset counts the records before it.
KAFKA_KEY = "k"
# The broker limits that the library enforces before sending.
KAFKA_MAX_BYTES = 1_000_000
RABBITMQ_MAX_BYTES = 128 * 1024 * 1024
SQS_MAX_BYTES = 256 * 1024


def _require(port: int, name: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"{name} is not running on 127.0.0.1:{port} ({exc}); start it with 'make brokers'")


class Target:
    """A topic or queue of one broker, with the calls to fill and inspect it."""

    def __init__(self, broker: str, config: BrokerConfig, name: str, admin: SqsAdmin | None = None) -> None:
        self.broker = broker
        self.config = config
        self.name = name  # a Kafka topic, a RabbitMQ queue or an SQS queue URL
        self.admin = admin

    def item(self, value: Any, **fields: Any) -> dict[str, Any]:
        """Return a send_batch item for this destination."""
        if self.broker == "kafka":
            fields.setdefault("key", KAFKA_KEY)
        return {"topic": self.name, "value": value, **fields}

    async def send(self, producer: Producer, value: Any, **kwargs: Any) -> Any:
        if self.broker == "kafka":
            kwargs.setdefault("key", KAFKA_KEY)
        return await producer.send(self.name, value, **kwargs)

    async def count_stored(self) -> int:
        """Return how many messages the destination contains, without taking them.

        SQS reports its counts. Kafka and RabbitMQ get a marker message, and
        the count is what comes before it: the marker's offset in the shared
        partition, or the messages a consumer receives ahead of it.
        """
        if self.broker == "sqs":
            assert self.admin is not None
            visible, in_flight = self.admin.counts(self.name)
            return visible + in_flight
        marker = f"marker-{uuid.uuid4().hex}"
        async with Producer.connect(self.config) as producer:
            result = await self.send(producer, marker)
        if self.broker == "kafka":
            return result.offset
        before: list[Message] = []
        async with Consumer.connect(self.config, prefetch_count=1000) as consumer:
            await consumer.subscribe([self.name])
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while loop.time() < deadline:
                batch = await consumer.poll(timeout_ms=300)
                if not batch:
                    continue
                texts = [m.value for m in batch]
                if marker.encode() in texts:
                    before.extend(batch[: texts.index(marker.encode())])
                    return len(before)
                before.extend(batch)
        raise AssertionError(f"the marker never arrived on {self.name}")

    async def receive(self, expected: int, timeout: float = 30.0) -> list[Message]:
        """Consume and acknowledge up to ``expected`` messages."""
        if self.broker == "kafka":
            return await drain(self.config, self.name, expected, timeout)  # type: ignore[arg-type]
        out: list[Message] = []
        deadline = asyncio.get_running_loop().time() + timeout

        async def consume() -> None:
            async with Consumer.connect(self.config, prefetch_count=1000 if self.broker == "rabbitmq" else None) as consumer:
                await consumer.subscribe([self.name])
                while len(out) < expected and asyncio.get_running_loop().time() < deadline:
                    batch = await consumer.poll(timeout_ms=1000)
                    if batch:
                        await consumer.commit(batch)
                        out.extend(batch)

        # An SQS receive returns at most 10 messages, so four consumers
        # receive side by side; RabbitMQ pushes up to the prefetch count at once.
        await asyncio.gather(*(consume() for _ in range(4 if self.broker == "sqs" else 1)))
        return out


async def rabbit_target(config: RabbitMQConfig) -> Target:
    """Return a new RabbitMQ queue, declared so that publishes to it are routed."""
    target = Target("rabbitmq", config, f"test-{uuid.uuid4().hex[:12]}")
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe([target.name])
    return target


@pytest.fixture
def rabbit_config() -> RabbitMQConfig:
    _require(5672, "RabbitMQ")
    return RabbitMQConfig(url=RABBITMQ_URL)


@pytest.fixture(params=BROKERS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[Target]:
    """A new, empty topic or queue on each broker in turn."""
    broker = request.param
    if broker == "kafka":
        yield Target("kafka", request.getfixturevalue("kafka_config"), request.getfixturevalue("topic"))
    elif broker == "rabbitmq":
        yield await rabbit_target(request.getfixturevalue("rabbit_config"))
    else:
        admin: SqsAdmin = request.getfixturevalue("sqs_admin")
        url = admin.create_queue("bad-input")
        yield Target("sqs", SqsConfig.local(queue_url=url), url, admin)


# -- config fields -------------------------------------------------------------
# Each table has a bad value for every field of its config (checked by
# test_field_tables_cover_every_field), besides the cases of
# test_kafka_config.py, test_rabbitmq.py and test_sqs.py.

KAFKA_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("brokers", {"brokers": ["a:9092", 5]}, "must be a comma-separated string or a list of strings"),
    ("group_id", {"group_id": ["g"]}, 'must be a string, got ["g"]'),
    ("client_id", {"client_id": 7}, "must be a string, got 7"),
    ("auto_commit", {"auto_commit": 1}, "must be true or false, got 1"),
    ("session_timeout_ms", {"session_timeout_ms": 3_600_001}, "must be an integer from 1000 to 3600000, got 3600001"),
    ("max_poll_records", {"max_poll_records": 100_001}, "must be an integer from 1 to 100000, got 100001"),
    ("security_protocol", {"security_protocol": ""}, 'must be one of "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"'),
    ("sasl_mechanism", {"security_protocol": "SASL_SSL", "sasl_mechanism": "MD5"},
     'must be one of "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI", got "MD5"'),
    ("sasl_username", {"sasl_username": 5}, "must be a string, got 5"),
    ("sasl_password", {"sasl_password": 5}, "must be a string (value hidden)"),
    ("ssl_ca_location", {"ssl_ca_location": ""}, 'must be a non-empty string, got ""'),
    ("ssl_certificate_location", {"ssl_certificate_location": 5}, "must be a string, got 5"),
    ("ssl_key_location", {"ssl_key_location": " "}, 'must be a non-empty string, got " "'),
    ("acks", {"acks": 2}, 'must be one of "all", "0", "1", got "2"'),
    ("compression", {"compression": 5}, 'must be one of "none", "gzip", "snappy", "lz4", "zstd", got 5'),
    ("auto_offset_reset", {"auto_offset_reset": "smallest"}, 'must be one of "earliest", "latest", "error"'),
    ("connect_timeout_ms", {"connect_timeout_ms": 99}, "must be an integer from 100 to 600000, got 99"),
    ("send_timeout_ms", {"send_timeout_ms": 0}, "must be an integer from 1 to 3600000, got 0"),
    ("extra", {"extra": "linger.ms=5"},
     "must be a dict of librdkafka property names to str, int or bool values, got str (value hidden)"),
]

RABBITMQ_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("url", {"url": "amqp://host?heartbeat=5"}, "must have no query parameters (found heartbeat)"),
    ("url", {"url": "amqp://"}, 'must name a host, such as "amqp://user:password@localhost:5672/vhost"'),
    ("url", {"url": "amqp://rabbit host:5672"}, "must not contain whitespace"),
    ("url", {"url": 5672}, "must be a string (value hidden)"),
    ("vhost", {"vhost": ""}, 'must be a non-empty string, got ""'),
    ("prefetch_count", {"prefetch_count": 65536}, "must be an integer from 1 to 65535, got 65536"),
    ("heartbeat", {"heartbeat": 3601}, "must be an integer from 0 to 3600, got 3601"),
    ("exchange", {"exchange": "x" * 256}, "must be at most 255 bytes, got 256 bytes"),
    ("exchange", {"exchange": 5}, "must be a string, got 5"),
    ("connection_timeout_ms", {"connection_timeout_ms": 99}, "must be an integer from 100 to 600000, got 99"),
    ("send_timeout_ms", {"send_timeout_ms": 0}, "must be an integer from 1 to 3600000, got 0"),
    ("tls_ca_file", {"tls_ca_file": "/etc/ca.pem"}, "needs an amqps:// url, got an amqp:// url"),
    ("tls_ca_file", {"url": "amqps://localhost", "tls_ca_file": __file__}, "contains no PEM certificate"),
    ("tls_cert_file", {"url": "amqps://localhost", "tls_cert_file": __file__}, "and tls_key_file must be given together"),
    ("tls_key_file", {"url": "amqps://localhost", "tls_cert_file": __file__, "tls_key_file": "/nonexistent/key.pem"},
     'tls_key_file "/nonexistent/key.pem" cannot be read'),
    ("tls_insecure_skip_verify", {"tls_insecure_skip_verify": "yes"}, 'must be true or false, got "yes"'),
    ("max_message_bytes", {"max_message_bytes": 0}, "must be an integer from 1 to 536870912, got 0"),
]

SQS_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("region", {"region": 5}, "must be a string, got 5"),
    ("queue_url", {"queue_url": "http://localhost:4566/q"}, "https://host/<account>/<queue name>"),
    ("queue_url", {"queue_url": 5}, "must be a string, got 5"),
    ("endpoint_url", {"endpoint_url": ""}, 'must be a non-empty string, got ""'),
    ("endpoint_url", {"endpoint_url": "http://127.0.0.1:4566/?x=1"}, "must be an http(s) URL such as http://127.0.0.1:4566"),
    ("max_messages", {"max_messages": True}, "must be an integer from 1 to 10, got true"),
    ("wait_time_secs", {"wait_time_secs": "5"}, 'must be an integer from 0 to 20, got "5"'),
    ("dead_letter_queue_url", {"dead_letter_queue_url": "dlq"}, 'https://host/<account>/<queue name>, got "dlq"'),
    ("visibility_timeout_secs", {"visibility_timeout_secs": -1}, "must be an integer from 0 to 43200, got -1"),
    ("access_key_id", {"access_key_id": 5, "secret_access_key": "s"}, "must be a string (value hidden)"),
    ("secret_access_key", {"secret_access_key": "s"}, "must be set together (values hidden)"),
    ("session_token", {"session_token": "t"}, "requires access_key_id and secret_access_key (values hidden)"),
    ("profile", {"profile": ""}, 'must be a non-empty string, got ""'),
    ("use_dummy_credentials", {"use_dummy_credentials": "yes"}, 'must be true or false, got "yes"'),
    ("request_timeout_ms", {"request_timeout_ms": 600_001}, "must be an integer from 100 to 600000, got 600001"),
]

CONFIG_CASES = (
    [(KafkaConfig, "kafka", *case) for case in KAFKA_FIELDS]
    + [(RabbitMQConfig, "rabbitmq", *case) for case in RABBITMQ_FIELDS]
    + [(SqsConfig, "sqs", *case) for case in SQS_FIELDS]
)


@pytest.mark.parametrize(
    ("cls", "broker", "field", "fields", "expected"),
    CONFIG_CASES,
    ids=[f"{c[0].__name__}.{c[2]}-{i}" for i, c in enumerate(CONFIG_CASES)],
)
def test_config_field_rejected(cls: type, broker: str, field: str, fields: dict[str, Any], expected: str) -> None:
    """A bad value of each field raises ConfigurationError naming the field and what it accepts."""
    if cls is SqsConfig:
        fields = {"queue_url": LOCAL_QUEUE, **fields}
    with pytest.raises(ConfigurationError) as caught:
        cls(**fields)
    message = str(caught.value)
    assert f"{cls.__name__}.{field}" in message
    assert expected in message
    assert caught.value.broker == broker
    assert isinstance(caught.value, ValueError)


def test_field_tables_cover_every_field() -> None:
    """Every constructor parameter of the three configs has a case above."""
    for cls, table in ((KafkaConfig, KAFKA_FIELDS), (RabbitMQConfig, RABBITMQ_FIELDS), (SqsConfig, SQS_FIELDS)):
        parameters = set(inspect.signature(cls).parameters)
        covered = {field for field, _, _ in table}
        assert covered == parameters, f"{cls.__name__}: no case for {sorted(parameters - covered)}"


@pytest.mark.parametrize(
    ("cls", "fields", "field"),
    [
        (KafkaConfig, {"session_timeout_ms": float("nan")}, "session_timeout_ms"),
        (KafkaConfig, {"extra": {"linger.ms": float("inf")}}, "extra"),
        (RabbitMQConfig, {"heartbeat": float("inf")}, "heartbeat"),
        (SqsConfig, {"queue_url": LOCAL_QUEUE, "wait_time_secs": float("-inf")}, "wait_time_secs"),
    ],
)
def test_config_non_finite_number_named(cls: type, fields: dict[str, Any], field: str) -> None:
    """NaN and infinity, which JSON cannot carry, are reported against their field."""
    with pytest.raises(ConfigurationError) as caught:
        cls(**fields)
    message = str(caught.value)
    assert f"{cls.__name__}.{field} contains NaN, infinity or a circular reference" in message
    assert "expected a finite number" in message
    assert "not a JSON object" not in message


def test_kafka_brokers_url_scheme_rejected() -> None:
    with pytest.raises(ConfigurationError, match=r'KafkaConfig\.brokers entry "http://127\.0\.0\.1:9092" has scheme "http"'):
        KafkaConfig(brokers="http://127.0.0.1:9092")
    # A security protocol is the one scheme librdkafka reads in a broker address.
    assert KafkaConfig(brokers="PLAINTEXT://127.0.0.1:9092").brokers


async def test_kafka_unknown_extra_property_at_connect(kafka_config: KafkaConfig) -> None:
    """librdkafka rejects an unknown extra property when a client opens, naming it."""
    config = kafka_config.replace(extra={"linger.msec": 5})
    with pytest.raises(ConfigurationError, match='kafka producer: No such configuration property: "linger.msec"'):
        await Producer.connect(config)
    with pytest.raises(ConfigurationError, match='kafka consumer: No such configuration property: "linger.msec"'):
        await Consumer.connect(config)


@pytest.mark.parametrize("client", [Producer, Consumer])
def test_connect_needs_config_object(client: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"{client.__name__}.connect needs a KafkaConfig, RabbitMQConfig "
                                                 "or SqsConfig, got str"):
        client.connect("amqp://localhost")


# -- unknown destinations ---------------------------------------------------------
# The local Kafka broker creates unknown topics on first use
# (auto.create.topics.enable=true), so a producer gets an unknown topic error
# only when its config disables that with allow.auto.create.topics.


async def test_kafka_unknown_topic_without_auto_create(kafka_config: KafkaConfig, topic: str) -> None:
    # topic.metadata.propagation.max.ms bounds how long librdkafka waits for
    # the topic to appear before it fails the record (30 s by default).
    config = kafka_config.replace(
        extra={"allow.auto.create.topics": False, "topic.metadata.propagation.max.ms": 1000},
        send_timeout_ms=10000,
    )
    loop = asyncio.get_running_loop()
    start = loop.time()
    async with Producer.connect(config) as producer:
        with pytest.raises(NotFoundError, match=f"topic {topic}: Broker: Unknown topic or partition") as caught:
            await producer.send(topic, "x")
    assert loop.time() - start < 8
    assert caught.value.broker == "kafka"


async def test_rabbitmq_unroutable_item_in_batch(rabbit_config: RabbitMQConfig) -> None:
    """Only the item that reaches no queue fails, and the queue contains the other two."""
    target = await rabbit_target(rabbit_config)
    missing = target.name + "-nobody"
    async with Producer.connect(rabbit_config) as producer:
        with pytest.raises(NotFoundError, match=f"1 of 3 messages failed; first: .*{missing}") as caught:
            await producer.send_batch([target.item("one"), {"topic": missing, "value": "lost"}, target.item("two")])
    results = caught.value.results  # type: ignore[attr-defined]
    assert [r.error is None for r in results] == [True, False, True]
    assert isinstance(results[1].error, NotFoundError)
    got = await target.receive(2)
    assert [m.text for m in got] == ["one", "two"]


async def test_rabbitmq_missing_exchange_not_found(rabbit_config: RabbitMQConfig) -> None:
    """Publishing to an exchange that does not exist raises NotFoundError every time, quickly."""
    exchange = f"missing-{uuid.uuid4().hex[:8]}"
    loop = asyncio.get_running_loop()
    async with Producer.connect(rabbit_config.replace(exchange=exchange, send_timeout_ms=5000)) as producer:
        for _ in range(2):  # the second send runs on the connection opened after the broker's channel error
            start = loop.time()
            with pytest.raises(NotFoundError, match=f'exchange "{exchange}" does not exist'):
                await producer.send("orders", "x")
            assert loop.time() - start < 3


async def test_sqs_invalid_queue_name(sqs_config: SqsConfig) -> None:
    expected = r'"bad name!" is neither a queue URL nor a valid queue name'
    async with Producer.connect(sqs_config) as producer:
        with pytest.raises(ConfigurationError, match=expected):
            await producer.send("bad name!", "x")
    async with Consumer.connect(sqs_config) as consumer:
        with pytest.raises(ConfigurationError, match=expected):
            await consumer.subscribe(["bad name!"])


# -- values, keys and headers that cannot be sent ----------------------------------

BAD_VALUES = [
    (object(), "send value of type object cannot be sent"),
    ({1, 2}, "send value of type set cannot be sent"),
    (1j, "send value of type complex cannot be sent"),
    ({"price": float("nan")}, "send value cannot be encoded as JSON: Out of range float"),
    ({"when": object()}, "send value cannot be encoded as JSON: Object of type object"),
    ({b"raw": 1}, "send value cannot be encoded as JSON: keys must be str"),
    ("text \udcff", "send value cannot be encoded as UTF-8: it has a lone surrogate"),
]


async def test_unsendable_values_send_nothing(target: Target) -> None:
    """Each unsendable value raises SerializationError, alone or in a batch, and nothing arrives."""
    async with Producer.connect(target.config) as producer:
        for value, expected in BAD_VALUES:
            with pytest.raises(SerializationError, match=expected):
                await target.send(producer, value)
        with pytest.raises(SerializationError, match="item 1 value of type set cannot be sent"):
            await producer.send_batch([target.item("good"), target.item({1}), target.item("good too")])
        with pytest.raises(SerializationError, match="key of type float cannot be sent; pass str, bytes or int"):
            await producer.send(target.name, "v", key=1.5)
        with pytest.raises(SerializationError, match="key cannot be encoded as UTF-8"):
            await producer.send(target.name, "v", key="\udcff")
        with pytest.raises(ConfigurationError, match="topic name 'q\\\\udcff' cannot be encoded as UTF-8"):
            await producer.send("q\udcff", "v")
        # Items of only a topic and a str or bytes value take a faster path.
        with pytest.raises(SerializationError, match="item 0 value cannot be encoded as UTF-8"):
            await producer.send_batch([{"topic": target.name, "value": "text \udcff"}])
        with pytest.raises(ConfigurationError, match="item 0: topic name 'q\\\\udcff' cannot be encoded as UTF-8"):
            await producer.send_batch([{"topic": "q\udcff", "value": "v"}])
    assert await target.count_stored() == 0


BAD_HEADERS = [
    ({1: "v"}, "header name 1 must be a non-empty str"),
    ({b"name": "v"}, "header name b'name' must be a non-empty str"),
    ({"count": 42}, "header 'count' has a value of type int; pass str or bytes"),
    ({"owner": object()}, "header 'owner' has a value of type object; pass str or bytes"),
    ({"gone": None}, "header 'gone' has a value of type NoneType"),
    ({"bad": "\udcff"}, "header 'bad' cannot be encoded as UTF-8"),
    ([("lonely",)], r"header \('lonely',\) must be a \(name, value\) pair"),
    ("trace=1", "headers must be a dict or a list of \\(name, value\\) pairs, got str"),
]


async def test_bad_header_types_send_nothing(target: Target) -> None:
    """Headers of the wrong types raise SerializationError, alone or in a batch, and nothing arrives."""
    async with Producer.connect(target.config) as producer:
        for headers, expected in BAD_HEADERS:
            with pytest.raises(SerializationError, match=expected):
                await target.send(producer, "v", headers=headers)
        with pytest.raises(SerializationError, match="header 'n' has a value of type int"):
            await producer.send_batch([target.item("good"), target.item("bad", headers={"n": 1})])
    assert await target.count_stored() == 0


@pytest.mark.parametrize(
    ("broker", "headers", "expected"),
    [
        ("rabbitmq", {"x-cello-retries": "0"}, 'header "x-cello-retries", but names starting with "x-cello-" '
                                               "are reserved for cello"),
        ("rabbitmq", {"h" * 256: "v"}, "header name of 256 bytes, expected 1 to 255"),
        ("sqs", {"has space": "v"}, 'header name "has space" is not a valid SQS attribute name'),
        ("sqs", {"AWS.trace": "v"}, 'header name "AWS.trace" is not a valid SQS attribute name'),
        ("sqs", {"trace": ""}, 'header "trace" has an empty value, which SQS does not accept'),
        ("sqs", {"cello-key": "v"}, 'header "cello-key" is reserved for the message key and body encoding'),
        ("sqs", {f"h{i}": "v" for i in range(11)}, "needs 11 message attributes (headers plus the key), "
                                                   "but SQS allows at most 10"),
    ],
    ids=["rabbitmq-reserved-name", "rabbitmq-long-name", "sqs-space-in-name", "sqs-aws-prefix", "sqs-empty-value",
         "sqs-reserved-name", "sqs-11-headers"],
)
async def test_broker_header_rules(broker: str, headers: dict[str, str], expected: str,
                                   request: pytest.FixtureRequest) -> None:
    """Headers that the broker would reject raise ConfigurationError before anything is sent."""
    if broker == "rabbitmq":
        target = await rabbit_target(request.getfixturevalue("rabbit_config"))
    else:
        admin = request.getfixturevalue("sqs_admin")
        url = admin.create_queue("headers")
        target = Target(broker, SqsConfig.local(queue_url=url), url, admin)
    async with Producer.connect(target.config) as producer:
        with pytest.raises(ConfigurationError, match=re.escape(expected)):
            await producer.send_batch([target.item("good"), target.item("bad", headers=headers)])
    assert await target.count_stored() == 0


# -- messages over the size limit -----------------------------------------------------


async def test_oversized_in_batch_sends_nothing(target: Target) -> None:
    """An oversized message between two valid ones fails the batch, naming the limit, and sends none."""
    if target.broker == "kafka":
        big, expected = b"x" * KAFKA_MAX_BYTES, r"message 1 for topic .* over the limit of 1000000 bytes"
    elif target.broker == "rabbitmq":
        target.config = target.config.replace(max_message_bytes=100_000)
        big, expected = b"x" * 100_001, r"message 1 for routing key .* body of 100001 bytes, over the limit of 100000"
    else:
        big, expected = b"x" * (SQS_MAX_BYTES + 1), r"message 1 to queue .* over the SQS limit of 262144 bytes"
    async with Producer.connect(target.config) as producer:
        with pytest.raises(MessageTooLargeError, match=expected) as caught:
            await producer.send_batch([target.item("before"), target.item(big), target.item("after")])
        assert caught.value.broker == target.broker
        assert not caught.value.retriable
    assert await target.count_stored() == 0


async def test_rabbitmq_default_size_limit(rabbit_config: RabbitMQConfig) -> None:
    """Without max_message_bytes, a body over RabbitMQ's default 128 MiB is rejected before sending."""
    target = await rabbit_target(rabbit_config)
    async with Producer.connect(rabbit_config) as producer:
        with pytest.raises(MessageTooLargeError, match=f"body of {RABBITMQ_MAX_BYTES + 1} bytes, "
                                                       f"over the limit of {RABBITMQ_MAX_BYTES} bytes"):
            await producer.send(target.name, bytes(RABBITMQ_MAX_BYTES + 1))
    assert await target.count_stored() == 0


async def test_sqs_size_limit_boundary(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """A message of exactly 256 KiB is sent, and one byte more is rejected."""
    async with Producer.connect(sqs_config) as producer:
        await producer.send("", "x" * SQS_MAX_BYTES)
        with pytest.raises(MessageTooLargeError, match=f"is {SQS_MAX_BYTES + 1} bytes"):
            await producer.send("", "x" * (SQS_MAX_BYTES + 1))
        # The limit counts attributes too: name, data type and value.
        with pytest.raises(MessageTooLargeError, match=f"is {SQS_MAX_BYTES + 1} bytes"):
            await producer.send("", "x" * (SQS_MAX_BYTES - 11), headers={"h": "12345"})
    assert sqs_admin.counts(sqs_config.queue_url) == (1, 0)


async def test_kafka_broker_rejects_oversized_record(kafka_config: KafkaConfig, topic: str) -> None:
    """With the client limit raised over the broker's, the broker's rejection is MessageTooLargeError too."""
    config = kafka_config.replace(extra={"message.max.bytes": 2_000_000})
    target = Target("kafka", config, topic)
    async with Producer.connect(config) as producer:
        with pytest.raises(MessageTooLargeError, match="the broker rejected the record as larger than its "
                                                       "message.max.bytes: Broker: Message size too large"):
            await target.send(producer, bytes(1_500_000))
    assert await target.count_stored() == 0


# -- undecodable messages consumed from each broker -------------------------------------


async def test_consumed_undecodable_values(target: Target) -> None:
    """.text and .json() of consumed messages raise SerializationError naming the problem."""
    large = {"items": ["x" * 10] * 100}
    async with Producer.connect(target.config) as producer:
        await producer.send_batch([
            target.item(b"\xff\xfe ok"),
            target.item(b"{not json"),
            target.item(large),
        ])
    got = await target.receive(3)
    assert len(got) == 3
    by_value = {m.value: m for m in got}
    binary = by_value[b"\xff\xfe ok"]
    with pytest.raises(SerializationError, match=r"value is not valid UTF-8 \(byte 0 of 5\)") as caught:
        _ = binary.text
    assert binary.id in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(SerializationError, match="not valid UTF-8"):
        binary.json()

    broken = by_value[b"{not json"]
    assert broken.text == "{not json"
    with pytest.raises(SerializationError, match="value is not valid JSON: Expecting property name"):
        broken.json()

    big = next(m for m in got if m.value.startswith(b'{"items"'))
    size = len(big.value)
    with pytest.raises(SerializationError, match=f"value is {size} bytes, over the JSON limit of 1000 bytes"):
        big.json(max_bytes=1000)
    assert big.json(max_bytes=size) == large
    assert big.json(max_bytes=None) == large


async def test_rabbitmq_json_default_limit(rabbit_config: RabbitMQConfig) -> None:
    """A consumed value over 16 MiB is not parsed by .json() unless max_bytes allows it."""
    target = await rabbit_target(rabbit_config)
    document = '"' + "x" * (16 * 1024 * 1024) + '"'
    async with Producer.connect(rabbit_config) as producer:
        await producer.send(target.name, document)
    (message,) = await target.receive(1)
    with pytest.raises(SerializationError, match=f"value is {len(document)} bytes, over the JSON limit of 16777216"):
        message.json()
    assert len(message.json(max_bytes=None)) == 16 * 1024 * 1024


# -- handlers that fail ---------------------------------------------------------------
# test_kafka_decorators.py covers a Kafka handler that raises or returns 42,
# and tests/faults/test_shutdown_timeout.py a handler that never returns,
# on every broker.

# The end of the dead-letter reason of each failure, keyed by the message
# value that makes failing_handler fail that way.
DEAD_LETTER_REASONS = {
    "int": "handler returned int, not a MessageResult",
    "raise": "ValueError: no price",
    "str": "handler returned str, not a MessageResult",
    "dict": "handler returned dict, not a MessageResult",
}


def failing_handler(message: Message) -> Any:
    if message.text == "raise":
        raise ValueError("no price")
    return {"int": 42, "str": "done", "dict": {"result": "ack"}}[message.text]


@pytest.mark.parametrize("broker", BROKERS)
async def test_failing_handlers_dead_letter(broker: str, request: pytest.FixtureRequest) -> None:
    """A handler that raises or returns garbage NACKs, so the message is dead-lettered with the reason."""
    cases = ["str", "dict"] if broker == "kafka" else list(DEAD_LETTER_REASONS)
    seen: list[str] = []
    reasons: dict[str, str] = {}
    reason_header = "x-cello-dead-letter-reason" if broker == "rabbitmq" else "cello-dead-letter-reason"

    def handle(message: Message) -> Any:
        seen.append(message.text)
        return failing_handler(message)

    def record_dead_letter(message: Message) -> None:
        if reason_header in message.headers:  # not the record that created a Kafka topic
            reasons[message.text] = message.headers[reason_header].decode()

    # A second consumer of the same app reads the dead-letter queue, which
    # saves the start of a separate consumer afterwards.
    app = App(shutdown_timeout=10)
    if broker == "kafka":
        config: Any = request.getfixturevalue("kafka_config")
        name = request.getfixturevalue("topic")
        dead_letters = name + ".dlq"
        app.enable_messaging(config)
        kafka_consumer(topic=name, group=f"g-{uuid.uuid4().hex[:8]}", max_retries=0)(handle)
        kafka_consumer(topic=dead_letters, group=f"g-{uuid.uuid4().hex[:8]}")(record_dead_letter)
        # A consumer finds a topic created after it started only at its next
        # metadata refresh, 5 s later, so both topics are created first.
        async with Producer.connect(config) as producer:
            await producer.send(dead_letters, "creates the topic")
    elif broker == "rabbitmq":
        config = request.getfixturevalue("rabbit_config")
        name = (await rabbit_target(config)).name
        app.enable_rabbitmq(config)
        rabbitmq_consumer(name, max_retries=0)(handle)
        rabbitmq_consumer(name + ".dlq")(record_dead_letter)
    else:
        admin: SqsAdmin = request.getfixturevalue("sqs_admin")
        name = admin.create_queue("handlers")
        dead_letters = admin.create_queue("handlers-dlq")
        config = SqsConfig.local(queue_url=name, dead_letter_queue_url=dead_letters)
        app.enable_sqs(config)
        sqs_consumer(max_retries=0)(handle)
        sqs_consumer(queue_url=dead_letters)(record_dead_letter)

    async with Producer.connect(config) as producer:
        await producer.send_batch([{"topic": name, "value": case} for case in cases])
    async with RunningApp(app):
        await wait_for(lambda: len(reasons) >= len(cases), what="the dead-lettered messages")
    assert sorted(seen) == sorted(cases)
    assert sorted(reasons) == sorted(cases)
    for case in cases:
        assert reasons[case].endswith(DEAD_LETTER_REASONS[case]), reasons[case]


# -- calls after close --------------------------------------------------------------------


async def test_calls_after_close_raise_closed(target: Target) -> None:
    """A second close() does nothing, and every other call after close() raises ClosedError."""
    async with Producer.connect(target.config) as producer:
        await target.send(producer, "kept")
    consumer = await Consumer.connect(target.config)
    await consumer.subscribe([target.name])
    polled: list[Message] = []
    for _ in range(30):
        polled = await consumer.poll(timeout_ms=1000)
        if polled:
            break
    assert [m.text for m in polled] == ["kept"]

    await producer.close()
    await producer.close()
    await consumer.close()
    await consumer.close()

    producer_closed = f"{target.broker} producer is closed; connect a new one"
    with pytest.raises(ClosedError, match=producer_closed):
        await target.send(producer, "x")
    with pytest.raises(ClosedError, match=producer_closed):
        await producer.send_batch([target.item("x")])
    with pytest.raises(ClosedError, match=producer_closed):
        await asyncio.to_thread(producer.send_blocking, target.name, "x")
    consumer_closed = f"{target.broker} consumer is closed; connect a new one"
    with pytest.raises(ClosedError, match=consumer_closed):
        await consumer.poll(timeout_ms=0)
    with pytest.raises(ClosedError, match=consumer_closed):
        await consumer.subscribe([target.name])
    with pytest.raises(ClosedError, match=consumer_closed) as caught:
        await consumer.commit(polled)
    assert caught.value.broker == target.broker
    assert "closed" in repr(producer)
    assert "closed" in repr(consumer)

    # The uncommitted message is still there for a new consumer.
    again = await target.receive(1)
    assert [m.text for m in again] == ["kept"]


async def test_close_during_sends_flushes_them(target: Target) -> None:
    """close() flushes the sends started before it: each returns, and each message arrives once."""
    producer = await Producer.connect(target.config)
    sends = [asyncio.ensure_future(target.send(producer, f"m{i}")) for i in range(100)]
    await asyncio.sleep(0)  # each send hands its message to the core before close() starts
    await producer.close()
    outcomes = await asyncio.gather(*sends, return_exceptions=True)

    failed = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert failed == []
    assert await target.count_stored() == 100


async def test_commit_rejects_other_consumers_message(target: Target) -> None:
    """A message committed on a consumer that did not poll it raises, and settles nothing there."""
    if target.broker == "kafka":
        other = Target("kafka", target.config, target.name + "-other")
    elif target.broker == "rabbitmq":
        other = await rabbit_target(target.config)  # type: ignore[arg-type]
    else:
        assert target.admin is not None
        other = Target("sqs", target.config, target.admin.create_queue("other"), target.admin)
    async with Producer.connect(target.config) as producer:
        await target.send(producer, "mine")
        await other.send(producer, "theirs")

    async def poll_one(consumer: Consumer) -> Message:
        for _ in range(30):
            batch = await consumer.poll(timeout_ms=1000)
            if batch:
                return batch[0]
        raise AssertionError("no message arrived")

    group = {"group": f"g-{uuid.uuid4().hex[:8]}"} if target.broker == "kafka" else {}
    async with Consumer.connect(target.config, **group) as first, Consumer.connect(other.config) as second:
        await first.subscribe([target.name])
        await second.subscribe([other.name])
        mine, theirs = await asyncio.gather(poll_one(first), poll_one(second))
        with pytest.raises(ConfigurationError, match="commit needs messages returned by this consumer's poll()"):
            await second.commit(mine)
        with pytest.raises(ConfigurationError, match="commit needs a Message or a list of them .* got NoneType"):
            await second.commit(None)  # type: ignore[arg-type]
        await second.commit(theirs)  # still unsettled, so this commit succeeds
        await first.commit(mine)


# -- concurrent use ----------------------------------------------------------------------------

THREADS = 4
PER_THREAD = 500


async def test_producer_shared_by_threads(target: Target) -> None:
    """Four threads share one producer, two blocking and two in event loops of their own, and each message arrives once."""
    producer = Producer.connect_blocking(target.config)
    errors: list[BaseException] = []

    def send_blocking(worker: int) -> None:
        for i in range(PER_THREAD):
            producer.send_blocking(target.name, f"w{worker}-{i}", key=KAFKA_KEY if target.broker == "kafka" else None)

    def send_from_own_loop(worker: int) -> None:
        async def main() -> None:
            for i in range(PER_THREAD):
                await target.send(producer, f"w{worker}-{i}")

        asyncio.run(main())

    def run(worker: int) -> None:
        try:
            (send_blocking if worker % 2 == 0 else send_from_own_loop)(worker)
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=run, args=(w,)) for w in range(THREADS)]
        for thread in threads:
            thread.start()
        await asyncio.to_thread(lambda: [thread.join(120) for thread in threads])
    finally:
        await producer.close()
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)

    got = await target.receive(THREADS * PER_THREAD, timeout=60)
    counts = Counter(m.text for m in got)
    expected = {f"w{w}-{i}" for w in range(THREADS) for i in range(PER_THREAD)}
    assert set(counts) == expected
    assert set(counts.values()) == {1}
    # No copy is left over: a Kafka topic keeps consumed records, so it
    # contains exactly the sent ones, and a queue contains none.
    assert await target.count_stored() == (len(expected) if target.broker == "kafka" else 0)


async def test_concurrent_polls_get_distinct_messages(target: Target) -> None:
    """Polls awaited at once on one consumer never return the same message twice."""
    async with Producer.connect(target.config) as producer:
        await producer.send_batch([target.item(f"m{i}") for i in range(6)])
    seen: list[str] = []
    group = {"group": f"g-{uuid.uuid4().hex[:8]}"} if target.broker == "kafka" else {}
    async with Consumer.connect(target.config, **group) as consumer:
        await consumer.subscribe([target.name])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while len(seen) < 6 and loop.time() < deadline:
            batches = await asyncio.gather(*(consumer.poll(timeout_ms=500) for _ in range(3)))
            for batch in batches:
                seen.extend(m.text for m in batch)
                if batch:
                    await consumer.commit(batch)
    assert sorted(seen) == [f"m{i}" for i in range(6)]


# -- use after fork() ------------------------------------------------------------------------


def _in_child(action: Callable[[], object]) -> str:
    """Run action in a forked child and return what it raised, as "Class: message"."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            action()
            report = "no error"
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            report = f"{type(exc).__name__}: {exc}"
        os.write(write_end, report.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        ready, _, _ = select.select([pipe], [], [], 30)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "the child hung for 30 s"
        output = pipe.read().decode()
    os.waitpid(pid, 0)
    return output


@pytest.mark.parametrize("broker", BROKERS)
def test_clients_unusable_after_fork(broker: str, request: pytest.FixtureRequest) -> None:
    """A forked child gets InternalError from its parent's clients, which keep working in the parent."""
    if broker == "kafka":
        config: Any = request.getfixturevalue("kafka_config")
        name = request.getfixturevalue("topic")
    elif broker == "rabbitmq":
        config = request.getfixturevalue("rabbit_config")
        name = asyncio.run(rabbit_target(config)).name
    else:
        admin: SqsAdmin = request.getfixturevalue("sqs_admin")
        name = admin.create_queue("fork")
        config = SqsConfig.local(queue_url=name)
    async def open_consumer() -> Consumer:
        return await Consumer.connect(config)

    producer = Producer.connect_blocking(config)
    consumer = asyncio.run(open_consumer())
    try:
        # Sent first, so that a Kafka topic exists before the consumer subscribes.
        producer.send_blocking(name, "before the fork")
        asyncio.run(consumer.subscribe([name]))
        outcomes = {
            "send": _in_child(lambda: producer.send_blocking(name, "from the child")),
            "poll": _in_child(lambda: asyncio.run(consumer.poll(timeout_ms=0))),
            "connect": _in_child(lambda: Producer.connect_blocking(config)),
            "config": _in_child(lambda: config.replace()),
        }
        for what, outcome in outcomes.items():
            assert outcome.startswith(f"{InternalError.__name__}: cello's core library was started in a parent "
                                      "process and cannot run after fork()"), f"{what}: {outcome}"

        producer.send_blocking(name, "from the parent")

        async def poll_parent() -> list[Message]:
            got: list[Message] = []
            for _ in range(30):
                batch = await consumer.poll(timeout_ms=1000)
                if batch:
                    await consumer.commit(batch)
                    got.extend(batch)
                if len(got) >= 2:
                    break
            return got

        got = asyncio.run(poll_parent())
        assert sorted(m.text for m in got) == ["before the fork", "from the parent"]
    finally:
        asyncio.run(consumer.close())
        asyncio.run(producer.close())
