"""Helpers of the fault tests: worker processes, their output files and broker cleanup.

A worker is a consumer app in its own process. It appends each handled
value to an output file and writes its stderr to a log file. The ``workers``
fixture kills every worker that a test leaves running, also when the test
fails.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
FAULTS = Path(__file__).resolve().parent
BROKERS_SCRIPT = ROOT / "scripts" / "brokers.sh"
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672"

# The AWS SDK's credential chain, which SqsConfig(use_dummy_credentials=True)
# tries before the dummy pair, would otherwise send requests to the EC2
# instance metadata address, which is not on this machine. The Go core reads
# the environment once, when the library loads.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def worker_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT / "python"), AWS_EC2_METADATA_DISABLED="true")


class Workers:
    """Starts worker scripts and kills those still running when the test ends."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, script: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start ``tests/faults/SCRIPT ARGS...`` with its stderr appended to ``log``."""
        with open(log, "ab") as stderr:
            proc = subprocess.Popen([sys.executable, str(FAULTS / script), *args],
                                    env=worker_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        self.started.append(proc)
        return proc

    def kill_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def workers() -> Iterator[Workers]:
    pool = Workers()
    yield pool
    pool.kill_all()


def handled(output: Path) -> list[str]:
    """Return the values a worker wrote to ``output``, in the order it handled them."""
    if not output.exists():
        return []
    return output.read_text().split()


def log_tail(log: Path, chars: int = 2000) -> str:
    """Return the end of a worker's log, for assertion messages."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str,
                     proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    """Wait until predicate() is true, failing after ``timeout`` seconds or if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc is not None and proc.poll() is not None:
            tail = log_tail(log) if log is not None else ""
            raise AssertionError(f"worker exited with {proc.returncode} while waiting for {what}\n{tail}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


async def stop_worker(proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float) -> int | None:
    """Send ``sig`` and return the exit code, or None if the worker still runs after ``timeout`` seconds."""
    proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return proc.poll()


def catches_signal(pid: int, sig: signal.Signals) -> bool:
    """Return whether process ``pid`` has a handler installed for ``sig`` (Linux /proc)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def require_port(port: int, name: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError as exc:
        pytest.fail(f"{name} is not running on 127.0.0.1:{port} ({exc}); start it with 'make brokers'")


def run_brokers_script(*args: str) -> None:
    """Run ``scripts/brokers.sh ARGS...``, failing with its output when it exits non-zero."""
    result = subprocess.run([str(BROKERS_SCRIPT), *args], capture_output=True, text=True, timeout=240)
    if result.returncode != 0:
        raise AssertionError(f"scripts/brokers.sh {' '.join(args)} exited with {result.returncode}:\n"
                             f"{result.stdout}{result.stderr}")


def delete_rabbitmq_queues(*names: str) -> None:
    """Delete queues with rabbitmqctl; a queue that does not exist is skipped."""
    for name in names:
        result = subprocess.run([str(BROKERS_SCRIPT), "rabbitmqctl", "delete_queue", name],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0 and "not found" not in result.stdout + result.stderr:
            raise AssertionError(f"deleting RabbitMQ queue {name} failed: {result.stdout}{result.stderr}")


def rabbitmq_message_count(queue: str) -> int:
    """Return the messages of a RabbitMQ queue, ready and unacknowledged, from rabbitmqctl."""
    result = subprocess.run([str(BROKERS_SCRIPT), "rabbitmqctl", "list_queues", "-q", "--no-table-headers",
                             "name", "messages"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise AssertionError(f"listing RabbitMQ queues failed: {result.stdout}{result.stderr}")
    for line in result.stdout.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"RabbitMQ queue {queue} not found")


@pytest.fixture
def rabbitmq_queue() -> Iterator[str]:
    """A unique RabbitMQ queue name; the queue and its .dlq are deleted after the test."""
    require_port(5672, "RabbitMQ")
    name = f"faults-{uuid.uuid4().hex[:12]}"
    yield name
    delete_rabbitmq_queues(name, name + ".dlq")


def delete_kafka_topic(topic: str) -> None:
    """Delete a topic with Kafka's TopicCommand; a topic that does not exist is skipped."""
    result = subprocess.run([str(BROKERS_SCRIPT), "kafka-run", "org.apache.kafka.tools.TopicCommand",
                             "--bootstrap-server", "127.0.0.1:9092", "--delete", "--if-exists", "--topic", topic],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise AssertionError(f"deleting Kafka topic {topic} failed: {result.stdout}{result.stderr}")


@pytest.fixture
def kafka_topic() -> Iterator[str]:
    """A unique Kafka topic name; the topic is deleted after the test."""
    require_port(9092, "Kafka")
    name = f"faults-{uuid.uuid4().hex[:12]}"
    yield name
    delete_kafka_topic(name)
