"""``App``: HTTP routes served by the Go core, plus the registered consumers.

Go's net/http accepts the HTTP requests. Each one crosses to Python as an
event and runs its handler on the app's event loop, with sync handlers in a
thread pool, and then its response crosses back. ``run()`` also starts every
consumer registered with the messaging decorators, and stops them all
cleanly on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import signal
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from . import _native, _wire
from .messaging.client import Consumer, Producer
from .messaging.config import BrokerConfig, KafkaConfig, RabbitMQConfig, SqsConfig
from .messaging.errors import ConfigurationError, SerializationError
from .messaging.registry import registry
from .messaging.runner import ConsumerRunner

__all__ = ["App", "Request", "Response"]

_log = logging.getLogger("cello.app")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class RequestBodyError(SerializationError):
    """The request body is not valid UTF-8 or JSON; the app returns 400."""


class Request:
    """An HTTP request as a route handler receives it."""

    __slots__ = ("method", "path", "headers", "query_params", "path_params", "body", "client")

    def __init__(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        query_params: Mapping[str, str],
        path_params: Mapping[str, str],
        body: bytes,
        client: str = "",
    ) -> None:
        self.method = method
        self.path = path
        self.headers = dict(headers)
        self.query_params = dict(query_params)
        self.path_params = dict(path_params)
        self.body = body
        self.client = client

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise RequestBodyError(f"request body is not valid UTF-8 (byte {exc.start})") from exc

    def json(self) -> Any:
        """The body parsed as JSON; invalid JSON makes the app return 400 unless caught."""
        try:
            return json.loads(self.text)
        except json.JSONDecodeError as exc:
            raise RequestBodyError(f"request body is not valid JSON: {exc}") from exc

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


@dataclass
class Response:
    """A response with an explicit status and headers."""

    body: Any = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class _Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]


class _Headers(dict):  # type: ignore[type-arg]
    """Header names compared without regard to case."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())  # type: ignore[no-any-return]

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())


