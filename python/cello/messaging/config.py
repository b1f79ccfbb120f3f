"""Broker configurations, validated by the Go core when constructed.

Each config sends its fields to Go as JSON; Go checks them (one set of rules
for every caller) and keeps the parsed config behind an integer handle from
which producers and consumers are opened. Configs are immutable: use
``replace(**changes)`` for a changed copy.
"""

from __future__ import annotations

import json
import weakref
from typing import Any, ClassVar, Mapping, Sequence

from .. import _native
from .errors import ConfigurationError

__all__ = ["KafkaConfig", "RabbitMQConfig", "SqsConfig", "BrokerConfig"]


class BrokerConfig:
    """Base class of the broker configs."""

    broker: ClassVar[str]
    _name: ClassVar[str]
    _secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **fields: Any) -> None:
        payload = {}
        for name, value in fields.items():
            shown = "hidden" if name in self._secret_fields else repr(value)[:80]
            try:
                # allow_nan=False: NaN and infinity are not JSON, and the Go
                # core would reject the whole payload without naming the field.
                json.dumps(value, allow_nan=False)
            except TypeError:
                where, bad = _unserialisable_part(name, value)
                shown = "hidden" if name in self._secret_fields else repr(bad)[:80]
                raise ConfigurationError(
                    f"{self._name}.{where} has a value of type {type(bad).__name__} ({shown}), "
                    "expected a str, int, bool, list or dict",
                    broker=self.broker,
                ) from None
            except ValueError:
                raise ConfigurationError(
                    f"{self._name}.{name} contains NaN, infinity or a circular reference ({shown}), "
                    "expected a finite number, str, bool, list or dict",
                    broker=self.broker,
                ) from None
            if isinstance(value, tuple):
                value = list(value)
            payload[name] = value
        lib = _native.library()
        data = json.dumps(payload, allow_nan=False).encode("utf-8")
        handle, description = lib.call(
            "cello_config_new", self.broker.encode(), data, len(data), broker=self.broker
        )
        object.__setattr__(self, "_fields", dict(fields))
        object.__setattr__(self, "_handle", handle)
        object.__setattr__(self, "_description", description.decode("utf-8"))
        object.__setattr__(self, "_finalizer", weakref.finalize(self, _close_handle, lib, handle))

    @property
    def handle(self) -> int:
        """The Go core's handle of this config."""
        return self._handle  # type: ignore[attr-defined,no-any-return]

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        raise AttributeError(f"{type(self).__name__} has no field {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable; use replace({name}=...) for a changed copy")

    def replace(self, **changes: Any) -> Any:
        """Return a copy with some fields changed, validated again."""
        fields = dict(self._fields)  # type: ignore[attr-defined]
        fields.update(changes)
        return type(self)(**fields)

    def __copy__(self) -> BrokerConfig:
        return self  # immutable, so a copy may share the handle

    def __deepcopy__(self, memo: dict[int, Any]) -> BrokerConfig:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuild from the fields, so an unpickled config gets a handle of
        # its own process instead of a number that means nothing there.
        return (_rebuild, (type(self), dict(self._fields)))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._description})"  # type: ignore[attr-defined]

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._fields == self._fields  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._description))  # type: ignore[attr-defined]


def _rebuild(cls: type[BrokerConfig], fields: dict[str, Any]) -> BrokerConfig:
    return cls(**fields)


def _close_handle(lib: Any, handle: int) -> None:
    try:
        lib.call("cello_config_close", handle)
    except Exception:  # noqa: BLE001 - finalizers must not raise; the process may be ending
        pass


def _unserialisable_part(name: str, value: Any) -> tuple[str, Any]:
    """Find the part of a field's value that JSON cannot encode: its place, as "field[key]", and the value."""
    if isinstance(value, dict):
        for key, item in value.items():
            try:
                json.dumps(item)
            except TypeError:
                return f"{name}[{key!r}]", item
    return name, value


def _is_secret_property(name: str) -> bool:
    """Return whether a librdkafka property contains a secret, by the Go core's rule."""
    return any(word in name for word in ("password", "secret", "token", "key.pem", "jaas"))


def _property_dict(extra: Any) -> dict[str, Any] | None:
    """Return KafkaConfig.extra as a dict; the value is not shown, since it may hold passwords."""
    if extra is None:
        return None
    try:
        return dict(extra)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"KafkaConfig.extra must be a dict of librdkafka property names to str, int or bool values, "
            f"got {type(extra).__name__} (value hidden)",
            broker="kafka",
        ) from None


