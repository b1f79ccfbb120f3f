"""Delivery under faults on the real Kafka broker: crashes and graceful stops.

These start real worker processes and count what they handled. Run them
with ``make test-faults``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from cello import KafkaConfig
from conftest import produce

pytestmark = pytest.mark.faults

WORKER = Path(__file__).with_name("kafka_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TOTAL = 20_000
MAX_POLL_RECORDS = 500  # KafkaConfig's default batch size


def start_worker(topic: str, group: str, output: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "python"))
    with open(output.with_suffix(".log"), "ab") as log:
        return subprocess.Popen([sys.executable, str(WORKER), topic, group, str(output)], env=env,
                                stdout=subprocess.DEVNULL, stderr=log)


def handled(output: Path) -> list[str]:
    if not output.exists():
        return []
    return output.read_text().split()


def wait_until(predicate, timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}; "
                                 "its log is beside the output file")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def test_sigkill_three_times_loses_nothing(kafka_config: KafkaConfig, topic: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Every message is handled at least once; duplicates fit in the batches in flight at each kill."""
    values = [f"m{i}" for i in range(TOTAL)]
    for start in range(0, TOTAL, 5000):
        await produce(kafka_config, topic, values[start:start + 5000])
    group = f"crash-{uuid.uuid4().hex[:8]}"
    output = tmp_path / "handled.txt"
    rng = random.Random(7)
    kill_points = sorted(rng.sample(range(1000, TOTAL - 1000), 3))

    for point in kill_points:
        proc = start_worker(topic, group, output)
        wait_until(lambda: len(handled(output)) >= point, 120, f"{point} handled", proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    proc = start_worker(topic, group, output)
    wait_until(lambda: len(set(handled(output))) >= TOTAL, 180, "every message handled", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0

    counts = Counter(handled(output))
    missing = set(values) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    with capsys.disabled():
        print(f"\nkafka crash test: {TOTAL} messages, kills after {kill_points} handled, "
              f"{len(missing)} missing, {duplicates} duplicates")
    assert not missing
    # With auto_commit=False each batch is committed once handled, so a kill
    # can only repeat the batch that was in flight (plus the records polled
    # into the next one) at that moment.
    assert duplicates <= 3 * 2 * MAX_POLL_RECORDS


async def test_sigterm_drains_and_restart_repeats_nothing(kafka_config: KafkaConfig, topic: str,
                                                          tmp_path: Path) -> None:
    values = [f"m{i}" for i in range(5000)]
    await produce(kafka_config, topic, values)
    group = f"term-{uuid.uuid4().hex[:8]}"
    output = tmp_path / "handled.txt"

    proc = start_worker(topic, group, output)
    wait_until(lambda: len(handled(output)) >= 1000, 120, "1000 handled", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    first = handled(output)

    proc = start_worker(topic, group, output)
    wait_until(lambda: len(set(handled(output))) >= len(values), 120, "every message handled", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0

    counts = Counter(handled(output))
    assert set(counts) == set(values)
    assert max(counts.values()) == 1, f"{sum(n > 1 for n in counts.values())} handled twice after a clean stop"
    assert len(first) >= 1000
