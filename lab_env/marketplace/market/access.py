"""Who may call whom in the market, by Dapr service invocation.

The market runs on its own control plane with mTLS (lab_env.runtime.secure_plane),
so each sidecar knows its caller by the SPIFFE id in the caller's
certificate, and each app's Configuration denies every call by default:

    carrier   the market may call POST /ship, and nothing else
    market    nobody may call its app (its agents talk through actors and workflows)

``drill`` makes the calls a policy must refuse, through real sidecars.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lab_env.errors import LabEnvError
from lab_env.runtime import sidecar

if TYPE_CHECKING:
    from lab_env.marketplace.market.control import Market

# {callee: {caller: [(HTTP verb, operation)]}}; "market" and "carrier" stand for the two apps' ids.
ACCESS: dict[str, dict[str, list[tuple[str, str]]]] = {"market": {}, "carrier": {"market": [("POST", "/ship")]}}
TRUST_DOMAIN = "public"  # the workload certificates': spiffe://public/ns/default/<app id>
NAMESPACE = "default"


def carrier_id(market: str) -> str:
    return f"carrier-{market}"


def plane_name(market: str) -> str:
    return f"plane-{market}"  # ends like the market's name (its run token), so a grader's clean-up finds it


def configuration(folder: Path, role: str, market: str) -> Path:
    """The Configuration file of the market's ``role`` app: the lab's, plus its access policy from ACCESS."""
    import yaml

    from lab_env.stack.components import CONFIG_FILE

    ids = {"market": market, "carrier": carrier_id(market)}
    policies = [
        {
            "appId": ids[caller],
            "defaultAction": "deny",
            "trustDomain": TRUST_DOMAIN,
            "namespace": NAMESPACE,
            "operations": [{"name": op, "httpVerb": [verb], "action": "allow"} for verb, op in allowed],
        }
        for caller, allowed in ACCESS[role].items()
    ]
    config = yaml.safe_load(CONFIG_FILE.read_text())
    config["metadata"]["name"] = f"{ids[role]}-config"
    config["spec"]["accessControl"] = {"defaultAction": "deny", "trustDomain": TRUST_DOMAIN, "policies": policies}
    path = Path(folder) / f"{role}-config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def drill(market: Market) -> list[dict]:
    """Calls between the market's apps and a stranger (an app certified by the same sentry, so
    known, but granted nothing): each with its HTTP status. Changes nothing: the one call the
    policy lets through asks the carrier to ship a parcel it refuses (422, from the carrier itself)."""
    from lab_env.runtime.apps import start_app, stop_app, unique_name
    from lab_env.runtime.secure_plane import load_plane

    carrier = market.running_carrier().app_id
    parcel = {"order": f"{market.name}-drill", "product": market.product(0), "quantity": 1}
    rows: list[dict] = []

    def call(who: str, app, method: str, callee: str, path: str, body: dict | None = None) -> None:
        reply = sidecar.request(method, app, sidecar.invoke_path(callee, path), json=body, timeout=30)
        rows.append(
            {
                "caller": who,
                "call": f"{method} {path} on {'the carrier' if callee == carrier else 'the market'}",
                "status": reply.status_code,
            }
        )

    call("market", market.app, "POST", carrier, "/ship", {**parcel, "refuse": True})
    call("market", market.app, "GET", carrier, f"/shipments/{parcel['order']}")
    plane = load_plane(plane_name(market.name))
    if plane is None:
        raise LabEnvError(
            f"market {market.name!r} has no control plane running",
            "stop it with `lab-env market down` and start it again with `lab-env market up`",
        )
    stranger = start_app(
        unique_name("stranger"), components=[], sidecar_args=plane.sidecar_args(), sidecar_env=plane.sidecar_env()
    )
    try:
        call("stranger", stranger, "POST", carrier, "/ship", parcel)
        call("stranger", stranger, "GET", market.app.app_id, "/healthz")
    finally:
        stop_app(stranger)
    return rows
