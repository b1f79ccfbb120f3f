"""The consumed ``Message`` and the ``MessageResult`` a handler returns."""

from __future__ import annotations

import enum
import json as _json
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from .errors import ConfigurationError, SerializationError

__all__ = ["Message", "MessageResult", "DEFAULT_MAX_JSON_BYTES"]

# The maximum value size Message.json() parses by default: big enough
# for any broker's default message size, small enough that a corrupt or
# hostile message cannot make the parser build a huge object.
DEFAULT_MAX_JSON_BYTES = 16 * 1024 * 1024


class MessageResult(str, enum.Enum):
    """A handler's decision about a message; each value also equals its plain string."""

    ACK = "ack"
    NACK = "nack"
    REJECT = "reject"
    REQUEUE = "requeue"
    DEAD_LETTER = "dead_letter"

    def __str__(self) -> str:
        return self.value


# Codes of MessageResult in the Go core's settlement buffers.
RESULT_CODES = {
    MessageResult.ACK: 1,
    MessageResult.NACK: 2,
    MessageResult.REQUEUE: 3,
    MessageResult.REJECT: 4,
    MessageResult.DEAD_LETTER: 5,
}
SKIPPED_CODE = 6


def _to_bytes(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise ConfigurationError(f"Message {what} must be str or bytes, got {type(value).__name__}")


class Message:
    """A consumed message, or one built by hand for tests.

    ``value`` and ``key`` are the raw bytes; ``text`` and ``json()`` decode
    the value. ``ack()`` and ``nack()`` record the outcome. Inside a
    decorated handler they win over its return value. For a message from
    ``Consumer.poll`` they settle it with the broker at once.
    """

    __slots__ = (
        "id",
        "topic",
        "_key",
        "_value",
        "_headers",
        "partition",
        "offset",
        "_timestamp",
        "attempt",
        "_token",
        "_decision",
        "_reason",
        "_settler",
        "_owner",
    )

    def __init__(
        self,
        id: str = "",
        topic: str = "",
        key: str | bytes | None = None,
        value: str | bytes | None = b"",
        headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]] | None = None,
        partition: int | None = None,
        offset: int | None = None,
        timestamp: datetime | None = None,
        attempt: int = 1,
    ) -> None:
        self.id = id
        self.topic = topic
        self._key = _to_bytes(key, "key")
        self._value = _to_bytes(value, "value") or b""
        self.headers = _header_dict(headers)
        self.partition = partition
        self.offset = offset
        self.timestamp = timestamp
        self.attempt = attempt
        self._token = 0
        self._decision: MessageResult | None = None
        self._reason = ""
        self._settler: Callable[[Message, MessageResult], None] | None = None
        # The handle of the consumer whose poll() returned this message, or
        # 0; delivery tokens are unique only within one consumer.
        self._owner = 0

    @classmethod
    def _from_delivery(cls, d: Any) -> Message:
        m = cls.__new__(cls)
        m.id = d.id
        m.topic = d.topic
        m._key = d.key
        m._value = d.value if d.value is not None else b""
        # Headers and timestamp stay as decoded until first read: most
        # handlers read neither, and building them costs more than the rest.
        m._headers = d.headers
        m.partition = d.partition if d.partition >= 0 else None
        m.offset = d.offset
        m._timestamp = d.timestamp_ms
        m.attempt = d.attempt
        m._token = d.token
        m._decision = None
        m._reason = ""
        m._settler = None
        m._owner = 0
        return m

    @property
    def headers(self) -> dict[str, bytes]:
        """Header names and raw values; a name sent twice keeps its last value."""
        headers = self._headers
        if type(headers) is not dict:
            headers = self._headers = dict(headers)
        return headers

    @headers.setter
    def headers(self, headers: Mapping[str, str | bytes] | Sequence[tuple[str, bytes]] | None) -> None:
        self._headers = _header_dict(headers)

    @property
    def timestamp(self) -> datetime | None:
        """When the broker or producer stamped the message (UTC), or None."""
        stamp = self._timestamp
        if type(stamp) is int:
            # A consumed message stores milliseconds since the epoch, 0 for none.
            stamp = self._timestamp = datetime.fromtimestamp(stamp / 1000, tz=timezone.utc) if stamp else None
        return stamp

    @timestamp.setter
    def timestamp(self, stamp: datetime | None) -> None:
        if stamp is not None and not isinstance(stamp, datetime):
            raise ConfigurationError(f"Message timestamp must be a datetime or None, got {type(stamp).__name__}")
        self._timestamp = stamp

    @property
    def key(self) -> str | bytes | None:
        """The key as text when it is valid UTF-8, otherwise the raw bytes."""
        if self._key is None:
            return None
        try:
            return self._key.decode("utf-8")
        except UnicodeDecodeError:
            return self._key

    @property
    def key_bytes(self) -> bytes | None:
        """The key's raw bytes."""
        return self._key

    @property
    def value(self) -> bytes:
        """The value's raw bytes."""
        return self._value

    @property
    def text(self) -> str:
        """The value decoded as UTF-8; raises SerializationError if it is not."""
        try:
            return self._value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SerializationError(
                f"message {self.id!r} on {self.topic!r}: value is not valid UTF-8 "
                f"(byte {exc.start} of {len(self._value)}); read .value for the raw bytes"
            ) from exc

    def json(self, max_bytes: int | None = DEFAULT_MAX_JSON_BYTES) -> Any:
        """Parse the value as JSON; raises SerializationError if it is not.

        ``max_bytes`` caps the size parsed (None for no cap), so a huge
        message fails fast instead of building a huge object.
        """
        if max_bytes is not None and len(self._value) > max_bytes:
            raise SerializationError(
                f"message {self.id!r} on {self.topic!r}: value is {len(self._value)} bytes, "
                f"over the JSON limit of {max_bytes} bytes; pass max_bytes=... to json()"
            )
        try:
            return _json.loads(self.text)
        except RecursionError as exc:
            raise SerializationError(
                f"message {self.id!r} on {self.topic!r}: value nests JSON too deeply to parse"
            ) from exc
        except _json.JSONDecodeError as exc:
            raise SerializationError(
                f"message {self.id!r} on {self.topic!r}: value is not valid JSON: {exc}"
            ) from exc

    def ack(self) -> None:
        """Acknowledge the message as processed."""
        self._decide(MessageResult.ACK)

    def nack(self, reason: str = "") -> None:
        """Report the message as failed; it is retried after a backoff."""
        self._reason = reason
        self._decide(MessageResult.NACK)

    def _decide(self, result: MessageResult) -> None:
        self._decision = result
        if self._settler is not None:
            settler, self._settler = self._settler, None
            settler(self, result)

    def __repr__(self) -> str:
        where = f"{self.topic}"
        if self.partition is not None:
            where += f"[{self.partition}]@{self.offset}"
        return f"<Message id={self.id!r} {where} key={self.key!r} {len(self._value)} bytes>"


