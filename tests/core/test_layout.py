"""The house keeps its shape (issue 26): a small root, a purpose per folder, one of each mechanism."""

import ast
import re
from pathlib import Path

from lab_env.core.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "lab_env"


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_the_root_holds_only_the_package_face_and_the_error_family():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "errors.py"]


def test_every_folder_says_its_purpose_in_its_init_docstring():
    for folder in sorted({p.parent for p in _modules()}):
        init = folder / "__init__.py"
        assert init.exists(), f"{folder.relative_to(REPO_ROOT)} has no __init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{init.relative_to(REPO_ROOT)} has no docstring"


def _outside(allowed: set[str], pattern: str) -> list[str]:
    found = []
    for path in _modules():
        rel = str(path.relative_to(REPO_ROOT))
        if rel in allowed:
            continue
        found += [f"{rel}:{n}" for n, line in enumerate(path.read_text().splitlines(), 1) if re.search(pattern, line)]
    return found


def test_only_the_sidecar_client_spells_daprs_http_api():
    # The wrk script in scale.py is Lua sent to wrk; the two hints are what a learner reads.
    lines = _outside({"lab_env/runtime/sidecar.py"}, r"['\"/]v1\.0/")
    allowed = ("lab_env/runtime/scale.py", "lab_env/labs/lab02_pubsub/checks.py", "lab_env/labs/lab03_kafka/checks.py")
    assert [line for line in lines if not line.startswith(allowed)] == []


def test_only_core_procs_starts_processes():
    # progress_bar runs a build step to its end (it reads the output as it comes), nothing long-running.
    assert _outside({"lab_env/core/procs.py", "lab_env/core/progress_bar.py"}, r"subprocess\.Popen|os\.fork\(") == []


def test_only_the_sidecar_client_makes_http_clients():
    assert _outside({"lab_env/runtime/sidecar.py"}, r"httpx\.Client\(") == []
