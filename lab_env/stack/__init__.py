"""The lab stack: Redis, Kafka, Dapr placement and scheduler."""

from .lifecycle import down, is_up, status, up
from .services import Service, services

__all__ = ["Service", "down", "is_up", "services", "status", "up"]
