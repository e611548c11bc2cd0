"""The capstone: the agent marketplace as one society of real services.

ledger.py    the money and the outcomes: WalletActor (debits and credits,
             each once per order) and OrderActor (an order's outcome,
             settled exactly once)
society.py   the market app: product, buyer, seller, wallet and order
             actors, and the workflows between them (negotiate with
             offers from lab_env.marketplace.agents.offer_policy, then the order saga:
             reserve, charge, ship, with compensation), publishing order
             events to Kafka through Dapr
carrier.py   the carrier app the ship step calls by service invocation
             (idempotent by order id)
access.py    who may call whom (the apps' access policies, deny by
             default) and a drill of the calls they must refuse
control.py   one command: up, down, status, orders, and the balance sheet
             that proves nothing was lost, doubled or shipped wrongly
view.py      the live view of the market (a web page)
"""
