"""Message and MessageResult: pure logic, no broker."""

from __future__ import annotations

import pytest

from cello.messaging import Message, MessageResult, SerializationError
from cello.messaging.message import encode_headers, encode_key, encode_value


def test_spec_message_example() -> None:
    """The Message Class example of the documentation returns the documented values."""
    message = Message(id="1", topic="orders", key="order-1", value='{"id": 1}')
    assert message.id == "1"
    assert message.topic == "orders"
    assert message.key == "order-1"
    assert message.text == '{"id": 1}'
    assert message.json() == {"id": 1}
    message.ack()
    assert message._decision is MessageResult.ACK
    message.nack()
    assert message._decision is MessageResult.NACK


def test_message_result_values() -> None:
    assert MessageResult.ACK == "ack"
    assert MessageResult.NACK == "nack"
    assert MessageResult.REJECT == "reject"
    assert MessageResult.REQUEUE == "requeue"
    assert MessageResult.DEAD_LETTER == "dead_letter"
    assert str(MessageResult.DEAD_LETTER) == "dead_letter"


def test_text_invalid_utf8() -> None:
    message = Message(id="9", topic="t", value=b"ok \xff\xfe")
    with pytest.raises(SerializationError, match="not valid UTF-8") as info:
        _ = message.text
    assert isinstance(info.value, ValueError)
    assert "byte 3" in str(info.value)


def test_json_invalid() -> None:
    message = Message(id="9", topic="t", value="{not json")
    with pytest.raises(SerializationError, match="not valid JSON"):
        message.json()


def test_json_invalid_utf8() -> None:
    with pytest.raises(SerializationError, match="UTF-8"):
        Message(value=b"\xff").json()


def test_json_size_limit() -> None:
    message = Message(value='"' + "x" * 100 + '"')
    with pytest.raises(SerializationError, match="over the JSON limit of 50 bytes"):
        message.json(max_bytes=50)
    assert message.json(max_bytes=None) == "x" * 100


def test_binary_key_stays_bytes() -> None:
    message = Message(key=b"\x00\xff")
    assert message.key == b"\x00\xff"
    assert message.key_bytes == b"\x00\xff"


def test_encode_value_kinds() -> None:
    assert encode_value({"a": 1}) == b'{"a":1}'
    assert encode_value([1, "é"]) == '[1,"é"]'.encode()
    assert encode_value("é") == "é".encode()
    assert encode_value(b"\x00") == b"\x00"
    assert encode_value(None) is None


def test_encode_value_rejects_objects() -> None:
    with pytest.raises(SerializationError, match="type object cannot be sent"):
        encode_value(object())
    with pytest.raises(SerializationError, match="cannot be encoded as JSON"):
        encode_value({"a": float("nan")})


def test_encode_key_and_headers_types() -> None:
    assert encode_key(7) == b"7"
    with pytest.raises(SerializationError, match="key of type float"):
        encode_key(1.5)
    assert encode_headers({"a": "b", "c": b"\x01"}) == [("a", b"b"), ("c", b"\x01")]
    with pytest.raises(SerializationError, match="header 'n' has a value of type int"):
        encode_headers({"n": 1})
    with pytest.raises(SerializationError, match="header name"):
        encode_headers({"": "x"})
    with pytest.raises(SerializationError, match="headers must be a dict"):
        encode_headers("a=b")
