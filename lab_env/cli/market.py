"""``lab-env market up|status|orders|down``: the marketplace from a terminal."""

from __future__ import annotations

import argparse

from lab_env.marketplace.market import control

DEFAULT_NAME = "market"


def cmd_up(args: argparse.Namespace) -> int:
    if any(not 0 <= k < args.sellers for k in args.unreliable):
        print(f"--unreliable takes seller numbers from 0 to {args.sellers - 1}")
        return 2
    if not 1 <= args.hosts <= control.MAX_HOSTS:
        print(f"--hosts takes 1 to {control.MAX_HOSTS}")
        return 2
    catalog = control.Catalog(
        products=args.products,
        stock=args.stock,
        buyers=args.buyers,
        sellers=args.sellers,
        unreliable=tuple(args.unreliable),
    )
    market = control.up(args.name, catalog, detach=True, hosts=args.hosts)
    print(
        f"market {market.name} is up on {len(market.hosts)} host(s): app pid {market.app.app_pid}, "
        f"sidecar {market.app.sidecar_url}, "
        f"order events on Kafka topic {market.topic}"
    )
    print(
        f"  {catalog.products} products x {catalog.stock} in stock, {catalog.buyers} buyers, {catalog.sellers} sellers"
        + (f" (never delivering: seller {', '.join(map(str, catalog.unreliable))})" if catalog.unreliable else "")
    )
    print(
        f"  carrier app {market.running_carrier().app_id}; both sidecars on the market's own mTLS control plane, "
        "calls between them under an access policy"
    )
    print(f"  live view: {market.view_url}")
    print(
        f"place orders: lab-env market orders --name {market.name} --count 100;  "
        f"stop: lab-env market down --name {market.name}"
    )
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    names = control.markets()
    if not names:
        print("no market: start one with `lab-env market up`")
    for name in names:
        up, hosts = control.hosts_running(name)
        if up == 0:
            print(f"{name}: stopped")
        elif up == hosts:
            print(f"{name}: running" + (f" on {hosts} hosts" if hosts > 1 else ""))
        else:  # a killed host: the others serve its agents
            print(f"{name}: running on {up} of {hosts} hosts")
    return 0


def cmd_orders(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    market = control.attach(args.name)
    ids = control.place_orders(market, args.count, fail_every=args.fail_every)
    for instance in tqdm(ids, desc="orders", unit="order"):  # the bar moves as each order ends
        control.wait_orders(market, [instance])
    sheet = control.balance_sheet(market, control.outcomes(market, control.orders_placed(market)))
    print(", ".join(f"{n} {status}" for status, n in sorted(sheet["statuses"].items())))
    print(
        f"lost {len(sheet['lost'])}, charged twice {len(sheet['double'])}, "
        f"completed but unpaid {len(sheet['unpaid'])}, failed but not refunded {len(sheet['unrefunded'])}, "
        f"shipped wrongly {len(sheet['misshipped'])}; stock balances: {sheet['stock_balances']}, "
        f"money balances: {sheet['money_balances']}"
    )
    return 0 if sheet["balanced"] else 1


def cmd_down(args: argparse.Namespace) -> int:
    control.down(args.name)
    print(f"market {args.name} stopped")
    if args.forget:
        gone = control.forget(args.name)
        print(f"forgotten: {len(gone['keys'])} Redis keys, {len(gone['topics'])} topics, {len(gone['groups'])} groups")
    return 0


def register(sub) -> None:
    market = sub.add_parser("market", help="the capstone's marketplace: up, status, orders, down")
    verbs = market.add_subparsers(dest="verb", required=True)
    s = verbs.add_parser("up", help="start the marketplace on the running stack and stock it")
    s.add_argument("--name", default=DEFAULT_NAME)
    s.add_argument("--products", type=int, default=10)
    s.add_argument("--stock", type=int, default=1000)
    s.add_argument("--buyers", type=int, default=20)
    s.add_argument("--sellers", type=int, default=5)
    s.add_argument(
        "--unreliable",
        type=int,
        nargs="*",
        default=[],
        metavar="SELLER",
        help="sellers (by number) that never hand over the goods: watch their trust fall in the live view",
    )
    s.add_argument(
        "--hosts",
        type=int,
        default=1,
        help="processes hosting the society under one app id (placement spreads the agents; kill one, the rest go on)",
    )
    s.set_defaults(fn=cmd_up)
    s = verbs.add_parser("status", help="the markets and whether they run")
    s.set_defaults(fn=cmd_status)
    s = verbs.add_parser("orders", help="place orders, wait for every outcome, print the balance sheet")
    s.add_argument("--name", default=DEFAULT_NAME)
    s.add_argument("--count", type=int, default=100)
    s.add_argument(
        "--fail-every", type=int, default=10, help="every Nth shipment fails and its saga compensates (0: none)"
    )
    s.set_defaults(fn=cmd_orders)
    s = verbs.add_parser("down", help="stop a market")
    s.add_argument("--name", default=DEFAULT_NAME)
    s.add_argument(
        "--forget",
        action="store_true",
        help="also delete its state (Redis keys, Kafka topics and groups): without it, a market started again "
        "under the same name goes on where it stopped",
    )
    s.set_defaults(fn=cmd_down)
