"""Cello: an application framework whose messaging runs in a Go core."""

from .app import App, Request, Response
from .messaging.config import KafkaConfig, RabbitMQConfig, SqsConfig

__all__ = ["App", "Request", "Response", "KafkaConfig", "RabbitMQConfig", "SqsConfig"]
__version__ = "0.1.0"
