"""Checks for lab 05: agent homes.

Each check takes what the learner wrote (the spec as a mapping, a rendering
function, the name of the notebook's cluster) and judges it against real
servers: the spec is started under the real `dapr run -f`, the access
policy is called through sidecars with mTLS certificates from sentry, and
manifests go to the Kubernetes API server. Nothing is taken from the
notebook's variables, so the grader runs the same checks from its process.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from lab_env.core import procs
from lab_env.core.paths import REPO_ROOT
from lab_env.core.ports import free_ports
from lab_env.labs.checks import call_learner, check, fresh
from lab_env.marketplace.homes import kube, native, security
from lab_env.marketplace.homes.spec import isolated, load
from lab_env.runtime import sidecar
from lab_env.runtime.clusters import native as native_cluster
from lab_env.runtime.clusters.native import KubectlError

CALL_PATIENCE = 60.0  # a rendering function returns at once; this only stops an endless loop


def _spec(raw: object):
    """The notebook's spec: a mapping only. `load` also reads a path, and a path
    from a notebook would make the grader read (and quote) a file of its own."""
    assert isinstance(raw, dict), f"the spec is a {type(raw).__name__}: pass the SPEC mapping itself"
    return load(raw)


@check(
    "sellers agent",
    hint="add to SPEC['agents'] a sellers agent: app lab_env.marketplace.agents.plain_agent:app, port 8104, "
    "health /healthz, components [pubsub], callers {mediator: [Offer]}, resources, "
    "scale {min: 1, max: 4, cpu_percent: 60}; and add sellers to pubsub's scopes",
)
def sellers_agent(raw: dict) -> str:
    spec = _spec(raw)
    ids = [a.app_id for a in spec.agents]
    assert "sellers" in ids, f"the spec's agents are {ids}: there is no sellers agent yet"
    sellers = spec.agent("sellers")
    assert sellers.components == ("pubsub",), (
        f"sellers uses {list(sellers.components)}: it publishes listings, so pubsub only"
    )
    extra = [n for n, c in spec.components.items() if "sellers" in c.scopes and n != "pubsub"]
    assert not extra, f"sellers is in the scopes of {extra}: least privilege, only what it uses"
    assert sellers.callers == {"mediator": ("Offer",)}, (
        f"sellers lets {sellers.callers} call it: only the mediator, only Offer"
    )
    assert {"cpu", "memory"} <= set(sellers.resources), (
        "sellers has no cpu and memory resources: the scheduler needs both"
    )
    assert sellers.scale and (sellers.scale.min, sellers.scale.max, sellers.scale.cpu_percent) == (1, 4, 60), (
        f"sellers scales {sellers.scale}: from 1 to 4 replicas at 60% CPU"
    )
    # And the home runs: the whole spec, under private names, in the real `dapr run -f`.
    suffix = fresh()
    private = isolated(spec, suffix, free_ports(len(spec.agents)))
    with (
        procs.workroom("check-home-") as tmp,  # in the grading sandbox, the home runs in there
        native.running(private, tmp, REPO_ROOT, secrets={s: "Bearer check-placeholder" for s in spec.secrets}) as home,
    ):
        url = home.sidecars[f"sellers-{suffix}"]
        loaded = sorted(c["name"] for c in sidecar.get(url, sidecar.METADATA, timeout=30).json()["components"])
        # The mediator reaches the sellers' Offer through the sellers' sidecar.
        offer = sidecar.get(
            home.sidecars[f"mediator-{suffix}"], sidecar.invoke_path(f"sellers-{suffix}", "Offer"), timeout=30
        )
    assert loaded == sorted(["pubsub", native.SECRET_STORE]), f"the sellers sidecar loaded {loaded}"
    assert offer.status_code == 200, (
        f"the mediator's call to sellers' Offer got HTTP {offer.status_code}: {offer.text[:150]}"
    )
    return f"{len(ids)} agents; sellers runs under dapr run -f with {', '.join(loaded)}"


def _seen(caller: str, callee: str, method: str, status: int = 200, count: int = 1) -> security.ObservedCall:
    return security.ObservedCall(caller=caller, callee=callee, method=method, status=status, count=count)


# Audits the learner's least_privilege never saw: (what was observed, the callee whose policy is asked for).
AUDITS: list[tuple[list[security.ObservedCall], str]] = [
    # Calls to three agents, and two callers of products that need different methods.
    (
        [
            _seen("mediator", "products", "Stock", count=3),
            _seen("mediator", "products", "Reserve"),
            _seen("buyers", "products", "Stock", count=2),
            _seen("buyers", "mediator", "Negotiate"),
            _seen("mediator", "sellers", "Offer", count=2),
        ],
        "products",
    ),
    # Calls that show no need: a method the callee does not serve, and a caller that only ever asked for one.
    (
        [
            _seen("buyers", "products", "Stock", count=4),
            _seen("buyers", "products", "Price", 404),
            _seen("auditor", "products", "Export", 404),
        ],
        "products",
    ),
    # A call that failed once while the callee was down, then succeeded (a retry); 2xx answers besides 200.
    (
        [
            _seen("mediator", "ledger", "Record", 503),
            _seen("mediator", "ledger", "Record", 201, 4),
            _seen("mediator", "ledger", "Audit", 204),
            _seen("buyers", "ledger", "Audit", 403),
        ],
        "ledger",
    ),
    # Nobody called it: nobody may.
    ([_seen("buyers", "mediator", "Negotiate")], "sellers"),
]


def _succeeded(call: security.ObservedCall) -> bool:
    return 200 <= call["status"] < 300


def _needed(observed: list[security.ObservedCall], callee: str) -> set[tuple[str, str]]:
    """(caller, method) of every call to ``callee`` the audit saw succeed: what least privilege allows."""
    return {(c["caller"], c["method"]) for c in observed if c["callee"] == callee and _succeeded(c)}


def _allowed(policy: object, callee: str) -> set[tuple[str, str]]:
    assert isinstance(policy, dict), (
        f"least_privilege(observed, {callee!r}) returned {type(policy).__name__}: return a dict, caller -> methods"
    )
    pairs = set()
    for caller, methods in policy.items():
        assert isinstance(methods, list) and all(isinstance(m, str) for m in methods), (
            f"least_privilege gives {caller!r} {methods!r}: give each caller a list of method names "
            "(sorted(...) makes one; the spec takes lists, and a grader receives a set as text)"
        )
        assert methods, f"least_privilege lists {caller!r} with no methods: leave out a caller that may call nothing"
        pairs |= {(caller, method) for method in methods}
    return pairs


def _why_not(observed: list[security.ObservedCall], callee: str, caller: str, method: str) -> str:
    """Why least privilege does not let ``caller`` call ``method`` of ``callee``, from what the audit saw."""
    statuses = [c["status"] for c in observed if (c["caller"], c["callee"], c["method"]) == (caller, callee, method)]
    elsewhere = [c["callee"] for c in observed if (c["caller"], c["method"]) == (caller, method)]
    if statuses and statuses[0] >= 500:
        return f"which the audit saw fail only (HTTP {statuses[0]}, the callee was down): look before you allow it"
    if statuses:
        return f"which the audit saw fail only (HTTP {statuses[0]}): a call refused or not found shows no need"
    if elsewhere:
        return f"which it called on {elsewhere[0]}, not on {callee}: this policy is for {callee} alone"
    return "which the audit never saw: allow only what was called"


def _judge(policy: object, observed: list[security.ObservedCall], callee: str, made_up: bool = False) -> None:
    """The learner's policy for ``callee`` against what least privilege allows, with the first difference named."""
    where = ""
    if made_up:
        rows = "; ".join(f"{c['caller']} -> {c['callee']}.{c['method']} HTTP {c['status']}" for c in observed)
        where = f"on a made-up audit ({rows}), "
    got, needed = _allowed(policy, callee), _needed(observed, callee)
    for caller, method in sorted(got - needed):
        why = _why_not(observed, callee, caller, method)
        raise AssertionError(f"{where}the policy for {callee} lets {caller} call {method}, {why}")
    for caller, method in sorted(needed - got):
        raise AssertionError(
            f"{where}the policy for {callee} leaves out {caller} calling {method}, which the audit saw succeed: "
            "it would be refused"
        )


