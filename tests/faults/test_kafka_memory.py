"""Memory of a Kafka consumer over 1,000,000 messages, and what close leaves behind.

The messages are produced with Producer.send_batch, then consumed by
kafka_memory_worker.py in its own process, so the resident set measured is
that consumer's alone. Run with ``make test-faults``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from pathlib import Path

import pytest

from cello import KafkaConfig
from cello.messaging import Producer
from fault_helpers import FAULTS, worker_env
from fault_helpers import kafka_topic  # noqa: F401 - a fixture used by name

pytestmark = pytest.mark.faults

TOTAL = 1_000_000
VALUE_BYTES = 100
PRODUCE_CHUNK = 50_000
WARM_UP = 100_000
SAMPLE_EVERY = 50_000
CONSUME_LIMIT_S = 240.0
# Bounds on the resident set after warm-up, from nine runs on a 2-core
# machine with Kafka 4.1.1 on the same machine. RSS went from about 43 MiB
# when connected to 86 to 101 MiB at WARM_UP, which includes librdkafka's
# fetch queue of up to queued.max.messages.kbytes (64 MiB by default). It
# still rose in steps of about 5 MiB until 350,000 to 700,000 messages, with
# dips of up to 14 MiB, and then stayed level. The highest sample after
# WARM_UP was 1.06 to 1.24 times the one at WARM_UP, so every sample after
# it may be at most RSS_GROWTH_FACTOR times that one plus RSS_GROWTH_SLACK_KIB.
RSS_GROWTH_FACTOR = 1.3
RSS_GROWTH_SLACK_KIB = 8 * 1024
# The highest sample from 700,000 on minus the highest from 300,000 to
# 600,000 was -5.8 to +4.5 MiB in those runs. A worker that kept one
# object() per message, 24 B each, measured +16.8 MiB.
RSS_LEVEL_SLACK_KIB = 10 * 1024


def value(index: int) -> str:
    """Return message ``index``'s value: the index in 10 digits, padded to VALUE_BYTES."""
    return f"{index:010d}".ljust(VALUE_BYTES, "x")


async def produce_all(topic: str) -> float:
    """Send TOTAL messages in batches and return how long it took, in seconds."""
    started = time.monotonic()
    async with Producer.connect(KafkaConfig(brokers="127.0.0.1:9092")) as producer:
        for start in range(0, TOTAL, PRODUCE_CHUNK):
            batch = [{"topic": topic, "value": value(i)} for i in range(start, min(start + PRODUCE_CHUNK, TOTAL))]
            results = await producer.send_batch(batch)
            assert len(results) == len(batch)
    return time.monotonic() - started


async def run_worker(topic: str, log: Path) -> dict[str, object]:
    """Run kafka_memory_worker.py on ``topic`` and return its JSON report."""
    group = f"memory-{uuid.uuid4().hex[:8]}"
    with open(log, "wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(FAULTS / "kafka_memory_worker.py"), topic, group, str(TOTAL), str(SAMPLE_EVERY),
            stdout=asyncio.subprocess.PIPE, stderr=stderr, env=worker_env())
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), CONSUME_LIMIT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, f"the worker exited with {proc.returncode}:\n{output[-4000:]}"
    return json.loads(stdout.decode().splitlines()[-1])  # type: ignore[no-any-return]


def mib(kib: object) -> str:
    return f"{int(kib) / 1024:.1f} MiB"  # type: ignore[call-overload]


async def test_consume_million_keeps_rss_level(kafka_topic: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """RSS stays level after warm-up, and close leaves no handle and no librdkafka thread."""
    produce_s = await produce_all(kafka_topic)
    report = await run_worker(kafka_topic, tmp_path / "worker.log")

    samples = [(int(n), int(rss)) for n, rss in report["samples"]]  # type: ignore[attr-defined]
    warm_rss = next(rss for n, rss in samples if n >= WARM_UP)
    after_warm_up = [rss for n, rss in samples if n > WARM_UP]
    level_start = max(rss for n, rss in samples if 300_000 <= n <= 600_000)
    level_end = max(rss for n, rss in samples if n >= 700_000)
    bound = warm_rss * RSS_GROWTH_FACTOR + RSS_GROWTH_SLACK_KIB
    with capsys.disabled():
        print(f"\nkafka memory: {TOTAL} messages of {VALUE_BYTES} B, produced in {produce_s:.1f} s, "
              f"consumed in {report['seconds']:.1f} s; RSS connected {mib(report['rss_connected_kib'])}, "
              f"at {WARM_UP} {mib(warm_rss)}, max after {mib(max(after_warm_up))}, "
              f"max 300k-600k {mib(level_start)}, max 700k-1M {mib(level_end)}, "
              f"end {mib(samples[-1][1])}, after close {mib(report['rss_closed_kib'])}; "
              f"OS threads {len(report['os_threads_before'])} before, {len(report['os_threads_open'])} open, "
              f"{len(report['os_threads_after'])} after close")
        print("RSS samples (messages, KiB):", samples)

    assert report["distinct"] == TOTAL
    assert report["duplicates"] == 0, "a lone consumer that never restarted received a message twice"
    assert samples[-1][0] == TOTAL
    assert max(after_warm_up) <= bound, (
        f"RSS grew from {mib(warm_rss)} at {WARM_UP} messages to {mib(max(after_warm_up))}, "
        f"above {mib(bound)}: {samples}")
    assert level_end <= level_start + RSS_LEVEL_SLACK_KIB, (
        f"RSS kept growing: at most {mib(level_start)} from 300,000 to 600,000 messages, "
        f"{mib(level_end)} from 700,000 on: {samples}")

    # After close only the config's handle is left, and releasing the
    # config closes that one too.
    assert report["handles_before"] == 1
    assert report["handles_after_close"] == 1
    assert report["handles_after_release"] == 0
    assert report["python_threads_after"] == report["python_threads_before"]
    # librdkafka names its threads rdk:main, rdk:broker1 and so on. Go's
    # runtime keeps the OS threads it started for later use, so the other
    # threads need not return to their count before the consumer opened.
    open_names: list[str] = report["os_threads_open"]  # type: ignore[assignment]
    closed_names: list[str] = report["os_threads_after"]  # type: ignore[assignment]
    assert any(name.startswith("rdk:") for name in open_names), (
        f"no librdkafka thread while the consumer was open, so the next check proves nothing: {open_names}")
    left = [name for name in closed_names if name.startswith("rdk:")]
    assert not left, f"librdkafka threads still run after close: {left}"
