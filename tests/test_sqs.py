"""SQS through the Python API, against the local SQS-compatible server.

Every test talks to ElasticMQ on 127.0.0.1:4566 (``scripts/brokers.sh up
sqs``) through the Go core, makes its own queues with a uuid suffix and
deletes them afterwards (the ``sqs_admin`` fixture). Results of handlers are
checked by what the server contains afterwards: queue counts and the
messages in dead-letter queues.
"""

from __future__ import annotations

import os

# The Go core reads the environment once, when the library loads, so this is
# set before any test creates a config. It keeps the AWS SDK away from the
# EC2 instance metadata service, which does not exist here.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"

import asyncio  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from cello import App, KafkaConfig, SqsConfig  # noqa: E402
from cello.messaging import (  # noqa: E402
    ConfigurationError,
    Consumer,
    Message,
    MessageResult,
    NotFoundError,
    Producer,
    kafka_consumer,
    sqs_consumer,
    sqs_producer,
)
from cello.messaging.registry import registry  # noqa: E402
from conftest import RunningApp, SqsAdmin, produce, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
AWS_QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789/my-queue"
LOCAL_QUEUE = "http://localhost:4566/000000000000/q"
REASON = "cello-dead-letter-reason"


def _app(config: SqsConfig) -> App:
    app = App(shutdown_timeout=10)
    app.enable_sqs(config)
    return app


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return None if value is None else value.get("StringValue")


async def _send(config: SqsConfig, values: list[Any], **kwargs: Any) -> None:
    async with Producer.connect(config) as producer:
        await producer.send_batch([{"queue": "", "value": v, **kwargs} for v in values])


async def _wait_for_dead_letters(admin: SqsAdmin, url: str, n: int) -> list[dict[str, Any]]:
    """Receive from a dead-letter queue until n messages arrived."""
    got: list[dict[str, Any]] = []

    def receive() -> bool:
        got.extend(admin.receive(url))
        return len(got) >= n

    await wait_for(receive, what=f"{n} dead-lettered messages in {_name(url)}")
    return got


# -- the documented examples -------------------------------------------------


def test_spec_full_config_example() -> None:
    """The SQS section's full SqsConfig constructs and keeps every field."""
    config = SqsConfig(
        region="us-east-1",
        queue_url="https://sqs.us-east-1.amazonaws.com/123456789/my-queue",
        max_messages=10,
        wait_time_secs=20
    )
    assert config.region == "us-east-1"
    assert config.queue_url == AWS_QUEUE
    assert config.endpoint_url is None
    assert config.max_messages == 10
    assert config.wait_time_secs == 20
    assert repr(config) == (
        f"SqsConfig(region=us-east-1 queue_url={AWS_QUEUE} endpoint_url=none max_messages=10 wait_time_secs=20)"
    )


async def test_spec_local_example_and_enable_sqs(sqs_admin: SqsAdmin) -> None:
    """SqsConfig.local and app.enable_sqs as documented, then used for real."""
    config = SqsConfig.local(queue_url="http://localhost:4566/000000000000/test-queue")
    assert config.queue_url == "http://localhost:4566/000000000000/test-queue"
    assert config.endpoint_url == "http://localhost:4566"
    assert config.use_dummy_credentials is True

    app = App()
    app.enable_sqs(config)
    assert registry.configs["sqs"] is config
    with pytest.raises(ConfigurationError, match="enable_sqs needs an SqsConfig, got KafkaConfig"):
        app.enable_sqs(KafkaConfig())  # type: ignore[arg-type]

    # The same local settings on a queue of this test's own.
    mine = config.replace(queue_url=sqs_admin.create_queue("local"))
    async with Producer.connect(mine) as producer:
        sent = await producer.send("", "hello")
    async with Consumer.connect(mine) as consumer:
        await consumer.subscribe([])
        got = await consumer.poll(timeout_ms=5000)
        await consumer.commit(got)
    assert [(m.id, m.text) for m in got] == [(sent.message_id, "hello")]


def test_config_defaults_and_positional_order() -> None:
    """Defaults and the positional order are the documented ones, and reach Go."""
    config = SqsConfig(queue_url=LOCAL_QUEUE)
    assert config.region == "us-east-1"
    assert config.endpoint_url is None
    assert config.max_messages == 10
    assert config.wait_time_secs == 20
    positional = SqsConfig("eu-west-1", LOCAL_QUEUE, "http://127.0.0.1:4566", 5, 3)
    # repr comes from the Go core's parsed config, so it shows what Go received.
    assert repr(positional) == (
        f"SqsConfig(region=eu-west-1 queue_url={LOCAL_QUEUE} endpoint_url=http://127.0.0.1:4566 "
        "max_messages=5 wait_time_secs=3)"
    )


