"""Kafka, RabbitMQ and SQS messaging for cello, with broker I/O in a Go core."""

from .client import Consumer, Producer, SendResult
from .config import KafkaConfig, RabbitMQConfig, SqsConfig
from .decorators import (
    kafka_consumer,
    kafka_producer,
    rabbitmq_consumer,
    rabbitmq_producer,
    sqs_consumer,
    sqs_producer,
)
from .errors import (
    ClosedError,
    ConfigurationError,
    ConnectionError,
    DeliveryError,
    InternalError,
    MessageTooLargeError,
    MessagingError,
    NotFoundError,
    SerializationError,
    TimeoutError,
)
from .message import Message, MessageResult

__all__ = [
    "kafka_consumer",
    "kafka_producer",
    "rabbitmq_consumer",
    "rabbitmq_producer",
    "sqs_consumer",
    "sqs_producer",
    "KafkaConfig",
    "RabbitMQConfig",
    "SqsConfig",
    "Message",
    "MessageResult",
    "Producer",
    "Consumer",
    "SendResult",
    "MessagingError",
    "ConfigurationError",
    "ConnectionError",
    "TimeoutError",
    "ClosedError",
    "NotFoundError",
    "MessageTooLargeError",
    "DeliveryError",
    "SerializationError",
    "InternalError",
]
