"""The Kafka examples of the documentation, run as written against the broker.

The Quick Start runs as its own process (examples/demo.py drives
examples/quickstart.py); the decorator examples run inside an App here.
The manual Producer/Consumer example is in test_kafka_manual.py, the
KafkaConfig examples in test_kafka_config.py and the Message examples in
test_message.py.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

from cello import App, KafkaConfig
from cello.messaging import Message, MessageResult, kafka_consumer, kafka_producer
from conftest import RunningApp, drain, produce, wait_for

ROOT = Path(__file__).resolve().parent.parent


def test_quick_start_runs(kafka_config: KafkaConfig) -> None:
    """The Quick Start app serves POST /orders and consumes orders, then stops on SIGTERM."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "every posted order event and every sent order was consumed" in result.stdout
    assert "the app stopped on SIGTERM with exit code 0" in result.stdout


async def test_consumer_decorator_example(kafka_config: KafkaConfig, capsys: pytest.CaptureFixture[str]) -> None:
    marker = uuid.uuid4().hex
    app = App(shutdown_timeout=10)
    app.enable_messaging(kafka_config)

    @kafka_consumer(topic="user-events", group="processors", auto_commit=True)
    async def handle_user_event(message: Message):
        data = message.json()
        print(f"Received: {data}")
        return MessageResult.ACK

    await produce(kafka_config, "user-events", [{"marker": marker}])
    async with RunningApp(app):
        await wait_for(lambda: marker in capsys.readouterr().out, what="the printed event")


async def test_producer_decorator_example(kafka_config: KafkaConfig) -> None:
    app = App(shutdown_timeout=10)
    app.enable_messaging(kafka_config)

    @app.post("/events")
    @kafka_producer(topic="app-events")
    def publish_event(request):
        return {"type": "user_signup", "user_id": 42}

    group = f"spec-{uuid.uuid4().hex[:8]}"
    # Move the new group to the end of app-events first, so only this
    # test's event is read below.
    await drain(kafka_config, "app-events", 10**9, timeout=5, group=group)
    async with RunningApp(app):
        request = urllib.request.Request(f"http://{app.address}/events", data=b"", method="POST")
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=30).read())
        assert json.loads(body) == {"type": "user_signup", "user_id": 42}
    got = await drain(kafka_config, "app-events", 1, group=group)
    assert [m.json() for m in got] == [{"type": "user_signup", "user_id": 42}]
