"""Lab 02: Event-driven agents with Dapr pub/sub.

It builds listings and orders as events; inboxes, routing, retries and dead letters; a registry of
sellers. Its map: solution: solutions/02_pubsub.ipynb; student notebook: labs/02_pubsub.ipynb
(generated: lab-env build-labs); checks: lab_env/labs/lab02_pubsub/checks.py; helpers:
lab_env/core/names.py, lab_env/core/probes.py, lab_env/notebooks/widgets.py,
lab_env/notebooks/workspace.py, lab_env/runtime/apps.py; tests:
tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[02]; bench: none.
"""
