"""The devcontainer and `lab-env cluster`, checked statically.

Nothing here starts a container: the machines this runs on may have no
Docker engine. The files are checked by construction instead: they parse,
follow the spec, take every version from the pins, and call only commands
that exist. Fast, no network.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from lab_env.cli import cluster as cluster_cli
from lab_env.cli.main import build_parser
from lab_env.core.paths import REPO_ROOT
from lab_env.core.profile import CONTAINER, NATIVE
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.runtime.clusters import kind as cluster
from lab_env.stack import devcontainer
from lab_env.stack.services import _kafka_properties, services

DEVCONTAINER_JSON = REPO_ROOT / ".devcontainer" / "devcontainer.json"
DC_DIR = REPO_ROOT / "devcontainer"
COMPOSE = DC_DIR / "compose.yaml"
DOCKERFILE = DC_DIR / "Dockerfile"
ENV_FILE = DC_DIR / ".env"
KIND_CONFIG = DC_DIR / "kind-config.yaml"
MAKEFILE = REPO_ROOT / "Makefile"
SCRIPTS = sorted(DC_DIR.glob("*.sh"))
STACK = ("redis", "kafka", "placement", "scheduler")
HOOKS = ("onCreateCommand", "postStartCommand")


# --- helpers -----------------------------------------------------------------


def strip_jsonc(text: str) -> str:
    """JSON with comments (// and /* */) and trailing commas, as plain JSON.

    String literals are copied untouched, so a URL's "//" or a "/*" inside a
    string is not mistaken for a comment.
    """
    parts: list[tuple[bool, str]] = []  # (is a string literal, text)
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if j >= n:
                raise ValueError("unterminated string")
            parts.append((True, text[i : j + 1]))
            i = j + 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ValueError("unterminated /* comment")
            i = end + 2
        else:
            j = i
            while j < n and text[j] != '"' and not text.startswith(("//", "/*"), j):
                j += 1
            parts.append((False, text[i:j]))
            i = j
    # Merge neighbouring code parts (a comment split them), then drop commas
    # that only whitespace separates from a closing bracket.
    merged: list[tuple[bool, str]] = []
    for is_str, chunk in parts:
        if merged and not is_str and not merged[-1][0]:
            merged[-1] = (False, merged[-1][1] + chunk)
        else:
            merged.append((is_str, chunk))
    return "".join(chunk if is_str else re.sub(r",(\s*[}\]])", r"\1", chunk) for is_str, chunk in merged)


def load_devcontainer() -> dict[str, Any]:
    import json

    return json.loads(strip_jsonc(DEVCONTAINER_JSON.read_text()))


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def hook_script(command: str) -> Path:
    """The script a lifecycle command runs (a path relative to the workspace folder)."""
    words = shlex.split(command)
    script = words[1] if words[0] in ("bash", "sh") else words[0]
    return REPO_ROOT / script


def code_lines(script: Path) -> list[str]:
    """The script's lines that run something: no comments, no echo/printf."""
    lines = []
    for line in script.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "echo ", "printf ")):
            lines.append(stripped)
    return lines


def flag(args: list[str], name: str) -> str:
    """Value of ``--name value`` or ``--name=value`` in an argument list."""
    for i, arg in enumerate(args):
        if arg == name:
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} not in {args}")


def makefile_targets(text: str) -> set[str]:
    targets: set[str] = set()
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_./%-][A-Za-z0-9_./% -]*?)\s*::?(?!=)", line)
        if match and not line.startswith("\t"):
            targets.update(match[1].split())
    return targets


