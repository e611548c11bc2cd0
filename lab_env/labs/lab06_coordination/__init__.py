"""Lab 06: How agents coordinate.

It builds hierarchies, contract nets, auctions and votes between the marketplace's agents. Its map:
solution: solutions/06_coordination.ipynb; student notebook: labs/06_coordination.ipynb (generated:
lab-env build-labs); checks: lab_env/labs/lab06_coordination/checks.py; helpers:
lab_env/core/names.py, lab_env/core/probes.py, lab_env/marketplace/agents/auctioneer.py,
lab_env/marketplace/agents/ballot.py, lab_env/marketplace/agents/contractor.py,
lab_env/marketplace/agents/directory.py, lab_env/marketplace/coordination/contract_net.py,
lab_env/notebooks/widgets.py, lab_env/notebooks/workspace.py, lab_env/runtime/actors.py,
lab_env/runtime/apps.py, lab_env/runtime/metrics.py, lab_env/runtime/peers.py,
lab_env/runtime/scale.py, lab_env/runtime/workflows, lab_env/runtime/workflows/hosting.py,
lab_env/runtime/workflows/instances.py; tests: tests/labs/lab06_coordination/test_lab06_checks.py,
tests/runtime/test_metrics.py::test_the_callers_sidecar_counts_its_retries_and_the_breaker_opening,
tests/marketplace/test_coordination.py, tests/marketplace/test_coordination_agents.py,
tests/marketplace/test_auctioneer.py, tests/marketplace/test_ballot.py,
tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[06]; bench: none.
"""