class KafkaConfig(BrokerConfig):
    """Kafka settings shared by producers and consumers.

    ``brokers`` is "host:port,host:port" or a list. ``extra`` passes
    librdkafka properties through unchanged and wins over the other fields.
    """

    broker = "kafka"
    _name = "KafkaConfig"
    _secret_fields = frozenset({"sasl_password", "extra"})

    def __init__(
        self,
        brokers: str | Sequence[str] = "localhost:9092",
        group_id: str = "default",
        client_id: str = "cello",
        auto_commit: bool = True,
        session_timeout_ms: int = 30000,
        max_poll_records: int = 500,
        *,
        security_protocol: str = "PLAINTEXT",
        sasl_mechanism: str | None = None,
        sasl_username: str | None = None,
        sasl_password: str | None = None,
        ssl_ca_location: str | None = None,
        ssl_certificate_location: str | None = None,
        ssl_key_location: str | None = None,
        acks: str | int = "all",
        compression: str = "none",
        auto_offset_reset: str = "earliest",
        connect_timeout_ms: int = 10000,
        send_timeout_ms: int = 30000,
        extra: Mapping[str, str | int | bool] | None = None,
    ) -> None:
        if isinstance(acks, int) and not isinstance(acks, bool):
            acks = "all" if acks == -1 else str(acks)
        super().__init__(
            brokers=brokers,
            group_id=group_id,
            client_id=client_id,
            auto_commit=auto_commit,
            session_timeout_ms=session_timeout_ms,
            max_poll_records=max_poll_records,
            security_protocol=security_protocol,
            sasl_mechanism=sasl_mechanism,
            sasl_username=sasl_username,
            sasl_password=sasl_password,
            ssl_ca_location=ssl_ca_location,
            ssl_certificate_location=ssl_certificate_location,
            ssl_key_location=ssl_key_location,
            acks=acks,
            compression=compression,
            auto_offset_reset=auto_offset_reset,
            connect_timeout_ms=connect_timeout_ms,
            send_timeout_ms=send_timeout_ms,
            extra=_property_dict(extra),
        )

    def __getattr__(self, name: str) -> Any:
        if name == "sasl_password":
            raise AttributeError("KafkaConfig.sasl_password is not readable because it is a secret")
        value = super().__getattr__(name)
        if name == "extra" and value:
            return {k: ("***" if _is_secret_property(k) else v) for k, v in value.items()}
        return value

    @classmethod
    def local(cls, **overrides: Any) -> KafkaConfig:
        """Return a config for a broker on localhost:9092."""
        overrides.setdefault("brokers", "localhost:9092")
        return cls(**overrides)


class RabbitMQConfig(BrokerConfig):
    """RabbitMQ connection settings. The password in ``url`` is never shown.

    ``vhost`` defaults to the url's path, and to "/" when the url has none;
    given explicitly, it wins over the url's path. ``max_message_bytes``
    (default 128 MiB, RabbitMQ's default max_message_size) is the largest
    body a producer sends; a larger one raises MessageTooLargeError.
    """

    broker = "rabbitmq"
    _name = "RabbitMQConfig"

    def __init__(
        self,
        url: str = "amqp://localhost",
        vhost: str | None = None,
        prefetch_count: int = 10,
        heartbeat: int = 60,
        *,
        exchange: str = "",
        connection_timeout_ms: int = 10000,
        send_timeout_ms: int = 30000,
        tls_ca_file: str | None = None,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        tls_insecure_skip_verify: bool = False,
        max_message_bytes: int | None = None,
    ) -> None:
        super().__init__(
            url=url,
            vhost=vhost,
            prefetch_count=prefetch_count,
            heartbeat=heartbeat,
            exchange=exchange,
            connection_timeout_ms=connection_timeout_ms,
            send_timeout_ms=send_timeout_ms,
            tls_ca_file=tls_ca_file,
            tls_cert_file=tls_cert_file,
            tls_key_file=tls_key_file,
            tls_insecure_skip_verify=tls_insecure_skip_verify,
            max_message_bytes=max_message_bytes,
        )

    @classmethod
    def local(cls, **overrides: Any) -> RabbitMQConfig:
        """Return a config for a broker on localhost:5672 as guest."""
        overrides.setdefault("url", "amqp://guest:guest@localhost:5672")
        return cls(**overrides)

    def __getattr__(self, name: str) -> Any:
        if name == "url":
            raise AttributeError("RabbitMQConfig.url is not readable because it may contain a password")
        return super().__getattr__(name)


class SqsConfig(BrokerConfig):
    """AWS SQS settings, validated by the Go core.

    ``max_messages`` (1 to 10) caps the messages of one ReceiveMessage call
    and ``wait_time_secs`` (0 to 20) its long-poll wait. Credentials are the
    access keys given here, else ``profile`` or the standard AWS chain
    (environment, shared files, container and instance roles), else, with
    ``use_dummy_credentials`` (set by ``local()``), the pair test/test. None
    of them appears in ``repr``, logs or error messages.

    NOTE: the Go core copies the process environment once, when cello's
    library loads, so AWS_* variables set in os.environ after the first
    config was made are not seen.
    """

    broker = "sqs"
    _name = "SqsConfig"
    _secret_fields = frozenset({"access_key_id", "secret_access_key", "session_token"})

    def __init__(
        self,
        region: str = "us-east-1",
        queue_url: str | None = None,
        endpoint_url: str | None = None,
        max_messages: int = 10,
        wait_time_secs: int = 20,
        *,
        dead_letter_queue_url: str | None = None,
        visibility_timeout_secs: int = 30,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        use_dummy_credentials: bool = False,
        request_timeout_ms: int = 30000,
    ) -> None:
        super().__init__(
            region=region,
            queue_url=queue_url,
            endpoint_url=endpoint_url,
            max_messages=max_messages,
            wait_time_secs=wait_time_secs,
            dead_letter_queue_url=dead_letter_queue_url,
            visibility_timeout_secs=visibility_timeout_secs,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            session_token=session_token,
            profile=profile,
            use_dummy_credentials=use_dummy_credentials,
            request_timeout_ms=request_timeout_ms,
        )

    @classmethod
    def local(cls, queue_url: str = "http://localhost:4566/000000000000/test-queue", **overrides: Any) -> SqsConfig:
        """Return a config for a local SQS-compatible server on localhost:4566.

        It uses the dummy credentials test/test when the AWS chain finds none.
        """
        overrides.setdefault("endpoint_url", "http://localhost:4566")
        overrides.setdefault("use_dummy_credentials", True)
        return cls(queue_url=queue_url, **overrides)

    def __getattr__(self, name: str) -> Any:
        if name in self._secret_fields:
            raise AttributeError(f"SqsConfig.{name} is not readable because it is a secret")
        return super().__getattr__(name)
