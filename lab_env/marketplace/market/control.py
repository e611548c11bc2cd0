"""Run the marketplace: start it, stock it, place orders, and prove the books balance.

    market = up("market")                     # the society's app on the running stack, stocked
    ids = place_orders(market, 100)           # buyers' purchases, as workflows
    outcomes = wait_orders(market, ids)
    sheet = balance_sheet(market, outcomes)   # stock and money balance; nothing lost or doubled
    down("market")

``lab-env market up|status|orders|down`` does the same from a terminal.
Everything is seeded from a ``Catalog``, so the balance sheet knows what
there was to begin with.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from secrets import token_urlsafe

from lab_env.core.names import run_token
from lab_env.core.paths import state_dir
from lab_env.core.ports import free_ports
from lab_env.core.probes import tcp_open
from lab_env.errors import LabEnvError
from lab_env.marketplace.market import access, allocation
from lab_env.runtime import kafka, secure_plane, sidecar, workflows
from lab_env.runtime.actors import actor_type_in, invoke
from lab_env.runtime.apps import DaprApp, load_app, running_apps, start_app, stop_app, unique_name, uvicorn_command
from lab_env.runtime.tracing.zipkin import Zipkin, traced_config

SOCIETY = "lab_env.marketplace.market.society"
CARRIER = "lab_env.marketplace.market.carrier:app"
COMPONENTS = ("statestore", "kafka-pubsub", "secretstore")
CARRIER_COMPONENTS = ("statestore",)

TERMINAL = {"completed", "compensated", "rejected", "no deal"}


@dataclass(frozen=True)
class Catalog:
    """What the market starts with. Order n goes to buyer n % buyers and product n % products; its seller
    is the one the contract net awards it to, among those listing the product (allocation.py).
    (Market.product and Market.wallet give the actor ids, which carry the market's name: two markets
    started by one process share actor types, never actors.)"""

    products: int = 10
    stock: int = 1000
    buyers: int = 20
    sellers: int = 5
    funds: float = 1_000_000.0
    list_price: float = 100.0
    rounds: int = 5
    unreliable: tuple[int, ...] = ()  # sellers (by number) that never hand over the goods: reputation's drill

    def __post_init__(self) -> None:
        object.__setattr__(self, "unreliable", tuple(int(k) for k in self.unreliable))  # a list, from JSON


@dataclass
class Market:
    name: str
    app: DaprApp
    topic: str
    catalog: Catalog = field(default_factory=Catalog)
    view_port: int | None = None
    carrier: DaprApp | None = None
    trust_rule: str = "the course's"  # whose trust weighs the cards: "yours" when up() was given one
    replicas: tuple[DaprApp, ...] = ()  # more hosts of the same app id: placement spreads the agents over all

    @property
    def hosts(self) -> tuple[DaprApp, ...]:
        return (self.app, *self.replicas)

    def live(self) -> DaprApp:
        """A host whose sidecar answers, where lab_env's own calls go: the first, unless it was killed
        (any host's sidecar reaches every agent, wherever placement put it). A killed sidecar's port
        refuses at once: procs.kill returns when its last thread is gone."""
        if not self.replicas:
            return self.app
        return next((host for host in self.hosts if tcp_open("127.0.0.1", host.http_port, timeout=2)), self.app)

    def running_carrier(self) -> DaprApp:
        """The carrier app (None in ``carrier`` when the market was attached while it was down)."""
        if self.carrier is None:
            raise LabEnvError(
                f"market {self.name!r} has no carrier app running",
                "stop it with `lab-env market down` and start it again with `lab-env market up`",
            )
        return self.carrier

    @property
    def view_url(self) -> str | None:
        return f"http://127.0.0.1:{self.view_port}/" if self.view_port else None

    @property
    def inventory_topic(self) -> str:
        """Stock events: stocked, reserved and released, keyed by product."""
        return f"{self.name}-inventory"

    def actor(self, kind: str) -> str:
        return actor_type_in(self.app, kind)

    def product(self, n: int) -> str:
        return f"{self.name}-product-{n % self.catalog.products}"

    def wallet(self, who: str, n: int) -> str:
        """A buyer's or seller's wallet (``n`` modulo their number): a seller is known by its wallet."""
        return f"{self.name}-{who}-{n % (self.catalog.buyers if who == 'buyer' else self.catalog.sellers)}"

    def wallets(self) -> list[str]:
        return [self.wallet("buyer", n) for n in range(self.catalog.buyers)] + [
            self.wallet("seller", n) for n in range(self.catalog.sellers)
        ]


MAX_HOSTS = 4


def host_name(name: str, i: int) -> str:
    """The process name of market ``name``'s host ``i`` (1, 2, ...); host 0 is the app id itself.
    It keeps the run's token last, as every app of a run does (apps_of_run, the grader)."""
    token = run_token()
    stem = name.removesuffix(f"-{token}")
    return f"{stem}-host{i}-{token}" if stem != name else f"{name}-host{i}"


def orders_topic(name: str) -> str:
    return f"{name}-orders"


def record_path(name: str) -> Path:
    return state_dir() / "markets" / f"{name}.json"


def up(
    name: str | None = None,
    catalog: Catalog | None = None,
    *,
    detach: bool = False,
    view: bool = True,
    env: dict[str, str] | None = None,
    secrets: dict[str, str] | None = None,
    policy: Path | str | None = None,
    tracing: Zipkin | None = None,
    trust: Callable[[dict], float] | Path | str | None = None,
    hosts: int = 1,
) -> Market:
    """Start the society and stock it: its own mTLS control plane (secure_plane), the carrier app, and the
    market app (actors, workflows, Kafka events), each sidecar under its access policy (access.py).

    ``secrets`` (OPENAI_API_KEY, say) reach the app only through its sidecar's
    secret store; ``env`` holds plain settings such as OPENAI_BASE_URL.
    ``policy`` is a Python file whose class ``Negotiator`` decides the offers
    (a learner's own); without it (and without a key) the rule decides.
    ``tracing``: both sidecars send every trace to this Zipkin (tracing.zipkin).
    ``trust`` is a function ``trust(standing) -> float`` (its source goes to the app, so it must need nothing
    of the notebook but its own imports), or a Python file defining one: it weighs each seller's card in the
    contract net (a learner's own); without it, allocation.trust does.
    ``hosts``: how many processes host the society (one app id; placement spreads its actors and workflows
    over them, and when one is killed the others take its agents over)."""
    from lab_env.notebooks.widgets import require_stack

    if not 1 <= hosts <= MAX_HOSTS:
        raise LabEnvError(f"a market runs on 1 to {MAX_HOSTS} hosts, not {hosts}", f"pass hosts=1..{MAX_HOSTS}")

    require_stack()  # one line naming what is down
    env = dict(env or {})
    if policy is not None:
        env["MARKET_POLICY"] = str(_loadable_policy(Path(policy)))
    name = name or unique_name("market")
    if trust is not None:
        env["MARKET_TRUST"] = str(_loadable_trust(_trust_file(trust, name), trust))
    if record_path(name).exists():  # up again under the same name (a cell run twice): replace it, keep its state
        down(name)
    catalog = catalog or Catalog()
    topic = orders_topic(name)
    folder = state_dir() / "markets" / name
    folder.mkdir(parents=True, exist_ok=True)
    # The event topics exist before anyone subscribes (a consumer subscribed to a missing topic
    # waits for its next metadata refresh); orders partitioned by order id, inventory by product.
    kafka.create_topics({topic: 4, f"{name}-inventory": 4})
    # The sidecars' APIs answer only callers with this token: the app (the SDK reads DAPR_API_TOKEN),
    # and lab_env's clients, which read it from the app's record (mode 0600).
    token = token_urlsafe(24)
    plane = carrier = None
    started: list[DaprApp] = []
    try:
        # Its own control plane with mTLS, so each sidecar knows its caller and the access policies hold.
        plane = secure_plane.start_plane(access.plane_name(name), detach=detach)
        mtls_args = plane.sidecar_args()
        carrier_id = access.carrier_id(name)
        configs = {role: access.configuration(folder, role, name) for role in ("carrier", "market")}
        if tracing is not None:
            for config in configs.values():
                traced_config(config, tracing)
        carrier = start_app(
            carrier_id,
            uvicorn_command(CARRIER),
            components=CARRIER_COMPONENTS,
            config=configs["carrier"],
            env={"DAPR_API_TOKEN": token},
            sidecar_env={"DAPR_API_TOKEN": token, **plane.sidecar_env()},
            sidecar_args=mtls_args,
            detach=detach,
        )
        host_env = {
            "MARKET_TOPIC": topic,
            "MARKET_INVENTORY_TOPIC": f"{name}-inventory",
            "MARKET_CARRIER": carrier_id,
            "DAPR_API_TOKEN": token,
            **env,
        }
        host_settings = {
            "cwd": folder,
            "components": COMPONENTS,
            "config": configs["market"],
            "sidecar_env": {
                "DAPR_API_TOKEN": token,
                **plane.sidecar_env(),
                **{f"LAB_SECRET_{k}": v for k, v in (secrets or {}).items()},
            },
            "sidecar_args": mtls_args,
            "detach": detach,
        }
        for i in range(hosts):  # the first is the app id; the others announce it (replica_of)
            host_id, replica_of = (name, None) if i == 0 else (host_name(name, i), name)
            host_env["MARKET_HOST"] = host_id  # its own name: which host the drill kills (society.HOST)
            started.append(
                workflows.start_agents_app(host_id, SOCIETY, replica_of=replica_of, env=dict(host_env), **host_settings)
            )
        app = started[0]
    except BaseException:
        for host in started:
            stop_app(host)
        if carrier is not None:
            stop_app(carrier)
        secure_plane.stop_plane(access.plane_name(name))  # nothing half-started
        raise
    market = Market(
        name,
        app,
        topic,
        catalog,
        carrier=carrier,
        trust_rule="yours" if trust else "the course's",
        replicas=tuple(started[1:]),
    )
    try:
        _stock(market)
    except BaseException:
        for host in market.replicas:  # not in a record yet, which down() reads them from
            stop_app(host)
        down(name)  # nothing half-started
        raise
    _save(market)
    if view:
        try:
            market.view_port = _start_view(market, detach)
        except BaseException:
            down(name)
            raise
        _save(market)
    return market


def _loadable_policy(path: Path) -> Path:
    """The policy file, loaded once here so a mistake is one line now, not a rejected offer per round."""
    from lab_env.marketplace.agents.offer_policy import FilePolicy

    path = path.resolve()
    if not path.is_file():
        raise LabEnvError(f"no policy file {path}", "run the cell that writes it")
    try:
        FilePolicy(str(path))
    except Exception as err:
        raise LabEnvError(
            f"{path.name} does not load: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:150]}",
            "it needs a class Negotiator with a method offer(self, situation) -> float",
        ) from None
    return path


def _trust_file(trust: Callable[[dict], float] | Path | str, name: str) -> Path:
    """A trust rule as the file the app loads: a function's own source, written beside the market's state."""
    if not callable(trust):
        return Path(trust)
    import ast
    import inspect
    import textwrap

    plain = "define trust with def in a cell of its own, with no decorator, importing what it uses inside it"
    if not getattr(trust, "__name__", "").isidentifier():
        raise LabEnvError("the trust rule is not a function defined with def (a lambda?)", plain)
    try:
        source = textwrap.dedent(inspect.getsource(trust))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        raise LabEnvError("the trust function's source cannot be read", plain) from None
    defined = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(defined) != 1 or defined[0].decorator_list:
        raise LabEnvError("the market's app gets the trust function's source alone, and it is not a plain def", plain)
    path = state_dir() / "markets" / name / "trust.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{source}\n{'' if trust.__name__ == 'trust' else f'trust = {trust.__name__}'}\n")
    return path


