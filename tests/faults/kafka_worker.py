"""A consumer app for the crash tests: it appends each handled value to a file.

Usage: python kafka_worker.py TOPIC GROUP OUTPUT_FILE

Each value is written with one O_APPEND write before the handler returns,
so after a SIGKILL the file lists exactly the messages whose handler
finished. The broker may still redeliver those that were not committed.
"""

import os
import sys

from cello import App, KafkaConfig
from cello.messaging import Message, kafka_consumer

topic, group, output = sys.argv[1:4]
fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

app = App(shutdown_timeout=10)
app.enable_messaging(KafkaConfig(brokers="127.0.0.1:9092", group_id=group))


@kafka_consumer(topic=topic, group=group, auto_commit=False)
async def record(message: Message) -> None:
    os.write(fd, message.value + b"\n")


app.run(port=0)
