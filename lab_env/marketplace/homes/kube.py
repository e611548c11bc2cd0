"""The Kubernetes home: an agent-home spec rendered to manifests.

Per agent: a Deployment whose pods Dapr's injector gives a daprd sidecar
(the ``dapr.io/*`` annotations), with resources, probes and a non-root,
read-only container; a Service; a HorizontalPodAutoscaler when the agent
scales; a Dapr Configuration with mTLS and access control that denies every
caller and every method the spec does not name. For the home: its Namespace,
the Dapr Components with their scopes (a metadata value ``secret:NAME``
becomes a ``secretKeyRef`` into the home's Secret), the Kubernetes secret
store, a Resiliency, and the Secret itself only when its values are given
(they come from the environment when applied, never from a file).
"""

from __future__ import annotations

from lab_env.marketplace.homes.spec import Agent, HomeSpec

DAPR_API = "dapr.io/v1alpha1"
SECRET_STORE = "kubernetes-secrets"
TRUST_DOMAIN = "public"
DAPR_NAMESPACE = "dapr-system"


def secret_name(spec: HomeSpec) -> str:
    return f"{spec.home}-secrets"


def _labels(agent: Agent, spec: HomeSpec) -> dict[str, str]:
    return {"app": agent.app_id, "app.kubernetes.io/part-of": spec.home}


def deployment(agent: Agent, spec: HomeSpec) -> dict:
    probe = {"httpGet": {"path": agent.health, "port": agent.port}, "periodSeconds": 10, "failureThreshold": 3}
    container = {
        "name": agent.app_id,
        "image": spec.image,
        "command": ["python", "-m", "uvicorn", agent.app, "--host", "0.0.0.0", "--port", str(agent.port)],
        "ports": [{"name": "http", "containerPort": agent.port}],
        "env": [{"name": k, "value": v} for k, v in agent.env.items()],
        "readinessProbe": {**probe, "initialDelaySeconds": 2},
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if agent.resources:
        container["resources"] = {"requests": dict(agent.resources), "limits": dict(agent.resources)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": agent.app_id, "namespace": spec.home, "labels": _labels(agent, spec)},
        "spec": {
            "replicas": agent.replicas,
            "selector": {"matchLabels": {"app": agent.app_id}},
            "template": {
                "metadata": {
                    "labels": _labels(agent, spec),
                    "annotations": {
                        "dapr.io/enabled": "true",
                        "dapr.io/app-id": agent.app_id,
                        "dapr.io/app-port": str(agent.port),
                        "dapr.io/config": f"{agent.app_id}-config",
                        "dapr.io/enable-api-logging": "true",
                    },
                },
                "spec": {"containers": [container]},
            },
        },
    }


def service(agent: Agent, spec: HomeSpec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": agent.app_id, "namespace": spec.home, "labels": _labels(agent, spec)},
        "spec": {"selector": {"app": agent.app_id}, "ports": [{"name": "http", "port": 80, "targetPort": agent.port}]},
    }


def autoscaler(agent: Agent, spec: HomeSpec) -> dict | None:
    if agent.scale is None:
        return None
    metrics = [
        {
            "type": "Resource",
            "resource": {"name": name, "target": {"type": "Utilization", "averageUtilization": percent}},
        }
        for name, percent in (("cpu", agent.scale.cpu_percent), ("memory", agent.scale.memory_percent))
        if percent is not None
    ]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": agent.app_id, "namespace": spec.home},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": agent.app_id},
            "minReplicas": agent.scale.min,
            "maxReplicas": agent.scale.max,
            "metrics": metrics,
        },
    }


