"""The benchmark cases, their clients and each run's setup and cleanup.

Every run gets its own topic, queue or consumer group, created here before
the run and deleted after it, so runs neither see each other's messages
nor leave data behind on the shared brokers.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any, Callable

import java_tools
import rabbitmq_clients
import sqs_clients
from harness import Case, Client, Settings, new_name, run_worker

# Produce rates used to size the first Java ProducerPerformance run. Later
# runs are sized from the measured rate, so a wrong guess costs one run.
JAVA_PRODUCE_RATE_GUESS = {100: 300_000, 10_240: 20_000}
# ProducerPerformance's batch.size: librdkafka's default (used by cello and
# confluent-kafka) in place of Java's 16 KiB. A 16 KiB batch fits one 10 KiB
# record, which halved the Java rate at 10 KiB on the machine of README.md.
JAVA_BATCH_SIZE = "batch.size=1000000"
# Safety factor on counts sized from a measured rate, so that the next run
# lasts the full duration despite noise.
SIZE_MARGIN = 1.3
# Attempts at a counted run that ended before the duration.
SIZE_ATTEMPTS = 3


class KafkaAdmin:
    """Admin client that creates and deletes the runs' topics and groups."""

    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient

        self.client = AdminClient({"bootstrap.servers": bootstrap})

    def create_topic(self, name: str) -> None:
        from confluent_kafka.admin import NewTopic

        # 4 partitions, as the local broker auto-creates topics.
        futures = self.client.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])
        futures[name].result(timeout=30)

    def delete_topic(self, name: str) -> None:
        futures = self.client.delete_topics([name], operation_timeout=30)
        try:
            futures[name].result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - cleanup goes on; the topic is only left behind
            print(f"  note: deleting topic {name} failed: {exc}", flush=True)

    def delete_group(self, group: str) -> None:
        futures = self.client.delete_consumer_groups([group], request_timeout=30)
        try:
            futures[group].result(timeout=60)
        except Exception as exc:  # noqa: BLE001 - a group left behind holds only offsets
            print(f"  note: deleting group {group} failed: {exc}", flush=True)


