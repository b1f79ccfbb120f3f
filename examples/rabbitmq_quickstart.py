"""RabbitMQ with cello: an HTTP route publishes to a queue, a consumer handles it.

    make build brokers && PYTHONPATH=python python examples/rabbitmq_quickstart.py
    curl -X POST localhost:8000/signups -d '{"user": "ada"}'
"""

import logging

from cello import App, RabbitMQConfig
from cello.messaging import Message, MessageResult, rabbitmq_consumer, rabbitmq_producer

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
log = logging.getLogger("rabbitmq_quickstart")

app = App()
app.enable_rabbitmq(RabbitMQConfig.local())


@app.post("/signups")
@rabbitmq_producer("signups")
def create_signup(request):
    return {"user": request.json()["user"], "status": "pending"}


@rabbitmq_consumer("signups", prefetch_count=20)
async def welcome(message: Message):
    signup = message.json()
    log.info("welcomed %s (message %s, attempt %d)", signup["user"], message.id, message.attempt)
    return MessageResult.ACK


app.run()
