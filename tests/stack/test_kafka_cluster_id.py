"""KRaft cluster ids: Kafka's storage tool reads an id that starts with "-" as an option and
refuses to format (it cost a checkpoint run lab 03's whole replication section)."""

from __future__ import annotations

import base64

from lab_env.stack.provision.kafka import new_cluster_id


def test_a_cluster_id_is_16_random_bytes_and_never_starts_with_a_dash():
    ids = [new_cluster_id() for _ in range(2000)]  # without the rule, about 31 of them would
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
