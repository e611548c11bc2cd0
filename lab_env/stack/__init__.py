"""The shared services (Redis, Kafka, Dapr placement and scheduler): provisioning, lifecycle, components, doctor."""

from lab_env.stack.lifecycle import down, is_up, status, up
from lab_env.stack.services import Service, services

__all__ = ["Service", "down", "is_up", "services", "status", "up"]
