"""Lab 05's container home, run for real: the stack's services and the home on one Docker engine.

    home = start_or_explain(spec, folder, env)   # None, after one line saying why, where no engine can run it
    print(home.ps())                             # what `docker ps` shows of it
    home.call("products", path)                  # from inside the agent, to its sidecar
    home.crash("products")                       # SIGKILL from outside, as an OOM kill would
    home.wait_restarted("products", before)      # its restart policy brings it back
    home.stop()                                  # containers, networks and volumes gone

It runs its own copy of the devcontainer's services (redis, kafka, placement,
scheduler) under a project of its own, so it works on any engine: Codespaces'
docker-in-docker cannot see the devcontainer's services. On lab-env's own engine
(which cannot pull) it uses the bakery's stand-ins and builds what is missing.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from lab_env.core.probes import wait_until
from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import container
from lab_env.marketplace.homes.spec import HomeSpec
from lab_env.stack import engine as engines
from lab_env.stack.images import bakery
from lab_env.stack.images.catalog import IMAGE_SET_VAR

# The images the stack and a home need where nothing is pulled.
LOCAL_IMAGES = ["redis", "kafka", "dapr", "busybox", "agent-base"]
# Run by the agent's own Python: a call goes where the agent's calls go, its sidecar on loopback.
_CALL = """
import sys, urllib.request
body = sys.argv[2].encode() if len(sys.argv) > 2 else None
request = urllib.request.Request(sys.argv[1], data=body, headers={"Content-Type": "application/json"})
sys.stdout.write(urllib.request.urlopen(request, timeout=30).read().decode())
"""


@dataclass
class ContainerHome:
    engine: engines.Engine
    started_engine: bool
    stack: str
    project: str
    compose_file: Path
    env: dict[str, str] = field(repr=False)

    def container(self, service: str) -> str:
        return container.compose_container(self.engine, self.project, service)

    def ps(self) -> str:
        """`docker ps` of the home and its stack: name, image, status."""
        rows = []
        for project in (self.stack, self.project):
            rows += self.engine.check(
                "ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                "--format", "{{.Names}}\t{{.Image}}\t{{.Status}}",
            ).splitlines()  # fmt: skip
        width = max(len(row.split("\t")[0]) for row in rows)
        return "\n".join(
            f"{name:<{width}}  {rest.replace(chr(9), '  ')}" for name, rest in (r.split("\t", 1) for r in rows)
        )

    def try_call(self, agent: str, path: str, body: object | None = None) -> subprocess.CompletedProcess[str]:
        extra = [json.dumps(body)] if body is not None else []
        argv = ["exec", self.container(agent), "python", "-c", _CALL, f"http://127.0.0.1:3500{path}", *extra]
        return self.engine.docker(*argv, timeout=120)

    def call(self, agent: str, path: str, body: object | None = None) -> str:
        """A call from inside ``agent`` to its sidecar (127.0.0.1:3500); the answer's body."""
        done = self.try_call(agent, path, body)
        if done.returncode != 0:
            raise LabEnvError(f"{agent}'s call to {path} failed: {_last(done.stderr)}", "see `docker logs` of it")
        return done.stdout

    def inspect(self, agent: str) -> dict:
        return json.loads(self.engine.check("inspect", self.container(agent)))[0]

    def status(self, agent: str) -> str:
        """Running or exited, since when, and how often its restart policy restarted it."""
        found = self.inspect(agent)
        state = found["State"]
        return f"{agent}: {state['Status']} (started {state['StartedAt'][11:19]}, restarts {found['RestartCount']})"

    def kill(self, agent: str) -> None:
        """`docker kill`: the engine records a stop asked for, which `unless-stopped` respects."""
        self.engine.check("kill", self.container(agent))

    def crash(self, agent: str) -> None:
        """SIGKILL to the agent's process from outside its container, as the kernel's OOM killer
        sends it: the engine sees the process die on its own."""
        pid = int(self.inspect(agent)["State"]["Pid"])
        if pid <= 0:
            raise LabEnvError(f"{agent} is not running", f"start it: docker start {self.container(agent)}")
        try:
            os.kill(pid, 9)
        except PermissionError:  # its user is not ours (Codespaces: vscode may sudo)
            subprocess.run(["sudo", "-n", "kill", "-9", str(pid)], check=True, capture_output=True)
        except ProcessLookupError as err:
            raise LabEnvError(
                f"{agent}'s process (pid {pid}) is not visible here: the engine runs in another machine",
                "crash it from where the engine runs (Docker Desktop: its VM)",
            ) from err

    def wait_restarted(self, agent: str, before: str) -> None:
        """Until ``agent`` was started again after ``before`` (its StartedAt) and is healthy."""
        wait_until(
            lambda: self.inspect(agent)["State"]["StartedAt"] != before,
            container.HEALTHY_S,
            f"{agent} to be restarted by its restart policy",
        )
        container.wait_healthy(self.engine, self.container(agent), f"the restarted {agent} to be healthy")

    def stop(self) -> None:
        """The home and its stack removed; lab-env's engine stopped if this started it."""
        try:
            container.home_down(self.engine, self.compose_file, self.project, self.env)
        finally:
            try:
                container.stack_down(self.engine, self.stack)
            finally:
                if self.started_engine:
                    engines.stop()


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def why_not() -> str | None:
    """Why a container home cannot run here (one line, with what to do), or None when it can."""
    if os.environ.get("LAB_ENV_GRADING") == "1":
        return "the grader starts no containers (the checks grade the files); run the lab to watch it"
    if engines.find() is not None:
        return None
    if os.geteuid() == 0 and shutil.which("dockerd"):
        return None
    return "no Docker engine answers here: run `lab-env setup --containers` as root (or start Docker), then this cell"


def start(spec: HomeSpec, folder: Path, env: Mapping[str, str]) -> ContainerHome:
    """The stack's services and ``spec``'s home, each agent healthy. Nothing is left running if it fails."""
    found = engines.find()
    started = found is None
    running = found or engines.start()
    if running.managed:  # lab-env's own engine never pulls: the stand-ins, built if missing
        os.environ[IMAGE_SET_VAR] = "local"
        bakery.build(running, LOCAL_IMAGES)
    token = secrets.token_hex(3)
    home = ContainerHome(
        running, started, f"labstack{token}", f"labhome{token}", container.write(spec, folder), dict(env)
    )
    try:
        network = container.stack_up(running, home.stack)
        container.home_up(running, home.compose_file, home.project, network, home.env)
    except BaseException:
        home.stop()
        raise
    return home


def start_or_explain(spec: HomeSpec, folder: Path, env: Mapping[str, str]) -> ContainerHome | None:
    reason = why_not()
    if reason:
        print(f"container home not started: {reason}")
        return None
    return start(spec, folder, env)