# -- configuration errors and secrets ------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("max_messages", 0, "must be an integer from 1 to 10, got 0"),
        ("max_messages", 11, "must be an integer from 1 to 10, got 11"),
        ("max_messages", "10", 'must be an integer from 1 to 10, got "10"'),
        ("max_messages", 2.5, "must be an integer from 1 to 10, got 2.5"),
        ("wait_time_secs", -1, "must be an integer from 0 to 20, got -1"),
        ("wait_time_secs", 21, "must be an integer from 0 to 20, got 21"),
        ("region", "US East", 'such as "us-east-1", got "US East"'),
        ("region", "", 'must be a non-empty string, got ""'),
        ("queue_url", None, "is required: an http(s) URL of the form https://host/<account>/<queue name>"),
        ("queue_url", "my-queue", 'https://host/<account>/<queue name>, got "my-queue"'),
        ("queue_url", "ftp://host/1/q", 'got "ftp://host/1/q"'),
        ("endpoint_url", "localhost:4566", 'must be an http(s) URL such as http://127.0.0.1:4566, got "localhost:4566"'),
        ("visibility_timeout_secs", 43201, "must be an integer from 0 to 43200, got 43201"),
        ("request_timeout_ms", 50, "must be an integer from 100 to 600000, got 50"),
        ("dead_letter_queue_url", LOCAL_QUEUE, "must differ from queue_url"),
    ],
)
def test_config_rejects_bad_value(field: str, value: Any, expected: str) -> None:
    """Each bad value raises ConfigurationError naming the field and what is accepted."""
    fields: dict[str, Any] = {"queue_url": LOCAL_QUEUE, field: value}
    with pytest.raises(ConfigurationError) as caught:
        SqsConfig(**fields)
    message = str(caught.value)
    assert f"SqsConfig.{field}" in message
    assert expected in message
    assert caught.value.broker == "sqs"


def test_config_accepts_range_limits() -> None:
    """The ends of the documented ranges are accepted."""
    for max_messages, wait in [(1, 0), (10, 20)]:
        config = SqsConfig(queue_url=LOCAL_QUEUE, max_messages=max_messages, wait_time_secs=wait)
        assert f"max_messages={max_messages} wait_time_secs={wait}" in repr(config)


def test_secrets_never_in_repr_or_errors() -> None:
    """Access keys show up in no repr, str, attribute or error message."""
    secrets = {"access_key_id": "AKIASECRETID0001", "secret_access_key": "SECRETKEY/abc+0002",
               "session_token": "SESSIONTOKEN0003"}
    config = SqsConfig(queue_url=LOCAL_QUEUE, **secrets)
    visible_texts = [repr(config), str(config)]
    for name in secrets:
        with pytest.raises(AttributeError, match=f"SqsConfig.{name} is not readable because it is a secret"):
            getattr(config, name)

    failures: list[dict[str, Any]] = [
        {"queue_url": LOCAL_QUEUE, "access_key_id": secrets["access_key_id"]},
        {"queue_url": LOCAL_QUEUE, "secret_access_key": secrets["secret_access_key"]},
        {"queue_url": LOCAL_QUEUE, "session_token": secrets["session_token"]},
        {"queue_url": LOCAL_QUEUE, **secrets, "profile": "dev"},
        {"queue_url": LOCAL_QUEUE, "access_key_id": [secrets["access_key_id"]], "secret_access_key": "x"},
        {"queue_url": LOCAL_QUEUE, "access_key_id": object(), "secret_access_key": secrets["secret_access_key"]},
        {"queue_url": f"http://user:{secrets['secret_access_key']}@localhost:4566/0/q"},
    ]
    for fields in failures:
        with pytest.raises(ConfigurationError) as caught:
            SqsConfig(**fields)
        visible_texts.append(str(caught.value))
    # A "/" in the password makes the URL fail to parse; it stays hidden all the same.
    assert visible_texts[-1] == (
        "invalid configuration: SqsConfig.queue_url must not contain a user name or password (value hidden)"
    )
    with pytest.raises(ConfigurationError) as caught:
        config.replace(max_messages=0)
    visible_texts.append(str(caught.value))

    for text in visible_texts:
        for secret in secrets.values():
            assert secret not in text


