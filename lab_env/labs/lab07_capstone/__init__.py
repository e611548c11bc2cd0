"""Lab 07: Capstone: the marketplace.

It builds the whole society end to end, surviving crashes. Its map: solution:
solutions/07_capstone.ipynb; student notebook: labs/07_capstone.ipynb (generated: lab-env
build-labs); checks: lab_env/labs/lab07_capstone/checks.py; helpers: lab_env/core/names.py,
lab_env/marketplace/agents/offer_policy.py, lab_env/marketplace/market/access.py,
lab_env/marketplace/market/control.py, lab_env/models/candidates.py, lab_env/models/client.py,
lab_env/models/offline.py, lab_env/models/trial.py, lab_env/notebooks/widgets.py,
lab_env/notebooks/workspace.py, lab_env/runtime/actors.py, lab_env/runtime/kafka/records.py,
lab_env/runtime/scale.py, lab_env/runtime/tracing/zipkin.py, lab_env/runtime/workflows; tests:
tests/labs/lab07_capstone/test_lab07_checks.py, tests/labs/lab07_capstone/test_validation_suite.py,
tests/models/test_offline_model.py, tests/marketplace/test_market.py,
tests/marketplace/test_market_actors.py, tests/marketplace/test_market_allocation.py,
tests/marketplace/test_market_view.py, tests/marketplace/test_offer_policy.py,
tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[07]; bench:
bench/market_scale.py, bench/market_drill.py.
"""