# Records a trust rule is tried on before the market starts: a newcomer, a failure, deliveries.
TRUST_PROBES = ({"delivered": 0, "failed": 0}, {"delivered": 0, "failed": 1}, {"delivered": 5, "failed": 2})


def _loadable_trust(path: Path, trust: object = None) -> Path:
    """The trust file, loaded and tried here so a mistake is one line now, not a silent fallback per order.
    An unfinished rule (NotImplementedError) is let through: the market then counts no record."""
    from lab_env.marketplace.agents.offer_policy import load_file
    from lab_env.marketplace.market.allocation import weigh

    path = path.resolve()
    if not path.is_file():
        raise LabEnvError(f"no trust file {path}", "run the cell that writes it")
    try:
        rule = load_file(str(path)).trust
    except Exception as err:
        raise LabEnvError(
            f"{path.name} does not load: {type(err).__name__}: {(str(err).splitlines() or [''])[0][:150]}",
            "it needs a function trust(standing) -> float",
        ) from None
    if not callable(rule):
        raise LabEnvError(f"trust in {path.name} is not a function", "define def trust(standing) -> float")
    for standing in TRUST_PROBES:
        try:
            value = weigh(rule, dict(standing))
        except NotImplementedError:
            return path  # not written yet: the market runs, and the check says so
        except Exception as err:
            raise LabEnvError(
                f"trust({standing}) fails in the market's app: {type(err).__name__}: "
                f"{(str(err).splitlines() or [''])[0][:150]}",
                "the app runs the function alone: import inside it what it uses, and return a number in (0, 1]",
            ) from None
        if callable(trust):
            try:
                here = trust(dict(standing))
            except Exception as err:
                here = f"{type(err).__name__}"
            if here != value:
                raise LabEnvError(
                    f"trust({standing}) is {value} in the market's app but {here} in your notebook",
                    "it uses something from the notebook: make it depend on its argument alone",
                )
    return path


