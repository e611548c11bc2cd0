"""The course catalogue, the learner's progress record and the overview."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from lab_env.core.paths import REPO_ROOT
from lab_env.labs import course
from lab_env.labs.checks import CheckFailed, check, verdict
from lab_env.labs.course import LABS, lab_map, package_docstring


@pytest.fixture
def record(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv("LAB_ENV_PROGRESS_FILE", str(path))
    return path


def _lab01_check(name: str, ok: bool):
    def body():
        assert ok, "the stock is wrong"

    body.__name__ = name
    body.__module__ = "lab_env.labs.lab01_actors.checks"  # as if defined there
    return check("a check", hint="read the hint")(body)


def test_checks_run_in_a_notebook_record_their_latest_outcome(record):
    with pytest.raises(CheckFailed):
        _lab01_check("product_stock", ok=False)()
    _lab01_check("base_agent", ok=True)()
    data = json.loads(record.read_text())
    assert {k: v["passed"] for k, v in data["01"].items()} == {"product_stock": False, "base_agent": True}
    _lab01_check("product_stock", ok=True)()  # fixed: the latest run counts
    assert json.loads(record.read_text())["01"]["product_stock"]["passed"] is True


def test_the_graders_verdicts_leave_the_record_alone(record):
    assert not verdict(_lab01_check("base_agent", ok=False)).passed
    assert not record.exists()


def test_progress_counts_the_labs_own_check_cells(record):
    course.record("01", "base_agent", True)
    course.record("01", "turn_based", False)
    course.record("01", "not_a_cell_of_the_lab", True)
    lab01 = next(p for p in course.progress() if p.lab.number == "01")
    names = course.LABS[0].checks()
    assert lab01.total == len(names) >= 5 and "base_agent" in names
    assert lab01.passed == [names["base_agent"]] and lab01.failed == [names["turn_based"]]
    assert lab01.status == "started"
    assert {p.lab.number: p.status for p in course.progress()}["02"] == "not started"
    for name in names:
        course.record("01", name, True)
    assert next(p for p in course.progress() if p.lab.number == "01").status == "done"


def test_a_corrupt_record_reads_as_no_progress(record):
    record.write_text("{not json")
    assert all(not p.passed for p in course.progress())
    course.record("02", "cloudevent", True)  # and is replaced by the next outcome
    assert json.loads(record.read_text()) == {"02": {"cloudevent": json.loads(record.read_text())["02"]["cloudevent"]}}


def test_labs_are_listed_in_order_and_existing_ones_link_to_their_notebook(record):
    numbers = [lab.number for lab in course.LABS]
    assert numbers == sorted(numbers) and numbers[:4] == ["01", "02", "03", "04"]
    page = course.overview_html()
    for lab in course.LABS:
        assert (f'href="{lab.notebook}"' in page) == lab.available
    assert page.index("Agents as virtual actors") < page.index("Durable agent workflows")


def test_lab_env_progress_prints_the_table(record):
    course.record("01", "base_agent", True)
    out = subprocess.run(
        [sys.executable, "-m", "lab_env.cli.main", "progress"], capture_output=True, text=True, check=True
    ).stdout
    assert "01" in out and f"1/{len(course.LABS[0].checks())}" in out and str(record) in out


def test_every_labs_map_points_at_files_that_exist():
    for lab in LABS:
        for part, paths in lab_map(lab).items():
            assert paths or part == "bench", f"lab {lab.number} has no {part}"
            for path in paths:
                file = REPO_ROOT / path.split("::")[0].split(" (")[0]
                assert file.exists(), f"lab {lab.number}'s {part} names {path}, which is not there"


def test_each_lab_packages_docstring_is_its_map():
    for lab in LABS:
        doc = importlib.import_module(lab.package).__doc__
        assert doc == package_docstring(lab), (
            f"{lab.package}'s docstring is not its map: run `python -m lab_env.labs.course`"
        )


def test_lab_env_map_prints_one_lab():
    out = subprocess.run(
        [sys.executable, "-m", "lab_env.cli", "map", "03"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("lab 03: Event streams with Apache Kafka\n")
    assert "lab_env/labs/lab03_kafka/checks.py" in out and "tests/labs/lab03_kafka/test_lab03_checks.py" in out


def test_each_lab_says_how_long_its_cells_take_as_measured():
    """The first cell's "**Time.**" line matches bench/results/lab_times.json and the lab's checks
    (after bench/lab_times.py: bench/lab_time_line.py --write, then lab-env build-labs)."""
    import json

    from lab_env.labs.course import LAB_TIMES, time_line

    measured = {r["notebook"]: r["seconds"] for r in json.loads(LAB_TIMES.read_text())["labs"]}
    solutions = sorted((REPO_ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(measured) == [p.name for p in solutions], "bench/lab_times.py has not measured every lab"
    for path in solutions:
        nb = json.loads(path.read_text())
        assert time_line(nb, measured[path.name]) in "".join(nb["cells"][0]["source"]), path.name


def test_a_run_is_kept_with_the_lab_whose_check_it_ran_only(record, monkeypatch):
    """The overview imports every lab's checks: that makes no run of any lab. A check run in a kernel
    keeps the kernel's token with its own lab, which `lab-env reset` then finds."""
    from lab_env.core.names import run_token

    monkeypatch.setitem(sys.modules, "ipykernel", sys.modules.get("ipykernel") or object())
    course.progress()  # imports every lab's checks module
    assert all(course.runs_of(lab.number) == [] for lab in LABS)
    _lab01_check("base_agent", ok=True)()
    assert course.runs_of("01") == [run_token()] and course.runs_of("02") == []
    monkeypatch.setenv("LAB_ENV_GRADING", "1")  # a grader's kernel keeps no run
    monkeypatch.setenv("LAB_RUN_TOKEN", "0a0b0c")
    _lab01_check("base_agent", ok=True)()
    assert "0a0b0c" not in course.runs_of("01")
