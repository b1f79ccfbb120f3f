"""An SQS Quick Start, runnable against the local SQS-compatible server.

``POST /orders`` returns a new order, which ``@sqs_producer`` publishes to an
SQS queue, and ``handle_order`` consumes each one from that queue. The queue
is CELLO_SQS_QUEUE_URL, by default http://localhost:4566/000000000000/orders,
and must exist: ``make demo`` creates its own, and by hand

    make brokers
    curl -X POST localhost:4566 -d 'Action=CreateQueue&QueueName=orders'
    python examples/sqs_quickstart.py
    curl -X POST localhost:8000/orders -d '{"item": "rosin"}'
"""

import itertools
import logging
import os

from cello import App, SqsConfig
from cello.messaging import Message, MessageResult, sqs_consumer, sqs_producer

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
log = logging.getLogger("sqs_quickstart")

QUEUE_URL = os.environ.get("CELLO_SQS_QUEUE_URL", "http://localhost:4566/000000000000/orders")

app = App()
app.enable_sqs(SqsConfig.local(queue_url=QUEUE_URL))
order_ids = itertools.count(1)


@app.post("/orders")
@sqs_producer(QUEUE_URL)
def create_order(request):
    order = {"order_id": next(order_ids), "item": request.json().get("item", "cello strings"), "status": "created"}
    log.info("created order %s", order)
    return order


@sqs_consumer()  # no queue_url: the SqsConfig's queue
async def handle_order(message: Message):
    log.info("handled order %s from %s (attempt %d)", message.json(), message.topic, message.attempt)
    return MessageResult.ACK


app.run()
