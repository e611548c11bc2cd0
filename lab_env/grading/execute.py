"""Run a notebook top to bottom in a fresh kernel (the venv's Python)."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient


def execute(
    path: Path, *, allow_errors: bool = False, timeout: int = 300, write: bool = False
) -> nbformat.NotebookNode:
    """Execute ``path`` in its own folder; with ``write``, save the outputs back.

    With ``allow_errors`` a failing cell records its error and the run goes
    on, as a learner's run would.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        allow_errors=allow_errors,
        resources={"metadata": {"path": str(path.parent)}},
    )
    # The kernel runs the interpreter of this venv, whatever kernels Jupyter knows of.
    client.kernel_manager_class = KernelManager
    client.extra_arguments = []
    _use_this_python(client)
    client.execute()
    if write:
        nbformat.write(nb, path)
    return nb


def this_python_kernel_spec():  # -> jupyter_client.kernelspec.KernelSpec
    """A kernel running this venv's interpreter, whatever kernels Jupyter knows of."""
    from jupyter_client.kernelspec import KernelSpec

    return KernelSpec(
        argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        display_name="lab",
        language="python",
    )


def _use_this_python(client: NotebookClient) -> None:
    spec = this_python_kernel_spec()

    def create_kernel_manager():
        km = client.kernel_manager_class(kernel_name="python3")
        km._kernel_spec = spec
        return km

    client.create_kernel_manager = create_kernel_manager  # type: ignore[method-assign]
