"""Exceptions raised by ``cello.messaging``.

Every error the messaging layer raises derives from ``MessagingError``::

    MessagingError
    ├── ConfigurationError      a config field or call argument is invalid
    │   └── (also a ValueError)
    ├── ConnectionError         the broker cannot be reached or went away
    ├── TimeoutError            an operation did not finish in time
    ├── ClosedError             the client or handle was already closed
    ├── NotFoundError           unknown topic, queue or delivery
    ├── MessageTooLargeError    a message is over the broker's size limit
    ├── DeliveryError           the broker rejected a message
    ├── SerializationError      a value cannot be encoded or decoded
    │   └── (also a ValueError)
    └── InternalError           a bug in cello; please report it

Each carries ``broker`` (``"kafka"``, ``"rabbitmq"``, ``"sqs"`` or ``None``),
``code`` (the status code from the Go core) and ``retriable`` (whether
trying again later may succeed).
"""

from __future__ import annotations

__all__ = [
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


class MessagingError(Exception):
    """Base class of every error raised by ``cello.messaging``."""

    retriable = False

    def __init__(self, message: str, *, broker: str | None = None, code: int = 1) -> None:
        super().__init__(message)
        self.broker = broker
        self.code = code


class ConfigurationError(MessagingError, ValueError):
    """A config field or call argument is missing, mistyped or out of range."""


class ConnectionError(MessagingError):  # noqa: A001 - the tree's own name
    """The broker cannot be reached, or the connection was lost."""

    retriable = True


class TimeoutError(MessagingError):  # noqa: A001 - the tree's own name
    """An operation did not finish within its timeout."""

    retriable = True


class ClosedError(MessagingError):
    """The producer, consumer or config was used after ``close()``."""


class NotFoundError(MessagingError):
    """An unknown topic, queue or delivery."""


class MessageTooLargeError(MessagingError):
    """A message is larger than the broker accepts; nothing was sent."""


class DeliveryError(MessagingError):
    """The broker rejected a message."""

    retriable = True


class SerializationError(MessagingError, ValueError):
    """A value cannot be encoded for sending, or a payload cannot be decoded."""


class InternalError(MessagingError):
    """An unexpected failure inside cello; please report it with the message."""
