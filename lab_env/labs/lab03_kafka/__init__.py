"""Lab 03: Event streams with Apache Kafka.

It builds the order log: partitions, consumer groups, exactly-once stock updates, a supply chain,
replication. Its map: solution: solutions/03_kafka.ipynb; student notebook: labs/03_kafka.ipynb
(generated: lab-env build-labs); checks: lab_env/labs/lab03_kafka/checks.py; helpers:
lab_env/core/names.py, lab_env/core/probes.py, lab_env/marketplace/agents/supply_chain.py,
lab_env/notebooks/widgets.py, lab_env/notebooks/workspace.py, lab_env/runtime/apps.py,
lab_env/runtime/kafka, lab_env/runtime/kafka/replicated.py, lab_env/runtime/workers.py; tests:
tests/labs/lab03_kafka/test_lab03_checks.py, tests/runtime/test_kafka_helpers.py,
tests/runtime/test_kafka_replication.py,
tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[03]; bench:
bench/kafka_bench.py.
"""