class CaseBuilder:
    """Builder of the cases for one set of settings, with the state they share."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._kafka_admin: KafkaAdmin | None = None
        self.prefill_topic: str | None = None
        # Messages in prefill_topic, and how many the Java consumer reads:
        # all of them, grown when a run ends before the duration.
        self.prefill_count = 0
        self.java_consume_count = [settings.kafka_prefill]
        self.java_consume_runs: dict[int, dict[str, Any]] = {}
        self.cleanups: list[Callable[[], None]] = []

    @property
    def kafka_admin(self) -> KafkaAdmin:
        if self._kafka_admin is None:
            self._kafka_admin = KafkaAdmin(self.settings.kafka_bootstrap)
        return self._kafka_admin

    def build(self) -> list[Case]:
        s = self.settings
        cases = [
            self.kafka_produce("batch", s.value_size),
            self.kafka_produce("batch", 10_240),
            self.kafka_produce("awaited", s.value_size),
            self.kafka_produce("awaited", 10_240),
            self.kafka_consume("manual"),
            self.kafka_consume("pipeline"),
            self.rabbitmq_publish("batch"),
            self.rabbitmq_publish("awaited"),
            self.rabbitmq_consume("manual"),
            self.rabbitmq_consume("pipeline"),
            self.sqs_send(),
            self.sqs_receive(),
            self.boundary(),
        ]
        return cases

    def cleanup(self) -> None:
        """Delete what cases shared across runs, such as the prefilled topic."""
        for step in reversed(self.cleanups):
            step()
        self.cleanups.clear()

    # -- Kafka produce ----------------------------------------------------

    def kafka_produce(self, mode: str, value_size: int) -> Case:
        s = self.settings
        size = _size_label(value_size)
        shown = _size_text(value_size)
        params = {"value_size": value_size, "mode": mode, "duration": s.duration,
                  "acks": "all", "idempotence": True, "partitions": 4}
        if mode == "batch":
            params["batch"] = s.kafka_batch
            title = f"Kafka produce, batches of {s.kafka_batch}, {shown} values"
            clients = [
                self._kafka_producer("cello", "cello", "kafka_clients:cello_produce", params),
                self._kafka_producer("confluent-kafka", "peer", "kafka_clients:confluent_produce", params),
                self._kafka_producer("aiokafka", "peer", "kafka_clients:aiokafka_produce", params),
                Client("Java ProducerPerformance", "ceiling", self._java_producer(value_size),
                       note="counted run with no batch boundaries; batch.size 1,000,000 B"),
            ]
        else:
            title = f"Kafka produce, each send awaited, {shown} values"
            clients = [
                self._kafka_producer("cello", "cello", "kafka_clients:cello_produce", params),
                self._kafka_producer("aiokafka", "peer", "kafka_clients:aiokafka_produce", params),
            ]
        return Case(f"kafka-produce-{mode}-{size}", title, clients, params=params)

    def _kafka_producer(self, name: str, role: str, target: str, params: dict[str, Any]) -> Client:
        def run(index: int, log: Path) -> dict[str, Any]:
            topic = new_name("bench-produce")
            self.kafka_admin.create_topic(topic)
            try:
                return run_worker(target, {**params, "topic": topic,
                                           "bootstrap": self.settings.kafka_bootstrap}, log)
            finally:
                self.kafka_admin.delete_topic(topic)

        return Client(name, role, run)

    def _java_producer(self, value_size: int) -> Callable[[int, Path], dict[str, Any]]:
        s = self.settings
        count = [math.ceil(JAVA_PRODUCE_RATE_GUESS.get(value_size, 30_000) * s.duration * SIZE_MARGIN)]

        def run_once(log: Path) -> dict[str, Any]:
            topic = new_name("bench-produce")
            self.kafka_admin.create_topic(topic)
            try:
                return java_tools.produce(s.kafka_bootstrap, topic, count[0], value_size, log,
                                          extra_props=[JAVA_BATCH_SIZE])
            finally:
                self.kafka_admin.delete_topic(topic)

        def run(index: int, log: Path) -> dict[str, Any]:
            return _sized_run(run_once, count, s.duration, log)

        return run

    # -- Kafka consume ----------------------------------------------------

    def kafka_consume(self, style: str) -> Case:
        s = self.settings
        params = {"value_size": s.value_size, "prefill": s.kafka_prefill, "duration": s.duration}
        if style == "manual":
            params["max_poll_records"] = 500
            title = "Kafka consume, manual poll and synchronous commit per batch, 100 B values"
            clients = [
                self._kafka_consumer("cello", "cello", "kafka_clients:cello_consume_manual"),
                self._kafka_consumer("confluent-kafka", "peer", "kafka_clients:confluent_consume_manual"),
            ]
        else:
            title = "Kafka consume, framework pipeline with a no-op async handler, 100 B values"
            clients = [
                self._kafka_consumer("cello", "cello", "kafka_clients:cello_consume_pipeline"),
                self._kafka_consumer("FastStream", "peer", "kafka_clients:faststream_consume_pipeline"),
            ]
        clients.append(Client("Java ConsumerPerformance", "ceiling", self._java_consumer,
                              note="reads the whole prefill; the same runs serve both consume cases"))
        return Case(f"kafka-consume-{style}-100B", title, clients, params=params)

    def _kafka_consumer(self, name: str, role: str, target: str) -> Client:
        s = self.settings

        def run(index: int, log: Path) -> dict[str, Any]:
            topic = self._ensure_prefill(self.java_consume_count[0], log)
            group = new_name("bench-group")
            try:
                return run_worker(target, {"bootstrap": s.kafka_bootstrap, "topic": topic, "group": group,
                                           "limit": self.prefill_count, "duration": s.duration}, log)
            finally:
                self.kafka_admin.delete_group(group)

        return Client(name, role, run)

    def _java_consumer(self, index: int, log: Path) -> dict[str, Any]:
        if index in self.java_consume_runs:
            return {**self.java_consume_runs[index], "reused": True}
        s = self.settings

        def run_once(attempt_log: Path) -> dict[str, Any]:
            count = self.java_consume_count[0]
            topic = self._ensure_prefill(count, attempt_log)
            group = new_name("bench-group")
            try:
                return java_tools.consume(s.kafka_bootstrap, topic, group, count, attempt_log)
            finally:
                self.kafka_admin.delete_group(group)

        record = _sized_run(run_once, self.java_consume_count, s.duration, log)
        self.java_consume_runs[index] = record
        return record

    def _ensure_prefill(self, count: int, log: Path) -> str:
        """Return the consume cases' topic, filled with at least ``count`` messages."""
        s = self.settings
        if self.prefill_topic is None:
            topic = new_name("bench-prefill")
            self.kafka_admin.create_topic(topic)
            self.cleanups.append(lambda: self.kafka_admin.delete_topic(topic))
            self.prefill_topic = topic
        missing = count - self.prefill_count
        if missing > 0:
            print(f"  filling {self.prefill_topic} with {missing:,} messages of {s.value_size} B", flush=True)
            fill_log = log.with_name(f"kafka-prefill-{self.prefill_count}.log")
            record = java_tools.produce(s.kafka_bootstrap, self.prefill_topic, missing, s.value_size, fill_log,
                                        extra_props=["linger.ms=20", "batch.size=262144"])
            if record["messages"] != missing:
                raise RuntimeError(f"prefill sent {record['messages']} of {missing} messages")
            self.prefill_count = count
            print(f"  filled in {record['seconds']:.1f} s", flush=True)
        return self.prefill_topic

    # -- RabbitMQ ---------------------------------------------------------

    def rabbitmq_publish(self, mode: str) -> Case:
        s = self.settings
        params = {"value_size": s.value_size, "mode": mode, "duration": s.duration,
                  "confirms": True, "persistent": True, "mandatory": True}
        if mode == "batch":
            params["batch"] = s.rabbitmq_batch
            title = (f"RabbitMQ publish with confirms, batches of {s.rabbitmq_batch} "
                     "(aio-pika: gather of publishes), 100 B values")
        else:
            title = "RabbitMQ publish with confirms, each publish awaited, 100 B values"
        clients = [
            self._rabbitmq_publisher("cello", "cello", "rabbitmq_clients:cello_publish", params),
            self._rabbitmq_publisher("aio-pika", "peer", "rabbitmq_clients:aiopika_publish", params),
        ]
        clients[0].precheck = self._cello_rabbitmq_check
        return Case(f"rabbitmq-publish-{mode}-100B", title, clients, params=params)

    def _rabbitmq_publisher(self, name: str, role: str, target: str, params: dict[str, Any]) -> Client:
        s = self.settings

        def run(index: int, log: Path) -> dict[str, Any]:
            queue = new_name("bench-publish")
            asyncio.run(rabbitmq_clients.declare_and_fill(s.rabbitmq_url, queue, 0, s.value_size))
            try:
                return run_worker(target, {**params, "url": s.rabbitmq_url, "queue": queue}, log)
            finally:
                asyncio.run(rabbitmq_clients.delete_queues(s.rabbitmq_url, [queue]))

        return Client(name, role, run)

    def rabbitmq_consume(self, style: str) -> Case:
        s = self.settings
        params = {"value_size": s.value_size, "prefetch": s.rabbitmq_prefetch, "duration": s.duration}
        if style == "manual":
            title = (f"RabbitMQ consume, prefetch {s.rabbitmq_prefetch} (cello: poll and commit per batch; "
                     "aio-pika: queue iterator, ack per message), 100 B values")
            clients = [
                self._rabbitmq_consumer("cello", "cello", "rabbitmq_clients:cello_consume_manual"),
                self._rabbitmq_consumer("aio-pika", "peer", "rabbitmq_clients:aiopika_consume"),
            ]
        else:
            title = (f"RabbitMQ consume, framework pipeline with a no-op async handler, "
                     f"prefetch {s.rabbitmq_prefetch}, 100 B values")
            clients = [
                self._rabbitmq_consumer("cello", "cello", "rabbitmq_clients:cello_consume_pipeline"),
                self._rabbitmq_consumer("FastStream", "peer", "rabbitmq_clients:faststream_consume_pipeline"),
            ]
        clients[0].precheck = self._cello_rabbitmq_check
        return Case(f"rabbitmq-consume-{style}-100B", title, clients, params=params)

    def _rabbitmq_consumer(self, name: str, role: str, target: str) -> Client:
        s = self.settings
        fill = [s.rabbitmq_fill]

        def run_once(log: Path) -> dict[str, Any]:
            queue = new_name("bench-consume")
            asyncio.run(rabbitmq_clients.declare_and_fill(s.rabbitmq_url, queue, fill[0], s.value_size))
            try:
                return run_worker(target, {"url": s.rabbitmq_url, "queue": queue, "limit": fill[0],
                                           "prefetch": s.rabbitmq_prefetch, "duration": s.duration}, log)
            finally:
                # The cello consumer declares a dead-letter queue beside each queue.
                asyncio.run(rabbitmq_clients.delete_queues(s.rabbitmq_url, [queue, queue + ".dlq"]))

        def run(index: int, log: Path) -> dict[str, Any]:
            return _sized_run(run_once, fill, s.duration, log)

        return Client(name, role, run)

    def _cello_rabbitmq_check(self, log: Path) -> None:
        run_worker("rabbitmq_clients:cello_check", {"url": self.settings.rabbitmq_url}, log, timeout=60)

    # -- SQS --------------------------------------------------------------

    def _sqs_params(self) -> dict[str, Any]:
        s = self.settings
        return {"endpoint": s.sqs_endpoint, "region": s.sqs_region, "value_size": s.value_size,
                "count": s.sqs_count, "batch": s.sqs_batch}

    def sqs_send(self) -> Case:
        params = self._sqs_params()
        title = (f"SQS send, {params['count']:,} messages in groups of {params['batch']} "
                 "(10 SendMessageBatch calls each), 100 B bodies")
        clients = [
            self._sqs_client("cello", "cello", "sqs_clients:cello_send", fill=0),
            self._sqs_client("aiobotocore", "peer", "sqs_clients:aiobotocore_send", fill=0),
        ]
        return Case("sqs-send-batch-100B", title, clients, params=params)

    def sqs_receive(self) -> Case:
        params = self._sqs_params()
        title = (f"SQS receive and delete, {params['count']:,} messages, up to 10 per "
                 "ReceiveMessage, one DeleteMessageBatch per batch, 100 B bodies")
        clients = [
            self._sqs_client("cello", "cello", "sqs_clients:cello_receive", fill=params["count"]),
            self._sqs_client("aiobotocore", "peer", "sqs_clients:aiobotocore_receive", fill=params["count"]),
        ]
        return Case("sqs-receive-delete-100B", title, clients, params=params)

    def _sqs_client(self, name: str, role: str, target: str, fill: int) -> Client:
        params = self._sqs_params()

        def run(index: int, log: Path) -> dict[str, Any]:
            queue_url = asyncio.run(sqs_clients.create_queue(params, new_name("bench-sqs"), fill))
            try:
                return run_worker(target, {**params, "queue_url": queue_url}, log)
            finally:
                asyncio.run(sqs_clients.delete_queue(params, queue_url))

        return Client(name, role, run)

    # -- the boundary -----------------------------------------------------

    def boundary(self) -> Case:
        params = {"duration": self.settings.duration}

        def client(target: str) -> Callable[[int, Path], dict[str, Any]]:
            return lambda index, log: run_worker(target, params, log)

        clients = [
            Client("cello_handles_live (cgo)", "cello", client("boundary:cello_handles_live")),
            Client("libc rand (no cgo)", "baseline", client("boundary:libc_rand")),
        ]
        return Case("boundary-crossing", "One call from Python into the Go core through ctypes",
                    clients, unit="calls", params=params)


def _sized_run(run_once: Callable[[Path], dict[str, Any]], count: list[int], duration: float,
               log: Path) -> dict[str, Any]:
    """Run a counted run; if it ended before ``duration``, grow the count
    from the measured rate and run again. ``count`` carries the size over
    to the client's later runs."""
    record: dict[str, Any] = {}
    for attempt in range(SIZE_ATTEMPTS):
        record = run_once(log.with_name(f"{log.stem}-size{attempt}{log.suffix}"))
        if record["seconds"] >= duration or record["messages"] < count[0]:
            return record
        rate = record["messages"] / record["seconds"]
        count[0] = math.ceil(rate * duration * SIZE_MARGIN)
        print(f"  run ended after {record['seconds']:.1f} s; running again with {count[0]:,} messages",
              flush=True)
    return record


def _size_label(value_size: int) -> str:
    return f"{value_size // 1024}KB" if value_size >= 1024 else f"{value_size}B"


def _size_text(value_size: int) -> str:
    return f"{value_size // 1024} KiB" if value_size >= 1024 else f"{value_size} B"

