"""Delivery under faults on the local SQS server (ElasticMQ): crashes and graceful stops.

These start real worker processes (sqs_worker.py) and count what they
handled. The crash test sends 20,000 messages, as the Kafka and RabbitMQ ones
do: with batched sends, receives and deletes it took about 13 s on a 2-core
machine, so it needs no smaller count to stay short. Run them with
``make test-faults``.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from cello import SqsConfig
from cello.messaging import Producer
from conftest import SqsAdmin
from fault_helpers import Workers, handled, log_tail, stop_worker, wait_until
from fault_helpers import workers  # noqa: F401 - a fixture used by name

pytestmark = pytest.mark.faults

TOTAL = 20_000
# A killed worker's messages come back only when their visibility timeout
# ends; 5 s keeps the test short and is still far above one batch's work.
VISIBILITY_TIMEOUT_SECS = 5
MAX_MESSAGES = 10  # SqsConfig's default: messages per ReceiveMessage call
CONCURRENCY = 10  # sqs_consumer's default: handlers running at once


def local_config(queue_url: str) -> SqsConfig:
    return SqsConfig(queue_url=queue_url, endpoint_url="http://127.0.0.1:4566", use_dummy_credentials=True)


async def send(config: SqsConfig, values: list[str]) -> None:
    async with Producer.connect(config) as producer:
        await producer.send_batch([{"queue": "", "value": v} for v in values])


async def test_sigkill_three_times_loses_nothing(sqs_admin: SqsAdmin, workers: Workers, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every message is handled at least once, and each kill repeats at most the messages not yet deleted."""
    queue_url = sqs_admin.create_queue("crash")
    config = local_config(queue_url)
    values = [f"m{i}" for i in range(TOTAL)]
    await send(config, values)
    output = tmp_path / "handled.txt"
    log = tmp_path / "worker.log"
    rng = random.Random(5)
    # One kill in each third of the stream, at a seeded random point.
    third = (TOTAL - 1000) // 3
    kill_points = [rng.randrange(500 + k * third, 500 + (k + 1) * third) for k in range(3)]

    for point in kill_points:
        proc = workers.start("sqs_worker.py", queue_url, str(VISIBILITY_TIMEOUT_SECS), str(output), log=log)
        await wait_until(lambda: len(handled(output)) >= point, 120, f"{point} handled", proc, log)
        proc.kill()
        proc.wait(timeout=30)

    proc = workers.start("sqs_worker.py", queue_url, str(VISIBILITY_TIMEOUT_SECS), str(output), log=log)
    await wait_until(lambda: len(set(handled(output))) >= TOTAL, 150, "every message handled", proc, log)
    # Messages that the last killed worker handled but did not delete come
    # back after their visibility timeout. The queue is empty only once they
    # were handled again.
    await wait_until(lambda: sqs_admin.counts(queue_url) == (0, 0), 60, "an empty queue", proc, log)
    assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)

    counts = Counter(handled(output))
    missing = set(values) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    with capsys.disabled():
        print(f"\nsqs crash test: {TOTAL} messages, kills after {kill_points} handled, "
              f"{len(missing)} missing, {duplicates} duplicates")
    assert not missing
    assert set(counts) == set(values)
    # A message is deleted only after its handler returned. A kill repeats
    # those received and not yet deleted: the batch being handled plus
    # acknowledged ones waiting for their DeleteMessageBatch call. Up to
    # MAX_MESSAGES x CONCURRENCY of them are allowed per kill.
    assert duplicates <= 3 * MAX_MESSAGES * CONCURRENCY


async def test_sigterm_drains_and_restart_repeats_nothing(sqs_admin: SqsAdmin, workers: Workers,
                                                          tmp_path: Path) -> None:
    """SIGTERM while messages keep arriving: exit 0, and the restarted worker repeats nothing."""
    queue_url = sqs_admin.create_queue("term")
    config = local_config(queue_url)
    values = [f"m{i}" for i in range(6000)]
    output = tmp_path / "handled.txt"
    log = tmp_path / "worker.log"

    async def stream() -> None:
        # 50 messages every 50 ms, for at least 6 s: the stream still flows
        # when the first worker stops and after the second one starts.
        async with Producer.connect(config) as producer:
            for start in range(0, len(values), 50):
                await producer.send_batch([{"queue": "", "value": v} for v in values[start:start + 50]])
                await asyncio.sleep(0.05)

    sending = asyncio.create_task(stream())
    try:
        proc = workers.start("sqs_worker.py", queue_url, str(VISIBILITY_TIMEOUT_SECS), str(output), log=log)
        await wait_until(lambda: len(handled(output)) >= 500, 120, "500 handled", proc, log)
        assert not sending.done(), "the stream ended before the stop; it does not test a stop under load"
        assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)
        first = handled(output)

        proc = workers.start("sqs_worker.py", queue_url, str(VISIBILITY_TIMEOUT_SECS), str(output), log=log)
        await asyncio.wait_for(sending, 120)
        await wait_until(lambda: len(set(handled(output))) >= len(values), 120, "every message handled", proc, log)
        assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)
    finally:
        sending.cancel()

    counts = Counter(handled(output))
    assert len(first) >= 500
    assert set(counts) == set(values)
    twice = [v for v, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} handled twice after a clean stop, for example {twice[:5]}"
    assert sqs_admin.counts(queue_url) == (0, 0)
