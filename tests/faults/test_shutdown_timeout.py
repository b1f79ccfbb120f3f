"""A handler still running when the shutdown timeout ends: the app exits and its message comes back.

slow_handler_app.py runs with App(shutdown_timeout=2) and a handler that
sleeps 30 s on one message. After SIGTERM the app must exit within
EXIT_BOUND_S without acknowledging that message, so a restarted app
handles it again.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from cello import KafkaConfig, RabbitMQConfig, SqsConfig
from cello.messaging import Consumer, Producer
from conftest import SqsAdmin
from fault_helpers import RABBITMQ_URL, Workers, handled, log_tail, stop_worker, wait_until
from fault_helpers import kafka_topic, rabbitmq_queue, workers  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.faults

VALUES = [f"v{i}" for i in range(20)]
SLOW = "v10"
# The 2 s shutdown timeout plus closing the consumer, and far below the
# 30 s that the slow handler sleeps.
EXIT_BOUND_S = 10.0


async def destination(broker: str, request: pytest.FixtureRequest) -> str:
    """Create a topic or queue with VALUES in it and return its name (an SQS queue's URL)."""
    if broker == "kafka":
        topic = str(request.getfixturevalue("kafka_topic"))
        async with Producer.connect(KafkaConfig(brokers="127.0.0.1:9092")) as producer:
            await producer.send_batch([{"topic": topic, "value": v} for v in VALUES])
        return topic
    if broker == "rabbitmq":
        queue = str(request.getfixturevalue("rabbitmq_queue"))
        config = RabbitMQConfig(url=RABBITMQ_URL)
        async with Consumer.connect(config) as consumer:
            await consumer.subscribe([queue])  # declares it, so the publishes are routed
        async with Producer.connect(config) as producer:
            await producer.send_batch([{"topic": queue, "value": v} for v in VALUES])
        return queue
    admin: SqsAdmin = request.getfixturevalue("sqs_admin")
    queue_url = admin.create_queue("slow")
    config = SqsConfig(queue_url=queue_url, endpoint_url="http://127.0.0.1:4566", use_dummy_credentials=True)
    async with Producer.connect(config) as producer:
        await producer.send_batch([{"queue": "", "value": v} for v in VALUES])
    return queue_url


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("broker", ["kafka", "rabbitmq", "sqs"])
async def test_unfinished_handler_not_acknowledged(broker: str, kind: str, workers: Workers, tmp_path: Path,
                                                   request: pytest.FixtureRequest) -> None:
    name = await destination(broker, request)
    output = tmp_path / "handled.txt"
    log = tmp_path / "app.log"

    proc = workers.start("slow_handler_app.py", broker, name, kind, str(output), SLOW, log=log)
    await wait_until(lambda: SLOW in handled(output), 60, f"the handler to start on {SLOW}", proc, log)
    start = time.monotonic()
    code = await stop_worker(proc, signal.SIGTERM, EXIT_BOUND_S)
    assert code is not None, f"the app still runs {EXIT_BOUND_S:.0f} s after SIGTERM\n{log_tail(log)}"
    assert code == 0, log_tail(log)
    stopped_after = time.monotonic() - start
    assert handled(output).count(SLOW) == 1

    # The same app without a slow value handles every message at once.
    proc = workers.start("slow_handler_app.py", broker, name, kind, str(output), log=log)
    await wait_until(lambda: handled(output).count(SLOW) >= 2 and set(handled(output)) >= set(VALUES), 60,
                     f"{SLOW} handled again", proc, log)
    assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)

    counts = Counter(handled(output))
    assert counts[SLOW] == 2, f"{SLOW} was handled {counts[SLOW]} times; the first stop took {stopped_after:.1f} s"
    assert set(counts) == set(VALUES)
