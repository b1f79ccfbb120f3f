"""Consume a topic with Consumer.poll and report this process's memory and threads as JSON.

Usage: python kafka_memory_worker.py TOPIC GROUP TOTAL SAMPLE_EVERY

Each value must start with its index as 10 decimal digits. The worker polls
and commits each batch until it has seen TOTAL distinct indexes, sampling
VmRSS after every SAMPLE_EVERY messages. Then it closes the consumer and
prints one JSON object on stdout, which test_kafka_memory.py reads.
"""

import asyncio
import gc
import json
import sys
import threading
import time
from pathlib import Path

from cello import KafkaConfig, _native
from cello.messaging import Consumer

# The test gives up long before this; it only keeps a stuck worker from running forever.
GIVE_UP_S = 600


def rss_kib() -> int:
    """Return this process's resident set size (VmRSS) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("VmRSS missing from /proc/self/status")


def os_thread_names() -> list[str]:
    """Return the names of this process's OS threads, as the kernel lists them."""
    return sorted(p.read_text().strip() for p in Path("/proc/self/task").glob("*/comm"))


async def consume(topic: str, group: str, total: int, sample_every: int) -> dict[str, object]:
    """Consume ``total`` distinct messages of ``topic`` and return the measurements."""
    seen = bytearray(total)
    distinct = duplicates = 0
    config = KafkaConfig(brokers="127.0.0.1:9092")
    lib = _native.library()
    report: dict[str, object] = {
        "handles_before": lib.live_handles(),
        "python_threads_before": threading.active_count(),
        "os_threads_before": os_thread_names(),
    }

    consumer = await Consumer.connect(config, group=group, auto_commit=False)
    await consumer.subscribe([topic])
    report["rss_connected_kib"] = rss_kib()
    samples: list[tuple[int, int]] = []
    next_sample = sample_every
    started = time.monotonic()
    while distinct < total:
        if time.monotonic() - started > GIVE_UP_S:
            raise RuntimeError(f"only {distinct} of {total} distinct messages after {GIVE_UP_S} s")
        batch = await consumer.poll(timeout_ms=1000)
        for message in batch:
            index = int(message.value[:10])
            if seen[index]:
                duplicates += 1
            else:
                seen[index] = 1
                distinct += 1
        if batch:
            await consumer.commit(batch)
        del batch
        if distinct >= next_sample:
            samples.append((distinct, rss_kib()))
            next_sample += sample_every
    report["seconds"] = time.monotonic() - started
    report["samples"] = samples
    report["distinct"] = distinct
    report["duplicates"] = duplicates
    report["os_threads_open"] = os_thread_names()

    await consumer.close()
    report["rss_closed_kib"] = rss_kib()
    report["handles_after_close"] = lib.live_handles()
    report["python_threads_after"] = threading.active_count()
    report["os_threads_after"] = os_thread_names()
    del config, consumer
    gc.collect()
    report["handles_after_release"] = lib.live_handles()
    return report


def main() -> None:
    topic, group, total, sample_every = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    report = asyncio.run(consume(topic, group, total, sample_every))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
