"""Call many actors fast through their sidecars' actor HTTP API.

    samples = activate([host], actor_type_in(host, "ProductActor"), 100_000, "Stock")

The load comes from a small HTTP/1.1 client on raw asyncio streams:
keep-alive connections spread over the hosts' sidecars, a fixed number of
calls in flight, one latency per call. It spends a few tens of microseconds
of CPU per call, where httpx spends about a millisecond, so on a 2-core
machine the client is not what limits the actors (bench/actors_bench.py
checks it against wrk). Used by that bench, lab 01's "go big" cell and
``lab-env scale``.
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import psutil

from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar
from lab_env.runtime.apps import DaprApp


@dataclass
class Sample:
    """One slice of a run: ``calls`` calls ending with ``actors`` actors touched."""

    actors: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    rss_mb: dict[str, float] = field(default_factory=dict)  # per process: app / sidecar of each host
    cpu_s: dict[str, float] = field(default_factory=dict)  # CPU seconds per process since the run began
    errors: list[str] = field(default_factory=list)  # failed calls, when the run counts them
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # every call's, in order of completion

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        """Everything but the latencies themselves (JSON for a results file)."""
        data = asdict(self)
        del data["latencies_ms"]
        return {**data, "rate": self.rate}


class _Connection:
    def __init__(self, host: str, port: int, token: str | None = None) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        # The headers every call repeats, formatted once; the sidecar's API token when it requires one.
        auth = f"{sidecar.TOKEN_HEADER}: {token}\r\n" if token else ""
        self._fixed = f"Host: {host}:{port}\r\n{auth}Content-Type: application/json\r\n"

    async def call(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\n{self._fixed}Content-Length: {len(body)}\r\n\r\n".encode()
        self.writer.write(head + body)
        assert self.reader is not None
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the sidecar closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            data = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                data += chunk[:-2]
        else:
            data = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def drive(
    targets: Sequence[tuple[str, int, str | None]],
    calls: Iterator[tuple[str, str, bytes]],
    in_flight: int,
    latencies: list[float],
    errors: list[str] | None = None,
) -> int:
    """Make every call of ``calls`` (method, path, body) with ``in_flight``
    keep-alive connections spread over ``targets`` (host, port, API token or
    None); append each latency (ms).
    Returns the number of calls made. A failed call (status >= 400) raises,
    or, when ``errors`` is a list, is appended to it and the run goes on."""
    count = 0

    async def worker(index: int) -> None:
        nonlocal count
        conn = _Connection(*targets[index % len(targets)])
        try:
            while True:
                nxt = next(calls, None)  # workers share one loop: no lock needed
                if nxt is None:
                    return
                started = time.perf_counter()
                status, data = await conn.call(*nxt)
                latencies.append((time.perf_counter() - started) * 1000)
                if status >= 400 and errors is not None:
                    errors.append(f"{status} {data[:300].decode(errors='replace')}")
                elif status >= 400:
                    raise LabEnvError(
                        f"{nxt[0]} {nxt[1]} answered {status}: {data[:200].decode(errors='replace')}",
                        "is the actor type registered by the app? see the app's log",
                    )
                count += 1
        finally:
            conn.close()

    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    return count


ASYNCIO = ["--loop", "asyncio", "--http", "h11"]
UVLOOP = ["--loop", "uvloop", "--http", "httptools"]  # uvicorn[standard]: the default of lab_env's apps


def start_hosts(
    count: int, *, name: str = "products", server: Sequence[str] = UVLOOP, env: dict[str, str] | None = None
) -> list[DaprApp]:
    """Start ``count`` apps hosting the reference ProductActor, each with its
    sidecar; their actor type is ``actor_type_in(hosts[0], "ProductActor")``.
    If one fails to start, the ones already started are stopped."""
    from lab_env.runtime.apps import start_app, stop_app, unique_name, uvicorn_command

    command = [*uvicorn_command("lab_env.marketplace.agents.product_host:app"), *server]
    hosts: list[DaprApp] = []
    try:
        for n in range(count):
            # Replicas of the first host: Dapr keys actor state by app id, so an actor that placement
            # moves to another host finds its state only if that host has the same app id.
            replica_of = hosts[0].app_id if hosts else None
            hosts.append(
                start_app(
                    unique_name(f"{name}-{n}"),
                    command,
                    components=["statestore"],
                    log_level="warn",
                    env=env,
                    replica_of=replica_of,
                )  # fmt: skip
            )
    except BaseException:
        for host in hosts:
            stop_app(host)
        raise
    return hosts


def _targets(hosts: Sequence[DaprApp]) -> list[tuple[str, int, str | None]]:
    return [("127.0.0.1", host.http_port, host.api_token) for host in hosts]


def _processes(hosts: Sequence[DaprApp]) -> dict[str, psutil.Process]:
    found = {}
    for host in hosts:
        host._sync()  # another process (a grader's check) may have restarted it since
        for role, pid in (("app", host.app_pid), ("sidecar", host.sidecar_pid)):
            if pid:
                found[f"{host.app_id} {role}"] = psutil.Process(pid)
    return found


def _cpu(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        times = proc.cpu_times()
        out[name] = times.user + times.system
    return out


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(
    hosts: Sequence[DaprApp],
    calls: list[tuple[str, str, bytes]],
    *,
    in_flight: int = 64,
    slices: Sequence[int] = (),
    on_slice: Callable[[Sample], None] | None = None,
    progress: str | None = None,
    count_errors: bool = False,
) -> list[Sample]:
    """Make ``calls`` against the hosts' sidecars; one Sample per slice.

    ``slices`` are cumulative call counts that end a slice (memory and CPU
    are sampled there); the last slice always ends at len(calls). With
    ``progress`` (a label), a progress bar shows calls done, rate and p99.
    The first failed call raises, unless ``count_errors`` (a bench): then
    each Sample lists its failures.
    Runs its own event loop, so it works the same from a script and from a
    notebook cell (in a thread there)."""
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(calls), desc=progress, unit="call")

        def tick(sample: Sample) -> None:
            bar.update(sample.calls)
            bar.set_postfix_str(f"{sample.rate:,.0f}/s, p99 {sample.p99_ms:.0f} ms")
            if on_slice:
                on_slice(sample)

        try:
            return run(hosts, calls, in_flight=in_flight, slices=slices, on_slice=tick, count_errors=count_errors)
        finally:
            bar.close()
    ends = sorted({*(s for s in slices if 0 < s < len(calls)), len(calls)})
    procs = _processes(hosts)
    cpu_start = _cpu(procs)
    samples: list[Sample] = []

    async def main() -> None:
        begin = 0
        for end in ends:
            latencies: list[float] = []
            errors: list[str] | None = [] if count_errors else None
            started = time.perf_counter()
            await drive(_targets(hosts), iter(calls[begin:end]), in_flight, latencies, errors)
            seconds = time.perf_counter() - started
            cpu_now = _cpu(procs)
            sample = Sample(
                actors=end,
                calls=end - begin,
                seconds=seconds,
                p50_ms=statistics.median(latencies),
                p99_ms=percentile(latencies, 0.99),
                rss_mb={n: p.memory_info().rss / 2**20 for n, p in procs.items()},
                cpu_s={n: cpu_now[n] - cpu_start[n] for n in procs},
                errors=errors or [],
                latencies_ms=latencies,
            )
            samples.append(sample)
            if on_slice:
                on_slice(sample)
            begin = end

    _run_loop(main())
    return samples


def _run_loop(coro) -> None:
    """asyncio.run, also from inside a running loop (a notebook cell): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as err:  # re-raised in the caller's thread
            box["error"] = err

    thread = threading.Thread(target=target, name="scale-load", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]


