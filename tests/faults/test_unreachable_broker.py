"""A broker that cannot be reached from the start: connects fail in time, apps stop on SIGINT.

Two kinds of unreachable broker, both on 127.0.0.1 so no traffic leaves the
machine:

- refused: port 1, which nothing listens on, so the kernel refuses every
  connection at once;
- silent: a socket of this test that completes the TCP handshake and then
  never sends a byte, so only the clients' timeouts end the wait.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from cello import KafkaConfig, RabbitMQConfig, SqsConfig
from cello.messaging import ConnectionError, Consumer, Producer, TimeoutError
from fault_helpers import Workers, catches_signal, log_tail, stop_worker, wait_until
from fault_helpers import workers  # noqa: F401 - a fixture used by name

pytestmark = pytest.mark.faults

REFUSED_PORT = 1
TIMEOUT_MS = 2000
# Time allowed past the connect timeout: the core adds its own deadline
# margin, and a loaded 2-core machine adds scheduling delay.
MARGIN_S = 3.0
SIGINT_EXIT_S = 20.0


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Return the port of a listening socket that accepts connections and never sends a byte."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    # The kernel completes handshakes up to the backlog without accept().
    listener.listen(128)
    yield listener.getsockname()[1]
    listener.close()


def broker_port(kind: str, request: pytest.FixtureRequest) -> int:
    if kind == "refused":
        return REFUSED_PORT
    return int(request.getfixturevalue("silent_port"))


def unreachable_config(broker: str, port: int) -> Any:
    address = f"127.0.0.1:{port}"
    if broker == "kafka":
        return KafkaConfig(brokers=address, connect_timeout_ms=TIMEOUT_MS)
    if broker == "rabbitmq":
        return RabbitMQConfig(url=f"amqp://guest:guest@{address}", connection_timeout_ms=TIMEOUT_MS)
    return SqsConfig(queue_url=f"http://{address}/000000000000/q", endpoint_url=f"http://{address}",
                     use_dummy_credentials=True, request_timeout_ms=TIMEOUT_MS)


@pytest.mark.parametrize("kind", ["refused", "silent"])
@pytest.mark.parametrize("client", [Producer, Consumer], ids=["producer", "consumer"])
@pytest.mark.parametrize("broker", ["kafka", "rabbitmq", "sqs"])
async def test_connect_fails_within_timeout(broker: str, client: Any, kind: str,
                                            request: pytest.FixtureRequest) -> None:
    config = unreachable_config(broker, broker_port(kind, request))
    start = time.monotonic()
    with pytest.raises((ConnectionError, TimeoutError)) as info:
        # wait_for turns a hang into a failure of this test instead of a stuck run.
        await asyncio.wait_for(client.connect(config), TIMEOUT_MS / 1000 + MARGIN_S + 5)
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_MS / 1000 + MARGIN_S
    assert info.value.broker == broker
    assert info.value.retriable
    if kind == "refused":
        assert f"127.0.0.1:{REFUSED_PORT}" in str(info.value), "the error does not name the address"


@pytest.mark.parametrize(("broker", "kind"), [
    ("kafka", "refused"),
    ("kafka", "silent"),
    ("rabbitmq", "silent"),
    ("sqs", "silent"),
])
async def test_app_exits_promptly_on_sigint(broker: str, kind: str, workers: Workers, tmp_path: Path,
                                            request: pytest.FixtureRequest) -> None:
    """SIGINT stops an app that is still connecting, well before its 60 s connect timeout.

    Kafka keeps trying a refused address until its connect timeout, and every
    client waits that long on a silent one (unreachable_app.py sets 60 s), so
    the app is still connecting when the signal arrives.
    """
    log = tmp_path / "app.log"
    proc = workers.start("unreachable_app.py", broker, str(broker_port(kind, request)), log=log)
    # App.serve() installs its SIGTERM handler (with SIGINT's) before it
    # connects, and Python catches no SIGTERM by default.
    await wait_until(lambda: proc.poll() is not None or catches_signal(proc.pid, signal.SIGTERM), 60,
                     "the app to start serving")
    assert proc.poll() is None, f"the app exited before its 60 s connect timeout ended\n{log_tail(log)}"
    code = await stop_worker(proc, signal.SIGINT, SIGINT_EXIT_S)
    assert code is not None, f"the app still runs {SIGINT_EXIT_S:.0f} s after SIGINT\n{log_tail(log)}"
    output = log.read_text()
    # A stop on request is an orderly exit. The app logs why it stopped and
    # prints no traceback, from a KeyboardInterrupt or a cancelled connect.
    # Exit status 0 or the usual status of a SIGINT are both orderly.
    assert "Traceback" not in output, output
    assert output.strip(), "the app exited without a message"
    assert code in (0, -signal.SIGINT, 128 + signal.SIGINT), output


@pytest.mark.parametrize("broker", ["rabbitmq", "sqs"])
async def test_app_fails_at_once_when_refused(broker: str, workers: Workers, tmp_path: Path) -> None:
    """An app whose broker refuses the connection exits by itself with an error naming the address.

    RabbitMQ and SQS report a refused connection at once, so the app must not
    wait for its 60 s connect timeout, nor keep running without its consumer.
    """
    log = tmp_path / "app.log"
    proc = workers.start("unreachable_app.py", broker, str(REFUSED_PORT), log=log)
    await wait_until(lambda: proc.poll() is not None, SIGINT_EXIT_S, "the app to exit")
    output = log.read_text()
    # The app never started, and a supervisor must see that.
    assert proc.returncode != 0, output
    assert "ConnectionError" in output
    assert f"127.0.0.1:{REFUSED_PORT}" in output, "the app's error does not name the broker's address"
