"""Agent-home specs: what load() accepts and refuses, and what each home
renders (pure logic: lab 05 applies the rendered homes to real servers)."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path

import pytest
import yaml

from lab_env.errors import LabEnvError
from lab_env.marketplace.homes import kube, native
from lab_env.marketplace.homes.spec import load
from lab_env.stack.components import load_resource

EXAMPLE = Path(__file__).resolve().parents[2] / "lab_env" / "marketplace" / "homes" / "marketplace.yaml"


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_every_app_of_the_example_spec_is_importable():
    # The spec checks only the module:attribute shape; a moved module would make its home crash-loop.
    for agent in load(EXAMPLE).agents:
        module, attribute = agent.app.split(":")
        assert hasattr(importlib.import_module(module), attribute), agent.app


def test_the_example_spec_loads():
    spec = load(EXAMPLE)
    assert [a.app_id for a in spec.agents] == ["products", "buyers", "mediator"]
    assert spec.agent("products").scale.max == 6 and spec.agent("buyers").scale is None


BAD = [
    (lambda r: r.update(image="marketplace-agents:latest"), "image: 'marketplace-agents:latest' has no pinned tag"),
    (lambda r: r["agents"][1].update(app_id="products"), "agent products: app id used twice"),
    (lambda r: r["agents"][1].update(port=8101), "port 8101 used by two agents"),
    (lambda r: r["agents"][0]["components"].append("cache"), "uses component 'cache', which the spec does not define"),
    (
        lambda r: r["components"]["statestore"].update(scopes=["mediator"]),
        "uses component 'statestore' but is not in its scopes",
    ),
    (lambda r: r["agents"][0]["callers"].update(auditor=["Stock"]), "callers names 'auditor', which is not an agent"),
    (lambda r: r["agents"][0]["scale"].update(max=1), "max 1 is below min 2"),
    (lambda r: r["components"]["pubsub"].pop("scopes"), "no scopes: every agent could use it"),
    (lambda r: r["agents"][0].update(app="product_host"), "is not module:attribute"),
    (lambda r: r["agents"][0].update(replicas=0), "replicas: 0 is not a whole number from 1 to 1000"),
    (lambda r: r["agents"][0].update(resources={"cpu": "lots"}), "are not cpu/memory quantities"),
    (lambda r: r["agents"][0].update(colour="blue"), "unknown key 'colour'"),
    (lambda r: r["components"]["pubsub"].update(actors=True), "are all marked actors: true"),
    (lambda r: r["agents"][1].update(env={"OPENAI_API_KEY": "sk-1"}), "env OPENAI_API_KEY looks like a secret"),
    (lambda r: r["agents"][1].update(env={"log level": "info"}), "is not a mapping of VARIABLE_NAMES to values"),
    *(
        (lambda r, name=name: r["agents"][1].update(env={name: "x"}), f"env {name} is not the agent's to set")
        for name in ("LD_PRELOAD", "PYTHONSTARTUP", "PATH", "BASH_ENV", "DAPR_HTTP_PORT", "LAB_ENV_HOME")
    ),
    *(
        (lambda r, kind=kind: r["components"]["model"].update(type=kind), f"type {kind} reaches the files or code")
        for kind in ("bindings.localstorage", "secretstores.local.file", "state.sqlite", "middleware.http.wasm")
    ),
    *(
        (lambda r, name=name: r["agents"][1].update(env={name: "x"}), f"env {name} is not the agent's to set")
        for name in ("UVICORN_APP_DIR", "HTTPS_PROXY", "SSL_CERT_FILE", "OPENAI_BASE_URL", "GLIBC_TUNABLES")
    ),
    (lambda r: r["agents"][1].update(env={"LOG_LEVEL\n": "x"}), "is not a mapping of VARIABLE_NAMES to values"),
    *(
        (
            lambda r, key=key: r["components"]["model"]["metadata"].update({key: "/root/.ssh/id_rsa"}),
            f"{key} names a file on the machine the home runs on",
        )
        for key in ("MTLSClientKey", "mtlsRootCA")
    ),
]


@pytest.mark.parametrize("break_it, message", BAD, ids=[m for _, m in BAD])
def test_a_wrong_spec_is_refused_in_one_line(raw, break_it, message):
    broken = copy.deepcopy(raw)
    break_it(broken)
    with pytest.raises(LabEnvError) as err:
        load(broken)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_not_yaml_names_the_line(tmp_path):
    path = tmp_path / "home.yaml"
    path.write_text("home: x\nagents:\n  - app_id: [unclosed\n")
    with pytest.raises(LabEnvError, match=r"home.yaml line \d+: not valid YAML"):
        load(path)


def _by_kind(objects: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for obj in objects:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def test_kubernetes_home_objects():
    spec = load(EXAMPLE)
    kinds = _by_kind(kube.manifests(spec))
    assert {k: len(v) for k, v in kinds.items()} == {
        "Namespace": 1,
        "Component": 4,
        "Resiliency": 1,
        "Configuration": 3,
        "Deployment": 3,
        "Service": 3,
        "HorizontalPodAutoscaler": 1,
    }
    assert all(o["metadata"].get("namespace", "marketplace") == "marketplace" for o in kube.manifests(spec))
    products = next(d for d in kinds["Deployment"] if d["metadata"]["name"] == "products")
    notes = products["spec"]["template"]["metadata"]["annotations"]
    assert notes["dapr.io/enabled"] == "true" and notes["dapr.io/app-id"] == "products"
    assert notes["dapr.io/app-port"] == "8101" and notes["dapr.io/config"] == "products-config"
    container = products["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"path": "/noop", "port": 8101}
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["resources"]["limits"] == {"cpu": "250m", "memory": "256Mi"}
    hpa = kinds["HorizontalPodAutoscaler"][0]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert {m["resource"]["name"] for m in hpa["metrics"]} == {"cpu", "memory"}


def test_access_control_denies_all_but_the_named_callers_and_methods():
    spec = load(EXAMPLE)
    config = kube.configuration(spec.agent("products"), spec)["spec"]
    assert config["mtls"]["enabled"] is True
    # Required by the CRD whenever mtls is set (tests/runtime/test_native_cluster.py: the API server
    # refuses it otherwise).
    assert {"controlPlaneTrustDomain", "sentryAddress"} <= set(config["mtls"])
    assert config["accessControl"]["defaultAction"] == "deny"
    (policy,) = config["accessControl"]["policies"]
    assert policy["appId"] == "mediator" and policy["defaultAction"] == "deny"
    assert [op["name"] for op in policy["operations"]] == ["/Stock", "/Reserve", "/Release"]
    assert kube.configuration(spec.agent("buyers"), spec)["spec"]["accessControl"]["policies"] == []


def test_components_are_scoped_and_secrets_come_from_the_secret_store():
    spec = load(EXAMPLE)
    components = {c["metadata"]["name"]: c for c in kube.components(spec)}
    assert components["statestore"]["scopes"] == ["products", "mediator"]
    assert {"name": "actorStateStore", "value": "true"} in components["statestore"]["spec"]["metadata"]
    model = components["model"]
    assert {"name": "securityToken", "secretKeyRef": {"name": "marketplace-secrets", "key": "openai-api-key"}} in model[
        "spec"
    ]["metadata"]
    assert model["auth"] == {"secretStore": kube.SECRET_STORE}
    # The Secret is rendered only with values given at apply time, and never without them all.
    assert all(o["kind"] != "Secret" for o in kube.manifests(spec))
    assert kube.manifests(spec, {"openai-api-key": "k"})[1]["stringData"] == {"openai-api-key": "k"}
    with pytest.raises(LabEnvError, match="no value for secret 'openai-api-key'"):
        kube.manifests(spec, {})


def test_native_home_files_are_dapr_resources_and_a_run_file(tmp_path):
    spec = load(EXAMPLE)
    ports = {a.app_id: (41000 + i, 42000 + i, 43000 + i, 44000 + i) for i, a in enumerate(spec.agents)}
    run_file = native.write(spec, tmp_path, ports, app_dir=tmp_path)
    docs = {p.name: load_resource(p) for p in sorted((tmp_path / "resources").glob("*.yaml"))}
    assert docs[f"{kube.SECRET_STORE}.yaml"]["spec"] == {
        "type": "secretstores.local.env",
        "version": "v1",
        # Without a prefix its secrets API serves the sidecar's whole environment.
        "metadata": [{"name": "prefix", "value": "LAB_SECRET_"}],
    }
    model_key = next(m for m in docs["model.yaml"]["spec"]["metadata"] if m["name"] == "securityToken")
    assert model_key["secretKeyRef"] == {"name": "OPENAI_API_KEY", "key": "OPENAI_API_KEY"}
    assert all("namespace" not in d["metadata"] for d in docs.values())
    config = load_resource(tmp_path / "config" / "products.yaml")
    with_mtls = native.configurations(spec)["products.yaml"]["spec"]
    assert with_mtls["accessControl"]["policies"][0]["appId"] == "mediator"
    assert with_mtls["accessControl"]["policies"][0]["namespace"] == native.NAMESPACE
    apps = {a["appID"]: a for a in yaml.safe_load(run_file.read_text())["apps"]}
    assert set(apps) == {"products", "buyers", "mediator"}
    assert apps["products"]["daprHTTPPort"] == 41000 and apps["products"]["appPort"] == 8101
    assert apps["mediator"]["command"][-6:-2] == ["--host", "127.0.0.1", "--port", "8103"]
    assert Path(apps["buyers"]["configFilePath"]).exists()
    # Without a sentry there is no mtls section (daprd would refuse to start without trust anchors)
    # and no access control (without certificates daprd cannot tell callers apart and refuses all).
    assert "mtls" not in config["spec"] and "accessControl" not in config["spec"]
    # The CLI cannot bind the internal gRPC and metrics ports to loopback; the daprd it starts does.
    wrapper = Path(apps["products"]["runtimePath"]) / ".dapr" / "bin" / "daprd"
    assert "--dapr-internal-grpc-listen-address 127.0.0.1 --metrics-listen-address 127.0.0.1" in wrapper.read_text()


def test_the_native_home_scripts_pass_shellcheck(tmp_path):
    import shutil
    import subprocess

    from lab_env.runtime.sentry import Sentry

    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    for name, sentry in (("plain", None), ("mtls", Sentry("s", 1, 2, tmp_path / "sentry"))):
        runtime = native.daprd_wrapper(tmp_path / name, sentry)
        result = subprocess.run(
            ["shellcheck", "--severity=style", str(runtime / ".dapr" / "bin" / "daprd")], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout


def test_an_isolated_copy_renames_every_app_id_scope_and_caller_and_takes_new_ports():
    from lab_env.marketplace.homes.spec import isolated, to_dict

    spec = isolated(load(EXAMPLE), "t1", [9001, 9002, 9003])
    assert [(a.app_id, a.port) for a in spec.agents] == [
        ("products-t1", 9001),
        ("buyers-t1", 9002),
        ("mediator-t1", 9003),
    ]
    assert spec.agent("products-t1").callers == {"mediator-t1": ("Stock", "Reserve", "Release")}
    assert spec.components["model"].scopes == ("buyers-t1",) and spec.home == "marketplace-t1"
    # Still a valid spec: every name it refers to exists.
    assert load(yaml.safe_load(yaml.safe_dump(to_dict(spec)))) == spec


def test_pem_text_and_secret_references_are_fine_for_file_or_pem_settings(raw):
    fine = copy.deepcopy(raw)
    fine["components"]["model"]["metadata"].update(
        MTLSRootCA="-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", MTLSClientKey="secret:client-key"
    )
    assert load(fine).components["model"].metadata["MTLSClientKey"] == "secret:client-key"


def test_a_home_gets_its_secrets_under_the_prefix_and_never_the_starters_own_key():
    # Whoever starts the home may hold a real OPENAI_API_KEY: the home sees it emptied.
    assert native.secret_env({"openai-api-key": "Bearer placeholder"}) == {
        "OPENAI_API_KEY": "",
        "LAB_SECRET_OPENAI_API_KEY": "Bearer placeholder",
    }


def test_lab_05_checks_take_a_spec_mapping_never_a_path(tmp_path):
    from lab_env.labs.checks import verdict
    from lab_env.labs.lab05_agent_homes import checks as lab05

    secret = tmp_path / "graders.yaml"
    secret.write_text("home: sk-the-graders-own\n")
    failed = verdict(lab05.sellers_agent, str(secret))
    assert failed.passed is False and "sk-the-graders-own" not in failed.message
    assert "pass the SPEC mapping itself" in failed.message