def configuration(agent: Agent, spec: HomeSpec) -> dict:
    """mTLS on; every caller and method denied unless the spec lists it."""
    policies = [
        {
            "appId": caller,
            "defaultAction": "deny",
            "trustDomain": TRUST_DOMAIN,
            "namespace": spec.home,
            "operations": [{"name": f"/{method}", "httpVerb": ["*"], "action": "allow"} for method in methods],
        }
        for caller, methods in sorted(agent.callers.items())
    ]
    return {
        "apiVersion": DAPR_API,
        "kind": "Configuration",
        "metadata": {"name": f"{agent.app_id}-config", "namespace": spec.home},
        # Dapr 1.18's CRD requires the control plane's address and trust domain whenever mtls is set.
        "spec": {
            "mtls": {
                "enabled": True,
                "controlPlaneTrustDomain": "cluster.local",
                "sentryAddress": f"dapr-sentry.{DAPR_NAMESPACE}.svc.cluster.local:443",
            },
            "accessControl": {"defaultAction": "deny", "trustDomain": TRUST_DOMAIN, "policies": policies},
        },
    }


def components(spec: HomeSpec) -> list[dict]:
    out = [
        {
            "apiVersion": DAPR_API,
            "kind": "Component",
            "metadata": {"name": SECRET_STORE, "namespace": spec.home},
            "spec": {"type": "secretstores.kubernetes", "version": "v1", "metadata": []},
            "scopes": [a.app_id for a in spec.agents],
        }
    ]
    for component in spec.components.values():
        metadata: list[dict] = []
        for key, value in component.metadata.items():
            if value.startswith("secret:"):
                metadata.append(
                    {"name": key, "secretKeyRef": {"name": secret_name(spec), "key": value[len("secret:") :]}}
                )
            else:
                metadata.append({"name": key, "value": value})
        if component.actors:
            metadata.append({"name": "actorStateStore", "value": "true"})
        body: dict = {
            "apiVersion": DAPR_API,
            "kind": "Component",
            "metadata": {"name": component.name, "namespace": spec.home},
            "spec": {"type": component.type, "version": "v1", "metadata": metadata},
            "scopes": list(component.scopes),
        }
        if any("secretKeyRef" in m for m in metadata):
            body["auth"] = {"secretStore": SECRET_STORE}
        out.append(body)
    return out


def resiliency(spec: HomeSpec) -> dict:
    """Timeouts, retries and a circuit breaker on calls to every agent that has callers."""
    targets = {
        a.app_id: {"timeout": "call", "retry": "brief", "circuitBreaker": "trip"} for a in spec.agents if a.callers
    }
    return {
        "apiVersion": DAPR_API,
        "kind": "Resiliency",
        "metadata": {"name": f"{spec.home}-resiliency", "namespace": spec.home},
        "scopes": [a.app_id for a in spec.agents],
        "spec": {
            "policies": {
                "timeouts": {"call": "5s"},
                "retries": {"brief": {"policy": "exponential", "maxInterval": "2s", "maxRetries": 3}},
                "circuitBreakers": {
                    "trip": {"maxRequests": 1, "interval": "10s", "timeout": "15s", "trip": "consecutiveFailures >= 5"}
                },
            },
            "targets": {"apps": targets},
        },
    }


def secret(spec: HomeSpec, values: dict[str, str]) -> dict:
    missing = [name for name in spec.secrets if name not in values]
    if missing:
        from lab_env.errors import LabEnvError

        raise LabEnvError(f"no value for secret {missing[0]!r}", "set it in the environment before applying the home")
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": secret_name(spec), "namespace": spec.home},
        "stringData": {name: values[name] for name in spec.secrets},
    }


def manifests(spec: HomeSpec, secret_values: dict[str, str] | None = None) -> list[dict]:
    """Every object of the home, in an order `kubectl apply` accepts."""
    out: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.home}}]
    if secret_values is not None and spec.secrets:
        out.append(secret(spec, secret_values))
    out += components(spec)
    out.append(resiliency(spec))
    for agent in spec.agents:
        out += [configuration(agent, spec), deployment(agent, spec), service(agent, spec)]
        hpa = autoscaler(agent, spec)
        if hpa:
            out.append(hpa)
    return out


def to_yaml(objects: list[dict]) -> str:
    import yaml

    return "".join("---\n" + yaml.safe_dump(obj, sort_keys=False) for obj in objects)