class App:
    """An application: HTTP routes and message consumers run together."""

    def __init__(self, *, shutdown_timeout: float = 30.0, max_body_bytes: int = 10 << 20,
                 handler_timeout: float = 60.0, workers: int = 32) -> None:
        for name, value in (("shutdown_timeout", shutdown_timeout), ("handler_timeout", handler_timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 86400:
                raise ConfigurationError(f"App {name} must be a number of seconds from 0 to 86400, got {value!r}")
        for name, value in (("max_body_bytes", max_body_bytes), ("workers", workers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"App {name} must be an int >= 1, got {value!r}")
        self.routes: list[_Route] = []
        self.shutdown_timeout = shutdown_timeout
        self.max_body_bytes = max_body_bytes
        self.handler_timeout = handler_timeout
        self.workers = workers
        self._stop: asyncio.Event | None = None
        self.address: str | None = None
        # True from when serve() has connected everything until it stops.
        self.started = False
        # Set when shutdown gave up on a handler that was still running.
        self._abandoned = False

    # -- configuration --------------------------------------------------

    def enable_messaging(self, config: BrokerConfig) -> None:
        """Use this broker config for the decorators and the shared producer."""
        if not isinstance(config, BrokerConfig):
            raise ConfigurationError(
                f"enable_messaging needs a KafkaConfig, RabbitMQConfig or SqsConfig, got {type(config).__name__}"
            )
        registry.configs[config.broker] = config

    def enable_rabbitmq(self, config: RabbitMQConfig) -> None:
        """Use this RabbitMQ config for the RabbitMQ decorators."""
        if not isinstance(config, RabbitMQConfig):
            raise ConfigurationError(f"enable_rabbitmq needs a RabbitMQConfig, got {type(config).__name__}")
        self.enable_messaging(config)

    def enable_sqs(self, config: SqsConfig) -> None:
        """Use this SQS config for the SQS decorators."""
        if not isinstance(config, SqsConfig):
            raise ConfigurationError(f"enable_sqs needs an SqsConfig, got {type(config).__name__}")
        self.enable_messaging(config)

    def enable_kafka(self, config: KafkaConfig) -> None:
        """Use this Kafka config for the Kafka decorators."""
        if not isinstance(config, KafkaConfig):
            raise ConfigurationError(f"enable_kafka needs a KafkaConfig, got {type(config).__name__}")
        self.enable_messaging(config)

    # -- routes ---------------------------------------------------------

    def route(self, method: str, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a handler for ``method`` and ``path``; ``{name}`` captures a segment."""
        if not isinstance(path, str) or not path.startswith("/"):
            raise ConfigurationError(f"route path must be a str starting with '/', got {path!r}")
        pattern = re.compile("^" + _PARAM.sub(r"(?P<\1>[^/]+)", re.escape(path).replace(r"\{", "{").replace(r"\}", "}")) + "$")

        def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.routes.append(_Route(method.upper(), path, pattern, handler))
            return handler

        return decorate

    def get(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("GET", path)

    def post(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("POST", path)

    def put(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PUT", path)

    def patch(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("PATCH", path)

    def delete(self, path: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return self.route("DELETE", path)

    # -- running --------------------------------------------------------

    def run(self, host: str | None = None, port: int | None = None) -> None:
        """Serve HTTP and run the consumers until SIGINT or SIGTERM.

        ``host`` and ``port`` default to the environment variables CELLO_HOST
        and CELLO_PORT, then to 127.0.0.1 and 8000.
        """
        if host is None:
            host = os.environ.get("CELLO_HOST", "127.0.0.1")
        if port is None:
            raw = os.environ.get("CELLO_PORT", "8000")
            try:
                port = int(raw)
            except ValueError:
                raise ConfigurationError(f"CELLO_PORT must be an integer port, got {raw!r}") from None
        self._abandoned = False
        asyncio.run(self.serve(host, port))
        if self._abandoned:
            # A sync handler still running in a worker thread cannot be
            # cancelled, and the interpreter would wait for it at exit.
            _log.warning("exiting without waiting for handlers still running")
            logging.shutdown()
            os._exit(0)

    def stop(self) -> None:
        """Ask a running serve() to shut down, from any thread."""
        stop, loop = self._stop, getattr(self, "_loop", None)
        if stop is not None and loop is not None:
            loop.call_soon_threadsafe(stop.set)

    async def serve(self, host: str = "127.0.0.1", port: int = 8000, *, install_signal_handlers: bool = True) -> None:
        """Run until stop() is called or a signal arrives; then drain and close."""
        if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
            raise ConfigurationError(f"port must be an int from 0 to 65535, got {port!r}")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stop = asyncio.Event()
        executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cello-handler")
        lib = _native.library()
        if install_signal_handlers:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal, sig)
        self._runners: list[tuple[ConsumerRunner, asyncio.Task[None]]] = []
        self._server_handle = 0
        stopped: asyncio.Future[Any] | None = None
        try:
            # Startup waits on brokers; a signal during it stops at once
            # instead of after every connect timeout.
            startup = asyncio.ensure_future(self._start(lib, loop, executor, host, port))
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({startup, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not startup.done():
                _log.warning("stopping before startup finished")
                startup.cancel()
                await asyncio.gather(startup, return_exceptions=True)
            else:
                startup.result()  # raises what made startup fail
                self.started = True
                await stopped
        finally:
            if stopped is not None:
                stopped.cancel()
            self.started = False
            _log.info("shutting down: draining requests and consumers for up to %.0f s", self.shutdown_timeout)
            if self._server_handle:
                # Requests in flight still run on this loop while Go waits for them.
                await lib.start("cello_http_shutdown", self._server_handle, int(self.shutdown_timeout * 1000))
                lib.http_handler = None
            await self._drain(self._runners)
            await self._close_producers()
            executor.shutdown(wait=False, cancel_futures=True)
            if install_signal_handlers:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            _log.info("stopped")

    async def _start(self, lib: Any, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor,
                     host: str, port: int) -> None:
        """Connect producers and consumers, then listen; record each part for shutdown."""
        await self._open_producers()
        await self._start_consumers(executor, self._runners)
        if self.routes:
            self._server_handle = self._listen(lib, loop, executor, host, port)

    def _on_signal(self, sig: signal.Signals) -> None:
        _log.info("received %s", sig.name)
        assert self._stop is not None
        if self._stop.is_set():
            if sig == signal.SIGINT:
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            # Tools such as timeout(1) send SIGTERM to the process and again
            # to its group; the drain goes on, bounded by shutdown_timeout.
            _log.info("already stopping; a second SIGINT stops at once")
            return
        self._stop.set()

    async def _open_producers(self) -> None:
        for broker, config in registry.configs.items():
            producer = registry.producers.get(broker)
            if producer is None or producer._closed:
                registry.producers[broker] = await Producer.connect(config)

    async def _close_producers(self) -> None:
        for broker, producer in list(registry.producers.items()):
            try:
                await producer.close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                _log.error("closing the %s producer failed: %s", broker, exc)
            registry.producers.pop(broker, None)

    async def _start_consumers(self, executor: ThreadPoolExecutor,
                               runners: list[tuple[ConsumerRunner, asyncio.Task[None]]]) -> None:
        for spec in registry.consumers:
            config = registry.config_for(spec.broker, f"the consumer {spec.describe()}")
            consumer = await Consumer.connect(config, **spec.options)
            await consumer.subscribe(spec.names)
            runner = ConsumerRunner(spec, consumer, executor)
            task = asyncio.create_task(runner.run(), name=f"cello-consumer-{runner.description}")
            task.add_done_callback(self._consumer_done)
            runners.append((runner, task))
            _log.info("consuming %s", runner.description)

    def _consumer_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._stop is None or self._stop.is_set():
            return
        exc = task.exception()
        if exc is not None:
            _log.error("consumer task %s stopped with an error, shutting down: %s", task.get_name(), exc)
            self._stop.set()

    async def _drain(self, runners: list[tuple[ConsumerRunner, asyncio.Task[None]]]) -> None:
        for runner, _ in runners:
            runner.stop()
        tasks = [task for _, task in runners]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=self.shutdown_timeout)
            for task in pending:
                _log.warning("a handler was still running after %.0f s; its messages are not acknowledged",
                             self.shutdown_timeout)
                task.cancel()
                self._abandoned = True
            await asyncio.gather(*tasks, return_exceptions=True)
        for runner, _ in runners:
            try:
                await runner.consumer.close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                _log.error("closing consumer %s failed: %s", runner.description, exc)

    # -- HTTP -----------------------------------------------------------

    def _listen(self, lib: Any, loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor,
                host: str, port: int) -> int:
        def on_request(request_id: int, payload: bytes) -> None:
            loop.call_soon_threadsafe(self._spawn_request, lib, executor, request_id, payload)

        lib.http_handler = on_request
        addr = f"{host}:{port}".encode()
        server, bound = lib.call("cello_http_listen", addr, self.max_body_bytes, int(self.handler_timeout * 1000))
        self.address = bound.decode()
        self._server = server
        _log.info("listening on http://%s", self.address)
        for r in self.routes:
            _log.info("route %s %s -> %s", r.method, r.template, getattr(r.handler, "__qualname__", r.handler))
        return int(server)

    def _spawn_request(self, lib: Any, executor: ThreadPoolExecutor, request_id: int, payload: bytes) -> None:
        asyncio.get_running_loop().create_task(self._handle_request(lib, executor, request_id, payload))

    async def _handle_request(self, lib: Any, executor: ThreadPoolExecutor, request_id: int, payload: bytes) -> None:
        method, path, query, headers, body, remote = _wire.decode_http_request(payload)
        status, out_headers, out_body = await self.dispatch(method, path, query, headers, body, remote, executor)
        buf = _wire.encode_http_response(status, out_headers, out_body)
        try:
            lib.call("cello_http_respond", self._server, request_id, buf, len(buf))
        except Exception as exc:  # noqa: BLE001 - the client may have gone away
            _log.debug("response to %s %s not delivered: %s", method, path, exc)

    async def dispatch(self, method: str, path: str, query: str, headers: list[tuple[str, str]],
                       body: bytes, remote: str = "",
                       executor: ThreadPoolExecutor | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        """Route one request and return (status, headers, body)."""
        allowed = []
        for route in self.routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method != method:
                allowed.append(route.method)
                continue
            request = Request(
                method, path,
                _Headers((k.lower(), v) for k, v in headers),
                dict(urllib.parse.parse_qsl(query, keep_blank_values=True)),
                {k: urllib.parse.unquote(v) for k, v in match.groupdict().items()},
                body, remote,
            )
            try:
                if inspect.iscoroutinefunction(route.handler):
                    result = await route.handler(request)
                else:
                    loop = asyncio.get_running_loop()
                    result = await loop.run_in_executor(executor, route.handler, request)
            except RequestBodyError as exc:
                return _error(400, str(exc))
            except Exception:  # a failing handler returns 500 and the server goes on
                _log.exception("handler for %s %s failed", method, path)
                return _error(500, "internal server error")
            return _to_response(result)
        if allowed:
            status, hdrs, out = _error(405, f"method {method} not allowed; allowed: {', '.join(allowed)}")
            return status, hdrs + [("Allow", ", ".join(allowed))], out
        return _error(404, f"no route for {path}")


def _error(status: int, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps({"error": message}).encode()


def _to_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    status = 200
    headers: dict[str, str] = {}
    if isinstance(result, Response):
        status, headers, result = result.status, dict(result.headers), result.body
    elif isinstance(result, tuple) and len(result) in (2, 3) and isinstance(result[1], int):
        if len(result) == 3:
            headers = dict(result[2])
        status = result[1]
        result = result[0]
    if result is None:
        return (204 if status == 200 else status), list(headers.items()), b""
    if isinstance(result, (bytes, bytearray)):
        headers.setdefault("Content-Type", "application/octet-stream")
        body = bytes(result)
    elif isinstance(result, str):
        headers.setdefault("Content-Type", "text/plain; charset=utf-8")
        body = result.encode()
    else:
        try:
            body = json.dumps(result, default=_json_default).encode()
        except (TypeError, ValueError):
            _log.exception("handler returned a value that cannot be encoded as JSON")
            return _error(500, "internal server error")
        headers.setdefault("Content-Type", "application/json")
    return status, list(headers.items()), body


def _json_default(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
