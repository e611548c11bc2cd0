"""A consumer-group member that reports every partition it gains or loses.

    python -m lab_env.marketplace.agents.group_member --group G --topic T [--protocol consumer] [--delay 0.01]

Its log shows the rebalances it sees ("assigned [...]" / "revoked [...]"),
and with --delay it processes slowly, so lag can build up. It commits after
each record it processed; SIGTERM closes it (it leaves the group at once).
"""

from __future__ import annotations

import argparse
import os
import time

from confluent_kafka import Consumer

from lab_env.runtime import kafka


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds of work per record")
    args = parser.parse_args()
    name = os.environ.get("WORKER_NAME", f"member-{os.getpid()}")

    kafka.exit_on_sigterm()
    settings = {
        "group.id": args.group,
        "client.id": name,
        "group.protocol": args.protocol,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    if args.protocol == "classic":
        # Classic: the member owns its timing. KIP-848 ("consumer"): the broker does.
        settings.update({"session.timeout.ms": 6000, "partition.assignment.strategy": "range"})
    consumer = Consumer(kafka.config(settings))

    def assigned(c, parts) -> None:
        print(f"assigned {sorted(p.partition for p in parts)}", flush=True)

    def revoked(c, parts) -> None:
        print(f"revoked {sorted(p.partition for p in parts)}", flush=True)

    consumer.subscribe([args.topic], on_assign=assigned, on_revoke=revoked)
    print(f"{name} joining {args.group} ({args.protocol} protocol)", flush=True)
    started: set[int] = set()
    try:
        while True:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            partition = msg.partition()  # None only on an error event, skipped above
            if partition is not None and partition not in started:  # where this run resumed in the partition
                started.add(partition)
                print(f"partition {partition} starts at offset {msg.offset()}", flush=True)
            if args.delay:
                time.sleep(args.delay)
            consumer.commit(message=msg, asynchronous=True)
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
