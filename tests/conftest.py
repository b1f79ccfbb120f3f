"""Shared fixtures. Tests of delivery talk to the real brokers that
``scripts/brokers.sh up`` starts; a missing broker fails them, never skips."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest

from cello import App, KafkaConfig
from cello.messaging import Consumer, Producer
from cello.messaging.registry import registry

KAFKA = "127.0.0.1:9092"


def _require(host: str, port: int, name: str) -> None:
    try:
        with socket.create_connection((host, port), timeout=2):
            return
    except OSError as exc:
        pytest.fail(f"{name} is not running on {host}:{port} ({exc}); start it with 'make brokers'")


@pytest.fixture
def kafka_config() -> KafkaConfig:
    _require("127.0.0.1", 9092, "Kafka")
    return KafkaConfig(brokers=KAFKA, group_id=f"test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def topic() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(autouse=True)
def clean_registry() -> Any:
    """Give each test an empty decorator registry."""
    saved = (list(registry.consumers), dict(registry.configs), dict(registry.producers))
    registry.consumers.clear()
    registry.configs.clear()
    registry.producers.clear()
    yield
    registry.consumers[:] = saved[0]
    registry.configs.clear()
    registry.configs.update(saved[1])
    registry.producers.clear()
    registry.producers.update(saved[2])


async def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Wait until predicate() is true, failing after timeout seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class RunningApp:
    """An App served on a free port inside the test's event loop."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RunningApp:
        self.task = asyncio.create_task(self.app.serve("127.0.0.1", 0, install_signal_handlers=False))
        await wait_for(lambda: self._ready(), 60, "the app to start")
        return self

    def _ready(self) -> bool:
        assert self.task is not None
        if self.task.done():
            self.task.result()  # raises the startup error
        return self.app.started

    async def __aexit__(self, *exc: object) -> None:
        self.app.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 60)


async def drain(config: KafkaConfig, topic: str, expected: int, timeout: float = 30.0,
                group: str | None = None) -> list[Any]:
    """Consume ``expected`` messages of ``topic`` with a fresh group and return them."""
    out: list[Any] = []
    async with Consumer.connect(config, group=group or f"drain-{uuid.uuid4().hex[:8]}") as consumer:
        await consumer.subscribe([topic])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < expected and loop.time() < deadline:
            batch = await consumer.poll(timeout_ms=500)
            out.extend(batch)
            if batch:
                await consumer.commit(batch)
    return out


async def produce(config: KafkaConfig, topic: str, values: list[Any], **kwargs: Any) -> None:
    async with Producer.connect(config) as producer:
        await producer.send_batch([{"topic": topic, "value": v, **kwargs} for v in values])


# --- SQS ---------------------------------------------------------------------
# These fixtures talk to the local SQS-compatible server (ElasticMQ, started
# by 'scripts/brokers.sh up sqs') on 127.0.0.1:4566, never to AWS. The admin
# helper uses the server's JSON protocol over plain HTTP without signatures,
# which the local server does not check, so the tests need no AWS SDK.

import json as _json  # noqa: E402 - this file is extended by appending
import urllib.error as _urlerror  # noqa: E402
import urllib.request as _urlrequest  # noqa: E402
from typing import Iterator  # noqa: E402

from cello import SqsConfig  # noqa: E402

SQS_HOST, SQS_PORT = "127.0.0.1", 4566
SQS_ENDPOINT = f"http://{SQS_HOST}:{SQS_PORT}"


class SqsAdmin:
    """Creates, inspects and deletes queues on the local SQS server.

    Every queue it creates is deleted by ``delete_all``, together with the
    ``<queue>-dlq`` that the consumer creates for dead letters by default.
    Calls block; wrap slow ones (a receive that waits) in asyncio.to_thread.
    """

    def __init__(self) -> None:
        self.created: list[str] = []

    def call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        request = _urlrequest.Request(
            SQS_ENDPOINT + "/",
            data=_json.dumps(body).encode(),
            headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AmazonSQS.{action}"},
        )
        try:
            with _urlrequest.urlopen(request, timeout=30) as response:
                raw = response.read()
        except _urlerror.HTTPError as exc:
            raise AssertionError(f"SQS {action} {body} failed: {exc.code} {exc.read()[:500]!r}") from exc
        return _json.loads(raw) if raw else {}

    def queue_name(self, purpose: str, fifo: bool = False) -> str:
        """Return a new unique queue name (nothing is created)."""
        return f"cello-{purpose}-{uuid.uuid4().hex[:12]}" + (".fifo" if fifo else "")

    def url(self, name: str) -> str:
        return f"http://localhost:{SQS_PORT}/000000000000/{name}"

    def create_queue(self, purpose: str, *, fifo: bool = False, attributes: dict[str, str] | None = None) -> str:
        """Create a queue with a unique name and return its URL."""
        name = self.queue_name(purpose, fifo)
        attrs = dict(attributes or {})
        if fifo:
            attrs["FifoQueue"] = "true"
        self.created.append(name)
        return str(self.call("CreateQueue", {"QueueName": name, "Attributes": attrs})["QueueUrl"])

    def exists(self, name: str) -> bool:
        return name in {u.rsplit("/", 1)[1] for u in self.call("ListQueues", {"QueueNamePrefix": name}).get("QueueUrls", [])}

    def counts(self, url: str) -> tuple[int, int]:
        """Return the (visible, in flight) message counts of a queue."""
        attrs = self.call("GetQueueAttributes", {
            "QueueUrl": url,
            "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        })["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def receive(self, url: str, wait_secs: int = 0) -> list[dict[str, Any]]:
        """Receive up to 10 messages with all attributes, and delete them."""
        messages = self.call("ReceiveMessage", {
            "QueueUrl": url,
            "MaxNumberOfMessages": 10,
            "WaitTimeSeconds": wait_secs,
            "MessageAttributeNames": ["All"],
        }).get("Messages", [])
        for m in messages:
            self.call("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]})
        return list(messages)

    def delete_all(self) -> None:
        for name in self.created:
            dlq = name[: -len(".fifo")] + "-dlq.fifo" if name.endswith(".fifo") else name + "-dlq"
            for queue in (name, dlq):
                if self.exists(queue):
                    self.call("DeleteQueue", {"QueueUrl": self.url(queue)})


@pytest.fixture
def sqs_admin() -> Iterator[SqsAdmin]:
    _require(SQS_HOST, SQS_PORT, "The SQS server (ElasticMQ)")
    admin = SqsAdmin()
    yield admin
    admin.delete_all()


@pytest.fixture
def sqs_config(sqs_admin: SqsAdmin) -> SqsConfig:
    """An SqsConfig.local for a new queue, deleted after the test."""
    return SqsConfig.local(queue_url=sqs_admin.create_queue("test"))
