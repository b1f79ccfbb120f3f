"""Kafka and SQS broker restarts in the middle of a steady stream.

A producer in the test process starts a send every SEND_INTERVAL_S while a
consumer app (kafka_worker.py or sqs_worker.py) handles the messages. Right
before the stop it also sends a backlog with send_batch, so the broker
contains unconsumed messages when it goes down. The broker is stopped with
``scripts/brokers.sh down``, kept down for DOWN_SECS and started again with
``up``. Neither client is restarted: both must recover by themselves, and
every send that returned success must be handled afterwards. Sends that
raised may be missing.

Each test prints one line with the recovery times, measured from the moment
``brokers.sh up`` returned, which is after the broker passed its readiness
probe. A negative time means that the client got through before that probe.
Sending recovered with the first send that succeeded after ``up`` started,
consuming with the first message handled that the worker fetched from the
restarted broker (see consume_recovered).
The RabbitMQ restart is tested in tests/test_rabbitmq.py and in the Go
core's integration tests.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection

import pytest

from cello import KafkaConfig, SqsConfig
from cello.messaging import MessagingError, Producer
from conftest import SqsAdmin
from fault_helpers import Workers, handled, log_tail, run_brokers_script, stop_worker, wait_until
from fault_helpers import kafka_topic, workers  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.faults

DOWN_SECS = 10.0
# One send starts every SEND_INTERVAL_S whether or not earlier ones have
# returned, so the stream keeps its pace while the broker is down.
SEND_INTERVAL_S = 0.02
# A send still unacknowledged after this long raises TimeoutError, so sends
# that started during the outage end instead of piling up.
SEND_TIMEOUT_MS = 5000
# Sent with send_batch right before the stop. In four runs on 2 cores, 4,400
# to 5,100 messages were still queued when ElasticMQ stopped, and the worker
# can handle those only if ElasticMQ stored them.
BACKLOG = 5000
BATCH = 500
# Time after `up` within which the first send and the first handled message
# must succeed. librdkafka waits up to 10 s between reconnect attempts
# (reconnect.backoff.max.ms). A Kafka consumer that cannot reach its group
# coordinator for session_timeout_ms (30 s) joins again under a new member
# id, and with that reconnect backoff a 10 s stop often comes to that. The
# broker then delays the rebalance until the old member's session expires,
# counted from when the restarted broker loaded the group. Four such runs
# measured 34 to 39 s from `up` to the first handled message. The SQS
# consumer app retries a failed poll with a backoff that doubles up to 30 s.
SEND_RECOVERY_LIMIT_S = 30.0
CONSUME_RECOVERY_LIMIT_S = 60.0
# Time after the stream stopped within which every acknowledged send must
# have been handled.
DRAIN_LIMIT_S = 60.0
# Distinct messages handled before the stop, so the stream runs when the
# broker goes down.
WARM_UP_HANDLED = 200
# Messages that the SQS worker received but could not delete during the
# outage come back after this many seconds, which keeps the wait short.
VISIBILITY_TIMEOUT_SECS = 5
# Output of a worker that means an exception escaped the library's own
# handling: a traceback, or asyncio reporting an exception never retrieved.
UNHANDLED_MARKERS = ("Traceback", "exception was never retrieved", "Exception in callback")


@dataclass
class SendStream:
    """Sends m0, m1, ... one every SEND_INTERVAL_S and records when each send ended and how."""

    producer: Producer
    destination: str
    succeeded: dict[str, float] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        i = 0
        while not self.stopping.is_set():
            task = asyncio.create_task(self._send(f"m{i}"))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            i += 1
            await asyncio.sleep(SEND_INTERVAL_S)

    async def _send(self, value: str) -> None:
        try:
            result = await self.producer.send(self.destination, value)
        except MessagingError as exc:
            # Any other exception type escapes and fails the test.
            self.failed[value] = f"{type(exc).__name__}: {exc}"
            return
        self.succeeded[value] = time.monotonic()
        self.results[value] = result

    async def send_backlog(self) -> None:
        """Send b0 ... b<BACKLOG-1> in send_batch calls; the broker is up, so any failure fails the test."""
        for start in range(0, BACKLOG, BATCH):
            values = [f"b{i}" for i in range(start, start + BATCH)]
            results = await self.producer.send_batch([{"topic": self.destination, "value": v} for v in values])
            now = time.monotonic()
            for v, result in zip(values, results):
                self.succeeded[v] = now
                self.results[v] = result

    async def stop(self) -> None:
        """Stop starting sends and wait for those in flight to end."""
        self.stopping.set()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=SEND_TIMEOUT_MS / 1000 + 30)


@dataclass
class HandledTimes:
    """Records when a worker first handled each value, to time the consumer's recovery."""

    output: Path
    first_seen: dict[str, float] = field(default_factory=dict)
    lines_read: int = 0

    async def run(self) -> None:
        while True:
            # The worker only appends, so the new values are past lines_read.
            values = handled(self.output)
            now = time.monotonic()
            for value in values[self.lines_read:]:
                self.first_seen.setdefault(value, now)
            self.lines_read = len(values)
            await asyncio.sleep(0.05)

    def first_after(self, start: float, values: Collection[str] | None = None) -> float | None:
        """Return when the first value, of ``values`` if given, was handled after ``start``."""
        times = [t for v, t in self.first_seen.items() if t > start and (values is None or v in values)]
        return min(times, default=None)