def docker_engine_answers() -> bool:
    docker = shutil.which("docker")
    if not docker:
        return False
    try:
        return subprocess.run([docker, "info"], capture_output=True, timeout=30, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


# --- devcontainer.json -------------------------------------------------------


def test_jsonc_stripping_keeps_strings_and_drops_comments():
    text = (
        '{\n  // line comment\n  "url": "https://example.org/a//b", /* block\n comment */\n'
        '  "glob": "/*x*/",\n  "list": [1, 2,],\n}\n'
    )
    import json

    assert json.loads(strip_jsonc(text)) == {"url": "https://example.org/a//b", "glob": "/*x*/", "list": [1, 2]}


def test_devcontainer_json_is_where_codespaces_reads_it_and_parses():
    assert DEVCONTAINER_JSON.is_file(), "Codespaces reads only .devcontainer/devcontainer.json"
    assert isinstance(load_devcontainer(), dict)


def test_devcontainer_json_runs_the_compose_stack():
    config = load_devcontainer()
    files = config["dockerComposeFile"]
    files = [files] if isinstance(files, str) else files
    resolved = [(DEVCONTAINER_JSON.parent / f).resolve() for f in files]
    assert resolved == [COMPOSE.resolve()]
    assert config["service"] == "workspace" and "workspace" in load_compose()["services"]
    assert config["workspaceFolder"] == "/workspaces/${localWorkspaceFolderBasename}"
    # kind needs a Docker engine inside the workspace.
    assert any("docker-in-docker" in feature for feature in config.get("features", {}))


def test_devcontainer_json_lifecycle_ports_and_host_requirements():
    config = load_devcontainer()
    assert hook_script(config["onCreateCommand"]) == DC_DIR / "on-create.sh"
    assert hook_script(config["postStartCommand"]) == DC_DIR / "post-start.sh"
    assert 8888 in config["forwardPorts"]
    req = config["hostRequirements"]
    assert int(req["cpus"]) >= 4
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(gb|tb)", str(req["memory"]).lower())
    assert match, req["memory"]
    assert float(match[1]) * (1024 if match[2] == "tb" else 1) >= 8


def test_remote_user_is_the_one_whose_home_holds_daprd():
    user = load_devcontainer()["remoteUser"]
    assert re.search(rf"^ARG USERNAME={user}$", DOCKERFILE.read_text(), re.MULTILINE)
    health = load_compose()["services"]["workspace"]["healthcheck"]["test"]
    assert health[1] == f"/home/{user}/.dapr/bin/daprd"


LOCAL_JSON = DC_DIR / "local" / "devcontainer.json"
LOCAL_COMPOSE = DC_DIR / "local" / "compose.local.yaml"


def test_local_devcontainer_differs_from_codespaces_only_where_a_registry_is_needed():
    import json

    from lab_env.stack.images import catalog

    main = load_devcontainer()
    local = json.loads(strip_jsonc(LOCAL_JSON.read_text()))
    dropped = {"features", "hostRequirements", "customizations", "portsAttributes"}
    changed = {"name", "dockerComposeFile"}
    assert {k: v for k, v in main.items() if k not in dropped | changed} == {
        k: v for k, v in local.items() if k not in changed
    }
    files = [(LOCAL_JSON.parent / f).resolve() for f in local["dockerComposeFile"]]
    assert files == [COMPOSE.resolve(), LOCAL_COMPOSE.resolve()]
    # Every service runs, so the bakery must stand in for every image compose names.
    services = load_compose()["services"]
    env = devcontainer.env_values()
    without = {
        name
        for name, svc in services.items()
        if "image" in svc and catalog.local_ref(devcontainer.interpolate(svc["image"], env)) is None
    }
    assert without == set()


def test_local_compose_mounts_the_engine_socket_and_keeps_caches_in_external_volumes():
    override = yaml.safe_load(LOCAL_COMPOSE.read_text())
    mounts = override["services"]["workspace"]["volumes"]
    assert any(m.endswith(":/var/run/docker.sock") and "LAB_ENV_DOCKER_SOCKET" in m for m in mounts)
    from lab_env.stack.devcontainer_run import CACHE_VOLUMES

    assert sorted(v["name"] for v in override["volumes"].values()) == sorted(CACHE_VOLUMES)
    assert all(v.get("external") for v in override["volumes"].values()), "compose down -v must keep them"


TOKEN_DISABLED = re.compile(
    r"""token\s*=\s*(''|"")|\.token\s*=\s*$|\.token=(\s|$)|password_required\s*=\s*False|disable_check_xsrf""",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    ("line", "disables"),
    [
        ("jupyter lab --ServerApp.token= --no-browser", True),
        ("c.ServerApp.token = ''", True),
        ('--IdentityProvider.token=""', True),
        ("c.ServerApp.token = os.environ['LAB_TOKEN']", False),
        ("JupyterLab keeps its token", False),
    ],
)
def test_token_check_recognises_a_disabled_token(line, disables):
    assert bool(TOKEN_DISABLED.search(line)) is disables


def test_jupyter_token_is_never_disabled():
    for path in [DEVCONTAINER_JSON, *sorted(p for p in DC_DIR.iterdir() if p.is_file())]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not TOKEN_DISABLED.search(line), (
                f"{path.name}:{number} looks like it disables Jupyter's token: {line}"
            )


# --- lifecycle scripts -------------------------------------------------------


@pytest.mark.parametrize("hook", HOOKS)
def test_lifecycle_hooks_are_executable_bash_scripts(hook):
    script = hook_script(load_devcontainer()[hook])
    assert script.is_file(), f"{hook} runs {script}, which does not exist"
    assert os.access(script, os.X_OK), f"{script} is not executable (chmod +x, and commit the mode)"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text


def test_on_create_installs_and_post_start_waits_then_runs_doctor():
    config = load_devcontainer()
    on_create = code_lines(hook_script(config["onCreateCommand"]))
    post_start = code_lines(hook_script(config["postStartCommand"]))
    assert any(re.match(r"make\s+setup\b", line) for line in on_create)
    up = next(i for i, line in enumerate(post_start) if re.match(r"\.venv/bin/lab-env\s+up\b", line))
    doctor = next(i for i, line in enumerate(post_start) if re.match(r"\.venv/bin/lab-env\s+doctor\b", line))
    assert up < doctor


def test_lab_env_commands_the_hooks_call_exist():
    parser = build_parser()
    seen = 0
    for script in SCRIPTS:
        for line in code_lines(script):
            for match in re.finditer(r"(?:^|[;&|]\s*)\.venv/bin/lab-env\s+([^;&|]+)", line):
                argv = shlex.split(match[1])
                try:
                    args = parser.parse_args(argv)
                except SystemExit:
                    pytest.fail(f"{script.name}: `lab-env {match[1].strip()}` is not a valid lab-env command")
                assert callable(args.fn)
                seen += 1
            for match in re.finditer(r"-m\s+([A-Za-z_][\w.]*)", line):
                assert importlib.util.find_spec(match[1]), f"{script.name}: no module {match[1]}"
            for match in re.finditer(r"(devcontainer/[\w.-]+)", line):
                assert (REPO_ROOT / match[1]).exists(), f"{script.name}: {match[1]} does not exist"
    assert seen >= 2


def test_make_targets_the_hooks_call_exist_in_the_makefile():
    called = {
        (script.name, match[1])
        for script in SCRIPTS
        for line in code_lines(script)
        for match in re.finditer(r"(?:^|[;&|]\s*)make\s+([\w.-]+)", line)
    }
    assert called, "the hooks call no make target (on-create.sh should run `make setup`)"
    if not MAKEFILE.exists():
        pytest.skip(f"no Makefile at {MAKEFILE} yet: cannot check the targets {sorted(t for _, t in called)}")
    targets = makefile_targets(MAKEFILE.read_text())
    missing = sorted(f"{name}: make {target}" for name, target in called if target not in targets)
    assert not missing, f"targets missing from the Makefile: {missing}"


def test_makefile_target_parser():
    text = "setup: .venv\n\tuv sync\nlab test: setup\n\t./x\nVAR := 1\n.PHONY: setup lab\n"
    assert {"setup", "lab", "test"} <= makefile_targets(text)
    assert "VAR" not in makefile_targets(text)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_bash_n(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck(script):
    shellcheck = shutil.which("shellcheck")
    if not shellcheck:
        pytest.skip("shellcheck is not installed (Debian/Ubuntu: apt-get install shellcheck); CI should have it")
    done = subprocess.run([shellcheck, "--shell=bash", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_there_are_scripts_to_check():
    assert {p.name for p in SCRIPTS} >= {"on-create.sh", "post-start.sh"}


# --- compose.yaml and the pins -------------------------------------------------


def test_compose_parses_and_every_service_has_a_healthcheck():
    compose = load_compose()
    assert set(STACK) <= set(compose["services"])
    for name, svc in compose["services"].items():
        check = svc.get("healthcheck")
        assert check, f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"
        test = check["test"]
        assert test and test != ["NONE"] and test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck test {test}"


def test_every_image_is_pinned_and_equals_its_pin():
    compose = load_compose()
    env = devcontainer.parse_env(ENV_FILE.read_text())
    assert devcontainer.pin_mismatches(compose, env) == []
    with_image = {name for name, svc in compose["services"].items() if "image" in svc}
    assert with_image == set(devcontainer.SERVICE_IMAGES), "every image service needs its pin in SERVICE_IMAGES"
    p = pins()
    for name in with_image:
        image = devcontainer.interpolate(compose["services"][name]["image"], env)
        tag = image.rpartition(":")[2]
        assert tag and tag != "latest" and "/" not in tag, f"{name}: {image}"
        assert image == p.image(devcontainer.SERVICE_IMAGES[name])
    # The native stack's versions, spelled out.
    assert devcontainer.interpolate(compose["services"]["placement"]["image"], env) == f"daprio/dapr:{p.dapr_runtime}"
    assert devcontainer.interpolate(compose["services"]["kafka"]["image"], env) == f"apache/kafka:{p.kafka}"
    assert devcontainer.interpolate(compose["services"]["redis"]["image"], env) == f"redis:{p.redis}"


def test_committed_env_equals_the_render():
    assert ENV_FILE.read_text() == devcontainer.render_env()
    devcontainer.check_env()
    assert devcontainer.main(["--check"]) == 0


def test_env_holds_the_tool_pins():
    env = devcontainer.parse_env(ENV_FILE.read_text())
    tools = pins().tools
    assert env["KIND_VERSION"] == tools["kind"]
    assert env["KUBECTL_VERSION"] == tools["kubectl"]
    assert env["HELM_VERSION"] == tools["helm"]
    assert env["DAPR_VERSION"] == pins().dapr_runtime
    assert "3.11" in env["WORKSPACE_BASE_IMAGE"]


def test_pin_check_reports_a_wrong_tag(tmp_path):
    original = COMPOSE.read_text()
    redis_ref = '"${REDIS_IMAGE:?set in devcontainer/.env}"'
    kafka_ref = '"${KAFKA_IMAGE:?set in devcontainer/.env}"'
    assert redis_ref in original and kafka_ref in original

    wrong = tmp_path / "compose.yaml"
    wrong.write_text(original.replace(redis_ref, '"redis:7.2"'))
    with pytest.raises(LabEnvError) as err:
        devcontainer.check_compose(wrong, ENV_FILE)
    assert f"redis: image redis:7.2 but pinned redis:{pins().redis}" in str(err.value)
    assert "\n" not in str(err.value)

    env = devcontainer.parse_env(ENV_FILE.read_text())
    latest = yaml.safe_load(original.replace(kafka_ref, '"apache/kafka:latest"'))
    assert "kafka: image apache/kafka:latest uses the tag latest" in devcontainer.pin_mismatches(latest, env)
    untagged = yaml.safe_load(original.replace(kafka_ref, '"apache/kafka"'))
    assert "kafka: image apache/kafka has no tag" in devcontainer.pin_mismatches(untagged, env)


def test_env_check_reports_a_drifted_pin(tmp_path):
    drifted = tmp_path / ".env"
    good = f"KAFKA_IMAGE={pins().image('kafka')}\n"
    assert good in ENV_FILE.read_text()
    drifted.write_text(ENV_FILE.read_text().replace(good, "KAFKA_IMAGE=apache/kafka:4.2.0\n"))
    with pytest.raises(LabEnvError) as err:
        devcontainer.check_env(drifted)
    assert f"KAFKA_IMAGE=apache/kafka:4.2.0 but pinned {pins().image('kafka')}" in str(err.value)
    with pytest.raises(LabEnvError, match="missing"):
        devcontainer.check_env(tmp_path / "absent.env")


def test_interpolation_follows_compose():
    env = {"A": "1", "EMPTY": ""}
    assert devcontainer.interpolate("x${A}y", env) == "x1y"
    assert devcontainer.interpolate("${B:-dflt}", env) == "dflt"
    assert devcontainer.interpolate("${EMPTY:-dflt}", env) == "dflt"
    assert devcontainer.interpolate("$${A}", env) == "${A}"
    with pytest.raises(LabEnvError, match="B"):
        devcontainer.interpolate("${B:?needed}", env)


def test_workspace_waits_for_the_healthy_stack_in_the_container_profile():
    workspace = load_compose()["services"]["workspace"]
    assert workspace["environment"]["LAB_ENV_PROFILE"] == "container"
    for key, value in CONTAINER.component_env().items():
        assert workspace["environment"][key] == value
    for name in STACK:
        assert workspace["depends_on"][name]["condition"] == "service_healthy"


def test_services_listen_where_the_container_profile_looks():
    svcs = load_compose()["services"]
    native_ports = {s.name: s.ports for s in services(NATIVE)}

    kafka = svcs["kafka"]["environment"]
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{CONTAINER.kafka_bootstrap}"
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
        "KAFKA_DEFAULT_REPLICATION_FACTOR",
    ):
        assert kafka[key] == "1", key
    # Group timing (classic and KIP-848) is the same in both profiles.
    native_props = dict(line.split("=", 1) for line in _kafka_properties(NATIVE, "127.0.0.1", Path("/x")).splitlines())
    for key, value in native_props.items():
        if key.startswith("group."):
            assert kafka["KAFKA_" + key.upper().replace(".", "_")] == value, key
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", kafka["CLUSTER_ID"])

    placement = svcs["placement"]
    assert placement["entrypoint"] == ["./placement"]
    assert flag(placement["command"], "--port") == str(CONTAINER.placement_port)
    assert flag(placement["command"], "--healthz-port") == str(native_ports["placement"]["healthz"])
    assert f":{native_ports['placement']['healthz']}/healthz" in placement["healthcheck"]["test"][-1]

    scheduler = svcs["scheduler"]
    assert scheduler["entrypoint"] == ["./scheduler"]
    assert flag(scheduler["command"], "--port") == str(CONTAINER.scheduler_port)
    assert flag(scheduler["command"], "--override-broadcast-host-port") == CONTAINER.scheduler_address
    assert flag(scheduler["command"], "--healthz-port") == str(native_ports["scheduler"]["healthz"])
    assert f":{native_ports['scheduler']['healthz']}/healthz" in scheduler["healthcheck"]["test"][-1]
    data_dir = flag(scheduler["command"], "--etcd-data-dir")
    mounts = {m.split(":")[1]: m.split(":")[0] for m in scheduler["volumes"]}
    assert data_dir.startswith("/var/lock/") and "/var/lock" in mounts
    assert mounts["/var/lock"] in load_compose()["volumes"], "the etcd data lives in a named volume"


def test_distroless_dapr_healthchecks_use_the_shared_busybox():
    svcs = load_compose()["services"]
    for name in ("placement", "scheduler"):
        assert svcs[name]["healthcheck"]["test"][1] == "/probe/busybox"
        assert "probe-tools:/probe:ro" in svcs[name]["volumes"]
        assert svcs[name]["depends_on"]["probe-tools"]["condition"] == "service_healthy"


# --- Dockerfile ----------------------------------------------------------------


def test_dockerfile_takes_every_version_from_build_args():
    text = DOCKERFILE.read_text()
    first_from = text.index("\nFROM ")
    global_args = set(re.findall(r"^ARG ([A-Z0-9_]+)\s*$", text[:first_from], re.MULTILINE))
    args_without_default = set(re.findall(r"^ARG ([A-Z0-9_]+)\s*$", text, re.MULTILINE)) - {"TARGETARCH"}
    stages: set[str] = set()
    for ref, stage in re.findall(r"^FROM (\S+)(?: AS (\S+))?\s*$", text, re.MULTILINE):
        var = re.fullmatch(r"\$\{([A-Z0-9_]+)\}", ref)
        assert var and var[1] in global_args or ref in stages, f"FROM {ref} is not a pinned build arg"
        if stage:
            stages.add(stage)
    build_args = set(load_compose()["services"]["workspace"]["build"]["args"])
    assert args_without_default == build_args, "compose must pass exactly the args the Dockerfile needs"
    assert build_args <= set(devcontainer.env_values()), "every build arg comes from devcontainer/.env"
    # Every Dapr binary lab_env runs in the workspace, from the pinned image, where lab_env looks for it.
    copied = re.search(r"^COPY --from=dapr (.*) \S*/\.dapr/bin/$", text, re.MULTILINE)
    assert copied, "the Dockerfile copies no Dapr binaries into ~/.dapr/bin"
    used = set(
        re.findall(r'dapr_bin\("([a-z]+)"\)', "".join(p.read_text() for p in (REPO_ROOT / "lab_env").rglob("*.py")))
    )
    assert used - {"dapr"} <= {Path(b).name for b in copied[1].split()}, (used, copied[1])
    for tool in ("kubectl", "kind", "helm", "kcat"):
        assert tool in text, tool


# --- kind and lab-env cluster ----------------------------------------------------


def test_kind_config_parses():
    doc = yaml.safe_load(KIND_CONFIG.read_text())
    assert doc["kind"] == "Cluster" and doc["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert doc["name"] == cluster.cluster_name() == "agent-homes"
    assert [node["role"] for node in doc["nodes"]] == ["control-plane"]
    assert cluster.KIND_CONFIG == KIND_CONFIG


def test_cluster_register_adds_the_subcommand():
    parser = argparse.ArgumentParser(prog="lab-env")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cluster_cli.register(sub)
    for action in ("up", "status", "down"):
        args = parser.parse_args(["cluster", action])
        assert args.fn is cluster_cli.cmd_cluster and args.action == action and args.runtime == "auto"
    assert parser.parse_args(["cluster", "up", "--runtime", "native"]).runtime == "native"
    args = parser.parse_args(["cluster", "up", "--namespace", "agents", "--timeout", "5m"])
    assert (args.namespace, args.timeout) == ("agents", "5m")
    with pytest.raises(SystemExit):
        parser.parse_args(["cluster", "sideways"])


def test_cluster_runs_natively_where_no_docker_engine_answers():
    if docker_engine_answers():
        pytest.skip("a Docker engine answers here: auto picks kind")
    assert cluster.choose_runtime("auto") == "native"
    assert cluster.choose_runtime("kind") == "kind"  # asked for explicitly: kind's own checks then say what is missing
    _, why = cluster.runtime_choice("auto")  # printed by `cluster up`: why native, and how to get kind here
    assert "no Docker engine answers" in why and "--runtime kind" in why


def test_cluster_fails_in_one_line_without_a_docker_engine():
    if docker_engine_answers():
        pytest.skip("a Docker engine answers here; this checks the failure on machines without one")
    with pytest.raises(LabEnvError) as err:
        cluster.require_docker()
    message = str(err.value)
    assert "\n" not in message and "docker" in message.lower()
    parser = argparse.ArgumentParser(prog="lab-env")
    cluster_cli.register(parser.add_subparsers(dest="cmd", required=True))
    for action in ("up", "down"):
        args = parser.parse_args(["cluster", action, "--runtime", "kind"])  # auto would pick the native cluster
        with pytest.raises(LabEnvError) as err:
            args.fn(args)
        assert str(err.value) == message, "the Docker check comes first and says the same"


def test_cluster_rejects_a_bad_namespace_before_touching_anything():
    with pytest.raises(LabEnvError, match="namespace"):
        cluster.up(namespace="Not_Valid")


def test_cluster_mirror_manifest_points_services_at_the_stack():
    manifest = cluster.mirror_manifest({"redis": ("172.18.0.3", 6379), "kafka": ("172.18.0.4", 9092)}, "agents")
    kinds = [(item["kind"], item["metadata"]["name"]) for item in manifest["items"]]
    assert kinds == [
        ("Namespace", "agents"),
        ("Service", "redis"),
        ("EndpointSlice", "redis-lab-env"),
        ("Service", "kafka"),
        ("EndpointSlice", "kafka-lab-env"),
    ]
    for service, slice_ in zip(manifest["items"][1::2], manifest["items"][2::2], strict=True):
        assert "selector" not in service["spec"]
        assert slice_["metadata"]["labels"]["kubernetes.io/service-name"] == service["metadata"]["name"]
        assert slice_["ports"][0]["name"] == service["spec"]["ports"][0]["name"]
        assert slice_["ports"][0]["port"] == service["spec"]["ports"][0]["port"]
    # Pods use the container profile's names, so Kafka's advertised listener works.
    assert {item["metadata"]["name"] for item in manifest["items"] if item["kind"] == "Service"} == {
        CONTAINER.redis_host,
        CONTAINER.kafka_host,
    }
    assert "Namespace" not in [i["kind"] for i in cluster.mirror_manifest({}, "default")["items"]]


# --- README ----------------------------------------------------------------------


def test_readme_has_the_badge_and_says_what_has_run_and_what_has_not():
    text = (DC_DIR / "README.md").read_text()
    assert "https://github.com/codespaces/badge.svg" in text and "https://codespaces.new/" in text
    status = text.split("\n## ", 1)[0]  # the status box above the first section
    # What has run (the devcontainer, here, on stand-ins) and what has not (a codespace).
    assert "started for real" in status and "never run" in status and "stand-in" in status
    assert "Measured here" in text and "not a promise for a codespace" in text
