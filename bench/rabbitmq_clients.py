"""RabbitMQ benchmark clients: cello, aio-pika and FastStream.

Publishers send persistent messages with the mandatory flag, as cello's
producer does. They publish through the default exchange to a durable queue
that run.py declared, on a channel in confirm mode, for ``duration``
seconds, and count confirmed messages. Consumers use a prefetch count of
``prefetch`` and stop as the Kafka ones do (see kafka_clients.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

from kafka_clients import ConsumeProgress
from measure import Meter, Unavailable


def _cello_config(params: dict[str, Any]) -> Any:
    from cello import RabbitMQConfig
    from cello.messaging import ConfigurationError

    try:
        return RabbitMQConfig(url=params["url"], prefetch_count=params.get("prefetch", 10))
    except ConfigurationError as exc:
        # The Go core of this build has no RabbitMQ kind yet.
        if "unknown broker kind" in str(exc):
            raise Unavailable(str(exc)) from exc
        raise


# -- cello ----------------------------------------------------------------


def cello_check(params: dict[str, Any]) -> dict[str, Any]:
    """Raise Unavailable unless this cello build accepts a RabbitMQ config."""
    _cello_config(params)
    return {}


async def cello_publish(params: dict[str, Any]) -> dict[str, Any]:
    from cello.messaging import Producer

    queue, value = params["queue"], b"x" * params["value_size"]
    meter = Meter()
    async with Producer.connect(_cello_config(params)) as producer:
        await producer.send(queue, value)
        sent = 0
        meter.start()
        if params["mode"] == "batch":
            batch = [{"topic": queue, "value": value} for _ in range(params["batch"])]
            while meter.elapsed() < params["duration"]:
                await producer.send_batch(batch)
                sent += len(batch)
        else:
            while meter.elapsed() < params["duration"]:
                await producer.send(queue, value)
                sent += 1
        record = meter.stop(sent)
    return record


async def cello_consume_manual(params: dict[str, Any]) -> dict[str, Any]:
    from cello.messaging import Consumer

    meter = Meter()
    progress = ConsumeProgress(meter, params)
    config = _cello_config(params)
    async with Consumer.connect(config, prefetch_count=params["prefetch"]) as consumer:
        meter.start()
        await consumer.subscribe([params["queue"]])
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
    from cello.messaging import Message, rabbitmq_consumer

    app = App()
    app.enable_rabbitmq(_cello_config(params))
    meter = Meter()
    progress = ConsumeProgress(meter, params)

    @rabbitmq_consumer(params["queue"], prefetch_count=params["prefetch"])
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


# -- aio-pika -------------------------------------------------------------


def _persistent(body: bytes) -> Any:
    import aio_pika

    return aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


async def aiopika_publish(params: dict[str, Any]) -> dict[str, Any]:
    import aio_pika

    queue, body = params["queue"], b"x" * params["value_size"]
    connection = await aio_pika.connect(params["url"])
    meter = Meter()
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = channel.default_exchange
        await exchange.publish(_persistent(body), routing_key=queue, mandatory=True)
        sent = 0
        meter.start()
        if params["mode"] == "batch":
            while meter.elapsed() < params["duration"]:
                await asyncio.gather(*(
                    exchange.publish(_persistent(body), routing_key=queue, mandatory=True)
                    for _ in range(params["batch"])
                ))
                sent += params["batch"]
        else:
            while meter.elapsed() < params["duration"]:
                await exchange.publish(_persistent(body), routing_key=queue, mandatory=True)
                sent += 1
        record = meter.stop(sent)
    return record


async def aiopika_consume(params: dict[str, Any]) -> dict[str, Any]:
    import aio_pika

    connection = await aio_pika.connect(params["url"])
    meter = Meter()
    progress = ConsumeProgress(meter, params)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=params["prefetch"])
        meter.start()
        queue = await channel.declare_queue(params["queue"], durable=True)
        async with queue.iterator() as messages:
            while not progress.done:
                try:
                    message = await asyncio.wait_for(messages.__anext__(), 1.0)
                except asyncio.TimeoutError:
                    progress.check_idle()
                    continue
                message.body
                await message.ack()
                progress.add(1)
    assert meter.record is not None
    return meter.record


# -- FastStream (aio-pika underneath) -------------------------------------


async def faststream_consume_pipeline(params: dict[str, Any]) -> dict[str, Any]:
    from faststream.rabbit import Channel, RabbitBroker, RabbitQueue

    # No per-message log lines: cello's pipeline logs none either.
    broker = RabbitBroker(
        params["url"], default_channel=Channel(prefetch_count=params["prefetch"]), logger=None
    )
    meter = Meter()
    progress = ConsumeProgress(meter, params)
    finished = asyncio.Event()

    # The default ack policy acknowledges each message after its handler.
    @broker.subscriber(RabbitQueue(params["queue"], durable=True))
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


# -- setup helpers used by run.py -----------------------------------------


async def declare_and_fill(url: str, queue: str, count: int, value_size: int) -> None:
    """Declare a durable queue and fill it with ``count`` persistent messages.

    Publishes through aiormq (aio-pika's protocol layer) without confirms,
    which is about twice as fast as aio-pika with confirms. Then waits until
    the queue contains every message.
    """
    import aiormq
    from pamqp.commands import Basic

    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.queue_declare(queue, durable=True)
        body = b"x" * value_size
        properties = Basic.Properties(delivery_mode=2)
        for _ in range(count):
            await channel.basic_publish(body, routing_key=queue, properties=properties)
        for _ in range(600):
            declared = await channel.queue_declare(queue, durable=True, passive=True)
            if declared.message_count >= count:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"filling queue {queue} timed out: it contains {declared.message_count} "
                           f"of {count} messages after 60 s")
    finally:
        await connection.close()


async def delete_queues(url: str, queues: list[str]) -> None:
    """Delete queues, ignoring those that do not exist."""
    import aio_pika

    connection = await aio_pika.connect(url)
    async with connection:
        for name in queues:
            channel = await connection.channel()
            try:
                await channel.queue_delete(name)
            except aio_pika.exceptions.ChannelClosed:
                pass