def actor_calls(
    actor_type: str, ids: Sequence[str] | range, method: str, body: bytes = b"", prefix: str = "agent-"
) -> list[tuple[str, str, bytes]]:
    return [("PUT", sidecar.actor_method_path(actor_type, f"{prefix}{i}", method), body) for i in ids]


def activate(
    hosts: Sequence[DaprApp],
    actor_type: str,
    total: int,
    method: str,
    *,
    in_flight: int = 64,
    slices: Sequence[int] = (),
    progress: bool = True,
    prefix: str = "agent-",
    count_errors: bool = False,
) -> list[Sample]:
    """Call ``method`` once on ``total`` fresh actors ``<prefix>0`` ... spread
    over the hosts' sidecars (placement decides which host runs each)."""
    return run(
        hosts,
        actor_calls(actor_type, range(total), method, prefix=prefix),
        in_flight=in_flight,
        slices=slices or range(max(1, total // 20), total, max(1, total // 20)),
        progress=f"activating {total:,} actors" if progress else None,
        count_errors=count_errors,
    )


def placement_spread(hosts: Sequence[DaprApp], actor_type: str) -> dict[str, int]:
    """How many active actors of ``actor_type`` each host runs, from each
    sidecar's metadata API (placement decided it)."""
    spread = {}
    for host in hosts:
        meta = sidecar.get(host, sidecar.METADATA, timeout=30).json()
        counts = {
            a.get("type"): a.get("count", 0)
            for a in meta.get("actors", meta.get("actorRuntime", {}).get("activeActors", []))
        }
        spread[host.app_id] = int(counts.get(actor_type, 0))
    return spread


# wrk (C, one thread) calling random already-active actors: a load generator
# that is certainly not the bottleneck, to check the Python client against.
# Lua builds each path itself, as sidecar.actor_method_path does (for plain ids).
_WRK_SCRIPT = """
local n, kind = tonumber(os.getenv("ACTORS")), os.getenv("ACTOR_TYPE")
local method, prefix = os.getenv("METHOD"), os.getenv("PREFIX")
request = function()
  return wrk.format("PUT", "/v1.0/actors/" .. kind .. "/" .. prefix .. math.random(0, n - 1) .. "/method/" .. method)
end
"""


def wrk_calls(
    host: DaprApp,
    actor_type: str,
    actors: int,
    method: str,
    *,
    in_flight: int = 64,
    seconds: int = 10,
    prefix: str = "agent-",
) -> dict[str, float]:
    """calls/s, p50 and p99 (ms) and non-2xx count of wrk calling random
    actors ``<prefix>0 .. <prefix>{actors-1}`` through ``host``'s sidecar."""
    import os
    import re
    import shutil
    import subprocess
    import tempfile

    if not shutil.which("wrk"):
        raise LabEnvError("wrk is not installed", "apt-get install wrk (lab-env setup does it as root)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_SCRIPT)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{in_flight}", f"-d{seconds}s", "--latency", "-s", script.name, host.sidecar_url],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
            env={**os.environ, "ACTORS": str(actors), "ACTOR_TYPE": actor_type, "METHOD": method, "PREFIX": prefix},
        ).stdout
    finally:
        os.unlink(script.name)

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "calls_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "errors": int(errors[1]) if errors else 0,
    }


