"""The lab stack: Redis, Kafka, Dapr placement and scheduler."""

from .lifecycle import down, status, up
from .services import Service, services

__all__ = ["Service", "down", "services", "status", "up"]