async def test_secrets_never_logged(sqs_config: SqsConfig, caplog: pytest.LogCaptureFixture) -> None:
    """Connecting with access keys logs nothing that contains them."""
    config = sqs_config.replace(access_key_id="AKIASECRETID0004", secret_access_key="SECRETKEY0005")
    with caplog.at_level(logging.DEBUG, logger="cello"):
        async with Producer.connect(config) as producer:
            await producer.send("", "x")
            assert "SECRETKEY0005" not in repr(producer)
    assert any("producer started" in r.getMessage() for r in caplog.records)
    for record in caplog.records:
        assert "AKIASECRETID0004" not in record.getMessage()
        assert "SECRETKEY0005" not in record.getMessage()


_CREDENTIALS_PROBE = """
import asyncio, logging, sys
from cello import SqsConfig
from cello.messaging import Producer

records = []
handler = logging.Handler()
handler.emit = lambda record: records.append(record.getMessage())
logging.getLogger("cello").addHandler(handler)
logging.getLogger("cello").setLevel(logging.DEBUG)

async def main():
    config = SqsConfig.local(queue_url=sys.argv[1], profile=sys.argv[2] or None)
    async with Producer.connect(config) as producer:
        await producer.send("", "probe")

asyncio.run(main())
print("dummy" if any("using dummy credentials" in r for r in records) else "chain")
"""


@pytest.mark.parametrize("source", ["environment", "profile", "none"])
def test_credentials_from_aws_chain(source: str, sqs_config: SqsConfig, tmp_path: Path) -> None:
    """Keys from the environment or a shared-file profile win over the dummy ones.

    Each case runs in a new process, since the Go core reads the environment
    once when it loads.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    credentials = tmp_path / "credentials"
    credentials.write_text("[cello-test]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = fromfile\n")
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(credentials),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")])),
    )
    profile = ""
    if source == "environment":
        env.update(AWS_ACCESS_KEY_ID="AKIAENVIRONMENT", AWS_SECRET_ACCESS_KEY="fromenv")
    elif source == "profile":
        profile = "cello-test"
    result = subprocess.run(
        [sys.executable, "-c", _CREDENTIALS_PROBE, sqs_config.queue_url, profile],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == ("dummy" if source == "none" else "chain")


# -- manual Producer and Consumer ----------------------------------------------


async def test_round_trip_values_and_attributes(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """dict, str and bytes values with headers arrive intact, by queue name and URL."""
    url = sqs_config.queue_url
    async with Producer.connect(sqs_config) as producer:
        sent = [
            await producer.send(_name(url), {"n": 1, "s": "é"}, key="k1", headers={"trace": "abc", "raw": b"\x00\xff"}),
            await producer.send(url, "plain text", headers={"lang": "en"}),
            await producer.send(url, b"\x00\x01\x02\xff"),
        ]
    assert [r.topic for r in sent] == [_name(url), url, url]
    assert len({r.message_id for r in sent}) == 3

    got: dict[str, Message] = {}
    async with Consumer.connect(sqs_config) as consumer:
        await consumer.subscribe([url])
        for _ in range(10):
            for m in await consumer.poll(timeout_ms=2000):
                got[m.id] = m
                await consumer.commit(m)
            if len(got) == 3:
                break

    first, second, third = (got[r.message_id] for r in sent)
    assert first.json() == {"n": 1, "s": "é"}
    assert first.key == "k1"
    assert first.headers == {"trace": b"abc", "raw": b"\x00\xff"}
    assert second.text == "plain text"
    assert second.headers == {"lang": b"en"}
    assert second.key is None
    assert third.value == b"\x00\x01\x02\xff"
    assert third.headers == {}
    for m in (first, second, third):
        assert m.topic == _name(url)
        assert m.attempt == 1
        assert m.partition is None
        assert m.timestamp is not None
    assert sqs_admin.counts(url) == (0, 0)


async def test_batch_of_23_received_exactly_once(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """A batch of 23 (three SendMessageBatch calls) arrives once each."""
    values = [f"message-{i:02d}" for i in range(23)]
    async with Producer.connect(sqs_config) as producer:
        results = await producer.send_batch([{"topic": sqs_config.queue_url, "value": v} for v in values])
    assert len(results) == 23
    assert len({r.message_id for r in results}) == 23
    assert all(r.error is None for r in results)

    seen = Counter[str]()
    async with Consumer.connect(sqs_config) as consumer:
        await consumer.subscribe([])
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while sum(seen.values()) < 23 and loop.time() < deadline:
            batch = await consumer.poll(timeout_ms=1000)
            assert len(batch) <= 10
            seen.update(m.text for m in batch)
            await consumer.commit(batch)
        assert await consumer.poll(timeout_ms=1000) == []
    assert sorted(seen) == values
    assert set(seen.values()) == {1}
    assert sqs_admin.counts(sqs_config.queue_url) == (0, 0)


async def test_poll_returns_at_most_max_messages(sqs_admin: SqsAdmin) -> None:
    """poll() without max_records returns at most the config's max_messages."""
    config = SqsConfig.local(queue_url=sqs_admin.create_queue("max"), max_messages=3)
    await _send(config, [f"m{i}" for i in range(7)])
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe([])
        batch = await consumer.poll(timeout_ms=2000)
        await consumer.commit(batch)
    assert 1 <= len(batch) <= 3