def _short(names) -> dict[str, str]:
    """'products-0-ab12cd app' -> 'host 1 app': app ids in order of appearance."""
    hosts: dict[str, str] = {}
    out = {}
    for name in names:
        app_id, _, role = name.partition(" ")
        hosts.setdefault(app_id, f"host {len(hosts) + 1}")
        out[name] = f"{hosts[app_id]} {role}".strip()
    return out


def plot(samples: Sequence[Sample], spread: dict[str, int] | None = None, save: str | None = None):
    """Activation rate and p99 per slice, memory per process, and (with
    ``spread``) how many actors placement gave each host. Returns the figure."""
    import matplotlib.pyplot as plt

    panels = 3 if spread else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels, 3.4))
    xs = [s.actors for s in samples]
    axes[0].plot(xs, [s.rate for s in samples], marker=".", label="activations/s")
    axes[0].set(xlabel="actors activated", ylabel="activations/s", title="Rate (line) and p99 (dashed)")
    twin = axes[0].twinx()
    twin.plot(xs, [s.p99_ms for s in samples], color="tab:red", linestyle="--")
    twin.set_ylabel("p99 ms", color="tab:red")
    labels = _short(samples[0].rss_mb)
    for name, label in labels.items():
        axes[1].plot(xs, [s.rss_mb[name] for s in samples], label=label)
    axes[1].set(xlabel="actors activated", ylabel="RSS MB", title="Memory per process")
    axes[1].legend(fontsize=7)
    if spread:
        names = _short(spread)
        axes[2].bar([names[h] for h in spread], list(spread.values()))
        axes[2].set(ylabel="active actors", title="Placement's spread over hosts")
    fig.tight_layout()
    if save:
        fig.savefig(save, dpi=90)
    return fig
