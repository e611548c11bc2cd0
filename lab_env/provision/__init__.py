"""`lab-env setup`: install every piece of the native stack, idempotently.

Each installer checks what is already there (and at which version) before
doing anything, so a second run takes seconds.
"""

from __future__ import annotations

from .dapr import install_dapr
from .dapr_cli import install_dapr_cli
from .kafka import install_kafka
from .kcat import install_kcat
from .prereqs import require_tools
from .redis import install_redis

__all__ = ["install_dapr", "install_dapr_cli", "install_kafka", "install_kcat", "install_redis", "require_tools", "setup"]


def setup(force: bool = False) -> None:
    from ..profile import current

    if current().name == "native":
        require_tools()
        install_redis()
        install_kafka(force=force)
    # In the container profile Redis and Kafka are compose services; the
    # sidecars (daprd) and the CLI still run in the workspace.
    install_dapr(force=force)
    install_dapr_cli(force=force)
    install_kcat()  # optional: a note, never a failure, when it cannot be installed