@check(
    "access policy",
    hint="a caller may call exactly the methods of this agent it was seen calling with success, and nothing else",
)
def access_policy(raw: dict, least_privilege: Callable[[list, str], dict]) -> str:
    # First on audits the learner never saw (a copy each: the function may change what it is given) ...
    for observed, callee in AUDITS:
        policy = call_learner(
            least_privilege, copy.deepcopy(observed), callee, timeout=CALL_PATIENCE, what="least_privilege"
        )
        _judge(policy, observed, callee, made_up=True)
    spec = _spec(raw)
    ids = [a.app_id for a in spec.agents]
    assert {"products", "mediator", "buyers"} <= set(ids), (
        f"the spec's agents are {ids}: keep products, buyers and mediator"
    )
    # ... then on a fresh audit of this spec's agents ...
    observed = security.audit_calls(spec)
    policy = call_learner(
        least_privilege, copy.deepcopy(observed), "products", timeout=CALL_PATIENCE, what="least_privilege"
    )
    _judge(policy, observed, "products")
    # ... then the policy itself, rendered into the products' Configuration, against real sidecars with mTLS.
    derived = copy.deepcopy(raw)
    next(a for a in derived["agents"] if a["app_id"] == "products")["callers"] = policy
    tried = sorted({c["method"] for c in observed if c["callee"] == "products"} | set(security.SERVED["products"]))
    calls = [(caller, method) for caller in ids if caller != "products" for method in tried]
    allowed = _needed(observed, "products")
    codes = security.access_matrix(load(derived), "products", calls)
    for (caller, method), code in codes.items():
        if (caller, method) in allowed:
            assert code == 200, f"{caller} calling products' {method} got HTTP {code}: it must be allowed"
        else:
            assert code == 403, f"{caller} calling products' {method} got HTTP {code}: it must be refused (403)"
    return (
        f"the policy matches {len(AUDITS) + 1} audits; {len(codes)} calls through mTLS sidecars: "
        f"{len(allowed)} allowed, {len(codes) - len(allowed)} refused"
    )