def _save(market: Market) -> None:
    record_path(market.name).write_text(
        json.dumps(
            {
                "name": market.name,
                "app_id": market.app.app_id,
                "topic": market.topic,
                "catalog": asdict(market.catalog),
                "view_port": market.view_port,
                "carrier": market.carrier.app_id if market.carrier else None,
                "trust_rule": market.trust_rule,
                "replicas": [host.app_id for host in market.replicas],
            }
        )
    )


def _view_name(name: str) -> str:
    # Its registry record is named like an app, ending in the market's (run token) suffix.
    return f"view-{name}"


def _stop_view(name: str) -> None:
    from lab_env.core import registry

    registry.stop(_view_name(name), timeout=5)


def _start_view(market: Market, detach: bool) -> int:
    """The live view's server (lab_env.marketplace.market.view) on a free loopback port; stopped with the market,
    when this process exits (unless ``detach``), or by `lab-env down`."""
    import atexit
    import sys

    from lab_env.core import registry
    from lab_env.core.names import run_token
    from lab_env.core.probes import http_status

    (port,) = free_ports(1)
    view = registry.Managed(
        "the live view",
        [
            sys.executable,
            "-m",
            "uvicorn",
            "lab_env.marketplace.market.view:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        state_dir() / "markets" / market.name / "view.log",
        env={"MARKET_NAME": market.name},
        ready=lambda: http_status(f"http://127.0.0.1:{port}/healthz") == 204,
    )
    if not detach:
        atexit.register(_stop_view, market.name)
    record = registry.Record(_view_name(market.name), token=run_token())  # a grader's clean-up finds it by its token
    registry.launch(record, {"the market's live view": view}, 60, market.name)
    return port


def seller_cards(market: Market, n: int) -> list[dict]:
    """The cards of the sellers listing product n (registered in the directory when the market is stocked)."""
    sellers = [market.wallet("seller", k) for k in range(market.catalog.sellers)]
    return allocation.seller_cards(market.product(n), n, sellers, market.catalog.list_price)


def _stock(market: Market) -> None:
    cat = market.catalog
    for n in range(cat.products):
        for card in seller_cards(market, n):  # registering a card twice changes nothing
            invoke(
                market.live(),
                market.actor("DirectoryActor"),
                allocation.capability(market.product(n)),
                "Register",
                card,
            )
        stock = invoke(market.live(), market.actor("ProductActor"), market.product(n), "Stock")
        if stock == 0:  # a market started again keeps its state: stock it once
            invoke(market.live(), market.actor("ProductActor"), market.product(n), "Restock", cat.stock)
            _publish(
                market,
                market.inventory_topic,
                market.product(n),
                {"product": market.product(n), "order": None, "kind": "stocked", "change": cat.stock},
            )
    for n in range(cat.buyers):
        wallet = market.wallet("buyer", n)
        if invoke(market.live(), market.actor("WalletActor"), wallet, "Balance") == 0:
            invoke(market.live(), market.actor("WalletActor"), wallet, "Fund", cat.funds)


def _publish(market: Market, topic: str, key: str, event: dict) -> None:
    sidecar.post(
        market.live(),
        sidecar.publish_path("kafka-pubsub", topic),
        params={"metadata.partitionKey": key},
        json=event,
        timeout=30,
    ).raise_for_status()


def stock_from_events(market: Market) -> dict[str, int]:
    """Each product's stock rebuilt from the inventory topic alone, each (product, order, kind) counted once
    (the stream is at least once)."""
    seen: dict[tuple, int] = {}
    for record in kafka.read_topic(market.inventory_topic):
        e = record.value["data"]
        seen.setdefault((e["product"], e["order"], e["kind"]), e["change"])
    stock: Counter = Counter()
    for (product, _, _), change in seen.items():
        stock[product] += change
    return dict(stock)


_attach_with: Callable[[str], Market] | None = None


def attach_markets_with(find: Callable[[str], Market] | None) -> None:
    """Where ``attach`` finds markets from now on (None: this machine's records). A grader sets it
    to read them in the sandbox that started them (grading/sandbox_handles.sandboxed_market)."""
    global _attach_with
    _attach_with = find


def attach(name: str) -> Market:
    """The market ``name`` started by another process (a terminal, a notebook)."""
    if _attach_with is not None:
        return _attach_with(name)
    try:
        saved = json.loads(record_path(name).read_text())
    except FileNotFoundError:
        raise LabEnvError(f"no market called {name!r}", "start one with `lab-env market up`") from None
    running = running_apps()
    host_ids = [saved["app_id"], *saved.get("replicas", [])]
    if not any(host in running for host in host_ids):  # a killed host stays in the market: it can restart
        raise LabEnvError(f"market {name!r} is not running", "start it with `lab-env market up`")
    carrier = saved.get("carrier")
    return Market(
        name,
        load_app(saved["app_id"]),
        saved["topic"],
        Catalog(**saved["catalog"]),
        saved.get("view_port"),
        load_app(carrier) if carrier and carrier in running else None,
        str(saved.get("trust_rule", "the course's")),
        tuple(host for host in map(_known_host, host_ids[1:]) if host is not None),
    )


def hosts_running(name: str) -> tuple[int, int]:
    """(how many of the market's hosts run, how many it has) from its record; (0, 0) without one."""
    try:
        saved = json.loads(record_path(name).read_text())
    except (FileNotFoundError, ValueError):
        return 0, 0
    running = running_apps()
    host_ids = [saved["app_id"], *saved.get("replicas", [])]
    return sum(host in running for host in host_ids), len(host_ids)


def _known_host(app_id: str) -> DaprApp | None:
    """A host's handle from its record, running or killed; None once it was stopped (no record)."""
    try:
        return load_app(app_id)
    except LabEnvError:
        return None


def down(name: str) -> None:
    """Stop the market's view, app, carrier and control plane; its state stays in the stack
    (a market started again keeps it)."""
    _stop_view(name)
    running = running_apps()
    try:
        replicas = json.loads(record_path(name).read_text()).get("replicas", [])
    except (FileNotFoundError, ValueError):
        replicas = []
    for app_id in (name, *replicas, access.carrier_id(name)):
        if app_id in running:
            stop_app(load_app(app_id))
    secure_plane.stop_plane(access.plane_name(name))
    record_path(name).unlink(missing_ok=True)


def forget(name: str, group_wait: float = 60.0) -> dict[str, list[str]]:
    """Delete a stopped market's state from the stack, for a market nobody will start again (``down`` keeps it,
    so a market started again under its name goes on): the Redis keys of its app and its carrier (actors,
    workflow instances and their histories, about 110 keys an order), its two topics and the consumer groups of
    its app, carrier and view. Exact names only: nothing of another market. Returns what went, by kind.

    A consumer that was killed, not closed (the view's), keeps its group busy until the broker's session for
    it expires: its deletion is retried for up to ``group_wait`` seconds (a safety net; it ends on success)."""
    from lab_env.core.probes import wait_until
    from lab_env.core.profile import current
    from lab_env.core.resp import RedisConnection

    if not name:
        raise LabEnvError("forget which market?", "pass its name: lab-env market down --name NAME --forget")
    ours = {name, access.carrier_id(name), _view_name(name), *(host_name(name, i) for i in range(1, MAX_HOSTS))}
    if ours & set(running_apps()):
        raise LabEnvError(f"market {name!r} is running", f"stop it first: lab-env market down --name {name}")
    if record_path(name).exists():  # none of its apps runs: a kernel that died before `down`
        raise LabEnvError(
            f"market {name!r} still has its record (none of its apps runs)",
            f"clear it first: lab-env market down --name {name}",
        )
    prof = current()
    owners = {name, access.carrier_id(name)}  # Dapr app ids: the replicas share the market's
    try:
        with RedisConnection(prof.redis_host, prof.redis_port) as redis:
            # A key starts with its app id: "<app id>||<actor type>||<actor id>||<key>".
            keys = [key for key in redis.scan(f"*{name}*") if key.split("||", 1)[0] in owners]
            for start in range(0, len(keys), 500):
                redis.command("UNLINK", *keys[start : start + 500])
    except OSError as err:
        raise LabEnvError(f"Redis does not answer at {prof.redis_address}: {err}", "run `lab-env up`") from None
    try:
        topics = sorted({orders_topic(name), f"{name}-inventory"} & set(kafka.topic_partitions_all()))
        kafka.delete_topics(topics)
        groups = sorted({name, access.carrier_id(name), f"{name}-view"} & set(kafka.consumer_groups()))
        busy = list(groups)

        def deleted() -> bool:
            nonlocal busy
            try:
                kafka.delete_groups(busy)
            except Exception as err:  # confluent_kafka's KafkaException
                if "NON_EMPTY_GROUP" not in str(err):
                    raise
                busy = sorted(set(busy) & set(kafka.consumer_groups()))
                return not busy
            return True

        if busy:
            wait_until(deleted, group_wait, f"consumer groups {', '.join(busy)} to have no member left", interval=1.0)
    except Exception as err:  # a live consumer, or the broker down
        raise LabEnvError(
            f"Kafka kept some of market {name!r}'s topics or groups: {str(err)[:150]}",
            "stop the notebooks that read its topics (their consumers hold the groups), then forget it again",
        ) from None
    return {"keys": keys, "topics": topics, "groups": groups}


def markets() -> list[str]:
    folder = state_dir() / "markets"
    return sorted(p.stem for p in folder.glob("*.json")) if folder.exists() else []


def deal_possible(n: int) -> bool:
    """Whether order n's buyer can pay what its seller accepts: all but every 7th order's can, whichever
    seller the contract net awards it to."""
    return n % 7 != 6


def spread(n: int) -> tuple[float, float]:
    """How much keener than the reference (order 0's) order n's buyer and seller are,
    as fractions of the list price: agents differ, so their deals do (with the same
    terms for everyone, every deal closed at the same price)."""
    return ((7 * n) % 9) * 0.02, ((5 * n) % 7) * 0.02


def card_prices(cat: Catalog, n: int) -> list[float]:
    """The prices on the cards of the sellers listing order n's product (names do not change them)."""
    sellers = [f"seller-{k}" for k in range(cat.sellers)]
    return [c["price"] for c in allocation.seller_cards("product", n % cat.products, sellers, cat.list_price)]


def seller_opening(cat: Catalog, n: int) -> float:
    """Where order n's seller opens (before its card's price is known): a keener seller opens lower."""
    return round(cat.list_price * (1.3 - spread(n)[1]), 2)


def _limits(cat: Catalog, n: int, price: float | None = None) -> tuple[dict, dict]:
    """Private terms for order n's buyer and for its seller if awarded at a card of ``price`` (by default the
    cheapest card for the product). The seller never goes below its card (allocation.seller_terms). A keener
    buyer opens and stops higher; where deal_possible says no, the buyer stops below every card for the
    product. Openings never pass limits, so a negotiation that concedes towards its limit crosses only where
    the limits overlap."""
    base, keen_buyer = cat.list_price, spread(n)[0]
    prices = card_prices(cat, n)
    limit = round(base * (1.1 + keen_buyer) if deal_possible(n) else min(prices) - 0.05 * base, 2)
    buyer = {"opening": min(round(base * (0.7 + keen_buyer / 2), 2), limit), "limit": limit}
    seller = allocation.seller_terms({"price": min(prices) if price is None else price}, seller_opening(cat, n), 0)
    return buyer, {"opening": seller["opening"], "limit": seller["limit"]}


def place_orders(
    market: Market,
    count: int,
    *,
    start: int | None = None,
    fail_every: int = 0,
    quantity: int = 1,
    workers: int = 8,
    hold_announce: float = 0.0,
) -> list[str]:
    """Schedule ``count`` purchases, numbered on from the market's last order (or from ``start``);
    every ``fail_every``-th one's shipment fails, so its saga compensates. Returns the instance ids.
    An order id is never reused: its outcome, once settled, stands. ``workers`` place orders side by side.
    ``hold_announce`` (a drill): each outcome event, once published, waits this long before it is marked
    sent, and its OrderActor names the host holding it (``held_on``); killing that host then makes the
    re-run publish the event again, a real duplicate."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    if start is None:
        start = max((int(i.rsplit("-", 1)[1]) + 1 for i in orders_placed(market)), default=0)
    local, clients = threading.local(), []

    def place(n: int) -> str:
        if not hasattr(local, "client"):  # one workflow client per thread
            local.client = workflows.client(market.live())
            clients.append(local.client)
        return _place_one(market, local.client, n, fail_every, quantity, hold_announce)

    try:
        with ThreadPoolExecutor(max(1, min(workers, count))) as pool:
            return list(pool.map(place, range(start, start + count)))
    finally:
        for c in clients:
            c.close()


def _place_one(market: Market, client, n: int, fail_every: int, quantity: int, hold_announce: float = 0.0) -> str:
    cat = market.catalog
    order = f"{market.name}-order-{n}"
    buyer_terms, _ = _limits(cat, n)
    # The seller's negotiator is briefed inside the order's workflow, once the contract net has awarded it.
    invoke(market.live(), market.actor("BuyerAgent"), f"{order}-buyer", "Setup", {**buyer_terms, "rounds": cat.rounds})
    spec = {
        "id": order,
        "buyer": f"{order}-buyer",
        "seller": f"{order}-seller",
        "seller_opening": seller_opening(cat, n),
        "product": market.product(n),
        "quantity": quantity,
        "rounds": cat.rounds,
        "buyer_wallet": market.wallet("buyer", n),
    }
    if fail_every and n % fail_every == fail_every - 1:
        spec["fail_at"] = "ship"
    if hold_announce:
        spec["hold_announce"] = hold_announce
    if cat.unreliable:
        spec["unreliable"] = [market.wallet("seller", k) for k in cat.unreliable]
    return client.schedule_new_workflow("purchase", input=spec, instance_id=order)


def orders_placed(market: Market) -> list[str]:
    """The ids of every purchase this market has scheduled (from its sidecar)."""
    return sorted(
        i
        for i in workflows.list_instances(market.live())
        if i.startswith(f"{market.name}-order-") and not i.endswith(("-deal", "-saga"))
    )


def outcomes(market: Market, ids: list[str]) -> dict[str, dict | None]:
    return {i: invoke(market.live(), market.actor("OrderActor"), i, "Outcome") for i in ids}


def wait_orders(
    market: Market, ids: list[str], timeout: float = 600.0, progress: str | None = None
) -> dict[str, dict | None]:
    """Each order's outcome as its OrderActor settled it (a bar described by ``progress``, if given)."""
    from tqdm.auto import tqdm

    outcomes: dict[str, dict | None] = {}
    hidden = progress is None or os.environ.get("LAB_ENV_PROGRESS") == "0"
    with tqdm(total=len(ids), desc=progress, unit="order", disable=hidden) as bar:
        for instance in ids:
            workflows.wait(market.live(), instance, timeout)
            outcomes[instance] = invoke(market.live(), market.actor("OrderActor"), instance, "Outcome")
            bar.update()
    return outcomes


def audit(market: Market, timeout: float = 600.0) -> dict:
    """The balance sheet over every order the market has had, once they have all ended."""
    return balance_sheet(market, wait_orders(market, orders_placed(market), timeout))


def balance_sheet(market: Market, outcomes: dict[str, dict | None]) -> dict:
    """Stock and money, from the actors' own state, against what the market started with."""
    cat = market.catalog
    statuses = Counter((o or {}).get("status", "unsettled") for o in outcomes.values())
    sold: Counter[str] = Counter()
    for o in outcomes.values():
        if o and o["status"] == "completed":
            sold[o["product"]] += o["quantity"]
    stock = {
        market.product(n): invoke(market.live(), market.actor("ProductActor"), market.product(n), "Stock")
        for n in range(cat.products)
    }
    wallets = {w: invoke(market.live(), market.actor("WalletActor"), w, "Entries") for w in market.wallets()}
    balances = {w: invoke(market.live(), market.actor("WalletActor"), w, "Balance") for w in wallets}
    debits = Counter(k.split(":", 1)[1] for e in wallets.values() for k in e if k.startswith("debit:"))
    credits = Counter(k.split(":", 1)[1] for e in wallets.values() for k in e if k.startswith("credit:"))
    refunds = Counter(k.split(":", 1)[1] for e in wallets.values() for k in e if k.startswith("refund:"))
    completed = {i for i, o in outcomes.items() if o and o["status"] == "completed"}
    lost = sorted(i for i, o in outcomes.items() if not o or o.get("status") not in TERMINAL)
    # An order whose money moved but whose outcome says otherwise, or moved twice.
    double = sorted(i for i in outcomes if debits[i] > 1 or credits[i] > 1)
    unpaid = sorted(i for i in completed if not (debits[i] == 1 and credits[i] == 1))
    unrefunded = sorted(
        i for i, o in outcomes.items() if o and o["status"] != "completed" and debits[i] and not refunds[i]
    )
    shipped = shipments(market, list(outcomes)) if market.carrier else None
    # Every completed order shipped by the carrier, and no other order (a refused parcel ships nothing).
    misshipped = sorted(i for i in outcomes if (i in completed) != bool(shipped[i])) if shipped is not None else []
    stock_ok = all(stock[p] + sold[p] == cat.stock for p in stock)
    money_ok = round(sum(balances.values()), 2) == round(cat.funds * cat.buyers, 2)
    return {
        "orders": len(outcomes),
        "statuses": dict(statuses),
        "lost": lost,
        "double": double,
        "unpaid": unpaid,
        "unrefunded": unrefunded,
        "settle_repeats": sum((o or {}).get("repeats", 0) for o in outcomes.values()),
        "misshipped": misshipped,
        "stock_balances": stock_ok,
        "money_balances": money_ok,
        "balanced": stock_ok and money_ok and not (lost or double or unpaid or unrefunded or misshipped),
    }


def shipments(market: Market, ids: list[str]) -> dict[str, dict | None]:
    """The carrier's shipment of each order (None: nothing shipped), read from its own state store."""
    carrier = market.running_carrier()
    reply = sidecar.post(
        carrier,
        sidecar.state_bulk_path("statestore"),
        timeout=60,
        json={"keys": [f"shipment-{i}" for i in ids], "parallelism": 8},
    )
    reply.raise_for_status()
    found = {item["key"][len("shipment-") :]: item.get("data") for item in reply.json()}
    return {i: found.get(i) for i in ids}
