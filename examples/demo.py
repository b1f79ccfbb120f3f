"""Run the Quick Starts against the local brokers and show orders flowing.

The Kafka stage starts examples/quickstart.py and posts orders to its HTTP
route, which publishes each one to ``order-events`` for the audit consumer.
It also sends orders straight to the ``orders`` topic for ``process_order``.
Once every order was consumed, it stops the app with SIGTERM and checks that
it exited cleanly.

The RabbitMQ stage starts examples/rabbitmq_quickstart.py, posts signups to
its HTTP route, which publishes each one to the ``signups`` queue, and
waits until ``welcome`` handled every one.

The SQS stage creates a queue of its own on the local SQS server and starts
examples/sqs_quickstart.py on it. It posts orders to the app's HTTP route,
which publishes each one to the queue for ``handle_order``, waits until
every one was consumed, stops the app with SIGTERM, checks the exit code
and deletes the queue. Run all three with ``make demo``.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMEOUT = 90.0
# The local SQS-compatible server that scripts/brokers.sh starts.
SQS_ENDPOINT = "http://127.0.0.1:4566"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(
    port: int, script: str = "quickstart.py", extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    env = dict(os.environ, CELLO_PORT=str(port), PYTHONUNBUFFERED="1", **(extra_env or {}))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "python"), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / script)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            print(f"  [app] {line}", end="", flush=True)
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return proc, lines


def wait_for_lines(lines: queue.Queue[str], wanted: dict[str, int], proc: subprocess.Popen[str]) -> None:
    """Read app output until each string in wanted appeared in as many lines as its count."""
    wanted = {k: n for k, n in wanted.items() if n > 0}
    deadline = time.monotonic() + TIMEOUT
    while wanted:
        if proc.poll() is not None:
            raise SystemExit(f"demo: the app exited with code {proc.returncode} before {sorted(wanted)} appeared")
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            raise SystemExit(f"demo: timed out after {TIMEOUT:.0f} s waiting for {sorted(wanted)}") from None
        for text in [w for w in wanted if w in line]:
            wanted[text] -= 1
            if wanted[text] == 0:
                del wanted[text]


def post_order(port: int) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/orders", data=b"{}", method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


async def send_orders(ids: list[str]) -> None:
    sys.path.insert(0, str(HERE.parent / "python"))
    from cello import KafkaConfig
    from cello.messaging import Producer

    async with Producer.connect(KafkaConfig(brokers="localhost:9092")) as producer:
        for order_id in ids:
            result = await producer.send("orders", {"order_id": order_id, "item": "cello strings"}, key=order_id)
            print(f"demo: sent order {order_id} to orders[{result.partition}] at offset {result.offset}")


def sqs_call(action: str, body: dict[str, object]) -> dict[str, object]:
    """Call the local SQS server's JSON API, which checks no signatures."""
    request = urllib.request.Request(
        SQS_ENDPOINT + "/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"AmazonSQS.{action}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}  # type: ignore[no-any-return]


def post_json(port: int, path: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def stop_app(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=60)


def run_sqs() -> int:
    # A queue of this run's own, so that two demos running at once never
    # take each other's messages.
    name = f"cello-demo-orders-{uuid.uuid4().hex[:8]}"
    url = str(sqs_call("CreateQueue", {"QueueName": name})["QueueUrl"])
    print(f"demo: created SQS queue {url}")
    try:
        port = free_port()
        print(f"demo: starting examples/sqs_quickstart.py on 127.0.0.1:{port}")
        proc, lines = start_app(port, "sqs_quickstart.py", {"CELLO_SQS_QUEUE_URL": url})
        try:
            wait_for_lines(lines, {"listening on": 1, f"consuming sqs queue {url} ": 1}, proc)
            items = [f"demo-{uuid.uuid4().hex[:8]}" for _ in range(3)]
            for item in items:
                print(f"demo: POST /orders {{'item': '{item}'}} -> {post_json(port, '/orders', {'item': item})}")
            wait_for_lines(lines, {f"handled order {{'order_id': {i + 1}, 'item': '{item}'": 1
                                   for i, item in enumerate(items)}, proc)
            print("demo: every order posted to the SQS route was consumed")
        finally:
            code = stop_app(proc)
    finally:
        sqs_call("DeleteQueue", {"QueueUrl": url})
    print(f"demo: the SQS app stopped on SIGTERM with exit code {code}")
    return code


def run_rabbitmq() -> int:
    port = free_port()
    print(f"demo: starting examples/rabbitmq_quickstart.py on 127.0.0.1:{port}")
    proc, lines = start_app(port, "rabbitmq_quickstart.py", {})
    try:
        wait_for_lines(lines, {"listening on": 1, "consuming rabbitmq queue signups": 1}, proc)
        users = [f"user-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        for user in users:
            print(f"demo: POST /signups {{'user': '{user}'}} -> {post_json(port, '/signups', {'user': user})}")
        wait_for_lines(lines, {f"welcomed {user} ": 1 for user in users}, proc)
        print("demo: every signup posted to the RabbitMQ route was consumed")
    finally:
        code = stop_app(proc)
    print(f"demo: the RabbitMQ app stopped on SIGTERM with exit code {code}")
    return code


def run_kafka() -> int:
    port = free_port()
    print(f"demo: starting examples/quickstart.py on 127.0.0.1:{port}")
    proc, lines = start_app(port)
    try:
        wait_for_lines(lines, {"listening on": 1, "consuming kafka topic orders ": 1,
                               "consuming kafka topic order-events": 1}, proc)

        for _ in range(3):
            print(f"demo: POST /orders -> {post_order(port)}")
        ids = [f"demo-{uuid.uuid4().hex[:8]}" for _ in range(3)]
        asyncio.run(send_orders(ids))

        # The three sent orders, and the three order events from the HTTP route.
        wanted = {f"fulfilled order {{'order_id': '{i}'": 1 for i in ids}
        wanted["order event {'order_id': 1, 'status': 'created'}"] = 3
        wait_for_lines(lines, wanted, proc)
        print("demo: every posted order event and every sent order was consumed")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    print(f"demo: the app stopped on SIGTERM with exit code {code}")
    return code


def main() -> int:
    for stage in (run_kafka, run_rabbitmq, run_sqs):
        if stage() != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
