"""An app whose handler blocks for 30 s on one message, for the shutdown timeout tests.

Usage: python slow_handler_app.py kafka|rabbitmq|sqs NAME async|sync OUTPUT_FILE [SLOW_VALUE]

NAME is the Kafka topic (consumed by the group NAME-group), the RabbitMQ
queue or the SQS queue URL. The handler, a coroutine or a plain function as
the third argument selects, appends each value to OUTPUT_FILE with one
O_APPEND write, then sleeps 30 s if the value is SLOW_VALUE. The app's
shutdown timeout is 2 s.
"""

import asyncio
import os
import sys
import time

from cello import App, KafkaConfig, RabbitMQConfig, SqsConfig
from cello.messaging import Message, kafka_consumer, rabbitmq_consumer, sqs_consumer

SLOW_SECONDS = 30

broker, name, kind, output = sys.argv[1:5]
slow_value = sys.argv[5].encode() if len(sys.argv) > 5 else None
fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

app = App(shutdown_timeout=2)


async def handle_async(message: Message) -> None:
    os.write(fd, message.value + b"\n")
    if message.value == slow_value:
        await asyncio.sleep(SLOW_SECONDS)


def handle_sync(message: Message) -> None:
    os.write(fd, message.value + b"\n")
    if message.value == slow_value:
        time.sleep(SLOW_SECONDS)


handler = {"async": handle_async, "sync": handle_sync}[kind]

if broker == "kafka":
    app.enable_kafka(KafkaConfig(brokers="127.0.0.1:9092", group_id=f"{name}-group"))
    kafka_consumer(topic=name, group=f"{name}-group")(handler)
elif broker == "rabbitmq":
    app.enable_rabbitmq(RabbitMQConfig(url="amqp://guest:guest@127.0.0.1:5672"))
    rabbitmq_consumer(name)(handler)
elif broker == "sqs":
    app.enable_sqs(SqsConfig(queue_url=name, endpoint_url="http://127.0.0.1:4566", use_dummy_credentials=True,
                             visibility_timeout_secs=5))
    sqs_consumer()(handler)
else:
    raise SystemExit(f"unknown broker {broker!r}; expected kafka, rabbitmq or sqs")

app.run(port=0)
