"""The outgoing buffer that send_batch builds, checked without a broker."""

from __future__ import annotations

from typing import Any

import pytest

from cello import _wire
from cello.messaging import ConfigurationError, SerializationError
from cello.messaging.client import Producer


def unconnected_producer(broker: str) -> Producer:
    """A Producer object with no handle: enough to call its encoder."""
    producer = Producer.__new__(Producer)
    producer.broker = broker
    producer._closed = True
    return producer


def general_encoding(items: list[dict[str, Any]]) -> bytes:
    messages = [
        _wire.OutMessage(
            m.get("topic", m.get("queue")),
            m["key"].encode() if isinstance(m.get("key"), str) else m.get("key"),
            m["value"].encode() if isinstance(m["value"], str) else m["value"],
            [(k, v.encode() if isinstance(v, str) else v) for k, v in (m.get("headers") or {}).items()],
        )
        for m in items
    ]
    return _wire.encode_outgoing(messages)


def test_plain_batch_matches_general_encoding() -> None:
    items: list[dict[str, Any]] = [
        {"topic": "orders", "value": b"a"},
        {"topic": "orders", "value": "é"},
        {"topic": "refunds", "value": b""},
        {"topic": "orders", "value": b"k", "key": "id-1"},
        {"topic": "orders", "value": b"h", "headers": {"trace": "t1", "raw": b"\x00"}},
        {"topic": "refunds", "value": None},
        {"queue": "jobs", "value": b"q"},
        {"topic": "orders", "value": b"z"},
    ]
    topics, buf, n = unconnected_producer("kafka")._encode(items)
    assert n == len(items)
    assert topics == ["orders", "orders", "refunds", "orders", "orders", "refunds", "jobs", "orders"]
    assert buf == general_encoding(items)


def test_irregular_batch_items_still_checked() -> None:
    producer = unconnected_producer("kafka")
    with pytest.raises(ConfigurationError, match="topic must be a non-empty str"):
        producer._encode([{"topic": "", "value": b"x"}])
    with pytest.raises(ConfigurationError, match=r"item 1 has unknown field\(s\) \['vaule'\]"):
        producer._encode([{"topic": "t", "value": b"x"}, {"topic": "t", "vaule": b"x"}])
    with pytest.raises(SerializationError, match="item 0 value"):
        producer._encode([{"topic": "t", "value": object()}])
    with pytest.raises(ConfigurationError, match="item 0 must be a dict"):
        producer._encode([("t", b"x")])
