"""The capstone: the agent marketplace as one society of real services.

    ledger.py    the money and the outcomes: WalletActor (debits and credits,
                 each once per order) and OrderActor (an order's outcome,
                 settled exactly once)
    society.py   the market app: product, buyer, seller, wallet and order
                 actors, and the workflows between them (negotiate with
                 offers from lab_env.agents.offer_policy, then the order saga:
                 reserve, charge, ship, with compensation), publishing order
                 events to Kafka through Dapr
    control.py   one command: up, down, status, orders, and the balance sheet
                 that proves nothing was lost or doubled
"""
