"""lab_env: the shared helpers of the Dapr + Kafka agent labs.

Notebooks and tests import from here: start apps with sidecars, check the
stack, and (in lab_env.checks) grade exercises.
"""

from .apps import DaprApp, dapr_app, start_app, stop_app, unique_name, uvicorn_command
from .errors import LabEnvError

__all__ = ["DaprApp", "LabEnvError", "dapr_app", "start_app", "stop_app", "unique_name", "uvicorn_command"]
