"""The lab stack: Redis, Kafka, Dapr placement and scheduler."""

from lab_env.stack.lifecycle import down, is_up, status, up
from lab_env.stack.services import Service, services

__all__ = ["Service", "down", "is_up", "services", "status", "up"]