def _expected_hpa(agent_raw: dict, namespace: str) -> dict | None:
    spec = load({"home": namespace, "image": "check:1", "agents": [agent_raw]})
    return kube.autoscaler(spec.agents[0], spec)


CASES = [
    {"app_id": "sellers", "app": "m:app", "port": 8104, "scale": {"min": 1, "max": 4, "cpu_percent": 60}},
    {
        "app_id": "products",
        "app": "m:app",
        "port": 8101,
        "replicas": 2,
        "scale": {"min": 2, "max": 6, "cpu_percent": 70, "memory_percent": 80},
    },
    {"app_id": "ledger", "app": "m:app", "port": 8105, "scale": {"min": 1, "max": 3, "memory_percent": 75}},
    {"app_id": "buyers", "app": "m:app", "port": 8102},
]


@check(
    "autoscaler",
    hint="return {'apiVersion': 'autoscaling/v2', 'kind': 'HorizontalPodAutoscaler', metadata "
    "{name, namespace}, spec {scaleTargetRef: the Deployment, minReplicas, maxReplicas, metrics: one "
    "Resource metric per percent given}}, or None without scale",
)
def autoscaler(render: Callable[[dict, str], dict | None], cluster: str) -> str:
    checked = 0
    for case in CASES:
        got = call_learner(render, case, "default", timeout=CALL_PATIENCE, what="autoscaler")
        want = _expected_hpa(case, "default")
        if want is None:
            assert got is None, f"{case['app_id']} has no scale, but autoscaler returned {str(got)[:120]}: return None"
            continue
        assert isinstance(got, dict), f"autoscaler({case['app_id']}) returned {type(got).__name__}, not a manifest"
        assert (got.get("apiVersion"), got.get("kind")) == ("autoscaling/v2", "HorizontalPodAutoscaler"), (
            f"autoscaler({case['app_id']}) is a {got.get('apiVersion')}/{got.get('kind')}, "
            "not autoscaling/v2 HorizontalPodAutoscaler"
        )
        try:
            accepted = native_cluster.attach(cluster).apply(got, dry_run=True)
        except KubectlError as err:
            raise AssertionError(f"the API server refused autoscaler({case['app_id']}): {str(err)[:300]}") from None
        assert "dry run" in accepted, accepted
        body = got.get("spec", {})
        for key in ("scaleTargetRef", "minReplicas", "maxReplicas"):
            assert body.get(key) == want["spec"][key], (
                f"autoscaler({case['app_id']}): spec.{key} is {body.get(key)}, the spec asks for {want['spec'][key]}"
            )
        metrics = sorted(
            (m.get("resource", {}).get("name"), m.get("resource", {}).get("target", {}).get("averageUtilization"))
            for m in body.get("metrics", [])
        )
        wanted = sorted(
            (m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in want["spec"]["metrics"]
        )
        assert metrics == wanted, f"autoscaler({case['app_id']}) scales on {metrics}; the spec asks for {wanted}"
        checked += 1
    return f"{checked} autoscalers accepted by the API server, and None without scale"


@check("kubernetes home", hint="apply home_manifests(SPEC) with CLUSTER.apply(...), then wait for the Deployments")
def kube_home(cluster: str, raw: dict) -> str:
    spec = _spec(raw)
    c = native_cluster.attach(cluster)
    dead = c.exited()
    assert c.running(), (
        f"cluster {cluster} is not running"
        + (f" ({', '.join(dead)} exited)" if dead else "")
        + ": run the cell that starts it"
    )
    try:
        deployments = {d["metadata"]["name"]: d for d in c.get("deployments", namespace=spec.home)["items"]}
        hpas = {h["metadata"]["name"]: h for h in c.get("horizontalpodautoscalers", namespace=spec.home)["items"]}
        pods = c.get("pods", namespace=spec.home)["items"]
        configs = {x["metadata"]["name"] for x in c.get("configurations.dapr.io", namespace=spec.home)["items"]}
    except KubectlError as err:
        raise AssertionError(f"reading namespace {spec.home}: {err}") from None
    for agent in spec.agents:
        d = deployments.get(agent.app_id)
        assert d, f"no Deployment {agent.app_id} in namespace {spec.home}"
        ready = d.get("status", {}).get("readyReplicas", 0)
        assert ready >= agent.replicas, f"Deployment {agent.app_id} has {ready} ready of {agent.replicas}: wait for it"
        running = [
            p
            for p in pods
            if p["metadata"]["labels"].get("app") == agent.app_id
            and p.get("status", {}).get("phase") == "Running"
            and p["spec"].get("nodeName")
        ]
        assert running, f"no {agent.app_id} pod is Running on a node"
        assert f"{agent.app_id}-config" in configs, f"no Dapr Configuration {agent.app_id}-config"
        if agent.scale:
            h = hpas.get(agent.app_id)
            assert h, f"{agent.app_id} scales in the spec, but there is no HorizontalPodAutoscaler for it"
            assert (h["spec"]["minReplicas"], h["spec"]["maxReplicas"]) == (agent.scale.min, agent.scale.max), (
                f"the {agent.app_id} autoscaler keeps {h['spec']['minReplicas']}-{h['spec']['maxReplicas']} replicas"
            )
    return f"{len(spec.agents)} Deployments ready with pods Running, {len(hpas)} autoscalers, access control per agent"
