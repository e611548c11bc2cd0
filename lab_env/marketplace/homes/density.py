"""How many agents fit on this machine: as actors inside one host, or each
as its own app and sidecar (what a container per agent costs at least).

Both numbers are measured on one real actor host (an app and its daprd):
its resident memory (RSS) idle, and what activating actors adds to it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil

from lab_env.runtime.sidecar import actor_method_path, put


def rss(pids: list[int]) -> int:
    """Resident bytes of these processes and their children."""
    total = 0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in (proc, *proc.children(recursive=True)))
        except psutil.NoSuchProcess:
            continue
    return total


@dataclass(frozen=True)
class Density:
    per_actor: float  # bytes each active actor adds to its host and sidecar
    per_process: float  # bytes of one idle agent as its own app plus sidecar
    available: int  # bytes this machine has free now

    @property
    def actors_fit(self) -> int:
        return int(self.available / self.per_actor)

    @property
    def processes_fit(self) -> int:
        return int(self.available / self.per_process)


def _activate(pool: ThreadPoolExecutor, sidecar: str, actor_type: str, ids: list[str], method: str) -> None:
    # Threads, not asyncio: a notebook's kernel already runs an event loop.
    def one(actor_id: str) -> None:
        reply = put(sidecar, actor_method_path(actor_type, actor_id, method), timeout=60)
        if reply.status_code != 200:
            raise RuntimeError(f"actor {actor_id}: HTTP {reply.status_code} {reply.text[:200]}")

    list(pool.map(one, ids))


def measure(
    host_pids: list[int],
    sidecar: str,
    actor_type: str,
    count: int = 2000,
    method: str = "Stock",
    concurrency: int = 32,
    progress=None,
) -> Density:
    """One agent as its own process pair costs what the idle host (app and
    sidecar, ``host_pids``) takes; one agent as an actor costs what each of
    ``count`` actors activated in it adds (in steps, for ``progress``, a tqdm bar)."""
    from lab_env.core.probes import wait_until

    # Readiness: the actor type reaches placement's table a moment after the
    # app starts. A fresh actor per try: one whose activation failed stays broken while active.
    tries = iter(range(10**6))
    wait_until(
        lambda: (
            put(sidecar, actor_method_path(actor_type, f"warmup-{next(tries)}", method), timeout=10).status_code == 200
        ),
        60,
        "the actor host",
    )
    idle = before = rss(host_pids)
    step = max(1, count // 10)
    # The process's keep-alive client (lab_env.runtime.sidecar), shared by the pool's threads.
    with ThreadPoolExecutor(concurrency) as pool:
        for start in range(0, count, step):
            ids = [f"density-{n}" for n in range(start, min(count, start + step))]
            _activate(pool, sidecar, actor_type, ids, method)
            if progress is not None:
                progress.update(len(ids))
    added = rss(host_pids) - before
    return Density(per_actor=max(added, 1) / count, per_process=idle, available=psutil.virtual_memory().available)