@dataclass
class Restart:
    """Times of one broker restart, all from time.monotonic(), and the broker's backlog at the stop."""

    down_started: float = 0.0
    down_returned: float = 0.0
    up_started: float = 0.0
    up_returned: float = 0.0
    queued_at_stop: int | None = None


async def restart_broker(name: str, restart: Restart) -> None:
    """Stop ``name``, wait DOWN_SECS and start it, running ``up`` also when a step fails."""
    up_done = False
    try:
        restart.down_started = time.monotonic()
        await asyncio.to_thread(run_brokers_script, "down", name)
        restart.down_returned = time.monotonic()
        await asyncio.sleep(DOWN_SECS)
        restart.up_started = time.monotonic()
        await asyncio.to_thread(run_brokers_script, "up", name)
        up_done = True
        restart.up_returned = time.monotonic()
    finally:
        if not up_done:
            run_brokers_script("up", name)


def consume_recovered(times: HandledTimes, stream: SendStream, restart: Restart, prefetches: bool) -> float | None:
    """Return when the worker first handled a message that it fetched from the restarted broker.

    A consumer that ``prefetches`` (Kafka's) goes on handling records it
    fetched before the stop, so for it only a message that the broker
    acknowledged after `up` started counts. The SQS worker keeps at most a
    batch or two of received messages and handles them within milliseconds,
    so any message that it handled after `up` started counts.
    """
    if not prefetches:
        return times.first_after(restart.up_started)
    written_after = {v for v, t in stream.succeeded.items() if t > restart.up_started}
    return times.first_after(restart.up_started, written_after)


