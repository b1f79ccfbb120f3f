"""Building blocks of the benchmark: settings, cases, clients and workers.

A case (for example "Kafka produce, batch API, 100 B values") has several
clients: cello, its peers, and for Kafka the Java tools as the ceiling.
A client's ``run`` does one run, with the setup it needs (a fresh topic,
queue or group), and returns the run record measured in the worker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent

RESULT_PREFIX = "BENCH-RESULT "
UNAVAILABLE_PREFIX = "BENCH-UNAVAILABLE "


@dataclass(frozen=True)
class Settings:
    """Sizes of the runs. ``quick_settings()`` shrinks them to check the harness."""

    quick: bool = False
    # Seconds that each timed run lasts at least.
    duration: float = 5.0
    runs: int = 3
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Messages per send_batch call, or per produce-then-flush round.
    kafka_batch: int = 1000
    # Messages of 100 B in the topic that the Kafka consume cases read, at
    # first. Java's ConsumerPerformance reads all of them and must last
    # ``duration``, so the topic is topped up when it ends sooner. It read
    # about 2.5 million messages/s on the 2-core machine of bench/README.md.
    kafka_prefill: int = 16_000_000
    rabbitmq_url: str = "amqp://guest:guest@127.0.0.1:5672/"
    rabbitmq_batch: int = 1000
    rabbitmq_prefetch: int = 100
    # Messages filled into each RabbitMQ consume run's queue at first. A
    # client that empties it before ``duration`` gets a larger fill.
    rabbitmq_fill: int = 60_000
    sqs_endpoint: str = "http://127.0.0.1:4566"
    sqs_region: str = "us-east-1"
    # Messages per SQS run: sent, or received and deleted.
    sqs_count: int = 20_000
    sqs_batch: int = 100
    value_size: int = 100

    @classmethod
    def quick_settings(cls) -> Settings:
        return cls(quick=True, duration=1.0, runs=1, kafka_prefill=300_000,
                   rabbitmq_fill=10_000, sqs_count=1000)


class ClientUnavailable(Exception):
    """The client cannot run in this build, for example a broker kind that
    cello's Go core does not have yet."""


class RunFailed(RuntimeError):
    """A run exited with an error or printed no result."""


@dataclass
class Client:
    """One library measured in a case."""

    name: str
    # "cello", "peer" (another Python client), "ceiling" (the Java tools)
    # or "baseline" (a reference that is no messaging client).
    role: str
    run: Callable[[int, Path], dict[str, Any]]
    # Called once before the first run. It raises ClientUnavailable.
    precheck: Callable[[Path], None] | None = None
    note: str = ""


@dataclass
class Case:
    name: str
    title: str
    clients: list[Client]
    # What a run counts: "messages" or "calls".
    unit: str = "messages"
    params: dict[str, Any] = field(default_factory=dict)


def new_name(prefix: str) -> str:
    """Return a topic, queue or group name that no earlier run used."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def worker_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(REPO / "python"), str(BENCH)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.update(extra or {})
    return env


def run_worker(target: str, params: dict[str, Any], log_path: Path, *,
               timeout: float = 600, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``worker.py TARGET PARAMS`` in a new process and return its record.

    stderr goes to ``log_path``. Raises ClientUnavailable when the client
    reported that it cannot run, RunFailed on any other failure.
    """
    command = [sys.executable, str(BENCH / "worker.py"), target, json.dumps(params)]
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        try:
            completed = subprocess.run(
                command, stdout=subprocess.PIPE, stderr=log, text=True,
                timeout=timeout, env=worker_env(env), check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise RunFailed(f"{target} timed out after {timeout:.0f} s; see {log_path}") from exc
        log.write(completed.stdout)
    for line in completed.stdout.splitlines():
        if line.startswith(RESULT_PREFIX) and completed.returncode == 0:
            return json.loads(line[len(RESULT_PREFIX):])  # type: ignore[no-any-return]
        if line.startswith(UNAVAILABLE_PREFIX):
            raise ClientUnavailable(json.loads(line[len(UNAVAILABLE_PREFIX):]))
    raise RunFailed(f"{target} exited with code {completed.returncode} and no result; "
                    f"last lines of {log_path}: {tail(log_path)}")


def tail(path: Path, lines: int = 3) -> str:
    """Return the last non-empty lines of a log, joined by ' | '."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(line.strip()[:300] for line in kept)
