"""An SQS consumer app for the fault tests: it appends each handled value to a file.

Usage: python sqs_worker.py QUEUE_URL VISIBILITY_TIMEOUT_SECS OUTPUT_FILE

Each value is written with one O_APPEND write before the handler returns,
so after a SIGKILL the file lists exactly the messages whose handler
finished. SQS makes those that were not deleted visible again once their
visibility timeout ends.
"""

import os
import sys

from cello import App, SqsConfig
from cello.messaging import Message, sqs_consumer

queue_url, visibility_timeout_secs, output = sys.argv[1:4]
fd = os.open(output, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

app = App(shutdown_timeout=10)
app.enable_sqs(SqsConfig(queue_url=queue_url, endpoint_url="http://127.0.0.1:4566", use_dummy_credentials=True,
                         visibility_timeout_secs=int(visibility_timeout_secs)))


@sqs_consumer()
async def record(message: Message) -> None:
    os.write(fd, message.value + b"\n")


app.run(port=0)