def _header_dict(headers: Any) -> dict[str, bytes]:
    if headers is None:
        return {}
    items = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, bytes] = {}
    for k, v in items:
        out[str(k)] = _to_bytes(v, f"header {k!r}") or b""
    return out


def encode_text(text: str, what: str) -> bytes:
    """Encode a str as UTF-8, raising SerializationError for lone surrogates."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SerializationError(
            f"{what} cannot be encoded as UTF-8: it has a lone surrogate {text[exc.start]!r} "
            f"at index {exc.start}; pass bytes or valid text"
        ) from None


def encode_value(value: Any, what: str = "value") -> bytes | None:
    """Encode a value to send: bytes as is, str as UTF-8, JSON for the rest.

    dict, list, int, float, bool, dataclasses and objects with pydantic's
    ``model_dump_json`` become JSON. None stays None (a Kafka tombstone).
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return encode_text(value, what)
    dump = getattr(value, "model_dump_json", None)
    if callable(dump):
        return dump().encode("utf-8")
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, (dict, list, tuple, int, float, bool)):
        try:
            return _json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
                "utf-8"
            )
        except (TypeError, ValueError) as exc:
            raise SerializationError(f"{what} cannot be encoded as JSON: {exc}") from exc
    raise SerializationError(
        f"{what} of type {type(value).__name__} cannot be sent; "
        "pass bytes, str, or a JSON-encodable dict, list, number, bool or dataclass"
    )


def encode_key(key: Any) -> bytes | None:
    if key is None or isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return encode_text(key, "key")
    if isinstance(key, (bytearray, memoryview)):
        return bytes(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key).encode("ascii")
    raise SerializationError(f"key of type {type(key).__name__} cannot be sent; pass str, bytes or int")


def encode_headers(headers: Any) -> list[tuple[str, bytes]]:
    if not headers:
        return []
    if isinstance(headers, Mapping):
        items = list(headers.items())
    elif isinstance(headers, (list, tuple)):
        items = list(headers)
    else:
        raise SerializationError(
            f"headers must be a dict or a list of (name, value) pairs, got {type(headers).__name__}"
        )
    out = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise SerializationError(f"header {item!r} must be a (name, value) pair")
        k, v = item
        if not isinstance(k, str) or not k:
            raise SerializationError(f"header name {k!r} must be a non-empty str")
        encode_text(k, f"header name {k!r}")
        if isinstance(v, str):
            out.append((k, encode_text(v, f"header {k!r}")))
        elif isinstance(v, (bytes, bytearray, memoryview)):
            out.append((k, bytes(v)))
        else:
            raise SerializationError(f"header {k!r} has a value of type {type(v).__name__}; pass str or bytes")
    return out