async def stream_through_restart(broker: str, producer: Producer, destination: str, proc: Any, output: Path,
                                 log: Path, prefetches: bool, queued: Callable[[], int] | None = None,
                                 ) -> tuple[SendStream, HandledTimes, Restart]:
    """Run the stream, restart the broker in its middle, and wait until every acknowledged send was handled.

    ``queued`` returns how many messages wait in the broker; it is read
    right before the stop.
    """
    stream = SendStream(producer, destination)
    times = HandledTimes(output)
    restart = Restart()
    sending = asyncio.create_task(stream.run())
    watching = asyncio.create_task(times.run())
    try:
        await wait_until(lambda: len(set(handled(output))) >= WARM_UP_HANDLED, 60,
                         f"{WARM_UP_HANDLED} handled before the restart", proc, log)
        await stream.send_backlog()
        if queued is not None:
            restart.queued_at_stop = queued()
        await restart_broker(broker, restart)
        await wait_until(lambda: any(t > restart.up_started for t in stream.succeeded.values()),
                         SEND_RECOVERY_LIMIT_S, "a successful send after the restart", proc, log)
        await wait_until(lambda: consume_recovered(times, stream, restart, prefetches) is not None,
                         CONSUME_RECOVERY_LIMIT_S, "a handled message after the restart", proc, log)
        # Keep the stream going a little longer, so the recovered clients
        # carry a steady load and not just one message.
        await asyncio.sleep(2.0)
        await stream.stop()
        # check_and_report lists whatever is still missing after this wait.
        deadline = time.monotonic() + DRAIN_LIMIT_S
        while not set(stream.succeeded) <= set(handled(output)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        stream.stopping.set()
        sending.cancel()
        watching.cancel()
        await asyncio.gather(sending, watching, return_exceptions=True)
    return stream, times, restart


def check_and_report(broker: str, stream: SendStream, times: HandledTimes, restart: Restart, output: Path,
                     log: Path, prefetches: bool, max_duplicates: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Print the figures of the restart, then check delivery, duplicates and the worker's log."""
    counts = Counter(handled(output))
    first_send = min(t for t in stream.succeeded.values() if t > restart.up_started)
    first_handled = consume_recovered(times, stream, restart, prefetches)
    assert first_handled is not None
    duplicates = sum(n - 1 for n in counts.values())
    queued = "" if restart.queued_at_stop is None else f", {restart.queued_at_stop} queued at the stop"
    with capsys.disabled():
        print(f"\n{broker} restart: down {restart.up_started - restart.down_returned:.1f} s, "
              f"send recovered after {first_send - restart.up_returned:.1f} s, "
              f"consume recovered after {first_handled - restart.up_returned:.1f} s, "
              f"{len(stream.succeeded)} sent ok, {len(counts)} consumed, {duplicates} duplicates "
              f"({len(stream.failed)} sends failed{queued}; down took "
              f"{restart.down_returned - restart.down_started:.1f} s, up {restart.up_returned - restart.up_started:.1f} s)")

    missing = set(stream.succeeded) - set(counts)
    details = sorted((stream.results[v].partition, stream.results[v].offset, v) for v in missing)
    assert not missing, (f"{len(missing)} acknowledged sends never handled, as (partition, offset, value): "
                         f"{details[:20]}\n{log_tail(log, 4000)}")
    assert duplicates <= max_duplicates
    # No send can succeed while the broker is stopped. One that did would
    # mean that down did not stop it, so this test would prove nothing.
    during_outage = [v for v, t in stream.succeeded.items() if restart.down_returned < t < restart.up_started]
    assert not during_outage, f"{len(during_outage)} sends succeeded while {broker} was down"
    # The worker may handle a message before the test process has processed
    # its send's acknowledgement, so fewer than WARM_UP_HANDLED single sends
    # may have completed before the stop.
    sent_before = [v for v, t in stream.succeeded.items() if t < restart.down_started and v.startswith("m")]
    assert len(sent_before) >= WARM_UP_HANDLED // 2, "the stream was not running when the broker stopped"
    output_text = log.read_text(errors="replace")
    for marker in UNHANDLED_MARKERS:
        assert marker not in output_text, f"the worker log contains {marker!r}:\n{log_tail(log, 4000)}"


async def test_kafka_restart_loses_no_acknowledged_send(kafka_topic: str, workers: Workers, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Stop Kafka for 10 s mid-stream: both clients recover and every acknowledged send is handled."""
    output = tmp_path / "handled.txt"
    log = tmp_path / "worker.log"
    config = KafkaConfig(brokers="127.0.0.1:9092", send_timeout_ms=SEND_TIMEOUT_MS)
    async with Producer.connect(config) as producer:
        proc = workers.start("kafka_worker.py", kafka_topic, f"restart-{kafka_topic}", str(output), log=log)
        stream, times, restart = await stream_through_restart("kafka", producer, kafka_topic, proc, output, log,
                                                              prefetches=True)
    assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)
    # The worker commits each batch once handled (auto_commit=False). If the
    # restart costs it its partitions, the records handled since the last
    # commit that succeeded come again: at most the batch in flight and the
    # one polled after it, 500 records each (max_poll_records).
    check_and_report("kafka", stream, times, restart, output, log, True, 2 * 500, capsys)


async def test_sqs_restart_loses_no_acknowledged_send(sqs_admin: SqsAdmin, workers: Workers, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Stop ElasticMQ for 10 s mid-stream: queued messages survive, and both clients recover."""
    queue_url = sqs_admin.create_queue("restart")
    output = tmp_path / "handled.txt"
    log = tmp_path / "worker.log"
    config = SqsConfig(queue_url=queue_url, endpoint_url="http://127.0.0.1:4566", use_dummy_credentials=True,
                       request_timeout_ms=SEND_TIMEOUT_MS)
    async with Producer.connect(config) as producer:
        proc = workers.start("sqs_worker.py", queue_url, str(VISIBILITY_TIMEOUT_SECS), str(output), log=log)
        stream, times, restart = await stream_through_restart(
            "sqs", producer, "", proc, output, log, prefetches=False, queued=lambda: sqs_admin.counts(queue_url)[0])
    assert await stop_worker(proc, signal.SIGTERM, 60) == 0, log_tail(log)
    # A message is deleted only after its handler returned. A stop repeats
    # those received and not yet deleted: up to 10 per ReceiveMessage call
    # (max_messages) for each of the 10 handlers that sqs_consumer runs at once.
    check_and_report("sqs", stream, times, restart, output, log, False, 10 * 10, capsys)
    # Messages queued at the stop reach the worker only if ElasticMQ stored them.
    assert restart.queued_at_stop, "the queue was empty at the stop, so nothing had to survive it"
