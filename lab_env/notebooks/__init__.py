"""Notebook tooling: generating labs/ from solutions/, and the lab magics."""
