"""Kafka benchmark clients: cello and its Python peers, one function each.

Every function runs in its own worker process (worker.py), takes the
params dict built by run.py and returns a ``Meter`` record.

Producers run for ``duration`` seconds and count acknowledged messages.
Each sends one message before the timed section, so the topic's metadata
is fetched outside it. All use acks=all with idempotence, which is cello's
default for acks=all.

Consumers start their clock before subscribing (the pipelines: before the
app or broker starts, since that is where they subscribe) and stop it at
the message that reaches ``limit`` or the first one handled after
``duration`` seconds. Every message's value is read once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from measure import Meter

# Seconds a consumer waits for its first message before it gives up.
FIRST_MESSAGE_TIMEOUT = 60.0
# Seconds a consumer waits for the next message before it stops early,
# unless the params set "idle_timeout".
IDLE_TIMEOUT = 10.0


class ConsumeProgress:
    """Count of handled messages, and the rule that ends a consume run."""

    def __init__(self, meter: Meter, params: dict[str, Any]) -> None:
        self.meter = meter
        self.limit = int(params["limit"])
        self.duration = float(params["duration"])
        self.idle_timeout = float(params.get("idle_timeout", IDLE_TIMEOUT))
        self.count = 0
        self.last_message_at = time.perf_counter()
        self.done = False

    def add(self, messages: int) -> bool:
        """Count handled messages and return True, once, when the run ends."""
        if self.done:
            return False
        self.count += messages
        self.last_message_at = time.perf_counter()
        if self.count >= self.limit or self.meter.elapsed() >= self.duration:
            self.done = True
            self.meter.stop(self.count)
            return True
        return False

    def check_idle(self) -> None:
        """Stop the run when messages stopped arriving, or fail if none came.

        The run's wall time then ends at the last message, but its CPU time
        includes the idle wait.
        """
        if self.done:
            return
        idle = time.perf_counter() - self.last_message_at
        if self.count == 0 and self.meter.elapsed() > FIRST_MESSAGE_TIMEOUT:
            raise RuntimeError(f"no message arrived within {FIRST_MESSAGE_TIMEOUT:.0f} s")
        if self.count > 0 and idle > self.idle_timeout:
            self.done = True
            self.meter.stop(self.count, end=self.last_message_at, stopped_idle=True,
                            missing=self.limit - self.count)


# -- cello ----------------------------------------------------------------


def _cello_config(params: dict[str, Any], **fields: Any) -> Any:
    from cello import KafkaConfig

    return KafkaConfig(brokers=params["bootstrap"], client_id="bench-cello", acks="all", **fields)


async def cello_produce(params: dict[str, Any]) -> dict[str, Any]:
    from cello.messaging import Producer

    topic, value = params["topic"], b"x" * params["value_size"]
    meter = Meter()
    async with Producer.connect(_cello_config(params)) as producer:
        await producer.send(topic, value)
        sent = 0
        meter.start()
        if params["mode"] == "batch":
            batch = [{"topic": topic, "value": value} for _ in range(params["batch"])]
            while meter.elapsed() < params["duration"]:
                await producer.send_batch(batch)
                sent += len(batch)
        else:
            while meter.elapsed() < params["duration"]:
                await producer.send(topic, value)
                sent += 1
        record = meter.stop(sent)
    return record


async def cello_consume_manual(params: dict[str, Any]) -> dict[str, Any]:
    from cello.messaging import Consumer

    config = _cello_config(params, group_id=params["group"], auto_commit=False, max_poll_records=500)
    meter = Meter()
    progress = ConsumeProgress(meter, params)
    async with Consumer.connect(config, group=params["group"], auto_commit=False) as consumer:
        meter.start()
        await consumer.subscribe([params["topic"]])
        while not progress.done:
            batch = await consumer.poll(timeout_ms=1000)
            if not batch:
                progress.check_idle()
                continue
            for message in batch:
                message.value
            await consumer.commit(batch)
            progress.add(len(batch))
    assert meter.record is not None
    return meter.record


async def cello_consume_pipeline(params: dict[str, Any]) -> dict[str, Any]:
    from cello import App
    from cello.messaging import Message, kafka_consumer

    app = App()
    app.enable_messaging(_cello_config(params, group_id=params["group"]))
    meter = Meter()
    progress = ConsumeProgress(meter, params)

    @kafka_consumer(topic=params["topic"], group=params["group"])
    async def handle(message: Message) -> None:
        message.value
        if progress.add(1):
            app.stop()

    meter.start()
    serving = asyncio.create_task(app.serve("127.0.0.1", 0, install_signal_handlers=False))
    while not progress.done and not serving.done():
        await asyncio.sleep(0.5)
        progress.check_idle()
    app.stop()
    await serving
    assert meter.record is not None
    return meter.record


# -- confluent-kafka --------------------------------------------------------


def confluent_produce(params: dict[str, Any]) -> dict[str, Any]:
    import confluent_kafka

    producer = confluent_kafka.Producer({
        "bootstrap.servers": params["bootstrap"],
        "client.id": "bench-confluent",
        "acks": "all",
        "enable.idempotence": True,
    })
    failures: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    topic, value, batch = params["topic"], b"x" * params["value_size"], params["batch"]
    producer.produce(topic, value, on_delivery=on_delivery)
    producer.flush()
    meter = Meter()
    sent = 0
    meter.start()
    while meter.elapsed() < params["duration"]:
        for _ in range(batch):
            producer.produce(topic, value, on_delivery=on_delivery)
        producer.flush()
        sent += batch
    record = meter.stop(sent)
    if failures:
        raise RuntimeError(f"{len(failures)} deliveries failed, first: {failures[0]}")
    return record


def confluent_consume_manual(params: dict[str, Any]) -> dict[str, Any]:
    import confluent_kafka

    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": params["bootstrap"],
        "client.id": "bench-confluent",
        "group.id": params["group"],
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    meter = Meter()
    progress = ConsumeProgress(meter, params)
    meter.start()
    consumer.subscribe([params["topic"]])
    while not progress.done:
        batch = consumer.consume(500, timeout=1.0)
        if not batch:
            progress.check_idle()
            continue
        for message in batch:
            if message.error() is not None:
                raise RuntimeError(f"consume failed: {message.error()}")
            message.value()
        consumer.commit(asynchronous=False)
        progress.add(len(batch))
    consumer.close()
    assert meter.record is not None
    return meter.record


# -- aiokafka -------------------------------------------------------------


async def aiokafka_produce(params: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=params["bootstrap"],
        client_id="bench-aiokafka",
        acks="all",
        enable_idempotence=True,
    )
    await producer.start()
    topic, value = params["topic"], b"x" * params["value_size"]
    meter = Meter()
    try:
        await producer.send_and_wait(topic, value)
        sent = 0
        meter.start()
        if params["mode"] == "batch":
            while meter.elapsed() < params["duration"]:
                acks = [await producer.send(topic, value) for _ in range(params["batch"])]
                await asyncio.gather(*acks)
                sent += len(acks)
        else:
            while meter.elapsed() < params["duration"]:
                await producer.send_and_wait(topic, value)
                sent += 1
        record = meter.stop(sent)
    finally:
        await producer.stop()
    return record


# -- FastStream (aiokafka underneath) -------------------------------------


async def faststream_consume_pipeline(params: dict[str, Any]) -> dict[str, Any]:
    from faststream.kafka import KafkaBroker

    # No per-message log lines: cello's pipeline logs none either.
    broker = KafkaBroker(params["bootstrap"], client_id="bench-faststream", logger=None)
    meter = Meter()
    progress = ConsumeProgress(meter, params)
    finished = asyncio.Event()

    # The default ack policy (ACK_FIRST) lets aiokafka auto-commit what it
    # fetched; committing after each message instead would commit once per
    # message.
    @broker.subscriber(params["topic"], group_id=params["group"], auto_offset_reset="earliest")
    async def handle(body: bytes) -> None:
        if progress.add(1):
            finished.set()

    meter.start()
    await broker.start()
    try:
        while not progress.done:
            try:
                await asyncio.wait_for(finished.wait(), 0.5)
            except asyncio.TimeoutError:
                progress.check_idle()
    finally:
        await broker.stop()
    assert meter.record is not None
    return meter.record
