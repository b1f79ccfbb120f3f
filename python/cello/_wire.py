"""Encode and decode the buffers exchanged with the Go core.

The layout is documented once, in core/wire/doc.go: little-endian integers,
``str`` as a u32 length and UTF-8 bytes, ``bytes`` as an i32 length (-1 for
None) and the bytes.
"""

from __future__ import annotations

import struct
from typing import Iterable, NamedTuple, Sequence

_U32 = struct.Struct("<I")
_I32 = struct.Struct("<i")
_U64 = struct.Struct("<Q")
_DELIVERY_HEAD = struct.Struct("<QIIiqqIIiiI")
_SEND_RESULT = struct.Struct("<iiq")
_EVENT_HEAD = struct.Struct("<BQi")
_SETTLEMENT_HEAD = struct.Struct("<QB")

Headers = Sequence[tuple[str, bytes]]


class OutMessage(NamedTuple):
    destination: str
    key: bytes | None
    value: bytes
    headers: Headers


class Delivery(NamedTuple):
    token: int
    lane: int
    attempt: int
    partition: int
    offset: int
    timestamp_ms: int
    id: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


class SendResults(NamedTuple):
    """A decoded send results buffer: per result (code, partition, offset)
    and id, and the error messages by result index."""

    fixed: list[tuple[int, int, int]]
    ids: list[str]
    errors: dict[int, str]


class Event(NamedTuple):
    kind: int
    id: int
    code: int
    payload: bytes | None


EVENT_COMPLETION = 1
EVENT_LOG = 2
EVENT_HTTP_REQUEST = 3


def _put_str(out: list[bytes], s: str) -> None:
    b = s.encode("utf-8")
    out.append(_U32.pack(len(b)))
    out.append(b)


def _put_bytes(out: list[bytes], b: bytes | None) -> None:
    if b is None:
        out.append(_I32.pack(-1))
    else:
        out.append(_I32.pack(len(b)))
        out.append(b)


NO_BYTES = _I32.pack(-1)
NO_HEADERS = _U32.pack(0)


def put_outgoing(out: list[bytes], m: OutMessage) -> None:
    """Append one message of an outgoing buffer to ``out``."""
    _put_str(out, m.destination)
    _put_bytes(out, m.key)
    _put_bytes(out, m.value)
    out.append(_U32.pack(len(m.headers)))
    for k, v in m.headers:
        _put_str(out, k)
        _put_bytes(out, v)


def encode_outgoing(messages: Sequence[OutMessage]) -> bytes:
    out = [_U32.pack(len(messages))]
    for m in messages:
        put_outgoing(out, m)
    return b"".join(out)


def str_bytes(s: str) -> bytes:
    """Return ``s`` in the wire's str layout."""
    b = s.encode("utf-8")
    return _U32.pack(len(b)) + b


def count(n: int) -> bytes:
    return _U32.pack(n)


def bytes_length(n: int) -> bytes:
    return _I32.pack(n)


def encode_strings(items: Sequence[str]) -> bytes:
    out = [_U32.pack(len(items))]
    for s in items:
        _put_str(out, s)
    return b"".join(out)


def encode_tokens(tokens: Sequence[int]) -> bytes:
    return struct.pack(f"<I{len(tokens)}Q", len(tokens), *tokens)


def encode_settlements(items: Iterable[tuple[int, int, str]]) -> bytes:
    out: list[bytes] = []
    n = 0
    for token, result, reason in items:
        out.append(_SETTLEMENT_HEAD.pack(token, result))
        _put_str(out, reason)
        n += 1
    return _U32.pack(n) + b"".join(out)


class _Reader:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def u32(self) -> int:
        (v,) = _U32.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def str(self) -> str:
        n = self.u32()
        s = self.buf[self.pos : self.pos + n].decode("utf-8")
        self.pos += n
        return s

    def bytes(self) -> bytes | None:
        (n,) = _I32.unpack_from(self.buf, self.pos)
        self.pos += 4
        if n < 0:
            return None
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b


def decode_deliveries(buf: bytes) -> list[Delivery]:
    # Each delivery's fixed head contains every length, so one unpack and
    # four slices read a delivery without headers. This runs once per
    # consumed message, so it inlines the reads instead of calling helpers.
    (n,) = _U32.unpack_from(buf, 0)
    pos = 4
    out = []
    head = _DELIVERY_HEAD.unpack_from
    head_size = _DELIVERY_HEAD.size
    new = tuple.__new__
    last_topic = b""
    topic = ""
    for _ in range(n):
        token, lane, attempt, partition, offset, stamp, id_size, topic_size, key_size, value_size, count = head(
            buf, pos
        )
        pos += head_size
        end = pos + id_size
        id_ = buf[pos:end].decode("utf-8")
        pos = end + topic_size
        raw = buf[end:pos]
        if raw != last_topic:
            topic = raw.decode("utf-8")
            last_topic = raw
        key = None
        if key_size >= 0:
            key = buf[pos : pos + key_size]
            pos += key_size
        value = None
        if value_size >= 0:
            value = buf[pos : pos + value_size]
            pos += value_size
        headers = []
        if count:
            r = _Reader(buf)
            r.pos = pos
            for _ in range(count):
                name = r.str()
                headers.append((name, r.bytes() or b""))
            pos = r.pos
        out.append(
            new(Delivery, (token, lane, attempt, partition, offset, stamp, id_, topic, key, value, headers))
        )
    if pos != len(buf):
        raise ValueError(f"deliveries buffer has {len(buf) - pos} bytes after its last delivery")
    return out


def decode_send_results(buf: bytes) -> SendResults:
    (n,) = _U32.unpack_from(buf, 0)
    end = 4 + _SEND_RESULT.size * n
    fixed = list(_SEND_RESULT.iter_unpack(memoryview(buf)[4:end]))
    r = _Reader(buf)
    r.pos = end
    joined = r.str()
    ids = joined.split("\x00") if n else []
    errors = {}
    for _ in range(r.u32()):
        index = r.u32()
        errors[index] = r.str()
    return SendResults(fixed, ids, errors)


def decode_events(buf: bytes) -> list[Event]:
    r = _Reader(buf)
    out = []
    for _ in range(r.u32()):
        kind, id_, code = _EVENT_HEAD.unpack_from(buf, r.pos)
        r.pos += _EVENT_HEAD.size
        out.append(Event(kind, id_, code, r.bytes()))
    return out


def decode_log(buf: bytes) -> tuple[int, str, str, list[tuple[str, str]]]:
    r = _Reader(buf)
    level = r.u32()
    component = r.str()
    message = r.str()
    fields = [(r.str(), r.str()) for _ in range(r.u32())]
    return level, component, message, fields


def decode_http_request(buf: bytes) -> tuple[str, str, str, list[tuple[str, str]], bytes, str]:
    r = _Reader(buf)
    method = r.str()
    path = r.str()
    query = r.str()
    headers = [(r.str(), r.str()) for _ in range(r.u32())]
    body = r.bytes() or b""
    remote = r.str()
    return method, path, query, headers, body, remote


def encode_http_response(status: int, headers: Sequence[tuple[str, str]], body: bytes) -> bytes:
    out = [_U32.pack(status), _U32.pack(len(headers))]
    for k, v in headers:
        _put_str(out, k)
        _put_str(out, v)
    _put_bytes(out, body)
    return b"".join(out)