async def test_send_batch_reports_each_failure(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """A batch with a missing queue raises the first failure, with every result attached."""
    missing = sqs_admin.queue_name("missing")
    items = [
        {"queue": "", "value": "one"},
        {"queue": missing, "value": "lost"},
        {"queue": "", "value": "two"},
    ]
    async with Producer.connect(sqs_config) as producer:
        with pytest.raises(NotFoundError) as caught:
            await producer.send_batch(items)
    results = caught.value.results  # type: ignore[attr-defined]
    assert "1 of 3 messages failed" in str(caught.value)
    assert missing in str(caught.value)
    assert [r.error is None for r in results] == [True, False, True]
    assert isinstance(results[1].error, NotFoundError)
    assert results[0].message_id
    assert results[2].message_id
    assert sqs_admin.counts(sqs_config.queue_url) == (2, 0)


async def test_missing_queue_is_not_found_quickly(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """A queue that does not exist raises NotFoundError within seconds, naming it."""
    missing = sqs_admin.queue_name("missing")
    missing_config = SqsConfig.local(queue_url=sqs_admin.url(missing))

    async def check(step: Any) -> None:
        start = time.monotonic()
        with pytest.raises(NotFoundError, match=missing):
            await step
        assert time.monotonic() - start < 5

    await check(Producer.connect(missing_config))
    await check(Consumer.connect(missing_config))
    async with Producer.connect(sqs_config) as producer:
        await check(producer.send(missing, "x"))
        await check(producer.send(sqs_admin.url(missing), "x"))
    async with Consumer.connect(sqs_config) as consumer:
        await check(consumer.subscribe([missing]))


async def test_poll_waits_by_long_polling(sqs_config: SqsConfig) -> None:
    """poll(timeout_ms) waits for a message that arrives during the wait."""
    async with Consumer.connect(sqs_config) as consumer, Producer.connect(sqs_config) as producer:
        await consumer.subscribe([])
        start = time.monotonic()
        assert await consumer.poll(timeout_ms=2000) == []
        empty_wait = time.monotonic() - start
        # A short poll would return at once; SQS waits whole seconds.
        assert 1.5 <= empty_wait < 5

        start = time.monotonic()
        poll = asyncio.ensure_future(consumer.poll(timeout_ms=10000))
        await asyncio.sleep(1)  # let the long poll start before the message exists
        await producer.send("", "late")
        got = await poll
        elapsed = time.monotonic() - start
        await consumer.commit(got)
    assert [m.text for m in got] == ["late"]
    assert 1 <= elapsed < 8


async def test_fifo_deduplication_id(sqs_admin: SqsAdmin) -> None:
    """On a FIFO queue a repeated deduplication_id is dropped; no id drops nothing."""
    config = SqsConfig.local(queue_url=sqs_admin.create_queue("dedup", fifo=True))
    async with Producer.connect(config) as producer:
        await producer.send("", "first", key="g", deduplication_id="order-17")
        await producer.send("", "repeat", key="g", deduplication_id="order-17")
        await producer.send_batch([{"queue": "", "value": "first", "key": "g"}])
    got: list[Message] = []
    async with Consumer.connect(config) as consumer:
        await consumer.subscribe([])
        for _ in range(3):
            batch = await consumer.poll(timeout_ms=1000)
            got.extend(batch)
            await consumer.commit(batch)
    assert [m.text for m in got] == ["first", "first"]
    assert all("cello-deduplication-id" not in m.headers for m in got)


async def test_deduplication_id_needs_fifo_queue(sqs_config: SqsConfig) -> None:
    """A deduplication_id for a standard queue is rejected, naming the queue."""
    async with Producer.connect(sqs_config) as producer:
        with pytest.raises(ConfigurationError, match="is not a FIFO queue") as caught:
            await producer.send("", "x", deduplication_id="d-1")
        assert _name(sqs_config.queue_url) in str(caught.value)
        with pytest.raises(ConfigurationError, match="deduplication_id must be a non-empty str"):
            await producer.send("", "x", deduplication_id="")


# -- @sqs_consumer and @sqs_producer under the app -----------------------------


async def test_ack_deletes(sqs_config: SqsConfig, sqs_admin: SqsAdmin, caplog: pytest.LogCaptureFixture) -> None:
    """ACK (and None) deletes each message; the app logs the queue it consumes."""
    seen: list[str] = []

    @sqs_consumer()
    async def handle(message: Message) -> MessageResult | None:
        seen.append(message.text)
        return MessageResult.ACK if message.text.endswith(("0", "2", "4")) else None

    await _send(sqs_config, [f"m{i}" for i in range(5)])
    with caplog.at_level(logging.INFO, logger="cello"):
        async with RunningApp(_app(sqs_config)):
            await wait_for(lambda: len(seen) >= 5, what="5 messages")
            await wait_for(lambda: sqs_admin.counts(sqs_config.queue_url) == (0, 0), what="the deletes")
    assert sorted(seen) == [f"m{i}" for i in range(5)]
    logged = [r.getMessage() for r in caplog.records]
    assert f"consuming sqs queue {sqs_config.queue_url} with {handle.__qualname__}" in logged


async def test_nack_backs_off_then_dead_letters(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """NACK hides the message for a doubling backoff, then moves it to the configured DLQ."""
    dlq = sqs_admin.create_queue("dlq")
    config = sqs_config.replace(dead_letter_queue_url=dlq)
    attempts: list[tuple[int, float]] = []

    @sqs_consumer(max_retries=2, retry_backoff_ms=1000)
    async def handle(message: Message) -> MessageResult:
        attempts.append((message.attempt, time.monotonic()))
        return MessageResult.NACK

    async with Producer.connect(config) as producer:
        await producer.send("", "bad", key="k-9", headers={"trace": "t-9"})
    async with RunningApp(_app(config)):
        dead = await _wait_for_dead_letters(sqs_admin, dlq, 1)
        await wait_for(lambda: sqs_admin.counts(config.queue_url) == (0, 0), what="the source delete")

    assert [a for a, _ in attempts] == [1, 2, 3]
    # Backoffs of 1 s, then 2 s; a visibility of 0 would redeliver in milliseconds.
    assert attempts[1][1] - attempts[0][1] >= 0.9
    assert attempts[2][1] - attempts[1][1] >= 1.9
    assert dead[0]["Body"] == "bad"
    assert _attribute(dead[0], "trace") == "t-9"
    assert _attribute(dead[0], "cello-key") == "k-9"
    assert _attribute(dead[0], REASON) == "nack on attempt 3, after the maximum of 2 retries"
    assert not sqs_admin.exists(_name(config.queue_url) + "-dlq")


async def test_requeue_redelivers_at_once(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """REQUEUE makes the message visible again at once, not after the backoff."""
    attempts: list[tuple[int, float]] = []

    @sqs_consumer(retry_backoff_ms=60000)
    async def handle(message: Message) -> MessageResult:
        attempts.append((message.attempt, time.monotonic()))
        return MessageResult.REQUEUE if message.attempt == 1 else MessageResult.ACK

    await _send(sqs_config, ["r"])
    async with RunningApp(_app(sqs_config)):
        await wait_for(lambda: len(attempts) >= 2, timeout=20, what="the requeued delivery")
        await wait_for(lambda: sqs_admin.counts(sqs_config.queue_url) == (0, 0), what="the delete")
    assert [a for a, _ in attempts] == [1, 2]
    assert attempts[1][1] - attempts[0][1] < 10
    assert not sqs_admin.exists(_name(sqs_config.queue_url) + "-dlq")


async def test_reject_deletes_without_dead_letter(
    sqs_config: SqsConfig, sqs_admin: SqsAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    """REJECT deletes the message with a warning naming the queue; no DLQ gets it."""
    seen: list[str] = []

    @sqs_consumer()
    async def handle(message: Message) -> str:
        seen.append(message.text)
        return "reject"

    await _send(sqs_config, ["poison"])
    with caplog.at_level(logging.WARNING, logger="cello"):
        async with RunningApp(_app(sqs_config)):
            await wait_for(lambda: seen == ["poison"], what="the rejected message")
            await wait_for(lambda: sqs_admin.counts(sqs_config.queue_url) == (0, 0), what="the delete")
    assert seen == ["poison"]
    assert not sqs_admin.exists(_name(sqs_config.queue_url) + "-dlq")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("rejected and deleted" in w and _name(sqs_config.queue_url) in w for w in warnings)


async def test_dead_letter_to_configured_queue(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """DEAD_LETTER sends the body, attributes and reason to the configured DLQ, then deletes."""
    dlq = sqs_admin.create_queue("dlq")
    config = sqs_config.replace(dead_letter_queue_url=dlq)
    seen: list[int] = []

    @sqs_consumer()
    async def handle(message: Message) -> MessageResult:
        seen.append(message.attempt)
        return MessageResult.DEAD_LETTER

    async with Producer.connect(config) as producer:
        await producer.send("", {"id": 7}, key="order-7", headers={"trace": "abc"})
    async with RunningApp(_app(config)):
        dead = await _wait_for_dead_letters(sqs_admin, dlq, 1)
        await wait_for(lambda: sqs_admin.counts(config.queue_url) == (0, 0), what="the source delete")
    assert seen == [1]
    assert json.loads(dead[0]["Body"]) == {"id": 7}
    assert _attribute(dead[0], "trace") == "abc"
    assert _attribute(dead[0], "cello-key") == "order-7"
    assert _attribute(dead[0], REASON) == "dead-lettered by the handler"


async def test_exception_dead_letters_to_default_queue(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """A raising handler is a NACK; with no DLQ configured, <queue>-dlq is created."""
    calls: list[int] = []

    @sqs_consumer(max_retries=0)
    def handle(message: Message) -> None:
        calls.append(message.attempt)
        raise RuntimeError("boom " + message.text)

    await _send(sqs_config, ["x"])
    async with RunningApp(_app(sqs_config)):
        await wait_for(lambda: sqs_admin.exists(_name(sqs_config.queue_url) + "-dlq"), what="the default DLQ")
        dead = await _wait_for_dead_letters(sqs_admin, sqs_config.queue_url + "-dlq", 1)
    assert calls == [1]
    assert dead[0]["Body"] == "x"
    assert _attribute(dead[0], REASON) == "nack on attempt 1, after the maximum of 0 retries: RuntimeError: boom x"


async def test_visibility_extended_for_slow_handler(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """A handler that runs past the visibility timeout still handles its message once.

    Two consumers share the queue, so if the visibility lapsed while the
    first handler ran, the other consumer would receive the message again.
    """
    config = sqs_config.replace(visibility_timeout_secs=2)
    started: list[int] = []
    finished: list[int] = []

    async def slow(message: Message) -> None:
        started.append(message.attempt)
        await asyncio.sleep(5)  # the handler's work, 2.5 times the visibility timeout
        finished.append(message.attempt)

    sqs_consumer()(slow)
    sqs_consumer()(slow)
    await _send(config, ["slow"])
    async with RunningApp(_app(config)):
        await wait_for(lambda: finished == [1], what="the slow handler")
        await wait_for(lambda: sqs_admin.counts(config.queue_url) == (0, 0), what="the delete")
    assert started == [1]
    assert finished == [1]


async def test_fifo_order_within_group(sqs_admin: SqsAdmin) -> None:
    """Each message group is handled in order, a NACKed message holding its group."""
    config = SqsConfig.local(queue_url=sqs_admin.create_queue("order", fifo=True))
    handled: dict[str, list[tuple[str, int]]] = {"a": [], "b": [], "c": []}

    @sqs_consumer(retry_backoff_ms=1000)
    async def handle(message: Message) -> MessageResult:
        handled[str(message.key)].append((message.text, message.attempt))
        await asyncio.sleep(0.01)  # give the other groups' handlers a chance to interleave
        if message.text == "a-1" and message.attempt == 1:
            return MessageResult.NACK
        return MessageResult.ACK

    items = [{"queue": "", "key": k, "value": f"{k}-{i}"} for i in range(4) for k in "abc"]
    async with Producer.connect(config) as producer:
        await producer.send_batch(items)
    async with RunningApp(_app(config)):
        await wait_for(lambda: sum(map(len, handled.values())) >= 13, what="13 handled deliveries")
        await wait_for(lambda: sqs_admin.counts(config.queue_url) == (0, 0), what="the deletes")
    assert [text for text, _ in handled["a"]] == ["a-0", "a-1", "a-1", "a-2", "a-3"]
    assert handled["a"][2] == ("a-1", 2)
    # a-2 and a-3 may show attempt 2: when they were received in a-1's batch
    # and skipped, SQS counted that receive too.
    assert handled["b"] == [(f"b-{i}", 1) for i in range(4)]
    assert handled["c"] == [(f"c-{i}", 1) for i in range(4)]


async def test_producer_decorator_on_route(sqs_config: SqsConfig, sqs_admin: SqsAdmin) -> None:
    """@sqs_producer publishes an HTTP handler's result and an async function's."""
    events = sqs_admin.create_queue("events")
    received: list[Any] = []
    app = _app(sqs_config)

    @app.post("/orders")
    @sqs_producer(_name(events))
    def create_order(request: Any) -> dict[str, Any]:
        return {"order_id": 1, "status": "created"}

    @sqs_producer(events, key="k")
    async def make_event(n: int) -> dict[str, int] | None:
        return {"n": n} if n else None

    @sqs_consumer(queue_url=events)
    async def audit(message: Message) -> None:
        received.append((message.json(), message.key))

    async with RunningApp(app):
        request = urllib.request.Request(f"http://{app.address}/orders", data=b"{}", method="POST")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=30).read())
        assert json.loads(body) == {"order_id": 1, "status": "created"}
        assert await make_event(2) == {"n": 2}
        assert await make_event(0) is None
        await wait_for(lambda: len(received) >= 2, what="the two published events")
        await wait_for(lambda: sqs_admin.counts(events) == (0, 0), what="the deletes")
    assert sorted(received, key=str) == sorted([({"order_id": 1, "status": "created"}, None), ({"n": 2}, "k")], key=str)


async def test_runs_beside_kafka_consumer(sqs_config: SqsConfig, kafka_config: KafkaConfig, topic: str) -> None:
    """One app runs a Kafka and an SQS consumer together."""
    seen: list[str] = []
    app = App(shutdown_timeout=10)
    app.enable_messaging(kafka_config)
    app.enable_sqs(sqs_config)

    @kafka_consumer(topic=topic, group=f"g-{uuid.uuid4().hex[:8]}")
    async def from_kafka(message: Message) -> None:
        seen.append("kafka:" + message.text)

    @sqs_consumer()
    async def from_sqs(message: Message) -> None:
        seen.append("sqs:" + message.text)

    await produce(kafka_config, topic, ["k1"])
    await _send(sqs_config, ["s1"])
    async with RunningApp(app):
        await wait_for(lambda: len(seen) >= 2, what="one message from each broker")
    assert sorted(seen) == ["kafka:k1", "sqs:s1"]


async def test_app_stops_during_long_poll(sqs_config: SqsConfig) -> None:
    """Stopping the app does not wait for a 20 s long poll to end."""

    @sqs_consumer()
    async def handle(message: Message) -> None:
        pass

    assert sqs_config.wait_time_secs == 20
    running = RunningApp(_app(sqs_config))
    await running.__aenter__()
    await asyncio.sleep(0.5)  # let the consumer's first long poll start
    start = time.monotonic()
    await running.__aexit__(None, None, None)
    assert time.monotonic() - start < 5


async def test_short_poll_consumer_receives(sqs_config: SqsConfig) -> None:
    """With wait_time_secs=0 the app short-polls, pausing between empty polls, and still receives."""
    config = sqs_config.replace(wait_time_secs=0)
    seen: list[str] = []

    @sqs_consumer()
    async def handle(message: Message) -> None:
        seen.append(message.text)

    async with RunningApp(_app(config)):
        await _send(config, ["short"])
        await wait_for(lambda: seen == ["short"], timeout=10, what="the message")
