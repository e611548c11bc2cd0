"""The `lab-env` command: `main` builds the parser from one `register(sub)` per command group."""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    # Imported on call, so `python -m lab_env.cli.main` does not find its module imported already.
    from lab_env.cli.main import main as run

    return run(argv)


__all__ = ["main"]
