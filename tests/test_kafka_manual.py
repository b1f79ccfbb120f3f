"""Manual Producer and Consumer against the real Kafka broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cello import KafkaConfig
from cello.messaging import (
    ClosedError,
    ConfigurationError,
    ConnectionError,
    Consumer,
    Message,
    MessageTooLargeError,
    Producer,
    SerializationError,
)
from conftest import drain


async def test_spec_manual_example(kafka_config: KafkaConfig, topic: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The Manual Producer/Consumer example of the documentation, on two real topics."""
    t1 = topic
    t2 = topic + "-b"
    config = kafka_config

    producer = await Producer.connect(config)
    await producer.send(t2, {"key": "value"})
    await producer.send_batch([
        {"topic": t1, "value": "msg1"},
        {"topic": t1, "value": "msg2"},
    ])
    await producer.close()

    consumer = await Consumer.connect(config)
    await consumer.subscribe([t1, t2])
    seen: list[str] = []
    for _ in range(60):
        messages = await consumer.poll(timeout_ms=1000)
        for msg in messages:
            print(msg.text)
            seen.append(msg.text)
            await consumer.commit(msg)
        if len(seen) >= 3:
            break
    await consumer.close()

    assert sorted(seen) == sorted(['{"key":"value"}', "msg1", "msg2"])
    printed = capsys.readouterr().out.splitlines()
    assert sorted(printed) == sorted(seen)


async def test_round_trip_values_keys_headers(kafka_config: KafkaConfig, topic: str) -> None:
    async with Producer.connect(kafka_config) as producer:
        r1 = await producer.send(topic, {"n": 1, "s": "é"}, key="k1", headers={"h": "v", "b": b"\x00\x01"})
        r2 = await producer.send(topic, "plain text", key=b"\xff\x00")
        r3 = await producer.send(topic, b"\x00\x01\x02")
    assert r1.topic == topic
    assert r1.offset >= 0
    assert r1.partition >= 0
    assert r1.message_id == f"{topic}-{r1.partition}-{r1.offset}"
    assert r2.message_id == f"{topic}-{r2.partition}-{r2.offset}"

    got = await drain(kafka_config, topic, 3)
    by_text = {m.value: m for m in got}
    assert set(by_text) == {'{"n":1,"s":"é"}'.encode(), b"plain text", b"\x00\x01\x02"}
    m1 = by_text['{"n":1,"s":"é"}'.encode()]
    assert m1.json() == {"n": 1, "s": "é"}
    assert m1.key == "k1"
    assert m1.headers == {"h": b"v", "b": b"\x00\x01"}
    assert m1.id == r1.message_id
    assert m1.topic == topic
    assert m1.partition == r1.partition
    assert m1.offset == r1.offset
    assert m1.timestamp is not None
    assert by_text[b"plain text"].key == b"\xff\x00"
    assert by_text[b"plain text"].id == r2.message_id
    assert by_text[b"\x00\x01\x02"].key is None
    assert by_text[b"\x00\x01\x02"].id == r3.message_id


async def test_send_batch_results_in_order(kafka_config: KafkaConfig, topic: str) -> None:
    async with Producer.connect(kafka_config) as producer:
        results = await producer.send_batch(
            [{"topic": topic, "value": f"m{i}", "key": "same"} for i in range(50)]
        )
    assert len(results) == 50
    offsets = [r.offset for r in results]
    assert offsets == sorted(offsets)
    assert len({r.partition for r in results}) == 1
    got = await drain(kafka_config, topic, 50)
    assert [m.text for m in got] == [f"m{i}" for i in range(50)]


