"""A RabbitMQ consumer app for the fault tests: it appends each handled value to a file.

Usage: python rabbitmq_worker.py QUEUE PREFETCH_COUNT OUTPUT_FILE

Each value is written with one O_APPEND write before the handler returns,
so after a SIGKILL the file lists exactly the messages whose handler
finished. The broker redelivers those that were not acknowledged.
"""

import os
import sys

from cello import App, RabbitMQConfig
from cello.messaging import Message, rabbitmq_consumer

queue, prefetch_count, output = sys.argv[1:4]
fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

app = App(shutdown_timeout=10)
app.enable_rabbitmq(RabbitMQConfig(url="amqp://guest:guest@127.0.0.1:5672"))


@rabbitmq_consumer(queue, prefetch_count=int(prefetch_count))
async def record(message: Message) -> None:
    os.write(fd, message.value + b"\n")


app.run(port=0)
