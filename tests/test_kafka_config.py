"""KafkaConfig validation, done in the Go core. Needs the library, not a broker."""

from __future__ import annotations

import pytest

from cello import KafkaConfig
from cello.messaging import ConfigurationError


def test_spec_full_configuration() -> None:
    config = KafkaConfig(
        brokers="broker1:9092,broker2:9092",
        group_id="my-service",
        client_id="cello-app",
        auto_commit=True,
        session_timeout_ms=30000,
        max_poll_records=500,
    )
    assert config.brokers == "broker1:9092,broker2:9092"
    assert "brokers=broker1:9092,broker2:9092" in repr(config)
    assert "group_id=my-service" in repr(config)


def test_local() -> None:
    config = KafkaConfig.local()
    assert config.brokers == "localhost:9092"


def test_brokers_as_list() -> None:
    config = KafkaConfig(brokers=["a:9092", "b:9093"])
    assert "brokers=a:9092,b:9093" in repr(config)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"brokers": ""}, "KafkaConfig.brokers"),
        ({"brokers": "localhost"}, 'brokers entry "localhost" must be host:port'),
        ({"brokers": "a:0"}, "expected 1 to 65535"),
        ({"brokers": "a:9092,,b:9092"}, "no empty item"),
        ({"brokers": 9092}, "KafkaConfig.brokers must be a comma-separated string"),
        ({"group_id": ""}, "KafkaConfig.group_id must be a non-empty string"),
        ({"group_id": 5}, "KafkaConfig.group_id must be a string, got 5"),
        ({"client_id": "  "}, "KafkaConfig.client_id must be a non-empty string"),
        ({"auto_commit": "yes"}, 'KafkaConfig.auto_commit must be true or false, got "yes"'),
        ({"session_timeout_ms": 10}, "session_timeout_ms must be an integer from 1000 to 3600000, got 10"),
        ({"session_timeout_ms": True}, "session_timeout_ms must be an integer"),
        ({"session_timeout_ms": 1.5}, "session_timeout_ms must be an integer"),
        ({"session_timeout_ms": "30000"}, 'session_timeout_ms must be an integer from 1000 to 3600000, got "30000"'),
        ({"max_poll_records": 0}, "max_poll_records must be an integer from 1 to 100000, got 0"),
        ({"security_protocol": "TLS"}, 'security_protocol must be one of "PLAINTEXT", "SSL"'),
        ({"acks": "2"}, 'acks must be one of "all", "0", "1", got "2"'),
        ({"compression": "brotli"}, 'compression must be one of "none", "gzip"'),
        ({"auto_offset_reset": "newest"}, 'auto_offset_reset must be one of "earliest", "latest"'),
        ({"security_protocol": "SASL_SSL"}, "sasl_mechanism is required when security_protocol is SASL_SSL"),
        ({"sasl_mechanism": "PLAIN"}, "sasl_mechanism needs security_protocol SASL_PLAINTEXT or SASL_SSL"),
        ({"extra": {"linger.ms": [1]}}, 'extra["linger.ms"] must be a string, number or boolean'),
        ({"ssl_certificate_location": "/c.pem"}, "must be given together"),
    ],
)
def test_invalid_field(fields: dict, expected: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        KafkaConfig(**fields)
    assert expected in str(info.value)
    assert isinstance(info.value, ValueError)
    assert info.value.broker == "kafka"


def test_unserialisable_value_names_field() -> None:
    with pytest.raises(ConfigurationError, match=r"KafkaConfig.group_id has a value of type object"):
        KafkaConfig(group_id=object())


def test_password_hidden() -> None:
    config = KafkaConfig(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="s3cret-pw",
        extra={"ssl.key.password": "other-s3cret"},
    )
    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config)
    assert "sasl_password=***" in repr(config)
    with pytest.raises(ConfigurationError) as info:
        KafkaConfig(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_password=5)
    assert "5" not in str(info.value).replace("KafkaConfig", "")


def test_config_is_immutable() -> None:
    config = KafkaConfig.local()
    with pytest.raises(AttributeError, match="immutable"):
        config.group_id = "x"  # type: ignore[misc]
    changed = config.replace(group_id="other")
    assert changed.group_id == "other"
    assert config.group_id == "default"


def test_secret_in_extra_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as info:
        KafkaConfig(extra={"sasl.password": ["pw-in-a-list"]})
    assert "pw-in-a-list" not in str(info.value)
    config = KafkaConfig(extra={"sasl.password": "pw-2", "linger.ms": 5})
    assert config.extra == {"sasl.password": "***", "linger.ms": 5}
    with pytest.raises(AttributeError, match="secret"):
        _ = config.sasl_password


def test_extra_entry_of_wrong_type_named() -> None:
    with pytest.raises(ConfigurationError, match=r"KafkaConfig\.extra\['linger\.ms'\] has a value of type object"):
        KafkaConfig(extra={"linger.ms": object()})


def test_copy_and_pickle_get_own_handle() -> None:
    import copy
    import pickle

    config = KafkaConfig(brokers="127.0.0.1:9092", group_id="pickled")
    assert copy.copy(config) is config
    assert copy.deepcopy(config) is config
    restored = pickle.loads(pickle.dumps(config))
    assert restored == config
    assert restored.handle != config.handle
    assert repr(restored) == repr(config)
    del config
    assert "group_id=pickled" in repr(restored)