async def test_uncommitted_messages_are_redelivered(kafka_config: KafkaConfig, topic: str) -> None:
    """A consumer that closes without committing leaves the messages for the group."""
    async with Producer.connect(kafka_config) as producer:
        await producer.send_batch([{"topic": topic, "value": f"m{i}"} for i in range(10)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    first = await drain_without_commit(kafka_config, topic, group, 10)
    assert len(first) == 10
    again = await drain(kafka_config, topic, 10, group=group)
    assert sorted(m.text for m in again) == sorted(f"m{i}" for i in range(10))
    after_commit = await drain(kafka_config, topic, 1, timeout=5, group=group)
    assert after_commit == []


async def drain_without_commit(config: KafkaConfig, topic: str, group: str, expected: int) -> list[Message]:
    out: list[Message] = []
    async with Consumer.connect(config, group=group) as consumer:
        await consumer.subscribe([topic])
        for _ in range(60):
            out.extend(await consumer.poll(timeout_ms=500))
            if len(out) >= expected:
                break
    return out


async def test_poll_respects_max_poll_records(kafka_config: KafkaConfig, topic: str) -> None:
    config = kafka_config.replace(max_poll_records=7)
    async with Producer.connect(config) as producer:
        await producer.send_batch([{"topic": topic, "value": str(i), "key": "k"} for i in range(30)])
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe([topic])
        sizes = []
        total = 0
        for _ in range(60):
            batch = await consumer.poll(timeout_ms=500)
            if batch:
                sizes.append(len(batch))
                total += len(batch)
                await consumer.commit(batch)
            if total >= 30:
                break
    assert total == 30
    assert max(sizes) <= 7


async def test_message_too_large_sends_nothing(kafka_config: KafkaConfig, topic: str) -> None:
    async with Producer.connect(kafka_config) as producer:
        with pytest.raises(MessageTooLargeError, match="over the limit of 1000000 bytes"):
            await producer.send_batch([
                {"topic": topic, "value": "small"},
                {"topic": topic, "value": b"x" * 1_000_001},
            ])
    assert await drain(kafka_config, topic, 1, timeout=5) == []


async def test_bad_values_raise_before_sending(kafka_config: KafkaConfig, topic: str) -> None:
    async with Producer.connect(kafka_config) as producer:
        with pytest.raises(SerializationError, match="type set cannot be sent"):
            await producer.send(topic, {1, 2})
        with pytest.raises(ConfigurationError, match="topic must be a non-empty str"):
            await producer.send("", "x")
        with pytest.raises(ConfigurationError, match="item 1 has unknown field"):
            await producer.send_batch([{"topic": topic, "value": 1}, {"topic": topic, "valu": 2}])


async def test_close_twice_and_use_after_close(kafka_config: KafkaConfig, topic: str) -> None:
    producer = await Producer.connect(kafka_config)
    await producer.close()
    await producer.close()
    with pytest.raises(ClosedError, match="producer is closed"):
        await producer.send(topic, "x")
    consumer = await Consumer.connect(kafka_config)
    await consumer.close()
    await consumer.close()
    with pytest.raises(ClosedError, match="consumer is closed"):
        await consumer.poll()


async def test_unreachable_broker_fails_fast() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused.
    config = KafkaConfig(brokers="127.0.0.1:1", connect_timeout_ms=2000)
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(ConnectionError, match="no kafka broker responded at 127.0.0.1:1"):
        await Producer.connect(config)
    with pytest.raises(ConnectionError):
        await Consumer.connect(config)
    assert loop.time() - start < 15


async def test_handles_released_after_close(kafka_config: KafkaConfig, topic: str) -> None:
    import gc

    from cello import _native

    lib = _native.library()
    # Configs of earlier tests may still wait for the cycle collector. Run
    # it now and keep it off, so only this test's handles change the count.
    gc.collect()
    gc.disable()
    try:
        before = lib.live_handles()
        async with Producer.connect(kafka_config) as producer:
            await producer.send(topic, "x")
            async with Consumer.connect(kafka_config) as consumer:
                await consumer.subscribe([topic])
                assert lib.live_handles() == before + 2
        assert lib.live_handles() == before
        config = KafkaConfig.local()
        assert lib.live_handles() == before + 1
        del config
        assert lib.live_handles() == before
    finally:
        gc.enable()


async def test_cancelled_poll_keeps_messages(kafka_config: KafkaConfig, topic: str) -> None:
    """A poll cancelled by a timeout hands its messages to the next poll."""
    async with Producer.connect(kafka_config) as producer:
        await producer.send_batch([{"topic": topic, "value": f"m{i}"} for i in range(20)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    async with Consumer.connect(kafka_config, group=group) as consumer:
        await consumer.subscribe([topic])
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.poll(timeout_ms=5000), 0.05)
        got: list[Message] = []
        for _ in range(60):
            batch = await consumer.poll(timeout_ms=500)
            got.extend(batch)
            if batch:
                await consumer.commit(batch)
            if len(got) >= 20:
                break
    assert sorted(m.text for m in got) == sorted(f"m{i}" for i in range(20))
    assert await drain(kafka_config, topic, 1, timeout=5, group=group) == []


async def test_invalid_topic_names_rejected(kafka_config: KafkaConfig) -> None:
    async with Producer.connect(kafka_config) as producer:
        with pytest.raises(ConfigurationError, match="contains"):
            await producer.send("x\x00suffix", "v")
        with pytest.raises(ConfigurationError, match="contains"):
            await producer.send("has space", "v")
        with pytest.raises(ConfigurationError, match="NUL byte"):
            await producer.send("fine", "v", headers={"h\x00name": "v"})
    async with Consumer.connect(kafka_config) as consumer:
        with pytest.raises(ConfigurationError, match="contains"):
            await consumer.subscribe(["bad/topic"])


async def test_poll_arguments_checked(kafka_config: KafkaConfig) -> None:
    async with Consumer.connect(kafka_config) as consumer:
        with pytest.raises(ConfigurationError, match="max_records must be an int"):
            await consumer.poll(max_records="5")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="timeout_ms must be an int from 0 to 3600000"):
            await consumer.poll(timeout_ms=10**13)


async def test_connect_timeout_honoured() -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(ConnectionError):
        await Producer.connect(KafkaConfig(brokers="127.0.0.1:1"), timeout_ms=500)
    assert loop.time() - start < 2.5


async def test_producer_shared_by_threads(kafka_config: KafkaConfig, topic: str) -> None:
    """Eight threads sending through one producer each get their own acknowledgements."""
    import concurrent.futures

    producer = Producer.connect_blocking(kafka_config)
    try:
        def send_many(worker: int) -> list[str]:
            return [producer.send_blocking(topic, f"w{worker}-{i}").message_id for i in range(50)]

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            ids = await asyncio.gather(
                *(asyncio.get_running_loop().run_in_executor(pool, send_many, w) for w in range(8))
            )
    finally:
        await producer.close()
    flat = [i for chunk in ids for i in chunk]
    assert len(flat) == 400
    assert len(set(flat)) == 400
    got = await drain(kafka_config, topic, 400)
    assert sorted(m.text for m in got) == sorted(f"w{w}-{i}" for w in range(8) for i in range(50))


async def test_password_absent_from_logs_and_errors(kafka_config: KafkaConfig, caplog: pytest.LogCaptureFixture) -> None:
    """A SASL login that fails logs and raises without the password."""
    from cello import _native

    secret = "pw-" + uuid.uuid4().hex
    config = KafkaConfig(
        brokers="127.0.0.1:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password=secret,
        connect_timeout_ms=2000,
        extra={"ssl.key.password": secret + "-2"},
    )
    _native.set_log_level(10)
    try:
        with caplog.at_level("DEBUG", logger="cello"):
            with pytest.raises(ConnectionError) as info:
                await Producer.connect(config)
            await asyncio.sleep(0.5)  # let the core's last log records arrive
    finally:
        _native.set_log_level(20)
    assert secret not in str(info.value)
    assert secret not in repr(config)
    assert caplog.records, "expected the failed connect to log something"
    for record in caplog.records:
        assert secret not in record.getMessage()
