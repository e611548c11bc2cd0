"""Lab 01: Agents as virtual actors.

It builds products and agents with identity, state and one call at a time; 100,000 of them on one
machine. Its map: solution: solutions/01_actors.ipynb; student notebook: labs/01_actors.ipynb
(generated: lab-env build-labs); checks: lab_env/labs/lab01_actors/checks.py; helpers:
lab_env/core/names.py, lab_env/core/probes.py, lab_env/notebooks/widgets.py,
lab_env/notebooks/workspace.py, lab_env/runtime/actors.py, lab_env/runtime/apps.py,
lab_env/runtime/metrics.py, lab_env/runtime/scale.py; tests: tests/runtime/test_actor_errors.py,
tests/runtime/test_actor_failover.py, tests/runtime/test_actor_reentrancy.py,
tests/runtime/test_metrics.py, tests/runtime/test_scale.py, tests/grading/test_grading.py,
tests/grading/test_grading_assembly.py; bench: bench/actors_bench.py.
"""
