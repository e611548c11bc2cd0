"""`lab-env setup`: install every piece of the native stack, idempotently.

Each installer checks what is already there (and at which version) before
doing anything, so a second run takes seconds.
"""

from __future__ import annotations

from lab_env.stack.provision.dapr import install_dapr
from lab_env.stack.provision.dapr_cli import install_dapr_cli
from lab_env.stack.provision.kafka import install_kafka
from lab_env.stack.provision.kcat import install_kcat
from lab_env.stack.provision.kube import install_kube
from lab_env.stack.provision.prereqs import require_tools
from lab_env.stack.provision.redis import install_redis

__all__ = [
    "install_dapr",
    "install_dapr_cli",
    "install_kafka",
    "install_kcat",
    "install_kube",
    "install_redis",
    "require_tools",
    "setup",
]


def setup(force: bool = False, cli: bool = False, cluster: bool = False) -> dict[str, float]:
    """Install what the labs need; returns seconds per step.

    The Dapr runtime's Go build (CPU) and Kafka's Maven fetch (network) run
    at once. The Dapr CLI is not needed before lab 05: it is built on first
    use (install_dapr_cli, `lab-env env`), or here with ``cli``; so is lab
    05's Kubernetes control plane (install_kube, `lab-env cluster up`), or
    here with ``cluster``.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    from lab_env.core.profile import current

    seconds: dict[str, float] = {}

    def timed(name: str, step) -> None:
        started = time.perf_counter()
        step()
        seconds[name] = time.perf_counter() - started

    native = current().name == "native"
    if native:
        require_tools()
        timed("redis", install_redis)
    # In the container profile Redis and the broker are compose services; the
    # sidecars (daprd) and Kafka's tools (the same jars) still run in the workspace.
    steps = {"dapr runtime": lambda: install_dapr(force=force), "kafka": lambda: install_kafka(force=force)}
    with ThreadPoolExecutor(max_workers=len(steps)) as pool:
        futures = [pool.submit(timed, name, step) for name, step in steps.items()]
    for future in futures:
        future.result()  # the first failure, after every step has finished or failed
    if cli:
        timed("dapr cli", lambda: install_dapr_cli(force=force))
    if cluster:
        timed("kubernetes", lambda: install_kube(force=force))
    timed("kcat", install_kcat)  # optional: a note, never a failure, when it cannot be installed
    return seconds
