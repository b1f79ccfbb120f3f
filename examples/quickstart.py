"""The documentation's Quick Start, runnable against the local Kafka broker.

The lines between the two markers are the Quick Start as documented. Around
them this file adds only what the documentation leaves to the reader: a
logging setup, the ``fulfill_order`` coroutine it awaits, and a consumer of
``order-events`` so the demo can show what ``POST /orders`` published.

    make build brokers && PYTHONPATH=python python examples/quickstart.py
    curl -X POST localhost:8000/orders
"""

import logging

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
log = logging.getLogger("quickstart")


async def fulfill_order(order):
    log.info("fulfilled order %s", order)


# --- Quick Start, as documented ---
from cello import App, KafkaConfig, RabbitMQConfig, SqsConfig
from cello.messaging import kafka_consumer, kafka_producer, Message, MessageResult

app = App()
app.enable_messaging(KafkaConfig(brokers="localhost:9092", group_id="my-app"))

@kafka_consumer(topic="orders", group="order-processor")
async def process_order(message: Message):
    order = message.json()
    await fulfill_order(order)
    return MessageResult.ACK

@app.post("/orders")
@kafka_producer(topic="order-events")
def create_order(request):
    return {"order_id": 1, "status": "created"}
# --- end of the Quick Start, except app.run() below ---


@kafka_consumer(topic="order-events", group="order-audit")
async def audit_order_event(message: Message):
    log.info("order event %s from partition %s offset %s", message.json(), message.partition, message.offset)


app.run()
