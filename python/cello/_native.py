"""Load the Go core and run its calls.

One shared library (``_cello.so``, built from bridge/) is loaded lazily, once
per process. Calls that talk to a broker return at once; their completion
arrives later as an event. One daemon thread blocks in ``cello_events_wait``
(ctypes releases the GIL meanwhile), decodes each batch of events, and hands
every completion to the asyncio loop or thread that started the call, one
``call_soon_threadsafe`` per loop and batch rather than per message.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import itertools
import logging
import os
import threading
from pathlib import Path
from typing import Any, Callable

from . import _wire
from .messaging import errors

ABI_VERSION = 1

_log = logging.getLogger("cello")


class _Result(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_int32),
        ("id", ctypes.c_uint64),
        ("data", ctypes.c_void_p),
        ("len", ctypes.c_int64),
    ]


_ERRORS: dict[int, type[errors.MessagingError]] = {
    1: errors.MessagingError,
    2: errors.ConfigurationError,
    3: errors.ConnectionError,
    4: errors.TimeoutError,
    5: errors.ClosedError,
    6: errors.NotFoundError,
    7: errors.MessageTooLargeError,
    8: errors.DeliveryError,
    9: errors.ConfigurationError,
    10: errors.InternalError,
}


def error_for(code: int, message: str, broker: str | None = None) -> errors.MessagingError:
    """Build the exception that status ``code`` maps to."""
    cls = _ERRORS.get(code, errors.MessagingError)
    return cls(message, broker=broker, code=code)


_u64 = ctypes.c_uint64
_i64 = ctypes.c_int64
_ptr = ctypes.c_char_p

# Every export and its argument types; each returns _Result unless listed
# in _PLAIN.
_SIGNATURES: dict[str, list[Any]] = {
    "cello_config_new": [_ptr, _ptr, _i64],
    "cello_config_close": [_u64],
    "cello_producer_open": [_u64, _i64, _u64],
    "cello_producer_send": [_u64, _ptr, _i64, _i64, _u64],
    "cello_producer_close": [_u64, _i64, _u64],
    "cello_consumer_open": [_u64, _ptr, _i64, _i64, _u64],
    "cello_consumer_subscribe": [_u64, _ptr, _i64, _i64, _u64],
    "cello_consumer_poll": [_u64, _i64, _i64, _u64],
    "cello_consumer_settle": [_u64, _ptr, _i64, _i64, _u64],
    "cello_consumer_commit": [_u64, _ptr, _i64, _i64, _u64],
    "cello_consumer_close": [_u64, _i64, _u64],
    "cello_events_wait": [_i64, _i64],
    "cello_http_listen": [_ptr, _i64, _i64],
    "cello_http_respond": [_u64, _u64, _ptr, _i64],
    "cello_http_shutdown": [_u64, _i64, _u64],
}
_PLAIN: dict[str, tuple[Any, list[Any]]] = {
    "cello_abi_version": (ctypes.c_int32, []),
    "cello_release": (None, [ctypes.c_void_p]),
    "cello_events_wake": (None, []),
    "cello_set_log_level": (None, [ctypes.c_int32]),
    "cello_handles_live": (ctypes.c_int64, []),
}


class Library:
    """The loaded Go core, with typed calls and the completion dispatcher."""

    def __init__(self, path: Path) -> None:
        try:
            self.lib = ctypes.CDLL(str(path))
        except OSError as exc:
            raise errors.InternalError(
                f"loading the cello core library {path} failed: {exc}; "
                "reinstall cello, or install librdkafka if you built from source"
            ) from exc
        for name, argtypes in _SIGNATURES.items():
            fn = self._symbol(name)
            fn.argtypes = argtypes
            fn.restype = _Result
        for name, (restype, argtypes) in _PLAIN.items():
            fn = self._symbol(name)
            fn.argtypes = argtypes
            fn.restype = restype
        version = self.lib.cello_abi_version()
        if version != ABI_VERSION:
            raise errors.InternalError(
                f"the cello core library {path} has ABI version {version}, "
                f"this Python package expects {ABI_VERSION}; reinstall cello"
            )
        self.pid = os.getpid()
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[Any, Any, Callable[[bytes], Any] | None]] = {}
        self._pending_lock = threading.Lock()
        self.http_handler: Callable[[int, bytes], None] | None = None
        self.lib.cello_set_log_level(_go_log_level())
        self._thread = threading.Thread(target=self._drain, name="cello-events", daemon=True)
        self._thread.start()

    def _symbol(self, name: str) -> Any:
        try:
            return getattr(self.lib, name)
        except AttributeError as exc:
            raise errors.InternalError(
                f"the cello core library lacks the symbol {name}; reinstall cello"
            ) from exc

    # -- synchronous calls --------------------------------------------------

    def check(self, res: _Result, broker: str | None = None) -> tuple[int, bytes]:
        """Return a result's id and buffer, or raise its error; always release it."""
        try:
            data = ctypes.string_at(res.data, res.len) if res.data else b""
        finally:
            if res.data:
                self.lib.cello_release(res.data)
        if res.code != 0:
            raise error_for(res.code, data.decode("utf-8", "replace"), broker)
        return res.id, data

    def call(self, name: str, *args: Any, broker: str | None = None) -> tuple[int, bytes]:
        self.check_pid()
        return self.check(getattr(self.lib, name)(*args), broker)

    def check_pid(self) -> None:
        if os.getpid() != self.pid:
            raise errors.InternalError(
                "cello's core library was started in a parent process and cannot run "
                "after fork(); create producers, consumers and apps in the child, or "
                "use the 'spawn' start method of multiprocessing"
            )

    def live_handles(self) -> int:
        """Return how many Go handles (configs, clients, servers) are open."""
        return int(self.lib.cello_handles_live())

    # -- asynchronous calls -------------------------------------------------

    def start(
        self,
        name: str,
        *args: Any,
        broker: str | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> asyncio.Future[Any]:
        """Start an asynchronous export and return a future for its completion."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._launch(name, args, (loop, future), broker, decode)
        return future

    def start_blocking(
        self,
        name: str,
        *args: Any,
        broker: str | None = None,
        decode: Callable[[bytes], Any] | None = None,
    ) -> concurrent.futures.Future[Any]:
        """Like start, for callers outside an event loop."""
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._launch(name, args, (None, future), broker, decode)
        return future

    def _launch(self, name: str, args: tuple[Any, ...], target: Any, broker: str | None, decode: Any) -> None:
        self.check_pid()
        completion = next(self._ids)
        with self._pending_lock:
            self._pending[completion] = (target, broker, decode)
        try:
            self.check(getattr(self.lib, name)(*args, completion), broker)
        except BaseException:
            with self._pending_lock:
                self._pending.pop(completion, None)
            raise

    def _drain(self) -> None:
        while True:
            try:
                self._drain_once()
            except Exception:  # the thread must survive, or every call would hang
                _log.exception("dispatching events from the cello core failed")

    def _drain_once(self) -> None:
        _, buf = self.check(self.lib.cello_events_wait(1000, 4096))
        if not buf:
            return
        per_loop: dict[Any, list[tuple[Any, Any, Any]]] = {}
        for event in _wire.decode_events(buf):
            try:
                if event.kind == _wire.EVENT_COMPLETION:
                    self._complete(event, per_loop)
                elif event.kind == _wire.EVENT_LOG:
                    _emit_log(event.payload or b"")
                elif event.kind == _wire.EVENT_HTTP_REQUEST:
                    handler = self.http_handler
                    if handler is not None:
                        handler(event.id, event.payload or b"")
            except Exception:  # one bad event must not lose the others
                _log.exception("handling a cello core event of kind %d failed", event.kind)
        for loop, items in per_loop.items():
            try:
                loop.call_soon_threadsafe(_settle_all, items)
            except RuntimeError:
                pass  # The loop was closed, so no caller awaits these futures.

    def _complete(self, event: _wire.Event, per_loop: dict[Any, list[Any]]) -> None:
        with self._pending_lock:
            entry = self._pending.pop(event.id, None)
        if entry is None:
            return
        (loop, future), broker, decode = entry
        payload = event.payload or b""
        outcome: Any
        if event.code != 0:
            outcome = error_for(event.code, payload.decode("utf-8", "replace"), broker)
        else:
            try:
                outcome = decode(payload) if decode else payload
            except Exception as exc:  # a decoding bug must reach the caller
                outcome = errors.InternalError(f"decoding a result failed: {exc!r}")
        if loop is None:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        else:
            per_loop.setdefault(loop, []).append((future, outcome, None))


def _settle_all(items: list[tuple[asyncio.Future[Any], Any, None]]) -> None:
    for future, outcome, _ in items:
        if future.cancelled():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _go_log_level() -> int:
    # Records at INFO and above are rare, so Go always sends them and
    # Python's logging filters them; DEBUG records cross only when enabled.
    level = logging.getLogger("cello").getEffectiveLevel()
    return max(min(level, logging.INFO), logging.DEBUG)


def _emit_log(payload: bytes) -> None:
    level, component, message, fields = _wire.decode_log(payload)
    logger = logging.getLogger(f"cello.{component}")
    if not logger.isEnabledFor(level):
        return
    context = " ".join(f"{k}={v}" for k, v in fields)
    logger.log(level, "%s%s", message, f" ({context})" if context else "")


_library: Library | None = None
_library_lock = threading.Lock()


def library() -> Library:
    """Return the loaded core library, loading it on first use."""
    global _library
    lib = _library
    if lib is not None:
        lib.check_pid()
        return lib
    with _library_lock:
        if _library is None:
            _library = Library(_find_library())
        return _library


def _find_library() -> Path:
    path = Path(__file__).with_name("_cello.so")
    if not path.exists():
        raise errors.InternalError(
            f"the cello core library is missing at {path}; build it with 'make build' "
            "or install cello with pip"
        )
    return path


def set_log_level(level: int) -> None:
    """Tell the core the lowest level worth sending, after logging was configured."""
    library().lib.cello_set_log_level(max(level, logging.DEBUG))
