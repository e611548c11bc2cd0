"""The `lab-env` command: `main` builds the parser from one `register(sub)` per command group."""

from lab_env.cli.main import main

__all__ = ["main"]
