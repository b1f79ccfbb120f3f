"""An app whose only consumer's broker cannot be reached.

Usage: python unreachable_app.py kafka|rabbitmq|sqs PORT

The broker address is 127.0.0.1:PORT. Every connect timeout is 60 s, longer
than the tests wait after SIGINT, so the app can meet their bound only by
acting on the signal.
"""

import sys

from cello import App, KafkaConfig, RabbitMQConfig, SqsConfig
from cello.messaging import Message, kafka_consumer, rabbitmq_consumer, sqs_consumer

CONNECT_TIMEOUT_MS = 60_000

broker, port = sys.argv[1:3]
address = f"127.0.0.1:{int(port)}"
app = App(shutdown_timeout=5)


async def handle(message: Message) -> None:
    raise AssertionError(f"no message can arrive from an unreachable broker, got {message.value!r}")


if broker == "kafka":
    app.enable_kafka(KafkaConfig(brokers=address, group_id="unreachable", connect_timeout_ms=CONNECT_TIMEOUT_MS))
    kafka_consumer(topic="unreachable", group="unreachable")(handle)
elif broker == "rabbitmq":
    app.enable_rabbitmq(RabbitMQConfig(url=f"amqp://guest:guest@{address}", connection_timeout_ms=CONNECT_TIMEOUT_MS))
    rabbitmq_consumer("unreachable")(handle)
elif broker == "sqs":
    app.enable_sqs(SqsConfig(queue_url=f"http://{address}/000000000000/q", endpoint_url=f"http://{address}",
                             use_dummy_credentials=True, request_timeout_ms=CONNECT_TIMEOUT_MS))
    sqs_consumer()(handle)
else:
    raise SystemExit(f"unknown broker {broker!r}; expected kafka, rabbitmq or sqs")

app.run(port=0)
