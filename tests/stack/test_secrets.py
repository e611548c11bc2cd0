"""No secret in what the course ships or prints: the notebooks' saved outputs
(solutions/, labs/) and the docs hold no API key. The market's model path is
checked against its own logs and events in tests/marketplace/test_market.py, lab 05's
homes by lab_env.marketplace.homes.security.secret_isolation."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
# An OpenAI-style key, or a key assigned in text (KEY=..., "api_key": "...").
KEY_SHAPES = [
    re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)(openai_api_key|api[_-]?key)\s*[=:]\s*[\"']?(?!<|\$|os\.|\{)[A-Za-z0-9_-]{16,}"),
]
NOTEBOOKS = sorted([*ROOT.glob("solutions/*.ipynb"), *ROOT.glob("labs/*.ipynb")])


def leaks(text: str) -> list[str]:
    return [m.group(0) for shape in KEY_SHAPES for m in shape.finditer(text)]


def _outputs(path: Path) -> str:
    nb = nbformat.read(path, as_version=4)
    return "\n".join(str(o) for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_the_key_shapes_find_a_key_in_an_output():
    assert leaks("Authorization: Bearer sk-proj-0123456789abcdefABCDEF") == ["sk-proj-0123456789abcdefABCDEF"]
    assert leaks('OPENAI_API_KEY="abcd1234efgh5678ijkl"') != []
    assert leaks('secrets={"OPENAI_API_KEY": os.environ["OPENAI_API_KEY"]}') == []  # naming a key is fine


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_no_notebook_output_holds_a_key(path):
    assert NOTEBOOKS, "no notebooks found"
    assert leaks(_outputs(path)) == []


def test_no_doc_holds_a_key():
    docs = [*ROOT.glob("*.md"), *ROOT.glob("docs/**/*.md"), *ROOT.glob("bench/results/*.md")]
    assert docs
    assert {str(p.relative_to(ROOT)): leaks(p.read_text()) for p in docs if leaks(p.read_text())} == {}
