"""Run the Quick Start against the local brokers and show orders flowing.

Starts examples/quickstart.py, posts orders to its HTTP route (each one is
published to ``order-events`` and consumed by the audit consumer), sends
orders straight to the ``orders`` topic (each one consumed by
``process_order``), waits until every one was consumed, then stops the app
with SIGTERM and checks that it exited cleanly. Run it with ``make demo``.
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_app(port: int) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    env = dict(os.environ, CELLO_PORT=str(port), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent / "python"), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "quickstart.py")],
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


def main() -> int:
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
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
