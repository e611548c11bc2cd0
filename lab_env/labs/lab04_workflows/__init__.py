"""Lab 04: Durable agent workflows.

It builds orders as sagas that survive crashes, approvals, fan-out research, a mediator negotiating
between buyer and seller. Its map: solution: solutions/04_workflows.ipynb; student notebook:
labs/04_workflows.ipynb (generated: lab-env build-labs); checks:
lab_env/labs/lab04_workflows/checks.py; helpers: lab_env/core/names.py, lab_env/core/probes.py,
lab_env/marketplace/agents/market_actors.py, lab_env/notebooks/widgets.py,
lab_env/notebooks/workspace.py, lab_env/runtime/actors.py, lab_env/runtime/apps.py,
lab_env/runtime/workflows, lab_env/runtime/workflows/activity_ledger.py,
lab_env/runtime/workflows/hosting.py, lab_env/runtime/workflows/instances.py; tests:
tests/labs/lab04_workflows/test_lab04_checks.py, tests/runtime/test_workflows_helpers.py,
tests/runtime/test_workflow_versioning.py, tests/labs/test_check_stderr.py,
tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[04]; bench:
bench/workflow_drill.py.
"""
