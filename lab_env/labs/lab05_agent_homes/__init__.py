"""Lab 05: Agent homes.

It builds one spec for the agents, rendered to dapr run -f, containers and Kubernetes, with access
control. Its map: solution: solutions/05_agent_homes.ipynb; student notebook:
labs/05_agent_homes.ipynb (generated: lab-env build-labs); checks:
lab_env/labs/lab05_agent_homes/checks.py; helpers: lab_env/core/names.py, lab_env/core/paths.py,
lab_env/core/ports.py, lab_env/core/probes.py, lab_env/errors.py,
lab_env/marketplace/homes/container.py, lab_env/marketplace/homes/container_run.py,
lab_env/marketplace/homes/density.py, lab_env/marketplace/homes/kube.py,
lab_env/marketplace/homes/native.py, lab_env/marketplace/homes/security.py,
lab_env/marketplace/homes/spec.py, lab_env/notebooks/widgets.py, lab_env/notebooks/workspace.py,
lab_env/runtime/actors.py, lab_env/runtime/apps.py, lab_env/runtime/clusters/kind_home.py,
lab_env/runtime/clusters/native.py; tests: tests/marketplace/test_homes.py,
tests/marketplace/test_home_security.py, tests/marketplace/test_native_home.py,
tests/marketplace/test_container_home.py, tests/runtime/test_secure_plane.py,
tests/runtime/test_native_cluster.py, tests/runtime/test_kind_cluster.py,
tests/runtime/test_kind_home.py,
tests/grading/test_grading_labs.py::test_solution_full_marks_and_unsolved_none[05]; bench:
bench/cluster_bench.py.
"""
