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
_DELIVERY_HEAD = struct.Struct("<QIIiqq")
_SEND_RESULT_MID = struct.Struct("<iq")
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


class SendResult(NamedTuple):
    code: int
    error: str
    partition: int
    offset: int
    id: str


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


def encode_outgoing(messages: Sequence[OutMessage]) -> bytes:
    out = [_U32.pack(len(messages))]
    for m in messages:
        _put_str(out, m.destination)
        _put_bytes(out, m.key)
        _put_bytes(out, m.value)
        out.append(_U32.pack(len(m.headers)))
        for k, v in m.headers:
            _put_str(out, k)
            _put_bytes(out, v)
    return b"".join(out)


def encode_strings(items: Sequence[str]) -> bytes:
    out = [_U32.pack(len(items))]
    for s in items:
        _put_str(out, s)
    return b"".join(out)


def encode_tokens(tokens: Sequence[int]) -> bytes:
    return _U32.pack(len(tokens)) + b"".join(_U64.pack(t) for t in tokens)


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
    r = _Reader(buf)
    out = []
    for _ in range(r.u32()):
        head = _DELIVERY_HEAD.unpack_from(buf, r.pos)
        r.pos += _DELIVERY_HEAD.size
        id_ = r.str()
        topic = r.str()
        key = r.bytes()
        value = r.bytes()
        headers = []
        for _ in range(r.u32()):
            hk = r.str()
            hv = r.bytes()
            headers.append((hk, hv if hv is not None else b""))
        out.append(Delivery(*head, id_, topic, key, value, headers))
    return out


def decode_send_results(buf: bytes) -> list[SendResult]:
    r = _Reader(buf)
    out = []
    for _ in range(r.u32()):
        (code,) = _I32.unpack_from(buf, r.pos)
        r.pos += 4
        error = r.str()
        (partition,) = _I32.unpack_from(buf, r.pos)
        (offset,) = struct.unpack_from("<q", buf, r.pos + 4)
        r.pos += 12
        out.append(SendResult(code, error, partition, offset, r.str()))
    return out


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
