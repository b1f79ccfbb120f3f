"""Delivery under faults on the real RabbitMQ broker: crashes and graceful stops.

These start real worker processes (rabbitmq_worker.py) and count what they
handled. Run them with ``make test-faults``.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import pytest

from cello import RabbitMQConfig
from cello.messaging import Consumer, Producer
from fault_helpers import RABBITMQ_URL, Workers, handled, log_tail, rabbitmq_message_count, stop_worker, wait_until
from fault_helpers import rabbitmq_queue, workers  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.faults

TOTAL = 20_000
PREFETCH = 20  # unacknowledged deliveries the broker lets one worker hold


async def declare(config: RabbitMQConfig, queue: str) -> None:
    """Declare the queue durable (subscribing does), so that publishes to it are routed."""
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe([queue])


async def publish(config: RabbitMQConfig, queue: str, values: list[str]) -> None:
    async with Producer.connect(config) as producer:
        for start in range(0, len(values), 5000):
            await producer.send_batch([{"topic": queue, "value": v} for v in values[start:start + 5000]])


async def test_sigkill_three_times_loses_nothing(rabbitmq_queue: str, workers: Workers, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every message is handled at least once, and each kill repeats at most the prefetched deliveries."""
    config = RabbitMQConfig(url=RABBITMQ_URL)
    values = [f"m{i}" for i in range(TOTAL)]
    await declare(config, rabbitmq_queue)
    await publish(config, rabbitmq_queue, values)
    output = tmp_path / "handled.txt"
    log = tmp_path / "worker.log"
    rng = random.Random(11)
    # One kill in each third of the stream, at a seeded random point.
    third = (TOTAL - 2000) // 3
    kill_points = [rng.randrange(1000 + k * third, 1000 + (k + 1) * third) for k in range(3)]

    for point in kill_points:
        proc = workers.start("rabbitmq_worker.py", rabbitmq_queue, str(PREFETCH), str(output), log=log)
        await wait_until(lambda: len(handled(output)) >= point, 120, f"{point} handled", proc, log)
        proc.kill()
        proc.wait(timeout=30)

    proc = workers.start("rabbitmq_worker.py", rabbitmq_queue, str(PREFETCH), str(output), log=log)
    await wait_until(lambda: len(set(handled(output))) >= TOTAL, 180, "every message handled", proc, log)
    # Deliveries that the last killed worker handled without acknowledging
    # are requeued. The queue is empty only once they were handled again.
    await wait_until(lambda: rabbitmq_message_count(rabbitmq_queue) == 0, 60, "an empty queue", proc, log)
    assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)

    counts = Counter(handled(output))
    missing = set(values) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    with capsys.disabled():
        print(f"\nrabbitmq crash test: {TOTAL} messages, kills after {kill_points} handled, "
              f"{len(missing)} missing, {duplicates} duplicates")
    assert not missing
    assert set(counts) == set(values)
    # A delivery is acknowledged only after its handler returned, and the
    # broker hands a worker at most PREFETCH unacknowledged deliveries. So
    # a kill can repeat only those, and the requeued ones go to the next worker.
    assert duplicates <= 3 * PREFETCH


async def test_sigterm_drains_and_restart_repeats_nothing(rabbitmq_queue: str, workers: Workers,
                                                          tmp_path: Path) -> None:
    """SIGTERM while messages keep arriving: exit 0, and the restarted worker repeats nothing."""
    config = RabbitMQConfig(url=RABBITMQ_URL)
    values = [f"m{i}" for i in range(8000)]
    await declare(config, rabbitmq_queue)
    output = tmp_path / "handled.txt"
    log = tmp_path / "worker.log"

    async def stream() -> None:
        # 50 messages every 50 ms, for at least 8 s: the stream still flows
        # when the first worker stops and after the second one starts.
        async with Producer.connect(config) as producer:
            for start in range(0, len(values), 50):
                await producer.send_batch([{"topic": rabbitmq_queue, "value": v} for v in values[start:start + 50]])
                await asyncio.sleep(0.05)

    sending = asyncio.create_task(stream())
    try:
        proc = workers.start("rabbitmq_worker.py", rabbitmq_queue, str(PREFETCH), str(output), log=log)
        await wait_until(lambda: len(handled(output)) >= 1000, 120, "1000 handled", proc, log)
        assert not sending.done(), "the stream ended before the stop; it does not test a stop under load"
        assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)
        first = handled(output)

        proc = workers.start("rabbitmq_worker.py", rabbitmq_queue, str(PREFETCH), str(output), log=log)
        await asyncio.wait_for(sending, 120)
        await wait_until(lambda: len(set(handled(output))) >= len(values), 120, "every message handled", proc, log)
        assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)
    finally:
        sending.cancel()

    counts = Counter(handled(output))
    assert len(first) >= 1000
    assert set(counts) == set(values)
    twice = [v for v, n in counts.items() if n > 1]
    assert not twice, f"{len(twice)} handled twice after a clean stop, for example {twice[:5]}"
    assert rabbitmq_message_count(rabbitmq_queue) == 0
